/* Tests of the spatial metrics (runtime/spatial_metrics.c), their
 * correlation statistics (spatial_stats.c), Python's Mersenne Twister
 * (mt19937.c) and viz-spatialnorm's query points and z-score
 * (spatial_viz.c), against goldens of tools/gen_spatial_golden.py (a NumPy
 * implementation of spec/spatial_metrics.md and CPython's own `random`)
 * in golden/spatial/: every metric per image within 1e-6 (NaN where the
 * spec says NaN), the NaN-ignoring means, random() bit for bit; and the
 * edge cases: grids too small for LDS, all-background masks, zero-norm
 * tokens, no masks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mt19937.h"
#include "safetensors.h"
#include "spatial_metrics.h"
#include "spatial_stats.h"
#include "spatial_viz.h"

static const double TOL = 1e-6;

static StFile *open_golden(const char *name) {
  char path[512];
  snprintf(path, sizeof path, "golden/spatial/%s.safetensors", name);
  RtError err;
  StFile *f = st_open(path, &err);
  if (!f) fail_msg("%s (write it with: python3 tools/gen_spatial_golden.py)", err.msg);
  return f;
}

static const Tensor *get(const StFile *f, const char *name) {
  const Tensor *t = tensorlist_find(st_tensors(f), name);
  if (!t) fail_msg("golden has no tensor '%s'", name);
  return t;
}

/* Copies of a golden tensor's elements (file offsets may be unaligned). */
static float *floats(const Tensor *t) {
  float *p = malloc(sizeof(float) * (size_t)tensor_numel(t));
  for (int64_t i = 0; i < tensor_numel(t); i++) p[i] = (float)tensor_get(t, i);
  return p;
}

static void expect_close(const char *what, double want, double got) {
  if (isnan(want) && isnan(got)) return;
  if (isnan(want) != isnan(got) || fabs(want - got) > TOL) fail_msg("%s: want %.10g, got %.10g", what, want, got);
}

/* One golden case: every metric per image and its mean. */
static double check_case(const char *name) {
  StFile *f = open_golden(name);
  const Tensor *u = get(f, "features"), *m = get(f, "masks"), *p = get(f, "params");
  SmParams sp = sm_default_params((int64_t)tensor_get(p, 0), (int64_t)tensor_get(p, 1));
  sp.far_dist = (int64_t)tensor_get(p, 2), sp.dmax = (int64_t)tensor_get(p, 3), sp.d_pos = (int64_t)tensor_get(p, 4);
  sp.d_pos_min = (int64_t)tensor_get(p, 5), sp.d_neg = (int64_t)tensor_get(p, 6), sp.rmsc_sqrt = tensor_get(p, 7) != 0;
  int64_t n = u->shape[0], T = u->shape[1], D = u->shape[2];
  assert_int_equal(T, sp.H * sp.W);
  float *x = floats(u);
  uint8_t *mask = malloc((size_t)(n * T));
  for (int64_t i = 0; i < n * T; i++) mask[i] = (uint8_t)tensor_get(m, i);
  bool want[SM_COUNT] = {true, true, true, true};
  SmResult r;
  RtError err;
  if (!sm_compute(x, n, D, mask, &sp, want, &r, &err)) fail_msg("%s: %s", name, err.msg);
  double worst = 0;
  char what[96];
  for (int k = 0; k < SM_COUNT; k++) {
    const char *metric = sm_metric_name((SmMetric)k);
    const Tensor *g = get(f, metric);
    for (int64_t i = 0; i < n; i++) {
      snprintf(what, sizeof what, "%s %s image %lld", name, metric, (long long)i);
      expect_close(what, tensor_get(g, i), r.m[k].per_image[i]);
      if (!isnan(tensor_get(g, i))) worst = fmax(worst, fabs(tensor_get(g, i) - r.m[k].per_image[i]));
    }
    snprintf(what, sizeof what, "mean_%s", metric);
    const Tensor *gm = get(f, what);
    snprintf(what, sizeof what, "%s mean %s", name, metric);
    expect_close(what, tensor_get(gm, 0), r.m[k].mean);
  }
  printf("%-9s n %lld, %lldx%lld, D %lld: max |diff| %.3e\n", name, (long long)n, (long long)sp.H, (long long)sp.W,
         (long long)D, worst);
  sm_result_free(&r);
  free(x), free(mask);
  st_close(f);
  return worst;
}

