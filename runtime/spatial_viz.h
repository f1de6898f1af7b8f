/* spatial_viz.h: the pieces of `irepa-run viz-spatialnorm` (spatial_viz.c,
 * spec/spatial_metrics.md §3) that tests check on their own: the
 * reference points, the spatial z-score and the cosine maps. */
#ifndef IREPA_SPATIAL_VIZ_H
#define IREPA_SPATIAL_VIZ_H

#include <stdint.h>

/* The reference's query points: random.seed(seed); (0.5, 0.5) first; then
 * (y, x) pairs of random.random() accepted when their Chebyshev distance
 * to every accepted point is >= 0.15, for at most 500 draws; then
 * unconstrained draws until there are n. ys, xs get the points in [0, 1);
 * rows, cols the grid cells round(y·(H−1)), round(x·(W−1)) (round half to
 * even, as Python's round), clamped to the grid. */
void sv_ref_points(uint64_t seed, int n, int64_t H, int64_t W, double *ys, double *xs, int64_t *rows, int64_t *cols);

/* iREPA's spatial z-score of tokens f[T, D] in place, per channel over the
 * tokens, as models/heads.irg's spatial_zscore: (f − α·μ) / (σ + 1e-6)
 * with σ the unbiased standard deviation about the full mean μ. T >= 2. */
void sv_zscore(float *f, int64_t T, int64_t D, double alpha);

/* map[T] = the cosine of every token with token ref, each token
 * normalised as f / (‖f‖ + 1e-12) (the figure's rule, not the metrics'). */
void sv_cos_map(const float *f, int64_t T, int64_t D, int64_t ref, double *map);

#endif
