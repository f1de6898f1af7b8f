/* Tests of runtime/cuda_emu.h through jit_load(JIT_LANG_CUDA_EMU): hand-
 * written CUDA kernels run on the CPU and are checked against plain C. A
 * grid-stride elementwise kernel; a block reduction (shared memory,
 * barriers, warp shuffles), which is also timed; a flash-attention-like
 * kernel with cooperatively loaded shared tiles; atomic scatters; the warp
 * shuffle and vote semantics; multi-dimensional grids and blocks; half and
 * bfloat16 conversions bit for bit against tensor.c; divergent barriers and
 * other misuse, which must be reported and not hang; and the ucontext
 * fallback. Objects are cached under the build tree (IREPA_TEST_CACHE_ROOT). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jit.h"
#include "tensor.h"

#ifndef IREPA_TEST_CACHE_ROOT
#define IREPA_TEST_CACHE_ROOT "."
#endif

/* Kernel sources are written as C tokens and stringised: every kernel
 * file here is one line, which is all the tests need. */
#define CUDA(...) #__VA_ARGS__ "\n"

static JitModule *load(const char *source) {
  RtError err = {{0}};
  JitModule *m = jit_load(JIT_LANG_CUDA_EMU, source, &err);
  if (!m) fail_msg("%s", err.msg);
  return m;
}

static void *sym(JitModule *m, const char *name) {
  RtError err = {{0}};
  void *p = jit_symbol(m, name, &err);
  if (!p) fail_msg("%s", err.msg);
  return p;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A deterministic float in [-1, 1). */
static float val(uint32_t i) {
  uint32_t x = i * 2654435761u + 12345u;
  x ^= x >> 15;
  x *= 2246822519u;
  x ^= x >> 13;
  return (float)(x >> 8) / (float)(1 << 23) - 1.0f;
}

/* ------------------------------------------------------------------ */

static const char *ELEMENTWISE = CUDA(
extern "C" __global__ void axpy_sin(const float *__restrict__ x, float *__restrict__ y, float a, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
    y[i] = a * __ldg(&x[i]) + sinf(x[i]) + rsqrtf(1.0f + x[i] * x[i]);
}
extern "C" int axpy_sin_launch(void *const *args, float a, long long n, unsigned grid, unsigned block) {
  return irepa_emu_launch(grid, block, false, [=] { axpy_sin((const float *)args[0], (float *)args[1], a, n); });
});

static void test_elementwise_grid_stride(void **state) {
  (void)state;
  enum { N = 100003 };
  JitModule *m = load(ELEMENTWISE);
  int (*launch)(void *const *, float, long long, unsigned, unsigned) = sym(m, "axpy_sin_launch");
  float *x = malloc(N * sizeof *x), *y = calloc(N, sizeof *y);
  for (int i = 0; i < N; i++) x[i] = 4 * val((uint32_t)i);
  void *args[] = {x, y};
  assert_true(launch(args, 0.5f, N, 40, 128));
  double maxdiff = 0;
  for (int i = 0; i < N; i++) {
    double want = 0.5 * x[i] + sin(x[i]) + 1 / sqrt(1.0 + (double)x[i] * x[i]);
    maxdiff = fmax(maxdiff, fabs(want - y[i]));
  }
  printf("elementwise: maxdiff %.3g (tolerance 1e-5)\n", maxdiff);
  assert_true(maxdiff < 1e-5);
  free(x);
  free(y);
  jit_unload(m);
}

/* ------------------------------------------------------------------ */

/* Sums each row: warp shuffles, then one value per warp through shared
 * memory, then a shuffle reduction by warp 0; four barriers in all. */
static const char *ROWSUM = CUDA(
extern "C" __global__ void rowsum(const float *__restrict__ in, float *__restrict__ out, long long C) {
  __shared__ float red[32];
  const float *row = in + (long long)blockIdx.x * C;
  float v = 0.0f;
  for (long long i = threadIdx.x; i < C; i += blockDim.x) v += row[i];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < (blockDim.x + 31) / 32 ? red[threadIdx.x] : 0.0f;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  }
  __syncthreads();
  if (threadIdx.x == 0) red[0] = v;
  __syncthreads();
  float total = red[0];
  __syncthreads();
  if (threadIdx.x == blockDim.x - 1) out[blockIdx.x] = total;
}
extern "C" int rowsum_launch(void *const *args, long long C, unsigned grid, unsigned block) {
  return irepa_emu_launch(grid, block, true, [=] { rowsum((const float *)args[0], (float *)args[1], C); });
});

