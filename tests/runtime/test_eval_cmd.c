/* Tests of `irepa-run eval` (runtime/eval_cmd.c), run in-process on the C
 * backend with an untrained Fashion-MNIST encoder initialised here (the
 * metrics' arithmetic is checked against numpy in test_fid.c; this checks
 * the command): a set against itself (FID 0, precision = recall = 1),
 * grey stored as RGB and 28x28 padded images, --save-stats and a
 * statistics reference giving the same FID, the Inception Score from the
 * host-side head equal to the network's own logits entry, the JSON, and
 * every bad input refused with exit status 2 and the file named; and the
 * built-in data set as REFERENCE (fashion-mnist:test), here a small fake
 * one in IDX files, giving the same numbers as its images in an .npz. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eval_cmd.h"
#include "fid.h"
#include "npz.h"
#include "safetensors.h"
#include "train_cmd.h"

#define TMPDIR_TEMPLATE "/tmp/irepa-eval-XXXXXX"
#include "tmpdir.h"

enum { NA = 40, NB = 36 };

static char weights[256];

/* n pseudo-random "garments": a bright blob on black, h x w x c. */
static uint8_t *images(int64_t n, int h, int w, int c, uint64_t seed) {
  uint8_t *px = calloc((size_t)(n * h * w * c), 1);
  for (int64_t i = 0; i < n; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    int cy = h / 4 + (int)(seed >> 60) % (h / 2), cx = w / 4 + (int)(seed >> 56 & 15) % (w / 2);
    int r = 3 + (int)(seed >> 52 & 7);
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        int d2 = (y - cy) * (y - cy) + (x - cx) * (x - cx);
        uint8_t v = d2 < r * r ? (uint8_t)(255 - 4 * d2 - (seed >> 40 & 63)) : 0;
        for (int k = 0; k < c; k++) px[((i * h + y) * w + x) * c + k] = v;
      }
  }
  return px;
}

static void write_npz(const char *name, DType t, int rank, const int64_t *shape, const void *data) {
  RtError err = {{0}};
  NpzWriter *w = npz_writer_open(tmp_path(name), "arr_0", t, rank, shape, &err);
  if (!w || !npz_writer_append(w, data, shape[0], &err) || !npz_writer_close(w, &err)) fail_msg("%s", err.msg);
}

static int setup(void **state) {
  if (make_dir(state)) return -1;
  RtError err = {{0}};
  Trainer t = {0};
  snprintf(weights, sizeof weights, "%s", tmp_path("enc.safetensors"));
  bool ok = train_encoder_program(&t, "c", &err) && trainer_init(&t, 7, &err) &&
            st_write(weights, t.params.items, t.params.n, NULL, &err);
  trainer_free(&t);
  if (!ok) return fprintf(stderr, "setup: %s\n", err.msg), -1;
  uint8_t *a = images(NA, 32, 32, 1, 1), *a3 = images(NA, 32, 32, 3, 1), *b = images(NB, 28, 28, 1, 2);
  int64_t sa[4] = {NA, 32, 32, 1}, sa3[4] = {NA, 32, 32, 3}, sb[4] = {NB, 28, 28, 1}, sb3[3] = {NB, 28, 28};
  write_npz("a.npz", DT_U8, 4, sa, a);
  write_npz("a_rgb.npz", DT_U8, 4, sa3, a3);
  write_npz("b.npz", DT_U8, 4, sb, b);
  write_npz("b_rank3.npz", DT_U8, 3, sb3, b);
  a3[5 * 32 * 32 * 3 + 3 * 32 * 3 + 16 * 3 + 1] ^= 1; /* image 5 in colour */
  write_npz("colour.npz", DT_U8, 4, sa3, a3);
  free(a);
  free(a3);
  free(b);
  return 0;
}

/* Runs `irepa-run eval ARGS... --encoder-weights W --backend c`. */
static int eval(const char *a0, const char *a1, const char *a2, const char *a3) {
  const char *args[12] = {a0, a1, a2, a3};
  int n = 0;
  while (n < 4 && args[n]) n++;
  args[n++] = "--encoder-weights";
  args[n++] = weights;
  args[n++] = "--backend";
  args[n++] = "c";
  args[n++] = "--batch-size";
  args[n++] = "16";
  return eval_command(n, (char **)args);
}

static json_t *load_json(const char *name) {
  json_error_t e;
  json_t *j = json_load_file(tmp_path(name), 0, &e);
  if (!j) fail_msg("%s: %s", name, e.text);
  return j;
}

static double num(const json_t *j, const char *key) {
  json_t *v = json_object_get(j, key);
  if (!json_is_number(v)) fail_msg("JSON key %s missing or not a number", key);
  return json_number_value(v);
}

static char *path_copy(const char *name) { return strdup(tmp_path(name)); }

