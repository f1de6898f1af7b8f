/* Tests of runtime/idx.c: IDX files written here (gzip and plain) read
 * back exactly; every malformed file refused with its name and the fault;
 * the Fashion-MNIST split built from them (padding, scaling, labels); and,
 * where Debian's dataset-fashion-mnist is installed, the real data set: its
 * published sizes and its 6,000 (train) and 1,000 (test) images per class. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "idx.h"

#define TMPDIR_TEMPLATE "/tmp/irepa-idx-XXXXXX"
#include "tmpdir.h"

/* An IDX file: header for (type, rank, dims), then `n` data bytes (which
 * may disagree with the header, for the malformed cases). */
static void write_idx(const char *path, bool gz, int type, int rank, const uint32_t *dims, const unsigned char *data,
                      size_t n) {
  unsigned char head[4 + 16] = {0, 0, (unsigned char)type, (unsigned char)rank};
  for (int k = 0; k < rank; k++)
    for (int b = 0; b < 4; b++) head[4 + 4 * k + b] = (unsigned char)(dims[k] >> (24 - 8 * b));
  size_t hn = 4 + 4 * (size_t)rank;
  if (gz) {
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, head, (unsigned)hn), (int)hn);
    if (n) assert_int_equal(gzwrite(f, data, (unsigned)n), (int)n);
    assert_int_equal(gzclose(f), Z_OK);
  } else {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(head, 1, hn, f), hn);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
  }
}

static void reads_gzip_and_plain(void **state) {
  (void)state;
  unsigned char data[2 * 3 * 4];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)(i * 11);
  const uint32_t dims[3] = {2, 3, 4};
  for (int gz = 0; gz < 2; gz++) {
    const char *path = tmp_path(gz ? "a.gz" : "a");
    write_idx(path, gz, 0x08, 3, dims, data, sizeof data);
    RtError err;
    Tensor *t = idx_load(path, "x", &err);
    assert_non_null(t);
    assert_int_equal(t->dtype, DT_U8);
    assert_int_equal(t->rank, 3);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[2], 4);
    assert_memory_equal(t->data, data, sizeof data);
    tensor_free(t);
  }
}

static void expect_error(const char *path, const char *fragment) {
  RtError err = {{0}};
  Tensor *t = idx_load(path, "x", &err);
  assert_null(t);
  if (!strstr(err.msg, fragment) || !strstr(err.msg, path)) {
    print_error("message '%s' lacks '%s' or the path\n", err.msg, fragment);
    fail();
  }
}

static void refuses_malformed_files(void **state) {
  (void)state;
  unsigned char data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const uint32_t four[1] = {4}, eight[1] = {8}, zero[1] = {0};
  write_idx(tmp_path("short.gz"), true, 0x08, 1, eight, data, 5);
  expect_error(tmp_path("short.gz"), "truncated");
  write_idx(tmp_path("long.gz"), true, 0x08, 1, four, data, 8);
  expect_error(tmp_path("long.gz"), "bytes after the data");
  write_idx(tmp_path("float.gz"), true, 0x0D, 1, four, data, 8);
  expect_error(tmp_path("float.gz"), "element type 0x0d");
  write_idx(tmp_path("rank0.gz"), true, 0x08, 0, four, data, 0);
  expect_error(tmp_path("rank0.gz"), "rank 0");
  write_idx(tmp_path("zero.gz"), true, 0x08, 1, zero, data, 0);
  expect_error(tmp_path("zero.gz"), "dimension 0 is 0");
  FILE *f = fopen(tmp_path("text"), "w");
  fputs("hello, world", f);
  fclose(f);
  expect_error(tmp_path("text"), "bad magic");
  expect_error(tmp_path("missing.gz"), "cannot open");
  f = fopen(tmp_path("headless"), "w");
  fputc(0, f);
  fclose(f);
  expect_error(tmp_path("headless"), "truncated");
}

