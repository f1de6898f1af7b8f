/* init.h: parameter initialisation by the rules of spec/sit.md §6
 * (compiler/ir.h InitRule). Random rules draw element k (row-major) of a
 * parameter from the counter-based stream (seed, init_stream(name), k) of
 * rng.h, so a parameter's values depend on the seed and its own name only:
 * not on its place in the parameter table, nor on what else is initialised. */
#ifndef IREPA_INIT_H
#define IREPA_INIT_H

#include <stdbool.h>
#include <stdint.h>

#include "ir.h"
#include "tensor.h"

/* The stream id of a parameter: 64-bit FNV-1a of its name (docs/rng.md). */
uint64_t init_stream(const char *name);

/* Fills t (any float dtype; shape must equal p->shape) by p->init:
 *   zeros, ones, constant(a)     exact
 *   normal(mean a, std b)        a + b * rng_normal_f64
 *   uniform(low a, high b)       a + (b - a) * rng_uniform_f64 (53-bit)
 *   xavier_uniform(fan_in, fan_out)  U(-s, s), s = sqrt(6 / (fan_in + fan_out))
 *   torch_default(fan_in)        U(-s, s), s = 1 / sqrt(fan_in)
 *   sincos_2d(grid)              the fixed table of spec/sit.md §2
 * Values are computed in double and rounded by tensor_set. Returns false
 * with a message on a non-float tensor, a shape mismatch or a bad rule. */
bool init_param(Tensor *t, const ParamInfo *p, uint64_t seed, RtError *err);

/* Analytic mean and standard deviation of a rule's distribution; false for
 * sincos_2d, which is a fixed table rather than a distribution. */
bool init_rule_moments(const InitRule *r, double *mean, double *std);

/* The interval every value lies in (before rounding to the dtype); false
 * for normal, which is unbounded. */
bool init_rule_bounds(const InitRule *r, double *low, double *high);

/* Entry [0, i*grid + j, c] of the sin-cos table for width dim (a multiple
 * of 4), in double: channel blocks of Q = dim/4 hold sin/cos of the column
 * j, then sin/cos of the row i, at frequencies 10000^(-k/Q). */
double init_sincos_2d_value(int64_t grid, int64_t dim, int64_t token, int64_t channel);

#endif
