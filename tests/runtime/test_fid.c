/* Tests of runtime/fid.c against tools/gen_eval_golden.py's numpy/scipy
 * goldens (tests/runtime/golden/eval/): FID against ADM's scipy.sqrtm
 * formula, statistics against numpy.cov, Inception Score against ADM's
 * split loop, precision/recall against a direct numpy k-NN manifold; and
 * the invariants: FID of a set against itself is 0 to rounding, IS of
 * uniform predictions is 1, PR of a set against itself is (1, 1). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fid.h"
#include "npz.h"

static const char *golden(const char *name) {
  static char buf[4096];
  const char *root = getenv("IREPA_SOURCE_DIR");
  snprintf(buf, sizeof buf, "%s/tests/runtime/golden/eval/%s", root ? root : "../..", name);
  return buf;
}

/* The arrays of a golden file, read whole. */
typedef struct {
  NpzFile *f;
  TensorList l;
} Golden;

static Golden load(const char *name) {
  RtError err = {{0}};
  Golden g = {npz_open(golden(name), &err), {0}};
  if (!g.f) fail_msg("%s", err.msg);
  for (int i = 0; i < npz_count(g.f); i++) {
    Tensor *t = npz_read(g.f, npz_array(g.f, i)->name, &err);
    if (!t || !tensorlist_add(&g.l, t, &err)) fail_msg("%s", err.msg);
  }
  return g;
}

static const Tensor *get(const Golden *g, const char *name) {
  const Tensor *t = tensorlist_find(&g->l, name);
  if (!t) fail_msg("golden array %s missing", name);
  return t;
}

static double scalar(const Golden *g, const char *name) { return tensor_get(get(g, name), 0); }

static void unload(Golden *g) {
  tensorlist_free(&g->l);
  npz_close(g->f);
}

static FidStats stats_of(const Golden *g, const char *mu, const char *sigma) {
  FidStats s;
  RtError err = {{0}};
  if (!fid_stats_from(get(g, mu), get(g, sigma), &s, &err)) fail_msg("%s", err.msg);
  return s;
}

static double rel(double got, double want) { return fabs(got - want) / fabs(want); }

/* FID of three random cases (d = 32, 64, and 16 with a singular S1)
 * against scipy.linalg.sqrtm as ADM calls it. */
static void test_fid_vs_scipy(void **state) {
  (void)state;
  Golden g = load("fid_cases.npz");
  for (int c = 0; c < 3; c++) {
    char n[4][16], f[16];
    const char *names[4] = {"mu1", "sigma1", "mu2", "sigma2"};
    for (int k = 0; k < 4; k++) snprintf(n[k], sizeof n[k], "c%d_%s", c, names[k]);
    snprintf(f, sizeof f, "c%d_fid", c);
    FidStats a = stats_of(&g, n[0], n[1]), b = stats_of(&g, n[2], n[3]);
    double fid = 0;
    RtError err = {{0}};
    assert_true(fid_distance(&a, &b, &fid, &err));
    double e = rel(fid, scalar(&g, f));
    printf("fid case %d: d %lld, irepa %.15g, scipy %.15g, relative difference %.2e\n", c, (long long)a.d, fid,
           scalar(&g, f), e);
    /* case 2 (S1 of rank 11 in 16 dimensions): irepa drops eigenvalues within
     * rounding of 0, scipy keeps their roots; a 40-digit mpmath evaluation of
     * the same formula gave 47.23274651409, 7e-10 from irepa, 5e-9 from scipy. */
    assert_true(e <= (c < 2 ? 1e-12 : 1e-8));
    fid_stats_free(&a);
    fid_stats_free(&b);
  }
  unload(&g);
}

