/* elab_expr.c: evaluation of expressions during elaboration. Numbers,
 * strings and lists are computed at compile time; anything involving a
 * tensor becomes graph IR nodes through the ir_* builders. Also checks
 * values against type annotations, binding shape variables. */
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

/* ---- conversions ------------------------------------------------------ */

bool as_int(Elab *E, Value *v, int64_t *out, SrcLoc loc, const char *what) {
  if (v->kind == V_INT) {
    *out = v->i;
    return true;
  }
  if (v->kind == V_DIM)
    fail(E, loc, "%s must be a fixed integer, but depends on the batch size", what);
  else
    fail(E, loc, "%s must be an int, found %s", what, value_str(E, v));
  return false;
}

bool as_float(Elab *E, Value *v, double *out, SrcLoc loc, const char *what) {
  if (v->kind == V_INT) *out = (double)v->i;
  else if (v->kind == V_FLOAT) *out = v->f;
  else {
    fail(E, loc, "%s must be a number, found %s", what, value_str(E, v));
    return false;
  }
  return true;
}

bool as_bool(Elab *E, Value *v, bool *out, SrcLoc loc, const char *what) {
  if (v->kind != V_BOOL) {
    fail(E, loc, "%s must be true or false, found %s", what, value_str(E, v));
    return false;
  }
  *out = v->i != 0;
  return true;
}

bool as_dim(Elab *E, Value *v, Dim *out, SrcLoc loc, const char *what) {
  if (v->kind == V_DIM) *out = v->dim;
  else if (v->kind == V_INT) *out = (Dim){v->i, false};
  else {
    fail(E, loc, "%s must be an int, found %s", what, value_str(E, v));
    return false;
  }
  return true;
}

bool truthy(Elab *E, Value *v, bool *out, SrcLoc loc) {
  if (v->kind == V_TENSOR || v->kind == V_PARAM) {
    fail(E, loc, "conditions are decided at compile time; a tensor cannot be one (use where(c, a, b))");
    return false;
  }
  return as_bool(E, v, out, loc, "condition");
}

Node *as_tensor(Elab *E, Value *v, DType like, bool have_like, SrcLoc loc) {
  switch (v->kind) {
  case V_TENSOR: return v->node;
  case V_PARAM: return param_node(E, v->param, loc);
  case V_INT:
  case V_FLOAT:
  case V_BOOL: {
    if (!E->ir.g) {
      fail(E, loc, "tensors exist only inside methods");
      return NULL;
    }
    DType t = v->kind == V_INT ? DT_I64 : v->kind == V_BOOL ? DT_BOOL : DT_F32;
    if (have_like) {
      if (v->kind == V_FLOAT && !dtype_is_float(like)) {
        fail(E, loc, "float %s used with a tensor of dtype %s (no implicit conversion; use cast)",
             value_str(E, v), dtype_name(like));
        return NULL;
      }
      if ((v->kind == V_BOOL) != (like == DT_BOOL)) {
        fail(E, loc, "%s %s used with a tensor of dtype %s (no implicit conversion; use cast)",
             kind_name(v->kind), value_str(E, v), dtype_name(like));
        return NULL;
      }
      t = like;
    }
    return ir_const(&E->ir, v->kind == V_FLOAT ? v->f : (double)v->i, t, loc);
  }
  default:
    fail(E, loc, "expected a tensor, found %s", value_str(E, v));
    return NULL;
  }
}

static bool is_tensorish(const Value *v) { return v->kind == V_TENSOR || v->kind == V_PARAM; }

static DType tensor_dtype(const Value *v) {
  return v->kind == V_TENSOR ? v->node->dtype : v->param->info.dtype;
}

bool eval_shape_list(Elab *E, Value *v, Shape *out, SrcLoc loc, const char *what) {
  if (v->kind != V_LIST && v->kind != V_TUPLE) {
    fail(E, loc, "%s must be a list of dimensions, found %s", what, kind_name(v->kind));
    return false;
  }
  if (v->n > IR_MAX_RANK) {
    fail(E, loc, "%s has %d axes; at most %d are supported", what, v->n, IR_MAX_RANK);
    return false;
  }
  out->rank = v->n;
  for (int i = 0; i < v->n; i++)
    if (!as_dim(E, v->items[i], &out->d[i], loc, what)) return false;
  return true;
}

/* ---- arithmetic ------------------------------------------------------- */