/* Runs rowsum on R x C and checks it; returns the best of 3 times in ms. */
static double check_rowsum(JitModule *m, int R, int C, unsigned block) {
  int (*launch)(void *const *, long long, unsigned, unsigned) = sym(m, "rowsum_launch");
  float *in = malloc((size_t)R * C * sizeof *in), *out = calloc((size_t)R, sizeof *out);
  for (long i = 0; i < (long)R * C; i++) in[i] = val((uint32_t)i);
  void *args[] = {in, out};
  double best = 1e30;
  for (int rep = 0; rep < 3; rep++) {
    double t0 = now_ms();
    assert_true(launch(args, C, (unsigned)R, block));
    best = fmin(best, now_ms() - t0);
  }
  double maxdiff = 0;
  for (int r = 0; r < R; r++) {
    double s = 0;
    for (int c = 0; c < C; c++) s += in[(long)r * C + c];
    maxdiff = fmax(maxdiff, fabs(s - out[r]));
  }
  assert_true(maxdiff < 1e-3);
  free(in);
  free(out);
  return best;
}

static void test_block_reduction(void **state) {
  (void)state;
  JitModule *m = load(ROWSUM);
  check_rowsum(m, 7, 1000, 32);
  check_rowsum(m, 5, 3, 1024); /* most threads add nothing */
  double ms = check_rowsum(m, 512, 1000, 256);
  printf("block reduction, 512 blocks x 256 threads, 4 barriers + 10 shuffles: %.1f ms\n", ms);
  assert_true(ms < 5000); /* about 30 ms on one core; seconds would mean a syscall per switch */
  jit_unload(m);
}

/* The same through the ucontext fallback (what non-x86-64 hosts use). */
static void test_ucontext_fallback(void **state) {
  (void)state;
  const char *old = getenv("IREPA_JIT_EXTRA_FLAGS");
  char *saved = old ? strdup(old) : NULL;
  setenv("IREPA_JIT_EXTRA_FLAGS", "-DIREPA_EMU_UCONTEXT", 1);
  JitModule *m = load(ROWSUM);
  if (saved) setenv("IREPA_JIT_EXTRA_FLAGS", saved, 1);
  else unsetenv("IREPA_JIT_EXTRA_FLAGS");
  free(saved);
  double ms = check_rowsum(m, 64, 1000, 256);
  printf("block reduction through ucontext, 64 blocks x 256 threads: %.1f ms\n", ms);
  jit_unload(m);
}

/* ------------------------------------------------------------------ */

/* One query row per block, one output feature per thread (blockDim.x ==
 * D): K and V tiles are loaded into shared memory by all threads, the
 * first TILE threads score a tile, and every thread folds it into an
 * online softmax. Four barriers per tile, and a ragged last tile. */
static const char *ATTENTION = CUDA(
enum { D = 64, TILE = 32 };
extern "C" __global__ void attn(const float *__restrict__ q, const float *__restrict__ k,
                                const float *__restrict__ v, float *__restrict__ o, int S) {
  __shared__ float qs[D];
  __shared__ float ks[TILE][D + 1];
  __shared__ float vs[TILE][D];
  __shared__ float score[TILE];
  unsigned d = threadIdx.x;
  qs[d] = q[blockIdx.x * D + d] * rsqrtf((float)D);
  float m = -INFINITY, l = 0.0f, acc = 0.0f;
  __syncthreads();
  for (int s0 = 0; s0 < S; s0 += TILE) {
    int n = min(TILE, S - s0);
    for (int j = 0; j < n; j++) {
      ks[j][d] = k[(s0 + j) * D + d];
      vs[j][d] = v[(s0 + j) * D + d];
    }
    __syncthreads();
    if (d < (unsigned)n) {
      float dot = 0.0f;
      for (int e = 0; e < D; e++) dot += qs[e] * ks[d][e];
      score[d] = dot;
    }
    __syncthreads();
    float tile_max = -CUDART_INF_F;
    for (int j = 0; j < n; j++) tile_max = fmaxf(tile_max, score[j]);
    float m_new = fmaxf(m, tile_max), scale = __expf(m - m_new);
    l *= scale;
    acc *= scale;
    for (int j = 0; j < n; j++) {
      float p = __expf(score[j] - m_new);
      l += p;
      acc += p * vs[j][d];
    }
    m = m_new;
    __syncthreads();
  }
  o[blockIdx.x * D + d] = __fdividef(acc, l);
}
extern "C" int attn_launch(void *const *args, int T, int S) {
  return irepa_emu_launch(T, D, true, [=] {
    attn((const float *)args[0], (const float *)args[1], (const float *)args[2], (float *)args[3], S);
  });
});

