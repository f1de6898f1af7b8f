/* rng.h: counter-based random numbers. Philox4x32-10 (Salmon et al., SC'11,
 * the Random123 constants) is a pure function of (key, counter); on top of
 * it every value is a pure function of (seed, stream, index), so results
 * never depend on thread count, chunking or evaluation order. The exact bit
 * mapping is specified in docs/rng.md so that GPU kernels can reproduce it. */
#ifndef IREPA_RNG_H
#define IREPA_RNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One Philox4x32-10 block: out = philox(ctr, key), 10 rounds. */
void rng_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* The block behind element i of a stream: key = {seed lo, seed hi},
 * counter = {i lo, i hi, stream lo, stream hi}. Every value below is
 * derived from this one block (docs/rng.md). */
void rng_block(uint64_t seed, uint64_t stream, uint64_t i, uint32_t out[4]);

/* U[0,1): 24 random bits (x0 >> 8) as float, or 53 bits (x0:x1 >> 11) as
 * double. Both are exact multiples of 2^-24 / 2^-53, never 1. */
float rng_uniform_f32(uint64_t seed, uint64_t stream, uint64_t i);
double rng_uniform_f64(uint64_t seed, uint64_t stream, uint64_t i);

/* N(0,1) by Box-Muller: r = sqrt(-2 ln u1) with u1 in (0,1] from x0:x1,
 * angle 2 pi u2 with u2 in [0,1) from x2:x3; the cosine branch only.
 * rng_normal_f32 is the double rounded to float. */
double rng_normal_f64(uint64_t seed, uint64_t stream, uint64_t i);
float rng_normal_f32(uint64_t seed, uint64_t stream, uint64_t i);

/* rng_uniform_f64(seed, stream, i) < p: true with probability p (53-bit). */
bool rng_bernoulli(uint64_t seed, uint64_t stream, uint64_t i, double p);

/* Bulk fills: out[k] = the value of element first + k, k < n. Splitting a
 * buffer into chunks with matching `first` gives the same bytes. */
void rng_fill_uniform_f32(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t first);
void rng_fill_uniform_f64(double *out, size_t n, uint64_t seed, uint64_t stream, uint64_t first);
void rng_fill_normal_f32(float *out, size_t n, uint64_t seed, uint64_t stream, uint64_t first);
void rng_fill_normal_f64(double *out, size_t n, uint64_t seed, uint64_t stream, uint64_t first);

/* 64-bit FNV-1a of a string's bytes: turns a name into a stream id. */
uint64_t rng_fnv1a64(const char *s);

/* SplitMix64: advances *state and returns the next 64 bits; for keys
 * derived from seeds (a step's seed, an epoch's shuffle). */
uint64_t rng_splitmix64(uint64_t *state);

#endif
