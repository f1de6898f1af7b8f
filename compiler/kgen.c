/* kgen.c: emitting a fused kernel's body. Every node inside a kernel has
 * exactly one reader there (fuse.c only joins single-use nodes), so the
 * nodes form a tree under the kernel's root and each is emitted once per
 * element, as `const T vN = ...;` statements. Movement ops cost no memory
 * traffic: they only rewrite the index their source is read at. Indices
 * stay flat as long as shapes agree and are split into axes (div/mod) only
 * where an op needs them. */
#include "kgen.h"

#include <math.h>
#include <string.h>

const char *kg_compute_type(DType t) {
  return t == DT_F32 || t == DT_F16 || t == DT_BF16 ? "float" : "double";
}

const char *kg_storage_type(DType t) {
  switch (t) {
  case DT_F32: return "float";
  case DT_F64: return "double";
  case DT_F16:
  case DT_BF16: return "unsigned short";
  case DT_I32: return "int";
  case DT_I64: return "long long";
  default: return "unsigned char"; /* u8, bool */
  }
}

const char *kg_dim(Arena *a, Dim d) {
  if (!d.sym) return arena_printf(a, "%lld", (long long)d.n);
  if (d.n == 1) return "B";
  return arena_printf(a, "(%lld*B)", (long long)d.n);
}

Dim kg_numel(const Shape *s) {
  Dim n;
  shape_numel(s, &n); /* the builders guarantee it fits */
  return n;
}

const char *kg_numel_expr(Arena *a, const Shape *s) { return kg_dim(a, kg_numel(s)); }

Shape kg_reduce_axes(const Shape *src, uint32_t axes, bool reduced) {
  Shape s = {0};
  for (int k = 0; k < src->rank; k++)
    if (((axes >> k) & 1) == reduced) s.d[s.rank++] = src->d[k];
  return s;
}

const char *kg_arg(Arena *a, const Kernel *K, const Node *x) {
  for (int i = 0; i < K->ninputs; i++)
    if (K->inputs[i] == x) return arena_printf(a, "in%d", i);
  for (int i = 0; i < K->noutputs; i++)
    if (K->outputs[i] == x) return arena_printf(a, "out%d", i);
  return NULL;
}

void kg_line(KGen *g, const char *fmt, ...) {
  for (int i = 0; i < g->indent; i++) sb_puts(g->sb, "  ");
  va_list ap;
  va_start(ap, fmt);
  sb_vprintf(g->sb, fmt, ap);
  va_end(ap);
  sb_putc(g->sb, '\n');
}

const char *kg_tmp(KGen *g, const char *prefix) { return arena_printf(g->a, "%s%d", prefix, g->ntmp++); }

static bool is_one(Dim d) { return !d.sym && d.n == 1; }

static bool is_zero(const char *e) { return !strcmp(e, "0"); }

KIndex kg_axes(const Shape *s, const char *const *names) {
  KIndex r = {0};
  for (int k = 0; k < s->rank; k++) r.ax[k] = is_one(s->d[k]) ? "0" : names[k];
  return r;
}

const char *kg_flat(KGen *g, const Shape *s, KIndex i) {
  if (i.flat) return i.pos;
  StrBuf e;
  sb_init(&e);
  bool any = false;
  for (int k = 0; k < s->rank; k++) {
    if (is_one(s->d[k])) continue;
    if (!any) sb_puts(&e, i.ax[k]);
    else sb_printf(&e, " * %s + %s", kg_dim(g->a, s->d[k]), i.ax[k]);
    if (any) { /* parenthesise the running sum for the next multiply */
      char *inner = arena_strdup(g->a, e.data);
      e.len = 0;
      sb_printf(&e, "(%s)", inner);
    }
    any = true;
  }
  if (!any) {
    sb_free(&e);
    return "0";
  }
  const char *v = kg_tmp(g, "p");
  kg_line(g, "const idx_t %s = %s;", v, e.data);
  sb_free(&e);
  return v;
}

