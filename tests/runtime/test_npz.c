/* Tests of runtime/npz.c: streaming and in-memory writes read back (every
 * dtype, rank 0, empty arrays), deterministic bytes, atomicity (a failed
 * or aborted write leaves nothing), files written by numpy
 * (tests/runtime/golden/eval/np_*.npz from tools/gen_eval_golden.py) with
 * the arrays numpy cannot hand us refused by name, damaged and truncated
 * files refused without reading out of bounds (run under ASan too).
 *
 * `rt_test_npz --zip64` (the ctest rt_test_npz_zip64, label slow) writes a
 * 4.0 GiB array, more than a 32-bit ZIP field holds, checks it with
 * python3 + numpy where they are installed and with this reader always. */
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

#include "npz.h"

#define TMPDIR_TEMPLATE "/tmp/irepa-npz-XXXXXX"
#include "tmpdir.h"

static const char *golden(const char *name) {
  static char buf[4096];
  const char *root = getenv("IREPA_SOURCE_DIR");
  snprintf(buf, sizeof buf, "%s/tests/runtime/golden/eval/%s", root ? root : "../..", name);
  return buf;
}

static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* No temporary file is left in the scratch directory. */
static void assert_no_temp(void) {
  DIR *d = opendir(tmpdir);
  assert_non_null(d);
  struct dirent *e;
  while ((e = readdir(d)))
    if (strstr(e->d_name, ".tmp-")) fail_msg("temporary file left: %s", e->d_name);
  closedir(d);
}

static size_t file_bytes(const char *path, unsigned char **out) {
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  *out = malloc((size_t)n + 1);
  assert_int_equal(fread(*out, 1, (size_t)n, fp), (size_t)n);
  fclose(fp);
  return (size_t)n;
}

static void write_bytes(const char *path, const unsigned char *b, size_t n) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(b, 1, n, fp), n);
  fclose(fp);
}

/* A file for the many short-lived copies of the damage tests: on tmpfs
 * where there is one (a file system with slow creates makes thousands of
 * them take seconds), else in the scratch directory. */
static const char *scratch_file(void) {
  static char buf[256];
  struct stat st;
  if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0)
    snprintf(buf, sizeof buf, "/dev/shm/irepa-test-npz-%ld.npz", (long)getpid());
  else snprintf(buf, sizeof buf, "%s/damaged.npz", tmpdir);
  return buf;
}

static NpzFile *open_ok(const char *path) {
  RtError err = {{0}};
  NpzFile *f = npz_open(path, &err);
  if (!f) fail_msg("%s", err.msg);
  return f;
}

static Tensor *read_ok(NpzFile *f, const char *name) {
  RtError err = {{0}};
  Tensor *t = npz_read(f, name, &err);
  if (!t) fail_msg("%s", err.msg);
  return t;
}

static void assert_msg(const RtError *err, const char *part) {
  if (!strstr(err->msg, part)) fail_msg("message '%s' lacks '%s'", err->msg, part);
}

/* An array whose elements are distinct (and fractional for floats). */
static Tensor *filled(const char *name, DType t, int rank, const int64_t *shape) {
  RtError err;
  Tensor *x = tensor_new(name, t, rank, shape, &err);
  if (!x) fail_msg("%s", err.msg);
  for (int64_t i = 0; i < tensor_numel(x); i++)
    tensor_set(x, i, t == DT_U8 ? (double)(i * 7 % 256) : (double)i * 1.25 - 3);
  return x;
}

static void assert_same(const Tensor *a, const Tensor *b) {
  assert_int_equal(a->dtype, b->dtype);
  assert_int_equal(a->rank, b->rank);
  for (int k = 0; k < a->rank; k++) assert_int_equal(a->shape[k], b->shape[k]);
  assert_int_equal(a->nbytes, b->nbytes);
  assert_memory_equal(a->data, b->data, a->nbytes);
}

/* ---- writing ---------------------------------------------------------------- */

