/* fid.c: see fid.h. Everything is double precision; features of either
 * float dtype are converted a block of rows at a time, so no N x N or
 * N x D double copy is ever made.
 *
 * The trace of the matrix square root. ADM (and pytorch-fid, TTUR) take
 * tr(scipy.linalg.sqrtm(S1 @ S2)), the principal square root of a
 * non-symmetric product, computed by a Schur decomposition, and keep its
 * real part. For symmetric PSD S1, S2 the product S1·S2 = A·B with
 * A = sqrt(S1), B = sqrt(S1)·S2 has the eigenvalues of B·A =
 * sqrt(S1)·S2·sqrt(S1), a symmetric PSD matrix (AB and BA share their
 * eigenvalues, also when S1 is singular). So its eigenvalues λ are real
 * and >= 0, and the principal root's trace is Σ sqrt(λ). Here both steps
 * are symmetric eigendecompositions (LAPACK dsyevd, from OpenBLAS),
 * which are backward stable. Rounding can leave λ slightly below zero;
 * scipy's root of such a λ is imaginary, whose real part (all ADM keeps)
 * is 0, and so is ours. Eigenvalues within rounding of 0 (|λ| <=
 * d·ε·max|λ|) count as 0: a covariance of fewer vectors than dimensions
 * is singular, and the roots of its noise eigenvalues, ~1e-8 each, would
 * make the FID of a set against itself -1e-7 instead of 0. scipy keeps
 * them; on such matrices the two differ by about that much (1e-9
 * relative in tests/runtime/test_fid.c), elsewhere by 1e-13. ADM retries with 1e-6
 * added to both diagonals when sqrtm returns non-finite values (a
 * singular product); this route never does, so for a singular product
 * the two differ by that regularisation, O(1e-6 · d) at most. */
#include "fid.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK's symmetric eigensolver, as OpenBLAS exports it (Fortran ABI:
 * arguments by reference, hidden string lengths at the end). */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len,
                    size_t uplo_len);

enum { BLOCK = 1024, MAX_DIM = 46340 /* d*d fits in int */ };

/* ---- feature access ------------------------------------------------------- */

static bool check_matrix(const Tensor *x, const char *what, RtError *err) {
  if (!x || x->rank != 2 || (x->dtype != DT_F32 && x->dtype != DT_F64)) {
    char buf[64];
    return rt_fail(err, "%s: expected a float matrix [N, D] (f32 or f64), found %s", what,
                   x ? tensor_type_str(x, buf, sizeof buf) : "nothing");
  }
  if (x->shape[1] < 1 || x->shape[1] > MAX_DIM) return rt_fail(err, "%s: dimension %lld", what, (long long)x->shape[1]);
  return true;
}

/* Rows [first, first + n) of x as doubles; false at the first non-finite value. */
static bool rows_f64(const Tensor *x, int64_t first, int64_t n, double *dst, int64_t *bad) {
  int64_t d = x->shape[1], m = n * d, base = first * d;
  for (int64_t i = 0; i < m; i++) {
    double v;
    if (x->dtype == DT_F64) memcpy(&v, (const double *)x->data + base + i, sizeof v);
    else {
      float f;
      memcpy(&f, (const float *)x->data + base + i, sizeof f);
      v = f;
    }
    if (!isfinite(v)) return *bad = first + i / d, false;
    dst[i] = v;
  }
  return true;
}

static bool fail_nonfinite(const char *what, int64_t row, RtError *err) {
  return rt_fail(err, "%s: row %lld holds NaN or infinity", what, (long long)row);
}

/* ---- statistics ----------------------------------------------------------- */

void fid_stats_free(FidStats *s) {
  if (!s) return;
  free(s->mu);
  free(s->sigma);
  s->mu = s->sigma = NULL;
}

static bool stats_alloc(FidStats *s, int64_t n, int64_t d, RtError *err) {
  s->n = n, s->d = d;
  s->mu = calloc((size_t)d, sizeof *s->mu);
  s->sigma = calloc((size_t)(d * d), sizeof *s->sigma);
  if (s->mu && s->sigma) return true;
  fid_stats_free(s);
  return rt_fail(err, "out of memory for %lld x %lld statistics", (long long)d, (long long)d);
}

static bool mean_of(const Tensor *x, double *mu, double *buf, RtError *err) {
  int64_t n = x->shape[0], d = x->shape[1], bad = 0;
  for (int64_t r = 0; r < n; r += BLOCK) {
    int64_t m = n - r < BLOCK ? n - r : BLOCK;
    if (!rows_f64(x, r, m, buf, &bad)) return fail_nonfinite("features", bad, err);
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < d; j++) mu[j] += buf[i * d + j];
  }
  for (int64_t j = 0; j < d; j++) mu[j] /= (double)n;
  return true;
}