/* Splits a reshape's index (axes i.ax over i.of) over s. Walking both
 * shapes from the innermost axis, the axes are grouped where their sizes'
 * products meet (1152 -> 3 x 6 x 64, say): a group of one axis on each
 * side maps over unchanged, any other goes through a flat index of its
 * own and divisions by its own sizes only. A symbolic size must match
 * exactly; what is left outside the groups is split as a whole. */
static KIndex resplit(KGen *g, const Shape *s, KIndex i) {
  KIndex r = {0};
  const Shape *a = i.of;
  int ka = a->rank - 1, ks = s->rank - 1;
  for (int k = 0; k < s->rank; k++) r.ax[k] = "0";
  for (;;) {
    while (ka >= 0 && is_one(a->d[ka])) ka--;
    while (ks >= 0 && is_one(s->d[ks])) ks--;
    if (ka < 0 || ks < 0) break;
    if (a->d[ka].sym || s->d[ks].sym) {
      if (!dim_eq(a->d[ka], s->d[ks])) break;
      r.ax[ks--] = i.ax[ka--];
      continue;
    }
    int ea = ka, es = ks;
    int64_t pa = a->d[ka].n, ps = s->d[ks].n;
    while (pa != ps) {
      if (pa < ps ? ka == 0 || a->d[ka - 1].sym : ks == 0 || s->d[ks - 1].sym) {
        ka = ea, ks = es; /* the group and all outside it */
        goto rest;
      }
      if (pa < ps) pa *= a->d[--ka].n;
      else ps *= s->d[--ks].n;
    }
    Shape from = {0}, to = {0};
    KIndex head = {0};
    for (int k = ka; k <= ea; k++) {
      head.ax[from.rank] = i.ax[k];
      from.d[from.rank++] = a->d[k];
    }
    for (int k = ks; k <= es; k++) to.d[to.rank++] = s->d[k];
    KIndex m = ea == ka && es == ks ? head : kg_split(g, &to, kg_at(kg_flat(g, &from, head)));
    for (int k = ks; k <= es; k++) r.ax[k] = m.ax[k - ks];
    ka--, ks--;
  }
  if (ks < 0) return r;
rest:;
  /* the leading axes left: through one flat index */
  Shape from = *a, to = *s;
  from.rank = ka + 1;
  to.rank = ks + 1;
  KIndex head = {0};
  for (int k = 0; k <= ka; k++) head.ax[k] = i.ax[k];
  KIndex m = kg_split(g, &to, kg_at(ka < 0 ? "0" : kg_flat(g, &from, head)));
  for (int k = 0; k <= ks; k++) r.ax[k] = m.ax[k];
  return r;
}

/* Splits a flat index into one expression per axis. */
KIndex kg_split(KGen *g, const Shape *s, KIndex i) {
  if (!i.flat) return i;
  if (i.of) return resplit(g, s, i);
  KIndex r = {0};
  const char *rest = i.pos;
  for (int k = 0; k < s->rank; k++) r.ax[k] = "0";
  for (int k = s->rank - 1; k >= 0; k--) {
    if (is_one(s->d[k])) {
      r.ax[k] = "0";
      continue;
    }
    bool outer = true; /* the outermost axis that is not 1 takes what is left */
    for (int j = 0; j < k; j++) outer &= is_one(s->d[j]);
    if (outer) {
      r.ax[k] = rest;
      break;
    }
    const char *dim = kg_dim(g->a, s->d[k]);
    r.ax[k] = kg_tmp(g, "j");
    kg_line(g, "const idx_t %s = %s %% %s;", r.ax[k], rest, dim);
    const char *q = kg_tmp(g, "q");
    kg_line(g, "const idx_t %s = %s / %s;", q, rest, dim);
    rest = q;
  }
  return r;
}

KIndex kg_at(const char *pos) { return (KIndex){true, pos, {0}, NULL}; }

/* The index of operand `src` read by an elementwise op whose result has
 * shape `out`: numpy broadcasting, axes aligned on the right. */