static void test_stream_round_trip(void **state) {
  (void)state;
  int64_t shape[4] = {5, 4, 3, 2};
  Tensor *x = filled("arr_0", DT_U8, 4, shape);
  RtError err = {{0}};
  const char *path = tmp_path("stream.npz");
  NpzWriter *w = npz_writer_open(path, "arr_0", DT_U8, 4, shape, &err);
  assert_non_null(w);
  assert_false(exists(path));
  assert_true(npz_writer_append(w, x->data, 2, &err));
  assert_true(npz_writer_append(w, x->data, 0, &err));
  assert_true(npz_writer_append(w, (uint8_t *)x->data + 2 * 24, 3, &err));
  assert_true(npz_writer_close(w, &err));
  assert_no_temp();
  NpzFile *f = open_ok(path);
  assert_int_equal(npz_count(f), 1);
  assert_string_equal(npz_array(f, 0)->name, "arr_0");
  assert_null(npz_array(f, 0)->error);
  Tensor *y = read_ok(f, "arr_0");
  assert_same(x, y);
  uint8_t rows[5 * 24];
  assert_true(npz_read_rows(f, "arr_0", 0, 1, rows, &err));
  assert_true(npz_read_rows(f, "arr_0", 1, 4, rows + 24, &err)); /* the last row checks the CRC */
  assert_memory_equal(rows, x->data, sizeof rows);
  assert_false(npz_read_rows(f, "arr_0", 4, 2, rows, &err));
  assert_msg(&err, "outside its 5 rows");
  tensor_free(y);
  npz_close(f);
  tensor_free(x);
}

static void test_stream_every_dtype(void **state) {
  (void)state;
  DType types[] = {DT_U8, DT_F32, DT_F64, DT_I64};
  for (int i = 0; i < 4; i++) {
    int64_t shape[2] = {3, 5};
    Tensor *x = filled("data", types[i], 2, shape);
    RtError err = {{0}};
    NpzWriter *w = npz_writer_open(tmp_path("t.npz"), "data", types[i], 2, shape, &err);
    assert_non_null(w);
    assert_true(npz_writer_append(w, x->data, 3, &err) && npz_writer_close(w, &err));
    NpzFile *f = open_ok(tmp_path("t.npz"));
    Tensor *y = read_ok(f, "data");
    assert_same(x, y);
    tensor_free(x);
    tensor_free(y);
    npz_close(f);
  }
}

/* The streaming writer and npz_write make the same bytes, and the same
 * arrays always give the same file. */
static void test_deterministic(void **state) {
  (void)state;
  int64_t shape[2] = {6, 7};
  Tensor *x = filled("arr_0", DT_F32, 2, shape);
  RtError err = {{0}};
  NpzWriter *w = npz_writer_open(tmp_path("a.npz"), "arr_0", DT_F32, 2, shape, &err);
  assert_true(w && npz_writer_append(w, x->data, 6, &err) && npz_writer_close(w, &err));
  assert_true(npz_write(tmp_path("b.npz"), &x, 1, &err));
  unsigned char *a, *b;
  size_t na = file_bytes(tmp_path("a.npz"), &a), nb = file_bytes(tmp_path("b.npz"), &b);
  assert_int_equal(na, nb);
  assert_memory_equal(a, b, na);
  free(a);
  free(b);
  tensor_free(x);
}

static void test_write_many(void **state) {
  (void)state;
  int64_t s3[1] = {3}, s33[2] = {3, 3}, s0[2] = {0, 4}, s4[1] = {4};
  Tensor *ts[6] = {filled("mu", DT_F64, 1, s3),  filled("sigma", DT_F64, 2, s33), filled("n", DT_I64, 0, NULL),
                   filled("empty", DT_F32, 2, s0), filled("u8", DT_U8, 1, s4),   filled("f32", DT_F32, 1, s4)};
  RtError err = {{0}};
  assert_true(npz_write(tmp_path("stats.npz"), ts, 6, &err));
  NpzFile *f = open_ok(tmp_path("stats.npz"));
  assert_int_equal(npz_count(f), 6);
  for (int i = 0; i < 6; i++) {
    assert_string_equal(npz_array(f, i)->name, ts[i]->name);
    Tensor *y = read_ok(f, ts[i]->name);
    assert_same(ts[i], y);
    tensor_free(y);
  }
  assert_non_null(npz_find(f, "sigma"));
  assert_null(npz_find(f, "sigma.npy"));
  assert_null(npz_get(f, "nope", &err));
  assert_msg(&err, "no array 'nope' (it has: mu, sigma, n, empty, u8, f32)");
  npz_close(f);
  Tensor *dup[2] = {ts[0], ts[0]};
  assert_false(npz_write(tmp_path("dup.npz"), dup, 2, &err));
  assert_msg(&err, "array 'mu' given twice");
  assert_false(exists(tmp_path("dup.npz")));
  for (int i = 0; i < 6; i++) tensor_free(ts[i]);
}

