/* Tests of runtime/cuda_drv.c and cuda_blas.c.
 *
 * Without arguments (label unit, any machine): with no driver, cu_available
 * says "no CUDA driver" and every wrapper fails cleanly; the library search
 * lists what it tried; cuBLAS loads with no GPU; and blas_gemm's row-major
 * to column-major mapping is checked on the CPU against a column-major
 * reference GEMM, with its argument checks.
 *
 * With --gpu (label gpu): memory, NVRTC + module + launch (saxpy and a
 * block reduction), cuBLAS fp32 and bf16 GEMMs against CPU loops, and a
 * captured CUDA graph replayed. Exits 77 (skip) where there is no driver or
 * no device. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_api.h"
#include "cuda_dl.h"
#include "cuda_test_kernels.h"

/* ---- any machine ---- */

static bool driver_loadable(void) {
  void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h) dlclose(h);
  return h != NULL;
}

/* Where libcuda.so.1 is absent the message is exact, and every wrapper
 * fails with it instead of calling through a NULL pointer. */
static void test_no_driver(void **state) {
  (void)state;
  RtError err = {{0}};
  if (cu_available(&err)) {
    int sm = 0;
    assert_true(cu_device_arch(0, &sm, &err));
    printf("  a CUDA device is present (sm_%d): nothing to check here\n", sm);
    return;
  }
  printf("  %s\n", err.msg);
  if (driver_loadable())
    assert_true(strncmp(err.msg, "no CUDA device", 14) == 0 ||
                strncmp(err.msg, "CUDA driver unusable", 20) == 0);
  else
    assert_true(strncmp(err.msg, "no CUDA driver (libcuda.so.1 not found", 38) == 0);
  char first[sizeof err.msg];
  snprintf(first, sizeof first, "%s", err.msg);

  CUdeviceptr p = 0;
  CuContext ctx = {0};
  CUstream s = NULL;
  CUgraphExec g = NULL;
  unsigned dims[3] = {1, 1, 1};
  int sm = 0;
  assert_false(cu_alloc(&p, 16, &err));
  assert_string_equal(err.msg, first);
  assert_false(cu_device_arch(0, &sm, &err));
  assert_false(cu_context_create(0, &ctx, &err));
  assert_false(cu_stream_create(&s, &err));
  assert_false(cu_launch(NULL, dims, dims, 0, NULL, NULL, &err));
  assert_false(cu_graph_end(NULL, &g, &err));
  assert_null(g);
  assert_string_equal(err.msg, first);
  assert_true(cu_free(0, &err));
  cu_context_destroy(&ctx);
  cu_module_unload(NULL);
  cu_stream_destroy(NULL);
  cu_graph_destroy(NULL);
}

static void test_dl_open_lists_tried(void **state) {
  (void)state;
  static const char *const names[] = {"libirepa_absent_1.so", "/nonexistent/libirepa_2.so", NULL};
  RtError err = {{0}};
  setenv("IREPA_TEST_DL_LIB", "/nonexistent/override.so", 1);
  assert_null(cuda_dl_open("IREPA_TEST_DL_LIB", names, &err));
  unsetenv("IREPA_TEST_DL_LIB");
  printf("  %s\n", err.msg);
  assert_non_null(strstr(err.msg, "$IREPA_TEST_DL_LIB=/nonexistent/override.so, "
                                  "libirepa_absent_1.so, /nonexistent/libirepa_2.so"));
  assert_non_null(strstr(err.msg, "libirepa_2.so"));
}

/* cuBLAS loads without a GPU; creating a handle needs a context. */
static void test_blas_loads(void **state) {
  (void)state;
  RtError err = {{0}};
  if (!blas_available(&err)) {
    printf("  %s\n", err.msg);
    skip();
  }
  if (cu_available(NULL)) return;
  cublasHandle_t h = (cublasHandle_t)&err;
  assert_false(blas_create(&h, &err));
  assert_null(h);
  printf("  without a driver: %s\n", err.msg);
  assert_non_null(strstr(err.msg, "cublasCreate"));
}