static KIndex operand_index(KGen *g, const Shape *out, KIndex i, const Shape *src) {
  if (shape_eq(out, src)) return i;
  Dim n;
  if (shape_numel(src, &n) && !n.sym && n.n == 1) return kg_at("0");
  KIndex m = kg_split(g, out, i), r = {0};
  int lead = out->rank - src->rank;
  for (int k = 0; k < src->rank; k++) r.ax[k] = is_one(src->d[k]) ? "0" : m.ax[lead + k];
  return r;
}

static bool in_kernel(const KGen *g, const Node *n) {
  for (int i = 0; i < g->K->nnodes; i++)
    if (g->K->nodes[i] == n) return true;
  return false;
}

static const char *literal(KGen *g, double v, DType t) {
  const char *ty = kg_compute_type(t);
  if (isnan(v)) return arena_printf(g->a, "((%s)(0.0 / 0.0))", ty);
  if (isinf(v)) return arena_printf(g->a, "((%s)(%s1.0 / 0.0))", ty, v < 0 ? "-" : "");
  return arena_printf(g->a, "((%s)%.17g)", ty, v);
}

static const char *load(KGen *g, const Node *n, KIndex i) {
  const char *arg = kg_arg(g->a, g->K, n);
  const char *pos = kg_flat(g, &n->shape, i);
  const char *v = kg_tmp(g, "v");
  const char *ty = kg_compute_type(n->dtype);
  if (n->dtype == DT_F16) kg_line(g, "const float %s = irepa_h2f(%s[%s]);", v, arg, pos);
  else if (n->dtype == DT_BF16) kg_line(g, "const float %s = irepa_bf2f(%s[%s]);", v, arg, pos);
  else kg_line(g, "const %s %s = (%s)%s[%s];", ty, v, ty, arg, pos);
  return v;
}

static const char *define(KGen *g, const Node *n, const char *expr) {
  const char *v = kg_tmp(g, "v");
  kg_line(g, "const %s %s = %s;", kg_compute_type(n->dtype), v, expr);
  return v;
}

static const char *unary_expr(KGen *g, const Node *n, const char *x) {
  bool f = !strcmp(kg_compute_type(n->dtype), "float");
  const char *sfx = f ? "f" : "";
  switch (n->op) {
  case OP_NEG: return arena_printf(g->a, "-%s", x);
  case OP_EXP: return arena_printf(g->a, "exp%s(%s)", sfx, x);
  case OP_LOG: return arena_printf(g->a, "log%s(%s)", sfx, x);
  case OP_SIN: return arena_printf(g->a, "sin%s(%s)", sfx, x);
  case OP_COS: return arena_printf(g->a, "cos%s(%s)", sfx, x);
  case OP_TANH: return arena_printf(g->a, f ? "irepa_tanhf(%s)" : "tanh(%s)", x);
  case OP_SQRT: return arena_printf(g->a, "sqrt%s(%s)", sfx, x);
  case OP_RSQRT: return arena_printf(g->a, "%s / sqrt%s(%s)", f ? "1.0f" : "1.0", sfx, x);
  case OP_ABS: return arena_printf(g->a, "fabs%s(%s)", sfx, x);
  case OP_STOP_GRAD: return x;
  default: return NULL;
  }
}

static const char *cast_expr(KGen *g, const Node *n, const char *x) {
  switch (n->dtype) {
  case DT_I32:
  case DT_I64: return arena_printf(g->a, "trunc((double)%s)", x);
  case DT_U8: return arena_printf(g->a, "(double)(unsigned char)(long long)trunc((double)%s)", x);
  case DT_BOOL: return arena_printf(g->a, "(double)(%s != 0)", x);
  default: return arena_printf(g->a, "(%s)%s", kg_compute_type(n->dtype), x);
  }
}

