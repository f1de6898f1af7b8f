/* fuse.c: the fusion pass. Consumes a graph (forward, or forward plus
 * backward); produces a Schedule of kernels. A first, greedy grouping:
 * walking the graph backwards, a pointwise node used exactly once joins the
 * kernel of its user when that kernel is pointwise or a reduction, so
 * chains of elementwise ops and the prologue of a reduction become one
 * kernel, and a value is written to memory only where it is read by
 * another kernel or returned. Matmuls, convolutions, gathers and attention
 * stay kernels of their own, except that a matmul takes in a transpose of
 * an operand or of its result, which the GEMM does by flags. A last pass
 * merges pointwise kernels over one shape that read each other's results
 * or the same tensors (merge_pointwise), into kernels with several outputs. */
#include "fuse.h"

#include <stdlib.h>
#include <string.h>

const char *fuse_kind_name(KernelKind k) {
  static const char *const names[] = {"pointwise", "reduce", "matmul", "conv", "gather", "attention"};
  return names[k];
}

/* -1: no kernel (a buffer or an inlined constant). */
static int kind_of(const Node *n, bool is_output) {
  switch (n->op) {
  case OP_INPUT:
  case OP_PARAM: return -1;
  case OP_CONST: return is_output ? K_POINTWISE : -1;
  case OP_SUM:
  case OP_MEAN:
  case OP_RMAX: return K_REDUCE;
  case OP_MATMUL: return K_MATMUL;
  case OP_CONV2D:
  case OP_CONV2D_BWD_INPUT:
  case OP_CONV2D_BWD_WEIGHT: return K_CONV;
  case OP_GATHER:
  case OP_SCATTER_ADD: return K_GATHER;
  case OP_ATTENTION:
  case OP_ATTENTION_BWD: return K_ATTENTION;
  default: return K_POINTWISE; /* elementwise, random, arange, movement */
  }
}

/* A set of kernels, for a recomputed node: every kernel that reads it. */
typedef struct {
  int *k;
  int n;
} KernelSet;

typedef struct {
  Arena *a;
  const Graph *g;
  int *uses;        /* readers of each node, outputs counted once more */
  Node **user;      /* the reader, when there is exactly one */
  int *user_start;  /* the readers of node i: users[user_start[i] .. user_start[i+1]) */
  Node **users;
  bool *is_output;
  int *kind;        /* kind_of each node */
  int *kernel_of;   /* a kernel, FUSE_RECOMPUTED, or -1 */
  KernelSet *recompute_in;
  int nkernels;
  int *kernel_kind;
} Fuser;

/* A recomputed node is computed again by every kernel that reads it. */
enum { MAX_RECOMPUTE_KERNELS = 8 };

/* Every reader of every node, as one array sliced by node. */
static bool index_users(Fuser *F) {
  const Graph *g = F->g;
  int total = 0;
  for (int i = 0; i < g->n; i++) {
    F->user_start[i] = total;
    total += F->uses[i] - F->is_output[i];
  }
  F->user_start[g->n] = total;
  F->users = arena_alloc(F->a, sizeof(Node *) * (size_t)(total + 1));
  int *fill = arena_alloc(F->a, sizeof(int) * (size_t)(g->n + 1));
  if (!F->users || !fill) return false;
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    for (int k = 0; k < n->nsrc; k++) {
      bool repeat = false;
      for (int j = 0; j < k; j++) repeat |= n->src[j] == n->src[k];
      if (!repeat) F->users[F->user_start[n->src[k]->id] + fill[n->src[k]->id]++] = n;
    }
  }
  return true;
}

static bool count_uses(Fuser *F) {
  const Graph *g = F->g;
  for (int i = 0; i < g->noutputs; i++) {
    F->is_output[g->outputs[i]->id] = true;
    F->uses[g->outputs[i]->id]++;
  }
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    for (int k = 0; k < n->nsrc; k++) {
      bool repeat = false; /* x * x reads x once */
      for (int j = 0; j < k; j++) repeat |= n->src[j] == n->src[k];
      if (repeat) continue;
      F->uses[n->src[k]->id]++;
      F->user[n->src[k]->id] = n;
    }
  }
  for (int i = 0; i < g->n; i++) F->kind[i] = kind_of(g->nodes[i], F->is_output[i]);
  return index_users(F);
}

