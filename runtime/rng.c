/* rng.c: Philox4x32-10 and the (seed, stream, index) mapping of docs/rng.md.
 * Any change here changes every initialisation and every random op: keep
 * docs/rng.md, tools/gen_init_golden.py and this file in step. */
#include "rng.h"

#include "util.h"

#include <math.h>
#include <string.h>

/* Random123's philox4x32 constants: round multipliers and the Weyl
 * sequence (golden ratio, sqrt(3)-1) that bumps the key between rounds. */
enum {
  PHILOX_ROUNDS = 10,
};
static const uint32_t PHILOX_M0 = 0xD2511F53u, PHILOX_M1 = 0xCD9E8D57u;
static const uint32_t PHILOX_W0 = 0x9E3779B9u, PHILOX_W1 = 0xBB67AE85u;

/* 2*pi as the exact double of the double nearest pi, so that C, Python and
 * CUDA all multiply by the same constant. */
static const double RNG_TWO_PI = 6.283185307179586;

static void philox_round(uint32_t c[4], const uint32_t k[2]) {
  uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
  uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
  uint32_t x0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k[0];
  uint32_t x2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k[1];
  c[0] = x0;
  c[1] = (uint32_t)p1;
  c[2] = x2;
  c[3] = (uint32_t)p0;
}

void rng_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
  uint32_t k[2] = {key[0], key[1]};
  for (int r = 0; r < PHILOX_ROUNDS; r++) {
    if (r > 0) { /* Random123 bumps the key between rounds, not before the first */
      k[0] += PHILOX_W0;
      k[1] += PHILOX_W1;
    }
    philox_round(c, k);
  }
  for (int j = 0; j < 4; j++) out[j] = c[j];
}

void rng_block(uint64_t seed, uint64_t stream, uint64_t i, uint32_t out[4]) {
  const uint32_t ctr[4] = {(uint32_t)i, (uint32_t)(i >> 32), (uint32_t)stream,
                           (uint32_t)(stream >> 32)};
  const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  rng_philox4x32_10(ctr, key, out);
}

/* The top 53 bits of the 64-bit word hi:lo. */
static uint64_t bits53(uint32_t hi, uint32_t lo) {
  return (((uint64_t)hi << 32) | lo) >> 11;
}

float rng_uniform_f32(uint64_t seed, uint64_t stream, uint64_t i) {
  uint32_t x[4];
  rng_block(seed, stream, i, x);
  return (float)(x[0] >> 8) * 0x1p-24f; /* exact: 24 bits fit a float */
}

double rng_uniform_f64(uint64_t seed, uint64_t stream, uint64_t i) {
  uint32_t x[4];
  rng_block(seed, stream, i, x);
  return (double)bits53(x[0], x[1]) * 0x1p-53; /* exact: 53 bits fit a double */
}

/* Box-Muller from one block. u1 = (k + 1) 2^-53 lies in (0, 1], so log(u1)
 * is finite (|z| <= sqrt(106 ln 2) ~ 8.57); u1 = 1 gives exactly 0. Only
 * the cosine is used so that element i needs block i alone. */
static double box_muller(const uint32_t x[4]) {
  double u1 = (double)(bits53(x[0], x[1]) + 1) * 0x1p-53;
  double u2 = (double)bits53(x[2], x[3]) * 0x1p-53;
  return sqrt(-2.0 * log(u1)) * cos(RNG_TWO_PI * u2);
}

double rng_normal_f64(uint64_t seed, uint64_t stream, uint64_t i) {
  uint32_t x[4];
  rng_block(seed, stream, i, x);
  return box_muller(x);
}

float rng_normal_f32(uint64_t seed, uint64_t stream, uint64_t i) {
  return (float)rng_normal_f64(seed, stream, i);
}

bool rng_bernoulli(uint64_t seed, uint64_t stream, uint64_t i, double p) {
  return rng_uniform_f64(seed, stream, i) < p;
}

void rng_fill_uniform_f32(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t first) {
  for (size_t k = 0; k < n; k++) out[k] = rng_uniform_f32(seed, stream, first + k);
}

void rng_fill_uniform_f64(double *out, size_t n, uint64_t seed, uint64_t stream, uint64_t first) {
  for (size_t k = 0; k < n; k++) out[k] = rng_uniform_f64(seed, stream, first + k);
}

void rng_fill_normal_f32(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t first) {
  for (size_t k = 0; k < n; k++) out[k] = rng_normal_f32(seed, stream, first + k);
}

void rng_fill_normal_f64(double *out, size_t n, uint64_t seed, uint64_t stream, uint64_t first) {
  for (size_t k = 0; k < n; k++) out[k] = rng_normal_f64(seed, stream, first + k);
}

uint64_t rng_fnv1a64(const char *s) { return fnv1a64_update(FNV1A64_INIT, s, strlen(s)); }

uint64_t rng_splitmix64(uint64_t *state) {
  uint64_t x = (*state += 0x9E3779B97F4A7C15ull);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
