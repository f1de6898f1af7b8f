/* codegen.h: kernel source for the two compiled backends. Each takes the
 * schedule and emits one function per non-GEMM kernel, named
 * <prefix>k<N>; matmul kernels have no code (the runtime calls BLAS with
 * the operands described in the program, see program.h).
 *
 * C:    void <prefix>kN(void *const *args, idx_t B, unsigned long long seed, int *status)
 * CUDA: extern "C" __global__ void <prefix>kN(T *in0, ..., T *out0, ..., long long B,
 *                                             unsigned long long seed, int *status)
 *       plus, under IREPA_EMULATE, a host launcher <prefix>kN_launch(args, B, seed,
 *       status, grid, block) for the emulation header.
 * args are the kernel's inputs then its outputs, in Kernel order; *status
 * is set non-zero when a kernel meets a bad value it cannot compute with
 * (an embedding index out of range). */
#ifndef IREPA_CODEGEN_H
#define IREPA_CODEGEN_H

#include "fuse.h"

/* How a CUDA kernel is launched: blocks = ceil(work(B) / per_block),
 * threads per block = block. */
typedef struct {
  Dim work;
  int per_block;
  int block;
} LaunchShape;

void cg_c_prelude(StrBuf *out);
bool cg_c_kernels(Arena *a, DiagList *d, const Schedule *s, const char *prefix, StrBuf *out);

void cg_cuda_prelude(StrBuf *out);
bool cg_cuda_kernels(Arena *a, DiagList *d, const Schedule *s, const char *prefix, StrBuf *out);
/* The launch shape of kernel K on CUDA (its generator's choice). */
LaunchShape cg_cuda_launch(const Kernel *K);

#endif
