/* autodiff.c: reverse-mode autodiff on the graph IR.
 *
 * Consumes a traced entry graph; appends its backward ops to the same graph
 * (so backward code later goes through the same fusion and codegen) and
 * adds the gradients as outputs. Every op's VJP rule is one case of vjp()
 * below, in ops.def order. Gradients of an operand that was broadcast are
 * summed back to its shape (unbroadcast); fan-out contributions add up. */
#include "autodiff.h"

#include "fuse.h"

#include <string.h>

typedef struct {
  IrBuilder b;
  Graph *g;
  bool *needs;   /* node depends on something differentiated */
  Node **adj;    /* accumulated gradient of each forward node */
  int nforward;
  SrcLoc loc;    /* of the forward node being differentiated */
} Ad;

static Node *cnst(Ad *ad, double v, DType t) { return ir_const(&ad->b, v, t, ad->loc); }
static Node *add(Ad *ad, Node *x, Node *y) { return ir_binary(&ad->b, OP_ADD, x, y, ad->loc); }
static Node *mul(Ad *ad, Node *x, Node *y) { return ir_binary(&ad->b, OP_MUL, x, y, ad->loc); }
static Node *divide(Ad *ad, Node *x, Node *y) { return ir_binary(&ad->b, OP_DIV, x, y, ad->loc); }
static Node *neg(Ad *ad, Node *x) { return x ? ir_unary(&ad->b, OP_NEG, x, ad->loc) : NULL; }

static Node *scale(Ad *ad, Node *x, double v) {
  return x ? mul(ad, x, cnst(ad, v, x->dtype)) : NULL;
}

/* where(c, x, 0) */
static Node *select(Ad *ad, Node *c, Node *x) {
  return c && x ? ir_where(&ad->b, c, x, cnst(ad, 0, x->dtype), ad->loc) : NULL;
}

/* Sums g over the axes along which `to` was broadcast, giving `to`'s shape. */
static Node *unbroadcast(Ad *ad, Node *g, const Shape *to) {
  if (!g || shape_eq(&g->shape, to)) return g;
  int lead = g->shape.rank - to->rank;
  uint32_t axes = 0;
  for (int i = 0; i < g->shape.rank; i++) {
    bool leading = i < lead;
    bool widened = !leading && to->d[i - lead].n == 1 && !to->d[i - lead].sym &&
                   !(g->shape.d[i].n == 1 && !g->shape.d[i].sym);
    if (leading || widened) axes |= 1u << i;
  }
  Node *s = axes ? ir_reduce(&ad->b, OP_SUM, g, axes, true, ad->loc) : g;
  return s ? ir_reshape(&ad->b, s, *to, ad->loc) : NULL;
}

/* The gradient of a reduction's result, spread back over its input. */
static Node *spread(Ad *ad, Node *n, Node *g) {
  Shape keep = n->src[0]->shape;
  for (int i = 0; i < keep.rank; i++)
    if (n->attr.axes & (1u << i)) keep.d[i] = (Dim){1, false};
  Node *k = ir_reshape(&ad->b, g, keep, ad->loc);
  return k ? ir_expand(&ad->b, k, n->src[0]->shape, ad->loc) : NULL;
}

/* Number of elements a MEAN averaged, as a tensor that broadcasts against
 * the kept shape (a constant unless the batch axis was reduced). */
static Node *mean_count(Ad *ad, Node *n) {
  const Shape *s = &n->src[0]->shape;
  Dim count = {1, false};
  for (int i = 0; i < s->rank; i++)
    if (n->attr.axes & (1u << i)) {
      count.n *= s->d[i].n;
      count.sym = count.sym || s->d[i].sym;
    }
  if (!count.sym) return cnst(ad, (double)count.n, n->dtype);
  Node *ones = ir_expand(&ad->b, cnst(ad, 1, n->dtype), *s, ad->loc);
  return ones ? ir_reduce(&ad->b, OP_SUM, ones, n->attr.axes, true, ad->loc) : NULL;
}

/* The transpose of x's last two axes; of a transpose, its source, so that
 * the backward of a linear layer reads the weight itself and the forward
 * transpose keeps a single reader (which the GEMM absorbs). */
static Node *transpose_last(Ad *ad, Node *x) {
  if (x && fuse_is_transpose(x)) return x->src[0];
  int perm[IR_MAX_RANK], r = x->shape.rank;
  for (int i = 0; i < r; i++) perm[i] = i;
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return ir_permute(&ad->b, x, perm, ad->loc);
}