/* A permute that swaps the last two axes: a GEMM reads it as a transposed
 * operand, so it need not be copied. */
bool fuse_is_transpose(const Node *n) {
  if (n->op != OP_PERMUTE || n->shape.rank < 2 || n->src[0]->op == OP_CONST) return false;
  int r = n->shape.rank;
  for (int k = 0; k < r - 2; k++)
    if (n->attr.perm[k] != k) return false;
  return n->attr.perm[r - 2] == r - 1 && n->attr.perm[r - 1] == r - 2;
}

/* An operand the GEMM reads in place, without a copy: a transpose (a
 * flag), or a reshape of a stored value (a buffer is row-major whatever
 * its shape), given straight to the matmul or to such a transpose. */
static bool gemm_operand(const Fuser *F, int i) {
  const Node *n = F->g->nodes[i], *u = F->user[i];
  if (u->op == OP_MATMUL) return fuse_is_transpose(n) || (n->op == OP_RESHAPE && n->src[0]->op != OP_CONST);
  return n->op == OP_RESHAPE && n->src[0]->op != OP_CONST && fuse_is_transpose(u) && F->uses[u->id] == 1 &&
         F->user[u->id]->op == OP_MATMUL;
}

/* A transpose of a matmul read by nothing else: the GEMM writes it
 * (transposed_output), so it costs nothing to keep, while recomputing it
 * would read the matmul's result across its rows in every reader (the
 * weight gradients of linear layers, read by the norm and AdamW). */
static bool gemm_writes_transposed(const Fuser *F, int i) {
  const Node *n = F->g->nodes[i];
  if (!fuse_is_transpose(n)) return false;
  const Node *mm = n->src[0];
  return mm->op == OP_MATMUL && F->uses[mm->id] == 1 && !F->is_output[mm->id];
}

/* The kernel a node joins, or -1 to start its own. */
static int host_kernel(Fuser *F, int i) {
  if (F->kind[i] != K_POINTWISE || F->uses[i] != 1 || F->is_output[i]) return -1;
  if (gemm_writes_transposed(F, i)) return -1; /* its own kernel, which the GEMM joins (transposed_output) */
  int k = F->kernel_of[F->user[i]->id];
  if (k < 0) return -1;
  if (F->kernel_kind[k] == K_MATMUL) return gemm_operand(F, i) ? k : -1;
  return F->kernel_kind[k] == K_POINTWISE || F->kernel_kind[k] == K_REDUCE ? k : -1;
}

static bool set_add(Arena *a, KernelSet *s, int k) {
  for (int i = 0; i < s->n; i++)
    if (s->k[i] == k) return true;
  if (s->n == MAX_RECOMPUTE_KERNELS) return false;
  if (!s->k && !(s->k = arena_alloc(a, sizeof(int) * MAX_RECOMPUTE_KERNELS))) return false;
  s->k[s->n++] = k;
  return true;
}

/* A pointwise value that only pointwise and reduction kernels read is
 * computed again inside each of them instead of being written to memory
 * once and read back: its inputs are read instead, which costs the same
 * traffic or less, and the buffer (an activation kept for backward, often)
 * disappears. A single-use node joins its reader's kernel as before; this
 * is for values with several readers, such as LayerNorm's x - mean, read
 * by the variance, the normalisation and the backward pass. */