static const char *binary_expr(KGen *g, const Node *n, const char *x, const char *y) {
  const char *ty = kg_compute_type(n->dtype);
  bool f = !strcmp(ty, "float");
  switch (n->op) {
  case OP_ADD: return arena_printf(g->a, "%s + %s", x, y);
  case OP_SUB: return arena_printf(g->a, "%s - %s", x, y);
  case OP_MUL: return arena_printf(g->a, "%s * %s", x, y);
  case OP_DIV: return arena_printf(g->a, "%s / %s", x, y);
  case OP_POW: return arena_printf(g->a, "pow%s(%s, %s)", f ? "f" : "", x, y);
  case OP_MAX: return arena_printf(g->a, "%s >= %s ? %s : %s", x, y, x, y);
  case OP_MIN: return arena_printf(g->a, "%s <= %s ? %s : %s", x, y, x, y);
  case OP_LT: return arena_printf(g->a, "(double)(%s < %s)", x, y);
  case OP_LE: return arena_printf(g->a, "(double)(%s <= %s)", x, y);
  case OP_EQ: return arena_printf(g->a, "(double)(%s == %s)", x, y);
  case OP_NE: return arena_printf(g->a, "(double)(%s != %s)", x, y);
  default: return NULL;
  }
}

/* Converts operand value v (in src's compute type) to the type op n
 * computes in: comparisons compare in their operands' type. */
static const char *operand(KGen *g, const Node *n, int k, KIndex i) {
  const Node *s = n->src[k];
  const char *v = kg_value(g, s, operand_index(g, &n->shape, i, &s->shape));
  bool compare = n->op == OP_LT || n->op == OP_LE || n->op == OP_EQ || n->op == OP_NE;
  bool condition = n->op == OP_WHERE && k == 0;
  if (compare || condition || !strcmp(kg_compute_type(s->dtype), kg_compute_type(n->dtype))) return v;
  return arena_printf(g->a, "(%s)%s", kg_compute_type(n->dtype), v);
}

static const char *elementwise(KGen *g, const Node *n, KIndex i) {
  if (n->op == OP_WHERE) {
    const char *c = operand(g, n, 0, i), *x = operand(g, n, 1, i), *y = operand(g, n, 2, i);
    return define(g, n, arena_printf(g->a, "%s != 0 ? %s : %s", c, x, y));
  }
  if (n->op == OP_CAST) return define(g, n, cast_expr(g, n, kg_value(g, n->src[0], i)));
  if (n->nsrc == 1) return define(g, n, unary_expr(g, n, operand(g, n, 0, i)));
  const char *x = operand(g, n, 0, i), *y = operand(g, n, 1, i);
  if (n->op == OP_LT || n->op == OP_LE || n->op == OP_EQ || n->op == OP_NE) {
    /* compare in the wider of the two operand types */
    const char *ty = strcmp(kg_compute_type(n->src[0]->dtype), "double") &&
                             strcmp(kg_compute_type(n->src[1]->dtype), "double")
                         ? "float" : "double";
    x = arena_printf(g->a, "(%s)%s", ty, x);
    y = arena_printf(g->a, "(%s)%s", ty, y);
  }
  return define(g, n, binary_expr(g, n, x, y));
}

static const char *affine(KGen *g, int64_t start, const char *ax, int64_t step) {
  if (is_zero(ax)) return arena_printf(g->a, "%lld", (long long)start);
  const char *scaled = step == 1 ? ax : arena_printf(g->a, "%s * %lld", ax, (long long)step);
  return start ? arena_printf(g->a, "(%lld + %s)", (long long)start, scaled)
               : arena_printf(g->a, "(%s)", scaled);
}

static const char *movement(KGen *g, const Node *n, KIndex i) {
  const Node *s = n->src[0];
  if (n->op == OP_RESHAPE) {
    KIndex r = kg_at(kg_flat(g, &n->shape, i));
    if (!i.flat) {
      for (int k = 0; k < n->shape.rank; k++) r.ax[k] = i.ax[k];
      r.of = &n->shape;
    }
    return kg_value(g, s, r);
  }
  if (n->op == OP_EXPAND) return kg_value(g, s, operand_index(g, &n->shape, i, &s->shape));
  KIndex m = kg_split(g, &n->shape, i), r = {0};
  if (n->op == OP_PERMUTE) {
    for (int k = 0; k < n->shape.rank; k++) r.ax[n->attr.perm[k]] = m.ax[k];
    return kg_value(g, s, r);
  }
  for (int k = 0; k < n->shape.rank; k++) r.ax[k] = affine(g, n->attr.start[k], m.ax[k], n->attr.step[k]);
  return kg_value(g, s, r); /* SLICE */
}

