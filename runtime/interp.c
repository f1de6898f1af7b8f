/* interp.c: the reference interpreter. Every node is evaluated in graph
 * order into a double array; shapes are the graph's with the batch symbol
 * replaced by its value. Each op is a short loop written for clarity, with
 * the index arithmetic spelled out. */
#include "interp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

typedef struct {
  int rank;
  int64_t d[IR_MAX_RANK];
} CShape;

typedef struct {
  const Graph *g;
  const InterpOptions *opt;
  RtError *err;
  int64_t batch;   /* value of the batch symbol; -1 while unbound */
  double **val;
  CShape *shape;
  int *last_use;
} Interp;

static int64_t numel(const CShape *s) {
  int64_t n = 1;
  for (int i = 0; i < s->rank; i++) n *= s->d[i];
  return n;
}

static CShape concrete(const Interp *I, const Shape *s) {
  CShape c = {s->rank, {0}};
  for (int i = 0; i < s->rank; i++) c.d[i] = s->d[i].n * (s->d[i].sym ? I->batch : 1);
  return c;
}

/* Row-major multi-index of linear index i. */
static void unravel(int64_t i, const CShape *s, int64_t *coord) {
  for (int k = s->rank - 1; k >= 0; k--) {
    coord[k] = s->d[k] ? i % s->d[k] : 0;
    i = s->d[k] ? i / s->d[k] : 0;
  }
}

static int64_t ravel(const int64_t *coord, const CShape *s) {
  int64_t off = 0;
  for (int k = 0; k < s->rank; k++) off = off * s->d[k] + coord[k];
  return off;
}

/* Offset in `src` of the element that broadcasts to output coordinate
 * `coord` (numpy rules: axes aligned on the right, size-1 axes repeat). */
static int64_t bcast_offset(const int64_t *coord, const CShape *out, const CShape *src) {
  int64_t off = 0;
  int lead = out->rank - src->rank;
  for (int k = 0; k < src->rank; k++) off = off * src->d[k] + (src->d[k] == 1 ? 0 : coord[lead + k]);
  return off;
}

/* ---- elementwise ------------------------------------------------------ */

static double unary(OpKind op, double a) {
  switch (op) {
  case OP_NEG: return -a;
  case OP_EXP: return exp(a);
  case OP_LOG: return log(a);
  case OP_SIN: return sin(a);
  case OP_COS: return cos(a);
  case OP_TANH: return tanh(a);
  case OP_SQRT: return sqrt(a);
  case OP_RSQRT: return 1.0 / sqrt(a);
  case OP_ABS: return fabs(a);
  default: return a; /* STOP_GRAD, RESHAPE */
  }
}

static double binary(OpKind op, double a, double b) {
  switch (op) {
  case OP_ADD: return a + b;
  case OP_SUB: return a - b;
  case OP_MUL: return a * b;
  case OP_DIV: return a / b;
  case OP_POW: return pow(a, b);
  case OP_MAX: return a >= b ? a : b;
  case OP_MIN: return a <= b ? a : b;
  case OP_LT: return a < b;
  case OP_LE: return a <= b;
  case OP_EQ: return a == b;
  case OP_NE: return a != b;
  default: return 0;
  }
}

static double cast_value(double v, DType to) {
  switch (to) {
  case DT_I32:
  case DT_I64: return trunc(v);
  case DT_U8: return (double)(uint8_t)(int64_t)trunc(v); /* wraps like a C cast */
  case DT_BOOL: return v != 0;
  default: return v;
  }
}

static void eval_elementwise(Interp *I, const Node *n, double *r, const CShape *out) {
  int64_t coord[IR_MAX_RANK], count = numel(out);
  const double *a = I->val[n->src[0]->id];
  const CShape *sa = &I->shape[n->src[0]->id];
  const double *b = n->nsrc > 1 ? I->val[n->src[1]->id] : NULL;
  const CShape *sb = n->nsrc > 1 ? &I->shape[n->src[1]->id] : NULL;
  const double *c = n->nsrc > 2 ? I->val[n->src[2]->id] : NULL;
  const CShape *sc = n->nsrc > 2 ? &I->shape[n->src[2]->id] : NULL;
  for (int64_t i = 0; i < count; i++) {
    unravel(i, out, coord);
    double x = a[bcast_offset(coord, out, sa)];
    if (n->op == OP_WHERE)
      r[i] = x != 0 ? b[bcast_offset(coord, out, sb)] : c[bcast_offset(coord, out, sc)];
    else if (n->nsrc == 2) r[i] = binary(n->op, x, b[bcast_offset(coord, out, sb)]);
    else if (n->op == OP_CAST) r[i] = cast_value(x, n->dtype);
    else if (n->op == OP_EXPAND) r[i] = x;
    else r[i] = unary(n->op, x);
  }
}