static OpKind tensor_op(OprKind op) {
  switch (op) {
  case OPR_ADD: return OP_ADD;
  case OPR_SUB: return OP_SUB;
  case OPR_MUL: return OP_MUL;
  case OPR_DIV: return OP_DIV;
  case OPR_POW: return OP_POW;
  case OPR_LT:
  case OPR_GT: return OP_LT;
  case OPR_LE:
  case OPR_GE: return OP_LE;
  case OPR_EQ: return OP_EQ;
  case OPR_NE: return OP_NE;
  default: return OP_COUNT;
  }
}

static Value *tensor_binary(Elab *E, OprKind op, Value *a, Value *b, SrcLoc loc) {
  if (op == OPR_MATMUL) {
    Node *x = as_tensor(E, a, DT_F32, false, loc), *y = x ? as_tensor(E, b, DT_F32, false, loc) : NULL;
    return y ? tensor_value(E, ir_matmul(&E->ir, x, y, loc)) : NULL;
  }
  OpKind k = tensor_op(op);
  if (k == OP_COUNT)
    return fail(E, loc, "operator '%s' is not defined on tensors", ast_opr_name(op));
  DType like = is_tensorish(a) ? tensor_dtype(a) : tensor_dtype(b);
  Node *x = as_tensor(E, a, like, true, loc);
  Node *y = x ? as_tensor(E, b, like, true, loc) : NULL;
  if (!y) return NULL;
  if (op == OPR_GT || op == OPR_GE) return tensor_value(E, ir_binary(&E->ir, k, y, x, loc));
  return tensor_value(E, ir_binary(&E->ir, k, x, y, loc));
}

/* x ** y for y >= 0 by squaring: 1 ** 10**15 must not loop 10**15 times.
 * True on overflow; squaring x overflows only when the result would. */
static bool int_pow(int64_t x, int64_t y, int64_t *out) {
  int64_t r = 1, base = x;
  while (y > 0) {
    if ((y & 1) && mul_overflows(r, base, &r)) return true;
    y >>= 1;
    if (y > 0 && mul_overflows(base, base, &base)) return true;
  }
  *out = r;
  return false;
}

static Value *int_arith(Elab *E, OprKind op, int64_t x, int64_t y, SrcLoc loc) {
  int64_t r = 0;
  bool over = false;
  switch (op) {
  case OPR_ADD: over = add_overflows(x, y, &r); break;
  case OPR_SUB: over = __builtin_sub_overflow(x, y, &r); break;
  case OPR_MUL: over = mul_overflows(x, y, &r); break;
  case OPR_FLOORDIV:
  case OPR_MOD:
    if (y == 0) return fail(E, loc, "integer division by zero");
    if (x == INT64_MIN && y == -1) {
      over = true;
      break;
    }
    r = op == OPR_FLOORDIV ? x / y : x % y;
    if (op == OPR_FLOORDIV && (x % y != 0) && ((x < 0) != (y < 0))) r--;
    if (op == OPR_MOD && r != 0 && ((r < 0) != (y < 0))) r += y;
    break;
  case OPR_POW:
    if (y < 0) return float_value(E, pow((double)x, (double)y));
    over = int_pow(x, y, &r);
    break;
  case OPR_DIV:
    if (y == 0) return fail(E, loc, "division by zero");
    return float_value(E, (double)x / (double)y);
  case OPR_EQ: return bool_value(E, x == y);
  case OPR_NE: return bool_value(E, x != y);
  case OPR_LT: return bool_value(E, x < y);
  case OPR_LE: return bool_value(E, x <= y);
  case OPR_GT: return bool_value(E, x > y);
  case OPR_GE: return bool_value(E, x >= y);
  default: return fail(E, loc, "operator '%s' is not defined on ints", ast_opr_name(op));
  }
  if (over) return fail(E, loc, "integer overflow in '%s'", ast_opr_name(op));
  return int_value(E, r);
}

