/* mt19937.c: see mt19937.h. Matsumoto and Nishimura's reference code
 * (mt19937ar.c, 2002) as CPython's Modules/_randommodule.c carries it. */
#include "mt19937.h"

enum { N = 624, M = 397 };
#define MATRIX_A 0x9908b0dfu
#define UPPER_MASK 0x80000000u
#define LOWER_MASK 0x7fffffffu

static void init_genrand(Mt19937 *m, uint32_t s) {
  m->mt[0] = s;
  for (int i = 1; i < N; i++) m->mt[i] = 1812433253u * (m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) + (uint32_t)i;
  m->mti = N;
}

static void init_by_array(Mt19937 *m, const uint32_t *key, int len) {
  init_genrand(m, 19650218u);
  int i = 1, j = 0;
  for (int k = N > len ? N : len; k; k--) {
    m->mt[i] = (m->mt[i] ^ ((m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
    i++, j++;
    if (i >= N) m->mt[0] = m->mt[N - 1], i = 1;
    if (j >= len) j = 0;
  }
  for (int k = N - 1; k; k--) {
    m->mt[i] = (m->mt[i] ^ ((m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
    i++;
    if (i >= N) m->mt[0] = m->mt[N - 1], i = 1;
  }
  m->mt[0] = 0x80000000u; /* non-zero initial state assured */
}

void mt_seed_python(Mt19937 *m, uint64_t seed) {
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  init_by_array(m, key, seed >> 32 ? 2 : 1);
}

/* Regenerates the 624 words of state at once. */
static void twist(Mt19937 *m) {
  static const uint32_t mag01[2] = {0u, MATRIX_A};
  for (int k = 0; k < N; k++) {
    uint32_t y = (m->mt[k] & UPPER_MASK) | (m->mt[(k + 1) % N] & LOWER_MASK);
    m->mt[k] = m->mt[(k + M) % N] ^ (y >> 1) ^ mag01[y & 1u];
  }
  m->mti = 0;
}

uint32_t mt_next_u32(Mt19937 *m) {
  if (m->mti >= N) twist(m);
  uint32_t y = m->mt[m->mti++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

double mt_random(Mt19937 *m) {
  uint32_t a = mt_next_u32(m) >> 5, b = mt_next_u32(m) >> 6;
  return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}