/* x as a matrix: its leading axes flattened into the rows. */
static Node *as_matrix(Ad *ad, Node *x) {
  Shape m = {2, {{1, false}, x->shape.d[x->shape.rank - 1]}};
  for (int i = 0; i < x->shape.rank - 1; i++) m.d[0] = (Dim){m.d[0].n * x->shape.d[i].n, m.d[0].sym || x->shape.d[i].sym};
  return ir_reshape(&ad->b, x, m, ad->loc);
}

/* The gradient of a matrix y that multiplies a batch of matrices x (a
 * linear layer's weight): x^T g summed over the batch, which is one GEMM
 * over the flattened batch, not a batch of GEMMs and a sum. */
static Node *shared_weight_grad(Ad *ad, Node *x, Node *g) {
  Node *xm = as_matrix(ad, x), *gm = as_matrix(ad, g);
  return xm && gm ? ir_matmul(&ad->b, transpose_last(ad, xm), gm, ad->loc) : NULL;
}

/* Contribution to operand k of CONCAT: its slice of g. */
static Node *concat_part(Ad *ad, Node *n, Node *g, int k) {
  int axis = n->attr.axis;
  int64_t start[IR_MAX_RANK] = {0}, stop[IR_MAX_RANK], step[IR_MAX_RANK];
  for (int i = 0; i < g->shape.rank; i++) {
    stop[i] = g->shape.d[i].sym ? INT64_MAX : g->shape.d[i].n;
    step[i] = 1;
  }
  for (int j = 0; j < k; j++) start[axis] += n->src[j]->shape.d[axis].n;
  stop[axis] = start[axis] + n->src[k]->shape.d[axis].n;
  return ir_slice(&ad->b, g, start, stop, step, ad->loc);
}

/* d(g)/d(operand k) of node n, or NULL with a diagnostic. */
static Node *vjp(Ad *ad, Node *n, Node *g, int k) {
  Node *x = n->src[0], *y = n->nsrc > 1 ? n->src[1] : NULL;
  Node *other = k == 0 ? y : x;
  switch (n->op) {
  case OP_NEG: return neg(ad, g);
  case OP_EXP: return mul(ad, g, n);
  case OP_LOG: return divide(ad, g, x);
  case OP_SIN: return mul(ad, g, ir_unary(&ad->b, OP_COS, x, ad->loc));
  case OP_COS: return neg(ad, mul(ad, g, ir_unary(&ad->b, OP_SIN, x, ad->loc)));
  case OP_TANH: return mul(ad, g, ir_binary(&ad->b, OP_SUB, cnst(ad, 1, n->dtype), mul(ad, n, n), ad->loc));
  case OP_SQRT: return divide(ad, scale(ad, g, 0.5), n);
  case OP_RSQRT: return mul(ad, scale(ad, g, -0.5), mul(ad, n, mul(ad, n, n)));
  case OP_ABS: {
    Node *zero = cnst(ad, 0, x->dtype);
    Node *pos = select(ad, ir_binary(&ad->b, OP_LT, zero, x, ad->loc), g);
    return ir_binary(&ad->b, OP_SUB, pos, select(ad, ir_binary(&ad->b, OP_LT, x, zero, ad->loc), g), ad->loc);
  }
  case OP_CAST: return ir_cast(&ad->b, g, x->dtype, ad->loc);
  case OP_ADD: return unbroadcast(ad, g, &n->src[k]->shape);
  case OP_SUB: return unbroadcast(ad, k == 0 ? g : neg(ad, g), &n->src[k]->shape);
  case OP_MUL: return unbroadcast(ad, mul(ad, g, other), &n->src[k]->shape);
  case OP_DIV:
    if (k == 0) return unbroadcast(ad, divide(ad, g, y), &x->shape);
    return unbroadcast(ad, neg(ad, divide(ad, mul(ad, g, n), y)), &y->shape);
  case OP_POW:
    if (k == 0) {
      Node *ym1 = ir_binary(&ad->b, OP_SUB, y, cnst(ad, 1, y->dtype), ad->loc);
      Node *d = mul(ad, y, ir_binary(&ad->b, OP_POW, x, ym1, ad->loc));
      return unbroadcast(ad, mul(ad, g, d), &x->shape);
    }
    return unbroadcast(ad, mul(ad, g, mul(ad, n, ir_unary(&ad->b, OP_LOG, x, ad->loc))), &y->shape);
  case OP_MAX:
  case OP_MIN: {
    /* Ties send the gradient to the first operand. */
    Node *first = n->op == OP_MAX ? ir_binary(&ad->b, OP_LE, y, x, ad->loc)
                                  : ir_binary(&ad->b, OP_LE, x, y, ad->loc);
    Node *gk = k == 0 ? select(ad, first, g)
                      : ir_where(&ad->b, first, cnst(ad, 0, g->dtype), g, ad->loc);
    return unbroadcast(ad, gk, &n->src[k]->shape);
  }
  case OP_WHERE:
    if (k == 1) return unbroadcast(ad, select(ad, x, g), &n->src[1]->shape);
    return unbroadcast(ad, ir_where(&ad->b, x, cnst(ad, 0, g->dtype), g, ad->loc), &n->src[2]->shape);
  case OP_SUM: return spread(ad, n, g);
  case OP_MEAN: return divide(ad, spread(ad, n, g), mean_count(ad, n));
  case OP_RMAX: {
    Node *r = spread(ad, n, n);
    return select(ad, ir_binary(&ad->b, OP_EQ, x, r, ad->loc), spread(ad, n, g));
  }
  case OP_RESHAPE: return ir_reshape(&ad->b, g, x->shape, ad->loc);
  case OP_PERMUTE: {
    int inv[IR_MAX_RANK];
    for (int i = 0; i < n->shape.rank; i++) inv[n->attr.perm[i]] = i;
    return ir_permute(&ad->b, g, inv, ad->loc);
  }
  case OP_SLICE: return ir_pad(&ad->b, g, x->shape, n->attr.start, n->attr.step, ad->loc);
  case OP_CONCAT: return concat_part(ad, n, g, k);
  case OP_EXPAND: return unbroadcast(ad, g, &x->shape);
  case OP_MATMUL:
    if (k == 0) return unbroadcast(ad, ir_matmul(&ad->b, g, transpose_last(ad, y), ad->loc), &x->shape);
    if (y->shape.rank == 2 && x->shape.rank > 2) return shared_weight_grad(ad, x, g);
    return unbroadcast(ad, ir_matmul(&ad->b, transpose_last(ad, x), g, ad->loc), &y->shape);
  case OP_CONV2D:
    if (k == 0) return ir_conv2d_bwd_input(&ad->b, g, y, n->attr.stride, n->attr.pad, x->shape, ad->loc);
    return ir_conv2d_bwd_weight(&ad->b, x, g, n->attr.stride, n->attr.pad, y->shape, ad->loc);
  case OP_GATHER: return ir_scatter_add(&ad->b, g, y, x->shape, ad->loc);
  case OP_ATTENTION:
    return ir_attention_bwd(&ad->b, n->src[0], n->src[1], n->src[2], g, k, n->attr.value, ad->loc);
  default:
    diag_error(ad->b.diags, n->loc, "autodiff: no gradient rule for %s", op_name(n->op));
    return NULL;
  }
}

