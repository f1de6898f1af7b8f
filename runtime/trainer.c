/* trainer.c: the shared core of the training commands (trainer.h). */
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elab.h"
#include "init.h"
#include "optim.h"
#include "parse.h"
#include "rng.h"
#include "safetensors.h"

#ifndef IREPA_MODELS_DIR_DEFAULT
#define IREPA_MODELS_DIR_DEFAULT "models"
#endif

static const char CHECKPOINT_FORMAT[] = "irepa-checkpoint-1";

const char *trainer_models_dir(void) {
  const char *d = getenv("IREPA_MODELS_DIR");
  return d && *d ? d : IREPA_MODELS_DIR_DEFAULT;
}

uint64_t trainer_step_seed(uint64_t seed, int64_t step) {
  uint64_t state = seed ^ ((uint64_t)step * 0x9E3779B97F4A7C15ull);
  return rng_splitmix64(&state);
}

static bool keep_entry(const Graph *g, const char *const *keep, int nkeep) {
  if (!strcmp(g->name, "train_step") || !strcmp(g->name, "grad_step") || !strcmp(g->name, "apply_step")) return true;
  for (int i = 0; i < nkeep; i++)
    if (!strcmp(g->name, keep[i])) return true;
  return false;
}

/* The FLOPs of each compiled entry, for the benchmark (bench_cmd.c). */
static bool count_flops(Trainer *t, DiagList *diags, const CompiledProgram *cp) {
  t->flops = calloc((size_t)cp->nentries + 1, sizeof *t->flops);
  if (!t->flops) return false;
  for (int i = 0; i < cp->nentries; i++)
    if (!flops_count(diags, cp->entries[i].g, &t->flops[i])) return false;
  return true;
}

/* .irg text to .irx bytes, in this process: the compiler is a library. */
static bool compile_source(Trainer *t, const char *name, const char *source, const char *loss_entry,
                           const OptimOptions *oo, const char *const *keep, int nkeep, bool want_c, bool want_cuda,
                           RtError *err) {
  Arena a;
  SourceSet sources = {0};
  DiagList diags;
  arena_init(&a);
  diag_init(&diags, &a, &sources);
  const char *dirs[1] = {trainer_models_dir()};
  ParseOptions popt = {dirs, 1};
  Program prog;
  ElabOptions eopt = {NULL, false};
  IrProgram ir;
  CompiledProgram cp;
  bool ok = irg_load_program_text(&a, &diags, name, source, strlen(source), &popt, &prog) &&
            elab_program(&a, &diags, &prog, &eopt, &ir) &&
            (!loss_entry || optim_add_train_step_opt(&a, &diags, &ir, loss_entry, oo));
  if (ok) {
    int n = 0;
    for (int i = 0; i < ir.nentries; i++)
      if (keep_entry(ir.entries[i], keep, nkeep)) ir.entries[n++] = ir.entries[i];
    ir.nentries = n;
    CompileOptions copt = {false, want_c, want_cuda};
    ok = program_compile(&a, &diags, &ir, &copt, &cp) && count_flops(t, &diags, &cp);
  }
  if (!ok) {
    diag_print(stderr, &diags);
    arena_free(&a);
    return rt_fail(err, "%s: the model does not compile (models from %s)", name, trainer_models_dir());
  }
  IrxMeta meta = {name, 0, NULL, 0};
  unsigned char *bytes = NULL;
  ok = irx_serialize(&cp, &meta, &bytes, &t->irx_len, err) && irx_parse(bytes, t->irx_len, name, &t->prog, err);
  t->irx = (char *)bytes;
  arena_free(&a);
  return ok;
}

bool trainer_compile(Trainer *t, const char *name, const char *source, const char *loss_entry,
                     const char *const *keep, int nkeep, const char *backend, RtError *err) {
  const OptimOptions ldm = {true, 1, false, DT_F32, false};
  return trainer_compile_opt(t, name, source, loss_entry, &ldm, keep, nkeep, backend, err);
}

bool trainer_compile_opt(Trainer *t, const char *name, const char *source, const char *loss_entry,
                         const OptimOptions *oo, const char *const *keep, int nkeep, const char *backend,
                         RtError *err) {
  memset(t, 0, sizeof *t);
  if (!strcmp(backend, "interp"))
    return rt_fail(err, "training runs compiled kernels: --backend c, cuda, cuda-emu or auto, not interp");
  if (!(t->backend = backend_open(backend, err))) return false;
  bool c = !strcmp(t->backend->name, "c"), cuda = !c;
  OptimOptions o = *oo;
  if (c) o.autocast = DT_F32, o.loss_scale = false; /* the C backend's GEMMs are f32 (or f64) */
  return compile_source(t, name, source, loss_entry, &o, keep, nkeep, c, cuda, err) &&
         trainer_bind_step(t, oo->accumulate, name, err);
}

