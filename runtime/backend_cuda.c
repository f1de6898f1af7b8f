/* backend_cuda.c: the generated CUDA kernels on a GPU. Kernels come from
 * the program's CUBIN for the device's architecture, or are compiled with
 * NVRTC at load (cached on disk); GEMMs go to cuBLAS; everything runs on
 * one stream, and a kernel's bad-value status lives in one device int.
 * No GPU was available while this was written: it is exercised by the
 * gpu-labelled tests only (docs/testing.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cuda_api.h"

typedef struct {
  Backend base;
  CuContext ctx;
  CUstream stream;
  cublasHandle_t blas;
  CUmodule module;
  char *source_copy;  /* the CUDA source module was built from */
  CUdeviceptr status;
} CudaBackend;

static CUdeviceptr dptr(const void *p) { return (CUdeviceptr)(uintptr_t)p; }

static bool cuda_prepare(Backend *b, const XProgram *p, RtError *err) {
  CudaBackend *c = (CudaBackend *)b;
  if (!p->cuda_source) return rt_fail(err, "the program has no CUDA kernels (compile it with --backend cuda or all)");
  if (c->module && c->source_copy && !strcmp(c->source_copy, p->cuda_source)) return true;
  char arch[16];
  snprintf(arch, sizeof arch, "sm_%d", c->ctx.sm);
  void *cubin = NULL;
  size_t size = 0;
  bool own = true;
  for (int i = 0; i < p->ncubins; i++)
    if (!strcmp(p->cubins[i].name, arch)) cubin = p->cubins[i].data, size = p->cubins[i].size, own = false;
  if (!cubin && !rtc_compile_cached(p->cuda_source, "program", arch, &cubin, &size, err)) return false;
  if (c->module) cu_module_unload(c->module);
  c->module = NULL;
  bool ok = cu_module_load(cubin, &c->module, err);
  if (own) free(cubin);
  free(c->source_copy);
  c->source_copy = ok ? strdup(p->cuda_source) : NULL;
  return ok;
}

static bool cuda_alloc(Backend *b, size_t bytes, void **p, RtError *err) {
  (void)b;
  CUdeviceptr d = 0;
  if (!cu_alloc(&d, bytes ? bytes : 256, err)) return false;
  *p = (void *)(uintptr_t)d;
  return true;
}

static void cuda_release(Backend *b, void *p) {
  (void)b;
  RtError ignored;
  cu_free(dptr(p), &ignored);
}

static bool cuda_upload(Backend *b, void *dst, const void *src, size_t bytes, RtError *err) {
  CudaBackend *c = (CudaBackend *)b;
  return cu_memcpy_htod_async(dptr(dst), src, bytes, c->stream, err) && cu_stream_sync(c->stream, err);
}

static bool cuda_download(Backend *b, void *dst, const void *src, size_t bytes, RtError *err) {
  CudaBackend *c = (CudaBackend *)b;
  return cu_memcpy_dtoh_async(dst, dptr(src), bytes, c->stream, err) && cu_stream_sync(c->stream, err);
}

static bool cuda_kernel(Backend *b, const XKernel *k, void *const *args, int64_t batch, uint64_t seed, RtError *err) {
  CudaBackend *c = (CudaBackend *)b;
  CUfunction fn;
  if (!cu_function(c->module, k->name, &fn, err)) return false;
  void *params[BACKEND_MAX_KERNEL_ARGS + 3];
  CUdeviceptr ptrs[BACKEND_MAX_KERNEL_ARGS]; /* exec.c checked nargs */
  long long bl = batch;
  unsigned long long sd = seed;
  for (int i = 0; i < k->nargs; i++) {
    ptrs[i] = dptr(args[i]);
    params[i] = &ptrs[i];
  }
  params[k->nargs] = &bl;
  params[k->nargs + 1] = &sd;
  params[k->nargs + 2] = &c->status;
  int64_t blocks = backend_blocks(&k->launch, batch);
  if (blocks <= 0) return true;
  if (blocks > 0x7FFFFFFF) return rt_fail(err, "kernel %s: %lld blocks is too many", k->name, (long long)blocks);
  unsigned grid[3] = {(unsigned)blocks, 1, 1}, block[3] = {(unsigned)k->launch.block, 1, 1};
  return cu_launch(fn, grid, block, 0, c->stream, params, err);
}

