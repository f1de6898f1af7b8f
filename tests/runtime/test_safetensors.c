/* Tests of runtime/safetensors.c: round trips of every dtype (rank 0, empty
 * tensors, metadata), files written by PyTorch's safetensors package (made
 * by tools/gen_safetensors_fixtures.py, with the values the package read
 * back), a corpus of malformed files each refused with a clear message and
 * no read out of bounds (run it in the ASan build too), and atomic writes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"

#define TMPDIR_TEMPLATE "/tmp/irepa-st-XXXXXX"
#include "tmpdir.h"

static const char *fixture_path(const char *name) {
  static char buf[4096];
  const char *root = getenv("IREPA_SOURCE_DIR");
  snprintf(buf, sizeof buf, "%s/tests/runtime/safetensors/%s", root ? root : "../..", name);
  return buf;
}

static size_t read_whole(const char *path, unsigned char *buf, size_t cap) {
  FILE *fp = fopen(path, "rb");
  if (!fp) fail_msg("cannot open %s", path);
  size_t n = fread(buf, 1, cap, fp);
  fclose(fp);
  return n;
}

static void write_whole(const char *path, const unsigned char *buf, size_t n) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(buf, 1, n, fp), n);
  fclose(fp);
}

/* A tensor whose elements are distinct and, for floats, not integers. */
static Tensor *filled(const char *name, DType t, int rank, const int64_t *shape) {
  RtError err;
  Tensor *x = tensor_new(name, t, rank, shape, &err);
  if (!x) fail_msg("%s", err.msg);
  for (int64_t i = 0; i < tensor_numel(x); i++)
    tensor_set(x, i, t == DT_BOOL ? (double)(i % 2) : (double)i + 3 - 2.5 * dtype_is_float(t));
  return x;
}

static StFile *open_ok(const char *path) {
  RtError err = {{0}};
  StFile *f = st_open(path, &err);
  if (!f) fail_msg("%s", err.msg);
  return f;
}

static void assert_same_tensor(const Tensor *r, const Tensor *w) {
  assert_string_equal(r->name, w->name);
  assert_int_equal(r->dtype, w->dtype);
  assert_int_equal(r->rank, w->rank);
  assert_memory_equal(r->shape, w->shape, sizeof(int64_t) * (size_t)r->rank);
  assert_int_equal(r->nbytes, w->nbytes);
  assert_false(r->owns_data);
  if (r->nbytes) assert_memory_equal(r->data, w->data, r->nbytes);
  for (int64_t i = 0; i < tensor_numel(r); i++) assert_true(tensor_get(r, i) == tensor_get(w, i));
}

/* ---- round trips -------------------------------------------------------- */

static void round_trip_every_dtype(void **state) {
  (void)state;
  static const int64_t s23[] = {2, 3}, s04[] = {0, 4}, s5[] = {5};
  Tensor *ts[DT_COUNT + 4];
  int n = 0;
  for (int t = 0; t < DT_COUNT; t++) ts[n++] = filled(dtype_name((DType)t), (DType)t, 2, s23);
  ts[n++] = filled("scalar", DT_F32, 0, NULL);
  ts[n++] = filled("empty", DT_F32, 2, s04);
  ts[n++] = filled("empty too", DT_I64, 2, s04); /* shares its offset with the next */
  ts[n++] = filled("odd bytes", DT_U8, 1, s5);   /* leaves what follows unaligned */
  const char *meta[] = {"a", "1", "format", "pt", "empty", "", NULL};
  RtError err;
  const char *path = tmp_path("round.safetensors");
  if (!st_write(path, ts, n, meta, &err)) fail_msg("%s", err.msg);
  StFile *f = open_ok(path);
  const TensorList *l = st_tensors(f);
  assert_int_equal(l->n, n);
  for (int i = 0; i < n; i++) assert_same_tensor(l->items[i], ts[i]); /* in written order */
  assert_string_equal(st_metadata(f, "format"), "pt");
  assert_string_equal(st_metadata(f, "empty"), "");
  assert_null(st_metadata(f, "c"));
  assert_ptr_equal(tensorlist_find(l, "scalar"), l->items[DT_COUNT]);
  st_close(f);
  for (int i = 0; i < n; i++) tensor_free(ts[i]);
}

