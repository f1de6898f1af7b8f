/* flops.c: counting a graph's FLOPs from its ops and shapes (flops.h).
 * Consumes a shape-checked Graph (elaborated, differentiated or a
 * training step); produces a FlopCount. Each op's count is a sum of
 * products of dimensions, kept as a FlopTerm so that the batch symbol
 * stays symbolic. */
#include "flops.h"

#include <stdio.h>

/* A count under construction; bad after an overflow or a B squared. */
typedef struct {
  FlopTerm t;
  bool bad;
} Prod;

static Prod prod_const(int64_t c) { return (Prod){{c, 0}, false}; }

static void prod_dim(Prod *p, Dim d) {
  if (p->bad) return;
  if (d.sym) {
    p->bad = p->t.per_batch != 0 || mul_overflows(p->t.fixed, d.n, &p->t.per_batch);
    p->t.fixed = 0;
    return;
  }
  p->bad = mul_overflows(p->t.fixed, d.n, &p->t.fixed) || mul_overflows(p->t.per_batch, d.n, &p->t.per_batch);
}

/* Multiplies in the axes [from, to) of s. */
static void prod_axes(Prod *p, const Shape *s, int from, int to) {
  for (int i = from; i < to; i++) prod_dim(p, s->d[i]);
}

static Prod numel(const Shape *s, int64_t c) {
  Prod p = prod_const(c);
  prod_axes(&p, s, 0, s->rank);
  return p;
}

/* ca a + cb b */
static Prod lin(Prod a, int64_t ca, Prod b, int64_t cb) {
  Prod r = {{0, 0}, a.bad || b.bad};
  int64_t x, y;
  r.bad = r.bad || mul_overflows(a.t.fixed, ca, &x) || mul_overflows(b.t.fixed, cb, &y) ||
          add_overflows(x, y, &r.t.fixed);
  r.bad = r.bad || mul_overflows(a.t.per_batch, ca, &x) || mul_overflows(b.t.per_batch, cb, &y) ||
          add_overflows(x, y, &r.t.per_batch);
  return r;
}

/* MATMUL: 2 K per output element. */
static Prod matmul(const Node *n) {
  const Shape *a = &n->src[0]->shape;
  Prod p = numel(&n->shape, 2);
  prod_dim(&p, a->d[a->rank - 1]);
  return p;
}

/* A convolution's 2 per multiply-add: the forward's output g [N,O,h,w]
 * times the weight's C kh kw, for the forward and both backward ops. */
static Prod conv(const Shape *g, const Shape *w) {
  Prod p = numel(g, 2);
  prod_axes(&p, w, 1, 4);
  return p;
}

/* q [.., T, D], k [.., S, D], v [.., S, Dv]: c_d (T S D) + c_dv (T S Dv)
 * over the batch axes. */
static Prod attention(const Node *n, int64_t c_d, int64_t c_dv) {
  const Shape *q = &n->src[0]->shape, *k = &n->src[1]->shape, *v = &n->src[2]->shape;
  int r = q->rank;
  Prod ts = prod_const(1);
  prod_axes(&ts, q, 0, r - 1); /* batch axes and T */
  prod_dim(&ts, k->d[r - 2]);  /* S */
  Prod tsd = ts, tsdv = ts;
  prod_dim(&tsd, q->d[r - 1]);
  prod_dim(&tsdv, v->d[r - 1]);
  return lin(tsd, c_d, tsdv, c_dv);
}

/* The forward is 2 TSD (q k^T) + 2 TSDv (P v); the backward's GEMMs are
 * dv = P^T g (2 TSDv), dP = g v^T (2 TSDv, half to dq, half to dk),
 * dq = dS k and dk = dS^T q (2 TSD each). */
static Prod attention_bwd(const Node *n) {
  return n->attr.index == 2 ? attention(n, 0, 2) : attention(n, 2, 1);
}

static bool is_gemm(OpKind op) {
  return op == OP_MATMUL || op == OP_CONV2D || op == OP_CONV2D_BWD_INPUT || op == OP_CONV2D_BWD_WEIGHT ||
         op == OP_ATTENTION || op == OP_ATTENTION_BWD;
}

static Prod node_flops(const Node *n) {
  switch (n->op) {
  case OP_MATMUL: return matmul(n);
  case OP_CONV2D: return conv(&n->shape, &n->src[1]->shape);
  case OP_CONV2D_BWD_INPUT: return conv(&n->src[0]->shape, &n->src[1]->shape);
  case OP_CONV2D_BWD_WEIGHT: return conv(&n->src[1]->shape, &n->shape);
  case OP_ATTENTION: return attention(n, 2, 2);
  case OP_ATTENTION_BWD: return attention_bwd(n);
  case OP_SCATTER_ADD: return numel(&n->src[0]->shape, 1);
  case OP_CAST: case OP_STOP_GRAD: return prod_const(0);
  default: break;
  }
  if (op_flags[n->op] & OPF_ELEMENTWISE) return numel(&n->shape, 1);
  if (op_flags[n->op] & OPF_REDUCE) return numel(&n->src[0]->shape, 1);
  return prod_const(0); /* leaves, random numbers, movement, gather */
}

static bool add_term(FlopTerm *to, FlopTerm t) {
  return !add_overflows(to->fixed, t.fixed, &to->fixed) && !add_overflows(to->per_batch, t.per_batch, &to->per_batch);
}

bool flops_node(DiagList *d, const Node *n, FlopCount *out) {
  Prod p = node_flops(n);
  if (!p.bad && add_term(is_gemm(n->op) ? &out->gemm : &out->pointwise, p.t)) return true;
  diag_error(d, n->loc, "flops: the count of %%%d (%s) does not fit in 64 bits or grows with the batch squared",
             n->id, op_name(n->op));
  return false;
}

bool flops_count(DiagList *d, const Graph *g, FlopCount *out) {
  *out = (FlopCount){{0, 0}, {0, 0}};
  for (int i = 0; i < g->n; i++)
    if (!flops_node(d, g->nodes[i], out)) return false;
  return true;
}

FlopTerm flops_total(const FlopCount *c) {
  return (FlopTerm){c->gemm.fixed + c->pointwise.fixed, c->gemm.per_batch + c->pointwise.per_batch};
}

double flops_at(FlopTerm t, int64_t batch) { return (double)t.fixed + (double)t.per_batch * (double)batch; }

const char *flops_format(double flops, const char *unit, char *buf, size_t size) {
  static const char prefix[] = " kMGTPE";
  int i = 0;
  while (i < 6 && (flops >= 999.95 || flops <= -999.95)) {
    flops /= 1000;
    i++;
  }
  if (i == 0) snprintf(buf, size, "%.0f %s", flops, unit);
  else snprintf(buf, size, "%#.4g %c%s", flops, prefix[i], unit);
  return buf;
}
