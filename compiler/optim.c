/* optim.c: the training step graph (optim.h). The arithmetic follows
 * PyTorch's single-tensor AdamW and clip_grad_norm_ operation for
 * operation, in f32 per element with f32-rounded scalars; the bias
 * corrections are computed in f64 as Python computes them. */
#include "optim.h"

#include <string.h>

#include "autocast.h"
#include "autodiff.h"

const char *const optim_scalar_inputs[OPTIM_NSCALARS] = {
    "lr", "step", "beta1", "beta2", "eps", "weight_decay", "max_grad_norm", "ema_decay",
};
enum { S_LR, S_STEP, S_BETA1, S_BETA2, S_EPS, S_WD, S_MAX_NORM, S_EMA };
const char optim_ema2_decay_input[] = "ema_decay2";
const char optim_grad_scale_input[] = "grad_scale";
const char optim_loss_scale_input[] = "loss_scale";

typedef struct {
  IrBuilder b;
  SrcLoc loc;
  Node *scalar[OPTIM_NSCALARS];
  /* f32 scalars of the update */
  Node *ok;          /* bool: loss and gradient norm finite */
  Node *clip;        /* gradient factor */
  Node *one_m_beta1, *beta2, *one_m_beta2, *bc2_sqrt, *neg_step_size, *eps, *decay_factor;
  Node *ema, *one_m_ema;
  Node *ema2, *one_m_ema2; /* the second EMA's, with OptimOptions.nema 2 */
  OptimOptions opt;
} Step;

static Node *c64(Step *s, double v) { return ir_const(&s->b, v, DT_F64, s->loc); }
static Node *c32(Step *s, double v) { return ir_const(&s->b, v, DT_F32, s->loc); }
static Node *bin(Step *s, OpKind op, Node *x, Node *y) { return x && y ? ir_binary(&s->b, op, x, y, s->loc) : NULL; }
static Node *f32(Step *s, Node *x) { return x ? ir_cast(&s->b, x, DT_F32, s->loc) : NULL; }
static Node *sqrt_(Step *s, Node *x) { return x ? ir_unary(&s->b, OP_SQRT, x, s->loc) : NULL; }
static Node *where(Step *s, Node *c, Node *x, Node *y) { return x && y ? ir_where(&s->b, c, x, y, s->loc) : NULL; }

static Graph *find_entry(const IrProgram *ir, const char *name) {
  for (int i = 0; i < ir->nentries; i++)
    if (!strcmp(ir->entries[i]->name, name)) return ir->entries[i];
  return NULL;
}

static Node *add_input(Step *s, const char *name, DType t, const Shape *shape) {
  for (int i = 0; i < s->b.g->ninputs; i++)
    if (!strcmp(s->b.g->inputs[i]->name, name)) {
      diag_error(s->b.diags, s->b.g->inputs[i]->loc,
                 "train step: the loss entry's input '%s' clashes with an input the step adds", name);
      return NULL;
    }
  return ir_input(&s->b, name, t, *shape, s->loc);
}

/* x - x is 0 exactly when x is finite (inf - inf and NaN give NaN). */
static Node *is_finite(Step *s, Node *x) { return bin(s, OP_EQ, bin(s, OP_SUB, x, x), c32(s, 0)); }

/* The global L2 norm of the gradients, and PyTorch's clip factor
 * min(1, max_norm / (norm + 1e-6)); max_norm <= 0 turns clipping off. */
static Node *grad_norm(Step *s, Node **grads, int n) {
  Node *sq = c32(s, 0);
  for (int i = 0; i < n; i++) {
    if (!grads[i]) continue;
    uint32_t all = (1u << grads[i]->shape.rank) - 1;
    Node *g2 = bin(s, OP_MUL, grads[i], grads[i]);
    sq = bin(s, OP_ADD, sq, g2 ? ir_reduce(&s->b, OP_SUM, g2, all, false, s->loc) : NULL);
  }
  Node *norm = sqrt_(s, sq);
  Node *max_norm = s->scalar[S_MAX_NORM];
  Node *factor = bin(s, OP_MIN, bin(s, OP_DIV, f32(s, max_norm), bin(s, OP_ADD, norm, c32(s, 1e-6))), c32(s, 1));
  s->clip = where(s, bin(s, OP_LT, c64(s, 0), max_norm), factor, c32(s, 1));
  return norm;
}