/* PAD and CONCAT read their sources only where an element comes from
 * them: the loads go inside an if, so no out-of-range address is formed. */
static const char *pad(KGen *g, const Node *n, KIndex i) {
  const Node *s = n->src[0];
  KIndex m = kg_split(g, &n->shape, i), r = {0};
  StrBuf cond;
  sb_init(&cond);
  sb_puts(&cond, "1");
  for (int k = 0; k < n->shape.rank; k++) {
    int64_t start = n->attr.start[k], step = n->attr.step[k];
    if (start == 0 && step == 1 && dim_eq(s->shape.d[k], n->shape.d[k])) {
      r.ax[k] = m.ax[k];
      continue;
    }
    const char *t = kg_tmp(g, "t");
    kg_line(g, "const idx_t %s = %s - %lld;", t, m.ax[k], (long long)start);
    sb_printf(&cond, " && %s >= 0 && %s %% %lld == 0 && %s / %lld < %s", t, t, (long long)step, t,
              (long long)step, kg_dim(g->a, s->shape.d[k]));
    r.ax[k] = arena_printf(g->a, "(%s / %lld)", t, (long long)step);
  }
  const char *v = kg_tmp(g, "v"), *ty = kg_compute_type(n->dtype);
  kg_line(g, "%s %s = 0;", ty, v);
  kg_line(g, "if (%s) {", cond.data);
  sb_free(&cond);
  g->indent++;
  kg_line(g, "%s = %s;", v, kg_value(g, s, r));
  g->indent--;
  kg_line(g, "}");
  return v;
}

static const char *concat(KGen *g, const Node *n, KIndex i) {
  KIndex m = kg_split(g, &n->shape, i);
  int axis = n->attr.axis;
  const char *v = kg_tmp(g, "v"), *ty = kg_compute_type(n->dtype);
  kg_line(g, "%s %s;", ty, v);
  int64_t base = 0;
  for (int k = 0; k < n->nsrc; k++) {
    const Node *s = n->src[k];
    int64_t end = base + s->shape.d[axis].n;
    if (k == 0) kg_line(g, "if (%s < %lld) {", m.ax[axis], (long long)end);
    else if (k < n->nsrc - 1) kg_line(g, "} else if (%s < %lld) {", m.ax[axis], (long long)end);
    else kg_line(g, "} else {");
    KIndex r = m;
    r.ax[axis] = base ? arena_printf(g->a, "(%s - %lld)", m.ax[axis], (long long)base) : m.ax[axis];
    g->indent++;
    kg_line(g, "%s = %s;", v, kg_value(g, s, r));
    g->indent--;
    base = end;
  }
  kg_line(g, "}");
  return v;
}

static const char *random_value(KGen *g, const Node *n, KIndex i) {
  const char *pos = kg_flat(g, &n->shape, i);
  const char *u = arena_printf(g->a, "irepa_uniform(seed, %dull, (unsigned long long)%s)", n->attr.stream, pos);
  if (n->op == OP_UNIFORM) return define(g, n, arena_printf(g->a, "(%s)%s", kg_compute_type(n->dtype), u));
  if (n->op == OP_NORMAL)
    return define(g, n, arena_printf(g->a, "(%s)irepa_normal(seed, %dull, (unsigned long long)%s)",
                                     kg_compute_type(n->dtype), n->attr.stream, pos));
  return define(g, n, arena_printf(g->a, "(double)(%s < %.17g)", u, n->attr.value));
}

static bool same_str(const char *x, const char *y) { return x == y || (x && y && !strcmp(x, y)); }

static bool same_index(const KIndex *x, const KIndex *y) {
  if (x->flat != y->flat || !same_str(x->pos, y->pos) || x->of != y->of) return false;
  for (int k = 0; k < IR_MAX_RANK; k++)
    if (!same_str(x->ax[k], y->ax[k])) return false;
  return true;
}