/* ---- reductions and movement ------------------------------------------ */

static void eval_reduce(Interp *I, const Node *n, double *r, const CShape *out) {
  const CShape *in = &I->shape[n->src[0]->id];
  const double *a = I->val[n->src[0]->id];
  int64_t count = numel(out), total = numel(in), coord[IR_MAX_RANK];
  for (int64_t i = 0; i < count; i++) r[i] = n->op == OP_RMAX ? -INFINITY : 0.0;
  CShape kept = *in;
  for (int k = 0; k < in->rank; k++)
    if (n->attr.axes & (1u << k)) kept.d[k] = 1;
  for (int64_t i = 0; i < total; i++) {
    unravel(i, in, coord);
    for (int k = 0; k < in->rank; k++)
      if (n->attr.axes & (1u << k)) coord[k] = 0;
    int64_t o = ravel(coord, &kept); /* same order with or without keepdims */
    r[o] = n->op == OP_RMAX ? (a[i] > r[o] ? a[i] : r[o]) : r[o] + a[i];
  }
  if (n->op == OP_MEAN && count > 0) {
    double per = (double)total / (double)count;
    for (int64_t i = 0; i < count; i++) r[i] /= per;
  }
}

static void eval_permute(Interp *I, const Node *n, double *r, const CShape *out) {
  const CShape *in = &I->shape[n->src[0]->id];
  const double *a = I->val[n->src[0]->id];
  int64_t coord[IR_MAX_RANK], src[IR_MAX_RANK];
  for (int64_t i = 0; i < numel(out); i++) {
    unravel(i, out, coord);
    for (int k = 0; k < out->rank; k++) src[n->attr.perm[k]] = coord[k];
    r[i] = a[ravel(src, in)];
  }
}

/* SLICE reads a strided window; PAD writes one into zeros. */
static void eval_window(Interp *I, const Node *n, double *r, const CShape *out) {
  const CShape *in = &I->shape[n->src[0]->id];
  const double *a = I->val[n->src[0]->id];
  bool pad = n->op == OP_PAD;
  const CShape *small = pad ? in : out, *big = pad ? out : in;
  int64_t coord[IR_MAX_RANK];
  if (pad) memset(r, 0, sizeof(double) * (size_t)numel(out));
  for (int64_t i = 0; i < numel(small); i++) {
    unravel(i, small, coord);
    for (int k = 0; k < small->rank; k++) coord[k] = n->attr.start[k] + coord[k] * n->attr.step[k];
    int64_t o = ravel(coord, big);
    if (pad) r[o] = a[i];
    else r[i] = a[o];
  }
}

static void eval_concat(Interp *I, const Node *n, double *r, const CShape *out) {
  int axis = n->attr.axis;
  int64_t coord[IR_MAX_RANK], base = 0;
  for (int s = 0; s < n->nsrc; s++) {
    const CShape *in = &I->shape[n->src[s]->id];
    const double *a = I->val[n->src[s]->id];
    for (int64_t i = 0; i < numel(in); i++) {
      unravel(i, in, coord);
      coord[axis] += base;
      r[ravel(coord, out)] = a[i];
    }
    base += in->d[axis];
  }
}

/* ---- compute ---------------------------------------------------------- */

