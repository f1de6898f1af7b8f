/* backend_host.c: the two backends that run on the CPU, in host memory:
 * "c" (the C kernels) and "cuda-emu" (the CUDA kernels through the
 * emulation header). Both do GEMMs with OpenBLAS's cblas.
 *
 * One thread pool: OpenBLAS is kept single-threaded and the C backend's
 * GEMMs are split over the module's OpenMP threads (irepa_gemm in
 * prelude/c_ops.h), like its kernels. Two pools (OpenBLAS's pthreads and
 * OpenMP's) spin against each other on few cores, which cost a third of
 * the step time on 2 cores. The emulated CUDA backend calls cblas here. */
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

typedef void (*GemmFn)(int dbl, int ta, int tb, int64_t m, int64_t n, int64_t k, const void *a, const void *b,
                       void *c, int64_t count, const int64_t *a_off, const int64_t *b_off);

/* The emulated backend's GEMMs, one cblas call per product. */
static void serial_gemm(int dbl, int ta, int tb, int64_t m, int64_t n, int64_t k, const void *a, const void *b,
                        void *c, int64_t count, const int64_t *a_off, const int64_t *b_off) {
  enum CBLAS_TRANSPOSE ota = ta ? CblasTrans : CblasNoTrans, otb = tb ? CblasTrans : CblasNoTrans;
  int lda = (int)(ta ? m : k), ldb = (int)(tb ? k : n);
  for (int64_t i = 0; i < count; i++)
    if (dbl)
      cblas_dgemm(CblasRowMajor, ota, otb, (int)m, (int)n, (int)k, 1.0, (const double *)a + a_off[i], lda,
                  (const double *)b + b_off[i], ldb, 0.0, (double *)c + i * m * n, (int)n);
    else
      cblas_sgemm(CblasRowMajor, ota, otb, (int)m, (int)n, (int)k, 1.0f, (const float *)a + a_off[i], lda,
                  (const float *)b + b_off[i], ldb, 0.0f, (float *)c + i * m * n, (int)n);
}

/* bf16 or f16 operands, as cuBLAS takes them under --mixed-precision: the
 * products in f32 from the operands widened exactly, the result rounded to
 * the low precision (round to nearest even), as a GEMM with f32
 * accumulation writing a low-precision C does. For cuda-emu's checks, not
 * for speed. */
static float widen(DType t, uint16_t h) { return t == DT_BF16 ? bf16_to_f32(h) : f16_to_f32(h); }

static bool low_precision_gemm(GemmFn fn, DType t, const GemmDesc *g, int64_t M, int64_t N, int64_t K, const void *a,
                               const void *b, void *c, int64_t count, const int64_t *off, RtError *err) {
  int64_t na = 0, nb = 0;
  for (int64_t i = 0; i < count; i++) {
    if (off[i] + M * K > na) na = off[i] + M * K;
    if (off[count + i] + K * N > nb) nb = off[count + i] + K * N;
  }
  float *fa = malloc(sizeof(float) * (size_t)na), *fb = malloc(sizeof(float) * (size_t)nb),
        *fc = malloc(sizeof(float) * (size_t)(count * M * N));
  bool ok = fa && fb && fc;
  if (ok) {
    for (int64_t i = 0; i < na; i++) fa[i] = widen(t, ((const uint16_t *)a)[i]);
    for (int64_t i = 0; i < nb; i++) fb[i] = widen(t, ((const uint16_t *)b)[i]);
    fn(0, g->ta, g->tb, M, N, K, fa, fb, fc, count, off, off + count);
    for (int64_t i = 0; i < count * M * N; i++)
      ((uint16_t *)c)[i] = t == DT_BF16 ? f32_to_bf16(fc[i]) : f32_to_f16(fc[i]);
  }
  free(fa), free(fb), free(fc);
  return ok || rt_fail(err, "out of memory");
}

/* Row-major C = op(A) op(B) per batch element. When B is shared by the
 * whole batch and A's matrices are contiguous, the batch folds into M: one
 * large GEMM instead of many small ones. */
static bool host_gemm(Backend *b, const XKernel *k, void *const *args, int64_t batch, RtError *err) {
  HostBackend *h = (HostBackend *)b;
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
  bool low = k->dtype == DT_BF16 || k->dtype == DT_F16;
  if (k->dtype != DT_F32 && k->dtype != DT_F64 && !low)
    return rt_fail(err, "kernel %s: GEMM on %s is not supported on the CPU", k->name, dtype_name(k->dtype));
  if (b_shared && a_packed) M *= count, count = 1;
  GemmFn fn = h->emulate ? serial_gemm : (GemmFn)jit_symbol(h->mod, "irepa_gemm", err);
  int64_t *off = malloc(sizeof(int64_t) * 2 * (size_t)count);
  if (!fn || !off) {
    free(off);
    return fn ? rt_fail(err, "out of memory") : false;
  }
  for (int64_t i = 0; i < count; i++) {
    int64_t rest = i;
    off[i] = off[count + i] = 0;
    for (int j = g->batch_rank - 1; j >= 0; j--) {
      int64_t idx = rest % dims[j];
      rest /= dims[j];
      off[i] += idx * as[j];
      off[count + i] += idx * bs[j];
    }
  }
  bool ok = low ? low_precision_gemm(fn, k->dtype, g, M, N, K, args[g->a_arg], args[g->b_arg], args[k->ninputs], count,
                                     off, err)
                : (fn(k->dtype == DT_F64, g->ta, g->tb, M, N, K, args[g->a_arg], args[g->b_arg], args[k->ninputs],
                      count, off, off + count),
                   true);
  free(off);
  if (!ok) return false;
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