/* Whether gradient flows from node n into operand k at all. */
static bool flows(const Node *n, int k) {
  switch (n->op) {
  case OP_STOP_GRAD:
  case OP_LT: case OP_LE: case OP_EQ: case OP_NE:
    return false;
  case OP_WHERE: return k > 0;
  case OP_GATHER: return k == 0;
  case OP_CAST: return dtype_is_float(n->dtype) && dtype_is_float(n->src[0]->dtype);
  default: return dtype_is_float(n->src[k]->dtype);
  }
}

static bool wrt_input(const Node *n, const AdOptions *opt) {
  for (int i = 0; i < opt->nwrt_inputs; i++)
    if (!strcmp(opt->wrt_inputs[i], n->name)) return true;
  return false;
}

/* needs[i]: node i depends on a trainable parameter or a requested input. */
static void mark_needs(Ad *ad, const ParamTable *params, const AdOptions *opt) {
  for (int i = 0; i < ad->nforward; i++) {
    Node *n = ad->g->nodes[i];
    if (n->op == OP_PARAM) ad->needs[i] = params->items[n->attr.index].trainable;
    else if (n->op == OP_INPUT) ad->needs[i] = wrt_input(n, opt);
    else
      for (int k = 0; k < n->nsrc; k++)
        if (ad->needs[n->src[k]->id] && flows(n, k)) ad->needs[i] = true;
  }
}

static bool accumulate(Ad *ad, Node *src, Node *c) {
  if (!c) return false;
  ad->adj[src->id] = ad->adj[src->id] ? add(ad, ad->adj[src->id], c) : c;
  return ad->adj[src->id] != NULL;
}

