/* test_backends.c: the compiled backends against the interpreter. For
 * every entry of each .irg file named on the command line, forward and
 * (when output 0 is a scalar float, a loss) with the backward graph:
 * compile the program to .irx bytes, load them, run them on the C backend
 * and on the CUDA kernels emulated on the CPU, and compare every output
 * with the interpreter in double on the same f32 inputs and parameters.
 * The error of a tensor is max |backend - interpreter| / max |interpreter|;
 * the bound is 1e-5.
 *
 *   test_backends [--backends c,cuda-emu] [--batch N] [--entry NAME]
 *                 [--grad-only] [--train] [--reference FILE] [--skip-unavailable] [--verbose] FILE.irg...
 * --train checks instead the training step built on each loss entry
 * (optim.h): its outputs, and the change of every parameter, moment and
 * EMA it updates in place, against the interpreter's; the bound of a
 * change is 1e-5 or 4 f32 ulps of the new value, whichever is larger. 
 * --reference keeps the interpreter's outputs in FILE (safetensors): read
 * when it exists, else computed and written, since on a full-size model
 * the interpreter takes half an hour. --skip-unavailable exits 77 when a
 * backend cannot be opened here (the cuda backend without a GPU).      */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "autodiff.h"
#include "elab.h"
#include "exec.h"
#include "interp.h"
#include "optim.h"
#include "irx.h"
#include "rng.h"
#include "safetensors.h"

enum { MAX_ENTRIES = 32 };
static const double BOUND = 1e-5;

typedef struct {
  const char *file;
  const char *backends;
  int64_t batch;
  const char *entry;  /* only this entry */
  bool grad_only;     /* only the loss entries, with their backward graphs */
  bool train;         /* only the training steps of the loss entries */
  const char *reference;
  bool skip_unavailable;  /* exit 77 when a backend cannot open here (no GPU) */
  bool verbose;           /* every output's error, not only the worst */
} Config;

enum { EXIT_SKIP = 77 };

typedef struct {
  Arena arena;
  SourceSet sources;
  DiagList diags;
  IrProgram ir;
} Unit;

static bool load(Unit *u, const char *file, const char *entry) {
  memset(u, 0, sizeof *u);
  arena_init(&u->arena);
  diag_init(&u->diags, &u->arena, &u->sources);
  Program prog;
  ParseOptions popt = {NULL, 0};
  ElabOptions eopt = {entry, false};
  bool ok = irg_load_program(&u->arena, &u->diags, file, &popt, &prog) &&
            elab_program(&u->arena, &u->diags, &prog, &eopt, &u->ir);
  if (!ok) diag_print(stderr, &u->diags);
  return ok;
}

static bool is_loss(const Graph *g) {
  return g->noutputs > 0 && g->outputs[0]->shape.rank == 0 && dtype_is_float(g->outputs[0]->dtype);
}

static Tensor *random_tensor(const char *name, DType t, const Shape *s, int64_t batch, uint64_t stream, bool index) {
  int64_t shape[IR_MAX_RANK];
  for (int k = 0; k < s->rank; k++) shape[k] = s->d[k].n * (s->d[k].sym ? batch : 1);
  RtError err;
  Tensor *x = tensor_new(name, t, s->rank, shape, &err);
  for (int64_t i = 0; x && i < tensor_numel(x); i++) {
    double u = rng_uniform_f64(1234, stream, (uint64_t)i);
    if (t == DT_BOOL) tensor_set(x, i, u < 0.5);
    else if (!dtype_is_float(t)) tensor_set(x, i, floor(u * (index ? 4 : 100)));
    else tensor_set(x, i, rng_normal_f64(1234, stream, (uint64_t)i) * (index ? 1.0 : 0.05));
  }
  return x;
}

/* Inputs N(0,1), integers in [0,4) (valid labels and indices for these
 * programs); parameters N(0, 0.05^2), so that none is zero. */