static bool recompute(Fuser *F, int i) {
  if (F->kind[i] != K_POINTWISE || F->is_output[i] || F->uses[i] < 1) return false;
  if (gemm_writes_transposed(F, i)) return false; /* computed once, by the GEMM itself */
  if (F->uses[i] == 1 && F->kernel_of[F->user[i]->id] >= 0) return false; /* an ordinary join */
  KernelSet s = {0};
  for (int u = F->user_start[i]; u < F->user_start[i + 1]; u++) {
    int id = F->users[u]->id, k = F->kernel_of[id];
    if (k == FUSE_RECOMPUTED) {
      for (int j = 0; j < F->recompute_in[id].n; j++)
        if (!set_add(F->a, &s, F->recompute_in[id].k[j])) return false;
      continue;
    }
    if (k < 0 || (F->kernel_kind[k] != K_POINTWISE && F->kernel_kind[k] != K_REDUCE) || !set_add(F->a, &s, k))
      return false;
  }
  F->recompute_in[i] = s;
  return true;
}

/* A matmul whose one reader transposes its result joins that transpose's
 * kernel: the GEMM writes the transposed result directly, as
 * C^T = op(B)^T op(A)^T (the weight gradients of linear layers). */
static int transposed_output(Fuser *F, int i) {
  const Node *n = F->g->nodes[i];
  if (n->op != OP_MATMUL || F->uses[i] != 1 || F->is_output[i]) return -1;
  const Node *u = F->user[i];
  int k = F->kernel_of[u->id];
  if (k < 0 || !fuse_is_transpose(u) || F->kernel_kind[k] != K_POINTWISE) return -1;
  F->kernel_kind[k] = K_MATMUL; /* the transpose is the kernel's only node so far */
  return k;
}

static bool same_attention(const Node *a, const Node *b) {
  if (a->op != OP_ATTENTION_BWD || b->op != OP_ATTENTION_BWD || a->attr.value != b->attr.value) return false;
  for (int k = 0; k < 4; k++)
    if (a->src[k] != b->src[k]) return false;
  return true;
}

/* The gradients of one attention w.r.t. q, k and v share their work (the
 * probabilities, and dS for q and k): they become one kernel with up to
 * three outputs. Only a sibling a few nodes later is joined, and only when
 * nothing reads this gradient before it, so the kernel order stays a
 * topological one. */
enum { SIBLING_WINDOW = 8 };

static int attention_sibling(Fuser *F, int i) {
  const Graph *g = F->g;
  if (g->nodes[i]->op != OP_ATTENTION_BWD) return -1;
  for (int j = i + 1; j < g->n && j <= i + SIBLING_WINDOW; j++) {
    int k = F->kernel_of[j];
    if (k < 0 || !same_attention(g->nodes[i], g->nodes[j])) continue;
    int last = j; /* the kernel's root: its highest sibling */
    for (int m = j + 1; m < g->n && m <= i + 2 * SIBLING_WINDOW; m++)
      if (F->kernel_of[m] == k) last = m;
    for (int u = F->user_start[i]; u < F->user_start[i + 1]; u++)
      if (F->users[u]->id <= last) return -1;
    return k;
  }
  return -1;
}

static void group(Fuser *F) {
  for (int i = F->g->n - 1; i >= 0; i--) {
    F->kernel_of[i] = -1;
    if (F->kind[i] < 0) continue;
    if (recompute(F, i)) {
      F->kernel_of[i] = FUSE_RECOMPUTED;
      continue;
    }
    int k = transposed_output(F, i);
    if (k < 0) k = attention_sibling(F, i);
    if (k < 0) k = host_kernel(F, i);
    if (k < 0) {
      k = F->nkernels++;
      F->kernel_kind[k] = F->kind[i];
    }
    F->kernel_of[i] = k;
  }
}

static bool push(Arena *a, Node ***items, int *n, Node *x) {
  Node **p = arena_grow(a, *items, (size_t)*n, (size_t)*n + 1, sizeof *p);
  if (!p) return false;
  p[(*n)++] = x;
  *items = p;
  return true;
}

static bool contains(Node **items, int n, const Node *x) {
  for (int i = 0; i < n; i++)
    if (items[i] == x) return true;
  return false;
}

/* Kernels numbered by the graph position of their root (last node), which
 * orders them topologically: a value read from outside a kernel is a
 * kernel root or output computed earlier (fuse_verify checks it). */
