/* test_fd_models.c: gradients of the composites written in .irg (models/)
 * against central finite differences in double: LayerNorm, GELU-tanh,
 * Attention, adaLN modulate, the projectors, spatial z-score, the cosine and
 * flow-matching losses, the timestep embedder and a 2-block SiT at tiny
 * width. Inputs listed in `wrt` are checked on every element; each
 * trainable parameter on a spread of up to `param_elems` elements. */
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

/* Central-difference step; IREPA_FD_STEP overrides it to study the error. */
static double fd_step(void) {
  const char *s = getenv("IREPA_FD_STEP");
  return s ? atof(s) : 1e-5; /* rounding noise dominates below ~1e-5 here */
}
#define MODEL(members, sig, body) \
  "import \"nn.irg\"; import \"heads.irg\"; import \"losses.irg\";\nmodule M() { " members " entry loss(" sig ") -> f32[] { " body " } }\nmodel = M();\n"

static const Case cases[] = {
    {"layernorm", MODEL("ln = LayerNorm(6, eps = 1e-6);", "x: f32[B,3,6], c: f32[B,3,6]",
                        "return sum(ln(x) * c);"), "x", 6, 0, 2},
    {"layernorm_plain", MODEL("ln = LayerNorm(6, eps = 1e-6, affine = false);", "x: f32[B,3,6], c: f32[B,3,6]",
                              "return sum(ln(x) * c);"), "x", 0, 0, 1},
    {"gelu_tanh", MODEL("", "x: f32[4,5], c: f32[4,5]", "return sum(gelu_tanh(x * 3.0) * c);"), "x", 0, 0, 2},
    {"silu", MODEL("", "x: f32[4,5], c: f32[4,5]", "return sum(silu(x * 3.0) * c);"), "x", 0, 0, 2},
    {"modulate", MODEL("", "x: f32[B,3,4], shift: f32[B,4], scale: f32[B,4], c: f32[B,3,4]",
                       "return sum(modulate(x, shift, scale) * c);"), "x,shift,scale", 0, 0, 2},
    {"mlp", MODEL("m = Mlp(4, 8);", "x: f32[B,3,4], c: f32[B,3,4]", "return sum(m(x) * c);"), "x", 6, 0, 2},
    {"attention", MODEL("a = Attention(8, 2);", "x: f32[B,5,8], c: f32[B,5,8]", "return sum(a(x) * c);"),
     "x", 6, 0, 2},
    {"timestep_embedder", MODEL("te = TimestepEmbedder(8, freq_dim = 16);", "t: f32[B], c: f32[B,8]",
                                "return sum(te(t) * c);"), "t", 6, 0, 3},
    {"label_embedder", MODEL("le = LabelEmbedder(5, 4, 0.1);", "y: i64[B], d: bool[B], c: f32[B,4]",
                             "return sum(le(le.drop_labels(y, d)) * c);"), NULL, 8, 5, 4},
    {"patch_embed", MODEL("pe = PatchEmbed(4, 2, 3, 5);", "x: f32[B,3,4,4], c: f32[B,4,5]",
                          "return sum(pe(x) * c);"), "x", 6, 0, 2},
    {"projector_conv3", MODEL("p = Projector(\"conv\", 6, 5, kernel_size = 3);", "h: f32[B,16,6], c: f32[B,16,5]",
                              "return sum(p(h) * c);"), "h", 6, 0, 2},
    {"projector_mlp", MODEL("p = Projector(\"mlp\", 6, 5, hidden = 7);", "h: f32[B,4,6], c: f32[B,4,5]",
                            "return sum(p(h) * c);"), "h", 6, 0, 2},
    {"spatial_zscore", MODEL("", "f: f32[B,9,4], c: f32[B,9,4]", "return sum(spatial_zscore(f, 0.6) * c);"),
     "f", 0, 0, 2},
    {"cosine_loss", MODEL("", "a: f32[B,6,4], b: f32[B,6,4]", "return cosine_alignment_loss(a, b);"), "a,b", 0, 0, 2},
    {"velocity_loss", MODEL("", "p: f32[B,2,3,3], v: f32[B,2,3,3]", "return velocity_loss(p, v);"), "p,v", 0, 0, 2},
    {"interpolant_cosine", MODEL("", "t: f32[B], x: f32[B,2], e: f32[B,2]",
                                 "a, s, da, ds = interpolant(\"cosine\", t[:, None]);"
                                 "return sum((a * x + s * e) * (da * x + ds * e));"), "t,x,e", 0, 0, 3},
    {"sit_2block_irepa",
     "import \"sit.irg\";\nmodel = SiT(model = \"SiT-S/2\", depth = 2, hidden_size = 16, num_heads = 2, input_size = 4,"
     " num_classes = 3, encoder_depth = 1, z_dims = [6], projection_layer_type = \"conv\", proj_kernel_size = 3,"
     " spnorm_method = \"zscore\");\n", "x0,noise,t,proj_coeff", 3, 3, 2},
    {"sit_2block_repa",
     "import \"sit.irg\";\nmodel = SiT(model = \"SiT-S/2\", depth = 2, hidden_size = 16, num_heads = 2, input_size = 4,"
     " num_classes = 3, encoder_depth = 2, z_dims = [6], projector_dim = 8, path_type = \"cosine\");\n",
     "x0,noise,t", 3, 3, 2},
};

static void check_inputs(const Case *k, Compiled *c, TensorList *params, TensorList *inputs) {
  if (!k->wrt) return;
  char list[128], name[80];
  snprintf(list, sizeof list, "%s", k->wrt);
  for (char *w = strtok(list, ","); w; w = strtok(NULL, ",")) {
    snprintf(name, sizeof name, "grad.%s", w);
    double e = nt_fd_error(c, params, inputs, tensorlist_find(inputs, w), name, 0, fd_step());
    printf("FD %-20s d/d%-22s max rel err %.3e\n", k->name, w, e);
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
    if (e > TOL) printf("FD %-20s d/d%s rel err %.3e\n", k->name, p->name, e);
    assert_true(e <= TOL);
    if (e >= worst) {
      worst = e;
      worst_name = p->name;
    }
  }
  if (k->param_elems) printf("FD %-20s params: worst %.3e (%s)\n", k->name, worst, worst_name);
}

static void run_case(void **state) {
  const Case *k = *state;
  Compiled c;
  assert_true(nt_compile(&c, k->src, "loss", true, k->wrt));
  TensorList inputs = {0}, params = {0};
  assert_true(nt_make_inputs(&c, k->batch, 0.05, 0.95, k->int_max, 42, &inputs));
  for (int i = 0; i < inputs.n; i++) /* centre the float inputs, keep t in (0, 1) */
    if (dtype_is_float(inputs.items[i]->dtype) && strcmp(inputs.items[i]->name, "t"))
      for (int64_t j = 0; j < tensor_numel(inputs.items[i]); j++)
        tensor_set(inputs.items[i], j, 2 * tensor_get(inputs.items[i], j) - 1);
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
  return _cmocka_run_group_tests("fd_models", tests, N, NULL, NULL);
}
