/* Tests of runtime/loader.c on a synthetic source whose items say who they
 * are (x = item, pos; y = item): every epoch is a permutation of the items
 * with the last partial batch dropped; batches are the same with 1 or 5
 * threads and when started at a later batch (resume); `pos` numbers the
 * samples of the run; a table is gathered by item; a failing item's
 * message reaches loader_take; the in-memory form (loader_open) still
 * delivers its tensors; the flip mirrors the samples loader_flips names,
 * about half, whatever the number of threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "loader.h"

enum { N = 23, BATCH = 4, EPOCHS = 3, PER_EPOCH = N / BATCH };

typedef struct {
  int64_t fail_item; /* -1: none */
} Ctx;

static bool load_item(void *ctx, int64_t item, int64_t pos, float *x, int64_t *y, RtError *err) {
  const Ctx *c = ctx;
  if (item == c->fail_item) return rt_fail(err, "item%lld.png: corrupt", (long long)item);
  x[0] = (float)item, x[1] = (float)pos;
  *y = item;
  return true;
}

static Ctx ctx_ok = {-1};
static const LoaderSource SRC = {N, 1, {2}, load_item, &ctx_ok};

static float table[N * 3];

/* batches [first, first + count) of a loader with `workers` threads: x,
 * and t when with_table, copied out. */
static void collect(int workers, int64_t first, int64_t count, bool with_table, float *xs, float *ts) {
  LoaderOptions o = {"x", "y", BATCH, 7, first, workers, with_table ? table : NULL, "t", 1, {3}, false};
  RtError err;
  Loader *l = loader_start(&SRC, &o, &err);
  assert_non_null(l);
  for (int64_t k = 0; k < count; k++) {
    LoaderBatch b;
    assert_true(loader_take(l, &b, &err));
    assert_int_equal(b.index, first + k);
    assert_int_equal(b.x->shape[0], BATCH);
    assert_int_equal(b.x->shape[1], 2);
    memcpy(xs + k * BATCH * 2, b.x->data, b.x->nbytes);
    for (int i = 0; i < BATCH; i++) assert_int_equal(((int64_t *)b.y->data)[i], (int64_t)xs[(k * BATCH + i) * 2]);
    if (with_table) memcpy(ts + k * BATCH * 3, b.t->data, b.t->nbytes);
    else assert_null(b.t);
  }
  loader_close(l);
}

static void epochs_are_permutations(void **state) {
  (void)state;
  float xs[EPOCHS * PER_EPOCH * BATCH * 2];
  collect(3, 0, EPOCHS * PER_EPOCH, false, xs, NULL);
  for (int e = 0; e < EPOCHS; e++) {
    int seen[N] = {0};
    for (int i = 0; i < PER_EPOCH * BATCH; i++) {
      int64_t s = (int64_t)e * PER_EPOCH * BATCH + i;
      seen[(int)xs[2 * s]]++;
      assert_int_equal((int64_t)xs[2 * s + 1], s); /* pos: batch * BATCH + place */
    }
    int once = 0;
    for (int i = 0; i < N; i++) assert_true(seen[i] <= 1), once += seen[i];
    assert_int_equal(once, PER_EPOCH * BATCH); /* the last N % BATCH dropped */
  }
}

static void threads_and_resume_agree(void **state) {
  (void)state;
  enum { COUNT = EPOCHS * PER_EPOCH };
  float one[COUNT * BATCH * 2], five[COUNT * BATCH * 2], late[COUNT * BATCH * 2];
  collect(1, 0, COUNT, false, one, NULL);
  collect(5, 0, COUNT, false, five, NULL);
  assert_memory_equal(one, five, sizeof one);
  collect(2, 7, COUNT - 7, false, late, NULL); /* from batch 7, inside epoch 1 */
  assert_memory_equal(one + 7 * BATCH * 2, late, sizeof(float) * (COUNT - 7) * BATCH * 2);
}

static void gathers_the_table(void **state) {
  (void)state;
  for (int i = 0; i < N * 3; i++) table[i] = (float)i * 0.5f;
  float xs[4 * BATCH * 2], ts[4 * BATCH * 3];
  collect(4, 2, 4, true, xs, ts);
  for (int s = 0; s < 4 * BATCH; s++)
    for (int j = 0; j < 3; j++) assert_true(ts[s * 3 + j] == table[(int)xs[2 * s] * 3 + j]);
}

