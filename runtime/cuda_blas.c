/* cuda_blas.c: cuBLAS, loaded with dlopen, for the GEMMs of the CUDA
 * backend. One entry point, blas_gemm: a strided-batched GEMM on row-major
 * matrices, fp32 (cublasSgemmStridedBatched) or fp16/bf16 inputs with fp32
 * accumulation (cublasGemmStridedBatchedEx, CUBLAS_COMPUTE_32F).
 *
 * Row-major on a column-major library: a row-major r x c matrix with row
 * pitch ld is, byte for byte, the column-major c x r matrix (its transpose)
 * with leading dimension ld. So for row-major C = op(A) op(B) we ask cuBLAS
 * for C^T = op(B)^T op(A)^T, which it reads and writes as column-major:
 * operands swapped, m and n swapped, trans flags unchanged, no copy. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cuda_api.h"
#include "cuda_dl.h"

/* From cublas_api.h and library_types.h (CUDA 13); values must match. */
typedef enum { CUBLAS_STATUS_SUCCESS = 0 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType;
typedef enum { CUBLAS_COMPUTE_32F = 68 } cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;

static struct {
  cublasStatus_t (*Create)(cublasHandle_t *);
  cublasStatus_t (*Destroy)(cublasHandle_t);
  cublasStatus_t (*SetStream)(cublasHandle_t, CUstream);
  cublasStatus_t (*SetWorkspace)(cublasHandle_t, void *, size_t);
  const char *(*GetStatusName)(cublasStatus_t);   /* optional: cuBLAS >= 11.4 */
  const char *(*GetStatusString)(cublasStatus_t); /* optional */
  cublasStatus_t (*SgemmStridedBatched)(cublasHandle_t, cublasOperation_t, cublasOperation_t,
                                        int, int, int, const float *, const float *, int,
                                        long long, const float *, int, long long,
                                        const float *, float *, int, long long, int);
  cublasStatus_t (*GemmStridedBatchedEx)(cublasHandle_t, cublasOperation_t, cublasOperation_t,
                                         int, int, int, const void *, const void *,
                                         cudaDataType, int, long long, const void *,
                                         cudaDataType, int, long long, const void *, void *,
                                         cudaDataType, int, long long, int,
                                         cublasComputeType_t, cublasGemmAlgo_t);
} cb;

static CudaLib cb_lib = CUDA_LIB_INIT;

static bool blas_load(CudaLib *l, RtError *err) {
  static const char *const names[] = {"libcublas.so", "libcublas.so.13", "libcublas.so.12",
                                      "/usr/local/cuda/lib64/libcublas.so", NULL};
  const CudaSym syms[] = {
      {"cublasCreate_v2", &cb.Create, false},
      {"cublasDestroy_v2", &cb.Destroy, false},
      {"cublasSetStream_v2", &cb.SetStream, false},
      {"cublasSetWorkspace_v2", &cb.SetWorkspace, false},
      {"cublasGetStatusName", &cb.GetStatusName, true},
      {"cublasGetStatusString", &cb.GetStatusString, true},
      {"cublasSgemmStridedBatched", &cb.SgemmStridedBatched, false},
      {"cublasGemmStridedBatchedEx", &cb.GemmStridedBatchedEx, false},
  };
  RtError why;
  l->lib = cuda_dl_open("IREPA_CUBLAS_LIB", names, &why);
  if (!l->lib)
    return rt_fail(err, "cuBLAS not found: %s; set IREPA_CUBLAS_LIB to the library's path",
                   why.msg);
  if (cuda_dl_bind(l->lib, "libcublas", syms, sizeof syms / sizeof syms[0], err)) return true;
  dlclose(l->lib);
  l->lib = NULL;
  return false;
}

bool blas_available(RtError *err) { return cuda_lib_ensure(&cb_lib, blas_load, err); }

void cuda_blas_shutdown(void) { cuda_lib_close(&cb_lib, &cb, sizeof cb); }

/* "CALL: CUBLAS_STATUS_X (description)" into err. */
static bool blas_fail(cublasStatus_t s, const char *call, const char *hint, RtError *err) {
  const char *name = cb.GetStatusName ? cb.GetStatusName(s) : NULL;
  const char *desc = cb.GetStatusString ? cb.GetStatusString(s) : NULL;
  return rt_fail(err, "%s: %s (%s, code %d)%s", call, name ? name : "cublasStatus_t",
                 desc ? desc : "no description", (int)s, hint);
}

bool blas_create(cublasHandle_t *h, RtError *err) {
  *h = NULL;
  if (!blas_available(err)) return false;
  cublasStatus_t s = cb.Create(h);
  if (s == CUBLAS_STATUS_SUCCESS) return true;
  *h = NULL;
  return blas_fail(s, "cublasCreate", "; is a CUDA context current (cu_context_create)?", err);
}

void blas_destroy(cublasHandle_t h) {
  if (h && blas_available(NULL)) cb.Destroy(h);
}

bool blas_set_stream(cublasHandle_t h, CUstream s, RtError *err) {
  if (!blas_available(err)) return false;
  cublasStatus_t r = cb.SetStream(h, s);
  return r == CUBLAS_STATUS_SUCCESS || blas_fail(r, "cublasSetStream", "", err);
}

bool blas_set_workspace(cublasHandle_t h, CUdeviceptr ws, size_t bytes, RtError *err) {
  if (!blas_available(err)) return false;
  cublasStatus_t r = cb.SetWorkspace(h, (void *)(uintptr_t)ws, bytes);
  return r == CUBLAS_STATUS_SUCCESS || blas_fail(r, "cublasSetWorkspace", "", err);
}

/* ---- argument checks and the row-major -> column-major mapping ---- */

static bool types_ok(DType ab, DType c) {
  if (ab == DT_F32) return c == DT_F32;
  return (ab == DT_F16 || ab == DT_BF16) && (c == DT_F32 || c == ab);
}

/* A stored rows x cols row-major matrix needs a pitch of at least cols
 * (and at least 1, as cuBLAS wants even for empty matrices). */
static bool pitch_ok(const char *what, int64_t *ld, int64_t cols, RtError *err) {
  int64_t min = cols > 1 ? cols : 1;
  if (*ld == 0) *ld = min;
  if (*ld < min || *ld > INT_MAX)
    return rt_fail(err, "blas_gemm: ld%s = %lld, need %lld..%d", what, (long long)*ld,
                   (long long)min, INT_MAX);
  return true;
}

static bool sizes_ok(const BlasGemm *g, RtError *err) {
  if (g->m < 0 || g->n < 0 || g->k < 0 || g->batch < 0)
    return rt_fail(err, "blas_gemm: negative size (m=%d n=%d k=%d batch=%d)", g->m, g->n, g->k,
                   g->batch);
  if (g->stride_a < 0 || g->stride_b < 0 || g->stride_c < 0)
    return rt_fail(err, "blas_gemm: negative batch stride");
  if (!types_ok(g->ab_type, g->c_type))
    return rt_fail(err, "blas_gemm: unsupported types %s x %s -> %s (f32->f32, or f16/bf16 "
                   "-> f32 or the same type)", dtype_name(g->ab_type), dtype_name(g->ab_type),
                   dtype_name(g->c_type));
  return true;
}

bool blas_colmajor_args(const BlasGemm *g, BlasColMajor *cm, RtError *err) {
  int64_t lda = g->lda, ldb = g->ldb, ldc = g->ldc;
  if (!sizes_ok(g, err) || !pitch_ok("a", &lda, g->trans_a ? g->m : g->k, err) ||
      !pitch_ok("b", &ldb, g->trans_b ? g->k : g->n, err) || !pitch_ok("c", &ldc, g->n, err))
    return false;
  *cm = (BlasColMajor){
      .trans_a = g->trans_b, .trans_b = g->trans_a,
      .m = g->n, .n = g->m, .k = g->k,
      .a = g->b, .b = g->a, .c = g->c,
      .lda = ldb, .ldb = lda, .ldc = ldc,
      .stride_a = g->stride_b, .stride_b = g->stride_a, .stride_c = g->stride_c,
  };
  return true;
}

/* ---- the calls ---- */

static cudaDataType cuda_type(DType t) {
  return t == DT_F16 ? CUDA_R_16F : t == DT_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

static cublasOperation_t op(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

static bool gemm_fail(cublasStatus_t s, const char *fn, const BlasGemm *g, RtError *err) {
  char call[160];
  snprintf(call, sizeof call, "%s(row-major m=%d n=%d k=%d batch=%d, %s -> %s)", fn, g->m, g->n,
           g->k, g->batch, dtype_name(g->ab_type), dtype_name(g->c_type));
  return blas_fail(s, call, "", err);
}

static bool sgemm(cublasHandle_t h, const BlasGemm *g, const BlasColMajor *cm, RtError *err) {
  cublasStatus_t s = cb.SgemmStridedBatched(
      h, op(cm->trans_a), op(cm->trans_b), cm->m, cm->n, cm->k, &g->alpha,
      (const float *)(uintptr_t)cm->a, (int)cm->lda, cm->stride_a,
      (const float *)(uintptr_t)cm->b, (int)cm->ldb, cm->stride_b, &g->beta,
      (float *)(uintptr_t)cm->c, (int)cm->ldc, cm->stride_c, g->batch);
  return s == CUBLAS_STATUS_SUCCESS || gemm_fail(s, "cublasSgemmStridedBatched", g, err);
}

/* fp32 compute, so alpha and beta are floats whatever the storage types. */
static bool gemm_ex(cublasHandle_t h, const BlasGemm *g, const BlasColMajor *cm, RtError *err) {
  cudaDataType ab = cuda_type(g->ab_type), c = cuda_type(g->c_type);
  cublasStatus_t s = cb.GemmStridedBatchedEx(
      h, op(cm->trans_a), op(cm->trans_b), cm->m, cm->n, cm->k, &g->alpha,
      (const void *)(uintptr_t)cm->a, ab, (int)cm->lda, cm->stride_a,
      (const void *)(uintptr_t)cm->b, ab, (int)cm->ldb, cm->stride_b, &g->beta,
      (void *)(uintptr_t)cm->c, c, (int)cm->ldc, cm->stride_c, g->batch, CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT);
  return s == CUBLAS_STATUS_SUCCESS || gemm_fail(s, "cublasGemmStridedBatchedEx", g, err);
}

bool blas_gemm(cublasHandle_t h, const BlasGemm *g, RtError *err) {
  BlasColMajor cm;
  if (!blas_colmajor_args(g, &cm, err)) return false;
  if (g->m == 0 || g->n == 0 || g->batch == 0) return true; /* nothing to write */
  if (!h) return rt_fail(err, "blas_gemm: no cuBLAS handle (blas_create)");
  if (!cm.a || !cm.b || !cm.c) return rt_fail(err, "blas_gemm: NULL device pointer");
  if (!blas_available(err)) return false;
  return g->ab_type == DT_F32 ? sgemm(h, g, &cm, err) : gemm_ex(h, g, &cm, err);
}