static void make_data(const Graph *g, const ParamTable *pt, int64_t batch, TensorList *params, TensorList *inputs) {
  RtError err;
  for (int i = 0; i < g->ninputs; i++)
    tensorlist_add(inputs, random_tensor(g->inputs[i]->name, g->inputs[i]->dtype, &g->inputs[i]->shape, batch,
                                         100 + (uint64_t)i, true), &err);
  for (int i = 0; i < pt->n; i++)
    tensorlist_add(params, random_tensor(pt->items[i].name, pt->items[i].dtype, &pt->items[i].shape, 1,
                                         1000 + (uint64_t)i, false), &err);
}

/* Training-step scalars and state that make a real step: a few steps in,
 * moments of both signs, second moments >= 0, clipping active. */
static void make_train_data(TensorList *inputs) {
  static const struct { const char *name; double value; } scalars[] = {
      {"lr", 1e-3}, {"step", 3}, {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-8},
      {"weight_decay", 0.01}, {"max_grad_norm", 0.5}, {"ema_decay", 0.99}};
  for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) tensor_set(tensorlist_find(inputs, scalars[i].name), 0, scalars[i].value);
  for (int i = 0; i < inputs->n; i++) {
    Tensor *t = inputs->items[i];
    bool sq = !strncmp(t->name, "exp_avg_sq.", 11), m = !sq && !strncmp(t->name, "exp_avg.", 8);
    for (int64_t k = 0; (sq || m) && k < tensor_numel(t); k++)
      tensor_set(t, k, sq ? 1e-4 * fabs(tensor_get(t, k)) : 1e-2 * tensor_get(t, k));
  }
}

static bool copy_list(const TensorList *from, TensorList *to) {
  RtError err;
  for (int i = 0; i < from->n; i++) {
    const Tensor *t = from->items[i];
    Tensor *x = tensor_new(t->name, t->dtype, t->rank, t->shape, &err);
    if (!x || !tensorlist_add(to, x, &err)) {
      tensor_free(x);
      return false;
    }
    memcpy(x->data, t->data, t->nbytes);
  }
  return true;
}

/* new - old, in double: an update's change, compared instead of the new
 * value so that a small step is not lost against a large weight. */
static Tensor *change(const Tensor *now, const Tensor *old) {
  RtError err;
  Tensor *d = tensor_new(now->name, DT_F64, now->rank, now->shape, &err);
  for (int64_t i = 0; d && i < tensor_numel(d); i++) tensor_set(d, i, tensor_get(now, i) - tensor_get(old, i));
  return d;
}

static const Tensor *leaf(const TensorList *params, const TensorList *inputs, const char *name) {
  const Tensor *t = tensorlist_find(inputs, name);
  return t ? t : tensorlist_find(params, name);
}

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double largest(const Tensor *t) {
  double m = 0;
  for (int64_t i = 0; i < tensor_numel(t); i++) m = fmax(m, fabs(tensor_get(t, i)));
  return m;
}

static double compare(const Tensor *ref, const Tensor *got, bool *shape_ok) {
  *shape_ok = ref->rank == got->rank && tensor_numel(ref) == tensor_numel(got);
  return *shape_ok ? tensor_rel_error(ref, got) : INFINITY;
}