static bool scalars(Step *s) {
  Node **x = s->scalar;
  Node *one = c64(s, 1);
  Node *bc1 = bin(s, OP_SUB, one, bin(s, OP_POW, x[S_BETA1], x[S_STEP]));
  Node *bc2 = bin(s, OP_SUB, one, bin(s, OP_POW, x[S_BETA2], x[S_STEP]));
  s->neg_step_size = f32(s, bin(s, OP_DIV, ir_unary(&s->b, OP_NEG, x[S_LR], s->loc), bc1));
  s->bc2_sqrt = f32(s, sqrt_(s, bc2));
  s->one_m_beta1 = f32(s, bin(s, OP_SUB, one, x[S_BETA1]));
  s->beta2 = f32(s, x[S_BETA2]);
  s->one_m_beta2 = f32(s, bin(s, OP_SUB, one, x[S_BETA2]));
  s->eps = f32(s, x[S_EPS]);
  s->decay_factor = f32(s, bin(s, OP_SUB, one, bin(s, OP_MUL, x[S_LR], x[S_WD])));
  s->ema = f32(s, x[S_EMA]);
  s->one_m_ema = f32(s, bin(s, OP_SUB, one, x[S_EMA]));
  if (s->opt.nema == 2) {
    Shape scalar = {0};
    Node *d2 = add_input(s, optim_ema2_decay_input, DT_F64, &scalar);
    s->ema2 = f32(s, d2);
    s->one_m_ema2 = f32(s, bin(s, OP_SUB, one, d2));
    if (!s->ema2 || !s->one_m_ema2) return false;
  }
  return s->neg_step_size && s->bc2_sqrt && s->one_m_beta1 && s->beta2 && s->one_m_beta2 && s->eps &&
         s->decay_factor && s->ema && s->one_m_ema;
}

static const char *state_name(Step *s, const char *kind, const char *param) {
  return arena_printf(s->b.arena, "%s.%s", kind, param);
}

/* Whether the jit trainer's no-decay group holds parameter p: 1-D or
 * named *.bias (main_jit.py's add_weight_decay). */
static bool no_decay(const Node *p) {
  size_t n = strlen(p->name);
  return p->shape.rank == 1 || (n >= 5 && !strcmp(p->name + n - 5, ".bias"));
}

/* One parameter's AdamW update (torch.optim.adamw._single_tensor_adamw):
 *   p <- p (1 - lr wd);  m <- lerp(m, g, 1 - b1);  v <- v b2 + (1 - b2) g g
 *   p <- p - lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
 * The new moments feed the new weight, so no kernel reads an old moment
 * after its in-place update. Returns the new weight. */