/* The reference layout: the length, then a header padded with spaces to a
 * multiple of 8, then the data; writing what was read gives the same bytes. */
static void writes_the_reference_layout(void **state) {
  (void)state;
  static const int64_t s[] = {3};
  Tensor *t = filled("x", DT_F16, 1, s);
  RtError err;
  const char *a = tmp_path("a.safetensors"), *b = tmp_path("b.safetensors");
  assert_true(st_write(a, &t, 1, NULL, &err));
  unsigned char buf[256], again[256];
  size_t n = read_whole(a, buf, sizeof buf);
  uint64_t h = 0;
  for (int i = 7; i >= 0; i--) h = h << 8 | buf[i];
  assert_int_equal(h % 8, 0);
  assert_int_equal(n, 8 + h + 6);
  const char *want = "{\"x\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]}}";
  assert_memory_equal(buf + 8, want, strlen(want));
  for (size_t i = 8 + strlen(want); i < 8 + h; i++) assert_int_equal(buf[i], ' ');
  StFile *f = open_ok(a);
  assert_true(st_write(b, st_tensors(f)->items, st_tensors(f)->n, NULL, &err));
  assert_int_equal(read_whole(b, again, sizeof again), n);
  assert_memory_equal(buf, again, n);
  /* Replacing the file that is open leaves its mapping intact. */
  const char *meta[] = {"k", "v", NULL};
  assert_true(st_write(a, st_tensors(f)->items, st_tensors(f)->n, meta, &err));
  assert_same_tensor(st_tensors(f)->items[0], t);
  st_close(f);
  f = open_ok(a);
  assert_string_equal(st_metadata(f, "k"), "v");
  assert_same_tensor(st_tensors(f)->items[0], t);
  st_close(f);
  /* No tensors at all is a valid file too. */
  assert_true(st_write(a, NULL, 0, NULL, &err));
  f = open_ok(a);
  assert_int_equal(st_tensors(f)->n, 0);
  st_close(f);
  tensor_free(t);
}

/* ---- files written by PyTorch's safetensors ----------------------------- */

static bool same_value(double got, double want) {
  if (isnan(want)) return isnan(got);
  return got == want && signbit(got) == signbit(want);
}

static void check_fixture_tensor(const StFile *f, char *rest) {
  const char *name = strtok(rest, " \n"), *tag = strtok(NULL, " \n");
  const Tensor *t = tensorlist_find(st_tensors(f), name);
  if (!t) fail_msg("no tensor '%s'", name);
  char lower[16] = {0};
  for (size_t i = 0; tag[i] && i < sizeof lower - 1; i++) lower[i] = (char)tolower((unsigned char)tag[i]);
  assert_string_equal(dtype_name(t->dtype), lower); /* F32 -> f32, BOOL -> bool, ... */
  assert_int_equal(t->rank, atoi(strtok(NULL, " \n")));
  for (int k = 0; k < t->rank; k++) assert_int_equal(t->shape[k], atoll(strtok(NULL, " \n")));
  long n = atol(strtok(NULL, " \n"));
  assert_int_equal(tensor_numel(t), n);
  for (long i = 0; i < n; i++) {
    double want = strtod(strtok(NULL, " \n"), NULL);
    if (!same_value(tensor_get(t, i), want))
      fail_msg("%s[%ld] = %.17g, safetensors read %.17g", name, i, tensor_get(t, i), want);
  }
}

static void check_fixture(const char *stem) {
  char name[256];
  snprintf(name, sizeof name, "%s.safetensors", stem);
  StFile *f = open_ok(fixture_path(name));
  snprintf(name, sizeof name, "%s.txt", stem);
  FILE *txt = fopen(fixture_path(name), "r");
  assert_non_null(txt);
  char line[8192];
  int tensors = 0;
  while (fgets(line, sizeof line, txt)) {
    if (!strncmp(line, "tensor ", 7)) {
      check_fixture_tensor(f, line + 7);
      tensors++;
    } else if (!strncmp(line, "meta ", 5)) {
      const char *key = strtok(line + 5, " \n"), *value = strtok(NULL, "\n");
      const char *got = st_metadata(f, key);
      if (!got || strcmp(got, value)) fail_msg("metadata %s: '%s', want '%s'", key, got ? got : "(none)", value);
    }
  }
  fclose(txt);
  assert_int_equal(tensors, st_tensors(f)->n);
  /* Listed in data order. */
  const TensorList *l = st_tensors(f);
  for (int i = 1; i < l->n; i++)
    assert_true((const char *)l->items[i - 1]->data + l->items[i - 1]->nbytes == l->items[i]->data);
  st_close(f);
}