/* out[..., m, n] = sum_k a[..., m, k] b[..., k, n]; batch axes broadcast. */
static void eval_matmul(Interp *I, const Node *n, double *r, const CShape *out) {
  const CShape *sa = &I->shape[n->src[0]->id], *sb = &I->shape[n->src[1]->id];
  const double *a = I->val[n->src[0]->id], *b = I->val[n->src[1]->id];
  int64_t M = out->d[out->rank - 2], N = out->d[out->rank - 1], K = sa->d[sa->rank - 1];
  CShape ob = *out, ab = *sa, bb = *sb;
  ob.rank -= 2;
  ab.rank -= 2;
  bb.rank -= 2;
  int64_t coord[IR_MAX_RANK];
  for (int64_t bi = 0; bi < numel(&ob); bi++) {
    unravel(bi, &ob, coord);
    const double *pa = a + bcast_offset(coord, &ob, &ab) * M * K;
    const double *pb = b + bcast_offset(coord, &ob, &bb) * K * N;
    double *pr = r + bi * M * N;
    for (int64_t m = 0; m < M; m++)
      for (int64_t j = 0; j < N; j++) {
        double acc = 0;
        for (int64_t k = 0; k < K; k++) acc += pa[m * K + k] * pb[k * N + j];
        pr[m * N + j] = acc;
      }
  }
}

/* The three convolution ops share one loop over (n, o, ho, wo, c, i, j):
 * x[n, c, h, w] with h = ho*stride - pad + i meets w[o, c, i, j] and
 * y[n, o, ho, wo]; each op computes one of the three from the other two. */
typedef struct {
  int64_t N, C, H, W, O, KH, KW, HO, WO;
  int sh, sw, ph, pw;
} ConvDims;

static void eval_conv(Interp *I, const Node *n, double *r, const CShape *out) {
  const CShape *s0 = &I->shape[n->src[0]->id], *s1 = &I->shape[n->src[1]->id];
  const double *a = I->val[n->src[0]->id], *b = I->val[n->src[1]->id];
  const CShape *x = n->op == OP_CONV2D_BWD_INPUT ? out : s0;
  const CShape *w = n->op == OP_CONV2D ? s1 : n->op == OP_CONV2D_BWD_INPUT ? s1 : out;
  const CShape *y = n->op == OP_CONV2D ? out : n->op == OP_CONV2D_BWD_INPUT ? s0 : s1;
  ConvDims d = {x->d[0], x->d[1], x->d[2], x->d[3], w->d[0], w->d[2], w->d[3], y->d[2], y->d[3],
                n->attr.stride[0], n->attr.stride[1], n->attr.pad[0], n->attr.pad[1]};
  memset(r, 0, sizeof(double) * (size_t)numel(out));
  for (int64_t nn = 0; nn < d.N; nn++)
    for (int64_t o = 0; o < d.O; o++)
      for (int64_t ho = 0; ho < d.HO; ho++)
        for (int64_t wo = 0; wo < d.WO; wo++) {
          int64_t yi = ((nn * d.O + o) * d.HO + ho) * d.WO + wo;
          for (int64_t c = 0; c < d.C; c++)
            for (int64_t i = 0; i < d.KH; i++)
              for (int64_t j = 0; j < d.KW; j++) {
                int64_t h = ho * d.sh - d.ph + i, v = wo * d.sw - d.pw + j;
                if (h < 0 || h >= d.H || v < 0 || v >= d.W) continue;
                int64_t xi = ((nn * d.C + c) * d.H + h) * d.W + v;
                int64_t wi = ((o * d.C + c) * d.KH + i) * d.KW + j;
                if (n->op == OP_CONV2D) r[yi] += a[xi] * b[wi];
                else if (n->op == OP_CONV2D_BWD_INPUT) r[xi] += a[yi] * b[wi];
                else r[wi] += b[yi] * a[xi];
              }
        }
}

static bool eval_gather(Interp *I, const Node *n, double *r, const CShape *out) {
  bool scatter = n->op == OP_SCATTER_ADD;
  const CShape *table = scatter ? out : &I->shape[n->src[0]->id];
  const double *a = I->val[n->src[0]->id], *idx = I->val[n->src[1]->id];
  int64_t rows = table->d[0], D = table->d[1], count = numel(&I->shape[n->src[1]->id]);
  if (scatter) memset(r, 0, sizeof(double) * (size_t)numel(out));
  for (int64_t i = 0; i < count; i++) {
    int64_t row = (int64_t)idx[i];
    if (row < 0 || row >= rows)
      return rt_fail(I->err, "%s: index %lld out of range [0, %lld) at element %lld",
                     op_name(n->op), (long long)row, (long long)rows, (long long)i);
    for (int64_t k = 0; k < D; k++) {
      if (scatter) r[row * D + k] += a[i * D + k];
      else r[i * D + k] = a[row * D + k];
    }
  }
  return true;
}

