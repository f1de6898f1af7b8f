/* builtins.c: the built-in functions of .irg. Compile-time helpers (range,
 * len, assert, ...) compute values; tensor functions are thin wrappers
 * that check arguments and call one ir_* builder each. Composite layers
 * are not here: they are written in the .irg files of models/. */
#include <math.h>
#include <string.h>

#include "elab_internal.h"

static Value *fail(Elab *E, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static Value *fail(Elab *E, SrcLoc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_vadd(E->diags, DIAG_ERROR, loc, fmt, ap);
  va_end(ap);
  return NULL;
}

bool bind_builtin_args(Elab *E, const Builtin *b, CallArgs *args, Value **out, SrcLoc loc) {
  int np = 0;
  while (np < 6 && b->params[np]) np++;
  for (int i = 0; i < 6; i++) out[i] = NULL;
  if (args->npos > np) {
    fail(E, args->pos_locs[np], "%s takes at most %d argument%s but %d were given", b->name, np, np == 1 ? "" : "s", args->npos);
    return false;
  }
  for (int i = 0; i < args->npos; i++) out[i] = args->pos[i];
  for (int k = 0; k < args->nkw; k++) {
    int idx = -1;
    for (int i = 0; i < np; i++)
      if (!strcmp(b->params[i], args->kw_names[k])) idx = i;
    if (idx < 0) {
      fail(E, args->kw_locs[k], "%s has no parameter named '%s'", b->name, args->kw_names[k]);
      return false;
    }
    if (out[idx]) {
      fail(E, args->kw_locs[k], "%s: argument '%s' given twice", b->name, b->params[idx]);
      return false;
    }
    out[idx] = args->kw[k];
  }
  for (int i = 0; i < b->nrequired; i++)
    if (!out[i]) {
      fail(E, loc, "%s: missing argument '%s'", b->name, b->params[i]);
      return false;
    }
  return true;
}

#define ARGS(n)                                          \
  Value *a[6];                                           \
  if (!bind_builtin_args(E, b, args, a, loc)) return NULL; \
  (void)(n)

static Value *new_seq(Elab *E, ValueKind k, int cap) {
  Value *v = new_value(E, k);
  if (v && !(v->items = arena_alloc(E->arena, sizeof(Value *) * (size_t)(cap + 1)))) return NULL;
  return v;
}

static bool is_tensorish(const Value *v) { return v->kind == V_TENSOR || v->kind == V_PARAM; }

static Node *tensor_arg(Elab *E, Value *v, SrcLoc loc, const char *fn) {
  if (!is_tensorish(v)) {
    fail(E, loc, "%s: expected a tensor, found %s", fn, value_str(E, v));
    return NULL;
  }
  return as_tensor(E, v, DT_F32, false, loc);
}

static bool axis_arg(Elab *E, Value *v, int rank, int *axis, SrcLoc loc, const char *fn) {
  int64_t k;
  if (!as_int(E, v, &k, loc, "axis")) return false;
  if (k < -rank || k >= rank) {
    fail(E, loc, "%s: axis %lld out of range for a tensor of %d axes", fn, (long long)k, rank);
    return false;
  }
  *axis = (int)(k < 0 ? k + rank : k);
  return true;
}

/* ---- compile-time ----------------------------------------------------- */

static Value *bi_range(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(3);
  int64_t lo = 0, hi, step = 1;
  if (!as_int(E, a[0], &hi, loc, "range bound")) return NULL;
  if (a[1]) {
    lo = hi;
    if (!as_int(E, a[1], &hi, loc, "range bound")) return NULL;
  }
  if (a[2] && !as_int(E, a[2], &step, loc, "range step")) return NULL;
  if (step == 0) return fail(E, loc, "range step must not be zero");
  __int128 count = step > 0 ? ((__int128)hi - lo + step - 1) / step : ((__int128)lo - hi - step - 1) / -step;
  if (count < 0) count = 0;
  if (count > ELAB_MAX_UNROLL)
    return fail(E, loc, "range has %lld elements; compile-time loops are limited to %d",
                (long long)count, ELAB_MAX_UNROLL);
  if (!charge(E, (int64_t)count, loc)) return NULL;
  Value *v = new_seq(E, V_LIST, (int)count);
  if (!v) return NULL;
  for (int64_t i = 0; i < (int64_t)count; i++)
    if (!(v->items[v->n++] = int_value(E, lo + i * step))) return NULL;
  return v;
}

static Value *bi_len(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(1);
  if (a[0]->kind == V_LIST || a[0]->kind == V_TUPLE) return int_value(E, a[0]->n);
  if (a[0]->kind == V_STR) return int_value(E, (int64_t)strlen(a[0]->s));
  return fail(E, loc, "len: expected a list, tuple or str, found %s", kind_name(a[0]->kind));
}

static Value *bi_int(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(1);
  if (a[0]->kind == V_INT) return a[0];
  if (a[0]->kind == V_FLOAT) {
    if (!(fabs(a[0]->f) < 9.2e18)) return fail(E, loc, "int: %g does not fit in 64 bits", a[0]->f);
    return int_value(E, (int64_t)a[0]->f);
  }
  return fail(E, loc, "int: expected a number, found %s", value_str(E, a[0]));
}

static Value *bi_float(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(1);
  double f;
  return as_float(E, a[0], &f, loc, "float argument") ? float_value(E, f) : NULL;
}

static Value *bi_str(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(1);
  Value *v = new_value(E, V_STR);
  if (v && !(v->s = a[0]->kind == V_STR ? a[0]->s : value_str(E, a[0])))
    return fail(E, loc, "out of memory during elaboration");
  return v;
}

static Value *minmax(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc, bool is_max) {
  ARGS(2);
  if (is_tensorish(a[0]) || is_tensorish(a[1]))
    return fail(E, loc, "%s works on numbers; use %s for tensors", b->name, is_max ? "maximum" : "minimum");
  if (a[0]->kind == V_INT && a[1]->kind == V_INT)
    return (a[0]->i > a[1]->i) == is_max ? a[0] : a[1];
  double x, y;
  if (!as_float(E, a[0], &x, loc, "argument") || !as_float(E, a[1], &y, loc, "argument")) return NULL;
  return (x > y) == is_max ? a[0] : a[1];
}

static Value *bi_min(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) { return minmax(E, b, args, loc, false); }
static Value *bi_max(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) { return minmax(E, b, args, loc, true); }

static Value *bi_isqrt(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(1);
  int64_t n;
  if (!as_int(E, a[0], &n, loc, "isqrt argument")) return NULL;
  if (n < 0) return fail(E, loc, "isqrt of negative %lld", (long long)n);
  int64_t r = (int64_t)sqrt((double)n);
  /* Compare by division: r * r overflows near INT64_MAX. */
  while (r > 0 && r > n / r) r--;
  while (r + 1 <= n / (r + 1)) r++;
  return int_value(E, r);
}

static Value *bi_assert(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(2);
  bool ok;
  if (!as_bool(E, a[0], &ok, loc, "assert condition")) return NULL;
  if (ok) return E->none;
  if (a[1] && a[1]->kind == V_STR) return fail(E, loc, "assertion failed: %s", a[1]->s);
  return fail(E, loc, "assertion failed");
}

/* ---- elementwise math ------------------------------------------------- */

static Value *math1(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc, OpKind op, double (*f)(double)) {
  ARGS(1);
  if (a[0]->kind == V_INT || a[0]->kind == V_FLOAT) {
    double x;
    as_float(E, a[0], &x, loc, "argument");
    if (op == OP_ABS && a[0]->kind == V_INT) return int_value(E, a[0]->i < 0 ? -a[0]->i : a[0]->i);
    return float_value(E, f(x));
  }
  Node *x = tensor_arg(E, a[0], loc, b->name);
  return x ? tensor_value(E, ir_unary(&E->ir, op, x, loc)) : NULL;
}

static double rsqrt_d(double x) { return 1.0 / sqrt(x); }

#define MATH1(fn, op, cf) \
  static Value *bi_##fn(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) { return math1(E, b, args, loc, op, cf); }
MATH1(exp, OP_EXP, exp)
MATH1(log, OP_LOG, log)
MATH1(sin, OP_SIN, sin)
MATH1(cos, OP_COS, cos)
MATH1(tanh, OP_TANH, tanh)
MATH1(sqrt, OP_SQRT, sqrt)
MATH1(rsqrt, OP_RSQRT, rsqrt_d)
MATH1(abs, OP_ABS, fabs)

static Value *elementwise2(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc, OpKind op) {
  ARGS(2);
  if (!is_tensorish(a[0]) && !is_tensorish(a[1]))
    return fail(E, loc, "%s: expects at least one tensor (use min/max for numbers)", b->name);
  DType like = is_tensorish(a[0]) ? (a[0]->kind == V_TENSOR ? a[0]->node->dtype : a[0]->param->info.dtype)
                                  : (a[1]->kind == V_TENSOR ? a[1]->node->dtype : a[1]->param->info.dtype);
  Node *x = as_tensor(E, a[0], like, true, loc);
  Node *y = x ? as_tensor(E, a[1], like, true, loc) : NULL;
  return y ? tensor_value(E, ir_binary(&E->ir, op, x, y, loc)) : NULL;
}

static Value *bi_maximum(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) { return elementwise2(E, b, args, loc, OP_MAX); }
static Value *bi_minimum(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) { return elementwise2(E, b, args, loc, OP_MIN); }

static Value *bi_where(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(3);
  Node *c = tensor_arg(E, a[0], loc, "where");
  if (!c) return NULL;
  Value *t = is_tensorish(a[1]) ? a[1] : a[2];
  if (!is_tensorish(t)) return fail(E, loc, "where: one of the two value arguments must be a tensor");
  DType like = t->kind == V_TENSOR ? t->node->dtype : t->param->info.dtype;
  Node *x = as_tensor(E, a[1], like, true, loc);
  Node *y = x ? as_tensor(E, a[2], like, true, loc) : NULL;
  return y ? tensor_value(E, ir_where(&E->ir, c, x, y, loc)) : NULL;
}

/* ---- reductions ------------------------------------------------------- */

static Value *reduce(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc, OpKind op) {
  ARGS(3);
  Node *x = tensor_arg(E, a[0], loc, b->name);
  if (!x) return NULL;
  int rank = x->shape.rank;
  uint32_t mask = 0;
  if (!a[1] || a[1]->kind == V_NONE) {
    mask = rank ? (uint32_t)((1u << rank) - 1) : 0;
  } else if (a[1]->kind == V_LIST || a[1]->kind == V_TUPLE) {
    for (int i = 0; i < a[1]->n; i++) {
      int ax;
      if (!axis_arg(E, a[1]->items[i], rank, &ax, loc, b->name)) return NULL;
      if (mask & (1u << ax)) return fail(E, loc, "%s: axis %d named twice", b->name, ax);
      mask |= 1u << ax;
    }
  } else {
    int ax;
    if (!axis_arg(E, a[1], rank, &ax, loc, b->name)) return NULL;
    mask = 1u << ax;
  }
  bool keep = false;
  if (a[2] && !as_bool(E, a[2], &keep, loc, "keepdims")) return NULL;
  if (!mask) return tensor_value(E, x);
  return tensor_value(E, ir_reduce(&E->ir, op, x, mask, keep, loc));
}

static Value *bi_sum(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) { return reduce(E, b, args, loc, OP_SUM); }
static Value *bi_mean(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) { return reduce(E, b, args, loc, OP_MEAN); }
static Value *bi_amax(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) { return reduce(E, b, args, loc, OP_RMAX); }

/* ---- compute ---------------------------------------------------------- */

static Value *bi_matmul(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(2);
  Node *x = tensor_arg(E, a[0], loc, "matmul");
  Node *y = x ? tensor_arg(E, a[1], loc, "matmul") : NULL;
  return y ? tensor_value(E, ir_matmul(&E->ir, x, y, loc)) : NULL;
}

static bool pair_arg(Elab *E, Value *v, int def, int out[2], SrcLoc loc, const char *what) {
  if (!v) {
    out[0] = out[1] = def;
    return true;
  }
  int64_t x[2];
  if (v->kind == V_LIST || v->kind == V_TUPLE) {
    if (v->n != 2) {
      fail(E, loc, "%s must be an int or a pair of ints", what);
      return false;
    }
    if (!as_int(E, v->items[0], &x[0], loc, what) || !as_int(E, v->items[1], &x[1], loc, what)) return false;
  } else {
    if (!as_int(E, v, &x[0], loc, what)) return false;
    x[1] = x[0];
  }
  for (int i = 0; i < 2; i++) {
    if (x[i] < 0 || x[i] > (1 << 20)) {
      fail(E, loc, "%s %lld is out of range", what, (long long)x[i]);
      return false;
    }
    out[i] = (int)x[i];
  }
  return true;
}

static Value *bi_conv2d(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(4);
  Node *x = tensor_arg(E, a[0], loc, "conv2d");
  Node *w = x ? tensor_arg(E, a[1], loc, "conv2d") : NULL;
  int stride[2], pad[2];
  if (!w || !pair_arg(E, a[2], 1, stride, loc, "stride") || !pair_arg(E, a[3], 0, pad, loc, "padding"))
    return NULL;
  return tensor_value(E, ir_conv2d(&E->ir, x, w, stride, pad, loc));
}

static Value *bi_gather(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(2);
  Node *t = tensor_arg(E, a[0], loc, "gather");
  Node *i = t ? tensor_arg(E, a[1], loc, "gather") : NULL;
  return i ? tensor_value(E, ir_gather(&E->ir, t, i, loc)) : NULL;
}

static Value *bi_attention(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(4);
  Node *q = tensor_arg(E, a[0], loc, "attention");
  Node *k = q ? tensor_arg(E, a[1], loc, "attention") : NULL;
  Node *v = k ? tensor_arg(E, a[2], loc, "attention") : NULL;
  if (!v) return NULL;
  if (q->shape.rank < 1) return tensor_value(E, ir_attention(&E->ir, q, k, v, 1.0, loc));
  /* A rank-0 q has no head dimension; ir_attention reports it. */
  double scale = q->shape.rank ? 1.0 / sqrt((double)q->shape.d[q->shape.rank - 1].n) : 1.0;
  if (a[3] && !as_float(E, a[3], &scale, loc, "attention scale")) return NULL;
  return tensor_value(E, ir_attention(&E->ir, q, k, v, scale, loc));
}

/* ---- layout ----------------------------------------------------------- */

static Value *bi_reshape(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(2);
  Node *x = tensor_arg(E, a[0], loc, "reshape");
  if (!x) return NULL;
  Value *l = a[1];
  if ((l->kind != V_LIST && l->kind != V_TUPLE) || l->n > IR_MAX_RANK)
    return fail(E, loc, "reshape: the shape must be a list of at most %d dimensions", IR_MAX_RANK);
  Shape s = {0};
  s.rank = l->n;
  int infer = -1;
  Dim known = {1, false};
  for (int i = 0; i < l->n; i++) {
    if (l->items[i]->kind == V_INT && l->items[i]->i == -1) {
      if (infer >= 0) return fail(E, loc, "reshape: only one dimension can be -1");
      infer = i;
      continue;
    }
    if (!as_dim(E, l->items[i], &s.d[i], loc, "reshape dimension")) return NULL;
    if (s.d[i].n <= 0) return fail(E, loc, "reshape: dimension %d is %lld; dimensions must be positive", i, (long long)s.d[i].n);
    if (mul_overflows(known.n, s.d[i].n, &known.n)) return fail(E, loc, "reshape: shape overflows");
    if (s.d[i].sym) {
      if (known.sym) return fail(E, loc, "reshape: the batch symbol appears twice");
      known.sym = true;
    }
  }
  if (infer >= 0) {
    Dim total;
    shape_numel(&x->shape, &total);
    if (known.sym && !total.sym)
      return fail(E, loc, "reshape: cannot infer -1 for %s", ir_type_str(E->arena, x->dtype, &x->shape, E->ir.g->sym_name));
    if (total.n % known.n != 0) {
      StrBuf sb; /* "B*24 elements are not a multiple of B*5" */
      sb_init(&sb);
      ir_format_dim(&sb, total, E->ir.g->sym_name);
      sb_puts(&sb, " elements are not a multiple of ");
      ir_format_dim(&sb, known, E->ir.g->sym_name);
      fail(E, loc, "reshape: cannot infer -1 for %s: its %s",
           ir_type_str(E->arena, x->dtype, &x->shape, E->ir.g->sym_name), sb.data ? sb.data : "?");
      sb_free(&sb);
      return NULL;
    }
    s.d[infer] = (Dim){total.n / known.n, total.sym && !known.sym};
  }
  return tensor_value(E, ir_reshape(&E->ir, x, s, loc));
}

static Value *bi_permute(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(2);
  Node *x = tensor_arg(E, a[0], loc, "permute");
  if (!x) return NULL;
  Value *l = a[1];
  int rank = x->shape.rank;
  if ((l->kind != V_LIST && l->kind != V_TUPLE) || l->n != rank)
    return fail(E, loc, "permute: needs a list of %d axes", rank);
  int perm[IR_MAX_RANK];
  for (int i = 0; i < rank; i++)
    if (!axis_arg(E, l->items[i], rank, &perm[i], loc, "permute")) return NULL;
  return tensor_value(E, ir_permute(&E->ir, x, perm, loc));
}

static Value *bi_transpose(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(3);
  Node *x = tensor_arg(E, a[0], loc, "transpose");
  if (!x) return NULL;
  int rank = x->shape.rank, i0, i1;
  if (!axis_arg(E, a[1], rank, &i0, loc, "transpose") || !axis_arg(E, a[2], rank, &i1, loc, "transpose")) return NULL;
  int perm[IR_MAX_RANK];
  for (int i = 0; i < rank; i++) perm[i] = i;
  perm[i0] = i1;
  perm[i1] = i0;
  return tensor_value(E, ir_permute(&E->ir, x, perm, loc));
}

static Value *bi_expand(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(2);
  Node *x = tensor_arg(E, a[0], loc, "expand");
  Shape s;
  if (!x || !eval_shape_list(E, a[1], &s, loc, "expand shape")) return NULL;
  return tensor_value(E, ir_expand(&E->ir, x, s, loc));
}

static Value *bi_concat(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(2);
  Value *l = a[0];
  if ((l->kind != V_LIST && l->kind != V_TUPLE) || l->n == 0)
    return fail(E, loc, "concat: expects a non-empty list of tensors");
  Node **xs = arena_alloc(E->arena, sizeof(Node *) * (size_t)l->n);
  if (!xs) return NULL;
  for (int i = 0; i < l->n; i++)
    if (!(xs[i] = tensor_arg(E, l->items[i], loc, "concat"))) return NULL;
  int axis = 0;
  if (a[1] && !axis_arg(E, a[1], xs[0]->shape.rank, &axis, loc, "concat")) return NULL;
  return tensor_value(E, ir_concat(&E->ir, xs, l->n, axis, loc));
}

/* chunk(x, n, axis): n equal consecutive slices along axis, as a tuple. */
static Value *bi_chunk(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(3);
  Node *x = tensor_arg(E, a[0], loc, "chunk");
  int64_t n;
  if (!x || !as_int(E, a[1], &n, loc, "number of chunks")) return NULL;
  int rank = x->shape.rank, axis = rank - 1;
  if (a[2] && !axis_arg(E, a[2], rank, &axis, loc, "chunk")) return NULL;
  Dim d = x->shape.d[axis];
  if (d.sym) return fail(E, loc, "chunk: cannot split the batch axis");
  if (n <= 0 || n > ELAB_MAX_UNROLL || d.n % n != 0)
    return fail(E, loc, "chunk: axis %d of size %lld does not split into %lld equal parts", axis,
                (long long)d.n, (long long)n);
  if (!charge(E, n, loc)) return NULL;
  Value *v = new_seq(E, V_TUPLE, (int)n);
  if (!v) return NULL;
  int64_t start[IR_MAX_RANK] = {0}, stop[IR_MAX_RANK], step[IR_MAX_RANK];
  for (int i = 0; i < rank; i++) {
    stop[i] = x->shape.d[i].sym ? INT64_MAX : x->shape.d[i].n;
    step[i] = 1;
  }
  int64_t len = d.n / n;
  for (int64_t i = 0; i < n; i++) {
    start[axis] = i * len;
    stop[axis] = (i + 1) * len;
    if (!(v->items[v->n++] = tensor_value(E, ir_slice(&E->ir, x, start, stop, step, loc)))) return NULL;
  }
  return v;
}

/* ---- creation --------------------------------------------------------- */

static bool dtype_arg(Elab *E, Value *v, DType def, DType *out, SrcLoc loc) {
  if (!v) {
    *out = def;
    return true;
  }
  if (v->kind != V_DTYPE) {
    fail(E, loc, "expected a dtype (f32, i64, ...), found %s", value_str(E, v));
    return false;
  }
  *out = v->dtype;
  return true;
}

static Value *bi_cast(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(2);
  Node *x = tensor_arg(E, a[0], loc, "cast");
  DType t;
  if (!x || !dtype_arg(E, a[1], DT_F32, &t, loc)) return NULL;
  return tensor_value(E, ir_cast(&E->ir, x, t, loc));
}

static Value *bi_stop_gradient(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(1);
  Node *x = tensor_arg(E, a[0], loc, "stop_gradient");
  return x ? tensor_value(E, ir_unary(&E->ir, OP_STOP_GRAD, x, loc)) : NULL;
}

static bool need_graph(Elab *E, SrcLoc loc, const char *fn) {
  if (E->ir.g) return true;
  fail(E, loc, "%s creates a tensor; tensors exist only inside methods", fn);
  return false;
}

static Value *bi_full(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(3);
  Shape s;
  double v;
  DType t;
  if (!need_graph(E, loc, "full") || !eval_shape_list(E, a[0], &s, loc, "full shape") ||
      !as_float(E, a[1], &v, loc, "fill value") || !dtype_arg(E, a[2], DT_F32, &t, loc))
    return NULL;
  Node *c = ir_const(&E->ir, v, t, loc);
  return c ? tensor_value(E, ir_expand(&E->ir, c, s, loc)) : NULL;
}

static Value *bi_arange(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(2);
  int64_t n;
  DType t;
  if (!need_graph(E, loc, "arange") || !as_int(E, a[0], &n, loc, "arange length") ||
      !dtype_arg(E, a[1], DT_F32, &t, loc))
    return NULL;
  return tensor_value(E, ir_arange(&E->ir, n, t, loc));
}

static Value *random_op(Elab *E, Value *shape, double p, OpKind op, SrcLoc loc, const char *fn) {
  Shape s;
  if (!need_graph(E, loc, fn) || !eval_shape_list(E, shape, &s, loc, "shape")) return NULL;
  for (int i = 0; i < s.rank; i++)
    if (s.d[i].n <= 0) return fail(E, loc, "%s: dimensions must be positive", fn);
  return tensor_value(E, ir_random(&E->ir, op, s, p, loc));
}

static Value *bi_uniform(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(1);
  return random_op(E, a[0], 0, OP_UNIFORM, loc, "uniform");
}

static Value *bi_normal(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(1);
  return random_op(E, a[0], 0, OP_NORMAL, loc, "normal");
}

static Value *bi_bernoulli(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  ARGS(2);
  double p;
  if (!as_float(E, a[0], &p, loc, "bernoulli probability")) return NULL;
  return random_op(E, a[1], p, OP_BERNOULLI, loc, "bernoulli");
}

/* Sequential(m0, m1, ...): a module list that is called in order. */
static Value *bi_sequential(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc) {
  (void)b;
  if (args->nkw) return fail(E, loc, "Sequential takes only module instances");
  if (E->in_method) return fail(E, loc, "Sequential is built in a module body, not inside a method");
  Instance *c = make_container(E, args->pos, args->npos, true, loc);
  if (!c) return NULL;
  Value *v = new_value(E, V_INSTANCE);
  if (v) v->inst = c;
  return v;
}

#define B(name, fn, nreq, doc, ...) {#name, fn, {__VA_ARGS__}, nreq, doc}

static const Builtin builtins[] = {
    B(range, bi_range, 1, "range(stop) or range(start, stop, step): a list of ints", "a", "b", "step"),
    B(len, bi_len, 1, "length of a list, tuple or str", "x"),
    B(int, bi_int, 1, "number to int (truncates)", "x"),
    B(float, bi_float, 1, "number to float", "x"),
    B(str, bi_str, 1, "value as text, for messages", "x"),
    B(min, bi_min, 2, "smaller of two numbers", "a", "b"),
    B(max, bi_max, 2, "larger of two numbers", "a", "b"),
    B(isqrt, bi_isqrt, 1, "integer square root", "n"),
    B(assert, bi_assert, 1, "compile-time check with a message", "cond", "msg"),
    B(exp, bi_exp, 1, "e^x (number or tensor)", "x"),
    B(log, bi_log, 1, "natural log", "x"),
    B(sin, bi_sin, 1, "sine", "x"),
    B(cos, bi_cos, 1, "cosine", "x"),
    B(tanh, bi_tanh, 1, "hyperbolic tangent", "x"),
    B(sqrt, bi_sqrt, 1, "square root", "x"),
    B(rsqrt, bi_rsqrt, 1, "1 / sqrt(x)", "x"),
    B(abs, bi_abs, 1, "absolute value", "x"),
    B(maximum, bi_maximum, 2, "elementwise max", "a", "b"),
    B(minimum, bi_minimum, 2, "elementwise min", "a", "b"),
    B(where, bi_where, 3, "c ? a : b elementwise", "cond", "a", "b"),
    B(sum, bi_sum, 1, "sum over axes", "x", "axis", "keepdims"),
    B(mean, bi_mean, 1, "mean over axes", "x", "axis", "keepdims"),
    B(amax, bi_amax, 1, "max over axes", "x", "axis", "keepdims"),
    B(matmul, bi_matmul, 2, "batched matrix product", "a", "b"),
    B(conv2d, bi_conv2d, 2, "2-D cross-correlation, NCHW", "x", "weight", "stride", "padding"),
    B(gather, bi_gather, 2, "rows of a table by index", "table", "index"),
    B(attention, bi_attention, 3, "softmax(q k^T scale) v", "q", "k", "v", "scale"),
    B(reshape, bi_reshape, 2, "new shape, one -1 inferred", "x", "shape"),
    B(permute, bi_permute, 2, "reorder axes", "x", "dims"),
    B(transpose, bi_transpose, 3, "swap two axes", "x", "a", "b"),
    B(expand, bi_expand, 2, "broadcast size-1 axes", "x", "shape"),
    B(concat, bi_concat, 1, "join tensors along an axis", "xs", "axis"),
    B(chunk, bi_chunk, 2, "split into n equal parts (tuple)", "x", "n", "axis"),
    B(cast, bi_cast, 2, "convert dtype", "x", "dtype"),
    B(stop_gradient, bi_stop_gradient, 1, "identity without gradient", "x"),
    B(full, bi_full, 2, "constant tensor", "shape", "value", "dtype"),
    B(arange, bi_arange, 1, "0, 1, ..., n-1", "n", "dtype"),
    B(uniform, bi_uniform, 1, "U[0,1) samples", "shape"),
    B(normal, bi_normal, 1, "N(0,1) samples", "shape"),
    B(bernoulli, bi_bernoulli, 2, "true with probability p", "p", "shape"),
    B(Sequential, bi_sequential, 0, "modules applied in order", NULL),
};

const Builtin *builtin_find(const char *name) {
  for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
    if (!strcmp(builtins[i].name, name)) return &builtins[i];
  return NULL;
}

Value *builtin_constant(Elab *E, const char *name) {
  DType t;
  if (dtype_from_name(name, &t)) {
    Value *v = new_value(E, V_DTYPE);
    if (v) v->dtype = t;
    return v;
  }
  if (!strcmp(name, "pi")) return float_value(E, M_PI);
  if (!strcmp(name, "inf")) return float_value(E, INFINITY);
  return NULL;
}
