/* spatial_metrics.c: see spatial_metrics.h. Every metric is a sum over
 * token pairs of the image's cosine Gram matrix, selected by the pair's
 * Manhattan distance on the grid; the grids are small (64 tokens here,
 * 256 in the reference), so plain O(T²) loops over pairs do. */
#include "spatial_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[SM_COUNT] = {"lds", "cds", "srss", "rmsc"};

const char *sm_metric_name(SmMetric m) { return m >= 0 && m < SM_COUNT ? names[m] : "?"; }

SmParams sm_default_params(int64_t H, int64_t W) { return (SmParams){H, W, 6, 8, 1, 1, 6, true}; }

/* Manhattan distance of tokens t and s, row-major on a grid W wide. */
static int64_t dist(int64_t t, int64_t s, int64_t W) { return llabs(t / W - s / W) + llabs(t % W - s % W); }

bool sm_check(SmMetric m, const SmParams *p, RtError *err) {
  if (p->H < 1 || p->W < 1) return rt_fail(err, "token grid %lldx%lld is empty", (long long)p->H, (long long)p->W);
  int64_t far = p->H - 1 + p->W - 1;
  if (m == SM_LDS && p->H * p->W < 2)
    return rt_fail(err, "lds: a %lldx%lld grid has no neighbour pair", (long long)p->H, (long long)p->W);
  if (m == SM_LDS && far < p->far_dist)
    return rt_fail(err,
                   "lds: no token pair is %lld or more apart on a %lldx%lld grid (the farthest are %lld apart); "
                   "lower --far-dist",
                   (long long)p->far_dist, (long long)p->H, (long long)p->W, (long long)far);
  if (m == SM_SRSS && p->d_pos_min > p->d_pos)
    return rt_fail(err, "srss: d_pos_min %lld > d_pos %lld: no positive pair can exist", (long long)p->d_pos_min,
                   (long long)p->d_pos);
  return true;
}

void sm_normalize(const float *u, int64_t T, int64_t D, float eps, float *x) {
  for (int64_t t = 0; t < T; t++) {
    const float *a = u + t * D;
    float ss = 0; /* float32 as torch's norm; it accumulates pairwise, which differs by far less than 1e-6 */
    for (int64_t k = 0; k < D; k++) ss += a[k] * a[k];
    float norm = sqrtf(ss), den = norm > eps ? norm : eps;
    for (int64_t k = 0; k < D; k++) x[t * D + k] = a[k] / den;
  }
}

void sm_gram(const float *x, int64_t T, int64_t D, double *G) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t s = t; s < T; s++) {
      double acc = 0;
      for (int64_t k = 0; k < D; k++) acc += (double)x[t * D + k] * x[s * D + k];
      G[t * T + s] = G[s * T + t] = acc;
    }
}

/* Mean cosine of the (H−1)·W vertical and H·(W−1) horizontal neighbour
 * pairs, each once. */
static double local_mean(const double *G, int64_t H, int64_t W) {
  double sum = 0;
  int64_t n = 0, T = H * W;
  for (int64_t r = 0; r < H; r++)
    for (int64_t c = 0; c < W; c++) {
      int64_t t = r * W + c;
      if (r + 1 < H) sum += G[t * T + t + W], n++;
      if (c + 1 < W) sum += G[t * T + t + 1], n++;
    }
  return n ? sum / (double)n : NAN;
}

double sm_lds(const double *G, const SmParams *p) {
  int64_t T = p->H * p->W, n = 0;
  double far = 0;
  for (int64_t t = 0; t < T; t++)
    for (int64_t s = 0; s < T; s++)
      if (dist(t, s, p->W) >= p->far_dist) far += G[t * T + s], n++;
  return n ? local_mean(G, p->H, p->W) - far / (double)n : NAN;
}

double sm_cds(const double *G, const SmParams *p) {
  /* distances past the farthest pair never occur: no need to count them */
  int64_t T = p->H * p->W, far = p->H + p->W - 2, dmax = p->dmax < far ? p->dmax : far;
  if (dmax < 0) dmax = 0;
  double *sum = calloc((size_t)dmax + 1, sizeof *sum), *S = calloc((size_t)dmax + 1, sizeof *S);
  int64_t *cnt = calloc((size_t)dmax + 1, sizeof *cnt), *x = calloc((size_t)dmax + 1, sizeof *x), m = 0;
  double beta = NAN;
  if (!sum || !S || !cnt || !x) goto done; /* NaN: out of memory, said by nothing better here */
  for (int64_t t = 0; t < T; t++)
    for (int64_t s = 0; s < T; s++) {
      int64_t d = dist(t, s, p->W);
      if (d >= 1 && d <= dmax) sum[d] += G[t * T + s], cnt[d]++;
    }
  for (int64_t d = 1; d <= dmax; d++)
    if (cnt[d]) x[m] = d, S[m] = sum[d] / (double)cnt[d], m++;
  beta = 0; /* no distance occurs: the reference returns zeros */
  if (m) {
    double xm = 0, sm = 0, num = 0, den = 0;
    for (int64_t i = 0; i < m; i++) xm += (double)x[i], sm += S[i];
    xm /= (double)m, sm /= (double)m;
    for (int64_t i = 0; i < m; i++) num += (S[i] - sm) * ((double)x[i] - xm), den += ((double)x[i] - xm) * ((double)x[i] - xm);
    beta = num / fmax(den, 1e-12);
  }
done:
  free(sum), free(S), free(cnt), free(x);
  return beta == 0 ? 0.0 : -beta; /* -0.0 would print as "-0" */
}

/* The anchor t's term, mean over P_t minus mean over N_t; false when
 * either set is empty (t is not a valid anchor). */