static void test_writer_errors(void **state) {
  (void)state;
  RtError err = {{0}};
  int64_t shape[2] = {2, 3};
  uint8_t rows[9] = {0};
  assert_null(npz_writer_open(tmp_path("x.npz"), "arr_0", DT_F16, 2, shape, &err));
  assert_msg(&err, "dtype f16 cannot be stored");
  assert_null(npz_writer_open(tmp_path("x.npz"), "arr_0", DT_U8, 0, shape, &err));
  assert_msg(&err, "rank >= 1");
  int64_t bad[2] = {-1, 3};
  assert_null(npz_writer_open(tmp_path("x.npz"), "arr_0", DT_U8, 2, bad, &err));
  assert_null(npz_writer_open("/nonexistent/dir/x.npz", "arr_0", DT_U8, 2, shape, &err));
  assert_msg(&err, "/nonexistent/dir/x.npz: cannot create a temporary file");
  /* too many rows, then too few: the close fails and leaves nothing */
  NpzWriter *w = npz_writer_open(tmp_path("x.npz"), "arr_0", DT_U8, 2, shape, &err);
  assert_non_null(w);
  assert_false(npz_writer_append(w, rows, 3, &err));
  assert_msg(&err, "3 more rows after 0 of 2");
  assert_true(npz_writer_append(w, rows, 1, &err));
  assert_false(npz_writer_close(w, &err));
  assert_msg(&err, "1 of the 2 rows were written");
  assert_false(exists(tmp_path("x.npz")));
  assert_no_temp();
  /* abort leaves an existing file as it was */
  Tensor *old = filled("old", DT_U8, 1, shape);
  assert_true(npz_write(tmp_path("x.npz"), &old, 1, &err));
  w = npz_writer_open(tmp_path("x.npz"), "arr_0", DT_U8, 2, shape, &err);
  assert_true(w && npz_writer_append(w, rows, 2, &err));
  npz_writer_abort(w);
  npz_writer_abort(NULL);
  assert_no_temp();
  NpzFile *f = open_ok(tmp_path("x.npz"));
  assert_non_null(npz_find(f, "old"));
  npz_close(f);
  tensor_free(old);
}

/* ---- numpy's files ------------------------------------------------------- */

static void test_numpy_savez(void **state) {
  (void)state;
  NpzFile *f = open_ok(golden("np_savez.npz"));
  assert_int_equal(npz_count(f), 5);
  Tensor *u8 = read_ok(f, "arr_0"), *f4 = read_ok(f, "f4"), *f8 = read_ok(f, "f8"), *i8 = read_ok(f, "i8"),
         *sc = read_ok(f, "scalar");
  assert_int_equal(u8->dtype, DT_U8);
  assert_int_equal(u8->rank, 4);
  assert_int_equal(u8->shape[0] * 1000 + u8->shape[1] * 100 + u8->shape[2] * 10 + u8->shape[3], 3451);
  for (int i = 0; i < 60; i++) assert_int_equal(((uint8_t *)u8->data)[i], i);
  assert_int_equal(f4->dtype, DT_F32);
  assert_int_equal(f4->shape[0], 7);
  assert_true(tensor_get(f4, 0) == -1.0 && tensor_get(f4, 6) == 1.0);
  assert_true(f8->dtype == DT_F64 && tensor_get(f8, 1) == -2.25 && tensor_get(f8, 2) == 1e300);
  assert_true(i8->dtype == DT_I64 && tensor_get(i8, 0) == -3 && tensor_get(i8, 2) == (double)(1LL << 40));
  assert_true(sc->rank == 0 && tensor_get(sc, 0) == 2.5);
  tensor_free(u8);
  tensor_free(f4);
  tensor_free(f8);
  tensor_free(i8);
  tensor_free(sc);
  npz_close(f);
  f = open_ok(golden("np_positional.npz"));
  Tensor *empty = read_ok(f, "arr_1");
  assert_true(empty->rank == 2 && empty->shape[0] == 0 && empty->shape[1] == 2 && empty->dtype == DT_F32);
  tensor_free(empty);
  npz_close(f);
}