/* A two-image split in a directory of its own. */
static const char *write_split(const char *dir, unsigned char label1, uint32_t nlabels) {
  static char path[300];
  snprintf(path, sizeof path, "%s", tmp_path(dir));
  mkdir(path, 0700);
  unsigned char pixels[2 * 28 * 28], labels[3] = {7, label1, 2};
  for (int i = 0; i < 2 * 28 * 28; i++) pixels[i] = (unsigned char)(i % 256);
  const uint32_t idims[3] = {2, 28, 28}, ldims[1] = {nlabels};
  char file[400];
  snprintf(file, sizeof file, "%s/train-images-idx3-ubyte.gz", path);
  write_idx(file, true, 0x08, 3, idims, pixels, sizeof pixels);
  snprintf(file, sizeof file, "%s/train-labels-idx1-ubyte.gz", path);
  write_idx(file, true, 0x08, 1, ldims, labels, nlabels);
  return path;
}

static void builds_the_padded_split(void **state) {
  (void)state;
  Tensor *images, *labels;
  RtError err;
  assert_true(fmnist_load(write_split("good", 3, 2), "train", &images, &labels, &err));
  assert_int_equal(images->dtype, DT_F32);
  assert_int_equal(images->rank, 4);
  assert_int_equal(images->shape[0], 2);
  assert_int_equal(images->shape[1], 1);
  assert_int_equal(images->shape[2], 32);
  const float *x = images->data;
  assert_true(x[0] == -1.0f);                      /* padding */
  assert_true(x[2 * 32 + 2] == -1.0f);             /* pixel (0,0) of image 0 is 0 */
  assert_true(x[2 * 32 + 3] == 1.0f / 127.5f - 1.0f); /* pixel (0,1) is 1 */
  /* image 1, pixel (0,0): byte 784 % 256 = 16 */
  assert_true(x[32 * 32 + 2 * 32 + 2] == 16.0f / 127.5f - 1.0f);
  const int64_t *y = labels->data;
  assert_int_equal(labels->dtype, DT_I64);
  assert_int_equal(y[0], 7);
  assert_int_equal(y[1], 3);
  tensor_free(images);
  tensor_free(labels);

  assert_false(fmnist_load(write_split("badlabel", 12, 2), "train", &images, &labels, &err));
  assert_non_null(strstr(err.msg, "label 12 at index 1"));
  assert_null(images);
  assert_false(fmnist_load(write_split("count", 3, 3), "train", &images, &labels, &err));
  assert_non_null(strstr(err.msg, "3 labels for 2 images"));
  assert_false(fmnist_load(tmp_path("nowhere"), "train", &images, &labels, &err));
  assert_non_null(strstr(err.msg, "cannot open"));
}

static void check_real_split(const char *split, int64_t n) {
  Tensor *images, *labels;
  RtError err;
  if (!fmnist_load(fmnist_dir(), split, &images, &labels, &err)) {
    print_error("%s\n", err.msg);
    fail();
  }
  assert_int_equal(images->shape[0], n);
  assert_int_equal(labels->shape[0], n);
  int64_t count[10] = {0};
  const int64_t *y = labels->data;
  for (int64_t i = 0; i < n; i++) count[y[i]]++;
  for (int c = 0; c < 10; c++) assert_int_equal(count[c], n / 10);
  float lo = 1, hi = -1;
  const float *x = images->data;
  for (int64_t i = 0; i < tensor_numel(images); i++) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
  assert_true(lo == -1.0f && hi == 1.0f);
  tensor_free(images);
  tensor_free(labels);
}

static void reads_the_real_data_set(void **state) {
  (void)state;
  char path[4200];
  snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", fmnist_dir());
  if (access(path, R_OK) != 0) {
    print_message("Fashion-MNIST not installed at %s (apt-get install dataset-fashion-mnist)\n", fmnist_dir());
    skip();
  }
  check_real_split("train", 60000);
  check_real_split("t10k", 10000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reads_gzip_and_plain),
      cmocka_unit_test(refuses_malformed_files),
      cmocka_unit_test(builds_the_padded_split),
      cmocka_unit_test(reads_the_real_data_set),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
