/* cuda_api.h: NVRTC, the CUDA driver API and cuBLAS, loaded at run time
 * with dlopen, so that one binary builds with no CUDA headers, links no CUDA
 * library, and runs on a machine with no driver (where the CPU backend is
 * used instead).
 *
 * Three parts, each loaded on first use and then cached, failure included:
 *   rtc_   NVRTC: CUDA C source -> CUBIN, needs no GPU   (cuda_rtc.c)
 *   cu_    the driver: devices, memory, modules, launches, streams and
 *          CUDA graphs                                    (cuda_drv.c)
 *   blas_  cuBLAS strided-batched GEMM on row-major data  (cuda_blas.c)
 * Every function returns false with a message in err on failure (err may
 * be NULL); driver messages name the call and the CUresult, e.g.
 * "cuMemAlloc(1024 bytes): CUDA_ERROR_OUT_OF_MEMORY (out of memory)".
 *
 * Loading is thread-safe. The handle types are declared here with the same
 * definitions as cuda.h and cublas_api.h (C11 allows a repeated identical
 * typedef, so code that includes those headers too still compiles). */
#ifndef IREPA_CUDA_API_H
#define IREPA_CUDA_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

typedef unsigned long long CUdeviceptr;
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;  /* also cudaStream_t */
typedef struct CUgraphExec_st *CUgraphExec;
typedef struct cublasContext *cublasHandle_t;

/* Closes every library (cuBLAS, the driver, NVRTC) and forgets cached
 * failures; a later call loads again. Call it only when no handle, module,
 * stream or context obtained from them is still in use, from one thread. */
void cu_api_shutdown(void);

/* ---- NVRTC (cuda_rtc.c) ------------------------------------------------ */

/* Loads NVRTC: $IREPA_NVRTC_LIB, then libnvrtc.so, .so.13, .so.12 and
 * /usr/local/cuda/lib64/libnvrtc.so; the message lists what was tried. */
bool rtc_available(RtError *err);
/* NVRTC's version (e.g. 13, 0); false when NVRTC cannot be loaded. */
bool rtc_version(int *major, int *minor);

/* Compiles one CUDA C++ source to a CUBIN for arch ("sm_80", "sm_90",
 * "sm_90a"). name is the program's name in NVRTC's log and in our message.
 * Options: --gpu-architecture=ARCH -default-device --std=c++17, then
 * extra_opts[0..nopts) (at most 32). No fast math: results are compared with a CPU
 * oracle. Kernels that are looked up by name should be extern "C".
 * On success *cubin is a malloc'ed ELF image of *size bytes (free() it).
 * A compile error's message holds NVRTC's log, truncated to fit. */
bool rtc_compile(const char *source, const char *name, const char *arch,
                 const char *const *extra_opts, int nopts, void **cubin, size_t *size,
                 RtError *err);

/* rtc_compile through the on-disk cache of jit.c's directory
 * (cubin_cache.c); name and arch as for rtc_compile. */
bool rtc_compile_cached(const char *source, const char *name, const char *arch, void **cubin, size_t *size,
                        RtError *err);

/* ---- CUDA driver (cuda_drv.c) -------------------------------------------- */

/* Loads libcuda.so.1 ($IREPA_CUDA_LIB first), runs cuInit and checks that
 * there is a device. Fails with "no CUDA driver (libcuda.so.1 not found...)"
 * or "no CUDA device (...)". */
bool cu_available(RtError *err);
/* The driver's CUDA version, e.g. 13000 for 13.0. A CUBIN from NVRTC 13
 * and cuBLAS 13 need a driver of at least that major version. */
bool cu_driver_version(int *version, RtError *err);
bool cu_device_count(int *n, RtError *err);
/* Compute capability of device ordinal as one number: 8.0 -> 80, 9.0 -> 90
 * (the NN of "sm_NN"). */
bool cu_device_arch(int ordinal, int *sm, RtError *err);
bool cu_device_name(int ordinal, char *buf, size_t size, RtError *err);

/* A device and its primary context: the one the CUDA runtime inside cuBLAS
 * also uses, so driver-API memory and cuBLAS calls share one context. */
typedef struct {
  int ordinal;
  CUdevice device;
  CUcontext ctx;
  int sm; /* compute capability, as cu_device_arch */
} CuContext;

/* Retains device ordinal's primary context and makes it current on the
 * calling thread. */
bool cu_context_create(int ordinal, CuContext *c, RtError *err);
/* Makes c current on the calling thread (each thread that calls cu_ needs
 * a current context). */
bool cu_context_bind(const CuContext *c, RtError *err);
bool cu_context_sync(RtError *err);
/* Releases the primary context; safe on a zeroed or destroyed CuContext. */
void cu_context_destroy(CuContext *c);

/* Memory. The synchronous copies and memset run on the legacy default
 * stream, which does not order with the non-blocking streams of
 * cu_stream_create (and a host-to-device copy may return before it has
 * landed): synchronise in between, or use the _async forms on the stream.
 * They are also refused while a stream is being captured. */