static bool build(Fuser *F, Schedule *s) {
  const Graph *g = F->g;
  int *root = arena_alloc(F->a, sizeof(int) * (size_t)(F->nkernels + 1));
  int *order = arena_alloc(F->a, sizeof(int) * (size_t)(F->nkernels + 1));
  s->kernels = arena_alloc(F->a, sizeof(Kernel *) * (size_t)(F->nkernels + 1));
  if (!root || !order || !s->kernels) return false;
  for (int i = 0; i < g->n; i++)
    if (F->kernel_of[i] >= 0) root[F->kernel_of[i]] = i;
  s->nrecomputed = 0;
  for (int i = 0; i < g->n; i++) s->nrecomputed += F->kernel_of[i] == FUSE_RECOMPUTED;
  int n = 0;
  for (int i = 0; i < g->n; i++)
    if (F->kernel_of[i] >= 0 && root[F->kernel_of[i]] == i) order[F->kernel_of[i]] = n++;
  for (int k = 0; k < F->nkernels; k++) {
    Kernel *K = arena_alloc(F->a, sizeof *K);
    if (!K) return false;
    K->id = order[k];
    K->kind = (KernelKind)F->kernel_kind[k];
    s->kernels[order[k]] = K;
  }
  for (int i = 0; i < g->n; i++) {
    Node *x = g->nodes[i];
    if (F->kernel_of[i] == FUSE_RECOMPUTED) {
      s->unfused++;
      for (int j = 0; j < F->recompute_in[i].n; j++) {
        Kernel *K = s->kernels[order[F->recompute_in[i].k[j]]];
        if (!push(F->a, &K->nodes, &K->nnodes, x)) return false;
      }
      continue;
    }
    if (F->kernel_of[i] < 0) continue;
    s->unfused++;
    Kernel *K = s->kernels[order[F->kernel_of[i]]];
    F->kernel_of[i] = K->id;
    if (!push(F->a, &K->nodes, &K->nnodes, x)) return false;
  }
  s->n = n;
  s->kernel_of = F->kernel_of;
  return true;
}

/* Inputs: operands from outside the kernel (constants are inlined).
 * Outputs: values read by another kernel or returned by the graph. */
static bool link(Fuser *F, Schedule *s) {
  const Graph *g = F->g;
  for (int kn = 0; kn < s->n; kn++) {
    Kernel *K = s->kernels[kn];
    for (int i = 0; i < K->nnodes; i++) {
      const Node *n = K->nodes[i];
      for (int k = 0; k < n->nsrc; k++) {
        Node *x = n->src[k];
        int kx = s->kernel_of[x->id];
        if (kx == kn || (x->op == OP_CONST && kx < 0) || contains(K->nodes, K->nnodes, x)) continue;
        if (!contains(K->inputs, K->ninputs, x) && !push(F->a, &K->inputs, &K->ninputs, x)) return false;
        if (kx >= 0) {
          Kernel *P = s->kernels[kx];
          if (!contains(P->outputs, P->noutputs, x) && !push(F->a, &P->outputs, &P->noutputs, x)) return false;
        }
      }
    }
  }
  for (int i = 0; i < g->noutputs; i++) {
    Node *x = g->outputs[i];
    int kx = s->kernel_of[x->id];
    if (kx < 0) continue;
    Kernel *P = s->kernels[kx];
    if (!contains(P->outputs, P->noutputs, x) && !push(F->a, &P->outputs, &P->noutputs, x)) return false;
  }
  return true;
}

/* ---- merging pointwise kernels over one shape -------------------------
 * After grouping, a pointwise kernel B that reads what an earlier pointwise
 * kernel A over the same shape writes, or reads one of A's inputs, takes
 * A in: the element loop then computes A's outputs and B's in one pass,
 * and B uses A's values from registers. AdamW's kernels of a parameter
 * (first moment, second moment, update, EMA) become one that reads the
 * gradient once. The merged kernel stands where B stood, so A's writes
 * move later: no kernel in between may read them. Neither may read a
 * buffer the other replaces in place, since the loop would read element i
 * after writing it. */