/* Σ (x - mu)ᵀ (x - mu) over blocks of centred rows (dsyrk, upper half). */
static void scatter_of(const Tensor *x, const double *mu, double *sigma, double *buf) {
  int64_t n = x->shape[0], d = x->shape[1], bad;
  for (int64_t r = 0; r < n; r += BLOCK) {
    int64_t m = n - r < BLOCK ? n - r : BLOCK;
    rows_f64(x, r, m, buf, &bad);
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < d; j++) buf[i * d + j] -= mu[j];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)m, 1.0, buf, (int)d, 1.0, sigma, (int)d);
  }
}

bool fid_stats_compute(const Tensor *x, FidStats *s, RtError *err) {
  memset(s, 0, sizeof *s);
  if (!check_matrix(x, "features", err)) return false;
  int64_t n = x->shape[0], d = x->shape[1];
  if (n < 2) return rt_fail(err, "features: a covariance needs at least 2 vectors, found %lld", (long long)n);
  double *buf = malloc(sizeof(double) * (size_t)(BLOCK * d));
  if (!buf) return rt_fail(err, "out of memory");
  bool ok = stats_alloc(s, n, d, err) && mean_of(x, s->mu, buf, err);
  if (ok) scatter_of(x, s->mu, s->sigma, buf);
  free(buf);
  if (!ok) return fid_stats_free(s), false;
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = i; j < d; j++) {
      double c = s->sigma[i * d + j] / (double)(n - 1);
      s->sigma[i * d + j] = s->sigma[j * d + i] = c;
    }
  return true;
}

bool fid_stats_from(const Tensor *mu, const Tensor *sigma, FidStats *s, RtError *err) {
  memset(s, 0, sizeof *s);
  char a[64], b[64];
  if (!mu || !sigma || mu->rank != 1 || sigma->rank != 2 || sigma->shape[0] != mu->shape[0] ||
      sigma->shape[1] != mu->shape[0] || !dtype_is_float(mu->dtype) || !dtype_is_float(sigma->dtype))
    return rt_fail(err, "statistics: expected float mu [D] and sigma [D, D], found mu %s and sigma %s",
                   mu ? tensor_type_str(mu, a, sizeof a) : "none", sigma ? tensor_type_str(sigma, b, sizeof b) : "none");
  int64_t d = mu->shape[0];
  if (d < 1 || d > MAX_DIM) return rt_fail(err, "statistics: dimension %lld", (long long)d);
  if (!stats_alloc(s, 0, d, err)) return false;
  for (int64_t i = 0; i < d; i++) s->mu[i] = tensor_get(mu, i);
  for (int64_t i = 0; i < d * d; i++) s->sigma[i] = tensor_get(sigma, i);
  for (int64_t i = 0; i < d * d; i++)
    if (!isfinite(s->sigma[i]) || (i < d && !isfinite(s->mu[i])))
      return fid_stats_free(s), rt_fail(err, "statistics: mu or sigma holds NaN or infinity");
  return true;
}

/* ---- the Fréchet distance ------------------------------------------------- */

/* Eigenvalues of the symmetric a (d x d, overwritten by the eigenvectors,
 * column j the j-th, when vectors). */
static bool eigh(int d, double *a, double *w, bool vectors, RtError *err) {
  int lwork = -1, liwork = -1, info = 0, iq;
  double q;
  const char *jobz = vectors ? "V" : "N";
  dsyevd_(jobz, "U", &d, a, &d, w, &q, &lwork, &iq, &liwork, &info, 1, 1);
  if (info != 0) return rt_fail(err, "LAPACK dsyevd workspace query failed (info %d)", info);
  lwork = (int)q, liwork = iq;
  double *work = malloc(sizeof(double) * (size_t)lwork);
  int *iwork = malloc(sizeof(int) * (size_t)liwork);
  if (work && iwork) dsyevd_(jobz, "U", &d, a, &d, w, work, &lwork, iwork, &liwork, &info, 1, 1);
  bool ok = work && iwork ? info == 0 || rt_fail(err, "LAPACK dsyevd did not converge (info %d)", info)
                          : rt_fail(err, "out of memory");
  free(work);
  free(iwork);
  return ok;
}

static void symmetrize(int64_t d, const double *s, double *out) {
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++) out[i * d + j] = 0.5 * (s[i * d + j] + s[j * d + i]);
}

/* Eigenvalues at or below d·ε·max|λ| are rounding noise around 0 (the
 * rank tolerance of numpy.linalg.matrix_rank): their square roots, of
 * order sqrt(ε), would otherwise add up to 1e-8·tr in a singular case. */
