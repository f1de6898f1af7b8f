/* interp.h: the reference interpreter, the oracle every faster backend is
 * checked against. Plain loops over doubles for every op of the graph IR;
 * speed is not its job. */
#ifndef IREPA_INTERP_H
#define IREPA_INTERP_H

#include "tensor.h"

typedef enum {
  INTERP_F64,  /* every op in double, no rounding: the numeric oracle */
  INTERP_F32,  /* each result rounded to its declared dtype (f32, f16, bf16),
                  as a float32 program would store it; arithmetic in double */
} InterpPrecision;

typedef struct {
  InterpPrecision precision;
  uint64_t seed;   /* for the random ops */
} InterpOptions;

/* Runs graph g. Inputs and parameters are looked up by name (parameters by
 * their table name); their dtypes and shapes are checked, and the batch
 * symbol is bound from the inputs. Appends one tensor per output to *out,
 * named by the output's name or "out.N"; float outputs are F64 under
 * INTERP_F64, else their declared dtype. */
bool interp_run(const Graph *g, const ParamTable *params, const TensorList *param_values,
                const TensorList *inputs, const InterpOptions *opt, TensorList *out,
                RtError *err);

#endif