static bool backward(Ad *ad, int loss_id) {
  for (int i = loss_id; i >= 0; i--) {
    Node *n = ad->g->nodes[i];
    Node *g = ad->adj[i];
    if (!g || !ad->needs[i]) continue;
    ad->loc = n->loc;
    for (int k = 0; k < n->nsrc; k++) {
      Node *s = n->src[k];
      if (!ad->needs[s->id] || !flows(n, k)) continue;
      if (!accumulate(ad, s, vjp(ad, n, g, k))) return false;
    }
  }
  return true;
}

static Node *zeros_like(Ad *ad, const Shape *s, DType t) {
  return ir_expand(&ad->b, cnst(ad, 0, t), *s, ad->loc);
}

/* Gradient outputs: every trainable parameter in table order, then the
 * requested inputs. */
static bool add_grad_outputs(Ad *ad, const ParamTable *params, const AdOptions *opt) {
  Node **param_node = arena_alloc(ad->b.arena, sizeof(Node *) * (size_t)(params->n + 1));
  if (!param_node) return false;
  for (int i = 0; i < ad->nforward; i++)
    if (ad->g->nodes[i]->op == OP_PARAM) param_node[ad->g->nodes[i]->attr.index] = ad->g->nodes[i];
  ad->loc = ad->g->loc;
  for (int p = 0; p < params->n; p++) {
    const ParamInfo *pi = &params->items[p];
    if (!pi->trainable) continue;
    Node *gn = param_node[p] ? ad->adj[param_node[p]->id] : NULL;
    if (!gn) gn = zeros_like(ad, &pi->shape, pi->dtype);
    const char *name = arena_printf(ad->b.arena, "grad.%s", pi->name);
    if (!gn || !name || !ir_add_output(ad->b.arena, ad->g, gn, name)) return false;
  }
  for (int w = 0; w < opt->nwrt_inputs; w++) {
    Node *in = NULL;
    for (int i = 0; i < ad->g->ninputs; i++)
      if (!strcmp(ad->g->inputs[i]->name, opt->wrt_inputs[w])) in = ad->g->inputs[i];
    if (!in) {
      diag_error(ad->b.diags, ad->g->loc, "autodiff: entry %s has no input '%s'", ad->g->name,
                 opt->wrt_inputs[w]);
      return false;
    }
    if (!dtype_is_float(in->dtype)) {
      diag_error(ad->b.diags, in->loc, "autodiff: input '%s' is not floating point", in->name);
      return false;
    }
    Node *gn = ad->adj[in->id] ? ad->adj[in->id] : zeros_like(ad, &in->shape, in->dtype);
    const char *name = arena_printf(ad->b.arena, "grad.%s", in->name);
    if (!gn || !name || !ir_add_output(ad->b.arena, ad->g, gn, name)) return false;
  }
  return true;
}

bool ad_build_grad(Arena *a, DiagList *d, Graph *g, const ParamTable *params,
                   const AdOptions *opt) {
  static const AdOptions none = {0, NULL, 0};
  if (!opt) opt = &none;
  if (opt->loss_output < 0 || opt->loss_output >= g->noutputs) {
    diag_error(d, g->loc, "autodiff: entry %s has no output %d", g->name, opt->loss_output);
    return false;
  }
  Node *loss = g->outputs[opt->loss_output];
  if (loss->shape.rank != 0 || !dtype_is_float(loss->dtype)) {
    diag_error(d, g->loc, "autodiff: the loss (output %d of entry %s) must be a float scalar, found %s",
               opt->loss_output, g->name, ir_type_str(a, loss->dtype, &loss->shape, g->sym_name));
    return false;
  }
  Ad ad = {{a, d, g, 0}, g, NULL, NULL, g->n, g->loc};
  for (int i = 0; i < g->n; i++)
    if (g->nodes[i]->op == OP_UNIFORM || g->nodes[i]->op == OP_NORMAL || g->nodes[i]->op == OP_BERNOULLI)
      ad.b.next_stream = g->nodes[i]->attr.stream + 1;
  ad.needs = arena_alloc(a, (size_t)g->n + 1);
  ad.adj = arena_alloc(a, sizeof(Node *) * ((size_t)g->n + 1));
  if (!ad.needs || !ad.adj) return false;
  mark_needs(&ad, params, opt);
  ad.loc = loss->loc;
  ad.adj[loss->id] = cnst(&ad, 1, loss->dtype);
  if (!ad.adj[loss->id] || !backward(&ad, loss->id) || !add_grad_outputs(&ad, params, opt)) return false;
  return ir_prune(a, g) && ir_verify(d, g);
}
