/* Tests of runtime/init.c: the sin-cos table against PyTorch's bit for bit,
 * the initialisation statistics of every SiT-B/2 parameter against the
 * analytic values and against PyTorch's own init functions, determinism,
 * dtypes and errors. Goldens: tests/runtime/init, by tools/gen_init_golden.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elab.h"
#include "init.h"
#include "parse.h"
#include "rng.h"

static const char *source_dir(void) {
  const char *root = getenv("IREPA_SOURCE_DIR");
  return root ? root : "../..";  /* ctest runs in tests/runtime */
}

static FILE *open_golden(const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/runtime/init/%s", source_dir(), name);
  FILE *f = fopen(path, "r");
  if (!f) fail_msg("cannot open golden %s", path);
  return f;
}

static ParamInfo make_param(const char *name, int rank, const int64_t *dims, InitRule rule) {
  ParamInfo p = {0};
  p.name = name;
  p.dtype = DT_F32;
  p.shape = shape_make(rank, dims);
  p.init = rule;
  p.trainable = true;
  return p;
}

static Tensor *new_tensor(const ParamInfo *p, DType dt) {
  int64_t dims[IR_MAX_RANK];
  for (int i = 0; i < p->shape.rank; i++) dims[i] = p->shape.d[i].n;
  RtError err = {{0}};
  Tensor *t = tensor_new(p->name, dt, p->shape.rank, dims, &err);
  if (!t) fail_msg("%s", err.msg);
  return t;
}

static Tensor *init_new(const ParamInfo *p, DType dt, uint64_t seed) {
  Tensor *t = new_tensor(p, dt);
  RtError err = {{0}};
  if (!init_param(t, p, seed, &err)) fail_msg("%s", err.msg);
  return t;
}

/* ---- (a) the sin-cos table ----------------------------------------------- */

/* Both sides compute in float64 and round once to float32, so the float32
 * tables must agree to the last bit (%.9g round-trips a float exactly). */
static void check_sincos_golden(const char *file, int64_t grid, int64_t dim) {
  int64_t dims[3] = {1, grid * grid, dim};
  ParamInfo p = make_param("pos_embed", 3, dims, (InitRule){.kind = INIT_SINCOS_2D, .grid = grid});
  Tensor *t32 = init_new(&p, DT_F32, 0), *t64 = init_new(&p, DT_F64, 0);
  Tensor *t16 = init_new(&p, DT_F16, 0), *tb16 = init_new(&p, DT_BF16, 0);
  FILE *f = open_golden(file);
  char line[128];
  int64_t n = 0, numel = tensor_numel(t32);
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#') continue;
    assert_true(n < numel);
    float want = (float)strtod(line, NULL);
    const float *got = t32->data;
    if (memcmp(&got[n], &want, sizeof want))
      fail_msg("%s: element %lld is %.9g, PyTorch %.9g", file, (long long)n, got[n], want);
    /* f64 keeps the double; f16/bf16 round from the float32 value. */
    assert_true((float)((const double *)t64->data)[n] == want);
    assert_int_equal(((const uint16_t *)t16->data)[n], f32_to_f16(want));
    assert_int_equal(((const uint16_t *)tb16->data)[n], f32_to_bf16(want));
    n++;
  }
  fclose(f);
  assert_int_equal(n, numel);
  tensor_free(t32);
  tensor_free(t64);
  tensor_free(t16);
  tensor_free(tb16);
}

static void test_sincos_g4_d16(void **state) {
  (void)state;
  check_sincos_golden("sincos_g4_d16.txt", 4, 16);
}

static void test_sincos_g16_d64(void **state) {
  (void)state;
  check_sincos_golden("sincos_g16_d64.txt", 16, 64);
}

/* The layout of spec/sit.md §2 spelled out on a few entries, independently
 * of the goldens: token t = i*G + j; channels sin j, cos j, sin i, cos i. */