/* Column-major C = alpha op(A) op(B) + beta C as BLAS defines it, on host
 * arrays addressed through the CUdeviceptr fields. */
static void ref_gemm_colmajor(const BlasColMajor *cm, int batch, float alpha, float beta) {
  for (int b = 0; b < batch; b++) {
    const float *A = (const float *)(uintptr_t)cm->a + b * cm->stride_a;
    const float *B = (const float *)(uintptr_t)cm->b + b * cm->stride_b;
    float *C = (float *)(uintptr_t)cm->c + b * cm->stride_c;
    for (int j = 0; j < cm->n; j++)
      for (int i = 0; i < cm->m; i++) {
        double acc = 0;
        for (int l = 0; l < cm->k; l++) {
          double a = cm->trans_a ? A[l + i * cm->lda] : A[i + l * cm->lda];
          double bv = cm->trans_b ? B[j + l * cm->ldb] : B[l + j * cm->ldb];
          acc += a * bv;
        }
        C[i + j * cm->ldc] = (float)(alpha * acc + beta * C[i + j * cm->ldc]);
      }
  }
}

/* Row-major C[i] = alpha op(A[i]) op(B[i]) + beta C[i], written plainly. */
static void ref_gemm_rowmajor(const BlasGemm *g, const float *A, const float *B, float *C,
                              int64_t lda, int64_t ldb, int64_t ldc) {
  for (int b = 0; b < g->batch; b++)
    for (int i = 0; i < g->m; i++)
      for (int j = 0; j < g->n; j++) {
        double acc = 0;
        for (int l = 0; l < g->k; l++) {
          const float *a = A + b * g->stride_a, *bb = B + b * g->stride_b;
          acc += (double)(g->trans_a ? a[l * lda + i] : a[i * lda + l]) *
                 (g->trans_b ? bb[j * ldb + l] : bb[l * ldb + j]);
        }
        float *c = C + b * g->stride_c + i * ldc + j;
        *c = (float)(g->alpha * acc + g->beta * *c);
      }
}

static void fill(float *x, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (float)((seed >> 8) % 2001) / 1000.0f - 1.0f;
  }
}

/* One shape, every trans combination, padded pitches, batch 3: the mapped
 * column-major call computes exactly the row-major product. */
static void test_gemm_mapping(void **state) {
  (void)state;
  enum { M = 5, N = 7, K = 4, PAD = 3, BATCH = 3, SZ = 16 * 16 };
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      static float A[BATCH * SZ], B[BATCH * SZ], C1[BATCH * SZ], C2[BATCH * SZ];
      fill(A, BATCH * SZ, 1);
      fill(B, BATCH * SZ, 2);
      fill(C1, BATCH * SZ, 3);
      memcpy(C2, C1, sizeof C1);
      BlasGemm g = {.m = M, .n = N, .k = K, .batch = BATCH, .trans_a = ta, .trans_b = tb,
                    .a = (uintptr_t)A, .b = (uintptr_t)B, .c = (uintptr_t)C1,
                    .lda = (ta ? M : K) + PAD, .ldb = (tb ? K : N) + PAD, .ldc = N + PAD,
                    .stride_a = SZ, .stride_b = SZ, .stride_c = SZ,
                    .ab_type = DT_F32, .c_type = DT_F32, .alpha = 1.5f, .beta = -0.5f};
      BlasColMajor cm;
      RtError err = {{0}};
      if (!blas_colmajor_args(&g, &cm, &err)) fail_msg("%s", err.msg);
      ref_gemm_colmajor(&cm, g.batch, g.alpha, g.beta);
      ref_gemm_rowmajor(&g, A, B, C2, g.lda, g.ldb, g.ldc);
      for (int i = 0; i < BATCH * SZ; i++) assert_float_equal(C1[i], C2[i], 1e-5);
    }
}

