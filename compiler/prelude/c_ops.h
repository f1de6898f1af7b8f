/* c_ops.h: the compute ops of the C backend that are not GEMMs (those go
 * to BLAS through the runtime): convolutions (im2col columns and cblas)
 * and attention (cblas for its products), parallel over independent
 * outputs with OpenMP.
 * Layouts: x[N,C,H,W], w[O,C,KH,KW], y[N,O,HO,WO]; attention operands are
 * [BH,T,D] (q), [BH,S,D] (k), [BH,S,Dv] (v), batch and heads flattened. */
/* tanh without a libm call, so that loops of it vectorise (libm's tanhf
 * is a scalar call: a quarter of a small SiT's step went there). An odd
 * Taylor polynomial to x^15 below |x| = 0.5, 1 - 2/(e^2|x| + 1) above;
 * e^y by y = n ln2 + r and Cephes' expf polynomial, n rounded by the
 * 1.5*2^23 trick since GCC will not vectorise a float-to-int conversion
 * under a select. Within 2 ulp of tanh (checked
 * against double tanh at every float in [-12, 12]); +-inf give +-1 and
 * NaN stays NaN. */
static inline float irepa_exp_reduced(float y) { /* -87 <= y <= 88 */
  const float magic = 12582912.0f;
  float t = y * 1.44269504f + magic, n = t - magic;
  float r = y - n * 0.693359375f + n * 2.12194440e-4f;
  float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
             1.6666665459e-1f) * r + 5.0000001201e-1f;
  int32_t bits;
  float scale;
  memcpy(&bits, &t, sizeof bits);
  bits = (bits - 0x4B400000 + 127) * (1 << 23);
  memcpy(&scale, &bits, sizeof scale);
  return (p * r * r + r + 1.0f) * scale;
}

static inline float irepa_tanhf(float x) {
  float a = fabsf(x), z = x * x;
  float small = x + x * z * (-1.0f / 3 + z * (2.0f / 15 + z * (-17.0f / 315 + z * (62.0f / 2835 + z * (-1382.0f / 155925
                 + z * (21844.0f / 6081075 + z * (-929569.0f / 638512875)))))));
  float big = 1.0f - 2.0f / (irepa_exp_reduced(2.0f * (a < 9.0f ? a : 9.0f)) + 1.0f);
  big = a < 9.0f ? big : 1.0f;
  float r = a < 0.5f ? small : x < 0 ? -big : big;
  return x == x ? r : x;
}

typedef struct {
  idx_t BH, T, S, D, Dv;
  double scale;
} irepa_attn_dims;

/* The kernels are loaded into irepa-run, which links OpenBLAS, so cblas
 * resolves there; declared here so the run-time compile needs no headers.
 * The runtime keeps OpenBLAS single-threaded: the parallelism is the
 * module's OpenMP pool, for the kernels and the GEMMs alike. */
enum { IREPA_ROW_MAJOR = 101, IREPA_NO_TRANS = 111, IREPA_TRANS = 112 };
void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);
void cblas_dgemm(int order, int ta, int tb, int m, int n, int k, double alpha, const double *a, int lda,
                 const double *b, int ldb, double beta, double *c, int ldc);

static void irepa_sgemm(int ta, int tb, idx_t m, idx_t n, idx_t k, float alpha, const float *a, const float *b,
                        float *c) {
  cblas_sgemm(IREPA_ROW_MAJOR, ta ? IREPA_TRANS : IREPA_NO_TRANS, tb ? IREPA_TRANS : IREPA_NO_TRANS, (int)m, (int)n,
              (int)k, alpha, a, ta ? (int)m : (int)k, b, tb ? (int)k : (int)n, 0.0f, c, (int)n);
}

/* Rows [r0, r1) and columns [c0, c1) of the row-major C = op(A) op(B),
 * whose full sizes are m, n, k. */
static void irepa_gemm_block(int dbl, int ta, int tb, idx_t m, idx_t n, idx_t k, const char *a, const char *b,
                             char *c, idx_t r0, idx_t r1, idx_t c0, idx_t c1) {
  const idx_t lda = ta ? m : k, ldb = tb ? k : n;
  const size_t es = dbl ? sizeof(double) : sizeof(float);
  a += (size_t)(ta ? r0 : r0 * lda) * es;
  b += (size_t)(tb ? c0 * ldb : c0) * es;
  c += (size_t)(r0 * n + c0) * es;
  const int ota = ta ? IREPA_TRANS : IREPA_NO_TRANS, otb = tb ? IREPA_TRANS : IREPA_NO_TRANS;
  if (dbl)
    cblas_dgemm(IREPA_ROW_MAJOR, ota, otb, (int)(r1 - r0), (int)(c1 - c0), (int)k, 1.0, (const double *)a, (int)lda,
                (const double *)b, (int)ldb, 0.0, (double *)c, (int)n);
  else
    cblas_sgemm(IREPA_ROW_MAJOR, ota, otb, (int)(r1 - r0), (int)(c1 - c0), (int)k, 1.0f, (const float *)a, (int)lda,
                (const float *)b, (int)ldb, 0.0f, (float *)c, (int)n);
}

