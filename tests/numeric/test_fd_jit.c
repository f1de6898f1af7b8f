/* test_fd_jit.c: gradients of JiT's parts (models/jit.irg, models/nn.irg)
 * against central finite differences in double, as test_fd_models.c does
 * for SiT's: the 2-D rotary embedding on its own (with identity rows for
 * in-context tokens), RMSNorm, qk-norm inside the attention, the SwiGLU
 * feed-forward (both also with dropout in training, its masks fixed by the
 * seed), a JiT block, and a 2-block JiT Denoiser with REPA and with
 * iREPA (tapped before and after the class tokens join; the images x are
 * checked on one, the noise on the other, to halve the time). Inputs listed in
 * `wrt` are checked on every element; each trainable parameter on a spread
 * of up to `param_elems` elements. Error: max |analytic - fd| / max |gradient|,
 * bound 1e-6, step 3e-5 (IREPA_FD_STEP overrides it). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "numeric.h"

typedef struct {
  const char *name;
  const char *src;
  const char *wrt;
  int param_elems;  /* 0: parameters are not checked */
  int64_t int_max;
  int64_t batch;
} Case;

#define TOL 1e-6

/* 3e-5, not test_fd_models.c's 1e-5: the gated attention branch of the
 * Denoiser's second block (adaLN gates only slightly off zero) gives its
 * q_norm weights small gradients, on which rounding noise (falling as 1/h)
 * reaches 2.4e-7 at h = 1e-5 and 5.9e-8 at 3e-5; at 1e-4 the worst case is
 * 2.8e-7 (in_context_posemb). */
static double fd_step(void) {
  const char *s = getenv("IREPA_FD_STEP");
  return s ? atof(s) : 3e-5;
}

#define MODEL(members, sig, body) \
  "import \"nn.irg\"; import \"jit.irg\";\nmodule M() { " members " entry loss(" sig ") -> f32[] { " body " } }\n" \
  "model = M();\n"

/* Tables for head dim 8 on a 3x3 grid with 2 identity rows: 11 positions. */
#define TABLES "cs, sn = rope_tables(8, 3, 2);"

#define TINY_DENOISER(head) \
  "import \"jit.irg\";\nmodel = JiTDenoiser(model = \"JiT-T/4\", depth = 2, hidden_size = 16, num_heads = 2," \
  " patch_size = 2, img_size = 4, bottleneck_dim = 4, in_context_len = 2, in_context_start = 1, class_num = 3," \
  " z_dims = [6], projector_dim = 8, " head ");\n"

static const Case cases[] = {
    {"rope", MODEL("", "u: f32[B,2,11,8], c: f32[B,2,11,8]", TABLES "return sum(apply_rope(u, cs, sn) * c);"),
     "u", 0, 0, 2},
    {"rope_grid_only", MODEL("", "u: f32[B,1,16,8], c: f32[B,1,16,8]",
                             "cs, sn = rope_tables(8, 4, 0); return sum(apply_rope(u, cs, sn) * c);"),
     "u", 0, 0, 1},
    {"rmsnorm", MODEL("n = RMSNorm(6);", "x: f32[B,3,6], c: f32[B,3,6]", "return sum(n(x) * c);"), "x", 6, 0, 2},
    {"qk_norm", MODEL("n = RMSNorm(8);", "q: f32[B,2,11,8], c: f32[B,2,11,8]",
                      TABLES "return sum(apply_rope(n(q), cs, sn) * c);"), "q", 8, 0, 2},
    {"attention_qk_norm_rope", MODEL("a = JiTAttention(16, 2);", "x: f32[B,11,16], c: f32[B,11,16]",
                                     TABLES "return sum(a(x, cs, sn, false) * c);"), "x", 6, 0, 2},
    /* dropout in training: the masks are the same on every evaluation (keyed by the seed) */
    {"attention_dropout", MODEL("a = JiTAttention(16, 2, attn_drop = 0.3, proj_drop = 0.25);",
                                "x: f32[B,11,16], c: f32[B,11,16]", TABLES "return sum(a(x, cs, sn, true) * c);"),
     "x", 6, 0, 2},
    {"swiglu", MODEL("m = SwiGLUFFN(4, 12);", "x: f32[B,3,4], c: f32[B,3,4]", "return sum(m(x, false) * c);"), "x",
     6, 0, 2},
    {"swiglu_dropout", MODEL("m = SwiGLUFFN(4, 12, drop = 0.5);", "x: f32[B,3,4], c: f32[B,3,4]",
                             "return sum(m(x, true) * c);"), "x", 6, 0, 2},
    {"jit_block", MODEL("blk = JiTBlock(16, 2);", "x: f32[B,11,16], e: f32[B,16], c: f32[B,11,16]",
                        TABLES "return sum(blk(x, e, cs, sn, false) * c);"), "x,e", 4, 0, 2},
    {"jit_2block_irepa",
     TINY_DENOISER("encoder_depth = 2, projection_layer_type = \"conv\", proj_kernel_size = 3,"
                   " spnorm_method = \"zscore\""), "x,t,proj_coeff", 3, 3, 2},
    {"jit_2block_repa", TINY_DENOISER("encoder_depth = 1, projection_layer_type = \"mlp\""), "noise,t", 3, 3, 2},
};