static void test_gemm_packed_pitches(void **state) {
  (void)state;
  BlasGemm g = {.m = 3, .n = 5, .k = 2, .batch = 1, .trans_a = true,
                .ab_type = DT_BF16, .c_type = DT_F32};
  BlasColMajor cm;
  assert_true(blas_colmajor_args(&g, &cm, NULL));
  assert_int_equal(cm.m, 5);
  assert_int_equal(cm.n, 3);
  assert_int_equal(cm.lda, 5); /* B stored 2 x 5 */
  assert_int_equal(cm.ldb, 3); /* A stored 2 x 3 (transposed) */
  assert_int_equal(cm.ldc, 5);
  assert_false(cm.trans_a);
  assert_true(cm.trans_b);
}

static void expect_gemm_error(BlasGemm g, const char *what) {
  RtError err = {{0}};
  assert_false(blas_gemm(NULL, &g, &err));
  printf("  %s\n", err.msg);
  assert_non_null(strstr(err.msg, what));
}

static void test_gemm_argument_errors(void **state) {
  (void)state;
  BlasGemm ok = {.m = 4, .n = 4, .k = 4, .batch = 1, .ab_type = DT_F32, .c_type = DT_F32};
  BlasGemm g = ok;
  g.c_type = DT_F16;
  expect_gemm_error(g, "unsupported types f32 x f32 -> f16");
  g = ok, g.ab_type = DT_F64, g.c_type = DT_F64;
  expect_gemm_error(g, "unsupported types");
  g = ok, g.k = -1;
  expect_gemm_error(g, "negative size");
  g = ok, g.lda = 3;
  expect_gemm_error(g, "lda = 3, need 4");
  g = ok, g.trans_b = true, g.ldb = 2;
  expect_gemm_error(g, "ldb = 2, need 4");
  g = ok, g.stride_c = -4;
  expect_gemm_error(g, "negative batch stride");
  expect_gemm_error(ok, "no cuBLAS handle");
  g = ok, g.m = 0;
  assert_true(blas_gemm(NULL, &g, NULL)); /* nothing to do */
}

