/* test_fmnist_vit_parity.c: the Fashion-MNIST encoder
 * (models/encoders/fmnist_vit.irg) at a tiny size against its PyTorch twin
 * (tools/fmnist_vit_ref.py). The golden
 * golden/tiny_fmnist_vit.safetensors is written by
 *     python3 tools/gen_fmnist_vit_golden.py
 * and holds, in float64: the inputs (x, y), the parameters, the loss
 * entry's outputs (out.loss, out.correct), every parameter gradient of the
 * loss (grad.*), and the outputs of logits, features and pooled.
 *
 * Every entry runs on the reference interpreter in double (all outputs and
 * gradients within 1e-10, relative to the tensor's largest magnitude) and
 * on the generated C kernels in f32 (within 1e-5), the loss entry with its
 * backward graph. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exec.h"
#include "irx.h"
#include "numeric.h"
#include "program.h"
#include "safetensors.h"

static const char GOLDEN[] = "golden/tiny_fmnist_vit.safetensors";
static const char SRC[] =
    "import \"encoders/fmnist_vit.irg\";\n"
    "model = FmnistViT(width = 16, depth = 2, num_heads = 2, mlp_ratio = 2.0, patch = 4);\n";
static const char *const CONFIG_MUST_HAVE[] = {"\"width\": 16", "\"depth\": 2", "\"num_heads\": 2",
                                               "\"mlp_ratio\": 2.0", "\"batch\": 3"};
static const double INTERP_BOUND = 1e-10, C_BOUND = 1e-5;

typedef struct {
  const char *entry;
  bool grad;
  const char *outputs[2];  /* golden names of out.0, out.1 */
} Case;

static const Case cases[] = {
    {"loss", true, {"out.loss", "out.correct"}},
    {"logits", false, {"out.logits", NULL}},
    {"features", false, {"out.features", NULL}},
    {"pooled", false, {"out.pooled", NULL}},
};

static StFile *open_golden(void) {
  RtError err;
  StFile *f = st_open(GOLDEN, &err);
  if (!f) fail_msg("%s", err.msg);
  const char *config = st_metadata(f, "config");
  assert_non_null(config);
  for (size_t i = 0; i < sizeof CONFIG_MUST_HAVE / sizeof *CONFIG_MUST_HAVE; i++)
    if (!strstr(config, CONFIG_MUST_HAVE[i])) fail_msg("golden config %s lacks %s", config, CONFIG_MUST_HAVE[i]);
  return f;
}

/* Compares out (the entry's outputs: out.0, out.1, grad.*) with the golden;
 * every golden gradient must be present when the case has gradients. */
static void check_outputs(const Case *k, const char *where, const TensorList *out, const TensorList *golden,
                          double bound) {
  for (int i = 0; i < 2 && k->outputs[i]; i++) {
    char name[16];
    snprintf(name, sizeof name, "out.%d", i);
    const Tensor *got = tensorlist_find(out, name), *want = tensorlist_find(golden, k->outputs[i]);
    assert_non_null(got);
    assert_non_null(want);
    double e = tensor_rel_error(want, got);
    printf("fmnist_vit %-8s [%s] %-12s rel err %.3e\n", k->entry, where, k->outputs[i], e);
    assert_true(e <= bound);
  }
  if (!k->grad) return;
  NtGrads r = nt_compare_grads(out, golden, bound, where);
  if (r.missing) fail_msg("[%s] no output %s", where, r.missing);
  assert_true(r.expected > 0);
  assert_int_equal(r.compared, r.expected);
  assert_true(r.worst <= bound);
  printf("fmnist_vit %-8s [%s] %d gradients, worst rel err %.3e (%s)\n", k->entry, where, r.compared, r.worst,
         r.worst_name);
}

static void run_interp(void **state) {
  const Case *k = *state;
  StFile *f = open_golden();
  Compiled c;
  assert_true(nt_compile(&c, SRC, k->entry, k->grad, NULL));
  const TensorList *golden = st_tensors(f);
  TensorList out = {0};
  RtError err;
  InterpOptions opt = {INTERP_F64, 0};
  if (!interp_run(c.g, &c.prog.params, golden, golden, &opt, &out, &err)) fail_msg("%s", err.msg);
  check_outputs(k, "interp f64", &out, golden, INTERP_BOUND);
  tensorlist_free(&out);
  nt_free(&c);
  st_close(f);
}

/* The entry compiled as irepac compile would (C source only), loaded from
 * .irx bytes and run on the C backend; f64 golden tensors are converted to
 * the declared f32. */
static void run_c(void **state) {
  const Case *k = *state;
  StFile *f = open_golden();
  Compiled c;
  assert_true(nt_compile(&c, SRC, k->entry, false, NULL));
  CompileOptions copt = {k->grad, true, false};
  CompiledProgram cp;
  if (!program_compile(&c.arena, &c.diags, &c.prog, &copt, &cp)) {
    diag_print(stderr, &c.diags);
    fail_msg("%s does not compile", k->entry);
  }
  unsigned char *bytes = NULL;
  size_t len = 0;
  XProgram xp = {0};
  RtError err = {{0}};
  IrxMeta meta = {"fmnist_vit", 0, NULL, 0};
  if (!irx_serialize(&cp, &meta, &bytes, &len, &err) || !irx_parse(bytes, len, k->entry, &xp, &err))
    fail_msg("%s", err.msg);
  Backend *b = backend_open("c", &err);
  if (!b) fail_msg("%s", err.msg);
  const TensorList *golden = st_tensors(f);
  TensorList out = {0};
  ExecOptions eopt = {7};
  if (!exec_run(b, &xp, &xp.entries[0], golden, golden, &eopt, &out, &err)) fail_msg("%s", err.msg);
  check_outputs(k, "c f32", &out, golden, C_BOUND);
  tensorlist_free(&out);
  backend_close(b);
  irx_free(&xp);
  free(bytes);
  nt_free(&c);
  st_close(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      {"interp_loss_grad", run_interp, NULL, NULL, (void *)&cases[0]},
      {"interp_logits", run_interp, NULL, NULL, (void *)&cases[1]},
      {"interp_features", run_interp, NULL, NULL, (void *)&cases[2]},
      {"interp_pooled", run_interp, NULL, NULL, (void *)&cases[3]},
      {"c_loss_grad", run_c, NULL, NULL, (void *)&cases[0]},
      {"c_logits", run_c, NULL, NULL, (void *)&cases[1]},
      {"c_features", run_c, NULL, NULL, (void *)&cases[2]},
      {"c_pooled", run_c, NULL, NULL, (void *)&cases[3]},
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