/* The GEMM kernels of the C backend (backend_host.c calls this through
 * the module): `count` products at the given element offsets, one per
 * thread; a single product is cut into blocks that depend on the sizes
 * only, never on the thread count, so neither do the results: up to 16
 * blocks of at least 2^20 multiply-adds, along the longer side of C. */
void irepa_gemm(int dbl, int ta, int tb, idx_t m, idx_t n, idx_t k, const void *a, const void *b, void *c,
                idx_t count, const idx_t *a_off, const idx_t *b_off) {
  const size_t es = dbl ? sizeof(double) : sizeof(float);
  const char *A = (const char *)a, *B = (const char *)b;
  char *C = (char *)c;
  if (count > 1) {
#pragma omp parallel for schedule(static)
    for (idx_t i = 0; i < count; i++)
      irepa_gemm_block(dbl, ta, tb, m, n, k, A + (size_t)a_off[i] * es, B + (size_t)b_off[i] * es,
                       C + (size_t)(i * m * n) * es, 0, m, 0, n);
    return;
  }
  const double work = (double)m * (double)n * (double)k;
  const idx_t side = m >= n ? m : n;
  idx_t nb = (idx_t)(work / (1 << 20));
  nb = nb < 1 ? 1 : nb > 16 ? 16 : nb;
  const idx_t step = ((side + nb - 1) / nb + 15) / 16 * 16; /* whole SIMD tiles */
  nb = (side + step - 1) / step;
#pragma omp parallel for schedule(static) if (nb > 1)
  for (idx_t i = 0; i < nb; i++) {
    const idx_t lo = i * step, hi = lo + step < side ? lo + step : side;
    if (m >= n)
      irepa_gemm_block(dbl, ta, tb, m, n, k, A, B, C, lo, hi, 0, n);
    else
      irepa_gemm_block(dbl, ta, tb, m, n, k, A, B, C, 0, m, lo, hi);
  }
}

/* The convolutions, as GEMMs over im2col columns (common.h's per-element
 * gathers, kept for CUDA, were a tenth of PyTorch's speed on iREPA's conv
 * projector). col[r][p], r = (c*KH + i)*KW + j, p = ho*WO + wo, holds the
 * input under kernel tap (c, i, j) at output p, 0 in the padding; a 1x1
 * convolution with stride 1 and no padding is its input as it is. */
static int irepa_conv_is_pointwise(irepa_conv_dims d) {
  return d.KH == 1 && d.KW == 1 && d.sh == 1 && d.sw == 1 && d.ph == 0 && d.pw == 0;
}

/* Image x (C,H,W) as columns, row r at col + r * ld. */
static void irepa_im2col(const float *x, irepa_conv_dims d, float *col, idx_t ld) {
  for (idx_t c = 0; c < d.C; c++)
    for (idx_t i = 0; i < d.KH; i++)
      for (idx_t j = 0; j < d.KW; j++) {
        float *row = col + ((c * d.KH + i) * d.KW + j) * ld;
        for (idx_t ho = 0; ho < d.HO; ho++) {
          const idx_t h = ho * d.sh - d.ph + i;
          for (idx_t wo = 0; wo < d.WO; wo++) {
            const idx_t v = wo * d.sw - d.pw + j;
            row[ho * d.WO + wo] = h >= 0 && h < d.H && v >= 0 && v < d.W ? x[(c * d.H + h) * d.W + v] : 0.0f;
          }
        }
      }
}

/* The adjoint: columns added back into image dx (C,H,W), zeroed first. */
static void irepa_col2im(const float *col, irepa_conv_dims d, float *dx) {
  memset(dx, 0, sizeof(float) * (size_t)(d.C * d.H * d.W));
  for (idx_t c = 0; c < d.C; c++)
    for (idx_t i = 0; i < d.KH; i++)
      for (idx_t j = 0; j < d.KW; j++) {
        const float *row = col + ((c * d.KH + i) * d.KW + j) * d.HO * d.WO;
        for (idx_t ho = 0; ho < d.HO; ho++) {
          const idx_t h = ho * d.sh - d.ph + i;
          if (h < 0 || h >= d.H) continue;
          for (idx_t wo = 0; wo < d.WO; wo++) {
            const idx_t v = wo * d.sw - d.pw + j;
            if (v >= 0 && v < d.W) dx[(c * d.H + h) * d.W + v] += row[ho * d.WO + wo];
          }
        }
      }
}

