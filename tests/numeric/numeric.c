/* numeric.c: see numeric.h. */
#include "numeric.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "init.h"

bool nt_compile(Compiled *c, const char *src, const char *entry, bool grad, const char *wrt) {
  memset(c, 0, sizeof *c);
  arena_init(&c->arena);
  diag_init(&c->diags, &c->arena, &c->sources);
  const char *root = getenv("IREPA_SOURCE_DIR");
  char models[4096];
  snprintf(models, sizeof models, "%s/models", root ? root : ".");
  const char *dirs[1] = {models};
  ParseOptions popt = {dirs, 1};
  Program prog;
  ElabOptions eopt = {entry, false};
  bool ok = irg_load_program_text(&c->arena, &c->diags, "test.irg", src, strlen(src), &popt, &prog) &&
            elab_program(&c->arena, &c->diags, &prog, &eopt, &c->prog) && c->prog.nentries == 1;
  if (ok) c->g = c->prog.entries[0];
  const char *names[16];
  int n = 0;
  char *list = wrt ? arena_strdup(&c->arena, wrt) : NULL;
  for (char *tok = list ? strtok(list, ",") : NULL; tok && n < 16; tok = strtok(NULL, ",")) names[n++] = tok;
  AdOptions ad = {0, names, n};
  if (ok && grad) ok = ad_build_grad(&c->arena, &c->diags, c->g, &c->prog.params, &ad);
  if (!ok) diag_print(stderr, &c->diags);
  return ok;
}

void nt_free(Compiled *c) { arena_free(&c->arena); }

static uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

static double unit(uint64_t seed, uint64_t i) {
  return (double)(splitmix(seed * 0x100000001B3ull + i) >> 11) * 0x1.0p-53;
}

bool nt_make_inputs(const Compiled *c, int64_t batch, double lo, double hi, int64_t int_max,
                    uint64_t seed, TensorList *inputs) {
  RtError err;
  for (int i = 0; i < c->g->ninputs; i++) {
    const Node *n = c->g->inputs[i];
    int64_t shape[IR_MAX_RANK];
    for (int k = 0; k < n->shape.rank; k++) shape[k] = n->shape.d[k].n * (n->shape.d[k].sym ? batch : 1);
    DType t = dtype_is_float(n->dtype) ? DT_F64 : n->dtype;
    Tensor *x = tensor_new(n->name, t, n->shape.rank, shape, &err);
    if (!x || !tensorlist_add(inputs, x, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      return false;
    }
    for (int64_t k = 0; k < tensor_numel(x); k++) {
      double u = unit(seed + (uint64_t)i * 7919, (uint64_t)k);
      if (t == DT_BOOL) tensor_set(x, k, (double)(k % 2));
      else if (!dtype_is_float(t)) tensor_set(x, k, floor(u * (double)int_max));
      else tensor_set(x, k, lo + (hi - lo) * u);
    }
  }
  return true;
}

bool nt_make_params(const Compiled *c, uint64_t seed, TensorList *params) {
  RtError err;
  for (int i = 0; i < c->prog.params.n; i++) {
    const ParamInfo *p = &c->prog.params.items[i];
    int64_t shape[IR_MAX_RANK];
    for (int k = 0; k < p->shape.rank; k++) shape[k] = p->shape.d[k].n;
    Tensor *t = tensor_new(p->name, DT_F64, p->shape.rank, shape, &err);
    if (!t || !tensorlist_add(params, t, &err) || !init_param(t, p, seed, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      return false;
    }
    for (int64_t k = 0; k < tensor_numel(t); k++)
      tensor_set(t, k, tensor_get(t, k) + 0.1 * (unit(seed + 31 * (uint64_t)i, (uint64_t)k) - 0.5));
  }
  return true;
}

double nt_loss(const Compiled *c, const TensorList *params, const TensorList *inputs) {
  TensorList out = {0};
  RtError err;
  InterpOptions opt = {INTERP_F64, 1};
  double loss = NAN;
  if (interp_run(c->g, &c->prog.params, params, inputs, &opt, &out, &err)) loss = tensor_get(out.items[0], 0);
  else fprintf(stderr, "interp: %s\n", err.msg);
  tensorlist_free(&out);
  return loss;
}

double nt_fd_error(const Compiled *c, TensorList *params, TensorList *inputs, Tensor *t,
                   const char *grad_name, int max_elems, double h) {
  TensorList out = {0};
  RtError err;
  InterpOptions opt = {INTERP_F64, 1};
  if (!interp_run(c->g, &c->prog.params, params, inputs, &opt, &out, &err)) {
    fprintf(stderr, "interp: %s\n", err.msg);
    return INFINITY;
  }
  Tensor *g = tensorlist_find(&out, grad_name);
  double max_err = 0, max_fd = 0;
  int64_t n = tensor_numel(t);
  int64_t count = max_elems && max_elems < n ? max_elems : n;
  for (int64_t j = 0; g && j < count; j++) {
    int64_t k = count == n ? j : (j * 7919) % n;
    double x0 = tensor_get(t, k);
    tensor_set(t, k, x0 + h);
    double up = nt_loss(c, params, inputs);
    tensor_set(t, k, x0 - h);
    double down = nt_loss(c, params, inputs);
    tensor_set(t, k, x0);
    double fd = (up - down) / (2 * h), an = tensor_get(g, k);
    if (fabs(an - fd) > max_err) max_err = fabs(an - fd);
    if (fabs(fd) > max_fd) max_fd = fabs(fd);
  }
  if (!g) {
    fprintf(stderr, "no output named %s\n", grad_name);
    tensorlist_free(&out);
    return INFINITY;
  }
  /* The scale is the whole gradient's, so sampling small entries does not
   * turn rounding noise into a large relative error. */
  for (int64_t k = 0; k < tensor_numel(g); k++)
    if (fabs(tensor_get(g, k)) > max_fd) max_fd = fabs(tensor_get(g, k));
  tensorlist_free(&out);
  return max_fd > 0 ? max_err / max_fd : max_err;
}

NtGrads nt_compare_grads(const TensorList *out, const TensorList *golden, double bound, const char *label) {
  NtGrads r = {0, 0, 0.0, "-", NULL};
  for (int i = 0; i < golden->n; i++) {
    const char *name = golden->items[i]->name;
    if (strncmp(name, "grad.", 5)) continue;
    r.expected++;
    const Tensor *got = tensorlist_find(out, name);
    if (!got) {
      if (!r.missing) r.missing = name;
      continue;
    }
    double e = tensor_rel_error(golden->items[i], got);
    if (e > bound) printf("%s: %s rel err %.3e\n", label, name, e);
    r.compared++;
    if (e >= r.worst) r.worst = e, r.worst_name = name;
  }
  return r;
}
