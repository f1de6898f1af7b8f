/* plan.h: static memory planning. Every value a kernel writes to memory
 * gets a buffer in one arena per entry point; buffers whose lifetimes do
 * not overlap share bytes. Sizes are either fixed or proportional to the
 * batch size B, so an entry has two arenas, fixed bytes and bytes per batch
 * element, and each is planned once for every B. */
#ifndef IREPA_PLAN_H
#define IREPA_PLAN_H

#include "fuse.h"

enum { PLAN_ALIGN = 256 }; /* cudaMalloc's alignment; enough for any vector load */

typedef struct {
  const Node *value;  /* the node stored */
  int first, last;    /* kernels that write it and that last read it; last =
                         the number of kernels for entry outputs */
  bool per_batch;     /* in the per-batch arena: bytes and offset scale with B */
  int64_t bytes;      /* rounded up to PLAN_ALIGN (times B if per_batch) */
  int64_t offset;     /* in its arena (times B if per_batch) */
  const Node *alias;  /* an update output's leaf: the value is written over
                         it in place and takes no arena bytes; else NULL */
} Buffer;

typedef struct {
  Buffer *bufs;
  int n;
  int *buf_of;               /* node id -> buffer, or -1 */
  int64_t fixed_bytes;       /* arena: fixed_bytes + per_batch_bytes * B */
  int64_t per_batch_bytes;
  int64_t sum_fixed, sum_per_batch;   /* every buffer apart: no reuse */
  int64_t live_fixed, live_per_batch; /* the most bytes live at one kernel */
} Plan;

bool plan_build(Arena *a, DiagList *d, const Schedule *s, Plan *out);
/* No two buffers that are live at the same kernel share a byte, and every
 * buffer lies inside its arena. An in-place update is written by a
 * pointwise kernel that reads its leaf only element for element, after
 * every other kernel that reads the leaf. */
bool plan_verify(DiagList *d, const Schedule *s, const Plan *p);
void plan_print(FILE *out, const Schedule *s, const Plan *p);

#endif