static void reads_pytorch_files(void **state) {
  (void)state;
  check_fixture("torch_fixture");    /* every dtype, scalar, empty, metadata */
  check_fixture("torch_odd_layout"); /* UTF-8 name, empty tensors, rank 4, inf */
}

/* ---- malformed files ---------------------------------------------------- */

enum { REAL_LEN = -1 };

/* Builds a file from a header text and `data_len` data bytes; the length
 * prefix is `claimed`, or the header's length for REAL_LEN. */
static size_t build(unsigned char *buf, const char *header, int64_t claimed, size_t data_len) {
  size_t h = strlen(header);
  uint64_t n = claimed == REAL_LEN ? h : (uint64_t)claimed;
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(n >> (8 * i));
  memcpy(buf + 8, header, h);
  memset(buf + 8 + h, 0x3f, data_len);
  return 8 + h + data_len;
}

typedef struct {
  const char *header;
  int64_t claimed;
  size_t data_len;
  const char *message; /* a fragment the error must contain */
} Bad;

#define F32A(offs) "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":" offs "}"
#define ENTRY(name, dtype, shape, offs) \
  "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static const Bad bad_files[] = {
    /* header length */
    {"{" F32A("[0,4]") "}", 1 << 20, 4, "header length 1048576 exceeds the file"},
    {"{" F32A("[0,4]") "}", 59, 4, "header length 59 exceeds the file (58 bytes"},
    {"{}", 200000000, 0, "over the 100000000-byte limit"},
    {"{}", -2, 0, "header length 18446744073709551614 is over"},
    /* the JSON */
    {"", REAL_LEN, 0, "not valid JSON"},
    {"    ", REAL_LEN, 0, "not valid JSON"},
    {"{" F32A("[0,4]"), REAL_LEN, 4, "not valid JSON"},
    {"{} x", REAL_LEN, 0, "not valid JSON"},
    {"{\"\xff\":1}", REAL_LEN, 0, "not valid JSON"},
    {"{\"a\\u0000b\":1}", REAL_LEN, 0, "not valid JSON"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", REAL_LEN, 4,
     "not valid JSON"},
    {"[1,2]", REAL_LEN, 0, "header is not a JSON object"},
    {"\"a\"", REAL_LEN, 0, "header is not a JSON object"},
    {"{" F32A("[0,4]") "," ENTRY("a", "F32", "[1]", "[4,8]") "}", REAL_LEN, 8, "duplicate"},
    /* fields */
    {"{\"a\":3}", REAL_LEN, 0, "tensor 'a': entry is not an object"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", REAL_LEN, 4, "tensor 'a': needs \"dtype\""},
    {"{" ENTRY("a", "F32", "1", "[0,4]") "}", REAL_LEN, 4, "tensor 'a': needs \"dtype\""},
    {"{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", REAL_LEN, 4, "tensor 'a': needs"},
    {"{" ENTRY("a", "F32", "[1]", "{}") "}", REAL_LEN, 4, "tensor 'a': needs"},
    {"{" ENTRY("a", "F8", "[1]", "[0,1]") "}", REAL_LEN, 1, "tensor 'a': unsupported dtype 'F8'"},
    {"{" ENTRY("a", "f32", "[1]", "[0,4]") "}", REAL_LEN, 4, "unsupported dtype 'f32'"},
    {"{" ENTRY("a", "U16", "[1]", "[0,2]") "}", REAL_LEN, 2, "unsupported dtype 'U16'"},
    /* shapes */
    {"{" ENTRY("a", "F32", "[-1]", "[0,4]") "}", REAL_LEN, 4, "tensor 'a': shape entry 0 is not a non-negative"},
    {"{" ENTRY("a", "F32", "[1.0]", "[0,4]") "}", REAL_LEN, 4, "shape entry 0 is not"},
    {"{" ENTRY("a", "F32", "[1,\"2\"]", "[0,8]") "}", REAL_LEN, 8, "shape entry 1 is not"},
    {"{" ENTRY("a", "F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", REAL_LEN, 4, "tensor 'a': 9 axes"},
    {"{" ENTRY("a", "F32", "[4611686018427387904,4]", "[0,4]") "}", REAL_LEN, 4, "tensor 'a': shape overflows"},
    {"{" ENTRY("a", "F32", "[0,4611686018427387904,4]", "[0,0]") "}", REAL_LEN, 0, "shape overflows"},
    {"{" ENTRY("a", "U8", "[9223372036854775807,2]", "[0,0]") "}", REAL_LEN, 0, "shape overflows"},
    {"{" ENTRY("a", "F32", "[1099511627776]", "[0,4]") "}", REAL_LEN, 4,
     "tensor 'a': shape and dtype need 4398046511104 bytes but data_offsets span 4"},
    {"{" ENTRY("a", "F32", "[2]", "[0,4]") "}", REAL_LEN, 4, "need 8 bytes but data_offsets span 4"},
    {"{" ENTRY("a", "BF16", "[]", "[0,4]") "}", REAL_LEN, 4, "need 2 bytes but data_offsets span 4"},
    /* offsets */
    {"{" F32A("[4,0]") "}", REAL_LEN, 4, "tensor 'a': data_offsets must be two integers with 0 <= begin <= end"},
    {"{" F32A("[-4,0]") "}", REAL_LEN, 4, "0 <= begin <= end"},
    {"{" F32A("[0,4,8]") "}", REAL_LEN, 4, "two integers"},
    {"{" F32A("[0]") "}", REAL_LEN, 4, "two integers"},
    {"{" F32A("[0,4.0]") "}", REAL_LEN, 4, "two integers"},
    {"{" F32A("[0,4]") "}", REAL_LEN, 2, "tensor 'a': data_offsets end at 4, past the 2 data bytes"},
    {"{" F32A("[9223372036854775803,9223372036854775807]") "}", REAL_LEN, 4, "(gap)"},
    {"{" F32A("[0,4]") "," ENTRY("b", "F32", "[1]", "[2,6]") "}", REAL_LEN, 6,
     "tensor 'b': data starts at byte 2 but the previous tensor ends at 4 (overlap)"},
    {"{" ENTRY("a", "F64", "[1]", "[0,8]") "," ENTRY("b", "F32", "[0]", "[4,4]") "}", REAL_LEN, 8, "(overlap)"},
    {"{" F32A("[0,4]") "," ENTRY("b", "F32", "[1]", "[0,4]") "}", REAL_LEN, 4, "(overlap)"},
    {"{" F32A("[4,8]") "}", REAL_LEN, 8,
     "tensor 'a': data starts at byte 4 but the previous tensor ends at 0 (gap)"},
    {"{" F32A("[0,4]") "," ENTRY("b", "F32", "[1]", "[5,9]") "}", REAL_LEN, 9, "tensor 'b'"},
    {"{" F32A("[0,4]") "}", REAL_LEN, 9, "5 trailing bytes after the last tensor"},
    {"{}", REAL_LEN, 3, "3 trailing bytes"},
    /* metadata */
    {"{\"__metadata__\":{\"k\":1}}", REAL_LEN, 0, "__metadata__ value of 'k' is not a string"},
    {"{\"__metadata__\":{\"k\":null}}", REAL_LEN, 0, "value of 'k' is not a string"},
    {"{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", REAL_LEN, 0, "value of 'k' is not a string"},
    {"{\"__metadata__\":[]}", REAL_LEN, 0, "__metadata__ is not an object"},
    {"{\"__metadata__\":\"x\"}", REAL_LEN, 0, "__metadata__ is not an object"},
    {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", REAL_LEN, 0, "duplicate"},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", REAL_LEN, 0, "duplicate"},
};