bool cu_alloc(CUdeviceptr *p, size_t bytes, RtError *err);
bool cu_free(CUdeviceptr p, RtError *err); /* p == 0 is a no-op */
bool cu_memcpy_htod(CUdeviceptr dst, const void *src, size_t bytes, RtError *err);
bool cu_memcpy_dtoh(void *dst, CUdeviceptr src, size_t bytes, RtError *err);
bool cu_memcpy_dtod(CUdeviceptr dst, CUdeviceptr src, size_t bytes, RtError *err);
bool cu_memset(CUdeviceptr dst, unsigned char byte, size_t bytes, RtError *err);
bool cu_memcpy_htod_async(CUdeviceptr dst, const void *src, size_t bytes, CUstream s,
                          RtError *err);
bool cu_memcpy_dtoh_async(void *dst, CUdeviceptr src, size_t bytes, CUstream s, RtError *err);
bool cu_memset_async(CUdeviceptr dst, unsigned char byte, size_t bytes, CUstream s,
                     RtError *err);

/* Modules and kernels. cu_module_load takes a CUBIN from rtc_compile (the
 * image may be freed afterwards). */
bool cu_module_load(const void *cubin, CUmodule *m, RtError *err);
void cu_module_unload(CUmodule m);
bool cu_function(CUmodule m, const char *name, CUfunction *fn, RtError *err);
/* Lets fn use more than 48 KiB of dynamic shared memory. */
bool cu_function_set_max_shared(CUfunction fn, int bytes, RtError *err);
/* Launches fn on stream (NULL: the legacy default stream). params[i]
 * points at the i-th kernel argument's value. */
bool cu_launch(CUfunction fn, const unsigned grid[3], const unsigned block[3],
               unsigned shared_bytes, CUstream stream, void **params, RtError *err);

/* Streams, created non-blocking (no implicit sync with the default stream,
 * which would also break graph capture). */
bool cu_stream_create(CUstream *s, RtError *err);
bool cu_stream_sync(CUstream s, RtError *err);
void cu_stream_destroy(CUstream s);

/* CUDA graphs: everything enqueued on s between begin and end is recorded,
 * not run; end instantiates it and launch replays it. Capture is
 * thread-local: other threads may keep using the driver meanwhile. */
bool cu_graph_begin(CUstream s, RtError *err);
bool cu_graph_end(CUstream s, CUgraphExec *exec, RtError *err);
bool cu_graph_launch(CUgraphExec exec, CUstream s, RtError *err);
void cu_graph_destroy(CUgraphExec exec);

/* ---- cuBLAS (cuda_blas.c) ----------------------------------------------- */

/* Loads libcublas: $IREPA_CUBLAS_LIB, libcublas.so, .so.13, .so.12 and
 * /usr/local/cuda/lib64/libcublas.so. Needs no GPU; blas_create does. */
bool blas_available(RtError *err);
/* Needs a current context (cu_context_create). */
bool blas_create(cublasHandle_t *h, RtError *err);
void blas_destroy(cublasHandle_t h);
bool blas_set_stream(cublasHandle_t h, CUstream s, RtError *err);
/* A fixed workspace, so that GEMMs captured into a graph allocate nothing. */
bool blas_set_workspace(cublasHandle_t h, CUdeviceptr ws, size_t bytes, RtError *err);

/* C[i] = alpha * op(A[i]) @ op(B[i]) + beta * C[i] for i < batch, every
 * matrix row-major: op(A) is m x k, op(B) is k x n, C is m x n. With trans_a,
 * A is stored k x m (op(A) = A^T); likewise trans_b, B stored n x k.
 * ld* are row pitches in elements (0: packed, i.e. the stored row length);
 * stride_* are the distances between batch items in elements (0 reuses one
 * matrix for every item). Types: ab_type f32 with c_type f32 (plain fp32
 * SGEMM, no TF32), or ab_type f16/bf16 with c_type f32 or the same 16-bit
 * type, always accumulated in fp32. alpha and beta are host floats. */
typedef struct {
  int m, n, k, batch;
  bool trans_a, trans_b;
  CUdeviceptr a, b, c;
  int64_t lda, ldb, ldc;
  int64_t stride_a, stride_b, stride_c;
  DType ab_type, c_type;
  float alpha, beta;
} BlasGemm;

bool blas_gemm(cublasHandle_t h, const BlasGemm *g, RtError *err);

/* The column-major call blas_gemm makes for g. cuBLAS is column-major and a
 * row-major X is the column-major X^T, so C = op(A) op(B) is computed as
 * C^T = op(B)^T op(A)^T: the operands swap, m and n swap, and each trans
 * flag carries over unchanged. Exposed so that tests can check the mapping
 * on the CPU. */
typedef struct {
  bool trans_a, trans_b; /* of the column-major first (B) and second (A) operand */
  int m, n, k;           /* column-major: first operand op() is m x k */
  CUdeviceptr a, b, c;   /* a is g->b, b is g->a */
  int64_t lda, ldb, ldc;
  int64_t stride_a, stride_b, stride_c;
} BlasColMajor;

/* Fills cm; false when g's sizes, pitches or types are invalid. */
bool blas_colmajor_args(const BlasGemm *g, BlasColMajor *cm, RtError *err);

#endif
