/* Tests of runtime/jit.c: compiling and calling C; the cache (a second
 * load compiles nothing, also after the object was unloaded); compiler
 * diagnostics in error messages and the kept log; missing symbols and
 * compilers; IREPA_CACHE_DIR, XDG_CACHE_HOME and HOME; flags in the key;
 * a corrupt cached object; concurrent loads of one source. Each run uses a
 * fresh cache directory under the build tree (IREPA_TEST_CACHE_ROOT),
 * removed at the end; the user's ~/.cache is never touched. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jit.h"

#ifndef IREPA_TEST_CACHE_ROOT
#define IREPA_TEST_CACHE_ROOT "."
#endif

static char cache[4096];

static JitModule *load_ok(const char *source) {
  RtError err = {{0}};
  JitModule *m = jit_load(JIT_LANG_C, source, &err);
  if (!m) fail_msg("%s", err.msg);
  return m;
}

static void *sym_ok(JitModule *m, const char *name) {
  RtError err = {{0}};
  void *p = jit_symbol(m, name, &err);
  if (!p) fail_msg("%s", err.msg);
  return p;
}

/* Sets or unsets an environment variable; returns the old value (malloc'ed). */
static char *swap_env(const char *name, const char *value) {
  const char *old = getenv(name);
  char *saved = old ? strdup(old) : NULL;
  if (value) setenv(name, value, 1);
  else unsetenv(name);
  return saved;
}

static void restore_env(const char *name, char *saved) {
  if (saved) setenv(name, saved, 1);
  else unsetenv(name);
  free(saved);
}

static const char *ADD = "#include <math.h>\n"
                         "int add3(int a) { return a + 3; }\n"
                         "double expm(double x) { return exp(x) - 1; }\n"
                         "double sum(const double *x, int n) {\n"
                         "  double s = 0;\n"
                         "#pragma omp parallel for reduction(+ : s)\n"
                         "  for (int i = 0; i < n; i++) s += x[i];\n"
                         "  return s;\n"
                         "}\n";

static void test_compile_and_call(void **state) {
  (void)state;
  JitStats before = jit_stats();
  JitModule *m = load_ok(ADD);
  JitStats after = jit_stats();
  assert_int_equal(after.compiles, before.compiles + 1);
  assert_int_equal(after.cache_hits, before.cache_hits);
  int (*add3)(int) = sym_ok(m, "add3");
  double (*expm)(double) = sym_ok(m, "expm");
  double (*sum)(const double *, int) = sym_ok(m, "sum");
  double x[1000];
  for (int i = 0; i < 1000; i++) x[i] = i;
  assert_int_equal(add3(4), 7);
  assert_true(expm(1.0) > 1.718 && expm(1.0) < 1.719);
  assert_true(sum(x, 1000) == 499500.0);
  jit_unload(m);
}

/* Loaded twice, then unloaded and loaded again: no compile. */
static void test_second_load_hits_cache(void **state) {
  (void)state;
  jit_unload(load_ok(ADD)); /* compiled by the previous test, or now */
  JitStats before = jit_stats();
  JitModule *a = load_ok(ADD), *b = load_ok(ADD);
  int (*add3)(int) = sym_ok(b, "add3");
  assert_int_equal(add3(1), 4);
  assert_string_equal(jit_module_path(a), jit_module_path(b));
  jit_unload(a);
  jit_unload(b);
  JitModule *c = load_ok(ADD);
  JitStats after = jit_stats();
  assert_int_equal(after.compiles, before.compiles);
  assert_int_equal(after.cache_hits, before.cache_hits + 3);
  assert_int_equal(after.loads, before.loads + 3);
  jit_unload(c);
}

static void test_syntax_error_quotes_compiler(void **state) {
  (void)state;
  RtError err = {{0}};
  JitStats before = jit_stats();
  assert_null(jit_load(JIT_LANG_C, "int broken(int a) { return a +; }\n", &err));
  printf("syntax error reported as:\n%s\n", err.msg);
  assert_non_null(strstr(err.msg, "error"));
  assert_non_null(strstr(err.msg, "expected expression"));
  assert_int_equal(jit_stats().failures, before.failures + 1);
  const char *log = strstr(err.msg, "(full log: ");
  assert_non_null(log);
  char path[4096];
  snprintf(path, sizeof path, "%s", log + strlen("(full log: "));
  path[strcspn(path, ")")] = 0;
  assert_int_equal(access(path, R_OK), 0);
}

static void test_missing_symbol(void **state) {
  (void)state;
  JitModule *m = load_ok(ADD);
  RtError err = {{0}};
  assert_null(jit_symbol(m, "no_such_function", &err));
  assert_non_null(strstr(err.msg, "no_such_function"));
  assert_true(jit_emu_check(m, &err)); /* not an emulated module: nothing to report */
  jit_unload(m);
}

