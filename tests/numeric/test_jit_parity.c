/* test_jit_parity.c: the tiny JiT Denoiser (models/jit.irg) against tensors
 * produced by a PyTorch implementation of the spec (tools/jit_ref.py via
 * tools/gen_jit_golden.py -> golden/tiny_jit_{irepa,repa}.safetensors).
 *
 * Given the golden's parameters and inputs, the `loss` entry (total,
 * denoising and alignment terms, and every parameter gradient) and the
 * `forward` entry (the clean-image prediction) run
 *   - on the reference interpreter in double: loss terms and the prediction
 *     within 1e-10, gradients within 1e-8;
 *   - on the generated C kernels in f32 (compiled as irepac compile would,
 *     read back from .irx bytes): everything within 1e-5;
 * each relative to the golden tensor's largest magnitude. The iREPA golden
 * taps block 2, after the class tokens joined (block 1); the REPA golden
 * taps block 1, before them. */
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

typedef struct {
  const char *golden;
  const char *src;
  const char *config_must_have[4];  /* fragments of the golden's config */
} Golden;

#define TINY_JIT(head) \
  "import \"jit.irg\";\n" \
  "model = JiTDenoiser(model = \"JiT-T/4\", depth = 3, hidden_size = 32, num_heads = 2, patch_size = 4,\n" \
  "                    img_size = 32, bottleneck_dim = 8, in_context_len = 4, in_context_start = 1,\n" \
  "                    class_num = 10, z_dims = [16], projector_dim = 32, " head ");\n"

static const Golden goldens[] = {
    {"golden/tiny_jit_irepa.safetensors",
     TINY_JIT("encoder_depth = 2, projection_layer_type = \"conv\", proj_kernel_size = 3,\n"
              "                    spnorm_method = \"zscore\", zscore_alpha = 0.8"),
     {"\"projection_layer_type\": \"conv\"", "\"spnorm_method\": \"zscore\"", "\"encoder_depth\": 2",
      "\"in_context_len\": 4"}},
    {"golden/tiny_jit_repa.safetensors",
     TINY_JIT("encoder_depth = 1, projection_layer_type = \"mlp\", spnorm_method = \"none\""),
     {"\"projection_layer_type\": \"mlp\"", "\"spnorm_method\": \"none\"", "\"encoder_depth\": 1",
      "\"in_context_start\": 1"}},
};

typedef struct {
  const Golden *golden;
  const char *entry;
  bool grad;
  bool c_backend;
} Case;

static const char *const LOSS_TERMS[] = {"out.loss", "out.denoise", "out.align"};
static const char *const FORWARD_TERMS[] = {"out.forward"};

static StFile *open_golden(const Golden *g) {
  RtError err;
  StFile *f = st_open(g->golden, &err);
  if (!f) fail_msg("%s", err.msg);
  const char *config = st_metadata(f, "config");
  assert_non_null(config);
  for (int i = 0; i < 4; i++)
    if (!strstr(config, g->config_must_have[i])) fail_msg("golden config %s lacks %s", config, g->config_must_have[i]);
  return f;
}

/* Compares out.0.. with the golden's terms and, for a gradient case, every
 * grad.* of the golden with the same output. */
static void check_outputs(const Case *k, const char *where, const TensorList *out, const TensorList *golden,
                          double term_bound, double grad_bound) {
  bool loss = !strcmp(k->entry, "loss");
  const char *const *terms = loss ? LOSS_TERMS : FORWARD_TERMS;
  int nterms = loss ? 3 : 1;
  for (int i = 0; i < nterms; i++) {
    char name[16];
    snprintf(name, sizeof name, "out.%d", i);
    const Tensor *got = tensorlist_find(out, name), *want = tensorlist_find(golden, terms[i]);
    assert_non_null(got);
    assert_non_null(want);
    double e = tensor_rel_error(want, got);
    printf("jit %-32s %-8s [%s] %-12s rel err %.3e\n", k->golden->golden + 7, k->entry, where, terms[i], e);
    assert_true(e <= term_bound);
  }
  if (!k->grad) return;
  NtGrads r = nt_compare_grads(out, golden, grad_bound, where);
  if (r.missing) fail_msg("[%s] no output %s", where, r.missing);
  assert_true(r.expected > 0);
  assert_int_equal(r.compared, r.expected);
  assert_true(r.worst <= grad_bound);
  printf("jit %-32s %-8s [%s] %d gradients, worst rel err %.3e (%s)\n", k->golden->golden + 7, k->entry, where,
         r.compared, r.worst, r.worst_name);
}

static void run_interp(const Case *k, StFile *f) {
  Compiled c;
  assert_true(nt_compile(&c, k->golden->src, k->entry, k->grad, NULL));
  const TensorList *golden = st_tensors(f);
  TensorList out = {0};
  RtError err;
  InterpOptions opt = {INTERP_F64, 0};
  if (!interp_run(c.g, &c.prog.params, golden, golden, &opt, &out, &err)) fail_msg("%s", err.msg);
  check_outputs(k, "interp f64", &out, golden, 1e-10, 1e-8);
  tensorlist_free(&out);
  nt_free(&c);
}

/* The entry compiled to C only, serialised and read back, run on the C
 * backend; the golden's f64 tensors are converted to the declared f32. */
static void run_c(const Case *k, StFile *f) {
  Compiled c;
  assert_true(nt_compile(&c, k->golden->src, k->entry, false, NULL));
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
  IrxMeta meta = {"tiny_jit", 0, NULL, 0};
  if (!irx_serialize(&cp, &meta, &bytes, &len, &err) || !irx_parse(bytes, len, k->entry, &xp, &err))
    fail_msg("%s", err.msg);
  Backend *b = backend_open("c", &err);
  if (!b) fail_msg("%s", err.msg);
  const TensorList *golden = st_tensors(f);
  TensorList out = {0};
  ExecOptions eopt = {7};
  if (!exec_run(b, &xp, &xp.entries[0], golden, golden, &eopt, &out, &err)) fail_msg("%s", err.msg);
  check_outputs(k, "c f32", &out, golden, 1e-5, 1e-5);
  tensorlist_free(&out);
  backend_close(b);
  irx_free(&xp);
  free(bytes);
  nt_free(&c);
}

static void run_case(void **state) {
  const Case *k = *state;
  StFile *f = open_golden(k->golden);
  if (k->c_backend)
    run_c(k, f);
  else
    run_interp(k, f);
  st_close(f);
}

static const Case cases[] = {
    {&goldens[0], "loss", true, false},  {&goldens[0], "forward", false, false},
    {&goldens[1], "loss", true, false},  {&goldens[1], "forward", false, false},
    {&goldens[0], "loss", true, true},   {&goldens[0], "forward", false, true},
    {&goldens[1], "loss", true, true},
};

int main(void) {
  const struct CMUnitTest tests[] = {
      {"interp_irepa_loss_grad", run_case, NULL, NULL, (void *)&cases[0]},
      {"interp_irepa_forward", run_case, NULL, NULL, (void *)&cases[1]},
      {"interp_repa_loss_grad", run_case, NULL, NULL, (void *)&cases[2]},
      {"interp_repa_forward", run_case, NULL, NULL, (void *)&cases[3]},
      {"c_irepa_loss_grad", run_case, NULL, NULL, (void *)&cases[4]},
      {"c_irepa_forward", run_case, NULL, NULL, (void *)&cases[5]},
      {"c_repa_loss_grad", run_case, NULL, NULL, (void *)&cases[6]},
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