static Value *float_arith(Elab *E, OprKind op, double x, double y, SrcLoc loc) {
  switch (op) {
  case OPR_ADD: return float_value(E, x + y);
  case OPR_SUB: return float_value(E, x - y);
  case OPR_MUL: return float_value(E, x * y);
  case OPR_DIV:
    if (y == 0) return fail(E, loc, "division by zero");
    return float_value(E, x / y);
  case OPR_FLOORDIV:
    if (y == 0) return fail(E, loc, "division by zero");
    return float_value(E, floor(x / y));
  case OPR_POW: return float_value(E, pow(x, y));
  case OPR_EQ: return bool_value(E, x == y);
  case OPR_NE: return bool_value(E, x != y);
  case OPR_LT: return bool_value(E, x < y);
  case OPR_LE: return bool_value(E, x <= y);
  case OPR_GT: return bool_value(E, x > y);
  case OPR_GE: return bool_value(E, x >= y);
  default: return fail(E, loc, "operator '%s' is not defined on floats", ast_opr_name(op));
  }
}

/* Dimensions that involve the batch symbol: scaling by ints and equality. */
static Value *dim_arith(Elab *E, OprKind op, Dim x, Dim y, SrcLoc loc) {
  Value *v = new_value(E, V_DIM);
  if (!v) return NULL;
  if (op == OPR_EQ || op == OPR_NE) return bool_value(E, dim_eq(x, y) == (op == OPR_EQ));
  if (op == OPR_MUL && !(x.sym && y.sym)) {
    if (mul_overflows(x.n, y.n, &v->dim.n)) return fail(E, loc, "integer overflow in '*'");
    v->dim.sym = x.sym || y.sym;
    return v;
  }
  if (op == OPR_FLOORDIV && x.sym && !y.sym && y.n > 0 && x.n % y.n == 0) {
    v->dim = (Dim){x.n / y.n, true};
    return v;
  }
  return fail(E, loc, "operator '%s' cannot be applied to a batch-dependent dimension", ast_opr_name(op));
}

static Value *seq_concat(Elab *E, Value *a, Value *b, SrcLoc loc) {
  if ((int64_t)a->n + b->n > ELAB_MAX_LIST)
    return fail(E, loc, "list of %lld elements is longer than the limit of %d",
                (long long)a->n + b->n, ELAB_MAX_LIST);
  if (!charge(E, (int64_t)a->n + b->n, loc)) return NULL;
  Value *v = new_value(E, a->kind);
  if (!v) return NULL;
  v->n = a->n + b->n;
  v->items = arena_alloc(E->arena, sizeof(Value *) * (size_t)(v->n + 1));
  if (!v->items) return NULL;
  memcpy(v->items, a->items, sizeof(Value *) * (size_t)a->n);
  memcpy(v->items + a->n, b->items, sizeof(Value *) * (size_t)b->n);
  return v;
}

Value *binary_op(Elab *E, OprKind op, Value *a, Value *b, SrcLoc loc) {
  if (is_tensorish(a) || is_tensorish(b)) return tensor_binary(E, op, a, b, loc);
  ValueKind ka = a->kind, kb = b->kind;
  if (ka == V_INT && kb == V_INT) return int_arith(E, op, a->i, b->i, loc);
  if ((ka == V_INT || ka == V_FLOAT) && (kb == V_INT || kb == V_FLOAT))
    return float_arith(E, op, ka == V_INT ? (double)a->i : a->f, kb == V_INT ? (double)b->i : b->f, loc);
  if ((ka == V_DIM || ka == V_INT) && (kb == V_DIM || kb == V_INT)) {
    Dim x = ka == V_DIM ? a->dim : (Dim){a->i, false};
    Dim y = kb == V_DIM ? b->dim : (Dim){b->i, false};
    return dim_arith(E, op, x, y, loc);
  }
  if (op == OPR_EQ || op == OPR_NE) {
    bool eq;
    if (ka != kb) eq = false;
    else if (ka == V_STR) eq = !strcmp(a->s, b->s);
    else if (ka == V_BOOL) eq = a->i == b->i;
    else if (ka == V_NONE) eq = true;
    else if (ka == V_DTYPE) eq = a->dtype == b->dtype;
    else return fail(E, loc, "cannot compare %s with '%s'", a_kind(ka), ast_opr_name(op));
    return bool_value(E, eq == (op == OPR_EQ));
  }
  if (op == OPR_ADD && ka == V_STR && kb == V_STR) {
    size_t n = strlen(a->s) + strlen(b->s);
    if (n > ELAB_MAX_STRING)
      return fail(E, loc, "string of %zu bytes is longer than the limit of %d", n, ELAB_MAX_STRING);
    Value *v = new_value(E, V_STR);
    if (v && !(v->s = arena_printf(E->arena, "%s%s", a->s, b->s)))
      return fail(E, loc, "out of memory during elaboration");
    return v;
  }
  if (op == OPR_ADD && (ka == V_LIST || ka == V_TUPLE) && ka == kb) return seq_concat(E, a, b, loc);
  return fail(E, loc, "operator '%s' is not defined for %s and %s", ast_opr_name(op),
              kind_name(ka), kind_name(kb));
}

