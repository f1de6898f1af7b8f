/* spatial_stats.c: see spatial_stats.h. Sums are two-pass (means first),
 * which is exact enough for a handful of encoders. */
#include "spatial_stats.h"

#include <math.h>
#include <stdlib.h>

/* The finite pairs, copied to the front of fx, fy; their number. */
static size_t finite_pairs(const double *x, const double *y, size_t n, double *fx, double *fy) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(x[i]) && isfinite(y[i])) fx[k] = x[i], fy[k] = y[i], k++;
  return k;
}

/* Centred sums: sxx, syy, sxy of k pairs. */
static void moments(const double *x, const double *y, size_t k, double *sxx, double *syy, double *sxy, double *mx,
                    double *my) {
  *mx = *my = *sxx = *syy = *sxy = 0;
  for (size_t i = 0; i < k; i++) *mx += x[i], *my += y[i];
  *mx /= (double)k, *my /= (double)k;
  for (size_t i = 0; i < k; i++) {
    double dx = x[i] - *mx, dy = y[i] - *my;
    *sxx += dx * dx, *syy += dy * dy, *sxy += dx * dy;
  }
}

static double pearson_of(const double *x, const double *y, size_t k) {
  if (k < 2) return NAN;
  double sxx, syy, sxy, mx, my;
  moments(x, y, k, &sxx, &syy, &sxy, &mx, &my);
  return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

double ss_pearson(const double *x, const double *y, size_t n, size_t *used) {
  double *fx = malloc(sizeof(double) * (n + 1)), *fy = malloc(sizeof(double) * (n + 1));
  size_t k = fx && fy ? finite_pairs(x, y, n, fx, fy) : 0;
  double r = pearson_of(fx, fy, k);
  free(fx), free(fy);
  if (used) *used = k;
  return r;
}

/* Mean ranks (1-based) of v[k] into r. */
static void ranks(const double *v, size_t k, double *r) {
  for (size_t i = 0; i < k; i++) {
    size_t less = 0, equal = 0;
    for (size_t j = 0; j < k; j++) less += v[j] < v[i], equal += v[j] == v[i];
    r[i] = (double)less + ((double)equal + 1) / 2; /* ties share the mean of their ranks */
  }
}

double ss_spearman(const double *x, const double *y, size_t n) {
  double *buf = malloc(sizeof(double) * (4 * n + 1));
  if (!buf) return NAN;
  double *fx = buf, *fy = buf + n, *rx = buf + 2 * n, *ry = buf + 3 * n;
  size_t k = finite_pairs(x, y, n, fx, fy);
  ranks(fx, k, rx), ranks(fy, k, ry);
  double r = pearson_of(rx, ry, k);
  free(buf);
  return r;
}

bool ss_linfit(const double *x, const double *y, size_t n, double *slope, double *intercept) {
  double *fx = malloc(sizeof(double) * (n + 1)), *fy = malloc(sizeof(double) * (n + 1));
  size_t k = fx && fy ? finite_pairs(x, y, n, fx, fy) : 0;
  double sxx = 0, syy, sxy = 0, mx = 0, my = 0;
  if (k >= 2) moments(fx, fy, k, &sxx, &syy, &sxy, &mx, &my);
  free(fx), free(fy);
  if (k < 2 || !(sxx > 0)) return false;
  *slope = sxy / sxx;
  *intercept = my - *slope * mx;
  return true;
}
