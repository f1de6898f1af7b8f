/* backend.h: what a compiled program runs on. A backend owns its memory
 * and its loaded kernels and knows how to launch one kernel of the launch
 * list; exec.c walks the list. Three exist:
 *   c         the generated C, compiled by the system C compiler (jit.c),
 *             GEMMs through OpenBLAS
 *   cuda-emu  the generated CUDA C compiled for the host with the emulation
 *             header (cuda_emu.h): the GPU code, checked on a CPU
 *   cuda      the generated CUDA C on a GPU: NVRTC, the driver API, cuBLAS */
#ifndef IREPA_BACKEND_H
#define IREPA_BACKEND_H

#include "irx.h"

/* The most buffers one kernel may take. CUDA passes a launch's parameters
 * in 4 KiB: this many pointers plus the batch, seed and status words fit.
 * (The gradient-norm sum of a 12-block SiT already reads 131 buffers.) */
enum { BACKEND_MAX_KERNEL_ARGS = 500 };

typedef struct Backend Backend;
struct Backend {
  const char *name;
  bool host_memory;  /* device pointers are host pointers: inputs are used in place */
  /* Loads (compiling if need be) the kernels of p; called before each run. */
  bool (*prepare)(Backend *b, const XProgram *p, RtError *err);
  bool (*alloc)(Backend *b, size_t bytes, void **p, RtError *err);
  void (*release)(Backend *b, void *p);
  bool (*upload)(Backend *b, void *dst, const void *src, size_t bytes, RtError *err);
  bool (*download)(Backend *b, void *dst, const void *src, size_t bytes, RtError *err);
  /* Runs a non-GEMM kernel; args are its inputs then its outputs. */
  bool (*kernel)(Backend *b, const XKernel *k, void *const *args, int64_t batch, uint64_t seed, RtError *err);
  bool (*gemm)(Backend *b, const XKernel *k, void *const *args, int64_t batch, RtError *err);
  /* Waits for the work launched and reports a kernel's bad-value status. */
  bool (*finish)(Backend *b, RtError *err);
  void (*destroy)(Backend *b);
};

/* name: "c", "cuda-emu", "cuda", or "auto" (cuda where a GPU and driver
 * are present, else c). */
Backend *backend_open(const char *name, RtError *err);
void backend_close(Backend *b);

Backend *backend_host_open(bool emulate_cuda, RtError *err);
Backend *backend_cuda_open(RtError *err);

/* The number of blocks of a CUDA launch at batch size B. */
int64_t backend_blocks(const LaunchShape *l, int64_t batch);
int64_t dim_value(Dim d, int64_t batch);

#endif
