/* autodiff.h: reverse-mode differentiation as a graph-to-graph pass. */
#ifndef IREPA_AUTODIFF_H
#define IREPA_AUTODIFF_H

#include "ir.h"

typedef struct {
  int loss_output;          /* which output is the loss (a rank-0 float) */
  const char **wrt_inputs;  /* inputs to differentiate too (by name) */
  int nwrt_inputs;
} AdOptions;

/* Appends to `g` the backward graph of output `loss_output` and, as new
 * outputs, the gradient of every trainable parameter in the table (in table
 * order, named "grad.<name>"; zeros for a parameter the loss does not use)
 * and of each requested input ("grad.<input>"). Frozen parameters, integer
 * tensors and values behind stop_gradient get none. */
bool ad_build_grad(Arena *a, DiagList *d, Graph *g, const ParamTable *params,
                   const AdOptions *opt);

#endif
