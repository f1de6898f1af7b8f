/* Tests of runtime/rng.c: Philox4x32-10 known answers, the (seed, stream,
 * index) mapping of docs/rng.md against an independent Python
 * implementation, statistics, and independence of order and streams. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

enum { N_STAT = 1000000 };

/* Opens a file of tests/runtime/init under IREPA_SOURCE_DIR (ctest sets
 * it), else relative to the working directory tests/runtime. */
static FILE *open_golden(const char *name) {
  char path[4096];
  const char *root = getenv("IREPA_SOURCE_DIR");
  snprintf(path, sizeof path, "%s/tests/runtime/init/%s", root ? root : "../..", name);
  FILE *f = fopen(path, "r");
  if (!f) fail_msg("cannot open golden %s", path);
  return f;
}

/* Random123's known-answer vectors for philox4x32-10 (its tests/kat_vectors:
 * counter words, key words, output). Cross-checked three ways: recalled from
 * Random123; the same values in TensorFlow's stateful_random_ops_test, which
 * cites Random123-Boost's test_philox.cpp; and tools/gen_init_golden.py's
 * pure-integer Philox, which asserts them before it writes any golden. */
static const struct {
  uint32_t ctr[4], key[2], out[4];
} KAT[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

static void test_philox_kat(void **state) {
  (void)state;
  for (size_t v = 0; v < sizeof KAT / sizeof KAT[0]; v++) {
    uint32_t out[4];
    rng_philox4x32_10(KAT[v].ctr, KAT[v].key, out);
    for (int j = 0; j < 4; j++) assert_int_equal(out[j], KAT[v].out[j]);
  }
}

/* The stream mapping: key = seed halves, counter = index halves then stream
 * halves. KAT vectors 1 and 2 are blocks of the mapping too. */
static void test_block_mapping_kat(void **state) {
  (void)state;
  uint32_t x[4];
  rng_block(0, 0, 0, x);
  for (int j = 0; j < 4; j++) assert_int_equal(x[j], KAT[0].out[j]);
  rng_block(UINT64_MAX, UINT64_MAX, UINT64_MAX, x);
  for (int j = 0; j < 4; j++) assert_int_equal(x[j], KAT[1].out[j]);
  rng_block(0x299f31d0a4093822u, 0x0370734413198a2eu, 0x85a308d3243f6a88u, x);
  for (int j = 0; j < 4; j++) assert_int_equal(x[j], KAT[2].out[j]);
}

/* Expected values written by tools/gen_init_golden.py (independent Python
 * of docs/rng.md): blocks and uniforms must match bit for bit; the normal
 * within a few ulp, since log/cos may differ between libms. */
static void test_streams_golden(void **state) {
  (void)state;
  FILE *f = open_golden("rng_streams.txt");
  char line[512];
  int nrng = 0, nfnv = 0;
  while (fgets(line, sizeof line, f)) {
    uint64_t seed, stream, idx, uf, ud;
    uint32_t w[4];
    double z;
    char name[256];
    if (sscanf(line, "rng %" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx32 " %" SCNx32 " %" SCNx32
                     " %" SCNx32 " %" SCNx64 " %" SCNx64 " %lf",
               &seed, &stream, &idx, &w[0], &w[1], &w[2], &w[3], &uf, &ud, &z) == 10) {
      uint32_t x[4];
      rng_block(seed, stream, idx, x);
      for (int j = 0; j < 4; j++) assert_int_equal(x[j], w[j]);
      assert_true(rng_uniform_f32(seed, stream, idx) == (float)uf * 0x1p-24f);
      assert_true(rng_uniform_f64(seed, stream, idx) == (double)ud * 0x1p-53);
      double got = rng_normal_f64(seed, stream, idx);
      assert_true(fabs(got - z) <= 4 * DBL_EPSILON * fmax(1.0, fabs(z)));
      assert_true(rng_normal_f32(seed, stream, idx) == (float)got);
      nrng++;
    } else if (sscanf(line, "fnv %255s %" SCNx64, name, &seed) == 2) {
      assert_true(rng_fnv1a64(strcmp(name, "-") ? name : "") == seed);
      nfnv++;
    }
  }
  fclose(f);
  assert_true(nrng >= 10);
  assert_true(nfnv >= 5);
}

/* The float uniform is the double one truncated to 24 bits, both in [0,1). */
static void test_uniform_resolution(void **state) {
  (void)state;
  for (uint64_t i = 0; i < 100000; i++) {
    float f = rng_uniform_f32(9, 3, i);
    double d = rng_uniform_f64(9, 3, i);
    assert_true(f >= 0.0f && f < 1.0f && d >= 0.0 && d < 1.0);
    assert_true((double)f == floor(d * 0x1p24) * 0x1p-24);
  }
}

/* Tolerances: 5 standard errors of the estimator at n = 1e6, with the
 * population moments known exactly; the seed is fixed, so the outcome is
 * deterministic, and 5 SE leaves a margin of ~1e-6 per check had it not been. */
static void moments(const double *x, size_t n, double *mean, double *var) {
  double s = 0, ss = 0;
  for (size_t i = 0; i < n; i++) s += x[i];
  *mean = s / (double)n;
  for (size_t i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
  *var = ss / (double)n;
}

static void test_uniform_stats(void **state) {
  (void)state;
  double *x = malloc(sizeof *x * N_STAT);
  float *xf = malloc(sizeof *xf * N_STAT);
  assert_non_null(x);
  assert_non_null(xf);
  rng_fill_uniform_f64(x, N_STAT, 12345, 1, 0);
  double m, v;
  moments(x, N_STAT, &m, &v);
  /* U[0,1): sd 1/sqrt(12); Var((U-1/2)^2) = 1/80 - 1/144 */
  assert_true(fabs(m - 0.5) < 5 * sqrt(1.0 / 12 / N_STAT));
  assert_true(fabs(v - 1.0 / 12) < 5 * sqrt((1.0 / 80 - 1.0 / 144) / N_STAT));
  rng_fill_uniform_f32(xf, N_STAT, 12345, 2, 0);
  for (size_t i = 0; i < N_STAT; i++) x[i] = xf[i];
  moments(x, N_STAT, &m, &v);
  assert_true(fabs(m - 0.5) < 5 * sqrt(1.0 / 12 / N_STAT));
  assert_true(fabs(v - 1.0 / 12) < 5 * sqrt((1.0 / 80 - 1.0 / 144) / N_STAT));
  free(x);
  free(xf);
}

static void test_normal_stats(void **state) {
  (void)state;
  double *x = malloc(sizeof *x * N_STAT);
  assert_non_null(x);
  rng_fill_normal_f64(x, N_STAT, 777, 5, 0);
  double m, v;
  moments(x, N_STAT, &m, &v);
  assert_true(fabs(m) < 5 * sqrt(1.0 / N_STAT));
  assert_true(fabs(v - 1) < 5 * sqrt(2.0 / N_STAT));  /* Var(Z^2) = 2 */
  /* Shape, not just moments: P(|Z| < 1) = erf(1/sqrt 2), and all finite
   * within the Box-Muller limit sqrt(-2 ln 2^-53). */
  size_t inside = 0;
  for (size_t i = 0; i < N_STAT; i++) {
    assert_true(isfinite(x[i]) && fabs(x[i]) <= sqrt(-2 * log(0x1p-53)));
    inside += fabs(x[i]) < 1;
  }
  double p = erf(1 / sqrt(2.0)), freq = (double)inside / N_STAT;
  assert_true(fabs(freq - p) < 5 * sqrt(p * (1 - p) / N_STAT));
  float *xf = malloc(sizeof *xf * N_STAT);
  assert_non_null(xf);
  rng_fill_normal_f32(xf, N_STAT, 777, 5, 0);
  for (size_t i = 0; i < N_STAT; i++) assert_true(xf[i] == (float)x[i]);
  free(xf);
  free(x);
}

static void test_bernoulli(void **state) {
  (void)state;
  const double p = 0.3;
  size_t hits = 0;
  for (uint64_t i = 0; i < N_STAT; i++) {
    bool b = rng_bernoulli(31, 4, i, p);
    assert_true(b == (rng_uniform_f64(31, 4, i) < p));
    hits += b;
    assert_false(rng_bernoulli(31, 4, i, 0.0));
    assert_true(rng_bernoulli(31, 4, i, 1.0));
  }
  assert_true(fabs((double)hits / N_STAT - p) < 5 * sqrt(p * (1 - p) / N_STAT));
}

/* Same (seed, stream, i) -> same value whatever order or chunking computes
 * it; this is what makes a parallel fill reproduce a serial one. */
static void test_order_independence(void **state) {
  (void)state;
  enum { N = 10007 };
  static double serial[N], chunked[N], shuffled[N], gaussian[N];
  rng_fill_normal_f64(serial, N, 99, 17, 1000);
  for (size_t c = 0; c < N; c += 613)  /* uneven chunks, last one short */
    rng_fill_normal_f64(chunked + c, c + 613 <= N ? 613 : N - c, 99, 17, 1000 + c);
  /* a fixed permutation of the indices: i -> i * 7919 mod N (N is prime) */
  for (size_t k = 0; k < N; k++) {
    size_t i = (k * 7919) % N;
    shuffled[i] = rng_normal_f64(99, 17, 1000 + i);
  }
  for (size_t i = N; i-- > 0;) gaussian[i] = rng_normal_f64(99, 17, 1000 + i);
  assert_memory_equal(serial, chunked, sizeof serial);
  assert_memory_equal(serial, shuffled, sizeof serial);
  assert_memory_equal(serial, gaussian, sizeof serial);
}

/* Pearson correlation of two uniform sequences. */
static double correlation(const double *a, const double *b, size_t n) {
  double ma, va, mb, vb, c = 0;
  moments(a, n, &ma, &va);
  moments(b, n, &mb, &vb);
  for (size_t i = 0; i < n; i++) c += (a[i] - ma) * (b[i] - mb);
  return c / (double)n / sqrt(va * vb);
}

/* Neighbouring streams and seeds give unrelated sequences: no equal values
 * and correlation within 5 / sqrt(n) of 0 (its SE under independence). */
static void test_stream_independence(void **state) {
  (void)state;
  enum { N = 100000 };
  static double a[N], b[N], c[N], d[N];
  rng_fill_uniform_f64(a, N, 1, 0, 0);
  rng_fill_uniform_f64(b, N, 1, 1, 0);
  rng_fill_uniform_f64(c, N, 2, 0, 0);
  rng_fill_uniform_f64(d, N, 1, (uint64_t)1 << 32, 0); /* only the stream's high word differs */
  const double *others[] = {b, c, d};
  for (int o = 0; o < 3; o++) {
    size_t same = 0;
    for (size_t i = 0; i < N; i++) same += a[i] == others[o][i];
    assert_true(same == 0);
    assert_true(fabs(correlation(a, others[o], N)) < 5 / sqrt((double)N));
  }
  /* and within a stream, index i and i+1 are unrelated too */
  assert_true(fabs(correlation(a, a + 1, N - 1)) < 5 / sqrt((double)N));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_philox_kat),         cmocka_unit_test(test_block_mapping_kat),
      cmocka_unit_test(test_streams_golden),     cmocka_unit_test(test_uniform_resolution),
      cmocka_unit_test(test_uniform_stats),      cmocka_unit_test(test_normal_stats),
      cmocka_unit_test(test_bernoulli),          cmocka_unit_test(test_order_independence),
      cmocka_unit_test(test_stream_independence),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