static Value *unary_op(Elab *E, OprKind op, Value *a, SrcLoc loc) {
  if (op == OPR_NOT) {
    bool b;
    if (!as_bool(E, a, &b, loc, "operand of 'not'")) return NULL;
    return bool_value(E, !b);
  }
  if (op == OPR_POS) {
    if (a->kind == V_INT || a->kind == V_FLOAT || is_tensorish(a)) return a;
    return fail(E, loc, "unary '+' is not defined for %s", kind_name(a->kind));
  }
  if (a->kind == V_INT) {
    if (a->i == INT64_MIN) return fail(E, loc, "integer overflow in negation");
    return int_value(E, -a->i);
  }
  if (a->kind == V_FLOAT) return float_value(E, -a->f);
  if (is_tensorish(a)) {
    Node *x = as_tensor(E, a, DT_F32, false, loc);
    return x ? tensor_value(E, ir_unary(&E->ir, OP_NEG, x, loc)) : NULL;
  }
  return fail(E, loc, "unary '-' is not defined for %s", kind_name(a->kind));
}

/* ---- indexing --------------------------------------------------------- */

static bool slice_bounds(Elab *E, Value *sl, int64_t n, int64_t *lo, int64_t *hi, int64_t *step, SrcLoc loc) {
  Value **p = sl->items;
  *step = 1;
  if (p[2] && !as_int(E, p[2], step, loc, "slice step")) return false;
  if (*step <= 0) {
    fail(E, loc, "slice step must be positive, found %lld", (long long)*step);
    return false;
  }
  *lo = 0;
  *hi = n;
  if (p[0] && !as_int(E, p[0], lo, loc, "slice start")) return false;
  if (p[1] && !as_int(E, p[1], hi, loc, "slice stop")) return false;
  if (*lo < 0) *lo += n;
  if (*hi < 0) *hi += n;
  if (*lo < 0) *lo = 0;
  if (*hi > n) *hi = n;
  if (*lo > n) *lo = n;
  return true;
}

static Value *index_seq(Elab *E, Value *base, Value *sub, SrcLoc loc) {
  if (sub->kind == V_SLICE) {
    int64_t lo, hi, step;
    if (!slice_bounds(E, sub, base->n, &lo, &hi, &step, loc)) return NULL;
    Value *v = new_value(E, base->kind);
    if (!v) return NULL;
    v->items = arena_alloc(E->arena, sizeof(Value *) * (size_t)(base->n + 1));
    if (!v->items) return NULL;
    for (int64_t i = lo; i < hi; i += step) {
      v->items[v->n++] = base->items[i];
      if (step > hi - i) break; /* i + step would pass hi, or overflow */
    }
    return v;
  }
  int64_t i;
  if (!as_int(E, sub, &i, loc, "list index")) return NULL;
  int64_t k = i < 0 ? i + base->n : i;
  if (k < 0 || k >= base->n)
    return fail(E, loc, "index %lld out of range for a %s of %d elements", (long long)i,
                kind_name(base->kind), base->n);
  return base->items[k];
}

/* x[a, b:c, None, ...]: one SLICE over all axes, then a RESHAPE that drops
 * integer-indexed axes and inserts the None ones. */