static void test_sincos_layout(void **state) {
  (void)state;
  const int64_t G = 5, D = 12, Q = 3;
  for (int64_t i = 0; i < G; i++)
    for (int64_t j = 0; j < G; j++)
      for (int64_t k = 0; k < Q; k++) {
        double w = pow(10000.0, -(double)k / Q), t = (double)(i * G + j);
        assert_true(fabs(init_sincos_2d_value(G, D, (int64_t)t, k) - sin(j * w)) < 1e-15);
        assert_true(fabs(init_sincos_2d_value(G, D, (int64_t)t, Q + k) - cos(j * w)) < 1e-15);
        assert_true(fabs(init_sincos_2d_value(G, D, (int64_t)t, 2 * Q + k) - sin(i * w)) < 1e-15);
        assert_true(fabs(init_sincos_2d_value(G, D, (int64_t)t, 3 * Q + k) - cos(i * w)) < 1e-15);
      }
}

/* ---- (b) SiT-B/2 statistics ---------------------------------------------- */

typedef struct {
  char name[128], rule[64];
  long long numel;
  double tmean, tstd, amean, astd, low, high;
  bool seen;
} GoldenStat;

static int load_stats(GoldenStat *g, int cap) {
  FILE *f = open_golden("sit_b2_irepa_init.txt");
  char line[512];
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#') continue;
    assert_true(n < cap);
    GoldenStat *s = &g[n];
    memset(s, 0, sizeof *s);
    int got = sscanf(line, "%127s %lld %63s %lf %lf %lf %lf %lf %lf", s->name, &s->numel, s->rule,
                     &s->tmean, &s->tstd, &s->amean, &s->astd, &s->low, &s->high);
    assert_int_equal(got, 9);
    n++;
  }
  fclose(f);
  return n;
}

/* Which torch.nn.init function implements each rule. torch_default is
 * kaiming_uniform(a=sqrt 5) on weights and uniform(-1/sqrt fan_in, ..) on
 * biases, as nn.Conv2d.reset_parameters does. */
static bool rule_matches(InitKind k, const char *torch_rule) {
  switch (k) {
  case INIT_ZEROS: return !strcmp(torch_rule, "zeros");
  case INIT_ONES: return !strcmp(torch_rule, "ones");
  case INIT_CONSTANT: return !strcmp(torch_rule, "constant");
  case INIT_NORMAL: return !strcmp(torch_rule, "normal");
  case INIT_UNIFORM: return !strcmp(torch_rule, "uniform");
  case INIT_XAVIER_UNIFORM: return !strcmp(torch_rule, "xavier_uniform");
  case INIT_TORCH_DEFAULT:
    return !strcmp(torch_rule, "kaiming_uniform(a=2.23607)") || !strcmp(torch_rule, "uniform");
  case INIT_SINCOS_2D: return !strcmp(torch_rule, "sincos");
  }
  return false;
}

static bool close_rel(double a, double b, double rel) {
  return fabs(a - b) <= rel * fmax(fabs(a), fabs(b)) || a == b;
}

/* A sample's mean and population std against the distribution's. Tolerance:
 * 5 standard errors, SE(mean) = sd/sqrt(n) and SE(sd) ~ sd*sqrt((kurt-1)/(4n))
 * (delta method; kurtosis 3 for a normal, 9/5 for a uniform). Both samples
 * are drawn with fixed seeds, so this is deterministic; 5 SE would leave a
 * false-failure rate of ~1e-6 per check if it were not. */
static void check_sample(const char *who, const char *name, double n, double mean, double sd,
                         double amean, double asd, bool normal) {
  if (asd == 0) {
    if (mean != amean || sd != 0)
      fail_msg("%s %s: constant %g expected, mean %g sd %g", who, name, amean, mean, sd);
    return;
  }
  double kurt = normal ? 3.0 : 1.8;
  double tol_m = 5 * asd / sqrt(n), tol_s = 5 * asd * sqrt((kurt - 1) / (4 * n));
  if (fabs(mean - amean) > tol_m || fabs(sd - asd) > tol_s)
    fail_msg("%s %s: mean %.6g sd %.6g, expected %.6g +- %.2g and %.6g +- %.2g", who, name, mean,
             sd, amean, tol_m, asd, tol_s);
}