static double noise_floor(int d, const double *w) {
  double m = 0;
  for (int i = 0; i < d; i++) m = fmax(m, fabs(w[i]));
  return d * DBL_EPSILON * m;
}

/* r = sqrt(s) = V diag(sqrt(λ)) Vᵀ, as B·Bᵀ with B = V scaled by the
 * fourth roots (λ within the noise floor taken as 0); v, w are scratch. */
static bool sqrt_psd(int d, const double *s, double *r, double *v, double *w, RtError *err) {
  symmetrize(d, s, v);
  if (!eigh(d, v, w, true, err)) return false;
  double floor = noise_floor(d, w);
  for (int j = 0; j < d; j++) {
    double k = w[j] > floor ? sqrt(sqrt(w[j])) : 0;
    for (int i = 0; i < d; i++) v[(size_t)j * d + i] *= k;
  }
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, d, d, d, 1.0, v, d, v, d, 0.0, r, d);
  return true;
}

bool fid_trace_sqrt_product(int64_t d64, const double *s1, const double *s2, double *trace, RtError *err) {
  if (d64 < 1 || d64 > MAX_DIM) return rt_fail(err, "statistics: dimension %lld", (long long)d64);
  int d = (int)d64;
  size_t dd = (size_t)d * (size_t)d;
  double *r = malloc(sizeof(double) * dd), *v = malloc(sizeof(double) * dd), *t = malloc(sizeof(double) * dd),
         *w = malloc(sizeof(double) * (size_t)d);
  bool ok = r && v && t && w ? sqrt_psd(d, s1, r, v, w, err) : rt_fail(err, "out of memory");
  if (ok) {
    symmetrize(d, s2, v);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, r, d, v, d, 0.0, t, d);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, t, d, r, d, 0.0, v, d);
    symmetrize(d, v, t);
    ok = eigh(d, t, w, false, err);
  }
  double sum = 0, floor = ok ? noise_floor(d, w) : 0;
  for (int i = 0; ok && i < d; i++) sum += w[i] > floor ? sqrt(w[i]) : 0;
  *trace = sum;
  free(r);
  free(v);
  free(t);
  free(w);
  return ok;
}

bool fid_distance(const FidStats *a, const FidStats *b, double *fid, RtError *err) {
  if (a->d != b->d)
    return rt_fail(err, "the statistics have different dimensions (%lld and %lld): features of different networks?",
                   (long long)a->d, (long long)b->d);
  double tr = 0, diff = 0, traces = 0;
  if (!fid_trace_sqrt_product(a->d, a->sigma, b->sigma, &tr, err)) return false;
  for (int64_t i = 0; i < a->d; i++) {
    double m = a->mu[i] - b->mu[i];
    diff += m * m;
    traces += a->sigma[i * a->d + i] + b->sigma[i * a->d + i];
  }
  *fid = diff + traces - 2 * tr;
  return true;
}

/* ---- Inception Score ------------------------------------------------------ */

/* log softmax of one row of logits (double), into logp. */
static void log_softmax(const Tensor *logits, int64_t row, double *logp) {
  int64_t c = logits->shape[1];
  double m = -INFINITY, s = 0;
  for (int64_t j = 0; j < c; j++) {
    logp[j] = tensor_get(logits, row * c + j);
    if (logp[j] > m) m = logp[j];
  }
  for (int64_t j = 0; j < c; j++) s += exp(logp[j] - m);
  double lse = m + log(s);
  for (int64_t j = 0; j < c; j++) logp[j] -= lse;
}

/* exp(mean over rows of KL(p || marginal)) for rows [first, first + n). */
static double split_score(const Tensor *logits, int64_t first, int64_t n, double *logp, double *marg) {
  int64_t c = logits->shape[1];
  memset(marg, 0, sizeof(double) * (size_t)c);
  for (int64_t i = first; i < first + n; i++) {
    log_softmax(logits, i, logp);
    for (int64_t j = 0; j < c; j++) marg[j] += exp(logp[j]);
  }
  for (int64_t j = 0; j < c; j++) marg[j] = log(marg[j] / (double)n);
  double kl = 0;
  for (int64_t i = first; i < first + n; i++) {
    log_softmax(logits, i, logp);
    for (int64_t j = 0; j < c; j++) {
      double p = exp(logp[j]);
      if (p > 0) kl += p * (logp[j] - marg[j]); /* 0·log 0 = 0 */
    }
  }
  return exp(kl / (double)n);
}

