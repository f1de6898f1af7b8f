/* test_safetensors.c: the safetensors reader and writer: round trips of
 * every dtype, a file written by PyTorch's safetensors package, a corpus of
 * malformed files each refused with a clear message, and atomic writes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "safetensors.h"

static char tmpdir[] = "/tmp/irepa-st-XXXXXX";

static int make_dir(void **state) {
  (void)state;
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static const char *tmp_path(const char *name) {
  static char buf[256];
  snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
  return buf;
}

static Tensor *filled(const char *name, DType t, int rank, const int64_t *shape) {
  RtError err;
  Tensor *x = tensor_new(name, t, rank, shape, &err);
  assert_non_null(x);
  for (int64_t i = 0; i < tensor_numel(x); i++) tensor_set(x, i, t == DT_BOOL ? (double)(i % 2) : (double)i - 2.5 * (t < DT_I32));
  return x;
}

static void round_trip_every_dtype(void **state) {
  (void)state;
  static const int64_t s23[] = {2, 3}, s04[] = {0, 4};
  Tensor *ts[DT_COUNT + 2];
  int n = 0;
  for (int t = 0; t < DT_COUNT; t++) ts[n++] = filled(dtype_name((DType)t), (DType)t, 2, s23);
  ts[n++] = filled("scalar", DT_F32, 0, NULL);
  ts[n++] = filled("empty", DT_F32, 2, s04);
  const char *meta[] = {"a", "1", "b", "two", NULL};
  RtError err;
  const char *path = tmp_path("round.safetensors");
  assert_true(st_write(path, ts, n, meta, &err));
  StFile *f = st_open(path, &err);
  if (!f) fail_msg("%s", err.msg);
  const TensorList *l = st_tensors(f);
  assert_int_equal(l->n, n);
  for (int i = 0; i < n; i++) {
    const Tensor *r = l->items[i];
    assert_string_equal(r->name, ts[i]->name); /* file order = written order */
    assert_int_equal(r->dtype, ts[i]->dtype);
    assert_int_equal(r->rank, ts[i]->rank);
    assert_memory_equal(r->shape, ts[i]->shape, sizeof(int64_t) * (size_t)r->rank);
    assert_int_equal(r->nbytes, ts[i]->nbytes);
    if (r->nbytes) assert_memory_equal(r->data, ts[i]->data, r->nbytes);
  }
  assert_string_equal(st_metadata(f, "b"), "two");
  assert_null(st_metadata(f, "c"));
  st_close(f);
  for (int i = 0; i < n; i++) tensor_free(ts[i]);
}

/* Values as PyTorch's safetensors package wrote and read them back. */
static void reads_pytorch_file(void **state) {
  (void)state;
  RtError err;
  StFile *f = st_open("safetensors/torch_fixture.safetensors", &err);
  if (!f) fail_msg("%s", err.msg);
  FILE *txt = fopen("safetensors/torch_fixture.txt", "r");
  assert_non_null(txt);
  char line[4096];
  int checked = 0;
  while (fgets(line, sizeof line, txt)) {
    if (line[0] == '#') continue;
    char *tok = strtok(line, " \n");
    const Tensor *t = tensorlist_find(st_tensors(f), tok);
    assert_non_null(t);
    int rank = atoi(strtok(NULL, " \n"));
    assert_int_equal(t->rank, rank);
    for (int k = 0; k < rank; k++) assert_int_equal(t->shape[k], atoll(strtok(NULL, " \n")));
    long n = atol(strtok(NULL, " \n"));
    assert_int_equal(tensor_numel(t), n);
    for (long i = 0; i < n; i++) assert_true(tensor_get(t, i) == strtod(strtok(NULL, " \n"), NULL));
    checked++;
  }
  fclose(txt);
  assert_int_equal(checked, st_tensors(f)->n);
  assert_string_equal(st_metadata(f, "producer"), "gen_safetensors_fixtures.py");
  st_close(f);
}

/* Builds a file from a header text and `data_len` data bytes; the length
 * prefix is `claimed` (or the real one when claimed < 0). */
static size_t build(unsigned char *buf, const char *header, int64_t claimed, size_t data_len) {
  size_t h = strlen(header);
  uint64_t n = claimed < 0 ? h : (uint64_t)claimed;
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(n >> (8 * i));
  memcpy(buf + 8, header, h);
  memset(buf + 8 + h, 0x3f, data_len);
  return 8 + h + data_len;
}

