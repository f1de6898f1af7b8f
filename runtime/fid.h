/* fid.h: the metrics of the ADM evaluation suite (guided-diffusion's
 * evaluations/evaluator.py) on feature matrices, in double precision:
 * Fréchet distance between Gaussian statistics, Inception Score from
 * class logits, and improved precision/recall (Kynkäänniemi et al., k-NN
 * manifolds). Which network made the features is the caller's business:
 * with irepa's Fashion-MNIST classifier the numbers are *domain* metrics,
 * not comparable with Inception-based ones (docs/cli.md, `irepa-run eval`). */
#ifndef IREPA_FID_H
#define IREPA_FID_H

#include "tensor.h"

/* Gaussian statistics of features: mean and covariance. */
typedef struct {
  int64_t n;     /* vectors they were computed from; 0 when read from a file */
  int64_t d;     /* feature dimension */
  double *mu;    /* [d] */
  double *sigma; /* [d, d], row-major, symmetric */
} FidStats;

/* Mean and unbiased covariance (divided by N - 1, numpy.cov(x,
 * rowvar=False)) of the rows of x [N, D], F32 or F64, N >= 2. Features
 * that are not finite are an error. */
bool fid_stats_compute(const Tensor *x, FidStats *s, RtError *err);
/* Statistics from mu [D] and sigma [D, D] of any float dtype (an ADM
 * reference batch's mu/sigma, or `irepa-run eval --save-stats`). */
bool fid_stats_from(const Tensor *mu, const Tensor *sigma, FidStats *s, RtError *err);
void fid_stats_free(FidStats *s); /* frees the arrays; s itself is the caller's */

/* tr(sqrtm(S1·S2)) for symmetric positive semi-definite S1, S2 [d, d],
 * computed as Σ sqrt(max(λ, 0)) over the eigenvalues λ of
 * sqrt(S1)·S2·sqrt(S1) (fid.c says why this is scipy's value). */
bool fid_trace_sqrt_product(int64_t d, const double *s1, const double *s2, double *trace, RtError *err);
/* |mu1 - mu2|² + tr(S1) + tr(S2) - 2·tr(sqrtm(S1·S2)). */
bool fid_distance(const FidStats *a, const FidStats *b, double *fid, RtError *err);

/* Inception Score of logits [N, C] (F32 or F64): softmax, then in order
 * splits of split_size rows (the last one shorter when N is not a
 * multiple; ADM: 5000), each scoring exp(mean KL(p(y|x) || p(y))) with
 * p(y) the split's mean prediction. *mean and *std (ddof 0) over splits. */
bool fid_inception_score(const Tensor *logits, int64_t split_size, double *mean, double *std, int64_t *splits,
                         RtError *err);

/* Squared distance of each row of x [N, D] to its k-th nearest row, the
 * row itself counting as the 0-th (ADM's ManifoldEstimator radii, k = 3).
 * radii has N entries. Needs N > k. */
bool fid_manifold_radii(const Tensor *x, int k, double *radii, RtError *err);
/* Improved precision and recall with k-NN manifolds: precision is the
 * fraction of samples within the radius of some reference vector, recall
 * the fraction of reference vectors within the radius of some sample
 * (distance <= radius). Pairwise distances are computed in blocks
 * (GEMM for the cross terms), so memory stays O(block) for any N. */
bool fid_precision_recall(const Tensor *ref, const Tensor *samples, int k, double *precision, double *recall,
                          RtError *err);

#endif