static Value *index_tensor(Elab *E, Value *base, Value **subs, int nsubs, SrcLoc loc) {
  Node *x = as_tensor(E, base, DT_F32, false, loc);
  if (!x) return NULL;
  const Shape *s = &x->shape;
  int64_t start[IR_MAX_RANK], stop[IR_MAX_RANK], step[IR_MAX_RANK];
  Shape out = {0};
  int axis = 0;
  for (int k = 0; k < s->rank; k++) {
    start[k] = 0;
    stop[k] = s->d[k].sym ? INT64_MAX : s->d[k].n;
    step[k] = 1;
  }
  const char *ty = ir_type_str(E->arena, x->dtype, s, E->ir.g->sym_name);
  for (int i = 0; i < nsubs; i++) {
    Value *sub = subs[i];
    if (sub->kind == V_NONE) {
      if (out.rank >= IR_MAX_RANK) return fail(E, loc, "indexing gives more than %d axes", IR_MAX_RANK);
      out.d[out.rank++] = (Dim){1, false};
      continue;
    }
    if (axis >= s->rank) return fail(E, loc, "too many indices for %s", ty);
    Dim d = s->d[axis];
    if (sub->kind == V_SLICE) {
      if (d.sym) {
        bool whole = !sub->items[0] && !sub->items[1] && !sub->items[2];
        if (!whole) return fail(E, loc, "the batch axis %d of %s can only be taken whole (:)", axis, ty);
        if (out.rank >= IR_MAX_RANK) return fail(E, loc, "indexing gives more than %d axes", IR_MAX_RANK);
        out.d[out.rank++] = d;
      } else {
        int64_t lo, hi, st;
        if (!slice_bounds(E, sub, d.n, &lo, &hi, &st, loc)) return NULL;
        if (hi <= lo) return fail(E, loc, "slice of axis %d of %s is empty", axis, ty);
        start[axis] = lo;
        stop[axis] = hi;
        step[axis] = st;
        if (out.rank >= IR_MAX_RANK) return fail(E, loc, "indexing gives more than %d axes", IR_MAX_RANK);
        out.d[out.rank++] = (Dim){(hi - lo - 1) / st + 1, false}; /* no overflow for huge st */
      }
    } else {
      int64_t idx;
      if (!as_int(E, sub, &idx, loc, "tensor index")) return NULL;
      if (d.sym) return fail(E, loc, "cannot pick one element of the batch axis %d of %s", axis, ty);
      int64_t k = idx < 0 ? idx + d.n : idx;
      if (k < 0 || k >= d.n)
        return fail(E, loc, "index %lld out of range for axis %d of %s", (long long)idx, axis, ty);
      start[axis] = k;
      stop[axis] = k + 1;
    }
    axis++;
  }
  for (; axis < s->rank; axis++) {
    if (out.rank >= IR_MAX_RANK) return fail(E, loc, "indexing gives more than %d axes", IR_MAX_RANK);
    out.d[out.rank++] = s->d[axis];
  }
  Node *sl = ir_slice(&E->ir, x, start, stop, step, loc);
  return sl ? tensor_value(E, ir_reshape(&E->ir, sl, out, loc)) : NULL;
}

static Value *eval_index(Elab *E, Env *env, Expr *e) {
  Value *base = eval(E, env, e->a);
  if (!base) return NULL;
  int n = e->items.n;
  Value **subs = arena_alloc(E->arena, sizeof(Value *) * (size_t)(n + 1));
  if (!subs) return NULL;
  for (int i = 0; i < n; i++) {
    Expr *s = e->items.items[i];
    if (s->kind == E_SLICE) {
      Value *sl = new_value(E, V_SLICE);
      if (!sl || !(sl->items = arena_alloc(E->arena, sizeof(Value *) * 3))) return NULL;
      Expr *parts[3] = {s->a, s->b, s->c};
      for (int k = 0; k < 3; k++)
        if (parts[k] && !(sl->items[k] = eval(E, env, parts[k]))) return NULL;
      for (int k = 0; k < 3; k++)
        if (sl->items[k] && sl->items[k]->kind == V_NONE) sl->items[k] = NULL;
      subs[i] = sl;
    } else if (!(subs[i] = eval(E, env, s))) {
      return NULL;
    }
  }
  if (is_tensorish(base)) return index_tensor(E, base, subs, n, e->loc);
  if (base->kind == V_LIST || base->kind == V_TUPLE) {
    if (n != 1) return fail(E, e->loc, "%s takes one index", a_kind(base->kind));
    return index_seq(E, base, subs[0], e->loc);
  }
  if (base->kind == V_STR) return fail(E, e->loc, "strings cannot be indexed");
  return fail(E, e->loc, "%s cannot be indexed", a_kind(base->kind));
}

/* ---- attributes ------------------------------------------------------- */

static Value *shape_value(Elab *E, const Shape *s) {
  Value *v = new_value(E, V_TUPLE);
  if (!v || !(v->items = arena_alloc(E->arena, sizeof(Value *) * (size_t)(s->rank + 1)))) return NULL;
  for (int i = 0; i < s->rank; i++) {
    Value *d = s->d[i].sym ? new_value(E, V_DIM) : int_value(E, s->d[i].n);
    if (!d) return NULL;
    if (s->d[i].sym) d->dim = s->d[i];
    v->items[v->n++] = d;
  }
  return v;
}