static void attention_reference(const float *q, const float *k, const float *v, double *o, int t, int S, int D) {
  double *p = malloc((size_t)S * sizeof *p), mx = -INFINITY, sum = 0;
  for (int s = 0; s < S; s++) {
    double dot = 0;
    for (int e = 0; e < D; e++) dot += (double)q[t * D + e] * k[s * D + e];
    p[s] = dot / sqrt(D);
    mx = fmax(mx, p[s]);
  }
  for (int s = 0; s < S; s++) sum += p[s] = exp(p[s] - mx);
  for (int e = 0; e < D; e++) {
    double a = 0;
    for (int s = 0; s < S; s++) a += p[s] * v[s * D + e];
    o[e] = a / sum;
  }
  free(p);
}

static void test_attention_tiles(void **state) {
  (void)state;
  enum { T = 24, S = 100, D = 64 };
  JitModule *m = load(ATTENTION);
  int (*launch)(void *const *, int, int) = sym(m, "attn_launch");
  float *q = malloc(T * D * sizeof *q), *k = malloc(S * D * sizeof *k), *v = malloc(S * D * sizeof *v);
  float *o = calloc(T * D, sizeof *o);
  for (int i = 0; i < T * D; i++) q[i] = 2 * val((uint32_t)i);
  for (int i = 0; i < S * D; i++) {
    k[i] = 2 * val((uint32_t)(i + 100000));
    v[i] = val((uint32_t)(i + 200000));
  }
  void *args[] = {q, k, v, o};
  assert_true(launch(args, T, S));
  double maxdiff = 0, want[D];
  for (int t = 0; t < T; t++) {
    attention_reference(q, k, v, want, t, S, D);
    for (int e = 0; e < D; e++) maxdiff = fmax(maxdiff, fabs(want[e] - o[t * D + e]));
  }
  printf("attention: maxdiff %.3g (tolerance 1e-5)\n", maxdiff);
  assert_true(maxdiff < 1e-5);
  free(q);
  free(k);
  free(v);
  free(o);
  jit_unload(m);
}

/* ------------------------------------------------------------------ */

static const char *SCATTER = CUDA(
extern "C" __global__ void scatter(const int *__restrict__ idx, const float *__restrict__ x, float *fsum,
                                   double *dsum, int *count, unsigned *umax, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
    atomicAdd(&fsum[idx[i]], x[i]);
    atomicAdd(&dsum[idx[i]], (double)x[i]);
    atomicAdd(&count[idx[i]], 1);
    atomicMax(umax, (unsigned)i);
  }
}
extern "C" int scatter_launch(void *const *args, long long n, unsigned grid, unsigned block) {
  return irepa_emu_launch(grid, block, false, [=] {
    scatter((const int *)args[0], (const float *)args[1], (float *)args[2], (double *)args[3], (int *)args[4],
            (unsigned *)args[5], n);
  });
});

