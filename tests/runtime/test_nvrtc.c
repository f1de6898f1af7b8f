/* Tests of runtime/cuda_rtc.c: NVRTC compiles CUDA C to CUBIN with no GPU.
 * A saxpy and a shared-memory + warp-shuffle block reduction compile for
 * sm_80 and sm_90 into CUBIN ELF images (compile times are printed);
 * syntax errors, bad architectures and bad options give messages that name
 * the kernel and carry NVRTC's log. Where NVRTC cannot be found the program
 * fails listing the paths tried, or exits 77 (skip) with IREPA_NO_NVRTC=1. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda_api.h"
#include "cuda_test_kernels.h"

static const char *const ARCHS[] = {"sm_80", "sm_90"};

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* A CUBIN is a 64-bit little-endian ELF for machine EM_CUDA (190) whose
 * symbol table holds the kernel's name. */
static void check_cubin(const unsigned char *img, size_t size, const char *kernel) {
  assert_true(size >= 512 && size <= (1u << 20));
  assert_memory_equal(img, "\x7f" "ELF", 4);
  assert_int_equal(img[4], 2); /* ELFCLASS64 */
  assert_int_equal(img[5], 1); /* little-endian */
  assert_int_equal(img[18] | img[19] << 8, 190);
  assert_non_null(memmem(img, size, kernel, strlen(kernel)));
}

static void compile_ok(const char *src, const char *name, const char *arch) {
  void *cubin = NULL;
  size_t size = 0;
  RtError err = {{0}};
  double t0 = now_ms();
  bool ok = rtc_compile(src, name, arch, NULL, 0, &cubin, &size, &err);
  double ms = now_ms() - t0;
  if (!ok) fail_msg("%s", err.msg);
  printf("  NVRTC %-9s %-5s %6zu bytes of CUBIN in %7.1f ms\n", name, arch, size, ms);
  check_cubin(cubin, size, name);
  free(cubin);
}

static void test_version(void **state) {
  (void)state;
  int major = 0, minor = -1;
  assert_true(rtc_version(&major, &minor));
  printf("  NVRTC version %d.%d\n", major, minor);
  assert_true(major >= 11 && minor >= 0);
}

static void test_compile_saxpy_and_reduction(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++) {
    compile_ok(SAXPY_SRC, "saxpy", ARCHS[i]);
    compile_ok(BLOCK_SUM_SRC, "block_sum", ARCHS[i]);
  }
}

static void test_extra_options(void **state) {
  (void)state;
  const char *opts[] = {"--fmad=false", "-lineinfo"};
  void *cubin = NULL;
  size_t size = 0;
  RtError err = {{0}};
  if (!rtc_compile(SAXPY_SRC, "saxpy", "sm_80", opts, 2, &cubin, &size, &err))
    fail_msg("%s", err.msg);
  check_cubin(cubin, size, "saxpy");
  free(cubin);

  const char *bad[] = {"--no-such-option"};
  assert_false(rtc_compile(SAXPY_SRC, "saxpy_opt", "sm_80", bad, 1, &cubin, &size, &err));
  assert_null(cubin);
  assert_non_null(strstr(err.msg, "saxpy_opt"));
  assert_non_null(strstr(err.msg, "NVRTC_ERROR_INVALID_OPTION"));
}

/* The message names the kernel and holds the log, whose lines NVRTC
 * prefixes with the program name and line: "broken_kernel(3): error". */
static void test_syntax_error(void **state) {
  (void)state;
  const char *src = "extern \"C\" __global__ void broken_kernel(float *y) {\n"
                    "  float z = 1.0f\n"
                    "  y[threadIdx.x] = z;\n"
                    "}\n";
  void *cubin = (void *)1;
  size_t size = 7;
  RtError err = {{0}};
  assert_false(rtc_compile(src, "broken_kernel", "sm_80", NULL, 0, &cubin, &size, &err));
  assert_null(cubin);
  assert_int_equal(size, 0);
  printf("  message: %s\n", err.msg);
  assert_non_null(strstr(err.msg, "kernel 'broken_kernel'"));
  assert_non_null(strstr(err.msg, "NVRTC_ERROR_COMPILATION"));
  assert_non_null(strstr(err.msg, "broken_kernel(3): error"));
}

