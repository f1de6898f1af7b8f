/* elab.h: elaboration, from parsed files to the graph IR. Instantiates the
 * root `model`, runs module bodies (compile-time loops and ifs, sub-module
 * instances, parameters), builds the parameter table in PyTorch state_dict
 * order, then traces each entry method into a shape-checked Graph. */
#ifndef IREPA_ELAB_H
#define IREPA_ELAB_H

#include "ir.h"
#include "parse.h"

typedef struct {
  const char *entry;  /* only this entry (NULL = all) */
  bool params_only;   /* stop after the parameter table */
} ElabOptions;

/* Returns false with diagnostics. A program without a `model` declaration
 * is a library: it is checked for duplicate names and nothing else. */
bool elab_program(Arena *a, DiagList *d, const Program *prog,
                  const ElabOptions *opt, IrProgram *out);

/* Whether the program declares a model. */
bool elab_has_model(const Program *prog);

#endif