static void test_atomic_scatter(void **state) {
  (void)state;
  enum { N = 200000, BINS = 13 };
  JitModule *m = load(SCATTER);
  int (*launch)(void *const *, long long, unsigned, unsigned) = sym(m, "scatter_launch");
  int *idx = malloc(N * sizeof *idx), count[BINS] = {0}, want_count[BINS] = {0};
  float *x = malloc(N * sizeof *x), fsum[BINS] = {0};
  double dsum[BINS] = {0}, want[BINS] = {0};
  unsigned umax = 0;
  for (int i = 0; i < N; i++) {
    idx[i] = (int)((uint32_t)(i * 7919u) % BINS);
    x[i] = val((uint32_t)i);
    want[idx[i]] += x[i];
    want_count[idx[i]]++;
  }
  void *args[] = {idx, x, fsum, dsum, count, &umax};
  assert_true(launch(args, N, 64, 256));
  for (int b = 0; b < BINS; b++) {
    assert_int_equal(count[b], want_count[b]);
    assert_true(fabs(dsum[b] - want[b]) < 1e-9);
    assert_true(fabs(fsum[b] - want[b]) < 0.05); /* float sums in any order */
  }
  assert_int_equal(umax, N - 1);
  free(idx);
  free(x);
  jit_unload(m);
}

/* ------------------------------------------------------------------ */

/* Each lane records what the collectives return; a 2-warp block of 64
 * threads, and a 40-thread block whose second warp has 8 lanes. */
static const char *SHUFFLES = CUDA(
extern "C" __global__ void shuffles(float *out) {
  unsigned t = threadIdx.x, lane = t % 32;
  float *o = out + (blockIdx.x * blockDim.x + t) * 7;
  float f = (float)(100 * t);
  o[0] = __shfl_sync(0xffffffffu, f, 3);
  o[1] = __shfl_xor_sync(0xffffffffu, f, 5);
  o[2] = __shfl_down_sync(0xffffffffu, f, 4, 16);
  o[3] = (float)__shfl_up_sync(0xffffffffu, (int)t, 2);
  o[4] = (float)__shfl_xor_sync(0xffffffffu, (double)t + 0.5, 1);
  unsigned b = __ballot_sync(0xffffffffu, lane % 3 == 0);
  o[5] = (float)__popc(b);
  __syncwarp();
  o[6] = (float)(__all_sync(0xffffffffu, lane < 32) + 2 * __any_sync(0xffffffffu, lane == 7));
}
extern "C" int shuffles_launch(void *const *args, unsigned grid, unsigned block) {
  return irepa_emu_launch(grid, block, true, [=] { shuffles((float *)args[0]); });
});

/* What CUDA returns to lane t of a block of n threads (own value when the
 * source lane does not exist). */
static void shuffle_expect(unsigned t, unsigned n, float e[7]) {
  unsigned lane = t % 32, base = t - lane, lanes = n - base < 32 ? n - base : 32;
#define AT(src) ((src) < lanes ? (float)(base + (src)) : (float)t)
  e[0] = 100 * AT(3u);
  e[1] = 100 * AT(lane ^ 5);
  e[2] = 100 * ((lane % 16) + 4 >= 16 ? (float)t : AT(lane + 4));
  e[3] = lane < 2 ? (float)t : AT(lane - 2);
  e[4] = (float)((double)AT(lane ^ 1) + 0.5);
#undef AT
  unsigned pop = 0;
  for (unsigned i = 0; i < lanes; i++) pop += i % 3 == 0;
  e[5] = (float)pop;
  e[6] = 1 + 2 * (lanes > 7);
}

static void check_shuffles(int (*launch)(void *const *, unsigned, unsigned), unsigned grid, unsigned block) {
  float *out = calloc((size_t)grid * block * 7, sizeof *out), e[7];
  void *args[] = {out};
  assert_true(launch(args, grid, block));
  for (unsigned b = 0; b < grid; b++)
    for (unsigned t = 0; t < block; t++) {
      shuffle_expect(t, block, e);
      for (int j = 0; j < 7; j++)
        if (out[((size_t)b * block + t) * 7 + j] != e[j])
          fail_msg("block %u thread %u result %d: %g, want %g", b, t, j, out[((size_t)b * block + t) * 7 + j], e[j]);
    }
  free(out);
}

static void test_warp_collectives(void **state) {
  (void)state;
  JitModule *m = load(SHUFFLES);
  int (*launch)(void *const *, unsigned, unsigned) = sym(m, "shuffles_launch");
  check_shuffles(launch, 3, 64);
  check_shuffles(launch, 2, 40);
  jit_unload(m);
}