static Value *eval_attr(Elab *E, Env *env, Expr *e) {
  Value *base = eval(E, env, e->a);
  if (!base) return NULL;
  const char *name = e->str;
  if (base->kind == V_INSTANCE) {
    if (!base->inst->env) return fail(E, e->loc, "a module list has no member '%s'", name);
    Value *v = env_get_local(base->inst->env, name);
    if (!v || !strcmp(name, "self"))
      return fail(E, e->loc, "module %s has no member '%s'", base->inst->decl->name, name);
    return v;
  }
  if (is_tensorish(base)) {
    const Shape *s = base->kind == V_TENSOR ? &base->node->shape : &base->param->info.shape;
    if (!strcmp(name, "shape")) return shape_value(E, s);
    if (!strcmp(name, "ndim")) return int_value(E, s->rank);
    if (!strcmp(name, "dtype")) {
      Value *v = new_value(E, V_DTYPE);
      if (v) v->dtype = tensor_dtype(base);
      return v;
    }
    return fail(E, e->loc, "tensors have .shape, .ndim and .dtype, not '%s'", name);
  }
  return fail(E, e->loc, "%s has no attribute '%s'", a_kind(base->kind), name);
}

/* ---- calls and the rest ----------------------------------------------- */

bool eval_args(Elab *E, Env *env, ArgList *in, CallArgs *out) {
  int n = in->n;
  memset(out, 0, sizeof *out);
  out->pos = arena_alloc(E->arena, sizeof(Value *) * (size_t)(n + 1));
  out->pos_locs = arena_alloc(E->arena, sizeof(SrcLoc) * (size_t)(n + 1));
  out->kw = arena_alloc(E->arena, sizeof(Value *) * (size_t)(n + 1));
  out->kw_names = arena_alloc(E->arena, sizeof(char *) * (size_t)(n + 1));
  out->kw_locs = arena_alloc(E->arena, sizeof(SrcLoc) * (size_t)(n + 1));
  if (!out->pos || !out->pos_locs || !out->kw || !out->kw_names || !out->kw_locs) return false;
  for (int i = 0; i < n; i++) {
    Arg *a = &in->items[i];
    Value *v = eval(E, env, a->value);
    if (!v) return false;
    if (a->name) {
      for (int k = 0; k < out->nkw; k++)
        if (!strcmp(out->kw_names[k], a->name)) {
          fail(E, a->loc, "keyword argument '%s' given twice", a->name);
          return false;
        }
      out->kw_names[out->nkw] = a->name;
      out->kw_locs[out->nkw] = a->loc;
      out->kw[out->nkw++] = v;
    } else {
      if (out->nkw) {
        fail(E, a->loc, "positional argument after keyword arguments");
        return false;
      }
      out->pos_locs[out->npos] = a->loc;
      out->pos[out->npos++] = v;
    }
  }
  return true;
}

static const char *callee_name(Expr *e) {
  if (e->kind == E_NAME || e->kind == E_ATTR) return e->str;
  return "expression";
}

static Value *eval_call(Elab *E, Env *env, Expr *e) {
  Value *callee = eval(E, env, e->a);
  if (!callee) return NULL;
  CallArgs args;
  if (!eval_args(E, env, &e->args, &args)) return NULL;
  return call_value(E, callee, &args, e->loc, arena_printf(E->arena, "'%s'", callee_name(e->a)));
}

static Value *eval_items(Elab *E, Env *env, Expr *e, ValueKind kind) {
  Value *v = new_value(E, kind);
  if (!v || !(v->items = arena_alloc(E->arena, sizeof(Value *) * (size_t)(e->items.n + 1)))) return NULL;
  for (int i = 0; i < e->items.n; i++)
    if (!(v->items[v->n++] = eval(E, env, e->items.items[i]))) return NULL;
  return v;
}