static int check_backend(const Config *c, const char *backend, const XProgram *xp, const Graph *g,
                         const TensorList *params, const TensorList *inputs, const TensorList *ref, const char *label) {
  RtError err;
  Backend *b = backend_open(backend, &err);
  TensorList out = {0}, p1 = {0}, in1 = {0};
  ExecOptions eopt = {7};
  double t0 = seconds();
  const XEntry *xe = irx_entry(xp, g->name);
  /* updates land in the tensors given: run on copies */
  if (!b || !copy_list(params, &p1) || !copy_list(inputs, &in1) || !exec_run(b, xp, xe, &p1, &in1, &eopt, &out, &err)) {
    printf("FAIL %s [%s]: %s\n", label, backend, b ? err.msg : "cannot open");
    backend_close(b);
    tensorlist_free(&out);
    tensorlist_free(&p1);
    tensorlist_free(&in1);
    return 1;
  }
  double worst = 0;
  const char *where = "";
  int failures = 0;
  for (int i = 0, j = 0; i < g->noutputs; i++) {
    bool shape_ok;
    double e;
    double bound = BOUND;
    if (g->updates && g->updates[i]) {
      const char *name = ref->items[i]->name;
      const Tensor *old = leaf(params, inputs, name);
      Tensor *want = change(ref->items[i], old), *got = change(leaf(&p1, &in1, name), old);
      e = compare(want, got, &shape_ok);
      /* the new value is f32: a few of its ulps may be a large part of a
       * small change (a second moment moves by 1e-3 of itself) */
      double floor = 4 * FLT_EPSILON * largest(ref->items[i]) / largest(want);
      if (floor > bound) bound = floor;
      tensor_free(want);
      tensor_free(got);
    } else {
      e = compare(ref->items[i], out.items[j++], &shape_ok);
    }
    if (e > worst) worst = e, where = ref->items[i]->name;
    if (c->verbose)
      printf("   %s [%s] %s: error %.3g, largest |value| %.3g\n", label, backend, ref->items[i]->name, e,
             largest(ref->items[i]));
    if (!(e <= bound)) {
      printf("FAIL %s [%s]: output %s: error %.3g%s (largest |value| %.3g)\n", label, backend, ref->items[i]->name,
             e, shape_ok ? "" : " (shape differs)", largest(ref->items[i]));
      failures++;
    }
  }
  printf("%s %s [%s]: %d outputs, worst error %.3g (%s), %.2f s with compiling\n", failures ? "FAIL" : "ok", label,
         backend, g->noutputs, worst, where, seconds() - t0);
  tensorlist_free(&out);
  tensorlist_free(&p1);
  tensorlist_free(&in1);
  backend_close(b);
  return failures;
}

/* The interpreter's outputs in double, or those kept in c->reference. */
static bool reference(const Config *c, const Graph *g, const ParamTable *pt, const TensorList *params,
                      const TensorList *inputs, TensorList *ref, RtError *err) {
  struct stat st;
  if (c->reference && stat(c->reference, &st) == 0) {
    StFile *f = st_open(c->reference, err);
    if (!f) return false;
    const TensorList *kept = st_tensors(f);
    bool ok = kept->n == g->noutputs;
    for (int i = 0; ok && i < kept->n; i++) {
      const Tensor *t = kept->items[i];
      Tensor *x = tensor_new(t->name, t->dtype, t->rank, t->shape, err);
      ok = x && tensorlist_add(ref, x, err);
      if (ok) memcpy(x->data, t->data, t->nbytes);
      else tensor_free(x);
    }
    st_close(f);
    return ok || rt_fail(err, "%s does not hold this entry's %d outputs", c->reference, g->noutputs);
  }
  InterpOptions iopt = {INTERP_F64, 7};
  if (!interp_run(g, pt, params, inputs, &iopt, ref, err)) return false;
  return !c->reference || st_write(c->reference, ref->items, ref->n, NULL, err);
}