/* y_n (O x P) = w (O x CKK) . col_n (CKK x P), one image per iteration. */
static int irepa_conv2d(const float *x, const float *w, float *y, irepa_conv_dims d) {
  const idx_t P = d.HO * d.WO, R = d.C * d.KH * d.KW, direct = irepa_conv_is_pointwise(d);
  int failed = 0;
#pragma omp parallel reduction(| : failed)
  {
    float *col = direct ? NULL : (float *)malloc(sizeof(float) * (size_t)(R * P));
    if (!direct && !col) failed = 1;
#pragma omp for schedule(static)
    for (idx_t n = 0; n < d.N; n++) {
      if (!direct && !col) continue;
      const float *xn = x + n * d.C * d.H * d.W;
      if (!direct) irepa_im2col(xn, d, col, P);
      irepa_sgemm(0, 0, d.O, P, R, 1.0f, w, direct ? xn : col, y + n * d.O * P);
    }
    free(col);
  }
  return failed;
}

/* dcol_n (CKK x P) = w^T . g_n, added back into dx_n. */
static int irepa_conv2d_bwd_input(const float *g, const float *w, float *dx, irepa_conv_dims d) {
  const idx_t P = d.HO * d.WO, R = d.C * d.KH * d.KW, direct = irepa_conv_is_pointwise(d);
  int failed = 0;
#pragma omp parallel reduction(| : failed)
  {
    float *col = direct ? NULL : (float *)malloc(sizeof(float) * (size_t)(R * P));
    if (!direct && !col) failed = 1;
#pragma omp for schedule(static)
    for (idx_t n = 0; n < d.N; n++) {
      if (!direct && !col) continue;
      float *dxn = dx + n * d.C * d.H * d.W;
      irepa_sgemm(1, 0, R, P, d.O, 1.0f, w, g + n * d.O * P, direct ? dxn : col);
      if (!direct) irepa_col2im(col, d, dxn);
    }
    free(col);
  }
  return failed;
}

/* dw (O x CKK) = G (O x NP) . COL^T, G and COL holding every image's
 * gradient and columns side by side: one GEMM, split by irepa_gemm into
 * blocks that do not depend on the thread count. */
static int irepa_conv2d_bwd_weight(const float *x, const float *g, float *dw, irepa_conv_dims d) {
  const idx_t P = d.HO * d.WO, R = d.C * d.KH * d.KW, NP = d.N * P;
  float *G = (float *)malloc(sizeof(float) * (size_t)(d.O * NP));
  float *col = (float *)malloc(sizeof(float) * (size_t)(R * NP));
  if (!G || !col) {
    free(G);
    free(col);
    return 1;
  }
#pragma omp parallel for schedule(static)
  for (idx_t n = 0; n < d.N; n++) {
    for (idx_t o = 0; o < d.O; o++) memcpy(G + o * NP + n * P, g + (n * d.O + o) * P, sizeof(float) * (size_t)P);
    irepa_im2col(x + n * d.C * d.H * d.W, d, col + n * P, NP);
  }
  irepa_gemm(0, 0, 1, d.O, R, NP, G, col, dw, 1, NULL, NULL);
  free(G);
  free(col);
  return 0;
}

/* p[T,S] = softmax(q k^T scale) of one (batch, head), row by row; the row
 * sums accumulate in double. */
/* e^y for y <= 0 (a softmax logit minus its row maximum), vectorisable:
 * 0 below -87 (e^-87 is 1.6e-38, nothing next to the maximum's 1), NaN
 * stays NaN so that the bad-value check sees it. */
static inline float irepa_exp_nonpos(float y) {
  float e = irepa_exp_reduced(y > -87.0f ? y : -87.0f);
  return y > -87.0f ? e : y == y ? 0.0f : y;
}

/* Row maximum and sum in IREPA_LANES independent partial results, so that
 * the loops vectorise (GCC keeps a single accumulator's order, and so
 * scalar code, without -ffast-math); the order is fixed, so is the result. */
enum { IREPA_LANES = 16 };

static float irepa_row_max(const float *row, idx_t n) {
  float lane[IREPA_LANES];
  for (int l = 0; l < IREPA_LANES; l++) lane[l] = row[0];
  idx_t j = 0;
  for (; j + IREPA_LANES <= n; j += IREPA_LANES)
    for (int l = 0; l < IREPA_LANES; l++) lane[l] = row[j + l] > lane[l] ? row[j + l] : lane[l];
  float mx = row[0];
  for (int l = 0; l < IREPA_LANES; l++) mx = lane[l] > mx ? lane[l] : mx;
  for (; j < n; j++) mx = row[j] > mx ? row[j] : mx;
  return mx;
}

