/* Tests of gradient accumulation (compiler/optim.c's grad_step and
 * apply_step, runtime/trainer.c): on a deterministic loss (a linear layer's
 * mean squared error), two micro-batches of 3 accumulated and applied with
 * scale 1/2 update the weights, moments and EMA as one step on the 6 rows
 * together does, to float rounding, for two steps in a row (so the sums
 * are cleared in between); the checkpoint holds no gradient sums and loads
 * into the trainer without accumulation; and `irepa-run train
 * --gradient-accumulation-steps 2` trains and resumes bit for bit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "safetensors.h"
#include "train_cmd.h"
#include "trainer.h"

#define TMPDIR_TEMPLATE "/tmp/irepa-accum-XXXXXX"
#include "tmpdir.h"

static const char SRC[] =
    "import \"nn.irg\";\n"
    "module M() {\n"
    "  lin = Linear(4, 2);\n"
    "  entry loss(x: f32[B, 4], t: f32[B, 2]) -> f32[] { d = lin(x) - t; return mean(d * d); }\n"
    "}\n"
    "model = M();\n";

enum { ROWS = 6, HALF = ROWS / 2 };

/* Rows [first, first + n) of fixed data x [6, 4] and targets t [6, 2]. */
static void rows(int first, int n, TensorList *batch) {
  RtError err;
  int64_t xs[2] = {n, 4}, ts[2] = {n, 2};
  Tensor *x = tensor_new("x", DT_F32, 2, xs, &err), *t = tensor_new("t", DT_F32, 2, ts, &err);
  for (int i = 0; i < n; i++) {
    for (int k = 0; k < 4; k++) tensor_set(x, i * 4 + k, sin(1.0 + (first + i) * 4 + k));
    for (int k = 0; k < 2; k++) tensor_set(t, i * 2 + k, cos(2.0 + (first + i) * 2 + k));
  }
  assert_true(tensorlist_add(batch, x, &err) && tensorlist_add(batch, t, &err));
}

static void compile(Trainer *t, bool accumulate) {
  RtError err;
  const OptimOptions o = {true, 1, accumulate, DT_F32, false};
  if (!trainer_compile_opt(t, "accum.irg", SRC, "loss", &o, NULL, 0, "c", &err) || !trainer_init(t, 7, &err))
    fail_msg("%s", err.msg);
}

/* max |a - b| / max |a| over the tensors of a's list found in b's. */
static double worst(const TensorList *a, const TensorList *b) {
  double err = 0;
  for (int i = 0; i < a->n; i++) {
    const Tensor *y = tensorlist_find(b, a->items[i]->name);
    if (!y || a->items[i]->rank == 0) continue;
    double e = tensor_rel_error(a->items[i], y);
    if (e > err) err = e;
  }
  return err;
}

static void matches_one_big_step(void **state) {
  (void)state;
  Trainer full, acc;
  compile(&full, false);
  compile(&acc, true);
  Hyper h = {0.05, 0.9, 0.999, 1e-8, 0.01, 1.0, 0.9};
  RtError err;
  for (int step = 1; step <= 2; step++) {
    TensorList all = {0}, a = {0}, b = {0};
    rows(0, ROWS, &all), rows(0, HALF, &a), rows(HALF, HALF, &b);
    double out[2] = {0, 0}, la = 0, lb = 0, norm = 0;
    if (!trainer_step(&full, &all, step, &h, 0, out, &err) || !trainer_accumulate(&acc, &a, 0, &la, &err) ||
        !trainer_accumulate(&acc, &b, 0, &lb, &err) || !trainer_apply(&acc, step, &h, 0.5, &norm, &err))
      fail_msg("%s", err.msg);
    printf("step %d: loss %.9g vs %.9g, norm %.9g vs %.9g, weights rel err %.3e, state %.3e\n", step, out[0],
           (la + lb) / 2, out[1], norm, worst(&full.params, &acc.params), worst(&full.state, &acc.state));
    assert_true(fabs(out[0] - (la + lb) / 2) <= 1e-6 * fabs(out[0]));
    assert_true(fabs(out[1] - norm) <= 1e-6 * out[1]);
    assert_true(worst(&full.params, &acc.params) <= 1e-6);
    assert_true(worst(&full.state, &acc.state) <= 1e-6);
    for (int i = 0; i < acc.state.n; i++)
      if (!strncmp(acc.state.items[i]->name, "grad_acc.", 9))
        for (int64_t k = 0; k < tensor_numel(acc.state.items[i]); k++) assert_true(tensor_get(acc.state.items[i], k) == 0);
    tensorlist_free(&all), tensorlist_free(&a), tensorlist_free(&b);
  }
  /* the checkpoint has no gradient sums and loads without accumulation */
  const char *path = tmp_path("acc.safetensors");
  int64_t step = 0;
  if (!trainer_save(&acc, path, 2, NULL, &err) || !trainer_load(&full, path, &step, &err)) fail_msg("%s", err.msg);
  assert_int_equal(step, 2);
  StFile *f = st_open(path, &err);
  assert_non_null(f);
  for (int i = 0; i < st_tensors(f)->n; i++) assert_true(strncmp(st_tensors(f)->items[i]->name, "grad_acc.", 9));
  st_close(f);
  trainer_free(&full);
  trainer_free(&acc);
}

static void train(const char *name, const char *steps, bool resume) {
  char *argv[] = {"--model", "SiT-T/4", "--num-classes", "10", "--resolution", "32", "--proj-coeff", "0",
                  "--encoder-depth", "2", "--batch-size", "2", "--gradient-accumulation-steps", "2",
                  "--max-train-steps", (char *)steps, "--checkpointing-steps", "1", "--backend", "c", "--threads", "1",
                  "--sampling-steps", "0", "--output-dir", tmpdir, "--exp-name", (char *)name, resume ? "--resume" : "--overwrite"};
  assert_int_equal(train_command((int)(sizeof argv / sizeof *argv), argv), 0);
}

static char *losses(const char *name) {
  char rel[64];
  snprintf(rel, sizeof rel, "%s/log.jsonl", name);
  FILE *f = fopen(tmp_path(rel), "r");
  assert_non_null(f);
  static char buf[2][4096];
  static int k;
  k ^= 1;
  size_t n = 0;
  char line[1024];
  while (fgets(line, sizeof line, f) && n < sizeof buf[k] - 200) {
    char *img = strstr(line, ", \"img_per_s\"");
    if (img) *img = 0;
    n += (size_t)snprintf(buf[k] + n, sizeof buf[k] - n, "%s\n", line);
  }
  fclose(f);
  return buf[k];
}

static void trains_and_resumes(void **state) {
  (void)state;
  train("straight", "3", false);
  train("resumed", "1", false);
  train("resumed", "3", true);
  const char *a = losses("straight"), *b = losses("resumed");
  printf("%s", a);
  assert_string_equal(a, b);
  assert_non_null(strstr(a, "\"step\": 3"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(matches_one_big_step),
      cmocka_unit_test(trains_and_resumes),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