static Node *adamw(Step *s, Node *p, Node *grad) {
  const char *name = p->name;
  Node *m = add_input(s, state_name(s, "exp_avg", name), p->dtype, &p->shape);
  Node *v = add_input(s, state_name(s, "exp_avg_sq", name), p->dtype, &p->shape);
  if (!m || !v) return NULL;
  Node *g = bin(s, OP_MUL, grad, s->clip);
  Node *m1 = bin(s, OP_ADD, m, bin(s, OP_MUL, s->one_m_beta1, bin(s, OP_SUB, g, m)));
  Node *v1 = bin(s, OP_ADD, bin(s, OP_MUL, v, s->beta2), bin(s, OP_MUL, bin(s, OP_MUL, s->one_m_beta2, g), g));
  m1 = where(s, s->ok, m1, m);
  v1 = where(s, s->ok, v1, v);
  Node *denom = bin(s, OP_ADD, bin(s, OP_DIV, sqrt_(s, v1), s->bc2_sqrt), s->eps);
  /* the no-decay group skips p (1 - lr 0), which is p exactly */
  Node *decayed = !s->opt.decay_1d && no_decay(p) ? p : bin(s, OP_MUL, p, s->decay_factor);
  Node *p1 = bin(s, OP_ADD, decayed, bin(s, OP_DIV, bin(s, OP_MUL, s->neg_step_size, m1), denom));
  p1 = where(s, s->ok, p1, p);
  Arena *a = s->b.arena;
  DiagList *d = s->b.diags;
  if (!p1 || !ir_add_update(a, d, s->b.g, m1, m) || !ir_add_update(a, d, s->b.g, v1, v) ||
      !ir_add_update(a, d, s->b.g, p1, p))
    return NULL;
  return p1;
}

/* ema <- ema decay + p (1 - decay), as the reference's update_ema; the
 * second EMA (kind "ema2") the same with its own decay. */
static bool ema_one(Step *s, Node *p, const char *name, const char *kind, Node *decay, Node *one_m_decay) {
  Node *e = add_input(s, state_name(s, kind, name), p->dtype, &p->shape);
  Node *e1 = e ? bin(s, OP_ADD, bin(s, OP_MUL, e, decay), bin(s, OP_MUL, p, one_m_decay)) : NULL;
  return e1 && ir_add_update(s->b.arena, s->b.diags, s->b.g, e1, e);
}

static bool ema(Step *s, Node *p, const char *name) {
  return ema_one(s, p, name, "ema", s->ema, s->one_m_ema) &&
         (s->opt.nema < 2 || ema_one(s, p, name, "ema2", s->ema2, s->one_m_ema2));
}

static bool check_params(DiagList *d, const IrProgram *ir, SrcLoc loc) {
  for (int i = 0; i < ir->params.n; i++)
    if (ir->params.items[i].dtype != DT_F32) {
      diag_error(d, loc, "train step: parameter '%s' is %s; master weights must be f32", ir->params.items[i].name,
                 dtype_name(ir->params.items[i].dtype));
      return false;
    }
  return true;
}

bool optim_add_train_step(Arena *a, DiagList *d, IrProgram *ir, const char *loss_entry) {
  const OptimOptions ldm = {true, 1, false, DT_F32, false};
  return optim_add_train_step_opt(a, d, ir, loss_entry, &ldm);
}

static bool check_options(DiagList *d, const IrProgram *ir, const char *loss_entry, const OptimOptions *o) {
  if (o->nema < 1 || o->nema > 2) {
    diag_error(d, NO_LOC, "train step: %d EMAs; 1 or 2 are supported", o->nema);
    return false;
  }
  if (!find_entry(ir, loss_entry)) {
    diag_error(d, NO_LOC, "train step: no entry '%s'", loss_entry);
    return false;
  }
  static const char *const made[] = {"train_step", "grad_step", "apply_step"};
  for (int i = 0; i < 3; i++)
    if (find_entry(ir, made[i])) {
      diag_error(d, NO_LOC, "train step: the program already has an entry '%s'", made[i]);
      return false;
    }
  return check_params(d, ir, find_entry(ir, loss_entry)->loc);
}

/* Entry `name`: the loss entry and its gradients. param[i] is parameter
 * i's node (NULL where the loss does not read it), grads[i] its gradient
 * (NULL where it has none); the graph's outputs are the loss entry's. */