static void expect_refused(const StFile *f, const RtError *err, const char *file, size_t i, const Bad *b) {
  if (f || !strstr(err->msg, b->message) || !strstr(err->msg, file))
    fail_msg("case %zu (%s): got '%s', wanted '%s'", i, b->header, f ? "success" : err->msg, b->message);
}

/* Each case is refused from memory and from a file (the mmap path). */
static void refuses_malformed_files(void **state) {
  (void)state;
  static unsigned char buf[1024];
  for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
    const Bad *b = &bad_files[i];
    size_t n = build(buf, b->header, b->claimed, b->data_len);
    RtError err = {{0}};
    StFile *f = st_open_memory("bad.safetensors", buf, n, &err);
    expect_refused(f, &err, "bad.safetensors", i, b);
    const char *path = tmp_path("bad.safetensors");
    write_whole(path, buf, n);
    f = st_open(path, &err);
    expect_refused(f, &err, path, i, b);
  }
}

static void refuses_what_is_not_a_file(void **state) {
  (void)state;
  RtError err;
  assert_null(st_open_memory("short", "abc", 3, &err));
  assert_non_null(strstr(err.msg, "short: file of 3 bytes is too short"));
  assert_null(st_open_memory("none", NULL, 0, &err));
  assert_non_null(strstr(err.msg, "too short"));
  const char *empty = tmp_path("empty.safetensors");
  write_whole(empty, (const unsigned char *)"", 0);
  assert_null(st_open(empty, &err));
  assert_non_null(strstr(err.msg, "file of 0 bytes is too short"));
  assert_null(st_open(tmp_path("missing.safetensors"), &err));
  assert_non_null(strstr(err.msg, "missing.safetensors: cannot open"));
  assert_null(st_open(tmpdir, &err));
  assert_non_null(strstr(err.msg, "not a regular file"));
  st_close(NULL);
}

