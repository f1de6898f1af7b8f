/* fuse.h: grouping the ops of a graph into kernels (design.md's kernel IR,
 * first stage). A kernel computes a set of nodes in one launch and writes
 * to memory only the values other kernels or the graph's outputs read. */
#ifndef IREPA_FUSE_H
#define IREPA_FUSE_H

#include "ir.h"

typedef enum {
  K_POINTWISE,  /* elementwise ops and index remappings (reshape, permute, slice, ...) */
  K_REDUCE,     /* one reduction, with its pointwise producers as prologue */
  K_MATMUL,
  K_CONV,       /* conv2d and its two backward ops */
  K_GATHER,     /* gather and scatter_add */
  K_ATTENTION,  /* attention and its backward */
} KernelKind;

typedef struct {
  int id;
  KernelKind kind;
  Node **nodes;    /* computed here, in graph order; the last is the root */
  int nnodes;
  Node **inputs;   /* read from memory: leaves and other kernels' outputs */
  int ninputs;
  Node **outputs;  /* written to memory */
  int noutputs;
} Kernel;

typedef struct {
  const Graph *g;
  Kernel **kernels;  /* in an order that respects every dependence */
  int n;
  int *kernel_of;    /* node id -> kernel id; -1 for inputs, parameters, constants;
                        FUSE_RECOMPUTED for a node in every kernel that reads it */
  int unfused;       /* kernels without fusion: one per computed node */
  int nrecomputed;   /* nodes computed again by each reader instead of stored */
} Schedule;

enum { FUSE_RECOMPUTED = -2 };

const char *fuse_kind_name(KernelKind k);
/* Groups g's nodes: a pointwise node with a single consumer joins that
 * consumer's kernel when it is pointwise or a reduction; one whose readers
 * are all such kernels is computed again in each (recomputed); everything
 * else starts a kernel. Constants are inlined into their readers. */
bool fuse_graph(Arena *a, DiagList *d, const Graph *g, Schedule *out);
/* Every computed node in exactly one kernel; kernels read only leaves and
 * earlier kernels' outputs. */
bool fuse_verify(DiagList *d, const Schedule *s);
void fuse_print(FILE *out, const Schedule *s);
/* A permute swapping the last two axes, which a matmul kernel absorbs. */
bool fuse_is_transpose(const Node *n);

#endif