static double irepa_row_sum(const float *row, idx_t n) {
  float lane[IREPA_LANES] = {0};
  idx_t j = 0;
  for (; j + IREPA_LANES <= n; j += IREPA_LANES)
    for (int l = 0; l < IREPA_LANES; l++) lane[l] += row[j + l];
  double sum = 0;
  for (int l = 0; l < IREPA_LANES; l++) sum += lane[l];
  for (; j < n; j++) sum += row[j];
  return sum;
}

static double irepa_row_dot(const float *a, const float *b, idx_t n) {
  float lane[IREPA_LANES] = {0};
  idx_t j = 0;
  for (; j + IREPA_LANES <= n; j += IREPA_LANES)
    for (int l = 0; l < IREPA_LANES; l++) lane[l] += a[j + l] * b[j + l];
  double sum = 0;
  for (int l = 0; l < IREPA_LANES; l++) sum += lane[l];
  for (; j < n; j++) sum += (double)a[j] * b[j];
  return sum;
}

static void irepa_attn_probs(const float *q, const float *k, irepa_attn_dims d, float *p) {
  irepa_sgemm(0, 1, d.T, d.S, d.D, (float)d.scale, q, k, p);
  for (idx_t t = 0; t < d.T; t++) {
    float *row = p + t * d.S;
    const float mx = irepa_row_max(row, d.S);
    for (idx_t j = 0; j < d.S; j++) row[j] = irepa_exp_nonpos(row[j] - mx);
    const float inv = (float)(1.0 / irepa_row_sum(row, d.S));
    for (idx_t j = 0; j < d.S; j++) row[j] *= inv;
  }
}

/* One (batch, head) per iteration, with its T*S probabilities (and, in the
 * backward, their gradient) in per-thread scratch. */
static int irepa_attention(const float *q, const float *k, const float *v, float *o, irepa_attn_dims d) {
  int failed = 0;
#pragma omp parallel reduction(| : failed)
  {
    float *p = (float *)malloc(sizeof(float) * (size_t)(d.T * d.S));
    if (!p) failed = 1;
#pragma omp for schedule(static)
    for (idx_t b = 0; b < d.BH; b++) {
      if (!p) continue;
      irepa_attn_probs(q + b * d.T * d.D, k + b * d.S * d.D, d, p);
      irepa_sgemm(0, 0, d.T, d.Dv, d.S, 1.0f, p, v + b * d.S * d.Dv, o + b * d.T * d.Dv);
    }
    free(p);
  }
  return failed;
}

/* Gradients of attention given g = dL/do, any of dq, dk, dv (NULL: not
 * wanted), from one computation of the probabilities P per (batch, head):
 *   dv = P^T g,  dS = P * (g v^T - rowsum(P * g v^T)) s,  dq = dS k,  dk = dS^T q. */
static int irepa_attention_bwd(const float *q, const float *k, const float *v, const float *g, float *dq,
                               float *dk, float *dv, irepa_attn_dims d) {
  int failed = 0;
#pragma omp parallel reduction(| : failed)
  {
    float *P = (float *)malloc(sizeof(float) * (size_t)(2 * d.T * d.S));
    if (!P) failed = 1;
#pragma omp for schedule(static)
    for (idx_t b = 0; b < d.BH; b++) {
      if (!P) continue;
      float *dS = P + d.T * d.S;
      const float *qb = q + b * d.T * d.D, *kb = k + b * d.S * d.D, *vb = v + b * d.S * d.Dv;
      const float *gb = g + b * d.T * d.Dv;
      irepa_attn_probs(qb, kb, d, P);
      if (dv) irepa_sgemm(1, 0, d.S, d.Dv, d.T, 1.0f, P, gb, dv + b * d.S * d.Dv);
      if (!dq && !dk) continue;
      irepa_sgemm(0, 1, d.T, d.S, d.Dv, 1.0f, gb, vb, dS);
      for (idx_t t = 0; t < d.T; t++) {
        const float *p = P + t * d.S;
        float *ds = dS + t * d.S;
        const float dot = (float)irepa_row_dot(ds, p, d.S), scale = (float)d.scale;
        for (idx_t j = 0; j < d.S; j++) ds[j] = p[j] * (ds[j] - dot) * scale;
      }
      if (dq) irepa_sgemm(0, 0, d.T, d.D, d.S, 1.0f, dS, kb, dq + b * d.T * d.D);
      if (dk) irepa_sgemm(1, 0, d.S, d.D, d.T, 1.0f, dS, qb, dk + b * d.S * d.D);
    }
    free(P);
  }
  return failed;
}