static bool check_logits(const Tensor *logits, RtError *err) {
  if (!check_matrix(logits, "logits", err)) return false;
  for (int64_t i = 0; i < tensor_numel(logits); i++)
    if (!isfinite(tensor_get(logits, i))) return fail_nonfinite("logits", i / logits->shape[1], err);
  return logits->shape[0] > 0 || rt_fail(err, "logits: no rows");
}

bool fid_inception_score(const Tensor *logits, int64_t split_size, double *mean, double *std, int64_t *splits,
                         RtError *err) {
  if (!check_logits(logits, err)) return false;
  if (split_size < 1) return rt_fail(err, "Inception Score: split size %lld", (long long)split_size);
  int64_t n = logits->shape[0], c = logits->shape[1], ns = (n + split_size - 1) / split_size;
  double *logp = malloc(sizeof(double) * (size_t)c), *marg = malloc(sizeof(double) * (size_t)c),
         *score = malloc(sizeof(double) * (size_t)ns);
  bool ok = logp && marg && score ? true : rt_fail(err, "out of memory");
  double s1 = 0, s2 = 0;
  for (int64_t k = 0; ok && k < ns; k++) {
    int64_t first = k * split_size, m = n - first < split_size ? n - first : split_size;
    score[k] = split_score(logits, first, m, logp, marg);
    s1 += score[k];
  }
  if (ok) {
    for (int64_t k = 0; k < ns; k++) s2 += (score[k] - s1 / (double)ns) * (score[k] - s1 / (double)ns);
    *mean = s1 / (double)ns, *std = sqrt(s2 / (double)ns), *splits = ns;
  }
  free(logp);
  free(marg);
  free(score);
  return ok;
}

/* ---- precision and recall ------------------------------------------------- */

/* Squared norms of every row; false at a non-finite feature. */
static double *row_norms(const Tensor *x, const char *what, double *buf, RtError *err) {
  int64_t n = x->shape[0], d = x->shape[1], bad = 0;
  double *nrm = malloc(sizeof(double) * (size_t)(n ? n : 1));
  if (!nrm) return rt_fail(err, "out of memory"), NULL;
  for (int64_t r = 0; r < n; r += BLOCK) {
    int64_t m = n - r < BLOCK ? n - r : BLOCK;
    if (!rows_f64(x, r, m, buf, &bad)) {
      free(nrm);
      return fail_nonfinite(what, bad, err), NULL;
    }
    for (int64_t i = 0; i < m; i++) {
      double s = 0;
      for (int64_t j = 0; j < d; j++) s += buf[i * d + j] * buf[i * d + j];
      nrm[r + i] = s;
    }
  }
  return nrm;
}

/* A pass over all pairwise squared distances between the rows of a and
 * b, block by block: ADM's |u|² - 2 u·v + |v|², clamped at 0. */
typedef struct {
  const Tensor *a, *b;
  const double *na, *nb;
  double *ra, *rb, *dist; /* row blocks (BLOCK x D) and a BLOCK x BLOCK distance block */
} Pairs;

typedef void (*PairFn)(void *ctx, int64_t a0, int64_t na, int64_t b0, int64_t nb, const double *dist);

static void pairs_run(Pairs *p, PairFn fn, void *ctx) {
  int64_t n = p->a->shape[0], m = p->b->shape[0], d = p->a->shape[1], bad;
  for (int64_t i = 0; i < n; i += BLOCK) {
    int64_t bi = n - i < BLOCK ? n - i : BLOCK;
    rows_f64(p->a, i, bi, p->ra, &bad);
    for (int64_t j = 0; j < m; j += BLOCK) {
      int64_t bj = m - j < BLOCK ? m - j : BLOCK;
      rows_f64(p->b, j, bj, p->rb, &bad);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bi, (int)bj, (int)d, -2.0, p->ra, (int)d, p->rb,
                  (int)d, 0.0, p->dist, (int)bj);
      for (int64_t u = 0; u < bi; u++)
        for (int64_t v = 0; v < bj; v++) {
          double x = p->dist[u * bj + v] + p->na[i + u] + p->nb[j + v];
          p->dist[u * bj + v] = x > 0 ? x : 0;
        }
      fn(ctx, i, bi, j, bj, p->dist);
    }
  }
}

static bool pairs_open(Pairs *p, const Tensor *a, const Tensor *b, RtError *err) {
  memset(p, 0, sizeof *p);
  int64_t d = a->shape[1];
  p->a = a, p->b = b;
  p->ra = malloc(sizeof(double) * (size_t)(BLOCK * d));
  p->rb = malloc(sizeof(double) * (size_t)(BLOCK * d));
  p->dist = malloc(sizeof(double) * BLOCK * BLOCK);
  if (!p->ra || !p->rb || !p->dist) return rt_fail(err, "out of memory");
  if (!(p->na = row_norms(a, "reference features", p->ra, err))) return false;
  if (b == a) return p->nb = p->na, true;
  return (p->nb = row_norms(b, "sample features", p->ra, err)) != NULL;
}

