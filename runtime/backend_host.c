/* backend_host.c: the two backends that run on the CPU, in host memory:
 * "c" (the C kernels) and "cuda-emu" (the CUDA kernels through the
 * emulation header). Both do GEMMs with OpenBLAS's cblas. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "jit.h"

typedef struct {
  Backend base;
  bool emulate;
  JitModule *mod;
  const char *source;  /* the text mod was built from */
  char *source_copy;
  int status;
} HostBackend;

typedef void (*CKernelFn)(void *const *args, long long batch, unsigned long long seed, int *status);
typedef void (*EmuLaunchFn)(void *const *args, long long batch, unsigned long long seed, int *status,
                            unsigned grid, unsigned block);

int64_t dim_value(Dim d, int64_t batch) { return d.sym ? d.n * batch : d.n; }

int64_t backend_blocks(const LaunchShape *l, int64_t batch) {
  int64_t work = dim_value(l->work, batch);
  return (work + l->per_block - 1) / l->per_block;
}

static bool host_prepare(Backend *b, const XProgram *p, RtError *err) {
  HostBackend *h = (HostBackend *)b;
  const char *src = h->emulate ? p->cuda_source : p->c_source;
  if (!src)
    return rt_fail(err, "the program has no %s kernels (compile it with --backend %s or all)",
                   h->emulate ? "CUDA" : "C", h->emulate ? "cuda" : "c");
  if (h->mod && h->source_copy && !strcmp(h->source_copy, src)) return true;
  jit_unload(h->mod);
  free(h->source_copy);
  h->source_copy = NULL;
  h->mod = jit_load(h->emulate ? JIT_LANG_CUDA_EMU : JIT_LANG_C, src, err);
  if (!h->mod) return false;
  h->source_copy = strdup(src);
  return h->source_copy || rt_fail(err, "out of memory");
}

static bool host_alloc(Backend *b, size_t bytes, void **p, RtError *err) {
  (void)b;
  *p = aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
  return *p || rt_fail(err, "out of memory: %zu bytes for the arena", bytes);
}

static void host_release(Backend *b, void *p) {
  (void)b;
  free(p);
}

static bool host_copy(Backend *b, void *dst, const void *src, size_t bytes, RtError *err) {
  (void)b, (void)err;
  if (bytes) memmove(dst, src, bytes);
  return true;
}

static bool host_kernel(Backend *b, const XKernel *k, void *const *args, int64_t batch, uint64_t seed, RtError *err) {
  HostBackend *h = (HostBackend *)b;
  if (!h->emulate) {
    CKernelFn fn = (CKernelFn)jit_symbol(h->mod, k->name, err);
    if (!fn) return false;
    fn(args, batch, seed, &h->status);
    return true;
  }
  char name[160];
  snprintf(name, sizeof name, "%s_launch", k->name);
  EmuLaunchFn fn = (EmuLaunchFn)jit_symbol(h->mod, name, err);
  if (!fn) return false;
  int64_t blocks = backend_blocks(&k->launch, batch);
  if (blocks > 0x7FFFFFFF) return rt_fail(err, "kernel %s: %lld blocks is too many", k->name, (long long)blocks);
  if (blocks > 0) fn(args, batch, seed, &h->status, (unsigned)blocks, (unsigned)k->launch.block);
  return jit_emu_check(h->mod, err);
}

/* Row-major C = op(A) op(B) per batch element, via cblas. When B is shared
 * by the whole batch and A's matrices are contiguous, the batch folds into
 * M: one large GEMM instead of many small ones. */
static bool host_gemm(Backend *b, const XKernel *k, void *const *args, int64_t batch, RtError *err) {
  (void)b;
  const GemmDesc *g = &k->gemm;
  int64_t M = dim_value(g->m, batch), N = dim_value(g->n, batch), K = dim_value(g->k, batch), count = 1;
  int64_t idx[IR_MAX_RANK], dims[IR_MAX_RANK], as[IR_MAX_RANK], bs[IR_MAX_RANK];
  bool b_shared = true, a_packed = !g->ta;
  for (int j = g->batch_rank - 1; j >= 0; j--) {
    dims[j] = dim_value(g->batch[j], batch);
    as[j] = dim_value(g->a_stride[j], batch);
    bs[j] = dim_value(g->b_stride[j], batch);
    a_packed &= as[j] == (j == g->batch_rank - 1 ? M * K : as[j + 1] * dims[j + 1]);
    b_shared &= bs[j] == 0;
    count *= dims[j];
  }
  const void *A = args[g->a_arg], *Bm = args[g->b_arg];
  void *C = args[k->ninputs];
  if (k->dtype != DT_F32 && k->dtype != DT_F64)
    return rt_fail(err, "kernel %s: GEMM on %s is not supported on the CPU", k->name, dtype_name(k->dtype));
  bool dbl = k->dtype == DT_F64;
  if (b_shared && a_packed) M *= count, count = 1;
  enum CBLAS_TRANSPOSE ta = g->ta ? CblasTrans : CblasNoTrans, tb = g->tb ? CblasTrans : CblasNoTrans;
  int lda = (int)(g->ta ? M : K), ldb = (int)(g->tb ? K : N);
  for (int64_t i = 0; i < count; i++) {
    int64_t oa = 0, ob = 0, rest = i;
    for (int j = g->batch_rank - 1; j >= 0; j--) {
      idx[j] = rest % dims[j];
      rest /= dims[j];
      oa += idx[j] * as[j];
      ob += idx[j] * bs[j];
    }
    if (dbl)
      cblas_dgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, 1.0, (const double *)A + oa, lda,
                  (const double *)Bm + ob, ldb, 0.0, (double *)C + i * M * N, (int)N);
    else
      cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, 1.0f, (const float *)A + oa, lda,
                  (const float *)Bm + ob, ldb, 0.0f, (float *)C + i * M * N, (int)N);
  }
  return true;
}

static bool host_finish(Backend *b, RtError *err) {
  HostBackend *h = (HostBackend *)b;
  int s = h->status;
  h->status = 0;
  if (s == 1) return rt_fail(err, "an embedding index was out of range (gather/scatter_add)");
  if (s) return rt_fail(err, "a kernel ran out of memory");
  return true;
}

static void host_destroy(Backend *b) {
  HostBackend *h = (HostBackend *)b;
  jit_unload(h->mod);
  free(h->source_copy);
  free(h);
}

Backend *backend_host_open(bool emulate_cuda, RtError *err) {
  HostBackend *h = calloc(1, sizeof *h);
  if (!h) {
    rt_fail(err, "out of memory");
    return NULL;
  }
  h->emulate = emulate_cuda;
  h->base = (Backend){emulate_cuda ? "cuda-emu" : "c", true, host_prepare, host_alloc, host_release, host_copy,
                      host_copy, host_kernel, host_gemm, host_finish, host_destroy};
  return &h->base;
}