/* One strided-batched call when the batch axes collapse to one stride per
 * operand, else one call per batch element. */
static bool cuda_gemm(Backend *b, const XKernel *k, void *const *args, int64_t batch, RtError *err) {
  CudaBackend *c = (CudaBackend *)b;
  const GemmDesc *g = &k->gemm;
  int64_t M = dim_value(g->m, batch), N = dim_value(g->n, batch), K = dim_value(g->k, batch), count = 1;
  int64_t dims[IR_MAX_RANK], as[IR_MAX_RANK], bs[IR_MAX_RANK];
  int rank = 0;
  for (int j = 0; j < g->batch_rank; j++) {
    int64_t d = dim_value(g->batch[j], batch);
    if (d == 1) continue;
    dims[rank] = d, as[rank] = dim_value(g->a_stride[j], batch), bs[rank] = dim_value(g->b_stride[j], batch);
    count *= d;
    rank++;
  }
  bool linear = true;
  for (int j = 0; j + 1 < rank; j++)
    linear &= as[j] == as[j + 1] * dims[j + 1] && bs[j] == bs[j + 1] * dims[j + 1];
  DType t = k->dtype;
  BlasGemm call = {(int)M, (int)N, (int)K, 1, g->ta, g->tb, dptr(args[g->a_arg]), dptr(args[g->b_arg]),
                   dptr(args[k->ninputs]), 0, 0, 0, 0, 0, M * N, t, t, 1.0f, 0.0f};
  if (linear) {
    call.batch = (int)count;
    call.stride_a = rank ? as[rank - 1] : 0;
    call.stride_b = rank ? bs[rank - 1] : 0;
    return blas_gemm(c->blas, &call, err);
  }
  size_t esize = (size_t)dtype_size(t);
  for (int64_t i = 0; i < count; i++) {
    int64_t oa = 0, ob = 0, rest = i;
    for (int j = rank - 1; j >= 0; j--) {
      oa += rest % dims[j] * as[j];
      ob += rest % dims[j] * bs[j];
      rest /= dims[j];
    }
    BlasGemm one = call;
    one.a += (CUdeviceptr)(oa * (int64_t)esize);
    one.b += (CUdeviceptr)(ob * (int64_t)esize);
    one.c += (CUdeviceptr)(i * M * N * (int64_t)esize);
    if (!blas_gemm(c->blas, &one, err)) return false;
  }
  return true;
}

static bool cuda_finish(Backend *b, RtError *err) {
  CudaBackend *c = (CudaBackend *)b;
  int status = 0;
  if (!cu_memcpy_dtoh_async(&status, c->status, sizeof status, c->stream, err) || !cu_stream_sync(c->stream, err) ||
      !cu_memset_async(c->status, 0, sizeof status, c->stream, err))
    return false;
  if (status == 1) return rt_fail(err, "an embedding index was out of range (gather/scatter_add)");
  return status == 0 || rt_fail(err, "a kernel reported status %d", status);
}

static void cuda_destroy(Backend *b) {
  CudaBackend *c = (CudaBackend *)b;
  RtError ignored;
  if (c->status) cu_free(c->status, &ignored);
  if (c->module) cu_module_unload(c->module);
  if (c->blas) blas_destroy(c->blas);
  if (c->stream) cu_stream_destroy(c->stream);
  cu_context_destroy(&c->ctx);
  free(c->source_copy);
  free(c);
}

Backend *backend_cuda_open(RtError *err) {
  if (!cu_available(err)) return NULL;
  CudaBackend *c = calloc(1, sizeof *c);
  if (!c) {
    rt_fail(err, "out of memory");
    return NULL;
  }
  c->base = (Backend){"cuda", false, cuda_prepare, cuda_alloc, cuda_release, cuda_upload, cuda_download,
                      cuda_kernel, cuda_gemm, cuda_finish, cuda_destroy};
  bool ok = cu_context_create(0, &c->ctx, err) && cu_stream_create(&c->stream, err) && blas_available(err) &&
            blas_create(&c->blas, err) && blas_set_stream(c->blas, c->stream, err) &&
            cu_alloc(&c->status, sizeof(int), err) && cu_memset(c->status, 0, sizeof(int), err);
  if (!ok) {
    cuda_destroy(&c->base);
    return NULL;
  }
  return &c->base;
}
