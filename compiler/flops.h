/* flops.h: the arithmetic cost of a graph, counted from its ops and shapes
 * (docs/performance.md, "Counting FLOPs"). A count is a polynomial of the
 * batch size, fixed + per_batch * B, as the buffer plan's sizes are.
 *
 * Model FLOPs, one multiply or add each, so a multiply-add is 2:
 *   matmul          2 M N K per batch element of its output
 *   conv2d          2 per multiply-add of the cross-correlation; each of its
 *                   backward ops (input, weight) as much as the forward
 *   attention       its two GEMMs, q k^T and P v (softmax not counted)
 *   attention_bwd   its share of the backward's four GEMMs, which total
 *                   twice the forward: dv = P^T g, dq = dS k, dk = dS^T q,
 *                   and half each to dq and dk of dP = g v^T. Kernels that
 *                   recompute P do more work than is counted.
 *   element-wise    1 per output element (cast, stop_gradient: 0)
 *   reductions      1 per input element; scatter_add 1 per element added
 *   leaves, random numbers, movement, gather: 0
 * The GEMM part alone (matmul, conv, attention) is what papers quote:
 * DiT's "Gflops" are its multiply-adds, gemm / 2 here. */
#ifndef IREPA_FLOPS_H
#define IREPA_FLOPS_H

#include "ir.h"

typedef struct {
  int64_t fixed, per_batch;
} FlopTerm;

typedef struct {
  FlopTerm gemm;       /* matmul, conv2d and its backward, attention and its backward */
  FlopTerm pointwise;  /* element-wise ops, reductions, scatter_add */
} FlopCount;

/* Counts the nodes of g. False, with a diagnostic at the node, when a
 * count does not fit in 64 bits or would grow with the square of the
 * batch (which the IR's one-batch-axis rule should rule out). */
bool flops_count(DiagList *d, const Graph *g, FlopCount *out);
/* One node's count, added to *out; false as above. */
bool flops_node(DiagList *d, const Node *n, FlopCount *out);

/* gemm + pointwise, and a term's value at batch size `batch`. */
FlopTerm flops_total(const FlopCount *c);
double flops_at(FlopTerm t, int64_t batch);
/* "46.23 GFLOP", "1.5 MFLOP": three or four significant digits. */
const char *flops_format(double flops, const char *unit, char *buf, size_t size);

#endif
