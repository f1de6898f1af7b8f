/* test_optim_parity.c: the training step (compiler/optim.c) against
 * PyTorch's clip_grad_norm_, torch.optim.AdamW and the reference's EMA:
 * three steps of a small iREPA SiT on one batch, from
 * golden/tiny_sit_train_step.safetensors (tools/gen_optim_golden.py).
 * The interpreter in double must match the loss, the gradient norm and the
 * change of every weight, moment and EMA within 1e-10 of the change's
 * largest magnitude; the C kernels in f32 within 1e-3, or 16 f32 ulps of
 * the new value where that is larger. 1e-3 because Adam's step is about lr
 * for every element whatever its gradient's size: an element whose
 * gradient is 1e-4 of its tensor's largest carries the f32 gradient error
 * (1e-7 of the largest) as a 1e-3 error of its step. The one-step check
 * against the interpreter at equal state (test_backends --train) is 1e-5. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend.h"
#include "exec.h"
#include "numeric.h"
#include "optim.h"
#include "safetensors.h"

static const char *const GOLDEN = "golden/tiny_sit_train_step.safetensors";
static const char *const SRC =
    "import \"sit.irg\";\n"
    "model = SiT(model = \"SiT-S/2\", depth = 1, hidden_size = 16, num_heads = 2, patch_size = 2,\n"
    "            input_size = 8, num_classes = 10, encoder_depth = 1, z_dims = [8], projector_dim = 16,\n"
    "            projection_layer_type = \"conv\", proj_kernel_size = 3, spnorm_method = \"zscore\",\n"
    "            zscore_alpha = 0.6);\n";
static const struct {
  const char *name;
  double value;
} HYPER[] = {{"lr", 1e-3}, {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-6},
             {"weight_decay", 0.01}, {"max_grad_norm", 0.5}, {"ema_decay", 0.99}};
enum { STEPS = 3 };

static Tensor *new_like(const char *name, const Tensor *t, DType dt) {
  RtError err;
  Tensor *x = tensor_new(name, dt, t->rank, t->shape, &err);
  if (!x) fail_msg("%s", err.msg);
  for (int64_t i = 0; i < tensor_numel(t); i++) tensor_set(x, i, tensor_get(t, i));
  return x;
}

static Tensor *scalar(const char *name, double v) {
  RtError err;
  Tensor *x = tensor_new(name, DT_F64, 0, NULL, &err);
  if (!x) fail_msg("%s", err.msg);
  tensor_set(x, 0, v);
  return x;
}

static void add(TensorList *l, Tensor *t) {
  RtError err;
  if (!tensorlist_add(l, t, &err)) fail_msg("%s", err.msg);
}

/* The step's state in dtype dt: parameters, the batch, zero moments and an
 * EMA equal to the weights. */
static void make_state(const Graph *g, const ParamTable *pt, const TensorList *golden, DType dt, TensorList *params,
                       TensorList *inputs) {
  for (int i = 0; i < pt->n; i++) add(params, new_like(pt->items[i].name, tensorlist_find(golden, pt->items[i].name), dt));
  for (int i = 0; i < g->ninputs; i++) {
    const char *name = g->inputs[i]->name;
    const Tensor *t = tensorlist_find(golden, name);
    if (t) add(inputs, new_like(name, t, t->dtype == DT_F64 ? dt : t->dtype));
    else if (!strncmp(name, "ema.", 4)) add(inputs, new_like(name, tensorlist_find(golden, name + 4), dt));
    else if (!strncmp(name, "exp_avg", 7)) {
      Tensor *z = new_like(name, tensorlist_find(golden, strchr(name, '.') + 1), dt);
      memset(z->data, 0, z->nbytes);
      add(inputs, z);
    } else {
      add(inputs, scalar(name, 0));
    }
  }
  for (size_t i = 0; i < sizeof HYPER / sizeof HYPER[0]; i++) tensor_set(tensorlist_find(inputs, HYPER[i].name), 0, HYPER[i].value);
}

/* The largest error of (ours - start) against (golden - start), over the
 * largest |golden - start|. */
static double change_error(const Tensor *ours, const Tensor *golden, const Tensor *start) {
  double num = 0, den = 0;
  assert_int_equal(tensor_numel(ours), tensor_numel(golden));
  for (int64_t i = 0; i < tensor_numel(golden); i++) {
    double s = start ? tensor_get(start, i) : 0;
    num = fmax(num, fabs((tensor_get(ours, i) - s) - (tensor_get(golden, i) - s)));
    den = fmax(den, fabs(tensor_get(golden, i) - s));
  }
  return den > 0 ? num / den : num;
}

static double largest(const Tensor *t) {
  double m = 0;
  for (int64_t i = 0; i < tensor_numel(t); i++) m = fmax(m, fabs(tensor_get(t, i)));
  return m;
}

/* With f32 state (ulps > 0), an error of a few ulps of the new value is
 * allowed too: an EMA moves by 1e-2 of a small difference per step, less
 * than f32 resolves. */