bool trainer_bind_step(Trainer *t, bool accumulate, const char *name, RtError *err) {
  t->nloss = 0;
  if (accumulate) {
    t->step = irx_entry(&t->prog, "apply_step");
    t->grad = irx_entry(&t->prog, "grad_step");
    for (int i = 0; t->grad && i < t->grad->noutputs && strncmp(t->grad->outputs[i].name, "grad_acc.", 9); i++)
      t->nloss = i + 1;
    return t->step && t->grad && t->nloss > 0 ? true
                                              : rt_fail(err, "%s: no accumulating training step in the program", name);
  }
  t->step = irx_entry(&t->prog, "train_step");
  t->grad = NULL;
  for (int i = 0; t->step && i < t->step->noutputs; i++)
    if (!strcmp(t->step->outputs[i].name, "grad_norm")) t->nloss = i;
  return t->step && t->nloss > 0 ? true
                                 : rt_fail(err, "%s: no training step (train_step with a grad_norm output)", name);
}

bool trainer_compile_inference(Trainer *t, const char *name, const char *source, const char *const *keep, int nkeep,
                               const char *backend, RtError *err) {
  memset(t, 0, sizeof *t);
  if (!strcmp(backend, "interp"))
    return rt_fail(err, "inference runs compiled kernels: --backend c, cuda, cuda-emu or auto, not interp");
  if (!(t->backend = backend_open(backend, err))) return false;
  bool c = !strcmp(t->backend->name, "c");
  if (!compile_source(t, name, source, NULL, NULL, keep, nkeep, c, !c, err)) return false;
  for (int i = 0; i < nkeep; i++)
    if (!irx_entry(&t->prog, keep[i])) return rt_fail(err, "%s: the model has no entry '%s'", name, keep[i]);
  return true;
}

static Tensor *new_tensor(const char *name, const XTensor *like, RtError *err) {
  int64_t shape[IR_MAX_RANK];
  for (int k = 0; k < like->shape.rank; k++) shape[k] = like->shape.d[k].n;
  return tensor_new(name, like->dtype, like->shape.rank, shape, err);
}

static bool add(TensorList *l, Tensor *x, RtError *err) {
  if (x && tensorlist_add(l, x, err)) return true;
  tensor_free(x);
  return false;
}

/* The gradient sums of accumulation: zero at every step's end, so not
 * saved, and a checkpoint does not depend on the micro-batch count. */
static bool is_grad_sum(const char *name) { return !strncmp(name, "grad_acc.", 9); }

static bool is_state(const char *name) {
  if (!strncmp(name, "exp_avg.", 8) || !strncmp(name, "exp_avg_sq.", 11) || !strncmp(name, "ema.", 4) ||
      !strncmp(name, "ema2.", 5) || !strcmp(name, optim_ema2_decay_input) || is_grad_sum(name) ||
      !strcmp(name, optim_grad_scale_input) || !strcmp(name, optim_loss_scale_input))
    return true;
  for (int i = 0; i < OPTIM_NSCALARS; i++)
    if (!strcmp(name, optim_scalar_inputs[i])) return true;
  return false;
}

/* Zero-filled weights for the parameter table; with init, set by their
 * rules from seed. */
static bool make_params(Trainer *t, bool init, uint64_t seed, RtError *err) {
  const ParamTable *pt = &t->prog.params;
  for (int i = 0; i < pt->n; i++) {
    const ParamInfo *p = &pt->items[i];
    int64_t shape[IR_MAX_RANK];
    for (int k = 0; k < p->shape.rank; k++) shape[k] = p->shape.d[k].n;
    Tensor *x = tensor_new(p->name, p->dtype, p->shape.rank, shape, err);
    if (!add(&t->params, x, err) || (init && !init_param(x, p, seed, err))) return false;
  }
  return true;
}

bool trainer_init(Trainer *t, uint64_t seed, RtError *err) {
  if (!make_params(t, true, seed, err)) return false;
  const XEntry *entries[2] = {t->step, t->grad};
  for (int k = 0; k < 2; k++)
    for (int i = 0; entries[k] && i < entries[k]->ninputs; i++) {
      const XTensor *in = &entries[k]->inputs[i];
      if (!is_state(in->name) || tensorlist_find(&t->state, in->name)) continue;
      Tensor *x = new_tensor(in->name, in, err);
      if (!add(&t->state, x, err)) return false;
      const char *dot = strchr(in->name, '.');
      if (!strncmp(in->name, "ema", 3) && dot) memcpy(x->data, tensorlist_find(&t->params, dot + 1)->data, x->nbytes);
    }
  return true;
}