static void tensor_moments(const Tensor *t, double *mean, double *sd) {
  int64_t n = tensor_numel(t);
  double s = 0, ss = 0;
  for (int64_t i = 0; i < n; i++) s += tensor_get(t, i);
  *mean = s / (double)n;
  for (int64_t i = 0; i < n; i++) ss += (tensor_get(t, i) - *mean) * (tensor_get(t, i) - *mean);
  *sd = sqrt(ss / (double)n);
}

/* Bounds, and exact zeros (+0.0, as PyTorch's zeros_). */
static void check_support(const Tensor *t, const ParamInfo *p) {
  double lo, hi;
  if (!init_rule_bounds(&p->init, &lo, &hi)) return;
  /* rounding is monotone, so lo <= x <= hi in double gives this in float */
  float flo = (float)lo, fhi = (float)hi;
  const float *x = t->data;
  for (int64_t i = 0, n = tensor_numel(t); i < n; i++) {
    if (!(x[i] >= flo && x[i] <= fhi))
      fail_msg("%s[%lld] = %.9g outside [%.9g, %.9g]", p->name, (long long)i, x[i], flo, fhi);
    if (p->init.kind == INIT_ZEROS && signbit(x[i])) fail_msg("%s: -0 in a zeros() tensor", p->name);
  }
}

static void check_param(const ParamInfo *p, GoldenStat *g, uint64_t seed) {
  if (!rule_matches(p->init.kind, g->rule))
    fail_msg("%s: irepa rule %d, PyTorch ran %s", p->name, (int)p->init.kind, g->rule);
  Tensor *t = init_new(p, DT_F32, seed);
  assert_int_equal(tensor_numel(t), g->numel);
  double mean, sd;
  tensor_moments(t, &mean, &sd);
  if (p->init.kind == INIT_SINCOS_2D) {
    /* the same float32 values: only summation order may differ */
    assert_true(close_rel(mean, g->tmean, 1e-10) && close_rel(sd, g->tstd, 1e-10));
  } else {
    double am, as, lo, hi;
    assert_true(init_rule_moments(&p->init, &am, &as));
    /* the rules agree: analytic values from irepa's InitRule and from the
     * arguments of the PyTorch init call (two formulas, so not bit-equal) */
    if (!close_rel(am, g->amean, 1e-12) || !close_rel(as, g->astd, 1e-12))
      fail_msg("%s: analytic mean/sd %.17g %.17g, PyTorch's %.17g %.17g", p->name, am, as,
               g->amean, g->astd);
    if (init_rule_bounds(&p->init, &lo, &hi))
      assert_true(close_rel(lo, g->low, 1e-12) && close_rel(hi, g->high, 1e-12));
    else
      assert_true(isinf(g->low) && isinf(g->high));
    bool normal = p->init.kind == INIT_NORMAL;
    check_sample("irepa", p->name, (double)g->numel, mean, sd, am, as, normal);
    check_sample("torch", p->name, (double)g->numel, g->tmean, g->tstd, am, as, normal);
    check_support(t, p);
  }
  tensor_free(t);
}

static void test_sit_b2_statistics(void **state) {
  (void)state;
  static GoldenStat golden[512];
  int ng = load_stats(golden, 512);

  Arena arena;
  arena_init(&arena);
  SourceSet sources = {0};
  DiagList diags;
  diag_init(&diags, &arena, &sources);
  char path[4096];
  snprintf(path, sizeof path, "%s/models/sit_b2_irepa.irg", source_dir());
  ParseOptions popt = {NULL, 0};
  Program prog;
  ElabOptions eopt = {NULL, true};
  IrProgram ir;
  if (!irg_load_program(&arena, &diags, path, &popt, &prog) ||
      !elab_program(&arena, &diags, &prog, &eopt, &ir)) {
    diag_print(stderr, &diags);
    fail_msg("cannot elaborate %s", path);
  }
  assert_int_equal(ir.params.n, ng);
  long long total = 0;
  for (int i = 0; i < ir.params.n; i++) {
    const ParamInfo *p = &ir.params.items[i];
    GoldenStat *g = NULL;
    for (int k = 0; k < ng && !g; k++)
      if (!strcmp(golden[k].name, p->name)) g = &golden[k];
    if (!g) fail_msg("%s: not in PyTorch's SiT-B/2", p->name);
    assert_false(g->seen);
    g->seen = true;
    check_param(p, g, 20240601);
    total += g->numel;
  }
  assert_int_equal(total, 131090704);  /* spec/sit.md §7 with the conv projector */
  arena_free(&arena);
}