static int run_unit_tests(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_driver),
      cmocka_unit_test(test_dl_open_lists_tried),
      cmocka_unit_test(test_blas_loads),
      cmocka_unit_test(test_gemm_mapping),
      cmocka_unit_test(test_gemm_packed_pitches),
      cmocka_unit_test(test_gemm_argument_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* ---- with a GPU ---- */

typedef struct {
  CuContext ctx;
  CUstream stream;
  cublasHandle_t blas;
  CUdeviceptr workspace;
} Gpu;

enum { WORKSPACE_BYTES = 32 << 20 };

/* Fails the test with err's message (which names the failing call). */
static void must(bool ok, const RtError *err) {
  if (!ok) fail_msg("%s", err->msg);
}

static int gpu_setup(void **state) {
  static Gpu gpu;
  RtError err = {{0}};
  char name[256] = "";
  int version = 0;
  if (!cu_driver_version(&version, &err) || !cu_context_create(0, &gpu.ctx, &err) ||
      !cu_device_name(0, name, sizeof name, &err) ||
      !cu_stream_create(&gpu.stream, &err) || !blas_create(&gpu.blas, &err) ||
      !blas_set_stream(gpu.blas, gpu.stream, &err) ||
      !cu_alloc(&gpu.workspace, WORKSPACE_BYTES, &err) ||
      !blas_set_workspace(gpu.blas, gpu.workspace, WORKSPACE_BYTES, &err)) {
    fprintf(stderr, "GPU setup: %s\n", err.msg);
    return -1;
  }
  printf("  device 0: %s, sm_%d, driver CUDA %d.%d\n", name, gpu.ctx.sm, version / 1000,
         version % 1000 / 10);
  *state = &gpu;
  return 0;
}

static int gpu_teardown(void **state) {
  Gpu *gpu = *state;
  if (!gpu) return 0;
  blas_destroy(gpu->blas);
  cu_free(gpu->workspace, NULL);
  cu_stream_destroy(gpu->stream);
  cu_context_destroy(&gpu->ctx);
  return 0;
}

static void test_gpu_memory(void **state) {
  (void)state;
  enum { N = 1 << 18 };
  RtError err = {{0}};
  unsigned char *h = malloc(N), *back = malloc(N);
  for (int i = 0; i < N; i++) h[i] = (unsigned char)(i * 7);
  CUdeviceptr d = 0, d2 = 0;
  must(cu_alloc(&d, N, &err), &err);
  must(cu_alloc(&d2, N, &err), &err);
  must(cu_memcpy_htod(d, h, N, &err), &err);
  must(cu_memset(d + 100, 0xab, 1000, &err), &err);
  must(cu_memcpy_dtod(d2, d, N, &err), &err);
  must(cu_memcpy_dtoh(back, d2, N, &err), &err);
  for (int i = 0; i < N; i++)
    assert_int_equal(back[i], i >= 100 && i < 1100 ? 0xab : (unsigned char)(i * 7));
  must(cu_free(d, &err), &err);
  must(cu_free(d2, &err), &err);
  assert_false(cu_alloc(&d, (size_t)1 << 50, &err)); /* a petabyte */
  printf("  %s\n", err.msg);
  assert_non_null(strstr(err.msg, "cuMemAlloc"));
  free(h);
  free(back);
}

/* Host <-> device on the test's stream. Not the synchronous cu_memcpy_*:
 * those run on the legacy default stream, which does not order with the
 * non-blocking stream the kernels and GEMMs run on. */
static void upload(const Gpu *gpu, CUdeviceptr d, const void *h, size_t bytes) {
  RtError err = {{0}};
  must(cu_memcpy_htod_async(d, h, bytes, gpu->stream, &err), &err);
}

/* Waits for everything queued before it. */
static void download(const Gpu *gpu, void *h, CUdeviceptr d, size_t bytes) {
  RtError err = {{0}};
  must(cu_memcpy_dtoh_async(h, d, bytes, gpu->stream, &err), &err);
  must(cu_stream_sync(gpu->stream, &err), &err);
}

/* Compiles src for the device, loads it and looks up kernel. */
static CUmodule load_kernel(const Gpu *gpu, const char *src, const char *kernel,
                            CUfunction *fn) {
  char arch[16];
  void *cubin = NULL;
  size_t size = 0;
  CUmodule m = NULL;
  RtError err = {{0}};
  snprintf(arch, sizeof arch, "sm_%d", gpu->ctx.sm);
  must(rtc_compile(src, kernel, arch, NULL, 0, &cubin, &size, &err), &err);
  must(cu_module_load(cubin, &m, &err), &err);
  free(cubin);
  must(cu_function(m, kernel, fn, &err), &err);
  return m;
}

static void test_gpu_saxpy_and_sum(void **state) {
  Gpu *gpu = *state;
  enum { N = (1 << 20) + 7, BLOCKS = 120, THREADS = 256 };
  RtError err = {{0}};
  float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *out = malloc(N * sizeof *out);
  fill(x, N, 4);
  fill(y, N, 5);
  CUdeviceptr dx, dy, dsum;
  must(cu_alloc(&dx, N * sizeof *x, &err), &err);
  must(cu_alloc(&dy, N * sizeof *y, &err), &err);
  must(cu_alloc(&dsum, BLOCKS * sizeof(float), &err), &err);
  upload(gpu, dx, x, N * sizeof *x);
  upload(gpu, dy, y, N * sizeof *y);

  CUfunction saxpy, sum;
  CUmodule m1 = load_kernel(gpu, SAXPY_SRC, "saxpy", &saxpy);
  CUmodule m2 = load_kernel(gpu, BLOCK_SUM_SRC, "block_sum", &sum);
  int n = N;
  float a = 0.75f;
  void *p1[] = {&n, &a, &dx, &dy};
  void *p2[] = {&n, &dy, &dsum};
  unsigned grid[3] = {BLOCKS, 1, 1}, block[3] = {THREADS, 1, 1};
  must(cu_launch(saxpy, grid, block, 0, gpu->stream, p1, &err), &err);
  must(cu_launch(sum, grid, block, 0, gpu->stream, p2, &err), &err);
  download(gpu, out, dy, N * sizeof *out);
  double want = 0, got = 0;
  for (int i = 0; i < N; i++) {
    assert_float_equal(out[i], fmaf(a, x[i], y[i]), 1e-6);
    want += out[i];
  }
  download(gpu, out, dsum, BLOCKS * sizeof *out);
  for (int b = 0; b < BLOCKS; b++) got += out[b];
  printf("  saxpy over %d, block sums %.6f vs %.6f\n", N, got, want);
  assert_float_equal(got, want, 1e-3 * (1 + fabs(want)));
  cu_module_unload(m1);
  cu_module_unload(m2);
  cu_free(dx, NULL);
  cu_free(dy, NULL);
  cu_free(dsum, NULL);
  free(x);
  free(y);
  free(out);
}

/* Row-major GEMM on the GPU vs ref_gemm_rowmajor, for every trans pair. ab
 * is f32 or bf16 (then inputs are rounded to bf16 on the host first, so the
 * CPU sees what the GPU sees). */
static void gemm_vs_cpu(Gpu *gpu, DType ab, double tol) {
  enum { M = 37, N = 53, K = 29, BATCH = 3, SZ = 64 * 64 };
  RtError err = {{0}};
  float *A = malloc(BATCH * SZ * 4), *B = malloc(BATCH * SZ * 4);
  float *C = calloc(BATCH * SZ, 4), *ref = calloc(BATCH * SZ, 4);
  uint16_t *h16 = malloc(2 * BATCH * SZ * 2);
  fill(A, BATCH * SZ, 6);
  fill(B, BATCH * SZ, 7);
  size_t esz = ab == DT_F32 ? 4 : 2;
  CUdeviceptr dA, dB, dC;
  must(cu_alloc(&dA, BATCH * SZ * esz, &err), &err);
  must(cu_alloc(&dB, BATCH * SZ * esz, &err), &err);
  must(cu_alloc(&dC, BATCH * SZ * 4, &err), &err);
  float *src[2] = {A, B};
  CUdeviceptr dst[2] = {dA, dB};
  for (int t = 0; t < 2; t++) {
    if (ab == DT_F32) {
      upload(gpu, dst[t], src[t], BATCH * SZ * 4);
      continue;
    }
    uint16_t *h = h16 + t * BATCH * SZ;
    for (int i = 0; i < BATCH * SZ; i++) {
      h[i] = f32_to_bf16(src[t][i]);
      src[t][i] = bf16_to_f32(h[i]);
    }
    upload(gpu, dst[t], h, BATCH * SZ * 2);
  }
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      BlasGemm g = {.m = M, .n = N, .k = K, .batch = BATCH, .trans_a = ta, .trans_b = tb,
                    .a = dA, .b = dB, .c = dC, .stride_a = SZ, .stride_b = SZ, .stride_c = SZ,
                    .ab_type = ab, .c_type = DT_F32, .alpha = 1.0f, .beta = 0.0f};
      must(cu_memset_async(dC, 0, BATCH * SZ * 4, gpu->stream, &err), &err);
      must(blas_gemm(gpu->blas, &g, &err), &err);
      download(gpu, C, dC, BATCH * SZ * 4);
      memset(ref, 0, BATCH * SZ * 4);
      ref_gemm_rowmajor(&g, A, B, ref, ta ? M : K, tb ? K : N, N);
      double maxdiff = 0;
      for (int i = 0; i < BATCH * SZ; i++) maxdiff = fmax(maxdiff, fabs(C[i] - ref[i]));
      printf("  %s gemm trans_a=%d trans_b=%d: maxdiff %.3g (tol %.1g)\n", dtype_name(ab), ta,
             tb, maxdiff, tol);
      assert_true(maxdiff <= tol);
    }
  cu_free(dA, NULL);
  cu_free(dB, NULL);
  cu_free(dC, NULL);
  free(A);
  free(B);
  free(C);
  free(ref);
  free(h16);
}

