/* spatial_metrics.h: the spatial-structure metrics of the iREPA paper
 * (spec/spatial_metrics.md §1) on patch tokens u[T, D] laid out row-major
 * on an H×W grid (token t = r·W + c), one value per image:
 *
 *   LDS   local-vs-distant similarity: mean cosine of the grid's 4-neighbour
 *         pairs minus the mean over ordered pairs at Manhattan distance
 *         >= far_dist (ε = 1e-8);
 *   CDS   correlation-decay slope: minus the least-squares slope of the mean
 *         cosine at distance d against d = 1..dmax (ε = 1e-8);
 *   SRSS  semantic-region self-similarity: over foreground anchors, mean
 *         cosine to foreground tokens at distance in [d_pos_min, d_pos]
 *         minus mean cosine to background tokens at distance >= d_neg
 *         (ε = 1e-12, PyTorch's F.normalize default);
 *   RMSC  RMS spatial contrast: sqrt(mean_t ‖x_t − x̄‖²) of the normalised
 *         tokens (ε = 1e-8).
 *
 * Tokens are normalised x / max(‖x‖, ε) in float32 as the reference does;
 * a zero-norm token therefore becomes the zero vector, whose cosine with
 * anything is 0. The Gram matrix and every mean after it are computed in
 * double (the reference sums in float32; they agree to about 1e-7).
 *
 * NaN is a value here, never an accident: SRSS is NaN for an image with
 * fewer than 2 foreground or no background tokens, or no valid anchor, as
 * the reference defines it; LDS is NaN on a grid with no pair at distance
 * >= far_dist (or no neighbour pair), which sm_check rejects before any
 * image is measured. */
#ifndef IREPA_SPATIAL_METRICS_H
#define IREPA_SPATIAL_METRICS_H

#include "tensor.h"

typedef enum { SM_LDS, SM_CDS, SM_SRSS, SM_RMSC, SM_COUNT } SmMetric;

/* "lds", "cds", "srss", "rmsc" */
const char *sm_metric_name(SmMetric m);

typedef struct {
  int64_t H, W;           /* the token grid; T = H·W */
  int64_t far_dist;       /* LDS (default 6) */
  int64_t dmax;           /* CDS (default 8) */
  int64_t d_pos, d_pos_min, d_neg; /* SRSS (defaults 1, 1, 6) */
  bool rmsc_sqrt;         /* RMSC (default true) */
} SmParams;

/* The reference's defaults on an H×W grid. */
SmParams sm_default_params(int64_t H, int64_t W);

/* Whether metric m can give a number on p's grid: LDS needs a neighbour
 * pair and a pair at distance >= far_dist (max distance H−1 + W−1), SRSS
 * needs d_pos_min <= d_pos; false with a message saying which and why. */
bool sm_check(SmMetric m, const SmParams *p, RtError *err);

/* x = u / max(‖u‖₂, eps) row by row, in float32: u and x are [T, D]. */
void sm_normalize(const float *u, int64_t T, int64_t D, float eps, float *x);
/* G[T, T] = x·xᵀ in double. */
void sm_gram(const float *x, int64_t T, int64_t D, double *G);

/* Each metric on one image's Gram matrix G[T, T] of tokens normalised with
 * that metric's ε (RMSC takes the normalised tokens x[T, D] instead).
 * mask[T] is 1 for foreground. */
double sm_lds(const double *G, const SmParams *p);
double sm_cds(const double *G, const SmParams *p);
double sm_srss(const double *G, const uint8_t *mask, const SmParams *p);
double sm_rmsc(const float *x, int64_t T, int64_t D, bool take_sqrt);

/* The runner's result for one metric: per-image values and their mean,
 * NaN-ignoring (the mean of the non-NaN values; NaN when every value is
 * NaN, which the JSON writer reports as null with a note). */
typedef struct {
  bool computed;         /* false: skipped (SRSS without masks) */
  double *per_image;     /* [n] */
  double mean;
  int64_t nan_count;
} SmSeries;

typedef struct {
  int64_t n;
  SmSeries m[SM_COUNT];
} SmResult;

/* The metrics in `want` (want[m] true) for features u[n, H·W, D] (and
 * masks[n, H·W] of 0/1, or NULL: SRSS is then skipped). Checks each wanted
 * metric with sm_check first. *r is zeroed first; sm_result_free it also
 * after a failure. */
bool sm_compute(const float *u, int64_t n, int64_t D, const uint8_t *masks, const SmParams *p,
                const bool want[SM_COUNT], SmResult *r, RtError *err);
void sm_result_free(SmResult *r);

/* The NaN-ignoring mean of the runner (spec: nanmean when any value is
 * NaN, else the mean); NaN when n is 0 or every value is NaN. */
double sm_nanmean(const double *v, int64_t n, int64_t *nan_count);

#endif