static Value *eval_listcomp(Elab *E, Env *env, Expr *e) {
  Value *it = eval(E, env, e->b);
  if (!it) return NULL;
  if (it->kind != V_LIST && it->kind != V_TUPLE)
    return fail(E, e->b->loc, "cannot iterate over %s", a_kind(it->kind));
  Env *scope = env_new(E, env, env ? env->file : -1, env ? env->self : NULL);
  Value *v = new_value(E, V_LIST);
  if (!scope || !v || !(v->items = arena_alloc(E->arena, sizeof(Value *) * (size_t)(it->n + 1)))) return NULL;
  for (int i = 0; i < it->n; i++) {
    if (!env_set(E, scope, e->str, it->items[i])) return NULL;
    if (!(v->items[v->n++] = eval(E, scope, e->a))) return NULL;
  }
  return v;
}

bool charge(Elab *E, int64_t n, SrcLoc loc) {
  E->steps += n;
  if (E->steps <= ELAB_MAX_STEPS) return true;
  if (!E->out_of_steps)
    fail(E, loc, "elaboration takes more than %d steps (runaway recursion or loops?)",
         ELAB_MAX_STEPS);
  E->out_of_steps = true;
  return false;
}

bool nest_enter(Elab *E, SrcLoc loc) {
  if (E->nesting >= ELAB_MAX_NESTING) {
    fail(E, loc, "expressions, blocks and calls nested more than %d deep (runaway recursion?)",
         ELAB_MAX_NESTING);
    return false;
  }
  E->nesting++;
  return true;
}

static Value *eval_expr(Elab *E, Env *env, Expr *e);

Value *eval(Elab *E, Env *env, Expr *e) {
  if (!charge(E, 1, e->loc) || !nest_enter(E, e->loc)) return NULL;
  Value *v = eval_expr(E, env, e);
  E->nesting--;
  return v;
}

static Value *eval_expr(Elab *E, Env *env, Expr *e) {
  switch (e->kind) {
  case E_INT: return int_value(E, e->ival);
  case E_FLOAT: return float_value(E, e->fval);
  case E_STR: {
    Value *v = new_value(E, V_STR);
    if (v) v->s = e->str;
    return v;
  }
  case E_BOOL: return bool_value(E, e->ival != 0);
  case E_NONE: return E->none;
  case E_NAME: return lookup(E, env, e->str, e->loc, true);
  case E_UNARY: {
    Value *a = eval(E, env, e->a);
    return a ? unary_op(E, e->op, a, e->loc) : NULL;
  }
  case E_BINARY: {
    Value *a = eval(E, env, e->a);
    if (!a) return NULL;
    if (e->op == OPR_AND || e->op == OPR_OR) {
      bool x;
      if (!as_bool(E, a, &x, e->a->loc, arena_printf(E->arena, "left operand of '%s'", ast_opr_name(e->op))))
        return NULL;
      if (x == (e->op == OPR_OR)) return a;
      Value *b = eval(E, env, e->b);
      bool y;
      if (!b || !as_bool(E, b, &y, e->b->loc, arena_printf(E->arena, "right operand of '%s'", ast_opr_name(e->op))))
        return NULL;
      return b;
    }
    Value *b = eval(E, env, e->b);
    return b ? binary_op(E, e->op, a, b, e->loc) : NULL;
  }
  case E_CALL: return eval_call(E, env, e);
  case E_INDEX: return eval_index(E, env, e);
  case E_SLICE: return fail(E, e->loc, "a slice a:b is only valid inside [ ]");
  case E_ATTR: return eval_attr(E, env, e);
  case E_LIST: return eval_items(E, env, e, V_LIST);
  case E_TUPLE: return eval_items(E, env, e, V_TUPLE);
  case E_LISTCOMP: return eval_listcomp(E, env, e);
  case E_COND: {
    Value *c = eval(E, env, e->b);
    bool b;
    if (!c || !truthy(E, c, &b, e->b->loc)) return NULL;
    return eval(E, env, b ? e->a : e->c);
  }
  }
  return fail(E, e->loc, "internal: unknown expression");
}

/* ---- annotations ------------------------------------------------------ */

static bool is_shape_var(Elab *E, Env *scope, Expr *e) {
  return e->kind == E_NAME && !lookup(E, scope, e->str, e->loc, false);
}

