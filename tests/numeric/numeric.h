/* numeric.h: shared helpers of the numeric tests: compile .irg text (with
 * models/ on the import path), differentiate an entry, run it on the
 * reference interpreter in double, and measure gradients against central
 * finite differences. */
#ifndef IREPA_TEST_NUMERIC_H
#define IREPA_TEST_NUMERIC_H

#include "autodiff.h"
#include "elab.h"
#include "interp.h"

typedef struct {
  Arena arena;
  SourceSet sources;
  DiagList diags;
  IrProgram prog;
  Graph *g;
} Compiled;

/* Compiles `src` and traces `entry`; with grad, appends the gradient of
 * output 0 w.r.t. the trainable parameters and the named inputs (a comma
 * separated list, or NULL). Prints diagnostics and returns false on error. */
bool nt_compile(Compiled *c, const char *src, const char *entry, bool grad, const char *wrt);
void nt_free(Compiled *c);

/* Deterministic pseudo-random inputs for every graph input, batch size
 * `batch`: floats uniform in [lo, hi], integers in [0, int_max), bools
 * alternating. The generator is SplitMix64 of (seed, element). */
bool nt_make_inputs(const Compiled *c, int64_t batch, double lo, double hi, int64_t int_max,
                    uint64_t seed, TensorList *inputs);
/* Parameters initialised by their init rules, then perturbed so that
 * zero-initialised ones carry gradient too. */
bool nt_make_params(const Compiled *c, uint64_t seed, TensorList *params);

/* Runs in double; returns output 0 (the loss) or NAN on error. */
double nt_loss(const Compiled *c, const TensorList *params, const TensorList *inputs);

/* Largest |analytic - fd| over the entries checked, divided by the largest
 * |fd| or |analytic| of the whole gradient tensor, for the gradient output
 * `grad_name` of tensor `t` (an input or a parameter). Checks every element
 * when `max_elems` is 0, else `max_elems` entries spread over the tensor. */
double nt_fd_error(const Compiled *c, TensorList *params, TensorList *inputs, Tensor *t,
                   const char *grad_name, int max_elems, double h);

/* Every grad.* tensor of `golden` against the output of the same name in
 * `out`: how many the golden has and how many were found, the worst
 * relative error and its name, the first one missing (NULL if none).
 * Gradients over `bound` are printed, prefixed with `label`. */
typedef struct {
  int expected, compared;
  double worst;
  const char *worst_name, *missing;
} NtGrads;
NtGrads nt_compare_grads(const TensorList *out, const TensorList *golden, double bound, const char *label);

#endif