static void pairs_close(Pairs *p) {
  if (p->nb != p->na) free((void *)p->nb);
  free((void *)p->na);
  free(p->ra);
  free(p->rb);
  free(p->dist);
}

/* The k + 1 smallest distances of each row, ascending (best[row*(k+1)...]). */
typedef struct {
  int k;
  double *best;
} Knn;

static void knn_block(void *ctx, int64_t a0, int64_t na, int64_t b0, int64_t nb, const double *dist) {
  (void)b0;
  Knn *q = ctx;
  int kk = q->k + 1;
  for (int64_t u = 0; u < na; u++) {
    double *best = q->best + (a0 + u) * kk;
    for (int64_t v = 0; v < nb; v++) {
      double x = dist[u * nb + v];
      if (!(x < best[kk - 1])) continue;
      int s = kk - 1;
      for (; s > 0 && best[s - 1] > x; s--) best[s] = best[s - 1];
      best[s] = x;
    }
  }
}

bool fid_manifold_radii(const Tensor *x, int k, double *radii, RtError *err) {
  if (!check_matrix(x, "features", err)) return false;
  if (k < 1 || k > 1000) return rt_fail(err, "manifold: neighbourhood size %d", k);
  int64_t n = x->shape[0];
  if (n <= k)
    return rt_fail(err, "features: a %d-nearest-neighbour manifold needs more than %d vectors, found %lld", k, k,
                   (long long)n);
  Pairs p;
  Knn q = {k, malloc(sizeof(double) * (size_t)(n * (k + 1)))};
  bool ok = q.best ? pairs_open(&p, x, x, err) : rt_fail(err, "out of memory");
  if (ok) {
    for (int64_t i = 0; i < n * (k + 1); i++) q.best[i] = INFINITY;
    pairs_run(&p, knn_block, &q);
    for (int64_t i = 0; i < n; i++) radii[i] = q.best[i * (k + 1) + k];
  }
  if (q.best) pairs_close(&p);
  free(q.best);
  return ok;
}

/* Which reference vectors lie in the sample manifold and which samples in
 * the reference manifold. */
typedef struct {
  const double *r_ref, *r_smp;
  bool *ref_in, *smp_in;
} Inside;

static void inside_block(void *ctx, int64_t a0, int64_t na, int64_t b0, int64_t nb, const double *dist) {
  Inside *s = ctx;
  for (int64_t u = 0; u < na; u++)
    for (int64_t v = 0; v < nb; v++) {
      double x = dist[u * nb + v];
      if (x <= s->r_smp[b0 + v]) s->ref_in[a0 + u] = true;
      if (x <= s->r_ref[a0 + u]) s->smp_in[b0 + v] = true;
    }
}

static double fraction(const bool *in, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; i++) c += in[i];
  return (double)c / (double)n;
}

bool fid_precision_recall(const Tensor *ref, const Tensor *samples, int k, double *precision, double *recall,
                          RtError *err) {
  if (!check_matrix(ref, "reference features", err) || !check_matrix(samples, "sample features", err)) return false;
  if (ref->shape[1] != samples->shape[1])
    return rt_fail(err, "reference and sample features differ in dimension (%lld and %lld)",
                   (long long)ref->shape[1], (long long)samples->shape[1]);
  int64_t n = ref->shape[0], m = samples->shape[0];
  double *rr = malloc(sizeof(double) * (size_t)(n ? n : 1)), *rs = malloc(sizeof(double) * (size_t)(m ? m : 1));
  bool *ref_in = calloc((size_t)(n ? n : 1), 1), *smp_in = calloc((size_t)(m ? m : 1), 1);
  bool ok = rr && rs && ref_in && smp_in ? true : rt_fail(err, "out of memory");
  ok = ok && fid_manifold_radii(ref, k, rr, err) && fid_manifold_radii(samples, k, rs, err);
  Pairs p;
  Inside s = {rr, rs, ref_in, smp_in};
  bool opened = ok;
  ok = ok && pairs_open(&p, ref, samples, err);
  if (ok) pairs_run(&p, inside_block, &s);
  if (opened) pairs_close(&p);
  if (ok) *precision = fraction(smp_in, m), *recall = fraction(ref_in, n);
  free(rr);
  free(rs);
  free(ref_in);
  free(smp_in);
  return ok;
}