static bool srss_anchor(const double *G, const uint8_t *mask, const SmParams *p, int64_t t, double *term) {
  int64_t T = p->H * p->W, np = 0, nn = 0;
  double sp = 0, sn = 0;
  for (int64_t s = 0; s < T; s++) {
    int64_t d = dist(t, s, p->W);
    if (mask[s] && d >= p->d_pos_min && d <= p->d_pos) sp += G[t * T + s], np++;
    if (!mask[s] && d >= p->d_neg) sn += G[t * T + s], nn++;
  }
  if (!np || !nn) return false;
  *term = sp / (double)np - sn / (double)nn;
  return true;
}

double sm_srss(const double *G, const uint8_t *mask, const SmParams *p) {
  int64_t T = p->H * p->W, fg = 0, valid = 0;
  for (int64_t t = 0; t < T; t++) fg += mask[t] != 0;
  if (fg < 2 || T - fg < 1) return NAN;
  double sum = 0, term;
  for (int64_t t = 0; t < T; t++)
    if (mask[t] && srss_anchor(G, mask, p, t, &term)) sum += term, valid++;
  return valid ? sum / (double)valid : NAN;
}

double sm_rmsc(const float *x, int64_t T, int64_t D, bool take_sqrt) {
  double acc = 0;
  for (int64_t k = 0; k < D; k++) {
    double mean = 0, ss = 0;
    for (int64_t t = 0; t < T; t++) mean += x[t * D + k];
    mean /= (double)T;
    for (int64_t t = 0; t < T; t++) ss += (x[t * D + k] - mean) * (x[t * D + k] - mean);
    acc += ss;
  }
  acc /= (double)T; /* mean over tokens of the squared distances, summed over channels above */
  return take_sqrt ? sqrt(acc) : acc;
}

double sm_nanmean(const double *v, int64_t n, int64_t *nan_count) {
  double sum = 0;
  int64_t k = 0, nans = 0;
  for (int64_t i = 0; i < n; i++)
    if (isnan(v[i])) nans++;
    else sum += v[i], k++;
  if (nan_count) *nan_count = nans;
  return k ? sum / (double)k : NAN;
}

/* ---- the runner ----------------------------------------------------------- */

typedef struct {
  float *x8, *x12; /* tokens normalised with ε = 1e-8 and 1e-12 */
  double *G;       /* [T, T] */
} Scratch;

static void one_image(const float *u, const uint8_t *mask, const SmParams *p, int64_t D, const bool *want,
                      Scratch *sc, double out[SM_COUNT]) {
  int64_t T = p->H * p->W;
  for (int m = 0; m < SM_COUNT; m++) out[m] = NAN;
  if (want[SM_LDS] || want[SM_CDS] || want[SM_RMSC]) {
    sm_normalize(u, T, D, 1e-8f, sc->x8);
    if (want[SM_LDS] || want[SM_CDS]) sm_gram(sc->x8, T, D, sc->G);
    if (want[SM_LDS]) out[SM_LDS] = sm_lds(sc->G, p);
    if (want[SM_CDS]) out[SM_CDS] = sm_cds(sc->G, p);
    if (want[SM_RMSC]) out[SM_RMSC] = sm_rmsc(sc->x8, T, D, p->rmsc_sqrt);
  }
  if (want[SM_SRSS] && mask) {
    sm_normalize(u, T, D, 1e-12f, sc->x12);
    sm_gram(sc->x12, T, D, sc->G);
    out[SM_SRSS] = sm_srss(sc->G, mask, p);
  }
}

static bool alloc_series(SmResult *r, const bool *want, bool have_masks, RtError *err) {
  for (int m = 0; m < SM_COUNT; m++) {
    r->m[m].computed = want[m] && (m != SM_SRSS || have_masks);
    if (r->m[m].computed && !(r->m[m].per_image = calloc((size_t)r->n, sizeof(double))))
      return rt_fail(err, "out of memory");
  }
  return true;
}

bool sm_compute(const float *u, int64_t n, int64_t D, const uint8_t *masks, const SmParams *p,
                const bool want[SM_COUNT], SmResult *r, RtError *err) {
  memset(r, 0, sizeof *r);
  r->n = n;
  for (int m = 0; m < SM_COUNT; m++)
    if (want[m] && !sm_check((SmMetric)m, p, err)) return false;
  if (n < 1 || D < 1) return rt_fail(err, "no features: %lld images of width %lld", (long long)n, (long long)D);
  int64_t T = p->H * p->W;
  Scratch sc = {malloc(sizeof(float) * (size_t)(T * D)), malloc(sizeof(float) * (size_t)(T * D)),
                malloc(sizeof(double) * (size_t)(T * T))};
  bool ok = sc.x8 && sc.x12 && sc.G ? alloc_series(r, want, masks != NULL, err) : rt_fail(err, "out of memory");
  for (int64_t i = 0; ok && i < n; i++) {
    double v[SM_COUNT];
    one_image(u + i * T * D, masks ? masks + i * T : NULL, p, D, want, &sc, v);
    for (int m = 0; m < SM_COUNT; m++)
      if (r->m[m].computed) r->m[m].per_image[i] = v[m];
  }
  for (int m = 0; ok && m < SM_COUNT; m++)
    if (r->m[m].computed) r->m[m].mean = sm_nanmean(r->m[m].per_image, n, &r->m[m].nan_count);
  free(sc.x8), free(sc.x12), free(sc.G);
  return ok;
}

void sm_result_free(SmResult *r) {
  for (int m = 0; m < SM_COUNT; m++) free(r->m[m].per_image), r->m[m].per_image = NULL;
}