static void check_inputs(const Case *k, Compiled *c, TensorList *params, TensorList *inputs) {
  if (!k->wrt) return;
  char list[128], name[80];
  snprintf(list, sizeof list, "%s", k->wrt);
  for (char *w = strtok(list, ","); w; w = strtok(NULL, ",")) {
    snprintf(name, sizeof name, "grad.%s", w);
    double e = nt_fd_error(c, params, inputs, tensorlist_find(inputs, w), name, 0, fd_step());
    printf("FD %-24s d/d%-22s max rel err %.3e\n", k->name, w, e);
    assert_true(e <= TOL);
  }
}

static void check_params(const Case *k, Compiled *c, TensorList *params, TensorList *inputs) {
  double worst = 0;
  const char *worst_name = "-";
  for (int i = 0; k->param_elems && i < c->prog.params.n; i++) {
    const ParamInfo *p = &c->prog.params.items[i];
    if (!p->trainable) continue;
    char name[256];
    snprintf(name, sizeof name, "grad.%s", p->name);
    double e = nt_fd_error(c, params, inputs, tensorlist_find(params, p->name), name, k->param_elems, fd_step());
    if (e > TOL) printf("FD %-24s d/d%s rel err %.3e\n", k->name, p->name, e);
    assert_true(e <= TOL);
    if (e >= worst) worst = e, worst_name = p->name;
  }
  if (k->param_elems) printf("FD %-24s params: worst %.3e (%s)\n", k->name, worst, worst_name);
}

static void run_case(void **state) {
  const Case *k = *state;
  Compiled c;
  assert_true(nt_compile(&c, k->src, "loss", true, k->wrt));
  TensorList inputs = {0}, params = {0};
  assert_true(nt_make_inputs(&c, k->batch, 0.05, 0.95, k->int_max, 42, &inputs));
  /* Centre the float inputs; scale t to (0.03, 0.57), away from the t_eps
   * clamp of max(1 - t, 0.05) (its kink, and the 1/0.05 amplification that
   * makes finite differences of a large loss noisy). */
  for (int i = 0; i < inputs.n; i++) {
    if (!dtype_is_float(inputs.items[i]->dtype)) continue;
    bool is_t = !strcmp(inputs.items[i]->name, "t");
    for (int64_t j = 0; j < tensor_numel(inputs.items[i]); j++) {
      double v = tensor_get(inputs.items[i], j);
      tensor_set(inputs.items[i], j, is_t ? 0.6 * v : 2 * v - 1);
    }
  }
  assert_true(nt_make_params(&c, 3, &params));
  check_inputs(k, &c, &params, &inputs);
  check_params(k, &c, &params, &inputs);
  tensorlist_free(&inputs);
  tensorlist_free(&params);
  nt_free(&c);
}

int main(void) {
  enum { N = sizeof cases / sizeof cases[0] };
  struct CMUnitTest tests[N];
  for (int i = 0; i < N; i++) tests[i] = (struct CMUnitTest){cases[i].name, run_case, NULL, NULL, (void *)&cases[i]};
  return _cmocka_run_group_tests("fd_jit", tests, N, NULL, NULL);
}