enum { MERGE_WINDOW = 8, MERGE_MAX_ARGS = 400 };

static bool reads_replaced(const Graph *g, const Kernel *writer, const Kernel *reader) {
  for (int i = 0; i < writer->noutputs; i++) {
    const Node *leaf = ir_update_target(g, writer->outputs[i]);
    if (leaf && contains(reader->inputs, reader->ninputs, leaf)) return true;
  }
  return false;
}

/* B reads what A writes, or both read one tensor of their own shape (a
 * shared scalar, such as the learning rate, is no reason to merge). */
static bool related(const Kernel *A, const Kernel *B) {
  const Shape *shape = &B->nodes[B->nnodes - 1]->shape;
  for (int i = 0; i < A->noutputs; i++)
    if (contains(B->inputs, B->ninputs, A->outputs[i])) return true;
  for (int i = 0; i < A->ninputs; i++)
    if (shape_eq(&A->inputs[i]->shape, shape) && contains(B->inputs, B->ninputs, A->inputs[i])) return true;
  return false;
}

static bool mergeable(const Graph *g, const Schedule *s, int a, int b) {
  const Kernel *A = s->kernels[a], *B = s->kernels[b];
  if (A->kind != K_POINTWISE || B->kind != K_POINTWISE) return false;
  if (!shape_eq(&A->nodes[A->nnodes - 1]->shape, &B->nodes[B->nnodes - 1]->shape)) return false;
  if (A->ninputs + B->ninputs + A->noutputs + B->noutputs > MERGE_MAX_ARGS || !related(A, B)) return false;
  if (reads_replaced(g, A, B) || reads_replaced(g, B, A)) return false;
  for (int j = a + 1; j < b; j++)
    for (int i = 0; i < A->noutputs; i++)
      if (contains(s->kernels[j]->inputs, s->kernels[j]->ninputs, A->outputs[i])) return false;
  return true;
}

/* B takes A's nodes in front of its own (A reads nothing of B's) and, until
 * the final link, the union of their inputs and outputs; A leaves the list. */
static bool absorb(Fuser *F, Schedule *s, int a, int b) {
  Kernel *A = s->kernels[a], *B = s->kernels[b];
  Node **nodes = NULL;
  int n = 0;
  for (int i = 0; i < A->nnodes; i++)
    if (!push(F->a, &nodes, &n, A->nodes[i])) return false;
  for (int i = 0; i < B->nnodes; i++)
    if (!contains(nodes, n, B->nodes[i]) && !push(F->a, &nodes, &n, B->nodes[i])) return false;
  B->nodes = nodes, B->nnodes = n;
  for (int i = 0; i < A->ninputs; i++)
    if (!contains(B->inputs, B->ninputs, A->inputs[i]) && !push(F->a, &B->inputs, &B->ninputs, A->inputs[i]))
      return false;
  for (int i = 0; i < A->noutputs; i++)
    if (!push(F->a, &B->outputs, &B->noutputs, A->outputs[i])) return false;
  memmove(&s->kernels[a], &s->kernels[a + 1], sizeof(Kernel *) * (size_t)(s->n - a - 1));
  s->n--;
  return true;
}

/* Merges, then renumbers the kernels and links them afresh. */
static bool merge_pointwise(Fuser *F, Schedule *s) {
  for (int b = 0; b < s->n; b++)
    for (int a = b - 1; a >= 0 && a >= b - MERGE_WINDOW; a--)
      if (mergeable(F->g, s, a, b)) {
        if (!absorb(F, s, a, b)) return false;
        b--;
      }
  for (int k = 0; k < s->n; k++) {
    Kernel *K = s->kernels[k];
    K->id = k;
    K->ninputs = K->noutputs = 0;
    for (int i = 0; i < K->nnodes; i++)
      if (s->kernel_of[K->nodes[i]->id] >= 0) s->kernel_of[K->nodes[i]->id] = k;
  }
  return link(F, s);
}