static Graph *with_gradients(Arena *a, DiagList *d, const IrProgram *ir, const char *loss_entry, const char *name,
                             const OptimOptions *o, Node **param, Node **grads) {
  const ParamTable *pt = &ir->params;
  Graph *g = ir_clone_graph(a, find_entry(ir, loss_entry), name);
  if (!g) return NULL;
  for (int i = 0; i < g->n; i++)
    if (g->nodes[i]->op == OP_PARAM) param[g->nodes[i]->attr.index] = g->nodes[i];
  int nout = g->noutputs;
  Node *loss = g->outputs[0];
  if (o->loss_scale) { /* differentiate loss * scale; the loss logged stays unscaled */
    IrBuilder b = {a, d, g, 0};
    Shape scalar = {0};
    Node *scale = ir_input(&b, optim_loss_scale_input, DT_F64, scalar, g->loc);
    g->outputs[0] = scale ? ir_binary(&b, OP_MUL, loss, ir_cast(&b, scale, loss->dtype, g->loc), g->loc) : NULL;
    if (!g->outputs[0]) return NULL;
  }
  if (!ad_build_grad(a, d, g, pt, NULL)) return NULL;
  g->outputs[0] = loss;
  /* the gradients leave the outputs: the update consumes them */
  for (int i = nout, p = 0; i < g->noutputs; i++, p++) {
    while (!pt->items[p].trainable) p++;
    grads[p] = param[p] ? g->outputs[i] : NULL;
  }
  g->noutputs = nout;
  return g;
}

static void init_step(Step *s, Arena *a, DiagList *d, Graph *g, const OptimOptions *o) {
  memset(s, 0, sizeof *s);
  s->b = (IrBuilder){a, d, g, 0};
  s->loc = g->loc;
  s->opt = *o;
  for (int i = 0; i < g->n; i++)
    if (op_flags[g->nodes[i]->op] & OPF_RANDOM && g->nodes[i]->attr.stream >= s->b.next_stream)
      s->b.next_stream = g->nodes[i]->attr.stream + 1;
}

/* The update from the gradients: the norm (an output, grad_norm), the
 * clip, AdamW of each parameter with a gradient and the EMAs of all. The
 * step is skipped where the norm, or the loss when there is one, is not
 * finite. param[i] may be NULL (a parameter the graph does not read yet). */
static bool update(Step *s, const ParamTable *pt, Node **param, Node **grads, Node *loss) {
  Graph *g = s->b.g;
  Shape scalar = {0};
  for (int i = 0; i < OPTIM_NSCALARS; i++)
    if (!(s->scalar[i] = add_input(s, optim_scalar_inputs[i], DT_F64, &scalar))) return false;
  Node *norm = grad_norm(s, grads, pt->n);
  if (loss && loss->dtype != DT_F32) loss = f32(s, loss);
  s->ok = is_finite(s, loss ? bin(s, OP_ADD, norm, loss) : norm);
  if (!norm || !s->ok || !s->clip || !scalars(s) || !ir_add_output(s->b.arena, g, norm, "grad_norm")) return false;
  for (int i = 0; i < pt->n; i++) {
    Node *p = param[i];
    if (grads[i] && !(p = adamw(s, param[i], grads[i]))) return false;
    if (!p && !(p = ir_param(&s->b, i, &pt->items[i], g->loc))) return false;
    if (!ema(s, p, pt->items[i].name)) return false;
  }
  return true;
}

static bool add_entry(Arena *a, DiagList *d, IrProgram *ir, Graph *g) {
  if (!ir_prune(a, g) || !ir_verify(d, g)) return false;
  Graph **entries = arena_grow(a, ir->entries, (size_t)ir->nentries, (size_t)ir->nentries + 1, sizeof *entries);
  if (!entries) return false;
  entries[ir->nentries++] = g;
  ir->entries = entries;
  return true;
}

/* grad_step: the loss entry, and grad_acc.<name> += its gradient for each
 * parameter with one. apply_step: the update from grad_acc * grad_scale
 * (1 / the micro-batches), which then sets grad_acc back to 0. */
