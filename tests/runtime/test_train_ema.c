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

#include <math.h>
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

/* The jit trainer's step (spec/training.md §5, compiler/optim.c with
 * OptimOptions {false, 2}): one step of a vanilla JiT-T/4 at lr 0.1 with
 * --ema-decay 0.5 --ema-decay2 0.75, with weight decay wd. */
static void train_jit(const char *name, const char *wd) {
  char *argv[] = {"--model", "JiT-T/4", "--num-classes", "10", "--resolution", "32", "--encoder-depth", "2",
                  "--batch-size", "4", "--max-train-steps", "1", "--backend", "c", "--threads", "1", "--lr", "0.1",
                  "--warmup-epochs", "0", "--ema-decay", "0.5", "--ema-decay2", "0.75", "--weight_decay", (char *)wd,
                  "--output-dir", tmpdir, "--exp-name", (char *)name};
  assert_int_equal(train_command((int)(sizeof argv / sizeof *argv), argv), 0);
}

static const Tensor *find(const TensorList *l, const char *prefix, const char *name) {
  char full[512];
  snprintf(full, sizeof full, "%s%s", prefix, name);
  return tensorlist_find(l, full);
}

/* Every weight has a second EMA, ema2 = p0 * 0.75 + p1 * 0.25, where the
 * first (decay 0.5) gives the weight before the step: p0 = 2 ema - p1.
 * Weight decay moves the trainable weights of rank >= 2 not named *.bias
 * and leaves the 1-D ones and the biases bit for bit as without it. */
static void jit_two_emas_and_no_decay_group(void **state) {
  (void)state;
  train_jit("jit_wd0", "0");
  train_jit("jit_wd", "0.5");
  StFile *f0 = checkpoint("jit_wd0", 1), *f1 = checkpoint("jit_wd", 1);
  const TensorList *a = st_tensors(f0), *b = st_tensors(f1);
  int weights = 0, exempt = 0, decayed = 0;
  for (int i = 0; i < a->n; i++) {
    const Tensor *p1 = a->items[i];
    if (strncmp(p1->name, "net.", 4)) continue; /* state: ema.*, exp_avg.*, ... */
    const Tensor *e1 = find(a, "ema.", p1->name), *e2 = find(a, "ema2.", p1->name), *q1 = find(b, "", p1->name);
    assert_non_null(e1), assert_non_null(e2), assert_non_null(q1);
    weights++;
    bool differs = false;
    for (int64_t k = 0; k < tensor_numel(p1); k++) {
      double w1 = tensor_get(p1, k), w0 = 2 * tensor_get(e1, k) - w1, want = w0 * 0.75 + w1 * 0.25;
      double got = tensor_get(e2, k);
      if (fabs(got - want) > 1e-6 * (fabs(w0) + fabs(w1)) + 1e-7)
        fail_msg("ema2.%s[%lld]: %.9g, expected %.9g", p1->name, (long long)k, got, want);
      differs = differs || tensor_get(q1, k) != w1;
    }
    size_t n = strlen(p1->name);
    bool trainable = find(a, "exp_avg.", p1->name) != NULL;
    if (trainable && (p1->rank == 1 || !strcmp(p1->name + n - 5, ".bias"))) {
      if (differs) fail_msg("%s: weight decay moved a 1-D weight or bias", p1->name);
      exempt++;
    } else if (trainable && differs) {
      decayed++;
    }
  }
  assert_true(weights > 10 && exempt > 10 && decayed > 10);
  st_close(f0), st_close(f1);
}

/* A SiT keeps one EMA. */
static void sit_has_one_ema(void **state) {
  (void)state;
  train("sit1", "1");
  StFile *f = checkpoint("sit1", 1);
  for (int i = 0; i < st_tensors(f)->n; i++) assert_true(strncmp(st_tensors(f)->items[i]->name, "ema2.", 5) != 0);
  st_close(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(updates_every_second_step),
      cmocka_unit_test(updates_every_step),
      cmocka_unit_test(jit_two_emas_and_no_decay_group),
      cmocka_unit_test(sit_has_one_ema),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