/* Row-softmax of s (T x S) in place, max-subtracted. */
static void softmax_rows(double *s, int64_t T, int64_t S) {
  for (int64_t t = 0; t < T; t++) {
    double *row = s + t * S, mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < S; j++) mx = row[j] > mx ? row[j] : mx;
    for (int64_t j = 0; j < S; j++) sum += row[j] = exp(row[j] - mx);
    for (int64_t j = 0; j < S; j++) row[j] /= sum;
  }
}

/* ATTENTION and its three gradients, one batch element at a time:
 *   P = softmax(q k^T s),  o = P v
 *   dv = P^T g,  dP = g v^T,  dS = P * (dP - rowsum(dP * P)),
 *   dq = dS k s,  dk = dS^T q s */
static bool eval_attention(Interp *I, const Node *n, double *r, const CShape *out) {
  const CShape *sq = &I->shape[n->src[0]->id], *sk = &I->shape[n->src[1]->id],
               *sv = &I->shape[n->src[2]->id];
  const double *q = I->val[n->src[0]->id], *k = I->val[n->src[1]->id], *v = I->val[n->src[2]->id];
  const double *g = n->op == OP_ATTENTION_BWD ? I->val[n->src[3]->id] : NULL;
  int r2 = sq->rank - 2;
  int64_t T = sq->d[r2], S = sk->d[r2], Dk = sq->d[r2 + 1], Dv = sv->d[r2 + 1];
  int64_t batches = numel(sq) / (T * Dk);
  double s = n->attr.value;
  double *P = malloc(sizeof(double) * (size_t)(T * S)), *dS = malloc(sizeof(double) * (size_t)(T * S));
  if (!P || !dS) {
    free(P);
    free(dS);
    return rt_fail(I->err, "attention: out of memory");
  }
  memset(r, 0, sizeof(double) * (size_t)numel(out));
  for (int64_t b = 0; b < batches; b++) {
    const double *qb = q + b * T * Dk, *kb = k + b * S * Dk, *vb = v + b * S * Dv;
    for (int64_t t = 0; t < T; t++)
      for (int64_t j = 0; j < S; j++) {
        double acc = 0;
        for (int64_t e = 0; e < Dk; e++) acc += qb[t * Dk + e] * kb[j * Dk + e];
        P[t * S + j] = acc * s;
      }
    softmax_rows(P, T, S);
    if (!g) {
      for (int64_t t = 0; t < T; t++)
        for (int64_t e = 0; e < Dv; e++) {
          double acc = 0;
          for (int64_t j = 0; j < S; j++) acc += P[t * S + j] * vb[j * Dv + e];
          r[(b * T + t) * Dv + e] = acc;
        }
      continue;
    }
    const double *gb = g + b * T * Dv;
    int which = n->attr.index;
    if (which == 2) {
      for (int64_t j = 0; j < S; j++)
        for (int64_t e = 0; e < Dv; e++) {
          double acc = 0;
          for (int64_t t = 0; t < T; t++) acc += P[t * S + j] * gb[t * Dv + e];
          r[(b * S + j) * Dv + e] = acc;
        }
      continue;
    }
    for (int64_t t = 0; t < T; t++) {
      double dot = 0;
      for (int64_t j = 0; j < S; j++) {
        double dp = 0;
        for (int64_t e = 0; e < Dv; e++) dp += gb[t * Dv + e] * vb[j * Dv + e];
        dS[t * S + j] = dp;
        dot += dp * P[t * S + j];
      }
      for (int64_t j = 0; j < S; j++) dS[t * S + j] = P[t * S + j] * (dS[t * S + j] - dot) * s;
    }
    if (which == 0)
      for (int64_t t = 0; t < T; t++)
        for (int64_t e = 0; e < Dk; e++) {
          double acc = 0;
          for (int64_t j = 0; j < S; j++) acc += dS[t * S + j] * kb[j * Dk + e];
          r[(b * T + t) * Dk + e] = acc;
        }
    else
      for (int64_t j = 0; j < S; j++)
        for (int64_t e = 0; e < Dk; e++) {
          double acc = 0;
          for (int64_t t = 0; t < T; t++) acc += dS[t * S + j] * qb[t * Dk + e];
          r[(b * S + j) * Dk + e] = acc;
        }
  }
  free(P);
  free(dS);
  return true;
}