static int check_entry(const Config *c, const char *entry, bool grad, bool train) {
  Unit u;
  if (!load(&u, c->file, entry)) return 1;
  if (train && !optim_add_train_step(&u.arena, &u.diags, &u.ir, entry)) {
    diag_print(stderr, &u.diags);
    arena_free(&u.arena);
    return 1;
  }
  Graph *g = u.ir.entries[u.ir.nentries - 1];
  char label[512];
  snprintf(label, sizeof label, "%s:%s%s", c->file, entry, train ? "+train_step" : grad ? "+grad" : "");
  int failures = 0;
  CompileOptions copt = {grad, true, true};
  CompiledProgram cp;
  XProgram xp = {0};
  unsigned char *bytes = NULL;
  size_t len = 0;
  RtError err = {{0}};
  IrxMeta meta = {c->file, 0, NULL, 0};
  TensorList params = {0}, inputs = {0}, ref = {0};
  if (!program_compile(&u.arena, &u.diags, &u.ir, &copt, &cp)) {
    diag_print(stderr, &u.diags);
    printf("FAIL %s: does not compile\n", label);
    failures = 1;
    goto done;
  }
  if (!irx_serialize(&cp, &meta, &bytes, &len, &err) || !irx_parse(bytes, len, label, &xp, &err)) {
    printf("FAIL %s: %s\n", label, err.msg);
    failures = 1;
    goto done;
  }
  make_data(g, &u.ir.params, c->batch, &params, &inputs);
  if (train) make_train_data(&inputs);
  double t0 = seconds();
  if (!reference(c, g, &u.ir.params, &params, &inputs, &ref, &err)) {
    printf("FAIL %s: interpreter: %s\n", label, err.msg);
    failures = 1;
    goto done;
  }
  printf("   %s [interp]: %.2f s\n", label, seconds() - t0);
  char list[256], *save = NULL;
  snprintf(list, sizeof list, "%s", c->backends);
  for (char *b = strtok_r(list, ",", &save); b; b = strtok_r(NULL, ",", &save))
    failures += check_backend(c, b, &xp, g, &params, &inputs, &ref, label);
done:
  free(bytes);
  irx_free(&xp);
  tensorlist_free(&params);
  tensorlist_free(&inputs);
  tensorlist_free(&ref);
  arena_free(&u.arena);
  return failures;
}

static int check_file(const Config *c) {
  Unit u;
  if (!load(&u, c->file, NULL)) return 1;
  int n = u.ir.nentries < MAX_ENTRIES ? u.ir.nentries : MAX_ENTRIES, failures = 0;
  char *names[MAX_ENTRIES];
  bool loss[MAX_ENTRIES];
  for (int i = 0; i < n; i++) {
    names[i] = strdup(u.ir.entries[i]->name);
    loss[i] = is_loss(u.ir.entries[i]);
  }
  arena_free(&u.arena);
  for (int i = 0; i < n; i++) {
    if (!c->entry || !strcmp(c->entry, names[i])) {
      if (c->train) {
        if (loss[i]) failures += check_entry(c, names[i], false, true);
        free(names[i]);
        continue;
      }
      if (!c->grad_only) failures += check_entry(c, names[i], false, false);
      if (loss[i]) failures += check_entry(c, names[i], true, false);
    }
    free(names[i]);
  }
  return failures;
}

/* Whether every backend asked for opens on this machine. */
static bool backends_open(const char *list) {
  char copy[256], *save = NULL;
  snprintf(copy, sizeof copy, "%s", list);
  for (char *b = strtok_r(copy, ",", &save); b; b = strtok_r(NULL, ",", &save)) {
    RtError err;
    Backend *be = backend_open(b, &err);
    if (!be) {
      printf("skipped: backend %s: %s\n", b, err.msg);
      return false;
    }
    backend_close(be);
  }
  return true;
}

int main(int argc, char **argv) {
  Config c = {NULL, "c,cuda-emu", 2, NULL, false, false, NULL, false, false};
  setvbuf(stdout, NULL, _IOLBF, 0);
  int failures = 0, files = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--backends") && i + 1 < argc) c.backends = argv[++i];
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) c.batch = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--entry") && i + 1 < argc) c.entry = argv[++i];
    else if (!strcmp(argv[i], "--grad-only")) c.grad_only = true;
    else if (!strcmp(argv[i], "--train")) c.train = true;
    else if (!strcmp(argv[i], "--reference") && i + 1 < argc) c.reference = argv[++i];
    else if (!strcmp(argv[i], "--skip-unavailable")) c.skip_unavailable = true;
    else if (!strcmp(argv[i], "--verbose")) c.verbose = true;
    else {
      if (c.skip_unavailable && !files && !backends_open(c.backends)) return EXIT_SKIP;
      c.file = argv[i];
      failures += check_file(&c);
      files++;
    }
  }
  if (!files) {
    fprintf(stderr, "usage: test_backends [--backends c,cuda-emu] [--batch N] [--entry NAME] [--grad-only] "
                    "FILE.irg...\n");
    return 2;
  }
  printf("%d failure%s\n", failures, failures == 1 ? "" : "s");
  return failures ? 1 : 0;
}
