/* mt19937.h: the Mersenne Twister MT19937 exactly as CPython's `random`
 * module runs it, so that a procedure written with `random.seed(n)` and
 * `random.random()` (the reference's choice of query points,
 * spec/spatial_metrics.md §3) gives the same numbers here. */
#ifndef IREPA_MT19937_H
#define IREPA_MT19937_H

#include <stdint.h>

typedef struct {
  uint32_t mt[624];
  int mti;
} Mt19937;

/* random.seed(seed) for a non-negative integer seed: init_by_array over
 * the seed's 32-bit words, least significant first (one word for 0). */
void mt_seed_python(Mt19937 *m, uint64_t seed);
/* The next 32-bit output (genrand_uint32). */
uint32_t mt_next_u32(Mt19937 *m);
/* random.random(): a 53-bit double in [0, 1) from two outputs,
 * (a >> 5, b >> 6) → (a·2^26 + b) / 2^53. */
double mt_random(Mt19937 *m);

#endif
