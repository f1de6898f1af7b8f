/* spatial_stats.h: the statistics of the spatial-metrics comparison
 * (spec/spatial_metrics.md §2): Pearson's r, Spearman's ρ and the
 * least-squares line of y on x, over the pairs where both are finite. */
#ifndef IREPA_SPATIAL_STATS_H
#define IREPA_SPATIAL_STATS_H

#include <stdbool.h>
#include <stddef.h>

/* Pearson's r of the finite pairs (numpy's corrcoef); NaN with fewer than
 * 2 pairs or when either side is constant. *used: the pairs counted. */
double ss_pearson(const double *x, const double *y, size_t n, size_t *used);
/* Spearman's ρ: Pearson's r of the ranks (ties get their mean rank, as
 * scipy's spearmanr), over the finite pairs. */
double ss_spearman(const double *x, const double *y, size_t n);
/* The degree-1 least-squares fit y ≈ slope·x + intercept (numpy's
 * polyfit(x, y, 1)) of the finite pairs; false with fewer than 2 pairs or
 * a constant x. */
bool ss_linfit(const double *x, const double *y, size_t n, double *slope, double *intercept);

#endif
