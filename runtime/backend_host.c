/* backend_host.c: the two backends that run on the CPU, in host memory:
 * "c" (the C kernels) and "cuda-emu" (the CUDA kernels through the
 * emulation header). Both do GEMMs with OpenBLAS's cblas.
 *
 * One thread pool: OpenBLAS is kept single-threaded and GEMMs are split
 * over OpenMP threads here, like the kernels. Two pools (OpenBLAS's
 * pthreads and OpenMP's) spin against each other on few cores, which cost
 * a third of the step time on 2 cores. */
#include <cblas.h>
#include <omp.h>
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
  void *arena;         /* kept between runs: a fresh one faults in every page */
  size_t arena_bytes;
  bool arena_busy;
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
  HostBackend *h = (HostBackend *)b;
  size_t size = (bytes + 255) / 256 * 256 + 256;
  if (!h->arena_busy && h->arena && h->arena_bytes >= size) {
    h->arena_busy = true;
    *p = h->arena;
    return true;
  }
  *p = aligned_alloc(256, size);
  if (!*p) return rt_fail(err, "out of memory: %zu bytes for the arena", bytes);
  if (!h->arena_busy) { /* the larger block becomes the kept one */
    free(h->arena);
    h->arena = *p, h->arena_bytes = size, h->arena_busy = true;
  }
  return true;
}

static void host_release(Backend *b, void *p) {
  HostBackend *h = (HostBackend *)b;
  if (p && p == h->arena)
    h->arena_busy = false;
  else
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

/* One row-major GEMM C = op(A) op(B) of the batch, in fixed blocks. */
typedef struct {
  bool dbl;
  enum CBLAS_TRANSPOSE ta, tb;
  int64_t M, N, K, lda, ldb;
} HostGemm;

/* Rows [r0, r1) and columns [c0, c1) of C. */
static void gemm_block(const HostGemm *g, const char *A, const char *B, char *C, int64_t r0, int64_t r1, int64_t c0,
                       int64_t c1) {
  size_t es = g->dbl ? sizeof(double) : sizeof(float);
  A += (size_t)(g->ta == CblasTrans ? r0 : r0 * g->lda) * es;
  B += (size_t)(g->tb == CblasTrans ? c0 * g->ldb : c0) * es;
  C += (size_t)(r0 * g->N + c0) * es;
  int m = (int)(r1 - r0), n = (int)(c1 - c0), k = (int)g->K, lda = (int)g->lda, ldb = (int)g->ldb, ldc = (int)g->N;
  if (g->dbl)
    cblas_dgemm(CblasRowMajor, g->ta, g->tb, m, n, k, 1.0, (const double *)A, lda, (const double *)B, ldb, 0.0,
                (double *)C, ldc);
  else
    cblas_sgemm(CblasRowMajor, g->ta, g->tb, m, n, k, 1.0f, (const float *)A, lda, (const float *)B, ldb, 0.0f,
                (float *)C, ldc);
}

/* The blocks depend on the sizes only, never on the thread count, so the
 * results do not either: up to 16 blocks of at least 2^20 multiply-adds,
 * along the longer side of C. */
enum { GEMM_MAX_BLOCKS = 16, GEMM_BLOCK_MIN_WORK = 1 << 20 };

static void gemm_split(const HostGemm *g, const char *A, const char *B, char *C) {
  double work = (double)g->M * (double)g->N * (double)g->K;
  int64_t side = g->M >= g->N ? g->M : g->N, nb = (int64_t)(work / GEMM_BLOCK_MIN_WORK);
  nb = nb < 1 ? 1 : nb > GEMM_MAX_BLOCKS ? GEMM_MAX_BLOCKS : nb;
  int64_t step = ((side + nb - 1) / nb + 15) / 16 * 16; /* whole SIMD tiles */
  nb = (side + step - 1) / step;
#pragma omp parallel for schedule(static) if (nb > 1)
  for (int64_t i = 0; i < nb; i++) {
    int64_t lo = i * step, hi = lo + step < side ? lo + step : side;
    if (g->M >= g->N)
      gemm_block(g, A, B, C, lo, hi, 0, g->N);
    else
      gemm_block(g, A, B, C, 0, g->M, lo, hi);
  }
}

/* Row-major C = op(A) op(B) per batch element. When B is shared by the
 * whole batch and A's matrices are contiguous, the batch folds into M: one
 * large GEMM instead of many small ones. Batches of several GEMMs run one
 * GEMM per thread. */
static bool host_gemm(Backend *b, const XKernel *k, void *const *args, int64_t batch, RtError *err) {
  (void)b;
  const GemmDesc *g = &k->gemm;
  int64_t M = dim_value(g->m, batch), N = dim_value(g->n, batch), K = dim_value(g->k, batch), count = 1;
  int64_t dims[IR_MAX_RANK], as[IR_MAX_RANK], bs[IR_MAX_RANK];
  bool b_shared = true, a_packed = !g->ta;
  for (int j = g->batch_rank - 1; j >= 0; j--) {
    dims[j] = dim_value(g->batch[j], batch);
    as[j] = dim_value(g->a_stride[j], batch);
    bs[j] = dim_value(g->b_stride[j], batch);
    a_packed &= as[j] == (j == g->batch_rank - 1 ? M * K : as[j + 1] * dims[j + 1]);
    b_shared &= bs[j] == 0;
    count *= dims[j];
  }
  const char *A = args[g->a_arg], *Bm = args[g->b_arg];
  char *C = args[k->ninputs];
  if (k->dtype != DT_F32 && k->dtype != DT_F64)
    return rt_fail(err, "kernel %s: GEMM on %s is not supported on the CPU", k->name, dtype_name(k->dtype));
  if (b_shared && a_packed) M *= count, count = 1;
  HostGemm hg = {k->dtype == DT_F64, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans,
                 M, N, K, g->ta ? M : K, g->tb ? K : N};
  size_t es = hg.dbl ? sizeof(double) : sizeof(float);
  if (count == 1) {
    gemm_split(&hg, A, Bm, C);
    return true;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; i++) {
    int64_t oa = 0, ob = 0, rest = i;
    for (int j = g->batch_rank - 1; j >= 0; j--) {
      int64_t idx = rest % dims[j];
      rest /= dims[j];
      oa += idx * as[j];
      ob += idx * bs[j];
    }
    gemm_block(&hg, A + (size_t)oa * es, Bm + (size_t)ob * es, C + (size_t)(i * M * N) * es, 0, M, 0, N);
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
  free(h->arena);
  free(h);
}

Backend *backend_host_open(bool emulate_cuda, RtError *err) {
  HostBackend *h = calloc(1, sizeof *h);
  if (!h) {
    rt_fail(err, "out of memory");
    return NULL;
  }
  h->emulate = emulate_cuda;
  openblas_set_num_threads(1); /* one thread pool: see the top of the file */
  h->base = (Backend){emulate_cuda ? "cuda-emu" : "c", true, host_prepare, host_alloc, host_release, host_copy,
                      host_copy, host_kernel, host_gemm, host_finish, host_destroy};
  return &h->base;
}