static void eval_random(Interp *I, const Node *n, double *r, const CShape *out) {
  uint64_t seed = I->opt->seed, stream = (uint64_t)n->attr.stream;
  for (int64_t i = 0; i < numel(out); i++) {
    if (n->op == OP_UNIFORM) r[i] = rng_uniform_f64(seed, stream, (uint64_t)i);
    else if (n->op == OP_NORMAL) r[i] = rng_normal_f64(seed, stream, (uint64_t)i);
    else r[i] = rng_uniform_f64(seed, stream, (uint64_t)i) < n->attr.value;
  }
}

/* ---- leaves: inputs and parameters ------------------------------------ */

static const char *expected_str(const Interp *I, const Node *n, char *buf, size_t size) {
  Arena a;
  arena_init(&a);
  snprintf(buf, size, "%s", ir_type_str(&a, n->dtype, &n->shape, I->g->sym_name));
  arena_free(&a);
  return buf;
}

/* Binds the batch symbol on first sight and checks every dimension. */
static bool check_leaf(Interp *I, const Node *n, const Tensor *t, const char *what) {
  char want[256], have[256];
  expected_str(I, n, want, sizeof want);
  tensor_type_str(t, have, sizeof have);
  if (!tensor_dtype_compatible(n->dtype, t->dtype) || t->rank != n->shape.rank)
    return rt_fail(I->err, "%s '%s': expected %s, found %s", what, n->name, want, have);
  for (int k = 0; k < t->rank; k++) {
    Dim d = n->shape.d[k];
    if (d.sym && I->batch < 0 && t->shape[k] % d.n == 0 && t->shape[k] > 0) I->batch = t->shape[k] / d.n;
    int64_t expect = d.n * (d.sym ? I->batch : 1);
    if (t->shape[k] != expect)
      return rt_fail(I->err, "%s '%s': expected %s%s, found %s", what, n->name, want,
                     d.sym ? " (the batch size is set by the first input)" : "", have);
  }
  return true;
}

static const Tensor *find_leaf(Interp *I, const Node *n, const ParamTable *params,
                               const TensorList *pvals, const TensorList *inputs) {
  bool is_param = n->op == OP_PARAM;
  const char *name = is_param ? params->items[n->attr.index].name : n->name;
  const Tensor *t = tensorlist_find(is_param ? pvals : inputs, name);
  char want[256];
  if (!t) rt_fail(I->err, "missing %s '%s' (expected %s)", is_param ? "parameter" : "input", name,
                  expected_str(I, n, want, sizeof want));
  else if (!check_leaf(I, n, t, is_param ? "parameter" : "input")) t = NULL;
  return t;
}

/* ---- driver ----------------------------------------------------------- */

static double round_to(double v, DType t) {
  switch (t) {
  case DT_F32: return (float)v;
  case DT_F16: return f16_to_f32(f32_to_f16((float)v));
  case DT_BF16: return bf16_to_f32(f32_to_bf16((float)v));
  default: return v;
  }
}

static bool eval_node(Interp *I, const Node *n, double *r, const CShape *out) {
  switch (n->op) {
  case OP_CONST: r[0] = n->attr.value; return true;
  case OP_ARANGE:
    for (int64_t i = 0; i < out->d[0]; i++) r[i] = (double)i;
    return true;
  case OP_UNIFORM:
  case OP_NORMAL:
  case OP_BERNOULLI: eval_random(I, n, r, out); return true;
  case OP_SUM:
  case OP_MEAN:
  case OP_RMAX: eval_reduce(I, n, r, out); return true;
  case OP_RESHAPE:
  case OP_STOP_GRAD:
    memcpy(r, I->val[n->src[0]->id], sizeof(double) * (size_t)numel(out));
    return true;
  case OP_PERMUTE: eval_permute(I, n, r, out); return true;
  case OP_SLICE:
  case OP_PAD: eval_window(I, n, r, out); return true;
  case OP_CONCAT: eval_concat(I, n, r, out); return true;
  case OP_MATMUL: eval_matmul(I, n, r, out); return true;
  case OP_CONV2D:
  case OP_CONV2D_BWD_INPUT:
  case OP_CONV2D_BWD_WEIGHT: eval_conv(I, n, r, out); return true;
  case OP_GATHER:
  case OP_SCATTER_ADD: return eval_gather(I, n, r, out);
  case OP_ATTENTION:
  case OP_ATTENTION_BWD: return eval_attention(I, n, r, out);
  default:
    if (op_flags[n->op] & OPF_ELEMENTWISE || n->op == OP_EXPAND) {
      eval_elementwise(I, n, r, out);
      return true;
    }
    return rt_fail(I->err, "interpreter: op %s is not implemented", op_name(n->op));
  }
}

