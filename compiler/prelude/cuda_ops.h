/* cuda_ops.h: device helpers of the CUDA backend: block reductions, and
 * per-element bodies for the compute ops that are not GEMMs. Every
 * reduction helper must be called by all threads of the block (they
 * synchronise) and needs blockDim.x to be a multiple of 32.
 * Layouts are those of c_ops.h. */
/* The C backend has its own vectorisable tanh; CUDA's is fast as it is. */
IREPA_FN float irepa_tanhf(float x) { return tanhf(x); }

/* Warp and block reductions for float and double, sum and max: every
 * thread gets the block's result. Warps reduce by shuffles, warp leaders
 * meet in shared memory, and each warp folds the leaders' values. */
#define IREPA_REDUCTIONS(T, SUFFIX, MAX, NEG_INF)                                     \
  IREPA_FN T irepa_warp_sum##SUFFIX(T v) {                                            \
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);        \
    return v;                                                                         \
  }                                                                                   \
  IREPA_FN T irepa_warp_max##SUFFIX(T v) {                                            \
    for (int o = 16; o > 0; o >>= 1) v = MAX(v, __shfl_xor_sync(0xffffffffu, v, o)); \
    return v;                                                                         \
  }                                                                                   \
  IREPA_FN T irepa_block_sum##SUFFIX(T v) {                                           \
    __shared__ T part[32];                                                            \
    int lane = threadIdx.x & 31, warps = blockDim.x >> 5;                             \
    v = irepa_warp_sum##SUFFIX(v);                                                    \
    __syncthreads(); /* part may still be read by the previous call */                \
    if (lane == 0) part[threadIdx.x >> 5] = v;                                        \
    __syncthreads();                                                                  \
    return irepa_warp_sum##SUFFIX(lane < warps ? part[lane] : (T)0);                  \
  }                                                                                   \
  IREPA_FN T irepa_block_max##SUFFIX(T v) {                                           \
    __shared__ T part[32];                                                            \
    int lane = threadIdx.x & 31, warps = blockDim.x >> 5;                             \
    v = irepa_warp_max##SUFFIX(v);                                                    \
    __syncthreads();                                                                  \
    if (lane == 0) part[threadIdx.x >> 5] = v;                                        \
    __syncthreads();                                                                  \
    return irepa_warp_max##SUFFIX(lane < warps ? part[lane] : (T)(NEG_INF));          \
  }

IREPA_REDUCTIONS(float, , fmaxf, -1.0f / 0.0f)
IREPA_REDUCTIONS(double, _d, fmax, -1.0 / 0.0)

typedef struct {
  idx_t BH, T, S, D, Dv;
  float scale;
} irepa_attn_dims;

IREPA_FN float irepa_dot(const float *a, const float *b, idx_t n) {
  float acc = 0;
  for (idx_t e = 0; e < n; e++) acc += a[e] * b[e];
  return acc;
}

/* Softmax statistics of query row q against the S keys: the running max
 * m and the sum l of exp(s - m), in one pass (online softmax). */
IREPA_FN void irepa_attn_stats(const float *q, const float *k, irepa_attn_dims d, float *m, float *l) {
  float mx = -1.0f / 0.0f, sum = 0;
  for (idx_t j = 0; j < d.S; j++) {
    float s = irepa_dot(q, k + j * d.D, d.D) * d.scale;
    if (s > mx) {
      sum *= expf(mx - s);
      mx = s;
    }
    sum += expf(s - mx);
  }
  *m = mx;
  *l = sum;
}

/* A convolution and its two gradients, one output element at a time, each
 * as a gather over what contributes to it: no two outputs write the same
 * place, so the CUDA threads need no atomics. (The C backend runs them as
 * GEMMs over im2col columns, c_ops.h.) */
IREPA_FN float irepa_conv2d_at(const float *x, const float *w, irepa_conv_dims d, idx_t at) {
  idx_t wo = at % d.WO, ho = at / d.WO % d.HO, o = at / (d.WO * d.HO) % d.O, n = at / (d.WO * d.HO * d.O);
  float acc = 0;
  for (idx_t c = 0; c < d.C; c++)
    for (idx_t i = 0; i < d.KH; i++) {
      idx_t h = ho * d.sh - d.ph + i;
      if (h < 0 || h >= d.H) continue;
      for (idx_t j = 0; j < d.KW; j++) {
        idx_t v = wo * d.sw - d.pw + j;
        if (v < 0 || v >= d.W) continue;
        acc += x[((n * d.C + c) * d.H + h) * d.W + v] * w[((o * d.C + c) * d.KH + i) * d.KW + j];
      }
    }
  return acc;
}

IREPA_FN float irepa_conv2d_bwd_input_at(const float *g, const float *w, irepa_conv_dims d, idx_t at) {
  idx_t v = at % d.W, h = at / d.W % d.H, c = at / (d.W * d.H) % d.C, n = at / (d.W * d.H * d.C);
  float acc = 0;
  for (idx_t i = 0; i < d.KH; i++) {
    idx_t th = h + d.ph - i;
    if (th < 0 || th % d.sh || th / d.sh >= d.HO) continue;
    for (idx_t j = 0; j < d.KW; j++) {
      idx_t tw = v + d.pw - j;
      if (tw < 0 || tw % d.sw || tw / d.sw >= d.WO) continue;
      for (idx_t o = 0; o < d.O; o++)
        acc += g[((n * d.O + o) * d.HO + th / d.sh) * d.WO + tw / d.sw] * w[((o * d.C + c) * d.KH + i) * d.KW + j];
    }
  }
  return acc;
}

IREPA_FN float irepa_conv2d_bwd_weight_at(const float *x, const float *g, irepa_conv_dims d, idx_t at) {
  idx_t j = at % d.KW, i = at / d.KW % d.KH, c = at / (d.KW * d.KH) % d.C, o = at / (d.KW * d.KH * d.C);
  float acc = 0;
  for (idx_t n = 0; n < d.N; n++)
    for (idx_t ho = 0; ho < d.HO; ho++) {
      idx_t h = ho * d.sh - d.ph + i;
      if (h < 0 || h >= d.H) continue;
      for (idx_t wo = 0; wo < d.WO; wo++) {
        idx_t v = wo * d.sw - d.pw + j;
        if (v < 0 || v >= d.W) continue;
        acc += g[((n * d.O + o) * d.HO + ho) * d.WO + wo] * x[((n * d.C + c) * d.H + h) * d.W + v];
      }
    }
  return acc;
}