static void test_self(void **state) {
  (void)state;
  char *a = path_copy("a.npz"), *out = path_copy("self.json");
  assert_int_equal(eval(a, a, "--out", out), 0);
  json_t *j = load_json("self.json");
  printf("self: fid %.3e, precision %g, recall %g\n", num(j, "fid_fmnist-vit"), num(j, "precision_fmnist-vit"),
         num(j, "recall_fmnist-vit"));
  assert_true(fabs(num(j, "fid_fmnist-vit")) < 1e-9);
  assert_true(num(j, "precision_fmnist-vit") == 1 && num(j, "recall_fmnist-vit") == 1);
  assert_true(num(j, "n_samples") == NA && num(j, "n_reference") == NA);
  assert_string_equal(json_string_value(json_object_get(j, "metric_kind")), "domain");
  assert_string_equal(json_string_value(json_object_get(j, "feature_network")), "fmnist-vit");
  json_decref(j);
  /* grey stored as three equal channels is the same image */
  char *a3 = path_copy("a_rgb.npz");
  assert_int_equal(eval(a3, a, "--out", out), 0);
  j = load_json("self.json");
  assert_true(fabs(num(j, "fid_fmnist-vit")) < 1e-9 && num(j, "precision_fmnist-vit") == 1);
  json_decref(j);
  free(a);
  free(a3);
  free(out);
}

/* The Inception Score of the JSON (logits from the head on the host)
 * equals the one from the network's own logits entry. */
static double network_is(const char *name) {
  RtError err = {{0}};
  Trainer t = {0};
  NpzFile *f = npz_open(tmp_path(name), &err);
  Tensor *u8 = f ? npz_read(f, "arr_0", &err) : NULL;
  assert_non_null(u8);
  int64_t shape[4] = {u8->shape[0], 1, 32, 32};
  Tensor *x = tensor_new("x", DT_F32, 4, shape, &err);
  for (int64_t i = 0; i < tensor_numel(x); i++) tensor_set(x, i, (float)((uint8_t *)u8->data)[i] / 127.5f - 1.0f);
  TensorList in = {0}, out = {0};
  assert_true(train_encoder_program(&t, "c", &err) && trainer_init(&t, 0, &err) &&
              train_load_weights(&t, weights, &err) && tensorlist_add(&in, x, &err) &&
              trainer_run(&t, "logits", &in, false, &out, &err));
  double mean, std;
  int64_t splits;
  assert_true(fid_inception_score(out.items[0], 5000, &mean, &std, &splits, &err));
  tensorlist_free(&in);
  tensorlist_free(&out);
  tensor_free(u8);
  npz_close(f);
  trainer_free(&t);
  return mean;
}

static void test_pair_and_stats(void **state) {
  (void)state;
  char *a = path_copy("a.npz"), *b = path_copy("b.npz"), *b3 = path_copy("b_rank3.npz"), *st = path_copy("b_stats.npz"),
       *out = path_copy("ab.json"), *out2 = path_copy("as.json");
  /* the statistics come from the same images stored as [N, 28, 28] */
  assert_int_equal(eval(a, b, "--out", out), 0);
  assert_int_equal(eval("--save-stats", st, b3, NULL), 0);
  assert_int_equal(eval(a, st, "--out", out2), 0);
  json_t *ab = load_json("ab.json"), *as = load_json("as.json");
  double fid = num(ab, "fid_fmnist-vit"), fid_stats = num(as, "fid_fmnist-vit");
  printf("a vs b: fid %.10g, against b's statistics %.10g; IS %.6f; precision %g recall %g\n", fid, fid_stats,
         num(ab, "inception_score_fmnist-vit"), num(ab, "precision_fmnist-vit"), num(ab, "recall_fmnist-vit"));
  assert_true(fid > 0 && fabs(fid - fid_stats) <= 1e-12 * fid);
  assert_true(json_is_null(json_object_get(as, "precision_fmnist-vit")));
  assert_string_equal(json_string_value(json_object_get(as, "reference_kind")), "statistics");
  assert_true(num(as, "n_reference") == NB);
  double is = num(ab, "inception_score_fmnist-vit"), is_net = network_is("a.npz");
  printf("IS: host head %.10f, network logits %.10f\n", is, is_net);
  assert_true(fabs(is - is_net) <= 1e-5 * is);
  json_decref(ab);
  json_decref(as);
  free(a), free(b), free(b3), free(st), free(out), free(out2);
}

/* An IDX file (plain: zlib reads it like gzip) of u8 data of this shape. */
static void write_idx(const char *name, int rank, const uint32_t *dims, const uint8_t *data, size_t n) {
  FILE *f = fopen(tmp_path(name), "wb");
  assert_non_null(f);
  uint8_t head[4] = {0, 0, 8, (uint8_t)rank};
  fwrite(head, 1, 4, f);
  for (int k = 0; k < rank; k++) {
    uint8_t be[4] = {(uint8_t)(dims[k] >> 24), (uint8_t)(dims[k] >> 16), (uint8_t)(dims[k] >> 8), (uint8_t)dims[k]};
    fwrite(be, 1, 4, f);
  }
  fwrite(data, 1, n, f);
  assert_int_equal(fclose(f), 0);
}