static void expected_str(Elab *E, Env *scope, TypeExpr *t, StrBuf *sb) {
  sb_printf(sb, "%s[", t->dtype);
  for (int i = 0; i < t->ndims; i++) {
    if (i) sb_putc(sb, ',');
    Expr *de = t->dims[i].expr;
    if (!de) {
      sb_puts(sb, "...");
      continue;
    }
    Value *v = de->kind == E_NAME ? lookup(E, scope, de->str, de->loc, false) : NULL;
    if (v && v->kind == V_INT) sb_printf(sb, "%lld", (long long)v->i);
    else if (v && v->kind == V_DIM) ir_format_dim(sb, v->dim, E->ir.g ? E->ir.g->sym_name : NULL);
    else if (de->kind == E_NAME) sb_puts(sb, de->str);
    else if (de->kind == E_INT) sb_printf(sb, "%lld", de->ival);
    else sb_puts(sb, "?");
  }
  sb_putc(sb, ']');
}

static bool mismatch(Elab *E, Env *scope, Value *v, TypeExpr *t, SrcLoc loc, const char *what,
                     const char *why) {
  StrBuf sb;
  sb_init(&sb);
  expected_str(E, scope, t, &sb);
  fail(E, loc, "%s: expected %s, found %s%s%s", what, sb.data ? sb.data : "?", value_str(E, v),
       why ? ": " : "", why ? why : "");
  diag_note(E->diags, t->loc, "declared here");
  sb_free(&sb);
  return false;
}

static bool check_dim(Elab *E, Env *scope, Env *bind, Value *v, TypeExpr *t, Expr *de, Dim actual,
                      SrcLoc loc, const char *what) {
  if (is_shape_var(E, scope, de) && !env_get_local(bind, de->str)) {
    Value *d = actual.sym ? new_value(E, V_DIM) : int_value(E, actual.n);
    if (!d) return false;
    if (actual.sym) d->dim = actual;
    return env_set(E, bind, de->str, d);
  }
  Value *want = eval(E, scope, de);
  Dim w;
  if (!want || !as_dim(E, want, &w, de->loc, "dimension in a type")) return false;
  if (!dim_eq(w, actual)) return mismatch(E, scope, v, t, loc, what, NULL);
  return true;
}

static bool check_tensor(Elab *E, Env *scope, Env *bind, Value *v, TypeExpr *t, SrcLoc loc,
                         const char *what) {
  DType want;
  if (!dtype_from_name(t->dtype, &want)) {
    fail(E, t->loc, "unknown type '%s' (types: int float bool str list any, dtypes: f32 f16 bf16 f64 i32 i64 u8 bool)",
         t->dtype);
    return false;
  }
  if (!is_tensorish(v)) return mismatch(E, scope, v, t, loc, what, NULL);
  DType have = tensor_dtype(v);
  const Shape *s = v->kind == V_TENSOR ? &v->node->shape : &v->param->info.shape;
  if (have != want) return mismatch(E, scope, v, t, loc, what, "dtypes differ");
  if (t->any_rank) return true;
  int ell = -1;
  for (int i = 0; i < t->ndims; i++)
    if (t->dims[i].ellipsis) {
      if (ell >= 0) {
        fail(E, t->loc, "a type may contain '...' once");
        return false;
      }
      ell = i;
    }
  int fixed = t->ndims - (ell >= 0);
  if (ell < 0 ? s->rank != fixed : s->rank < fixed)
    return mismatch(E, scope, v, t, loc, what, "ranks differ");
  for (int i = 0; i < t->ndims; i++) {
    if (i == ell) continue;
    int axis = ell >= 0 && i > ell ? s->rank - (t->ndims - i) : i;
    if (!check_dim(E, scope, bind, v, t, t->dims[i].expr, s->d[axis], loc, what)) return false;
  }
  return true;
}

bool check_type(Elab *E, Env *scope, Env *bind, Value *v, TypeExpr *t, SrcLoc loc, const char *what) {
  bool ok;
  switch (t->kind) {
  case TY_ANY: return true;
  case TY_INT: ok = v->kind == V_INT; break;
  case TY_FLOAT: ok = v->kind == V_INT || v->kind == V_FLOAT; break;
  case TY_BOOL: ok = v->kind == V_BOOL; break;
  case TY_STR: ok = v->kind == V_STR; break;
  case TY_LIST: ok = v->kind == V_LIST || v->kind == V_TUPLE; break;
  case TY_TENSOR: return check_tensor(E, scope, bind, v, t, loc, what);
  default: ok = false;
  }
  if (!ok) {
    static const char *const names[] = {"any", "int", "float", "bool", "str", "list", "tensor"};
    fail(E, loc, "%s: expected %s, found %s", what, names[t->kind], value_str(E, v));
  }
  return ok;
}