static void test_missing_compiler(void **state) {
  (void)state;
  char *saved = swap_env("IREPA_CC", "/nonexistent/irepa-cc");
  RtError err = {{0}};
  assert_null(jit_load(JIT_LANG_C, "int f(void) { return 1; }\n", &err));
  restore_env("IREPA_CC", saved);
  assert_non_null(strstr(err.msg, "cannot run /nonexistent/irepa-cc"));
}

static void test_cache_dir_from_env(void **state) {
  (void)state;
  char buf[4096];
  assert_string_equal(jit_cache_dir(buf, sizeof buf), cache);
  JitModule *m = load_ok(ADD);
  assert_memory_equal(jit_module_path(m), cache, strlen(cache));
  jit_unload(m);
  char *old_dir = swap_env("IREPA_CACHE_DIR", NULL), *old_xdg = swap_env("XDG_CACHE_HOME", "/nowhere/xdg");
  char *old_home = swap_env("HOME", "/nowhere/home");
  assert_string_equal(jit_cache_dir(buf, sizeof buf), "/nowhere/xdg/irepa");
  setenv("XDG_CACHE_HOME", "relative/is/ignored", 1);
  assert_string_equal(jit_cache_dir(buf, sizeof buf), "/nowhere/home/.cache/irepa");
  assert_null(jit_cache_dir(buf, 8)); /* does not fit */
  restore_env("HOME", old_home);
  restore_env("XDG_CACHE_HOME", old_xdg);
  restore_env("IREPA_CACHE_DIR", old_dir);
}

/* Flags are part of the key: a define changes the object, and so does
 * leaving out -march=native. */
static void test_flags_in_key(void **state) {
  (void)state;
  const char *src = "int value(void) { return VALUE; }\n";
  char *saved = swap_env("IREPA_JIT_EXTRA_FLAGS", "-DVALUE=7");
  JitModule *seven = load_ok(src);
  setenv("IREPA_JIT_EXTRA_FLAGS", "-DVALUE=8", 1);
  JitModule *eight = load_ok(src);
  char *portable = swap_env("IREPA_JIT_PORTABLE", "1");
  JitModule *eight_portable = load_ok(src);
  restore_env("IREPA_JIT_PORTABLE", portable);
  restore_env("IREPA_JIT_EXTRA_FLAGS", saved);
  int (*v7)(void) = sym_ok(seven, "value"), (*v8)(void) = sym_ok(eight, "value");
  assert_int_equal(v7(), 7);
  assert_int_equal(v8(), 8);
  assert_string_not_equal(jit_module_path(eight), jit_module_path(eight_portable));
  jit_unload(seven);
  jit_unload(eight);
  jit_unload(eight_portable);
}

/* A cached object that does not load is compiled again. */
static void test_corrupt_object_recompiled(void **state) {
  (void)state;
  const char *src = "int forty_two(void) { return 42; }\n";
  JitModule *m = load_ok(src);
  char path[4096];
  snprintf(path, sizeof path, "%s", jit_module_path(m));
  jit_unload(m);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("not an ELF object\n", f);
  fclose(f);
  JitStats before = jit_stats();
  m = load_ok(src);
  assert_int_equal(jit_stats().compiles, before.compiles + 1);
  int (*fn)(void) = sym_ok(m, "forty_two");
  assert_int_equal(fn(), 42);
  jit_unload(m);
}

enum { NTHREADS = 4 };
static const char *RACE = "int race(int x) { return 2 * x + 1; }\n";

static void *load_in_thread(void *arg) {
  RtError err = {{0}};
  JitModule *m = jit_load(JIT_LANG_C, RACE, &err);
  int (*fn)(int) = m ? (int (*)(int))jit_symbol(m, "race", &err) : NULL;
  *(int *)arg = fn ? fn(20) : -1;
  if (!fn) fprintf(stderr, "thread: %s\n", err.msg);
  jit_unload(m);
  return NULL;
}

/* Threads racing to compile one source all get a working object. */
static void test_concurrent_loads(void **state) {
  (void)state;
  pthread_t th[NTHREADS];
  int result[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) assert_int_equal(pthread_create(&th[i], NULL, load_in_thread, &result[i]), 0);
  for (int i = 0; i < NTHREADS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(result[i], 41);
  }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int setup(void **state) {
  (void)state;
  snprintf(cache, sizeof cache, "%s/jit-cache-XXXXXX", IREPA_TEST_CACHE_ROOT);
  if (!mkdtemp(cache)) return -1;
  setenv("IREPA_CACHE_DIR", cache, 1);
  unsetenv("IREPA_JIT_EXTRA_FLAGS");
  unsetenv("IREPA_JIT_PORTABLE");
  unsetenv("IREPA_CC");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return nftw(cache, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_compile_and_call),       cmocka_unit_test(test_second_load_hits_cache),
      cmocka_unit_test(test_syntax_error_quotes_compiler), cmocka_unit_test(test_missing_symbol),
      cmocka_unit_test(test_missing_compiler),       cmocka_unit_test(test_cache_dir_from_env),
      cmocka_unit_test(test_flags_in_key),           cmocka_unit_test(test_corrupt_object_recompiled),
      cmocka_unit_test(test_concurrent_loads),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