static void check_final(const TensorList *golden, const TensorList *params, const TensorList *inputs, double bound,
                        double ulps) {
  int checked = 0, fails = 0;
  double worst = 0;
  const char *where = "";
  for (int i = 0; i < golden->n; i++) {
    const Tensor *t = golden->items[i];
    if (strncmp(t->name, "final.", 6)) continue;
    const char *name = t->name + 6;
    const Tensor *ours = tensorlist_find(inputs, name);
    if (!ours) ours = tensorlist_find(params, name);
    if (!ours) fail_msg("no state tensor %s", name);
    const char *base = !strncmp(name, "ema.", 4) ? name + 4 : name;
    bool moment = !strncmp(name, "exp_avg", 7);
    const Tensor *start = moment ? NULL : tensorlist_find(golden, base);
    double e = change_error(ours, t, start);
    double moved = change_error(t, t, NULL) == 0 ? largest(t) : 0;
    if (start) {
      moved = 0;
      for (int64_t k = 0; k < tensor_numel(t); k++) moved = fmax(moved, fabs(tensor_get(t, k) - tensor_get(start, k)));
    }
    double floor = ulps * FLT_EPSILON * largest(t) / moved;
    if (e > fmax(bound, floor)) printf("   %s: change error %.3g > %.3g\n", name, e, fmax(bound, floor));
    fails += e > fmax(bound, floor);
    if (e > worst) worst = e, where = name;
    checked++;
  }
  printf("   %d state tensors, worst change error %.3g (%s)\n", checked, worst, where);
  assert_true(checked > 90);
  assert_int_equal(fails, 0);
}

static void check_step(const TensorList *golden, int k, double loss, double norm, double bound) {
  char name[64];
  snprintf(name, sizeof name, "step%d.loss", k);
  double want_loss = tensor_get(tensorlist_find(golden, name), 0);
  snprintf(name, sizeof name, "step%d.grad_norm", k);
  double want_norm = tensor_get(tensorlist_find(golden, name), 0);
  printf("   step %d: loss %.12g (golden %.12g), grad norm %.12g (golden %.12g)\n", k, loss, want_loss, norm, want_norm);
  assert_true(fabs(loss - want_loss) <= bound * fabs(want_loss));
  assert_true(fabs(norm - want_norm) <= bound * fabs(want_norm));
}

static Graph *train_graph(Compiled *c) {
  if (!nt_compile(c, SRC, "loss", false, NULL)) fail_msg("does not compile");
  if (!optim_add_train_step(&c->arena, &c->diags, &c->prog, "loss")) {
    diag_print(stderr, &c->diags);
    fail_msg("no train step");
  }
  return c->prog.entries[c->prog.nentries - 1];
}

static void interpreter_matches_pytorch(void **state) {
  (void)state;
  RtError err;
  StFile *f = st_open(GOLDEN, &err);
  if (!f) fail_msg("%s", err.msg);
  assert_non_null(strstr(st_metadata(f, "config"), "\"hidden_size\": 16"));
  const TensorList *golden = st_tensors(f);
  Compiled c;
  Graph *g = train_graph(&c);
  TensorList params = {0}, inputs = {0};
  make_state(g, &c.prog.params, golden, DT_F64, &params, &inputs);
  for (int k = 1; k <= STEPS; k++) {
    tensor_set(tensorlist_find(&inputs, "step"), 0, k);
    TensorList out = {0};
    InterpOptions opt = {INTERP_F64, 0};
    if (!interp_run(g, &c.prog.params, &params, &inputs, &opt, &out, &err)) fail_msg("%s", err.msg);
    check_step(golden, k, tensor_get(out.items[0], 0), tensor_get(tensorlist_find(&out, "grad_norm"), 0), 1e-12);
    for (int i = 0; i < g->noutputs; i++) {
      if (!g->updates[i]) continue;
      Tensor *dst = tensorlist_find(&inputs, out.items[i]->name);
      if (!dst) dst = tensorlist_find(&params, out.items[i]->name);
      assert_non_null(dst);
      memcpy(dst->data, out.items[i]->data, dst->nbytes);
    }
    tensorlist_free(&out);
  }
  check_final(golden, &params, &inputs, 1e-10, 0);
  tensorlist_free(&params);
  tensorlist_free(&inputs);
  nt_free(&c);
  st_close(f);
}

static void c_backend_matches_pytorch(void **state) {
  (void)state;
  RtError err;
  StFile *f = st_open(GOLDEN, &err);
  if (!f) fail_msg("%s", err.msg);
  const TensorList *golden = st_tensors(f);
  Compiled c;
  Graph *g = train_graph(&c);
  /* the train step alone, as irepa-run loads it */
  c.prog.entries[0] = g;
  c.prog.nentries = 1;
  CompileOptions copt = {false, true, false};
  CompiledProgram cp;
  unsigned char *bytes = NULL;
  size_t len = 0;
  XProgram xp;
  IrxMeta meta = {"test", 0, NULL, 0};
  if (!program_compile(&c.arena, &c.diags, &c.prog, &copt, &cp)) {
    diag_print(stderr, &c.diags);
    fail_msg("does not compile");
  }
  if (!irx_serialize(&cp, &meta, &bytes, &len, &err) || !irx_parse(bytes, len, "test", &xp, &err)) fail_msg("%s", err.msg);
  Backend *b = backend_open("c", &err);
  if (!b) fail_msg("%s", err.msg);
  TensorList params = {0}, inputs = {0};
  make_state(g, &c.prog.params, golden, DT_F32, &params, &inputs);
  for (int k = 1; k <= STEPS; k++) {
    tensor_set(tensorlist_find(&inputs, "step"), 0, k);
    TensorList out = {0};
    ExecOptions eopt = {0};
    if (!exec_run(b, &xp, &xp.entries[0], &params, &inputs, &eopt, &out, &err)) fail_msg("%s", err.msg);
    assert_int_equal(out.n, 4); /* the loss terms and the gradient norm; the state changed in place */
    check_step(golden, k, tensor_get(out.items[0], 0), tensor_get(tensorlist_find(&out, "grad_norm"), 0), 1e-5);
    tensorlist_free(&out);
  }
  check_final(golden, &params, &inputs, 1e-3, 16);
  backend_close(b);
  irx_free(&xp);
  free(bytes);
  tensorlist_free(&params);
  tensorlist_free(&inputs);
  nt_free(&c);
  st_close(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(interpreter_matches_pytorch),
      cmocka_unit_test(c_backend_matches_pytorch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