static void test_stats_vs_numpy(void **state) {
  (void)state;
  Golden g = load("features.npz");
  const char *sets[2][3] = {{"feat_a", "mu_a", "sigma_a"}, {"feat_b", "mu_b", "sigma_b"}};
  FidStats s[2];
  RtError err = {{0}};
  for (int i = 0; i < 2; i++) {
    assert_true(fid_stats_compute(get(&g, sets[i][0]), &s[i], &err));
    const Tensor *mu = get(&g, sets[i][1]), *sigma = get(&g, sets[i][2]);
    double emu = 0, esig = 0, scale = 0;
    for (int64_t k = 0; k < s[i].d; k++) emu = fmax(emu, fabs(s[i].mu[k] - tensor_get(mu, k)));
    for (int64_t k = 0; k < s[i].d * s[i].d; k++) {
      esig = fmax(esig, fabs(s[i].sigma[k] - tensor_get(sigma, k)));
      scale = fmax(scale, fabs(tensor_get(sigma, k)));
    }
    printf("stats %s: max |mu - numpy| %.1e, max |sigma - numpy.cov| %.1e (of %.2g)\n", sets[i][0], emu, esig, scale);
    assert_true(emu <= 1e-12 && esig <= 1e-12 * scale);
  }
  double fid;
  assert_true(fid_distance(&s[0], &s[1], &fid, &err));
  printf("features: fid %.15g, numpy/scipy %.15g, relative %.1e\n", fid, scalar(&g, "fid_ab"),
         rel(fid, scalar(&g, "fid_ab")));
  assert_true(rel(fid, scalar(&g, "fid_ab")) <= 1e-9);
  /* against itself: 0 up to rounding */
  double self;
  assert_true(fid_distance(&s[0], &s[0], &self, &err));
  double tr = 0;
  for (int64_t k = 0; k < s[0].d; k++) tr += s[0].sigma[k * s[0].d + k];
  printf("fid of feat_a against itself: %.3e (2 tr(sigma) = %.3g)\n", self, 2 * tr);
  assert_true(fabs(self) <= 1e-12 * 2 * tr);
  fid_stats_free(&s[0]);
  fid_stats_free(&s[1]);
  unload(&g);
}

static void test_inception_score(void **state) {
  (void)state;
  Golden g = load("is_logits.npz");
  double mean, std;
  int64_t splits;
  RtError err = {{0}};
  assert_true(fid_inception_score(get(&g, "logits"), (int64_t)scalar(&g, "split"), &mean, &std, &splits, &err));
  printf("IS %.15g +- %.15g over %lld splits; numpy %.15g +- %.15g\n", mean, std, (long long)splits,
         scalar(&g, "is_mean"), scalar(&g, "is_std"));
  assert_int_equal(splits, (int64_t)scalar(&g, "splits"));
  assert_true(rel(mean, scalar(&g, "is_mean")) <= 1e-12);
  assert_true(fabs(std - scalar(&g, "is_std")) <= 1e-12 * mean);
  unload(&g);
  /* uniform predictions (equal logits) score exactly 1 */
  int64_t shape[2] = {1000, 10};
  Tensor *u = tensor_new("logits", DT_F32, 2, shape, &err);
  for (int64_t i = 0; i < 10000; i++) tensor_set(u, i, 3.5);
  assert_true(fid_inception_score(u, 300, &mean, &std, &splits, &err));
  printf("IS of uniform predictions: 1 + %.2e (std %.1e, %lld splits)\n", mean - 1, std, (long long)splits);
  assert_true(fabs(mean - 1) <= 1e-12 && splits == 4);
  /* one-hot predictions of C classes evenly spread score C */
  for (int64_t i = 0; i < 1000; i++)
    for (int j = 0; j < 10; j++) tensor_set(u, i * 10 + j, j == i % 10 ? 0.0 : -1e4);
  assert_true(fid_inception_score(u, 500, &mean, &std, &splits, &err));
  assert_true(fabs(mean - 10) <= 1e-9);
  tensor_free(u);
}

