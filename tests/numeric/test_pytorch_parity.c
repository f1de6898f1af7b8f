/* test_pytorch_parity.c: the tiny SiT training objective (loss terms and
 * every parameter gradient) on the reference interpreter in double, against
 * tensors produced by a PyTorch implementation of the spec
 * (tools/gen_numeric_golden.py -> tests/numeric/golden/). Given the same
 * parameters and inputs: loss terms within 1e-10 and gradients within 1e-8,
 * both relative to the tensor's largest magnitude. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "numeric.h"
#include "safetensors.h"

typedef struct {
  const char *golden;
  const char *src;
  const char *config_must_have[3];  /* fragments of the golden's config */
} Parity;

#define TINY_SIT(head) \
  "import \"sit.irg\";\n" \
  "model = SiT(model = \"SiT-S/2\", depth = 2, hidden_size = 64, num_heads = 2, patch_size = 2,\n" \
  "            input_size = 8, num_classes = 10, encoder_depth = 1, z_dims = [32], " head ");\n"

static const Parity cases[] = {
    {"golden/tiny_sit_irepa.safetensors",
     TINY_SIT("projection_layer_type = \"conv\", proj_kernel_size = 3, spnorm_method = \"zscore\", zscore_alpha = 0.6"),
     {"\"projection_layer_type\": \"conv\"", "\"spnorm_method\": \"zscore\"", "\"proj_kernel_size\": 3"}},
    {"golden/tiny_sit_repa.safetensors",
     TINY_SIT("projection_layer_type = \"mlp\", projector_dim = 64, spnorm_method = \"none\""),
     {"\"projection_layer_type\": \"mlp\"", "\"spnorm_method\": \"none\"", "\"projector_dim\": 64"}},
};

/* max |a - b| / max |b| over the tensor (b the golden). */
static double rel_error(const Tensor *a, const Tensor *b) {
  assert_int_equal(tensor_numel(a), tensor_numel(b));
  return tensor_rel_error(b, a);
}

static void run_parity(void **state) {
  const Parity *p = *state;
  RtError err;
  StFile *f = st_open(p->golden, &err);
  if (!f) fail_msg("%s", err.msg);
  const char *config = st_metadata(f, "config");
  assert_non_null(config);
  for (int i = 0; i < 3; i++) assert_non_null(strstr(config, p->config_must_have[i]));
  Compiled c;
  assert_true(nt_compile(&c, p->src, "loss", true, NULL));
  const TensorList *golden = st_tensors(f);
  TensorList out = {0};
  InterpOptions opt = {INTERP_F64, 0};
  if (!interp_run(c.g, &c.prog.params, golden, golden, &opt, &out, &err)) fail_msg("%s", err.msg);
  static const char *const terms[3][2] = {{"out.0", "out.loss"}, {"out.1", "out.denoise"}, {"out.2", "out.align"}};
  for (int i = 0; i < 3; i++) {
    double e = rel_error(tensorlist_find(&out, terms[i][0]), tensorlist_find(golden, terms[i][1]));
    printf("parity %-28s %-8s rel err %.3e\n", p->golden + 7, terms[i][1] + 4, e);
    assert_true(e <= 1e-10);
  }
  NtGrads r = nt_compare_grads(&out, golden, 1e-8, p->golden);
  if (r.missing) fail_msg("no output %s", r.missing);
  assert_true(r.expected > 0);
  assert_int_equal(r.compared, r.expected);
  assert_true(r.worst <= 1e-8);
  printf("parity %-28s %d gradients, worst rel err %.3e (%s)\n", p->golden + 7, r.compared, r.worst, r.worst_name);
  tensorlist_free(&out);
  nt_free(&c);
  st_close(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      {"irepa_conv3_zscore", run_parity, NULL, NULL, (void *)&cases[0]},
      {"repa_mlp", run_parity, NULL, NULL, (void *)&cases[1]},
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