/* ------------------------------------------------------------------ */

static const char *COORDS = CUDA(
extern "C" __global__ void coords(unsigned *out) {
  unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  unsigned n = blockDim.x * blockDim.y * blockDim.z;
  __syncthreads();
  out[b * n + t] = (blockIdx.z << 24) | (blockIdx.y << 20) | (blockIdx.x << 16) | (threadIdx.z << 8) |
                   (threadIdx.y << 4) | threadIdx.x;
}
extern "C" int coords_launch(void *const *args, int sync) {
  dim3 grid(3, 2, 2), block(8, 4, 2);
  if (sync) return irepa_emu_launch(grid, block, true, [=] { coords((unsigned *)args[0]); });
  return 1;
});

static void test_multidimensional(void **state) {
  (void)state;
  JitModule *m = load(COORDS);
  int (*launch)(void *const *, int) = sym(m, "coords_launch");
  unsigned out[12 * 64];
  void *args[] = {out};
  assert_true(launch(args, 1));
  for (unsigned bz = 0, i = 0; bz < 2; bz++)
    for (unsigned by = 0; by < 2; by++)
      for (unsigned bx = 0; bx < 3; bx++)
        for (unsigned tz = 0; tz < 2; tz++)
          for (unsigned ty = 0; ty < 4; ty++)
            for (unsigned tx = 0; tx < 8; tx++, i++)
              assert_int_equal(out[i], bz << 24 | by << 20 | bx << 16 | tz << 8 | ty << 4 | tx);
  jit_unload(m);
}

/* ------------------------------------------------------------------ */

static const char *HALVES = CUDA(
extern "C" __global__ void halves(const float *__restrict__ x, unsigned short *h, unsigned short *bf,
                                  float *hback, float *bfback, long long n) {
  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i >= n) return;
  __half a = __float2half_rn(x[i]);
  __nv_bfloat16 b = __float2bfloat16_rn(x[i]);
  h[i] = __half_as_ushort(a);
  bf[i] = __bfloat16_as_ushort(b);
  hback[i] = __half2float(a);
  bfback[i] = __bfloat162float(b);
}
extern "C" int halves_launch(void *const *args, long long n) {
  return irepa_emu_launch((unsigned)((n + 255) / 256), 256, false, [=] {
    halves((const float *)args[0], (unsigned short *)args[1], (unsigned short *)args[2], (float *)args[3],
           (float *)args[4], n);
  });
});

static float from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static bool same_float(float a, float b) { return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0; }

/* Special values, halfway cases of both formats, subnormals, and 2^18
 * spread bit patterns; every result must equal tensor.c's conversion. */
static void test_half_bf16_round_trip(void **state) {
  (void)state;
  enum { NRAND = 1 << 18 };
  static const uint32_t special[] = {
      0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001,
      0x477fe000, 0x477fefff, 0x477ff000, 0x47800000, 0x33000000, 0x33000001, 0x32ffffff,
      0x387fe000, 0x38800000, 0x3f801000, 0x3f803000, 0x3f808000, 0x3f818000, 0x00000001, 0x7f7fffff};
  size_t ns = sizeof special / sizeof special[0], n = ns + NRAND;
  float *x = malloc(n * sizeof *x), *hback = malloc(n * sizeof *x), *bfback = malloc(n * sizeof *x);
  unsigned short *h = malloc(n * sizeof *h), *bf = malloc(n * sizeof *bf);
  for (size_t i = 0; i < ns; i++) x[i] = from_bits(special[i]);
  for (size_t i = 0; i < NRAND; i++) x[ns + i] = from_bits((uint32_t)i * 2654435761u ^ (uint32_t)(i << 7));
  JitModule *m = load(HALVES);
  int (*launch)(void *const *, long long) = sym(m, "halves_launch");
  void *args[] = {x, h, bf, hback, bfback};
  assert_true(launch(args, (long long)n));
  for (size_t i = 0; i < n; i++) {
    uint16_t want_h = f32_to_f16(x[i]), want_bf = f32_to_bf16(x[i]);
    if (h[i] != want_h || bf[i] != want_bf || !same_float(hback[i], f16_to_f32(want_h)) ||
        !same_float(bfback[i], bf16_to_f32(want_bf)))
      fail_msg("x = %a: half %04x (want %04x), bf16 %04x (want %04x)", x[i], h[i], want_h, bf[i], want_bf);
  }
  free(x);
  free(hback);
  free(bfback);
  free(h);
  free(bf);
  jit_unload(m);
}