static void test_precision_recall(void **state) {
  (void)state;
  Golden g = load("pr.npz");
  const Tensor *ref = get(&g, "ref"), *smp = get(&g, "smp");
  int k = (int)scalar(&g, "k");
  RtError err = {{0}};
  double *r = malloc(sizeof(double) * 160), worst = 0;
  assert_true(fid_manifold_radii(ref, k, r, &err));
  for (int i = 0; i < 160; i++) worst = fmax(worst, rel(r[i], tensor_get(get(&g, "radii_ref"), i)));
  printf("radii: max relative difference from numpy %.1e\n", worst);
  assert_true(worst <= 1e-12);
  free(r);
  double p, rc;
  assert_true(fid_precision_recall(ref, smp, k, &p, &rc, &err));
  printf("precision %.6f recall %.6f; numpy %.6f %.6f\n", p, rc, scalar(&g, "precision"), scalar(&g, "recall"));
  assert_true(p == scalar(&g, "precision") && rc == scalar(&g, "recall"));
  assert_true(fid_precision_recall(ref, ref, k, &p, &rc, &err));
  assert_true(p == 1 && rc == 1);
  unload(&g);
}

/* More rows than one block (1024), so the blocked passes are exercised:
 * the radii equal a direct O(N²) computation. */
static void test_radii_blocked(void **state) {
  (void)state;
  int64_t shape[2] = {2500, 3};
  RtError err = {{0}};
  Tensor *x = tensor_new("x", DT_F64, 2, shape, &err);
  uint64_t s = 12345;
  for (int64_t i = 0; i < 7500; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    tensor_set(x, i, (double)(s >> 11) / 9007199254740992.0);
  }
  double *r = malloc(sizeof(double) * 2500);
  assert_true(fid_manifold_radii(x, 3, r, &err));
  for (int64_t i = 0; i < 2500; i += 97) {
    double best[4] = {INFINITY, INFINITY, INFINITY, INFINITY};
    for (int64_t j = 0; j < 2500; j++) {
      double d = 0;
      for (int k = 0; k < 3; k++) d += pow(tensor_get(x, i * 3 + k) - tensor_get(x, j * 3 + k), 2);
      for (int a = 0; a < 4; a++)
        if (d < best[a]) {
          for (int b = 3; b > a; b--) best[b] = best[b - 1];
          best[a] = d;
          break;
        }
    }
    assert_true(fabs(r[i] - best[3]) <= 1e-12);
  }
  free(r);
  tensor_free(x);
}

static void test_errors(void **state) {
  (void)state;
  RtError err = {{0}};
  FidStats s;
  int64_t shape[2] = {1, 4};
  Tensor *one = tensor_new("x", DT_F32, 2, shape, &err);
  assert_false(fid_stats_compute(one, &s, &err));
  assert_string_equal(err.msg, "features: a covariance needs at least 2 vectors, found 1");
  double r[1];
  assert_false(fid_manifold_radii(one, 3, r, &err));
  assert_string_equal(err.msg, "features: a 3-nearest-neighbour manifold needs more than 3 vectors, found 1");
  tensor_free(one);
  shape[0] = 5;
  Tensor *nan = tensor_new("x", DT_F64, 2, shape, &err);
  tensor_set(nan, 13, NAN);
  assert_false(fid_stats_compute(nan, &s, &err));
  assert_string_equal(err.msg, "features: row 3 holds NaN or infinity");
  tensor_free(nan);
  int64_t s3[1] = {3}, s4[2] = {4, 4};
  Tensor *mu = tensor_new("mu", DT_F64, 1, s3, &err), *sigma = tensor_new("sigma", DT_F64, 2, s4, &err);
  assert_false(fid_stats_from(mu, sigma, &s, &err));
  assert_string_equal(err.msg, "statistics: expected float mu [D] and sigma [D, D], found mu f64[3] and sigma f64[4,4]");
  tensor_free(mu);
  tensor_free(sigma);
  Tensor *u8 = tensor_new("x", DT_U8, 2, shape, &err);
  double m, sd;
  int64_t ns;
  assert_false(fid_inception_score(u8, 10, &m, &sd, &ns, &err));
  assert_string_equal(err.msg, "logits: expected a float matrix [N, D] (f32 or f64), found u8[5,4]");
  tensor_free(u8);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fid_vs_scipy),     cmocka_unit_test(test_stats_vs_numpy),
      cmocka_unit_test(test_inception_score),  cmocka_unit_test(test_precision_recall),
      cmocka_unit_test(test_radii_blocked),    cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