static bool add_accumulation(Arena *a, DiagList *d, IrProgram *ir, const char *loss_entry, const OptimOptions *o,
                             Node **param, Node **grads) {
  const ParamTable *pt = &ir->params;
  Graph *g = with_gradients(a, d, ir, loss_entry, "grad_step", o, param, grads);
  if (!g) return false;
  Step s;
  init_step(&s, a, d, g, o);
  bool *had = arena_alloc(a, (size_t)pt->n + 1);
  if (!had) return false;
  for (int i = 0; i < pt->n; i++) {
    if (!(had[i] = grads[i] != NULL)) continue;
    Node *acc = add_input(&s, state_name(&s, "grad_acc", pt->items[i].name), DT_F32, &grads[i]->shape);
    Node *acc1 = acc ? bin(&s, OP_ADD, acc, grads[i]) : NULL;
    if (!acc1 || !ir_add_update(a, d, g, acc1, acc)) return false;
  }
  if (!add_entry(a, d, ir, g)) return false;

  Graph *apply = ir_new_graph(a, "apply_step", g->loc);
  if (!apply) return false;
  init_step(&s, a, d, apply, o);
  Shape scalar = {0};
  Node *scale = add_input(&s, optim_grad_scale_input, DT_F64, &scalar);
  Node **acc = arena_alloc(a, sizeof(Node *) * ((size_t)pt->n + 1));
  if (!scale || !acc) return false;
  for (int i = 0; i < pt->n; i++) {
    grads[i] = acc[i] = NULL;
    if (!(param[i] = ir_param(&s.b, i, &pt->items[i], s.loc))) return false;
    if (!had[i]) continue;
    acc[i] = add_input(&s, state_name(&s, "grad_acc", pt->items[i].name), DT_F32, &param[i]->shape);
    if (!acc[i] || !(grads[i] = bin(&s, OP_MUL, acc[i], f32(&s, scale)))) return false;
  }
  if (!update(&s, pt, param, grads, NULL)) return false;
  /* the sums go back to 0 after everything that reads them: made last, so
   * their kernels come last (a kernel's place follows its last node's) */
  Node *zero = c32(&s, 0), *always = ir_const(&s.b, 1, DT_BOOL, s.loc);
  for (int i = 0; i < pt->n; i++) {
    Node *reset = acc[i] ? where(&s, always, zero, acc[i]) : NULL;
    if (acc[i] && (!reset || !ir_add_update(a, d, apply, reset, acc[i]))) return false;
  }
  return add_entry(a, d, ir, apply);
}

bool optim_add_train_step_opt(Arena *a, DiagList *d, IrProgram *ir, const char *loss_entry, const OptimOptions *o) {
  if (!check_options(d, ir, loss_entry, o)) return false;
  if (o->autocast != DT_F32 && !autocast_matmuls(a, d, ir, loss_entry, o->autocast)) return false;
  const ParamTable *pt = &ir->params;
  Node **param = arena_alloc(a, sizeof(Node *) * ((size_t)pt->n + 1));
  Node **grads = arena_alloc(a, sizeof(Node *) * ((size_t)pt->n + 1));
  if (!param || !grads) return false;
  if (o->accumulate) return add_accumulation(a, d, ir, loss_entry, o, param, grads);
  Graph *g = with_gradients(a, d, ir, loss_entry, "train_step", o, param, grads);
  if (!g) return false;
  Step s;
  init_step(&s, a, d, g, o);
  if (o->loss_scale) { /* unscale (GradScaler.unscale_: times 1 / scale, in f32) */
    Node *scale = NULL;
    for (int i = 0; i < g->ninputs; i++)
      if (!strcmp(g->inputs[i]->name, optim_loss_scale_input)) scale = g->inputs[i];
    Node *inv = f32(&s, bin(&s, OP_DIV, c64(&s, 1), scale));
    for (int i = 0; i < pt->n; i++)
      if (grads[i] && !(grads[i] = bin(&s, OP_MUL, grads[i], inv))) return false;
  }
  return update(&s, pt, param, grads, g->outputs[0]) && add_entry(a, d, ir, g);
}
