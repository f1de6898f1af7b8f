/* c_ops.h: the compute ops of the C backend that are not GEMMs (those go
 * to BLAS through the runtime): convolutions (float, on common.h's
 * per-element gathers) and attention (double accumulators), parallel over
 * independent outputs with OpenMP.
 * Layouts: x[N,C,H,W], w[O,C,KH,KW], y[N,O,HO,WO]; attention operands are
 * [BH,T,D] (q), [BH,S,D] (k), [BH,S,Dv] (v), batch and heads flattened. */
/* The convolutions: one parallel loop over the outputs of common.h's
 * per-element gathers. */
#define IREPA_CONV_LOOP(name, elem, count)                                   \
  static void name(const float *a, const float *b, float *out, irepa_conv_dims d) { \
    const idx_t n = (count);                                                 \
    _Pragma("omp parallel for schedule(static)")                             \
    for (idx_t i = 0; i < n; i++) out[i] = elem(a, b, d, i);                 \
  }

IREPA_CONV_LOOP(irepa_conv2d, irepa_conv2d_at, d.N * d.O * d.HO * d.WO)
IREPA_CONV_LOOP(irepa_conv2d_bwd_input, irepa_conv2d_bwd_input_at, d.N * d.C * d.H * d.W)
IREPA_CONV_LOOP(irepa_conv2d_bwd_weight, irepa_conv2d_bwd_weight_at, d.O * d.C * d.KH * d.KW)

typedef struct {
  idx_t BH, T, S, D, Dv;
  double scale;
} irepa_attn_dims;

/* Row t of softmax(q k^T scale) into p[0..S); returns nothing, p sums to 1. */
static void irepa_attn_row(const float *q, const float *k, irepa_attn_dims d, double *p) {
  double mx = -1.0 / 0.0, sum = 0;
  for (idx_t j = 0; j < d.S; j++) {
    double acc = 0;
    for (idx_t e = 0; e < d.D; e++) acc += (double)q[e] * k[j * d.D + e];
    p[j] = acc * d.scale;
    if (p[j] > mx) mx = p[j];
  }
  for (idx_t j = 0; j < d.S; j++) sum += p[j] = exp(p[j] - mx);
  for (idx_t j = 0; j < d.S; j++) p[j] /= sum;
}

static int irepa_attention(const float *q, const float *k, const float *v, float *o, irepa_attn_dims d) {
  int failed = 0;
#pragma omp parallel reduction(| : failed)
  {
    double *p = (double *)malloc(sizeof(double) * (size_t)(d.S + d.Dv));
    if (!p) failed = 1;
#pragma omp for collapse(2) schedule(static)
    for (idx_t b = 0; b < d.BH; b++)
      for (idx_t t = 0; t < d.T; t++) {
        if (!p) continue;
        const float *kb = k + b * d.S * d.D, *vb = v + b * d.S * d.Dv;
        double *acc = p + d.S;
        irepa_attn_row(q + (b * d.T + t) * d.D, kb, d, p);
        for (idx_t e = 0; e < d.Dv; e++) acc[e] = 0;
        for (idx_t j = 0; j < d.S; j++)
          for (idx_t e = 0; e < d.Dv; e++) acc[e] += p[j] * vb[j * d.Dv + e];
        for (idx_t e = 0; e < d.Dv; e++) o[(b * d.T + t) * d.Dv + e] = (float)acc[e];
      }
    free(p);
  }
  return failed;
}

/* Gradient of attention w.r.t. q (which 0), k (1) or v (2), given g = dL/do:
 *   dv = P^T g,  dS = P * (g v^T - rowsum(P * g v^T)),  dq = dS k s,  dk = dS^T q s.
 * One (batch, head) per thread, with its P, dS and a double accumulator in
 * scratch (the C backend trades T*S memory per thread for simplicity).
 * Every inner loop runs along a contiguous row, so it vectorises. */
static int irepa_attention_bwd(const float *q, const float *k, const float *v, const float *g, float *r,
                               irepa_attn_dims d, int which) {
  int failed = 0;
  idx_t rows = which == 0 ? d.T : d.S, width = which == 2 ? d.Dv : d.D;
#pragma omp parallel for schedule(static) reduction(| : failed)
  for (idx_t b = 0; b < d.BH; b++) {
    double *P = (double *)malloc(sizeof(double) * (size_t)(2 * d.T * d.S + rows * width));
    if (!P) {
      failed = 1;
      continue;
    }
    double *dS = P + d.T * d.S, *acc = dS + d.T * d.S;
    const float *qb = q + b * d.T * d.D, *kb = k + b * d.S * d.D, *vb = v + b * d.S * d.Dv;
    const float *gb = g + b * d.T * d.Dv;
    for (idx_t i = 0; i < rows * width; i++) acc[i] = 0;
    for (idx_t t = 0; t < d.T; t++) irepa_attn_row(qb + t * d.D, kb, d, P + t * d.S);
    if (which == 2) {
      for (idx_t t = 0; t < d.T; t++)
        for (idx_t j = 0; j < d.S; j++) {
          const double p = P[t * d.S + j];
          for (idx_t e = 0; e < d.Dv; e++) acc[j * d.Dv + e] += p * gb[t * d.Dv + e];
        }
    } else {
      for (idx_t t = 0; t < d.T; t++) {
        double dot = 0;
        for (idx_t j = 0; j < d.S; j++) {
          double dp = 0;
          for (idx_t e = 0; e < d.Dv; e++) dp += (double)gb[t * d.Dv + e] * vb[j * d.Dv + e];
          dS[t * d.S + j] = dp;
          dot += dp * P[t * d.S + j];
        }
        for (idx_t j = 0; j < d.S; j++) dS[t * d.S + j] = P[t * d.S + j] * (dS[t * d.S + j] - dot) * d.scale;
      }
      for (idx_t t = 0; t < d.T; t++)
        for (idx_t j = 0; j < d.S; j++) {
          const double ds = dS[t * d.S + j];
          if (which == 0)
            for (idx_t e = 0; e < d.D; e++) acc[t * d.D + e] += ds * kb[j * d.D + e];
          else
            for (idx_t e = 0; e < d.D; e++) acc[j * d.D + e] += ds * qb[t * d.D + e];
        }
    }
    for (idx_t i = 0; i < rows * width; i++) r[b * rows * width + i] = (float)acc[i];
    free(P);
  }
  return failed;
}
