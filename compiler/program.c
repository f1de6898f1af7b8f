/* program.c: the back half of the compiler: fusion, memory planning and
 * code generation for every entry point of a program. */
#include "program.h"

#include <string.h>

#include "autodiff.h"
#include "codegen.h"

/* Every matmul kernel must be one GEMM call the runtime can make. */
static bool check_gemms(DiagList *d, const Schedule *s) {
  for (int k = 0; k < s->n; k++) {
    GemmDesc g;
    const Kernel *K = s->kernels[k];
    if (K->kind == K_MATMUL && !program_gemm(K, &g)) {
      diag_error(d, K->nodes[K->nnodes - 1]->loc, "internal: matmul kernel k%d is not one GEMM", k);
      return false;
    }
  }
  return true;
}

static bool compile_entry(Arena *a, DiagList *d, IrProgram *ir, int i, const CompileOptions *opt,
                          CompiledEntry *e) {
  e->g = ir->entries[i];
  if (opt->grad && !ad_build_grad(a, d, e->g, &ir->params, NULL)) return false;
  return fuse_graph(a, d, e->g, &e->sched) && check_gemms(d, &e->sched) && plan_build(a, d, &e->sched, &e->plan);
}

static char *generate(Arena *a, DiagList *d, CompiledProgram *p, bool cuda) {
  StrBuf sb;
  sb_init(&sb);
  if (cuda) cg_cuda_prelude(&sb);
  else cg_c_prelude(&sb);
  bool ok = true;
  for (int i = 0; i < p->nentries; i++) {
    const char *prefix = arena_printf(a, "e%d_", i);
    ok &= cuda ? cg_cuda_kernels(a, d, &p->entries[i].sched, prefix, &sb)
               : cg_c_kernels(a, d, &p->entries[i].sched, prefix, &sb);
  }
  char *text = ok && !sb.failed ? arena_strdup(a, sb.data) : NULL;
  if (ok && !text) diag_error(d, NO_LOC, "out of memory while generating %s code", cuda ? "CUDA" : "C");
  sb_free(&sb);
  return text;
}

bool program_compile(Arena *a, DiagList *d, IrProgram *ir, const CompileOptions *opt, CompiledProgram *out) {
  memset(out, 0, sizeof *out);
  out->ir = ir;
  out->entries = arena_alloc(a, sizeof(CompiledEntry) * (size_t)(ir->nentries + 1));
  if (!out->entries) return false;
  for (int i = 0; i < ir->nentries; i++) {
    if (!compile_entry(a, d, ir, i, opt, &out->entries[i])) return false;
    out->nentries++;
  }
  if (opt->want_c && !(out->c_source = generate(a, d, out, false))) return false;
  if (opt->want_cuda && !(out->cuda_source = generate(a, d, out, true))) return false;
  return true;
}

static int arg_index(const Kernel *K, const Node *x) {
  for (int i = 0; i < K->ninputs; i++)
    if (K->inputs[i] == x) return i;
  return -1;
}

static bool in_kernel(const Kernel *K, const Node *x) {
  for (int i = 0; i < K->nnodes; i++)
    if (K->nodes[i] == x) return true;
  return false;
}

/* The buffer a GEMM operand is read from: through a transpose (the GEMM's
 * flag) and reshapes (views: a buffer is row-major, whatever its shape). */
static const Node *stored_operand(const Kernel *K, const Node *x, bool *transposed) {
  *transposed = in_kernel(K, x) && x->op == OP_PERMUTE;
  if (*transposed) x = x->src[0];
  while (in_kernel(K, x) && x->op == OP_RESHAPE) x = x->src[0];
  return x;
}

static Dim dim_mul(Dim x, Dim y) { return (Dim){x.n * y.n, x.sym || y.sym}; }

/* Batch strides of a stored operand of logical shape s (its last two axes
 * the matrix) against the result's batch axes. */
static void batch_strides(const Shape *s, const Shape *out, Dim *stride) {
  int ob = out->rank - 2, sb = s->rank - 2;
  Dim step = dim_mul(s->d[s->rank - 2], s->d[s->rank - 1]);
  for (int j = ob - 1; j >= 0; j--) {
    int k = j - (ob - sb);
    bool has = k >= 0 && (s->d[k].sym || s->d[k].n != 1);
    stride[j] = has ? step : (Dim){0, false};
    if (k >= 0) step = dim_mul(step, s->d[k]);
  }
}

static void swap_int(int *x, int *y) {
  int t = *x;
  *x = *y, *y = t;
}

static void swap_dim(Dim *x, Dim *y) {
  Dim t = *x;
  *x = *y, *y = t;
}

/* A transposed result: C^T = op(B)^T op(A)^T, so the operands swap and
 * each one's transpose flag flips. */
static void transpose_result(GemmDesc *g) {
  swap_int(&g->a_arg, &g->b_arg);
  bool ta = g->ta;
  g->ta = !g->tb, g->tb = !ta;
  swap_dim(&g->m, &g->n);
  for (int j = 0; j < g->batch_rank; j++) swap_dim(&g->a_stride[j], &g->b_stride[j]);
}

bool program_gemm(const Kernel *K, GemmDesc *g) {
  const Node *mm = NULL, *root = K->nodes[K->nnodes - 1];
  for (int i = 0; i < K->nnodes; i++)
    if (K->nodes[i]->op == OP_MATMUL) mm = K->nodes[i];
  if (!mm || (root != mm && !fuse_is_transpose(root))) return false;
  const Node *opa = mm->src[0], *opb = mm->src[1];
  memset(g, 0, sizeof *g);
  g->a_arg = arg_index(K, stored_operand(K, opa, &g->ta));
  g->b_arg = arg_index(K, stored_operand(K, opb, &g->tb));
  const Shape *o = &mm->shape;
  g->m = o->d[o->rank - 2];
  g->n = o->d[o->rank - 1];
  g->k = opa->shape.d[opa->shape.rank - 1];
  g->batch_rank = o->rank - 2;
  for (int j = 0; j < g->batch_rank; j++) g->batch[j] = o->d[j];
  batch_strides(&opa->shape, o, g->a_stride);
  batch_strides(&opb->shape, o, g->b_stride);
  if (root != mm) transpose_result(g);
  return g->a_arg >= 0 && g->b_arg >= 0;
}
