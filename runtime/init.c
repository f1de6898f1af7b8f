/* init.c: parameter initialisation rules (spec/sit.md §2 and §6). */
#include "init.h"

#include <math.h>

#include "rng.h"

uint64_t init_stream(const char *name) { return rng_fnv1a64(name); }

/* The half-width of the symmetric uniform rules. xavier_uniform is
 * PyTorch's gain * sqrt(3) * sqrt(2 / (fan_in + fan_out)) with gain 1;
 * torch_default is kaiming_uniform(a = sqrt 5), whose gain sqrt(2 / 6)
 * times sqrt(3 / fan_in) is 1 / sqrt(fan_in), the same bound PyTorch uses
 * for Linear and Conv biases. */
static double symmetric_bound(const InitRule *r) {
  if (r->kind == INIT_XAVIER_UNIFORM) return sqrt(6.0 / (double)(r->fan_in + r->fan_out));
  return 1.0 / sqrt((double)r->fan_in);
}

bool init_rule_bounds(const InitRule *r, double *low, double *high) {
  switch (r->kind) {
  case INIT_ZEROS: *low = *high = 0; return true;
  case INIT_ONES: *low = *high = 1; return true;
  case INIT_CONSTANT: *low = *high = r->a; return true;
  case INIT_UNIFORM: *low = r->a; *high = r->b; return true;
  case INIT_XAVIER_UNIFORM:
  case INIT_TORCH_DEFAULT:
    *high = symmetric_bound(r);
    *low = -*high;
    return true;
  case INIT_SINCOS_2D: *low = -1; *high = 1; return true;
  case INIT_NORMAL: return false;
  }
  return false;
}

bool init_rule_moments(const InitRule *r, double *mean, double *std) {
  if (r->kind == INIT_SINCOS_2D) return false;
  if (r->kind == INIT_NORMAL) {
    *mean = r->a;
    *std = r->b;
    return true;
  }
  double lo, hi;
  if (!init_rule_bounds(r, &lo, &hi)) return false;
  *mean = lo + (hi - lo) / 2;
  *std = (hi - lo) / sqrt(12.0);  /* U(lo, hi); 0 for the constant rules */
  return true;
}

/* ω_k = 10000^(-k/Q), written as 1 / 10000^(k/Q) like the reference so that
 * both sides round the same way before the float32 store. */
static double sincos_omega(int64_t k, int64_t q) {
  return 1.0 / pow(10000.0, (double)k / (double)q);
}

double init_sincos_2d_value(int64_t grid, int64_t dim, int64_t token, int64_t channel) {
  int64_t q = dim / 4, block = channel / q;
  /* Blocks 0,1 use the column j, blocks 2,3 the row i (the reference builds
   * its mesh grid with w first, so its "h" half is really the column). */
  int64_t pos = block < 2 ? token % grid : token / grid;
  double a = (double)pos * sincos_omega(channel % q, q);
  return block % 2 == 0 ? sin(a) : cos(a);
}

static bool check_shape(const Tensor *t, const ParamInfo *p, RtError *err) {
  if (!dtype_is_float(t->dtype))
    return rt_fail(err, "init '%s': tensor dtype %s is not a float type", p->name,
                   dtype_name(t->dtype));
  bool same = t->rank == p->shape.rank;
  for (int i = 0; same && i < t->rank; i++)
    same = !p->shape.d[i].sym && p->shape.d[i].n == t->shape[i];
  if (!same) return rt_fail(err, "init '%s': tensor shape differs from the parameter's", p->name);
  return true;
}

/* Rejects rules the elaborator would not produce, so that a hand-built
 * ParamInfo cannot yield NaNs or an out-of-range table silently. */
static bool check_rule(const Tensor *t, const ParamInfo *p, RtError *err) {
  const InitRule *r = &p->init;
  switch (r->kind) {
  case INIT_ZEROS:
  case INIT_ONES: return true;
  case INIT_CONSTANT:
    if (!isfinite(r->a)) return rt_fail(err, "init '%s': constant is not finite", p->name);
    return true;
  case INIT_NORMAL:
    if (!isfinite(r->a) || !isfinite(r->b) || r->b < 0)
      return rt_fail(err, "init '%s': normal needs a finite mean and std >= 0", p->name);
    return true;
  case INIT_UNIFORM:
    if (!isfinite(r->a) || !isfinite(r->b) || r->a > r->b)
      return rt_fail(err, "init '%s': uniform needs finite low <= high", p->name);
    return true;
  case INIT_XAVIER_UNIFORM:
    if (r->fan_out <= 0) return rt_fail(err, "init '%s': fan_out must be positive", p->name);
    /* fall through */
  case INIT_TORCH_DEFAULT:
    if (r->fan_in <= 0) return rt_fail(err, "init '%s': fan_in must be positive", p->name);
    return true;
  case INIT_SINCOS_2D:
    if (t->rank != 3 || t->shape[0] != 1 || r->grid <= 0 || t->shape[1] != r->grid * r->grid ||
        t->shape[2] % 4 != 0 || t->shape[2] == 0)
      return rt_fail(err, "init '%s': sincos_2d needs a [1, grid*grid, D] tensor, D a multiple of 4",
                     p->name);
    return true;
  }
  return rt_fail(err, "init '%s': unknown rule %d", p->name, (int)r->kind);
}

static void fill_constant(Tensor *t, double v) {
  int64_t n = tensor_numel(t);
  for (int64_t i = 0; i < n; i++) tensor_set(t, i, v);
}

static void fill_uniform(Tensor *t, double lo, double hi, uint64_t seed, uint64_t stream) {
  int64_t n = tensor_numel(t);
  for (int64_t i = 0; i < n; i++)
    tensor_set(t, i, lo + (hi - lo) * rng_uniform_f64(seed, stream, (uint64_t)i));
}

static void fill_normal(Tensor *t, double mean, double std, uint64_t seed, uint64_t stream) {
  int64_t n = tensor_numel(t);
  for (int64_t i = 0; i < n; i++)
    tensor_set(t, i, mean + std * rng_normal_f64(seed, stream, (uint64_t)i));
}

static void fill_sincos(Tensor *t, int64_t grid) {
  int64_t tokens = t->shape[1], dim = t->shape[2];
  for (int64_t tok = 0; tok < tokens; tok++)
    for (int64_t c = 0; c < dim; c++)
      tensor_set(t, tok * dim + c, init_sincos_2d_value(grid, dim, tok, c));
}

bool init_param(Tensor *t, const ParamInfo *p, uint64_t seed, RtError *err) {
  if (!t || !p || !p->name) return rt_fail(err, "init: no tensor or parameter");
  if (!check_shape(t, p, err) || !check_rule(t, p, err)) return false;
  const InitRule *r = &p->init;
  uint64_t stream = init_stream(p->name);
  double lo, hi;
  switch (r->kind) {
  case INIT_ZEROS: fill_constant(t, 0.0); break;
  case INIT_ONES: fill_constant(t, 1.0); break;
  case INIT_CONSTANT: fill_constant(t, r->a); break;
  case INIT_NORMAL: fill_normal(t, r->a, r->b, seed, stream); break;
  case INIT_UNIFORM:
  case INIT_XAVIER_UNIFORM:
  case INIT_TORCH_DEFAULT:
    init_rule_bounds(r, &lo, &hi);
    fill_uniform(t, lo, hi, seed, stream);
    break;
  case INIT_SINCOS_2D: fill_sincos(t, r->grid); break;
  }
  return true;
}