/* ---- (c) determinism, streams, dtypes, errors ---------------------------- */

static const int64_t W_DIMS[2] = {64, 48};

static void test_determinism(void **state) {
  (void)state;
  InitRule rules[] = {
      {.kind = INIT_XAVIER_UNIFORM, .fan_in = 48, .fan_out = 64},
      {.kind = INIT_NORMAL, .a = 0.5, .b = 0.02},
      {.kind = INIT_TORCH_DEFAULT, .fan_in = 48},
      {.kind = INIT_UNIFORM, .a = -2, .b = 3},
  };
  for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
    ParamInfo p = make_param("blocks.0.mlp.fc1.weight", 2, W_DIMS, rules[r]);
    Tensor *a = init_new(&p, DT_F32, 7), *b = init_new(&p, DT_F32, 7);
    Tensor *c = init_new(&p, DT_F32, 8);
    assert_memory_equal(a->data, b->data, a->nbytes);
    int64_t same = 0, n = tensor_numel(a);
    for (int64_t i = 0; i < n; i++) same += tensor_get(a, i) == tensor_get(c, i);
    assert_true(same < n / 100);
    tensor_free(a);
    tensor_free(b);
    tensor_free(c);
  }
}

/* Element k of a parameter is the documented draw of (seed, FNV-1a(name), k):
 * the values depend on the name, not on the parameter table's order. */
static void test_stream_from_name(void **state) {
  (void)state;
  InitRule rule = {.kind = INIT_XAVIER_UNIFORM, .fan_in = 48, .fan_out = 64};
  ParamInfo p = make_param("blocks.3.attn.proj.weight", 2, W_DIMS, rule);
  ParamInfo q = make_param("blocks.4.attn.proj.weight", 2, W_DIMS, rule);
  assert_true(init_stream(p.name) == rng_fnv1a64(p.name));
  Tensor *tq1 = init_new(&q, DT_F32, 3), *tp = init_new(&p, DT_F32, 3);
  Tensor *tq2 = init_new(&q, DT_F32, 3);  /* after p this time */
  assert_memory_equal(tq1->data, tq2->data, tq1->nbytes);
  assert_memory_not_equal(tp->data, tq1->data, tp->nbytes);
  double b = sqrt(6.0 / (48 + 64));
  for (int64_t i = 0; i < tensor_numel(tp); i++) {
    float want = (float)(-b + 2 * b * rng_uniform_f64(3, rng_fnv1a64(p.name), (uint64_t)i));
    assert_true(((const float *)tp->data)[i] == want);
  }
  InitRule nrule = {.kind = INIT_NORMAL, .a = 1, .b = 0.5};
  ParamInfo r = make_param("y_embedder.embedding_table.weight", 2, W_DIMS, nrule);
  Tensor *tr = init_new(&r, DT_F64, 3);
  for (int64_t i = 0; i < tensor_numel(tr); i++)
    assert_true(((const double *)tr->data)[i] ==
                1 + 0.5 * rng_normal_f64(3, rng_fnv1a64(r.name), (uint64_t)i));
  tensor_free(tq1);
  tensor_free(tq2);
  tensor_free(tp);
  tensor_free(tr);
}

/* Every float dtype holds the double value rounded by tensor_set. */
static void test_dtypes(void **state) {
  (void)state;
  InitRule rules[] = {
      {.kind = INIT_NORMAL, .a = 0, .b = 1},
      {.kind = INIT_TORCH_DEFAULT, .fan_in = 3},
      {.kind = INIT_CONSTANT, .a = 0.1},
      {.kind = INIT_ONES},
  };
  for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
    ParamInfo p = make_param("w", 2, W_DIMS, rules[r]);
    Tensor *t64 = init_new(&p, DT_F64, 11), *t32 = init_new(&p, DT_F32, 11);
    Tensor *t16 = init_new(&p, DT_F16, 11), *tb = init_new(&p, DT_BF16, 11);
    for (int64_t i = 0; i < tensor_numel(t64); i++) {
      float f = (float)((const double *)t64->data)[i];
      assert_true(((const float *)t32->data)[i] == f);
      assert_int_equal(((const uint16_t *)t16->data)[i], f32_to_f16(f));
      assert_int_equal(((const uint16_t *)tb->data)[i], f32_to_bf16(f));
    }
    tensor_free(t64);
    tensor_free(t32);
    tensor_free(t16);
    tensor_free(tb);
  }
}

