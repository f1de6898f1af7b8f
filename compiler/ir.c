/* ir.c: graph IR nodes and the shape rule of every op. Each builder checks
 * its operands and either appends a node to the graph or reports, at the
 * source location that asked for it, the op, the operand types and why. */
#include "ir.h"

#include <stdarg.h>
#include <string.h>

/* Lower-case spellings for dumps and messages, derived from ops.def. */
static const char *const op_upper[OP_COUNT] = {
#define OP(name, arity, flags, doc) [OP_##name] = #name,
#include "ops.def"
#undef OP
};

const char *op_name(OpKind op) {
  static char lower[OP_COUNT][32];
  /* Only letters are lowered: '_' | 0x20 would be DEL. */
  if (!lower[op][0])
    for (size_t i = 0; op_upper[op][i] && i < sizeof lower[op] - 1; i++) {
      char c = op_upper[op][i];
      lower[op][i] = c >= 'A' && c <= 'Z' ? (char)(c | 0x20) : c;
    }
  return lower[op];
}

const int op_flags[OP_COUNT] = {
#define OP(name, arity, flags, doc) [OP_##name] = (flags),
#include "ops.def"
#undef OP
};

const int op_arity[OP_COUNT] = {
#define OP(name, arity, flags, doc) [OP_##name] = (arity),
#include "ops.def"
#undef OP
};

static const struct {
  const char *name;
  int size;
  bool is_float;
} dtypes[DT_COUNT] = {
    [DT_F32] = {"f32", 4, true}, [DT_F16] = {"f16", 2, true},
    [DT_BF16] = {"bf16", 2, true}, [DT_F64] = {"f64", 8, true},
    [DT_I32] = {"i32", 4, false}, [DT_I64] = {"i64", 8, false},
    [DT_U8] = {"u8", 1, false}, [DT_BOOL] = {"bool", 1, false},
};

const char *dtype_name(DType t) { return dtypes[t].name; }
bool dtype_is_float(DType t) { return dtypes[t].is_float; }
int dtype_size(DType t) { return dtypes[t].size; }

bool dtype_from_name(const char *s, DType *out) {
  for (int i = 0; i < DT_COUNT; i++)
    if (!strcmp(s, dtypes[i].name)) {
      *out = (DType)i;
      return true;
    }
  return false;
}

/* ---- shapes ----------------------------------------------------------- */

Shape shape_make(int rank, const int64_t *dims) {
  Shape s = {0};
  s.rank = rank;
  for (int i = 0; i < rank; i++) s.d[i] = (Dim){dims[i], false};
  return s;
}

bool dim_eq(Dim a, Dim b) { return a.n == b.n && a.sym == b.sym; }

static bool dim_is_one(Dim a) { return a.n == 1 && !a.sym; }

bool shape_eq(const Shape *a, const Shape *b) {
  if (a->rank != b->rank) return false;
  for (int i = 0; i < a->rank; i++)
    if (!dim_eq(a->d[i], b->d[i])) return false;
  return true;
}

bool shape_numel(const Shape *s, Dim *out) {
  Dim r = {1, false};
  for (int i = 0; i < s->rank; i++) {
    if (mul_overflows(r.n, s->d[i].n, &r.n)) return false;
    if (s->d[i].sym) {
      if (r.sym) return false;
      r.sym = true;
    }
  }
  *out = r;
  return true;
}

void ir_format_dim(StrBuf *sb, Dim d, const char *sym) {
  if (!d.sym) sb_printf(sb, "%lld", (long long)d.n);
  else if (d.n == 1) sb_puts(sb, sym ? sym : "B");
  else sb_printf(sb, "%s*%lld", sym ? sym : "B", (long long)d.n);
}

const char *ir_type_str(Arena *a, DType t, const Shape *s, const char *sym) {
  StrBuf sb;
  sb_init(&sb);
  sb_printf(&sb, "%s[", dtype_name(t));
  for (int i = 0; i < s->rank; i++) {
    if (i) sb_putc(&sb, ',');
    ir_format_dim(&sb, s->d[i], sym);
  }
  sb_putc(&sb, ']');
  const char *r = arena_strdup(a, sb.data ? sb.data : "?");
  sb_free(&sb);
  return r;
}