/* Ties in the offsets (empty tensors) are accepted in any header order. */
static void accepts_shared_offsets(void **state) {
  (void)state;
  static const char *headers[] = {
      "{" ENTRY("e", "F32", "[0]", "[0,0]") "," F32A("[0,4]") "," ENTRY("z", "I64", "[2,0]", "[4,4]") "}",
      "{" ENTRY("z", "I64", "[2,0]", "[4,4]") "," F32A("[0,4]") "," ENTRY("e", "F32", "[0]", "[0,0]") "}",
  };
  unsigned char buf[256];
  for (int i = 0; i < 2; i++) {
    RtError err;
    StFile *f = st_open_memory("ties", buf, build(buf, headers[i], REAL_LEN, 4), &err);
    if (!f) fail_msg("%s", err.msg);
    const TensorList *l = st_tensors(f);
    assert_int_equal(l->n, 3);
    assert_string_equal(l->items[0]->name, "e");
    assert_string_equal(l->items[1]->name, "a");
    assert_string_equal(l->items[2]->name, "z");
    st_close(f);
  }
}

/* Every truncation of a valid file is refused, and no change to one byte
 * makes the reader go past the end (the ASan build checks the latter). */
static void survives_truncation_and_corruption(void **state) {
  (void)state;
  static const int64_t s[] = {3};
  Tensor *t[3] = {filled("x", DT_F32, 1, s), filled("y", DT_I64, 1, s), filled("z", DT_BOOL, 1, s)};
  const char *meta[] = {"k", "v", NULL};
  RtError err;
  const char *path = tmp_path("whole.safetensors");
  assert_true(st_write(path, t, 3, meta, &err));
  unsigned char buf[512];
  size_t n = read_whole(path, buf, sizeof buf);
  for (size_t len = 0; len < n; len++) assert_null(st_open_memory("cut", buf, len, &err));
  static const unsigned char values[] = {0, '0', '9', '"', '{', ']', ',', 0x80, 0xff};
  for (size_t i = 0; i < n; i++)
    for (size_t v = 0; v < sizeof values; v++) {
      unsigned char keep = buf[i];
      buf[i] = values[v];
      StFile *f = st_open_memory("flipped", buf, n, &err);
      for (int k = 0; f && k < st_tensors(f)->n; k++) {
        const Tensor *x = st_tensors(f)->items[k];
        for (int64_t e = 0; e < tensor_numel(x); e++) (void)tensor_get(x, e);
      }
      st_close(f);
      buf[i] = keep;
    }
  StFile *f = st_open_memory("whole", buf, n, &err);
  assert_non_null(f);
  st_close(f);
  for (int i = 0; i < 3; i++) tensor_free(t[i]);
}