static void set_scalar(Trainer *t, const char *name, double v) { tensor_set(tensorlist_find(&t->state, name), 0, v); }

bool trainer_set_scalar(Trainer *t, const char *name, double v, RtError *err) {
  Tensor *x = tensorlist_find(&t->state, name);
  if (!x || x->rank != 0) return rt_fail(err, "the training step has no scalar input '%s'", name);
  tensor_set(x, 0, v);
  return true;
}

/* A list that borrows the tensors of a and b. */
static bool join(const TensorList *a, const TensorList *b, TensorList *out, RtError *err) {
  out->n = 0;
  out->cap = a->n + b->n;
  out->items = malloc(sizeof(Tensor *) * (size_t)(out->cap + 1));
  if (!out->items) return rt_fail(err, "out of memory");
  for (int i = 0; i < a->n; i++) out->items[out->n++] = a->items[i];
  for (int i = 0; i < b->n; i++) out->items[out->n++] = b->items[i];
  return true;
}

static void set_hyper(Trainer *t, int64_t step, const Hyper *h) {
  set_scalar(t, "lr", h->lr);
  set_scalar(t, "step", (double)step);
  set_scalar(t, "beta1", h->beta1);
  set_scalar(t, "beta2", h->beta2);
  set_scalar(t, "eps", h->eps);
  set_scalar(t, "weight_decay", h->weight_decay);
  set_scalar(t, "max_grad_norm", h->max_grad_norm);
  set_scalar(t, "ema_decay", h->ema_decay);
}

/* Runs entry e on batch + state; out[0..n) from its first n outputs. */
static bool run_step(Trainer *t, const XEntry *e, const TensorList *batch, uint64_t seed, int n, double *out,
                     RtError *err) {
  TensorList inputs, outs = {0};
  if (!join(batch, &t->state, &inputs, err)) return false;
  ExecOptions eopt = {seed};
  bool ok = exec_run(t->backend, &t->prog, e, &t->params, &inputs, &eopt, &outs, err);
  free(inputs.items);
  for (int i = 0; ok && i < n; i++) out[i] = tensor_get(outs.items[i], 0);
  tensorlist_free(&outs);
  return ok;
}

bool trainer_step(Trainer *t, const TensorList *batch, int64_t step, const Hyper *h, uint64_t seed, double *out,
                  RtError *err) {
  if (t->grad) return rt_fail(err, "internal: a step compiled for gradient accumulation runs by trainer_accumulate");
  set_hyper(t, step, h);
  return run_step(t, t->step, batch, seed, t->nloss + 1, out, err);
}

bool trainer_accumulate(Trainer *t, const TensorList *batch, uint64_t seed, double *out, RtError *err) {
  if (!t->grad) return rt_fail(err, "internal: the step was not compiled for gradient accumulation");
  return run_step(t, t->grad, batch, seed, t->nloss, out, err);
}

bool trainer_apply(Trainer *t, int64_t step, const Hyper *h, double scale, double *norm, RtError *err) {
  if (!t->grad) return rt_fail(err, "internal: the step was not compiled for gradient accumulation");
  set_hyper(t, step, h);
  set_scalar(t, optim_grad_scale_input, scale);
  TensorList none = {0};
  return run_step(t, t->step, &none, 0, 1, norm, err);
}

bool trainer_run(Trainer *t, const char *entry, const TensorList *inputs, bool ema, TensorList *out, RtError *err) {
  const XEntry *e = irx_entry(&t->prog, entry);
  if (!e) return rt_fail(err, "the compiled program has no entry '%s'", entry);
  ExecOptions eopt = {0};
  if (!ema) return exec_run(t->backend, &t->prog, e, &t->params, inputs, &eopt, out, err);
  TensorList view = {0};
  bool ok = true;
  for (int i = 0; ok && i < t->params.n; i++) {
    char name[512];
    snprintf(name, sizeof name, "ema.%s", t->params.items[i]->name);
    const Tensor *x = tensorlist_find(&t->state, name);
    ok = add(&view, tensor_view(t->params.items[i]->name, x ? x : t->params.items[i], err), err);
  }
  ok = ok && exec_run(t->backend, &t->prog, e, &view, inputs, &eopt, out, err);
  tensorlist_free(&view);
  return ok;
}