/* ---- nodes ------------------------------------------------------------ */

Graph *ir_new_graph(Arena *a, const char *name, SrcLoc loc) {
  Graph *g = arena_alloc(a, sizeof *g);
  if (g) {
    g->name = name;
    g->loc = loc;
  }
  return g;
}

static const char *ty(IrBuilder *b, const Node *n) {
  return ir_type_str(b->arena, n->dtype, &n->shape, b->g->sym_name);
}

static Node *fail(IrBuilder *b, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static Node *fail(IrBuilder *b, SrcLoc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_vadd(b->diags, DIAG_ERROR, loc, fmt, ap);
  va_end(ap);
  return NULL;
}

enum { GRAPH_MAX_NODES = 4 << 20 };

static Node *new_node(IrBuilder *b, OpKind op, DType t, const Shape *s,
                      Node **src, int nsrc, SrcLoc loc) {
  Graph *g = b->g;
  Dim numel;
  int nsym = 0;
  for (int i = 0; i < s->rank; i++) nsym += s->d[i].sym;
  if (nsym > 1) /* shape_numel fails on it too, but it is no size problem */
    return fail(b, loc, "%s: result %s has the batch dimension in %d axes; at most one may have it",
                op_name(op), ir_type_str(b->arena, t, s, g->sym_name), nsym);
  if (!shape_numel(s, &numel) || numel.n > ((int64_t)1 << 48))
    return fail(b, loc, "%s: result %s has too many elements",
                op_name(op), ir_type_str(b->arena, t, s, g->sym_name));
  if (g->n >= GRAPH_MAX_NODES)
    return fail(b, loc, "graph has more than %d nodes", GRAPH_MAX_NODES);
  if (g->n == g->cap) {
    int cap = g->cap ? g->cap * 2 : 64;
    Node **nodes = arena_grow(b->arena, g->nodes, (size_t)g->cap, (size_t)cap,
                              sizeof *nodes);
    if (!nodes) return fail(b, loc, "out of memory");
    g->nodes = nodes;
    g->cap = cap;
  }
  Node *n = arena_alloc(b->arena, sizeof *n);
  Node **srcs = nsrc ? arena_alloc(b->arena, sizeof *srcs * (size_t)nsrc) : NULL;
  if (!n || (nsrc && !srcs)) return fail(b, loc, "out of memory");
  if (nsrc) memcpy(srcs, src, sizeof *srcs * (size_t)nsrc);
  n->id = g->n;
  n->op = op;
  n->dtype = t;
  n->shape = *s;
  n->src = srcs;
  n->nsrc = nsrc;
  n->loc = loc;
  g->nodes[g->n++] = n;
  return n;
}

Node *ir_copy_node(IrBuilder *b, const Node *x, Node **src) {
  Node *n = new_node(b, x->op, x->dtype, &x->shape, src, x->nsrc, x->loc);
  if (n) n->attr = x->attr, n->name = x->name;
  return n;
}

Node *ir_input(IrBuilder *b, const char *name, DType t, Shape s, SrcLoc loc) {
  Node *n = new_node(b, OP_INPUT, t, &s, NULL, 0, loc);
  if (!n) return NULL;
  n->name = name;
  Graph *g = b->g;
  Node **inputs = arena_grow(b->arena, g->inputs, (size_t)g->ninputs,
                             (size_t)g->ninputs + 1, sizeof *inputs);
  if (!inputs) return fail(b, loc, "out of memory");
  n->attr.index = g->ninputs;
  inputs[g->ninputs++] = n;
  g->inputs = inputs;
  return n;
}

Node *ir_param(IrBuilder *b, int index, const ParamInfo *p, SrcLoc loc) {
  Node *n = new_node(b, OP_PARAM, p->dtype, &p->shape, NULL, 0, loc);
  if (n) {
    n->attr.index = index;
    n->name = p->name;
  }
  return n;
}

Node *ir_const(IrBuilder *b, double value, DType t, SrcLoc loc) {
  Shape s = {0};
  Node *n = new_node(b, OP_CONST, t, &s, NULL, 0, loc);
  if (n) n->attr.value = value;
  return n;
}

Node *ir_arange(IrBuilder *b, int64_t len, DType t, SrcLoc loc) {
  if (len <= 0) return fail(b, loc, "arange: length %lld must be positive", (long long)len);
  Shape s = shape_make(1, &len);
  return new_node(b, OP_ARANGE, t, &s, NULL, 0, loc);
}

Node *ir_random(IrBuilder *b, OpKind op, Shape s, double p, SrcLoc loc) {
  DType t = op == OP_BERNOULLI ? DT_BOOL : DT_F32;
  if (op == OP_BERNOULLI && !(p >= 0 && p <= 1))
    return fail(b, loc, "bernoulli: probability %g is not in [0, 1]", p);
  Node *n = new_node(b, op, t, &s, NULL, 0, loc);
  if (n) {
    n->attr.value = p;
    n->attr.stream = b->next_stream++;
  }
  return n;
}

static bool is_float_op(OpKind op) {
  return op == OP_EXP || op == OP_LOG || op == OP_SIN || op == OP_COS ||
         op == OP_TANH || op == OP_SQRT || op == OP_RSQRT;
}

Node *ir_unary(IrBuilder *b, OpKind op, Node *a, SrcLoc loc) {
  if (is_float_op(op) && !dtype_is_float(a->dtype))
    return fail(b, loc, "%s: needs a floating-point tensor, found %s",
                op_name(op), ty(b, a));
  if ((op == OP_NEG || op == OP_ABS) && a->dtype == DT_BOOL)
    return fail(b, loc, "%s: not defined on bool tensors", op_name(op));
  return new_node(b, op, a->dtype, &a->shape, &a, 1, loc);
}

Node *ir_cast(IrBuilder *b, Node *a, DType to, SrcLoc loc) {
  if (a->dtype == to) return a;
  return new_node(b, OP_CAST, to, &a->shape, &a, 1, loc);
}

/* numpy broadcasting of two shapes; false if some axis pair is neither
 * equal nor 1 (the axis is returned in *bad_axis, counted from the right). */
static bool broadcast(const Shape *x, const Shape *y, Shape *out, int *bad_axis) {
  int rank = x->rank > y->rank ? x->rank : y->rank;
  out->rank = rank;
  for (int i = 0; i < rank; i++) {
    Dim dx = i < x->rank ? x->d[x->rank - 1 - i] : (Dim){1, false};
    Dim dy = i < y->rank ? y->d[y->rank - 1 - i] : (Dim){1, false};
    Dim r;
    if (dim_eq(dx, dy) || dim_is_one(dy)) r = dx;
    else if (dim_is_one(dx)) r = dy;
    else {
      *bad_axis = i;
      return false;
    }
    out->d[rank - 1 - i] = r;
  }
  return true;
}

static bool is_compare(OpKind op) {
  return op == OP_LT || op == OP_LE || op == OP_EQ || op == OP_NE;
}

Node *ir_binary(IrBuilder *b, OpKind op, Node *x, Node *y, SrcLoc loc) {
  if (x->dtype != y->dtype)
    return fail(b, loc, "%s: dtypes differ: %s and %s", op_name(op), ty(b, x), ty(b, y));
  if (x->dtype == DT_BOOL && !(op == OP_EQ || op == OP_NE))
    return fail(b, loc, "%s: not defined on bool tensors (use where)", op_name(op));
  if (op == OP_POW && !dtype_is_float(x->dtype))
    return fail(b, loc, "pow: needs floating-point tensors, found %s", ty(b, x));
  Shape s;
  int bad;
  if (!broadcast(&x->shape, &y->shape, &s, &bad))
    return fail(b, loc, "%s: shapes %s and %s do not broadcast (axis %d from the right)",
                op_name(op), ty(b, x), ty(b, y), -1 - bad);
  Node *src[2] = {x, y};
  return new_node(b, op, is_compare(op) ? DT_BOOL : x->dtype, &s, src, 2, loc);
}

Node *ir_where(IrBuilder *b, Node *c, Node *x, Node *y, SrcLoc loc) {
  if (c->dtype != DT_BOOL)
    return fail(b, loc, "where: condition must be bool, found %s", ty(b, c));
  if (x->dtype != y->dtype)
    return fail(b, loc, "where: dtypes differ: %s and %s", ty(b, x), ty(b, y));
  Shape s1, s;
  int bad;
  if (!broadcast(&x->shape, &y->shape, &s1, &bad) ||
      !broadcast(&c->shape, &s1, &s, &bad))
    return fail(b, loc, "where: shapes %s, %s and %s do not broadcast", ty(b, c),
                ty(b, x), ty(b, y));
  Node *src[3] = {c, x, y};
  return new_node(b, OP_WHERE, x->dtype, &s, src, 3, loc);
}

Node *ir_reduce(IrBuilder *b, OpKind op, Node *a, uint32_t axes, bool keepdims,
                SrcLoc loc) {
  if (a->dtype == DT_BOOL)
    return fail(b, loc, "%s: not defined on bool tensors", op_name(op));
  if (op == OP_MEAN && !dtype_is_float(a->dtype))
    return fail(b, loc, "mean: needs a floating-point tensor, found %s", ty(b, a));
  if (axes >> a->shape.rank)
    return fail(b, loc, "%s: axis out of range for %s", op_name(op), ty(b, a));
  Shape s = {0};
  for (int i = 0; i < a->shape.rank; i++) {
    if (axes & (1u << i)) {
      if (keepdims) s.d[s.rank++] = (Dim){1, false};
    } else {
      s.d[s.rank++] = a->shape.d[i];
    }
  }
  Node *n = new_node(b, op, a->dtype, &s, &a, 1, loc);
  if (n) {
    n->attr.axes = axes;
    n->attr.keepdims = keepdims;
  }
  return n;
}

Node *ir_reshape(IrBuilder *b, Node *a, Shape s, SrcLoc loc) {
  Dim na = {0, false}, ns = {0, false};
  if (!shape_numel(&s, &ns))
    return fail(b, loc, "reshape: target shape overflows or uses the batch symbol twice");
  shape_numel(&a->shape, &na);
  if (!dim_eq(na, ns))
    return fail(b, loc, "reshape: cannot reshape %s to %s: element counts differ",
                ty(b, a), ir_type_str(b->arena, a->dtype, &s, b->g->sym_name));
  if (shape_eq(&a->shape, &s)) return a;
  return new_node(b, OP_RESHAPE, a->dtype, &s, &a, 1, loc);
}

Node *ir_permute(IrBuilder *b, Node *a, const int *perm, SrcLoc loc) {
  int rank = a->shape.rank;
  bool seen[IR_MAX_RANK] = {0};
  bool identity = true;
  Shape s = {0};
  s.rank = rank;
  for (int i = 0; i < rank; i++) {
    int p = perm[i];
    if (p < 0 || p >= rank || seen[p])
      return fail(b, loc, "permute: %d is not a valid or unique axis of %s", p, ty(b, a));
    seen[p] = true;
    s.d[i] = a->shape.d[p];
    identity &= p == i;
  }
  if (identity) return a;
  Node *n = new_node(b, OP_PERMUTE, a->dtype, &s, &a, 1, loc);
  if (n) memcpy(n->attr.perm, perm, sizeof(int) * (size_t)rank);
  return n;
}

/* start/stop/step per axis, already normalised to be non-negative and
 * within the axis by the caller; a symbolic axis can only be taken whole. */
Node *ir_slice(IrBuilder *b, Node *a, const int64_t *start, const int64_t *stop,
               const int64_t *step, SrcLoc loc) {
  Shape s = a->shape;
  bool identity = true;
  for (int i = 0; i < s.rank; i++) {
    Dim d = a->shape.d[i];
    if (step[i] <= 0)
      return fail(b, loc, "slice: step %lld on axis %d must be positive",
                  (long long)step[i], i);
    if (d.sym) {
      if (start[i] != 0 || step[i] != 1 || stop[i] != INT64_MAX)
        return fail(b, loc, "slice: the batch axis %d of %s can only be taken whole",
                    i, ty(b, a));
      continue;
    }
    int64_t lo = start[i], hi = stop[i] > d.n ? d.n : stop[i];
    if (lo < 0 || lo >= d.n || hi <= lo)
      return fail(b, loc, "slice: range %lld:%lld on axis %d of %s is empty or out of range",
                  (long long)start[i], (long long)stop[i], i, ty(b, a));
    s.d[i].n = (hi - lo - 1) / step[i] + 1; /* no overflow for a huge step */
    identity &= lo == 0 && step[i] == 1 && s.d[i].n == d.n;
  }
  if (identity) return a;
  Node *n = new_node(b, OP_SLICE, a->dtype, &s, &a, 1, loc);
  if (n) {
    memcpy(n->attr.start, start, sizeof(int64_t) * (size_t)s.rank);
    memcpy(n->attr.step, step, sizeof(int64_t) * (size_t)s.rank);
  }
  return n;
}

Node *ir_concat(IrBuilder *b, Node **xs, int n, int axis, SrcLoc loc) {
  if (n < 1) return fail(b, loc, "concat: needs at least one tensor");
  Shape s = xs[0]->shape;
  if (axis < 0 || axis >= s.rank)
    return fail(b, loc, "concat: axis %d out of range for %s", axis, ty(b, xs[0]));
  for (int i = 1; i < n; i++) {
    const Shape *t = &xs[i]->shape;
    if (xs[i]->dtype != xs[0]->dtype || t->rank != s.rank)
      return fail(b, loc, "concat: %s and %s differ in dtype or rank", ty(b, xs[0]), ty(b, xs[i]));
    for (int k = 0; k < s.rank; k++) {
      if (k == axis) continue;
      if (!dim_eq(t->d[k], s.d[k]))
        return fail(b, loc, "concat: %s and %s differ on axis %d", ty(b, xs[0]), ty(b, xs[i]), k);
    }
    if (t->d[axis].sym || s.d[axis].sym)
      return fail(b, loc, "concat: cannot join along the batch axis");
    if (add_overflows(s.d[axis].n, t->d[axis].n, &s.d[axis].n))
      return fail(b, loc, "concat: result too large");
  }
  if (n == 1) return xs[0];
  Node *r = new_node(b, OP_CONCAT, xs[0]->dtype, &s, xs, n, loc);
  if (r) r->attr.axis = axis;
  return r;
}

Node *ir_expand(IrBuilder *b, Node *a, Shape s, SrcLoc loc) {
  const Shape *x = &a->shape;
  if (s.rank < x->rank)
    return fail(b, loc, "expand: cannot expand %s to fewer axes", ty(b, a));
  for (int i = 0; i < s.rank; i++)
    if (s.d[i].n <= 0)
      return fail(b, loc, "expand: dimension %d of %s must be positive", i,
                  ir_type_str(b->arena, a->dtype, &s, b->g->sym_name));
  for (int i = 0; i < x->rank; i++) {
    Dim from = x->d[x->rank - 1 - i], to = s.d[s.rank - 1 - i];
    if (!dim_eq(from, to) && !dim_is_one(from))
      return fail(b, loc, "expand: cannot expand %s to %s", ty(b, a),
                  ir_type_str(b->arena, a->dtype, &s, b->g->sym_name));
  }
  if (shape_eq(x, &s)) return a;
  return new_node(b, OP_EXPAND, a->dtype, &s, &a, 1, loc);
}

Node *ir_matmul(IrBuilder *b, Node *x, Node *y, SrcLoc loc) {
  const Shape *sx = &x->shape, *sy = &y->shape;
  if (sx->rank < 2 || sy->rank < 2)
    return fail(b, loc, "matmul: %s @ %s: operands need at least two axes", ty(b, x), ty(b, y));
  if (x->dtype != y->dtype || !dtype_is_float(x->dtype))
    return fail(b, loc, "matmul: %s @ %s: needs two floating-point tensors of one dtype",
                ty(b, x), ty(b, y));
  Dim k1 = sx->d[sx->rank - 1], k2 = sy->d[sy->rank - 2];
  if (!dim_eq(k1, k2)) {
    StrBuf sb;
    sb_init(&sb);
    ir_format_dim(&sb, k1, b->g->sym_name);
    sb_puts(&sb, " and ");
    ir_format_dim(&sb, k2, b->g->sym_name);
    fail(b, loc, "matmul: %s @ %s: inner dimensions %s differ", ty(b, x), ty(b, y),
         sb.data ? sb.data : "");
    sb_free(&sb);
    return NULL;
  }
  Shape bx = *sx, by = *sy, s;
  bx.rank -= 2;
  by.rank -= 2;
  int bad;
  if (!broadcast(&bx, &by, &s, &bad))
    return fail(b, loc, "matmul: %s @ %s: batch axes do not broadcast", ty(b, x), ty(b, y));
  s.d[s.rank++] = sx->d[sx->rank - 2];
  s.d[s.rank++] = sy->d[sy->rank - 1];
  Node *src[2] = {x, y};
  return new_node(b, OP_MATMUL, x->dtype, &s, src, 2, loc);
}

/* A CONV2D-family node of shape s with its stride and padding. */
static Node *conv_node(IrBuilder *b, OpKind op, Node *x, Node *y, const int stride[2],
                       const int pad[2], Shape s, SrcLoc loc) {
  Node *src[2] = {x, y};
  Node *n = new_node(b, op, x->dtype, &s, src, 2, loc);
  if (n) {
    memcpy(n->attr.stride, stride, sizeof n->attr.stride);
    memcpy(n->attr.pad, pad, sizeof n->attr.pad);
  }
  return n;
}

Node *ir_conv2d(IrBuilder *b, Node *x, Node *w, const int stride[2],
                const int pad[2], SrcLoc loc) {
  const Shape *sx = &x->shape, *sw = &w->shape;
  if (sx->rank != 4 || sw->rank != 4)
    return fail(b, loc, "conv2d: input %s and weight %s must both have 4 axes", ty(b, x), ty(b, w));
  if (x->dtype != w->dtype || !dtype_is_float(x->dtype))
    return fail(b, loc, "conv2d: %s and %s: needs floating-point tensors of one dtype",
                ty(b, x), ty(b, w));
  if (!dim_eq(sx->d[1], sw->d[1]))
    return fail(b, loc, "conv2d: input %s has %lld channels but weight %s expects %lld",
                ty(b, x), (long long)sx->d[1].n, ty(b, w), (long long)sw->d[1].n);
  if (sx->d[1].sym || sx->d[2].sym || sx->d[3].sym || sw->d[0].sym)
    return fail(b, loc, "conv2d: only the batch axis of the input may be symbolic");
  Shape s = {4, {sx->d[0], sw->d[0]}};
  for (int i = 0; i < 2; i++) {
    if (stride[i] < 1 || pad[i] < 0)
      return fail(b, loc, "conv2d: stride must be >= 1 and padding >= 0");
    int64_t span = sx->d[2 + i].n + 2 * (int64_t)pad[i] - sw->d[2 + i].n;
    if (span < 0)
      return fail(b, loc, "conv2d: kernel %s larger than padded input %s", ty(b, w), ty(b, x));
    s.d[2 + i] = (Dim){span / stride[i] + 1, false};
  }
  return conv_node(b, OP_CONV2D, x, w, stride, pad, s, loc);
}

Node *ir_gather(IrBuilder *b, Node *table, Node *idx, SrcLoc loc) {
  if (table->shape.rank != 2)
    return fail(b, loc, "gather: table %s must have 2 axes [rows, dim]", ty(b, table));
  if (idx->dtype != DT_I32 && idx->dtype != DT_I64)
    return fail(b, loc, "gather: indices must be i32 or i64, found %s", ty(b, idx));
  if (idx->shape.rank + 1 > IR_MAX_RANK)
    return fail(b, loc, "gather: result would have more than %d axes", IR_MAX_RANK);
  Shape s = idx->shape;
  s.d[s.rank++] = table->shape.d[1];
  Node *src[2] = {table, idx};
  return new_node(b, OP_GATHER, table->dtype, &s, src, 2, loc);
}

Node *ir_attention(IrBuilder *b, Node *q, Node *k, Node *v, double scale, SrcLoc loc) {
  const Shape *sq = &q->shape, *sk = &k->shape, *sv = &v->shape;
  if (sq->rank < 2 || sk->rank != sq->rank || sv->rank != sq->rank)
    return fail(b, loc, "attention: q %s, k %s, v %s must have one rank >= 2",
                ty(b, q), ty(b, k), ty(b, v));
  if (q->dtype != k->dtype || q->dtype != v->dtype || !dtype_is_float(q->dtype))
    return fail(b, loc, "attention: q, k, v must share one floating-point dtype");
  int r = sq->rank;
  for (int i = 0; i < r - 2; i++)
    if (!dim_eq(sq->d[i], sk->d[i]) || !dim_eq(sq->d[i], sv->d[i]))
      return fail(b, loc, "attention: batch axes of q %s, k %s, v %s differ",
                  ty(b, q), ty(b, k), ty(b, v));
  if (!dim_eq(sq->d[r - 1], sk->d[r - 1]))
    return fail(b, loc, "attention: q %s and k %s differ in head dimension", ty(b, q), ty(b, k));
  if (!dim_eq(sk->d[r - 2], sv->d[r - 2]))
    return fail(b, loc, "attention: k %s and v %s differ in sequence length", ty(b, k), ty(b, v));
  Shape s = *sq;
  s.d[r - 1] = sv->d[r - 1];
  Node *src[3] = {q, k, v};
  Node *n = new_node(b, OP_ATTENTION, q->dtype, &s, src, 3, loc);
  if (n) n->attr.value = scale;
  return n;
}

/* ---- backward ops ----------------------------------------------------- */

Node *ir_pad(IrBuilder *b, Node *a, Shape to, const int64_t *start, const int64_t *step,
             SrcLoc loc) {
  if (to.rank != a->shape.rank) return fail(b, loc, "pad: rank changes");
  Node *n = new_node(b, OP_PAD, a->dtype, &to, &a, 1, loc);
  if (n) {
    memcpy(n->attr.start, start, sizeof(int64_t) * (size_t)to.rank);
    memcpy(n->attr.step, step, sizeof(int64_t) * (size_t)to.rank);
  }
  return n;
}

Node *ir_conv2d_bwd_input(IrBuilder *b, Node *g, Node *w, const int stride[2], const int pad[2],
                          Shape input, SrcLoc loc) {
  return conv_node(b, OP_CONV2D_BWD_INPUT, g, w, stride, pad, input, loc);
}

Node *ir_conv2d_bwd_weight(IrBuilder *b, Node *x, Node *g, const int stride[2], const int pad[2],
                           Shape weight, SrcLoc loc) {
  return conv_node(b, OP_CONV2D_BWD_WEIGHT, x, g, stride, pad, weight, loc);
}

Node *ir_scatter_add(IrBuilder *b, Node *g, Node *idx, Shape table, SrcLoc loc) {
  Node *src[2] = {g, idx};
  return new_node(b, OP_SCATTER_ADD, g->dtype, &table, src, 2, loc);
}

Node *ir_attention_bwd(IrBuilder *b, Node *q, Node *k, Node *v, Node *g, int which, double scale,
                       SrcLoc loc) {
  Node *src[4] = {q, k, v, g};
  Node *n = new_node(b, OP_ATTENTION_BWD, q->dtype, &src[which]->shape, src, 4, loc);
  if (n) {
    n->attr.index = which;
    n->attr.value = scale;
  }
  return n;
}

/* ---- passes ----------------------------------------------------------- */

bool ir_add_output(Arena *a, Graph *g, Node *n, const char *name) {
  size_t n0 = (size_t)g->noutputs;
  Node **outs = arena_grow(a, g->outputs, n0, n0 + 1, sizeof *outs);
  const char **names = arena_grow(a, g->output_names, n0, n0 + 1, sizeof *names);
  Node **updates = arena_grow(a, g->updates, n0, n0 + 1, sizeof *updates);
  if (!outs || !names || !updates) return false;
  outs[n0] = n;
  names[n0] = name;
  updates[n0] = NULL;
  g->outputs = outs;
  g->output_names = names;
  g->updates = updates;
  g->noutputs++;
  return true;
}

bool ir_add_update(Arena *a, DiagList *d, Graph *g, Node *n, Node *target) {
  if (target->op != OP_INPUT && target->op != OP_PARAM) {
    diag_error(d, n->loc, "internal: an update must replace an input or a parameter, not %s", op_name(target->op));
    return false;
  }
  if (n->dtype != target->dtype || !shape_eq(&n->shape, &target->shape)) {
    diag_error(d, n->loc, "internal: the update of '%s' has type %s, not %s", target->name,
               ir_type_str(a, n->dtype, &n->shape, g->sym_name),
               ir_type_str(a, target->dtype, &target->shape, g->sym_name));
    return false;
  }
  for (int i = 0; i < g->noutputs; i++)
    if (g->updates[i] == target) {
      diag_error(d, n->loc, "internal: '%s' is updated twice", target->name);
      return false;
    }
  if (!ir_add_output(a, g, n, target->name)) return false;
  g->updates[g->noutputs - 1] = target;
  return true;
}

const Node *ir_update_target(const Graph *g, const Node *x) {
  for (int i = 0; g && g->updates && i < g->noutputs; i++)
    if (g->outputs[i] == x && g->updates[i]) return g->updates[i];
  return NULL;
}

Graph *ir_clone_graph(Arena *a, const Graph *g, const char *name) {
  Graph *c = ir_new_graph(a, name, g->loc);
  Node **map = arena_alloc(a, sizeof(Node *) * ((size_t)g->n + 1));
  if (!c || !map) return NULL;
  c->sym_name = g->sym_name;
  c->nodes = arena_alloc(a, sizeof(Node *) * ((size_t)g->n + 1));
  c->inputs = arena_alloc(a, sizeof(Node *) * ((size_t)g->ninputs + 1));
  if (!c->nodes || !c->inputs) return NULL;
  c->n = c->cap = g->n;
  for (int i = 0; i < g->n; i++) {
    const Node *x = g->nodes[i];
    Node *y = arena_alloc(a, sizeof *y);
    if (!y) return NULL;
    *y = *x;
    y->src = x->nsrc ? arena_alloc(a, sizeof(Node *) * (size_t)x->nsrc) : NULL;
    if (x->nsrc && !y->src) return NULL;
    for (int k = 0; k < x->nsrc; k++) y->src[k] = map[x->src[k]->id];
    map[i] = c->nodes[i] = y;
  }
  c->ninputs = g->ninputs;
  for (int i = 0; i < g->ninputs; i++) c->inputs[i] = map[g->inputs[i]->id];
  for (int i = 0; i < g->noutputs; i++) {
    if (!ir_add_output(a, c, map[g->outputs[i]->id], g->output_names[i])) return NULL;
    c->updates[i] = g->updates && g->updates[i] ? map[g->updates[i]->id] : NULL;
  }
  return c;
}

bool ir_prune(Arena *a, Graph *g) {
  bool *live = arena_alloc(a, (size_t)g->n + 1);
  if (!live) return false;
  for (int i = 0; i < g->noutputs; i++) live[g->outputs[i]->id] = true;
  for (int i = 0; i < g->ninputs; i++) live[g->inputs[i]->id] = true;
  for (int i = g->n - 1; i >= 0; i--)
    if (live[i])
      for (int k = 0; k < g->nodes[i]->nsrc; k++) live[g->nodes[i]->src[k]->id] = true;
  int m = 0;
  for (int i = 0; i < g->n; i++)
    if (live[i]) {
      g->nodes[m] = g->nodes[i];
      g->nodes[m]->id = m;
      m++;
    }
  g->n = m;
  return true;
}

bool ir_verify(DiagList *d, const Graph *g) {
  for (int i = 0; i < g->n; i++) {
    const Node *n = g->nodes[i];
    if (n->id != i) {
      diag_error(d, n->loc, "internal: node %%%d stored at %d", n->id, i);
      return false;
    }
    if (op_arity[n->op] >= 0 && n->nsrc != op_arity[n->op]) {
      diag_error(d, n->loc, "internal: %s has %d operands", op_name(n->op), n->nsrc);
      return false;
    }
    for (int k = 0; k < n->nsrc; k++)
      if (!n->src[k] || n->src[k]->id >= i || g->nodes[n->src[k]->id] != n->src[k]) {
        diag_error(d, n->loc, "internal: operand %d of %%%d is not an earlier node", k, i);
        return false;
      }
  }
  return true;
}