/* ---- writing ------------------------------------------------------------ */

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  closedir(d);
  return n;
}

static void refused_write(const char *path, Tensor *const *ts, int n, const char *const *meta,
                          const char *message) {
  RtError err = {{0}};
  if (st_write(path, ts, n, meta, &err)) fail_msg("write of %s succeeded; wanted '%s'", path, message);
  if (!strstr(err.msg, message)) fail_msg("got '%s', wanted '%s'", err.msg, message);
}

/* Refused writes leave the existing file as it was and no temporary file;
 * a successful one keeps the file's permissions. */
static void failed_write_keeps_the_old_file(void **state) {
  (void)state;
  char dir[300];
  snprintf(dir, sizeof dir, "%s/keep", tmpdir);
  assert_int_equal(mkdir(dir, 0755), 0);
  char path[320];
  snprintf(path, sizeof path, "%s/keep.safetensors", dir);
  static const int64_t s[] = {2};
  Tensor *good = filled("g", DT_F32, 1, s), *bad = filled("b", DT_F32, 1, s);
  RtError err;
  assert_true(st_write(path, &good, 1, NULL, &err));
  unsigned char before[256], after[256];
  size_t nb = read_whole(path, before, sizeof before);

  bad->nbytes = 4;
  refused_write(path, &bad, 1, NULL, "tensor 'b': 4 bytes do not match its shape");
  bad->nbytes = 8;
  Tensor *dup[2] = {good, good};
  refused_write(path, dup, 2, NULL, "tensor name 'g' appears twice");
  free(bad->name);
  bad->name = strdup("__metadata__");
  refused_write(path, &bad, 1, NULL, "'__metadata__' is reserved");
  free(bad->name);
  bad->name = strdup("\xff\xfe");
  refused_write(path, &bad, 1, NULL, "not valid UTF-8");
  const char *odd[] = {"k", NULL}, *twice[] = {"k", "1", "k", "2", NULL}, *utf[] = {"k", "\xc3", NULL};
  refused_write(path, &good, 1, odd, "metadata key 'k' has no value");
  refused_write(path, &good, 1, twice, "metadata key 'k' appears twice");
  refused_write(path, &good, 1, utf, "metadata 'k': key or value is not valid UTF-8");
  refused_write(path, &good, -1, NULL, "bad tensor count");
  assert_int_equal(read_whole(path, after, sizeof after), nb);
  assert_memory_equal(before, after, nb);

  /* A failure after the temporary file is written: the target is a
   * directory, so the rename fails; the temporary file is removed. */
  char sub[340];
  snprintf(sub, sizeof sub, "%s/sub.safetensors", dir);
  assert_int_equal(mkdir(sub, 0755), 0);
  char inner[360];
  snprintf(inner, sizeof inner, "%s/x", sub);
  write_whole(inner, (const unsigned char *)"x", 1);
  refused_write(sub, &good, 1, NULL, "cannot replace it");
  assert_int_equal(count_entries(dir), 2);
  assert_int_equal(count_entries(sub), 1);
  refused_write("/nonexistent-dir/x.safetensors", &good, 1, NULL, "cannot create a temporary file beside it");

  assert_int_equal(chmod(path, 0640), 0);
  assert_true(st_write(path, &good, 1, NULL, &err));
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0640);
  assert_int_equal(count_entries(dir), 2);
  tensor_free(good);
  tensor_free(bad);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(round_trip_every_dtype),
      cmocka_unit_test(writes_the_reference_layout),
      cmocka_unit_test(reads_pytorch_files),
      cmocka_unit_test(refuses_malformed_files),
      cmocka_unit_test(refuses_what_is_not_a_file),
      cmocka_unit_test(accepts_shared_offsets),
      cmocka_unit_test(survives_truncation_and_corruption),
      cmocka_unit_test(failed_write_keeps_the_old_file),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