/* Hundreds of errors: the message keeps the start of the log and says it
 * was cut, within RtError's size. */
static void test_long_log_truncated(void **state) {
  (void)state;
  size_t cap = 64 * 1024, used = 0;
  char *src = malloc(cap);
  assert_non_null(src);
  used += (size_t)snprintf(src, cap, "extern \"C\" __global__ void many_errors() {\n");
  for (int i = 0; i < 300; i++)
    used += (size_t)snprintf(src + used, cap - used, "  undeclared_%d = %d;\n", i, i);
  snprintf(src + used, cap - used, "}\n");
  void *cubin = NULL;
  size_t size = 0;
  RtError err = {{0}};
  assert_false(rtc_compile(src, "many_errors", "sm_90", NULL, 0, &cubin, &size, &err));
  free(src);
  assert_true(strlen(err.msg) < sizeof err.msg);
  assert_non_null(strstr(err.msg, "kernel 'many_errors'"));
  assert_non_null(strstr(err.msg, "many_errors(2): error"));
  assert_non_null(strstr(err.msg, "log truncated"));
}

static void expect_arch_error(const char *arch, const char *what) {
  void *cubin = NULL;
  size_t size = 0;
  RtError err = {{0}};
  assert_false(rtc_compile(SAXPY_SRC, "saxpy", arch, NULL, 0, &cubin, &size, &err));
  assert_null(cubin);
  printf("  %-12s -> %s\n", arch, err.msg);
  assert_non_null(strstr(err.msg, "kernel 'saxpy'"));
  assert_non_null(strstr(err.msg, arch));
  assert_non_null(strstr(err.msg, what));
}

static void test_bad_arch(void **state) {
  (void)state;
  expect_arch_error("sm80", "bad GPU architecture");
  expect_arch_error("compute_80", "bad GPU architecture");
  expect_arch_error("sm_", "bad GPU architecture");
  expect_arch_error("sm_9000", "bad GPU architecture");
  expect_arch_error("sm_90x", "bad GPU architecture");
  expect_arch_error("", "bad GPU architecture");
  expect_arch_error("sm_10", "not supported");
}

static void *compile_in_thread(void *arg) {
  (void)arg;
  void *cubin = NULL;
  size_t size = 0;
  bool ok = rtc_available(NULL) &&
            rtc_compile(SAXPY_SRC, "saxpy", "sm_90", NULL, 0, &cubin, &size, NULL);
  free(cubin);
  return ok ? arg : NULL;
}

/* After a shutdown, several threads race to load NVRTC again and compile. */
static void test_reload_from_threads(void **state) {
  (void)state;
  cu_api_shutdown();
  pthread_t th[4];
  static int token;
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&th[i], NULL, compile_in_thread, &token), 0);
  for (int i = 0; i < 4; i++) {
    void *r = NULL;
    pthread_join(th[i], &r);
    assert_ptr_equal(r, &token);
  }
}

int main(void) {
  RtError err = {{0}};
  if (!rtc_available(&err)) {
    const char *no = getenv("IREPA_NO_NVRTC");
    fprintf(stderr, "%s\n", err.msg);
    if (no && strcmp(no, "1") == 0) {
      fprintf(stderr, "IREPA_NO_NVRTC=1: skipping the NVRTC tests\n");
      return 77;
    }
    fprintf(stderr, "(set IREPA_NO_NVRTC=1 to skip these tests where NVRTC is absent)\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_version),
      cmocka_unit_test(test_compile_saxpy_and_reduction),
      cmocka_unit_test(test_extra_options),
      cmocka_unit_test(test_syntax_error),
      cmocka_unit_test(test_long_log_truncated),
      cmocka_unit_test(test_bad_arch),
      cmocka_unit_test(test_reload_from_threads),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  cu_api_shutdown();
  return failed;
}