static void test_numpy_versions(void **state) {
  (void)state;
  const char *files[2] = {"np_v2.npz", "np_v3.npz"};
  for (int i = 0; i < 2; i++) {
    NpzFile *f = open_ok(golden(files[i]));
    Tensor *x = read_ok(f, "arr_0");
    assert_true(x->dtype == DT_U8 && x->rank == 4 && x->shape[1] == 4);
    assert_int_equal(((uint8_t *)x->data)[59], 59);
    tensor_free(x);
    npz_close(f);
  }
}

/* Arrays numpy can write and this reader refuses, each with its reason;
 * the file still opens, and its other arrays read. */
static void test_numpy_refused(void **state) {
  (void)state;
  const struct {
    const char *file, *why;
  } cases[] = {
      {"np_compressed.npz", "compressed (ZIP method 8, deflate); only stored members are read"},
      {"np_fortran.npz", "Fortran-ordered"},
      {"np_bigendian.npz", "dtype '>f4' is big-endian"},
      {"np_int32.npz", "dtype '<i4' is not supported (|u1 <f4 <f8 <i8)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    NpzFile *f = open_ok(golden(cases[i].file));
    RtError err = {{0}};
    assert_null(npz_read(f, "arr_0", &err));
    assert_msg(&err, cases[i].file);
    assert_msg(&err, "array 'arr_0': ");
    assert_msg(&err, cases[i].why);
    npz_close(f);
  }
  NpzFile *f = open_ok(golden("np_int32.npz"));
  Tensor *ok = read_ok(f, "ok");
  assert_int_equal(ok->shape[0], 2);
  tensor_free(ok);
  npz_close(f);
}

/* ---- damaged files ------------------------------------------------------------- */

static void test_not_npz(void **state) {
  (void)state;
  RtError err = {{0}};
  assert_null(npz_open(tmp_path("missing.npz"), &err));
  assert_msg(&err, "missing.npz: cannot open: No such file or directory");
  assert_null(npz_open(tmpdir, &err));
  write_bytes(tmp_path("text.npz"), (const unsigned char *)"hello, world: not a zip file at all", 35);
  assert_null(npz_open(tmp_path("text.npz"), &err));
  assert_msg(&err, "not an .npz (ZIP) file");
  write_bytes(tmp_path("empty.npz"), (const unsigned char *)"", 0);
  assert_null(npz_open(tmp_path("empty.npz"), &err));
  assert_msg(&err, "not an .npz (ZIP) file: 0 bytes");
}

/* Every truncation of a file is refused, at open or at read, and a byte
 * flipped in the data fails the CRC, both for whole and row reads. */
static void test_truncated_and_flipped(void **state) {
  (void)state;
  unsigned char *b;
  size_t n = file_bytes(golden("np_savez.npz"), &b);
  const char *cut = scratch_file();
  for (size_t len = 0; len < n; len++) {
    write_bytes(cut, b, len);
    RtError err = {{0}};
    NpzFile *f = npz_open(cut, &err);
    if (!f) continue;
    Tensor *t = npz_read(f, "arr_0", &err);
    if (t) fail_msg("a file cut at %zu of %zu bytes was read", len, n);
    npz_close(f);
  }
  unlink(cut);
  NpzFile *f = open_ok(golden("np_savez.npz"));
  uint64_t at = npz_find(f, "arr_0")->offset + 17;
  npz_close(f);
  b[at] ^= 0x40;
  write_bytes(tmp_path("flip.npz"), b, n);
  f = open_ok(tmp_path("flip.npz"));
  RtError err = {{0}};
  assert_null(npz_read(f, "arr_0", &err));
  assert_msg(&err, "array 'arr_0' is damaged: CRC-32");
  uint8_t rows[60];
  assert_true(npz_read_rows(f, "arr_0", 0, 2, rows, &err));
  assert_false(npz_read_rows(f, "arr_0", 2, 1, rows + 40, &err));
  assert_msg(&err, "damaged");
  npz_close(f);
  free(b);
}

/* Damaged headers: every byte of the directory and headers of a small file
 * set to a few values never crashes or reads out of bounds. */
static void test_corrupt_bytes(void **state) {
  (void)state;
  unsigned char *b;
  size_t n = file_bytes(golden("np_positional.npz"), &b);
  const unsigned char values[] = {0x00, 0xff, 0x7f, 0x80};
  NpzFile *f = open_ok(golden("np_positional.npz"));
  uint64_t data0 = npz_find(f, "arr_0")->offset, data_end = data0 + npz_find(f, "arr_0")->nbytes;
  npz_close(f);
  const char *bad = scratch_file();
  for (size_t i = 0; i < n; i++) {
    if (i >= data0 && i < data_end) continue;
    for (size_t v = 0; v < sizeof values; v++) {
      unsigned char old = b[i];
      b[i] = values[v];
      write_bytes(bad, b, n);
      b[i] = old;
      RtError err = {{0}};
      NpzFile *g = npz_open(bad, &err);
      if (!g) continue;
      for (int k = 0; k < npz_count(g); k++) tensor_free(npz_read(g, npz_array(g, k)->name, &err));
      npz_close(g);
    }
  }
  unlink(bad);
  free(b);
}

/* ---- ZIP64 (slow) -------------------------------------------------------------- */

static int zip64_check(void) {
  enum { ROW = 1 << 20 };
  const int64_t rows = 4097; /* 4097 MiB: past 0xFFFFFFFF bytes */
  char dir[] = "/tmp/irepa-npz64-XXXXXX", path[64], cmd[1024];
  if (!mkdtemp(dir)) return 1;
  snprintf(path, sizeof path, "%s/big.npz", dir);
  int64_t shape[3] = {rows, 1024, 1024};
  uint8_t *row = malloc(ROW);
  RtError err = {{0}};
  NpzWriter *w = npz_writer_open(path, "arr_0", DT_U8, 3, shape, &err);
  bool ok = row && w;
  for (int64_t r = 0; ok && r < rows; r++) {
    memset(row, (int)(r % 251), ROW);
    ok = npz_writer_append(w, row, 1, &err);
  }
  ok = ok && npz_writer_close(w, &err);
  NpzFile *f = ok ? npz_open(path, &err) : NULL;
  ok = f && npz_get(f, "arr_0", &err) && npz_find(f, "arr_0")->shape[0] == rows;
  for (int64_t r = 0; ok && r < rows; r++) ok = npz_read_rows(f, "arr_0", r, 1, row, &err) && row[ROW - 1] == r % 251;
  npz_close(f);
  if (!ok) fprintf(stderr, "zip64: %s\n", err.msg);
  int rc = ok ? 0 : 1;
  snprintf(cmd, sizeof cmd,
           "python3 -c 'import numpy' 2>/dev/null || { echo 'zip64: no python3 numpy: checked with irepa only'; exit 0; };"
           "python3 -c 'import numpy as np, sys\n"
           "z = np.load(sys.argv[1]); assert z.files == [\"arr_0\"]\n"
           "f = z.zip.open(\"arr_0.npy\"); v = np.lib.format.read_magic(f)\n"
           "assert v == (1, 0); shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)\n"
           "assert shape == (4097, 1024, 1024) and dtype == np.uint8 and not fortran, (shape, dtype)\n"
           "assert z.zip.testzip() is None\n"
           "print(\"zip64: numpy reads\", shape, dtype, \"and every CRC checks\")' %s",
           path);
  if (rc == 0 && system(cmd) != 0) rc = 1;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) rc = 1;
  free(row);
  return rc;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--zip64")) return zip64_check();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stream_round_trip), cmocka_unit_test(test_stream_every_dtype),
      cmocka_unit_test(test_deterministic),     cmocka_unit_test(test_write_many),
      cmocka_unit_test(test_writer_errors),     cmocka_unit_test(test_numpy_savez),
      cmocka_unit_test(test_numpy_versions),    cmocka_unit_test(test_numpy_refused),
      cmocka_unit_test(test_not_npz),           cmocka_unit_test(test_truncated_and_flipped),
      cmocka_unit_test(test_corrupt_bytes),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
