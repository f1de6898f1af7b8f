/* exec.h: running an entry point of a compiled program on a backend: bind
 * the batch size from the inputs, check inputs and parameters against the
 * entry's signature, lay out the arena, walk the launch list, and copy the
 * outputs back as host tensors. */
#ifndef IREPA_EXEC_H
#define IREPA_EXEC_H

#include "backend.h"

typedef struct {
  uint64_t seed;   /* for the random ops */
} ExecOptions;

/* Parameters are looked up by table name, inputs by entry input name;
 * outputs are appended to *out under the entry's output names, except the
 * updates of a training step, which are written into the given parameter
 * and input tensors themselves. */
bool exec_run(Backend *b, const XProgram *p, const XEntry *e, const TensorList *params, const TensorList *inputs,
              const ExecOptions *opt, TensorList *out, RtError *err);

#endif