bool trainer_save(const Trainer *t, const char *path, int64_t step, const char *const *meta, RtError *err) {
  int n = 0, nmeta = 0;
  while (meta && meta[nmeta]) nmeta++;
  Tensor **all = malloc(sizeof(Tensor *) * (size_t)(t->params.n + t->state.n + 1));
  const char **m = malloc(sizeof(char *) * (size_t)(nmeta + 5));
  if (!all || !m) {
    free(all);
    free((void *)m);
    return rt_fail(err, "out of memory");
  }
  for (int i = 0; i < t->params.n; i++) all[n++] = t->params.items[i];
  for (int i = 0; i < t->state.n; i++)
    if (t->state.items[i]->rank > 0 && !is_grad_sum(t->state.items[i]->name)) all[n++] = t->state.items[i];
  char steps[32];
  snprintf(steps, sizeof steps, "%lld", (long long)step);
  m[0] = "format", m[1] = CHECKPOINT_FORMAT, m[2] = "step", m[3] = steps;
  for (int i = 0; i < nmeta; i++) m[4 + i] = meta[i];
  m[4 + nmeta] = NULL;
  bool ok = st_write(path, all, n, m, err);
  free(all);
  free((void *)m);
  return ok;
}

static bool restore(TensorList *l, const TensorList *from, const char *path, RtError *err) {
  for (int i = 0; i < l->n; i++) {
    Tensor *x = l->items[i];
    if (x->rank == 0) continue; /* the scalars are set every step */
    if (is_grad_sum(x->name)) {
      memset(x->data, 0, x->nbytes);
      continue;
    }
    const Tensor *y = tensorlist_find(from, x->name);
    if (!y) return rt_fail(err, "%s: no tensor '%s': a checkpoint of another model?", path, x->name);
    bool same = y->dtype == x->dtype && y->rank == x->rank && y->nbytes == x->nbytes;
    for (int k = 0; same && k < x->rank; k++) same = y->shape[k] == x->shape[k];
    if (!same) {
      char want[128], have[128];
      return rt_fail(err, "%s: tensor '%s' is %s, the model's is %s: a checkpoint of another model?", path, x->name,
                     tensor_type_str(y, have, sizeof have), tensor_type_str(x, want, sizeof want));
    }
    memcpy(x->data, y->data, x->nbytes);
  }
  return true;
}

/* The checkpoint's metadata format and step, checked. */
static bool checkpoint_step(StFile *f, const char *path, int64_t *step, RtError *err) {
  const char *format = st_metadata(f, "format"), *steps = st_metadata(f, "step");
  char *end = NULL;
  long long n = steps ? strtoll(steps, &end, 10) : -1;
  if (!format || strcmp(format, CHECKPOINT_FORMAT))
    return rt_fail(err, "%s: not an irepa checkpoint (metadata format is not %s)", path, CHECKPOINT_FORMAT);
  if (n < 0 || !end || *end) return rt_fail(err, "%s: bad step '%s' in the metadata", path, steps ? steps : "");
  *step = n;
  return true;
}

bool trainer_load(Trainer *t, const char *path, int64_t *step, RtError *err) {
  StFile *f = st_open(path, err);
  if (!f) return false;
  bool ok = checkpoint_step(f, path, step, err) && restore(&t->params, st_tensors(f), path, err) &&
            restore(&t->state, st_tensors(f), path, err);
  st_close(f);
  return ok;
}

bool trainer_load_weights(Trainer *t, const char *path, const char *prefix, int64_t *step, RtError *err) {
  StFile *f = st_open(path, err);
  if (!f) return false;
  TensorList from = {0};
  bool ok = checkpoint_step(f, path, step, err) && (t->params.n > 0 || make_params(t, false, 0, err));
  /* the weights under the names of the model's table: views of <prefix><name> */
  const TensorList *all = st_tensors(f);
  for (int i = 0; ok && i < t->params.n; i++) {
    char name[512];
    snprintf(name, sizeof name, "%s%s", prefix, t->params.items[i]->name);
    const Tensor *x = tensorlist_find(all, name);
    if (!x) ok = rt_fail(err, "%s: no tensor '%s': a checkpoint of another model?", path, name);
    else ok = add(&from, tensor_view(t->params.items[i]->name, x, err), err);
  }
  ok = ok && restore(&t->params, &from, path, err);
  tensorlist_free(&from);
  st_close(f);
  return ok;
}

void trainer_free(Trainer *t) {
  tensorlist_free(&t->params);
  tensorlist_free(&t->state);
  irx_free(&t->prog);
  free(t->irx);
  free(t->flops);
  backend_close(t->backend);
  memset(t, 0, sizeof *t);
}