static void test_goldens(void **state) {
  (void)state;
  static const char *const names[] = {"random", "smooth", "checker", "constant", "masks", "zeros", "params", "grid16"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char buf[64];
    snprintf(buf, sizeof buf, "metrics_%s", names[i]);
    check_case(buf);
  }
}

/* SRSS is NaN for all-background, one-foreground, all-foreground images
 * and those with no valid anchor; the mean ignores them. */
static void test_srss_nan_rules(void **state) {
  (void)state;
  StFile *f = open_golden("metrics_masks");
  const Tensor *g = get(f, "srss");
  for (int i = 0; i < 4; i++) assert_true(isnan(tensor_get(g, i)));
  assert_false(isnan(tensor_get(g, 4)));
  st_close(f);
  double v[3] = {NAN, NAN, NAN}, w[3] = {1, NAN, 2};
  int64_t nans;
  assert_true(isnan(sm_nanmean(v, 3, &nans)));
  assert_int_equal(nans, 3);
  assert_true(sm_nanmean(w, 3, &nans) == 1.5);
  assert_int_equal(nans, 1);
}

/* Zero-norm tokens normalise to zero vectors: an all-zero image has
 * LDS = CDS = SRSS = RMSC = 0, not NaN. */
static void test_zero_features(void **state) {
  (void)state;
  float u[16 * 4] = {0};
  uint8_t mask[16] = {1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  SmParams p = sm_default_params(4, 4);
  p.far_dist = 3;
  bool want[SM_COUNT] = {true, true, true, true};
  SmResult r;
  RtError err;
  if (!sm_compute(u, 1, 4, mask, &p, want, &r, &err)) fail_msg("%s", err.msg);
  for (int k = 0; k < SM_COUNT; k++) assert_true(r.m[k].per_image[0] == 0);
  sm_result_free(&r);
}

/* A grid with no pair at far_dist or more is an error before anything is
 * computed, naming the grid; SRSS without masks is skipped, not NaN. */
static void test_small_grid_and_no_masks(void **state) {
  (void)state;
  float u[9 * 2];
  for (int i = 0; i < 18; i++) u[i] = (float)(i % 5) - 2;
  SmParams p = sm_default_params(3, 3); /* farthest pair: 4 < 6 */
  bool want[SM_COUNT] = {true, true, true, true}, no_lds[SM_COUNT] = {false, true, true, true};
  SmResult r;
  RtError err = {{0}};
  assert_false(sm_compute(u, 1, 2, NULL, &p, want, &r, &err));
  assert_non_null(strstr(err.msg, "3x3"));
  assert_non_null(strstr(err.msg, "--far-dist"));
  sm_result_free(&r);
  p = sm_default_params(1, 1);
  assert_false(sm_check(SM_LDS, &p, &err));
  p = sm_default_params(3, 3);
  if (!sm_compute(u, 1, 2, NULL, &p, no_lds, &r, &err)) fail_msg("%s", err.msg);
  assert_false(r.m[SM_LDS].computed);
  assert_false(r.m[SM_SRSS].computed); /* no masks */
  assert_true(r.m[SM_CDS].computed && r.m[SM_RMSC].computed);
  sm_result_free(&r);
  p.d_pos_min = 2, p.d_pos = 1;
  assert_false(sm_check(SM_SRSS, &p, &err));
}

static void test_python_random(void **state) {
  (void)state;
  StFile *f = open_golden("random");
  const Tensor *seeds = get(f, "seeds");
  for (int64_t k = 0; k < tensor_numel(seeds); k++) {
    uint64_t seed = (uint64_t)tensor_get(seeds, k);
    char name[64];
    snprintf(name, sizeof name, "seed%llu", (unsigned long long)seed);
    const Tensor *g = get(f, name);
    Mt19937 m;
    mt_seed_python(&m, seed);
    for (int64_t i = 0; i < tensor_numel(g); i++) {
      double got = mt_random(&m);
      if (got != tensor_get(g, i)) fail_msg("seed %llu draw %lld: want %.17g got %.17g", (unsigned long long)seed, (long long)i, tensor_get(g, i), got);
    }
  }
  st_close(f);
}

static void test_ref_points(void **state) {
  (void)state;
  StFile *f = open_golden("refpoints");
  const Tensor *cases = get(f, "cases");
  for (int64_t c = 0; c < cases->shape[0]; c++) {
    int n = (int)tensor_get(cases, 3 * c);
    int64_t H = (int64_t)tensor_get(cases, 3 * c + 1), W = (int64_t)tensor_get(cases, 3 * c + 2);
    double ys[16], xs[16];
    int64_t rows[16], cols[16];
    sv_ref_points(42, n, H, W, ys, xs, rows, cols);
    char nm[4][32];
    snprintf(nm[0], 32, "ys%lld", (long long)c), snprintf(nm[1], 32, "xs%lld", (long long)c);
    snprintf(nm[2], 32, "rows%lld", (long long)c), snprintf(nm[3], 32, "cols%lld", (long long)c);
    for (int i = 0; i < n; i++) {
      assert_true(ys[i] == tensor_get(get(f, nm[0]), i));
      assert_true(xs[i] == tensor_get(get(f, nm[1]), i));
      assert_int_equal(rows[i], (int64_t)tensor_get(get(f, nm[2]), i));
      assert_int_equal(cols[i], (int64_t)tensor_get(get(f, nm[3]), i));
    }
  }
  st_close(f);
}

static void test_stats(void **state) {
  (void)state;
  StFile *f = open_golden("stats");
  const Tensor *tx = get(f, "x"), *ty = get(f, "y");
  int64_t n = tensor_numel(tx);
  double x[16], y[16], a, b;
  for (int64_t i = 0; i < n; i++) x[i] = tensor_get(tx, i), y[i] = tensor_get(ty, i);
  size_t used;
  double r = ss_pearson(x, y, (size_t)n, &used);
  assert_int_equal(used, (size_t)tensor_get(get(f, "used"), 0));
  assert_true(fabs(r - tensor_get(get(f, "pearson"), 0)) < 1e-12);
  assert_true(fabs(ss_spearman(x, y, (size_t)n) - tensor_get(get(f, "spearman"), 0)) < 1e-12);
  assert_true(ss_linfit(x, y, (size_t)n, &a, &b));
  assert_true(fabs(a - tensor_get(get(f, "slope"), 0)) < 1e-9);
  assert_true(fabs(b - tensor_get(get(f, "intercept"), 0)) < 1e-9);
  double c[3] = {1, 1, 1};
  assert_true(isnan(ss_pearson(c, y, 3, NULL))); /* a constant side has no correlation */
  assert_false(ss_linfit(c, y, 3, &a, &b));
  st_close(f);
}

/* alpha 1 makes every channel zero-mean with unit (unbiased) std, less the
 * 1e-6 of the denominator, as models/heads.irg's spatial_zscore. */
static void test_zscore(void **state) {
  (void)state;
  float f[6 * 2] = {1, 10, 2, 20, 3, 30, 4, 40, 5, 50, 6, 60};
  sv_zscore(f, 6, 2, 1.0);
  for (int k = 0; k < 2; k++) {
    double mu = 0, ss = 0;
    for (int t = 0; t < 6; t++) mu += f[t * 2 + k];
    for (int t = 0; t < 6; t++) ss += (f[t * 2 + k] - mu / 6) * (f[t * 2 + k] - mu / 6);
    assert_true(fabs(mu / 6) < 1e-6);
    assert_true(fabs(sqrt(ss / 5) - 1) < 1e-5);
  }
  float g[3 * 1] = {2, 4, 6};
  sv_zscore(g, 3, 1, 0.6); /* mu 4, std 2: (x - 2.4) / (2 + 1e-6) */
  assert_true(fabs(g[0] - (2 - 2.4) / (2 + 1e-6)) < 1e-6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_goldens),      cmocka_unit_test(test_srss_nan_rules),
      cmocka_unit_test(test_zero_features), cmocka_unit_test(test_small_grid_and_no_masks),
      cmocka_unit_test(test_python_random), cmocka_unit_test(test_ref_points),
      cmocka_unit_test(test_stats),        cmocka_unit_test(test_zscore),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
