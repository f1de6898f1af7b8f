/* Tests of runtime/feature_cache.c: a cache is built in chunks, in order,
 * and mapped with the computed values; opened again it is used without
 * computing; a truncated, corrupted or foreign file is rebuilt; a failing
 * computation leaves no file behind; fc_hash does not depend on how the
 * data is chunked (in 8-byte multiples); fc_path names both hashes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "feature_cache.h"

#define TMPDIR_TEMPLATE "/tmp/irepa-fc-XXXXXX"
#include "tmpdir.h"

enum { N = 7, T = 3, W = 5 };

typedef struct {
  int calls;
  int64_t next;     /* the first item expected next: chunks come in order */
  int64_t fail_at;  /* -1: never */
} Ctx;

static float value(int64_t item, int64_t k) { return (float)item * 100.0f + (float)k * 0.25f; }

static bool compute(void *ctx, int64_t first, int64_t count, float *out, RtError *err) {
  Ctx *c = ctx;
  c->calls++;
  assert_int_equal(first, c->next);
  c->next = first + count;
  if (c->fail_at >= first && c->fail_at < first + count) return rt_fail(err, "item %lld: no features", (long long)c->fail_at);
  for (int64_t i = 0; i < count; i++)
    for (int64_t k = 0; k < T * W; k++) out[i * T * W + k] = value(first + i, k);
  return true;
}

static const FcKey KEY = {0x1111, 0x2222, N, T, W};

static void check_values(const FeatureCache *fc) {
  for (int64_t i = 0; i < N; i++)
    for (int64_t k = 0; k < T * W; k++) assert_true(fc->data[i * T * W + k] == value(i, k));
}

/* Opens path with KEY; returns how many chunks were computed. */
static int open_count(const char *path, bool expect_ok) {
  Ctx c = {0, 0, -1};
  FeatureCache fc;
  RtError err;
  bool ok = fc_open(&fc, path, &KEY, 3, compute, &c, &err);
  assert_int_equal(ok, expect_ok);
  if (ok) check_values(&fc);
  fc_close(&fc);
  return c.calls;
}

static void builds_then_reuses(void **state) {
  (void)state;
  char path[256];
  snprintf(path, sizeof path, "%s", tmp_path("a.bin"));
  /* asked for chunks of 3: made 4, 3 so that every chunk but the last
   * is a multiple of 8 bytes (an item is 15 floats) */
  assert_int_equal(open_count(path, true), 2);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_size, FC_HEADER_BYTES + N * T * W * 4);
  assert_int_equal(open_count(path, true), 0);
}

static void rebuilds_damaged_files(void **state) {
  (void)state;
  char path[256];
  snprintf(path, sizeof path, "%s", tmp_path("b.bin"));
  assert_int_equal(open_count(path, true), 2);
  assert_int_equal(truncate(path, FC_HEADER_BYTES + 10), 0);
  assert_int_equal(open_count(path, true), 2);
  FILE *f = fopen(path, "r+b");
  assert_non_null(f);
  fseek(f, FC_HEADER_BYTES + 17, SEEK_SET);
  fputc(0x55, f);
  fclose(f);
  assert_int_equal(open_count(path, true), 2);
  FcKey other = KEY;
  other.encoder_hash = 0x3333; /* a file of another encoder under this name */
  Ctx c = {0, 0, -1};
  FeatureCache fc;
  RtError err;
  assert_true(fc_open(&fc, path, &other, 4, compute, &c, &err));
  fc_close(&fc);
  assert_int_equal(c.calls, 2);
  assert_int_equal(open_count(path, true), 2); /* and back */
  f = fopen(path, "wb");
  fclose(f);
  assert_int_equal(open_count(path, true), 2); /* empty */
}

static int files_in_tmpdir(void) {
  DIR *d = opendir(tmpdir);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static void a_failure_leaves_nothing(void **state) {
  (void)state;
  char path[256];
  snprintf(path, sizeof path, "%s", tmp_path("c.bin"));
  int before = files_in_tmpdir();
  Ctx c = {0, 0, 5};
  FeatureCache fc;
  RtError err;
  assert_false(fc_open(&fc, path, &KEY, 3, compute, &c, &err));
  fc_close(&fc);
  assert_string_equal(err.msg, "item 5: no features");
  assert_int_equal(files_in_tmpdir(), before);
  snprintf(path, sizeof path, "%s/no/such/dir/c.bin", tmpdir);
  assert_false(fc_open(&fc, path, &KEY, 3, compute, &c, &err));
  fc_close(&fc);
  assert_non_null(strstr(err.msg, "cannot create a temporary file beside it"));
}

static void hash_and_path(void **state) {
  (void)state;
  unsigned char data[100];
  for (int i = 0; i < 100; i++) data[i] = (unsigned char)(i * 7 + 1);
  uint64_t whole = fc_hash(FC_HASH_INIT, data, 100);
  assert_true(fc_hash(fc_hash(FC_HASH_INIT, data, 48), data + 48, 52) == whole);
  assert_true(fc_hash(FC_HASH_INIT, data, 99) != whole);
  char p[256];
  fc_path("/x/encoders", "fashion-mnist", &KEY, p, sizeof p);
  assert_string_equal(p, "/x/encoders/features-fashion-mnist-0000000000001111-0000000000002222.bin");
  char file[256];
  snprintf(file, sizeof file, "%s", tmp_path("h.bin"));
  FILE *f = fopen(file, "wb");
  fwrite(data, 1, 100, f);
  fclose(f);
  uint64_t h;
  RtError err;
  assert_true(fc_hash_file(file, &h, &err));
  assert_true(h == whole);
  assert_false(fc_hash_file("/nonexistent/w.safetensors", &h, &err));
  assert_string_equal(err.msg, "/nonexistent/w.safetensors: No such file or directory");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(builds_then_reuses),
      cmocka_unit_test(rebuilds_damaged_files),
      cmocka_unit_test(a_failure_leaves_nothing),
      cmocka_unit_test(hash_and_path),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