static bool load_leaf(const Tensor *t, double *r) {
  for (int64_t i = 0; i < tensor_numel(t); i++) r[i] = tensor_get(t, i);
  return true;
}

static Tensor *make_output(Interp *I, const Node *n, int index) {
  const char *given = I->g->output_names ? I->g->output_names[index] : NULL;
  char name[64];
  if (!given) snprintf(name, sizeof name, "out.%d", index);
  DType t = dtype_is_float(n->dtype) && I->opt->precision == INTERP_F64 ? DT_F64 : n->dtype;
  const CShape *s = &I->shape[n->id];
  Tensor *out = tensor_new(given ? given : name, t, s->rank, s->d, I->err);
  if (out)
    for (int64_t i = 0; i < numel(s); i++) tensor_set(out, i, I->val[n->id][i]);
  return out;
}

static bool is_output(const Graph *g, int id) {
  for (int i = 0; i < g->noutputs; i++)
    if (g->outputs[i]->id == id) return true;
  return false;
}

static bool run_nodes(Interp *I, const ParamTable *params, const TensorList *pvals,
                      const TensorList *inputs) {
  const Graph *g = I->g;
  for (int i = 0; i < g->ninputs; i++) /* bind the batch from the inputs first */
    if (!find_leaf(I, g->inputs[i], params, pvals, inputs)) return false;
  if (I->batch < 0) I->batch = 1; /* no input carries the symbol */
  for (int i = 0; i < g->n; i++) {
    const Node *n = g->nodes[i];
    I->shape[i] = concrete(I, &n->shape);
    int64_t count = numel(&I->shape[i]);
    double *r = malloc(sizeof(double) * (size_t)(count ? count : 1));
    if (!r) return rt_fail(I->err, "out of memory evaluating %%%d (%s)", i, op_name(n->op));
    I->val[i] = r;
    bool ok;
    if (n->op == OP_INPUT || n->op == OP_PARAM) {
      const Tensor *t = find_leaf(I, n, params, pvals, inputs);
      ok = t && load_leaf(t, r);
    } else {
      ok = eval_node(I, n, r, &I->shape[i]);
    }
    if (!ok) return false;
    if (I->opt->precision == INTERP_F32)
      for (int64_t k = 0; k < count; k++) r[k] = round_to(r[k], n->dtype);
    for (int k = 0; k < n->nsrc; k++) { /* free operands at their last use */
      int s = n->src[k]->id;
      if (I->last_use[s] == i && !is_output(g, s)) {
        free(I->val[s]);
        I->val[s] = NULL;
      }
    }
  }
  return true;
}

bool interp_run(const Graph *g, const ParamTable *params, const TensorList *param_values,
                const TensorList *inputs, const InterpOptions *opt, TensorList *out,
                RtError *err) {
  static const InterpOptions defaults = {INTERP_F64, 0};
  Interp I = {g, opt ? opt : &defaults, err, -1, NULL, NULL, NULL};
  I.val = calloc((size_t)g->n + 1, sizeof *I.val);
  I.shape = calloc((size_t)g->n + 1, sizeof *I.shape);
  I.last_use = calloc((size_t)g->n + 1, sizeof *I.last_use);
  bool ok = I.val && I.shape && I.last_use;
  if (!ok) rt_fail(err, "out of memory");
  for (int i = 0; ok && i < g->n; i++)
    for (int k = 0; k < g->nodes[i]->nsrc; k++) I.last_use[g->nodes[i]->src[k]->id] = i;
  ok = ok && run_nodes(&I, params, param_values, inputs);
  for (int i = 0; ok && i < g->noutputs; i++) {
    Tensor *t = make_output(&I, g->outputs[i], i);
    ok = t && tensorlist_add(out, t, err);
    if (!ok) tensor_free(t);
  }
  for (int i = 0; I.val && i < g->n; i++) free(I.val[i]);
  free(I.val);
  free(I.shape);
  free(I.last_use);
  return ok;
}