/* ------------------------------------------------------------------ */

/* Kernel 0: half the threads leave before a barrier the rest wait at.
 * Kernel 1: only 8 lanes of a warp shuffle. Kernel 2: a barrier in a
 * kernel launched without fibers. Kernel 3: a correct barrier, to show
 * the module still works after a failure is taken. */
static const char *MISUSE = CUDA(
extern "C" __global__ void early_exit(float *out) {
  if (threadIdx.x >= 16) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}
extern "C" __global__ void partial_shuffle(float *out) {
  float v = (float)threadIdx.x;
  if (threadIdx.x % 32 < 8) v = __shfl_xor_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}
extern "C" __global__ void flip(float *out) {
  __shared__ float s[64];
  s[threadIdx.x] = (float)threadIdx.x;
  __syncthreads();
  out[threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}
extern "C" int misuse_launch(void *const *args, int which) {
  float *out = (float *)args[0];
  switch (which) {
  case 0: return irepa_emu_launch(4, 64, true, [=] { early_exit(out); });
  case 1: return irepa_emu_launch(1, 64, true, [=] { partial_shuffle(out); });
  case 2: return irepa_emu_launch(2, 64, false, [=] { flip(out); });
  case 3: return irepa_emu_launch(3, 64, true, [=] { flip(out); });
  default: return irepa_emu_launch(1, 2000, true, [=] { flip(out); });
  }
});

static void expect_misuse(JitModule *m, int which, const char *what) {
  int (*launch)(void *const *, int) = sym(m, "misuse_launch");
  float out[64];
  void *args[] = {out};
  RtError err = {{0}};
  assert_false(launch(args, which));
  assert_false(jit_emu_check(m, &err));
  printf("misuse %d reported: %s\n", which, err.msg);
  if (!strstr(err.msg, what)) fail_msg("message lacks '%s': %s", what, err.msg);
  assert_true(jit_emu_check(m, &err)); /* taken: cleared */
}

static void test_divergent_barrier_reported(void **state) {
  (void)state;
  JitModule *m = load(MISUSE);
  int (*launch)(void *const *, int) = sym(m, "misuse_launch");
  expect_misuse(m, 0, "48 of 64 threads exited while 16 wait at __syncthreads()");
  expect_misuse(m, 1, "and 16 at a warp collective");
  expect_misuse(m, 2, "uses_sync=false");
  expect_misuse(m, 4, "bad launch");
  for (int rep = 0; rep < 2; rep++) { /* the fibers were reset: they still work */
    float out[64];
    void *args[] = {out};
    assert_true(launch(args, 3));
    for (int t = 0; t < 64; t++) assert_true(out[t] == (float)(63 - t));
  }
  RtError err = {{0}};
  assert_true(jit_emu_check(m, &err));
  jit_unload(m);
}

/* ------------------------------------------------------------------ */

static int setup(void **state) {
  (void)state;
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/jit-cache-emu", IREPA_TEST_CACHE_ROOT);
  setenv("IREPA_CACHE_DIR", dir, 1);
  unsetenv("IREPA_JIT_EXTRA_FLAGS");
  /* Blocks in parallel even on one core: schedulers then move between OS
   * threads from launch to launch, which the emulator must survive. Read
   * when the OpenMP runtime loads with the first module. */
  setenv("OMP_NUM_THREADS", "4", 0);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_elementwise_grid_stride), cmocka_unit_test(test_block_reduction),
      cmocka_unit_test(test_ucontext_fallback),       cmocka_unit_test(test_attention_tiles),
      cmocka_unit_test(test_atomic_scatter),          cmocka_unit_test(test_warp_collectives),
      cmocka_unit_test(test_multidimensional),        cmocka_unit_test(test_half_bf16_round_trip),
      cmocka_unit_test(test_divergent_barrier_reported),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