bool fuse_graph(Arena *a, DiagList *d, const Graph *g, Schedule *out) {
  memset(out, 0, sizeof *out);
  out->g = g;
  size_t n = (size_t)g->n + 1;
  Fuser F = {a, g, arena_alloc(a, sizeof(int) * n), arena_alloc(a, sizeof(Node *) * n),
             arena_alloc(a, sizeof(int) * (n + 1)), NULL, arena_alloc(a, n), arena_alloc(a, sizeof(int) * n),
             arena_alloc(a, sizeof(int) * n), arena_alloc(a, sizeof(KernelSet) * n), 0,
             arena_alloc(a, sizeof(int) * n)};
  if (!F.uses || !F.user || !F.user_start || !F.is_output || !F.kind || !F.kernel_of || !F.recompute_in ||
      !F.kernel_kind) {
    diag_error(d, g->loc, "out of memory while fusing entry %s", g->name);
    return false;
  }
  if (!count_uses(&F)) {
    diag_error(d, g->loc, "out of memory while fusing entry %s", g->name);
    return false;
  }
  group(&F);
  if (!build(&F, out) || !link(&F, out) || !merge_pointwise(&F, out)) {
    diag_error(d, g->loc, "out of memory while fusing entry %s", g->name);
    return false;
  }
  return fuse_verify(d, out);
}

bool fuse_verify(DiagList *d, const Schedule *s) {
  const Graph *g = s->g;
  int *seen = calloc((size_t)g->n + 1, sizeof *seen);
  if (!seen) return false;
  bool ok = true;
  for (int k = 0; ok && k < s->n; k++) {
    const Kernel *K = s->kernels[k];
    for (int i = 0; ok && i < K->nnodes; i++) {
      int id = K->nodes[i]->id;
      if (s->kernel_of[id] == FUSE_RECOMPUTED) {
        seen[id] = 1;
        continue;
      }
      if (seen[id]++ || s->kernel_of[id] != k) {
        diag_error(d, K->nodes[i]->loc, "internal: node %%%d is in two kernels", K->nodes[i]->id);
        ok = false;
      }
    }
    for (int i = 0; ok && i < K->ninputs; i++) {
      int kx = s->kernel_of[K->inputs[i]->id];
      if (kx >= k) {
        diag_error(d, K->inputs[i]->loc, "internal: kernel k%d reads %%%d of a later kernel k%d", k,
                   K->inputs[i]->id, kx);
        ok = false;
      }
    }
  }
  for (int i = 0; ok && i < g->n; i++) {
    bool computed = s->kernel_of[i] >= 0 || s->kernel_of[i] == FUSE_RECOMPUTED;
    if (computed != (seen[i] == 1)) {
      diag_error(d, g->nodes[i]->loc, "internal: node %%%d is in no kernel", i);
      ok = false;
    }
  }
  free(seen);
  return ok;
}

static void print_refs(FILE *out, const char *label, Node **items, int n) {
  fprintf(out, " %s", label);
  for (int i = 0; i < n; i++) fprintf(out, "%s%%%d", i ? "," : "(", items[i]->id);
  fputs(n ? ")" : "()", out);
}

void fuse_print(FILE *out, const Schedule *s) {
  const Graph *g = s->g;
  fprintf(out, "entry %s: %d ops in %d kernels (%d recomputed where read)\n", g->name, s->unfused, s->n,
          s->nrecomputed);
  Arena a;
  arena_init(&a);
  for (int k = 0; k < s->n; k++) {
    const Kernel *K = s->kernels[k];
    const Node *r = K->nodes[K->nnodes - 1];
    fprintf(out, "  k%d %s %s:", k, fuse_kind_name(K->kind), ir_type_str(&a, r->dtype, &r->shape, g->sym_name));
    for (int i = 0; i < K->nnodes; i++) fprintf(out, " %s%%%d", op_name(K->nodes[i]->op), K->nodes[i]->id);
    print_refs(out, "in", K->inputs, K->ninputs);
    print_refs(out, "out", K->outputs, K->noutputs);
    fputc('\n', out);
  }
  arena_free(&a);
}