static void reports_a_failed_item(void **state) {
  (void)state;
  Ctx bad = {11};
  LoaderSource src = SRC;
  src.ctx = &bad;
  LoaderOptions o = {"x", "y", N, 1, 0, 3, NULL, NULL, 0, {0}, false}; /* one batch of every item reaches item 11 */
  RtError err;
  Loader *l = loader_start(&src, &o, &err);
  assert_non_null(l);
  LoaderBatch b;
  assert_false(loader_take(l, &b, &err));
  assert_string_equal(err.msg, "item11.png: corrupt");
  loader_close(l);
}

static void refuses_bad_options(void **state) {
  (void)state;
  RtError err;
  LoaderOptions o = {"x", "y", N + 1, 0, 0, 1, NULL, NULL, 0, {0}, false};
  assert_null(loader_start(&SRC, &o, &err));
  assert_string_equal(err.msg, "loader: batch size 24 for a data set of 23 items");
  LoaderSource empty = SRC;
  empty.n = 0;
  o.batch = 1;
  assert_null(loader_start(&empty, &o, &err));
  assert_string_equal(err.msg, "loader: an empty data set");
}

/* Items [item, pos] come back as [pos, item] where mirrored. */
static void flips_half_the_samples(void **state) {
  (void)state;
  enum { BATCHES = EPOCHS * PER_EPOCH };
  int flipped = 0;
  float first_run[BATCHES * BATCH * 2];
  for (int workers = 1; workers <= 3; workers += 2) {
    LoaderOptions o = {"x", "y", BATCH, 7, 0, workers, NULL, NULL, 0, {0}, true};
    RtError err;
    Loader *l = loader_start(&SRC, &o, &err);
    assert_non_null(l);
    for (int64_t k = 0; k < BATCHES; k++) {
      LoaderBatch b;
      assert_true(loader_take(l, &b, &err));
      for (int64_t i = 0; i < BATCH; i++) {
        const float *x = (const float *)b.x->data + i * 2;
        int64_t pos = k * BATCH + i, item = ((int64_t *)b.y->data)[i];
        bool flips = loader_flips(7, pos);
        assert_true(x[flips ? 1 : 0] == (float)item && x[flips ? 0 : 1] == (float)pos);
        if (workers == 1) flipped += flips, memcpy(first_run + pos * 2, x, sizeof(float) * 2);
        else assert_memory_equal(first_run + pos * 2, x, sizeof(float) * 2);
      }
    }
    loader_close(l);
  }
  assert_in_range(flipped, BATCHES * BATCH / 4, 3 * BATCHES * BATCH / 4);
  RtError err;
  LoaderOptions with_table = {"x", "y", BATCH, 7, 0, 1, table, "t", 1, {3}, true};
  assert_null(loader_start(&SRC, &with_table, &err));
  assert_string_equal(err.msg, "loader: a table of per-item rows cannot follow a flipped item");
}

static void in_memory_tensors(void **state) {
  (void)state;
  RtError err;
  const int64_t shape[3] = {6, 2, 2}, n = 6;
  Tensor *images = tensor_new("images", DT_F64, 3, shape, &err), *labels = tensor_new("labels", DT_I64, 1, &n, &err);
  for (int64_t i = 0; i < 24; i++) tensor_set(images, i, (double)i);
  for (int64_t i = 0; i < 6; i++) tensor_set(labels, i, (double)(10 + i));
  Loader *l = loader_open(images, labels, "x0", "y", 3, 0, 0, &err);
  assert_non_null(l);
  assert_int_equal(loader_batches_per_epoch(l), 2);
  Tensor *x, *y;
  assert_true(loader_next(l, &x, &y, &err));
  assert_string_equal(x->name, "x0");
  assert_int_equal(x->dtype, DT_F32);
  for (int b = 0; b < 3; b++) {
    int64_t item = ((int64_t *)y->data)[b] - 10;
    for (int j = 0; j < 4; j++) assert_true(((float *)x->data)[b * 4 + j] == (float)(item * 4 + j));
  }
  loader_close(l);
  tensor_free(images);
  tensor_free(labels);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(epochs_are_permutations), cmocka_unit_test(threads_and_resume_agree),
      cmocka_unit_test(gathers_the_table),       cmocka_unit_test(reports_a_failed_item),
      cmocka_unit_test(refuses_bad_options),     cmocka_unit_test(in_memory_tensors),
      cmocka_unit_test(flips_half_the_samples),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