/* fashion-mnist:test as the reference: b's images as a fake t10k split
 * give the FID, IS, precision and recall of b.npz itself. */
static void test_fmnist_reference(void **state) {
  (void)state;
  uint8_t *b = images(NB, 28, 28, 1, 2), labels[NB] = {0};
  uint32_t di[3] = {NB, 28, 28}, dl[1] = {NB};
  write_idx("t10k-images-idx3-ubyte.gz", 3, di, b, (size_t)NB * 28 * 28);
  write_idx("t10k-labels-idx1-ubyte.gz", 1, dl, labels, NB);
  free(b);
  setenv("IREPA_FMNIST_DIR", tmpdir, 1);
  char *a = path_copy("a.npz"), *b_npz = path_copy("b.npz"), *out = path_copy("fm.json"), *out2 = path_copy("ab2.json");
  assert_int_equal(eval(a, "fashion-mnist:test", "--out", out), 0);
  assert_int_equal(eval(a, b_npz, "--out", out2), 0);
  json_t *fm = load_json("fm.json"), *ab = load_json("ab2.json");
  const char *keys[] = {"fid_fmnist-vit", "inception_score_fmnist-vit", "precision_fmnist-vit", "recall_fmnist-vit",
                        "n_reference"};
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) assert_true(num(fm, keys[k]) == num(ab, keys[k]));
  printf("fashion-mnist:test (fake): fid %.10g\n", num(fm, "fid_fmnist-vit"));
  assert_string_equal(json_string_value(json_object_get(fm, "reference")), "fashion-mnist:test");
  json_decref(fm);
  json_decref(ab);
  /* the built-in images as --save-stats input too */
  assert_int_equal(eval("--save-stats", tmp_path("fm_stats.npz"), "fashion-mnist:t10k", NULL), 0);
  /* an unknown split, and a split whose files are missing: bad inputs */
  assert_int_equal(eval(a, "fashion-mnist:valid", NULL, NULL), 2);
  assert_int_equal(eval(a, "fashion-mnist:train", NULL, NULL), 2);
  unsetenv("IREPA_FMNIST_DIR");
  free(a), free(b_npz), free(out), free(out2);
}

/* Bad inputs: exit status 2 and no output file. */
static void test_bad_inputs(void **state) {
  (void)state;
  RtError err = {{0}};
  int64_t s[4] = {3, 32, 32, 1}, s0[4] = {0, 32, 32, 1}, big[4] = {2, 64, 64, 3}, d5[1] = {5}, d55[2] = {5, 5};
  float f[3 * 32 * 32] = {0};
  uint8_t z[2 * 64 * 64 * 3] = {0};
  write_npz("f32.npz", DT_F32, 4, s, f);
  write_npz("empty.npz", DT_U8, 4, s0, z);
  write_npz("big.npz", DT_U8, 4, big, z);
  Tensor *st[2] = {tensor_new("mu", DT_F64, 1, d5, &err), tensor_new("sigma", DT_F64, 2, d55, &err)};
  assert_true(npz_write(tmp_path("stats5.npz"), st, 2, &err));
  Tensor *other = tensor_new("foo", DT_F32, 1, d5, &err);
  assert_true(st_write(tmp_path("other.safetensors"), &other, 1, NULL, &err));
  char *a = path_copy("a.npz"), *out = path_copy("bad.json");
  const char *bad[] = {"missing.npz", "f32.npz", "empty.npz", "big.npz", "colour.npz", "stats5.npz"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *p = path_copy(bad[i]);
    printf("-- %s as samples, then as reference:\n", bad[i]);
    fflush(stdout);
    assert_int_equal(eval(p, a, "--out", out), 2);
    if (strcmp(bad[i], "colour.npz")) assert_int_equal(eval(a, p, "--out", out), 2);
    free(p);
  }
  struct stat sb;
  assert_true(stat(out, &sb) != 0);
  const char *args[] = {a, a, "--encoder-weights", tmp_path("other.safetensors"), "--backend", "c"};
  assert_int_equal(eval_command(6, (char **)args), 2);
  const char *args2[] = {a, a, "--encoder-weights", tmp_path("nothing.safetensors")};
  assert_int_equal(eval_command(4, (char **)args2), 2);
  const char *args3[] = {a, a, "--frob"};
  assert_int_equal(eval_command(3, (char **)args3), 2);
  const char *args4[] = {a};
  assert_int_equal(eval_command(1, (char **)args4), 2);
  const char *args5[] = {a, a, "--features", "inception"};
  assert_int_equal(eval_command(4, (char **)args5), 2);
  tensor_free(st[0]);
  tensor_free(st[1]);
  tensor_free(other);
  free(a);
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_self),
      cmocka_unit_test(test_pair_and_stats),
      cmocka_unit_test(test_bad_inputs),
      cmocka_unit_test(test_fmnist_reference),
  };
  return cmocka_run_group_tests(tests, setup, remove_dir);
}