static void expect_error(Tensor *t, const ParamInfo *p, const char *needle) {
  RtError err = {{0}};
  assert_false(init_param(t, p, 1, &err));
  if (!strstr(err.msg, needle)) fail_msg("error '%s' lacks '%s'", err.msg, needle);
}

static void test_errors(void **state) {
  (void)state;
  InitRule xavier = {.kind = INIT_XAVIER_UNIFORM, .fan_in = 48, .fan_out = 64};
  ParamInfo p = make_param("w", 2, W_DIMS, xavier);
  Tensor *ti = new_tensor(&p, DT_I32);
  expect_error(ti, &p, "not a float type");
  tensor_free(ti);

  int64_t other[2] = {48, 64};
  ParamInfo q = make_param("w", 2, other, xavier);
  Tensor *t = new_tensor(&q, DT_F32);
  expect_error(t, &p, "shape differs");

  q.init = (InitRule){.kind = INIT_NORMAL, .a = 0, .b = -1};
  expect_error(t, &q, "std >= 0");
  q.init = (InitRule){.kind = INIT_UNIFORM, .a = 2, .b = 1};
  expect_error(t, &q, "low <= high");
  q.init = (InitRule){.kind = INIT_XAVIER_UNIFORM, .fan_in = 0, .fan_out = 3};
  expect_error(t, &q, "fan_in");
  q.init = (InitRule){.kind = INIT_SINCOS_2D, .grid = 4};
  expect_error(t, &q, "sincos_2d");
  q.init = (InitRule){.kind = INIT_CONSTANT, .a = NAN};
  expect_error(t, &q, "not finite");
  tensor_free(t);

  int64_t odd[3] = {1, 16, 6};  /* D not a multiple of 4 */
  ParamInfo s = make_param("pos_embed", 3, odd, (InitRule){.kind = INIT_SINCOS_2D, .grid = 4});
  Tensor *ts = new_tensor(&s, DT_F32);
  expect_error(ts, &s, "sincos_2d");
  tensor_free(ts);
}

static void test_moments_of_rules(void **state) {
  (void)state;
  double m, s;
  assert_true(init_rule_moments(&(InitRule){.kind = INIT_UNIFORM, .a = -1, .b = 3}, &m, &s));
  assert_true(m == 1 && close_rel(s, 4 / sqrt(12.0), 1e-15));
  assert_true(init_rule_moments(&(InitRule){.kind = INIT_TORCH_DEFAULT, .fan_in = 768}, &m, &s));
  assert_true(m == 0 && close_rel(s, 1 / sqrt(3.0 * 768), 1e-15));  /* kaiming(a=sqrt 5) */
  InitRule xavier = {.kind = INIT_XAVIER_UNIFORM, .fan_in = 768, .fan_out = 2304};
  assert_true(init_rule_moments(&xavier, &m, &s));
  assert_true(m == 0 && close_rel(s, sqrt(2.0 / (768 + 2304)), 1e-15));
  assert_false(init_rule_moments(&(InitRule){.kind = INIT_SINCOS_2D, .grid = 2}, &m, &s));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sincos_g4_d16),   cmocka_unit_test(test_sincos_g16_d64),
      cmocka_unit_test(test_sincos_layout),   cmocka_unit_test(test_sit_b2_statistics),
      cmocka_unit_test(test_determinism),     cmocka_unit_test(test_stream_from_name),
      cmocka_unit_test(test_dtypes),          cmocka_unit_test(test_errors),
      cmocka_unit_test(test_moments_of_rules),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