typedef struct {
  const char *header;
  int64_t claimed;
  size_t data_len;
  const char *message;  /* a fragment the error must contain */
} Bad;

static const Bad bad_files[] = {
    {"", -1, 0, "not valid JSON"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 1 << 20, 4, "exceeds the file"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", -1, 4, "not valid JSON"},
    {"[1,2]", -1, 0, "not a JSON object"},
    {"{\"a\":{\"dtype\":\"F8\",\"shape\":[1],\"data_offsets\":[0,1]}}", -1, 1, "unsupported dtype 'F8'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", -1, 4, "need 8 bytes but data_offsets span 4"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", -1, 4, "not a non-negative integer"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,4]}}", -1, 4, "overflows"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", -1, 4, "0 <= begin <= end"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 2, "past the 2 data bytes"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", -1, 6, "(overlap)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", -1, 8, "(gap)"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 9, "5 trailing bytes"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", -1, 8, "duplicate"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", -1, 4, "needs \"dtype\", \"shape\" and \"data_offsets\""},
    {"{\"__metadata__\":{\"k\":1}}", -1, 0, "value of 'k' is not a string"},
    {"{\"__metadata__\":[]}", -1, 0, "__metadata__ is not an object"},
};

static void refuses_malformed_files(void **state) {
  (void)state;
  unsigned char buf[1024];
  for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
    const Bad *b = &bad_files[i];
    size_t n = build(buf, b->header, b->claimed, b->data_len);
    RtError err = {{0}};
    StFile *f = st_open_memory("bad.safetensors", buf, n, &err);
    if (f || !strstr(err.msg, b->message) || !strstr(err.msg, "bad.safetensors"))
      fail_msg("case %zu: got '%s', wanted '%s'", i, f ? "success" : err.msg, b->message);
  }
  RtError err;
  assert_null(st_open_memory("short", "abc", 3, &err));
  assert_non_null(strstr(err.msg, "too short"));
  assert_null(st_open(tmp_path("missing.safetensors"), &err));
  assert_non_null(strstr(err.msg, "cannot open"));
  assert_null(st_open(tmpdir, &err));
}

/* Every truncation of a valid file is refused, never read past its end
 * (the ASan build checks the latter). */
static void refuses_every_truncation(void **state) {
  (void)state;
  static const int64_t s[] = {3};
  Tensor *t[2] = {filled("x", DT_F32, 1, s), filled("y", DT_I64, 1, s)};
  RtError err;
  const char *path = tmp_path("whole.safetensors");
  assert_true(st_write(path, t, 2, NULL, &err));
  FILE *fp = fopen(path, "rb");
  unsigned char buf[512];
  size_t n = fread(buf, 1, sizeof buf, fp);
  fclose(fp);
  for (size_t len = 0; len < n; len++) assert_null(st_open_memory("cut", buf, len, &err));
  StFile *f = st_open_memory("whole", buf, n, &err);
  assert_non_null(f);
  st_close(f);
  tensor_free(t[0]);
  tensor_free(t[1]);
}

static void failed_write_keeps_the_old_file(void **state) {
  (void)state;
  static const int64_t s[] = {2};
  Tensor *good = filled("g", DT_F32, 1, s), *bad = filled("b", DT_F32, 1, s);
  RtError err;
  const char *path = tmp_path("keep.safetensors");
  assert_true(st_write(path, &good, 1, NULL, &err));
  FILE *fp = fopen(path, "rb");
  unsigned char before[256], after[256];
  size_t nb = fread(before, 1, sizeof before, fp);
  fclose(fp);
  bad->nbytes = 4; /* inconsistent with its shape */
  assert_false(st_write(path, &bad, 1, NULL, &err));
  Tensor *dup[2] = {good, good};
  assert_false(st_write(path, dup, 2, NULL, &err));
  assert_non_null(strstr(err.msg, "twice"));
  fp = fopen(path, "rb");
  size_t na = fread(after, 1, sizeof after, fp);
  fclose(fp);
  assert_int_equal(na, nb);
  assert_memory_equal(before, after, nb);
  assert_false(st_write("/nonexistent-dir/x.safetensors", &good, 1, NULL, &err));
  assert_non_null(strstr(err.msg, "temporary file"));
  bad->nbytes = 8;
  tensor_free(good);
  tensor_free(bad);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(round_trip_every_dtype),     cmocka_unit_test(reads_pytorch_file),
      cmocka_unit_test(refuses_malformed_files),    cmocka_unit_test(refuses_every_truncation),
      cmocka_unit_test(failed_write_keeps_the_old_file),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
