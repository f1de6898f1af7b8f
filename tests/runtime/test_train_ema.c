/* Tests of --ema-update-freq in runtime/train_sit.c (spec/training.md §3
 * step 5: the EMA moves when global_step, counted before its increment,
 * is a multiple of the frequency). Three steps of a vanilla SiT-T/4 on
 * Fashion-MNIST (batch 4) with --ema-decay 0.5 and a checkpoint after
 * every step: with frequency 2 the EMA moves at steps 1 and 3 and stays
 * exactly as it was at step 2; with frequency 1 it moves every step. Each
 * move is ema*0.5 + p*0.5 of the new weights, which float computes
 * exactly whatever the order (halving is exact), so == is the check. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "train_cmd.h"

#define TMPDIR_TEMPLATE "/tmp/irepa-ema-XXXXXX"
#include "tmpdir.h"

static void train(const char *name, const char *freq) {
  char *argv[] = {"--model", "SiT-T/4", "--num-classes", "10", "--resolution", "32", "--proj-coeff", "0",
                  "--encoder-depth", "2", "--batch-size", "4", "--max-train-steps", "3", "--checkpointing-steps", "1",
                  "--backend", "c", "--threads", "1", "--sampling-steps", "0", "--ema-decay", "0.5", "--ema-update-freq", (char *)freq,
                  "--output-dir", tmpdir, "--exp-name", (char *)name};
  assert_int_equal(train_command((int)(sizeof argv / sizeof *argv), argv), 0);
}

static StFile *checkpoint(const char *name, int step) {
  char rel[128];
  snprintf(rel, sizeof rel, "%s/checkpoints/%07d.safetensors", name, step);
  const char *path = tmp_path(rel);
  RtError err;
  StFile *f = st_open(path, &err);
  if (!f) fail_msg("%s", err.msg);
  return f;
}

/* Whether, for every weight p, ema(now) == ema(before) (moved = false) or
 * ema(before) * 0.5 + p(now) * 0.5 (moved = true), element for element. */
static void check_ema(StFile *before, StFile *now, bool moved) {
  const TensorList *a = st_tensors(before), *b = st_tensors(now);
  int weights = 0, changed = 0;
  for (int i = 0; i < b->n; i++) {
    const Tensor *p = b->items[i];
    if (strchr(p->name, '.') && (!strncmp(p->name, "ema.", 4) || !strncmp(p->name, "exp_avg", 7))) continue;
    char name[512];
    snprintf(name, sizeof name, "ema.%s", p->name);
    const Tensor *e0 = tensorlist_find(a, name), *e1 = tensorlist_find(b, name);
    assert_non_null(e0);
    assert_non_null(e1);
    weights++;
    for (int64_t k = 0; k < tensor_numel(p); k++) {
      float old = (float)tensor_get(e0, k), w = (float)tensor_get(p, k), got = (float)tensor_get(e1, k);
      float want = moved ? old * 0.5f + w * 0.5f : old;
      if (got != want) fail_msg("%s[%lld]: ema %.9g, expected %.9g", name, (long long)k, got, want);
      changed += got != old;
    }
  }
  assert_true(weights > 10);
  assert_int_equal(changed > 0, moved);
}

static void updates_every_second_step(void **state) {
  (void)state;
  train("freq2", "2");
  StFile *c1 = checkpoint("freq2", 1), *c2 = checkpoint("freq2", 2), *c3 = checkpoint("freq2", 3);
  check_ema(c1, c2, false); /* global_step 1: no update */
  check_ema(c2, c3, true);  /* global_step 2: an update */
  st_close(c1), st_close(c2), st_close(c3);
}

static void updates_every_step(void **state) {
  (void)state;
  train("freq1", "1");
  StFile *c1 = checkpoint("freq1", 1), *c2 = checkpoint("freq1", 2), *c3 = checkpoint("freq1", 3);
  check_ema(c1, c2, true);
  check_ema(c2, c3, true);
  st_close(c1), st_close(c2), st_close(c3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(updates_every_second_step),
      cmocka_unit_test(updates_every_step),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