static void test_gpu_sgemm(void **state) { gemm_vs_cpu(*state, DT_F32, 1e-4); }

static void test_gpu_bf16_gemm(void **state) { gemm_vs_cpu(*state, DT_BF16, 1e-4); }

/* A saxpy and a GEMM captured once, replayed three times: y gains 3*a*x,
 * C is A@B each time (beta = 0). */
static void test_gpu_graph(void **state) {
  Gpu *gpu = *state;
  enum { N = 4096, D = 32 };
  RtError err = {{0}};
  float x[N], y[N], out[N], A[D * D], B[D * D], C[D * D];
  fill(x, N, 8);
  fill(y, N, 9);
  fill(A, D * D, 10);
  fill(B, D * D, 11);
  CUdeviceptr dx, dy, dA, dB, dC;
  must(cu_alloc(&dx, sizeof x, &err), &err);
  must(cu_alloc(&dy, sizeof y, &err), &err);
  must(cu_alloc(&dA, sizeof A, &err), &err);
  must(cu_alloc(&dB, sizeof B, &err), &err);
  must(cu_alloc(&dC, sizeof C, &err), &err);
  upload(gpu, dx, x, sizeof x);
  upload(gpu, dy, y, sizeof y);
  upload(gpu, dA, A, sizeof A);
  upload(gpu, dB, B, sizeof B);
  CUfunction saxpy;
  CUmodule m = load_kernel(gpu, SAXPY_SRC, "saxpy", &saxpy);
  int n = N;
  float a = 0.5f;
  void *params[] = {&n, &a, &dx, &dy};
  unsigned grid[3] = {8, 1, 1}, block[3] = {128, 1, 1};
  BlasGemm g = {.m = D, .n = D, .k = D, .batch = 1, .a = dA, .b = dB, .c = dC,
                .ab_type = DT_F32, .c_type = DT_F32, .alpha = 1.0f, .beta = 0.0f};
  CUgraphExec exec = NULL;
  must(cu_graph_begin(gpu->stream, &err), &err);
  must(cu_memset_async(dC, 0xff, sizeof C, gpu->stream, &err), &err);
  must(cu_launch(saxpy, grid, block, 0, gpu->stream, params, &err), &err);
  must(blas_gemm(gpu->blas, &g, &err), &err);
  must(cu_graph_end(gpu->stream, &exec, &err), &err);
  for (int r = 0; r < 3; r++) must(cu_graph_launch(exec, gpu->stream, &err), &err);
  download(gpu, out, dy, sizeof out);
  download(gpu, C, dC, sizeof C);
  for (int i = 0; i < N; i++) assert_float_equal(out[i], y[i] + 3 * a * x[i], 1e-5);
  float ref[D * D] = {0};
  ref_gemm_rowmajor(&g, A, B, ref, D, D, D);
  for (int i = 0; i < D * D; i++) assert_float_equal(C[i], ref[i], 1e-4);
  printf("  graph: saxpy + memset + sgemm captured, replayed 3 times\n");
  cu_graph_destroy(exec);
  cu_module_unload(m);
  cu_free(dx, NULL);
  cu_free(dy, NULL);
  cu_free(dA, NULL);
  cu_free(dB, NULL);
  cu_free(dC, NULL);
}

static int run_gpu_tests(void) {
  RtError err = {{0}};
  if (!cu_available(&err) || !rtc_available(&err) || !blas_available(&err)) {
    fprintf(stderr, "skipping the GPU tests: %s\n", err.msg);
    return 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gpu_memory),
      cmocka_unit_test(test_gpu_saxpy_and_sum),
      cmocka_unit_test(test_gpu_sgemm),
      cmocka_unit_test(test_gpu_bf16_gemm),
      cmocka_unit_test(test_gpu_graph),
  };
  return cmocka_run_group_tests(tests, gpu_setup, gpu_teardown);
}

int main(int argc, char **argv) {
  int rc = argc > 1 && strcmp(argv[1], "--gpu") == 0 ? run_gpu_tests() : run_unit_tests();
  cu_api_shutdown();
  return rc;
}