static const char *bound_value(const KGen *g, const Node *n, const KIndex *i) {
  for (int k = 0; k < g->nbound; k++)
    if (g->bound[k] == n) return same_index(&g->bound_at, i) ? g->bound_v[k] : NULL;
  return NULL;
}

const char *kg_value(KGen *g, const Node *n, KIndex i) {
  const char *b = bound_value(g, n, &i);
  if (b) return b;
  if (n->op == OP_CONST && !in_kernel(g, n)) return literal(g, n->attr.value, n->dtype);
  if (!in_kernel(g, n)) return load(g, n, i);
  int f = op_flags[n->op];
  if (n->op == OP_CONST) return define(g, n, literal(g, n->attr.value, n->dtype));
  if (n->op == OP_ARANGE)
    return define(g, n, arena_printf(g->a, "(%s)%s", kg_compute_type(n->dtype), kg_split(g, &n->shape, i).ax[0]));
  if (f & OPF_RANDOM) return random_value(g, n, i);
  if (f & OPF_ELEMENTWISE) return elementwise(g, n, i);
  if (n->op == OP_PAD) return pad(g, n, i);
  if (n->op == OP_CONCAT) return concat(g, n, i);
  if (f & OPF_MOVEMENT) return movement(g, n, i);
  diag_error(g->d, n->loc, "internal: %s cannot be part of a fused kernel", op_name(n->op));
  g->failed = true;
  return "0";
}

void kg_store(KGen *g, const Node *x, const char *pos, const char *v) {
  const char *arg = kg_arg(g->a, g->K, x);
  switch (x->dtype) {
  case DT_F16: kg_line(g, "%s[%s] = irepa_f2h(%s);", arg, pos, v); break;
  case DT_BF16: kg_line(g, "%s[%s] = irepa_f2bf(%s);", arg, pos, v); break;
  case DT_BOOL: kg_line(g, "%s[%s] = (unsigned char)(%s != 0);", arg, pos, v); break;
  case DT_U8: kg_line(g, "%s[%s] = (unsigned char)(long long)%s;", arg, pos, v); break;
  default: kg_line(g, "%s[%s] = (%s)%s;", arg, pos, kg_storage_type(x->dtype), v);
  }
}

static bool is_output(const Kernel *K, const Node *x) {
  for (int i = 0; i < K->noutputs; i++)
    if (K->outputs[i] == x) return true;
  return false;
}

bool kg_in_place(const KGen *g, const Node *x) {
  const Kernel *K = g->K;
  const Node *leaf = ir_update_target(g->graph, x);
  for (int i = 0; i < K->ninputs; i++)
    if (K->inputs[i] == leaf) return true;
  for (int i = 0; i < K->noutputs; i++)
    if (ir_update_target(g->graph, K->outputs[i]) == x) return true;
  return false;
}

void kg_pointwise_body(KGen *g, KIndex at, const char *pos) {
  const Kernel *K = g->K;
  g->nbound = 0;
  g->bound_at = at;
  for (int i = 0; i < K->nnodes; i++) {
    const Node *x = K->nodes[i];
    if (!is_output(K, x)) continue;
    const char *v = kg_value(g, x, at);
    kg_store(g, x, pos, v);
    if (g->nbound < KG_MAX_BOUND) g->bound[g->nbound] = x, g->bound_v[g->nbound++] = v;
  }
  g->nbound = 0;
}

bool kg_check_float(KGen *g, const Node *n, const char *backend) {
  for (int i = 0; i < n->nsrc; i++) {
    bool index = (n->op == OP_GATHER || n->op == OP_SCATTER_ADD) && i == 1;
    if (!index && n->src[i]->dtype != DT_F32) {
      diag_error(g->d, n->loc, "the %s backend computes %s in f32 only, not %s", backend, op_name(n->op),
                 dtype_name(n->src[i]->dtype));
      g->failed = true;
      return false;
    }
  }
  return true;
}
