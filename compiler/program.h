/* program.h: a compiled program, what `irepac compile` writes as .irx
 * (irx.c; format in docs/formats.md): per entry point its graph, kernels
 * and buffer plan, and the kernel sources of the backends asked for. */
#ifndef IREPA_PROGRAM_H
#define IREPA_PROGRAM_H

#include "plan.h"

typedef struct {
  Graph *g;
  Schedule sched;
  Plan plan;
} CompiledEntry;

typedef struct {
  const IrProgram *ir;
  CompiledEntry *entries;
  int nentries;
  char *c_source;     /* NULL unless the C backend was asked for */
  char *cuda_source;  /* NULL unless the CUDA backend was asked for */
} CompiledProgram;

typedef struct {
  bool grad;       /* append each entry's backward graph (first output = loss) */
  bool want_c, want_cuda;
} CompileOptions;

/* Fuses, plans and generates code for every entry of ir (which grad mode
 * extends with its backward graphs). Kernel functions are named e<i>_k<N>. */
bool program_compile(Arena *a, DiagList *d, IrProgram *ir, const CompileOptions *opt, CompiledProgram *out);

/* A GEMM kernel's operands, for the runtime's BLAS call: per batch element,
 * C[M,N] = op(A) op(B), row-major, op = transpose where ta/tb. The stored A
 * is [M,K] (ta: [K,M]) at arg a_arg plus the batch offset. */
typedef struct {
  int a_arg, b_arg;
  bool ta, tb;
  Dim m, n, k;
  int batch_rank;
  Dim batch[IR_MAX_RANK];
  Dim a_stride[IR_MAX_RANK], b_stride[IR_MAX_RANK];  /* elements per batch step; 0 = broadcast */
} GemmDesc;

bool program_gemm(const Kernel *K, GemmDesc *out);

#endif
