/* plan.c: lifetimes and placement. A buffer lives from the kernel that
 * writes it to the last kernel that reads it (an entry's outputs to the
 * end). Placement is greedy by size, largest first, each at the lowest
 * offset where it meets no placed buffer of overlapping lifetime: simple,
 * and within a few per cent of the live peak on transformer graphs. */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

static int64_t round_up(int64_t n) { return (n + PLAN_ALIGN - 1) / PLAN_ALIGN * PLAN_ALIGN; }

static bool add_buffer(Arena *a, Plan *p, int *cap, const Node *x, int first, const Node *alias) {
  if (p->buf_of[x->id] >= 0) return true;
  if (p->n == *cap) {
    int ncap = *cap ? *cap * 2 : 64;
    Buffer *nb = arena_grow(a, p->bufs, (size_t)*cap, (size_t)ncap, sizeof *nb);
    if (!nb) return false;
    p->bufs = nb;
    *cap = ncap;
  }
  Dim n;
  shape_numel(&x->shape, &n); /* the builders guarantee it fits */
  p->buf_of[x->id] = p->n;
  int64_t bytes = alias ? 0 : round_up(n.n * dtype_size(x->dtype));
  p->bufs[p->n++] = (Buffer){x, first, first, n.sym, bytes, 0, alias};
  return true;
}

static bool find_lifetimes(Arena *a, const Schedule *s, Plan *p) {
  int cap = 0;
  for (int k = 0; k < s->n; k++) {
    const Kernel *K = s->kernels[k];
    for (int i = 0; i < K->noutputs; i++)
      if (!add_buffer(a, p, &cap, K->outputs[i], k, ir_update_target(s->g, K->outputs[i]))) return false;
    for (int i = 0; i < K->ninputs; i++) {
      int b = p->buf_of[K->inputs[i]->id];
      if (b >= 0 && p->bufs[b].last < k) p->bufs[b].last = k;
    }
  }
  for (int i = 0; i < s->g->noutputs; i++) {
    int b = p->buf_of[s->g->outputs[i]->id];
    if (b >= 0) p->bufs[b].last = s->n;
  }
  return true;
}

static bool lifetimes_overlap(const Buffer *x, const Buffer *y) {
  return x->first <= y->last && y->first <= x->last;
}

static const Plan *sort_plan;
static int by_size_desc(const void *pa, const void *pb) {
  const Buffer *x = &sort_plan->bufs[*(const int *)pa], *y = &sort_plan->bufs[*(const int *)pb];
  if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
  if (x->first != y->first) return x->first < y->first ? -1 : 1;
  return *(const int *)pa - *(const int *)pb;
}

typedef struct {
  int64_t lo, hi;
} Span;

static int by_lo(const void *pa, const void *pb) {
  const Span *x = pa, *y = pb;
  return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* The lowest offset at which b fits between the spans taken by placed,
 * lifetime-overlapping buffers of the same arena. */
static int64_t lowest_fit(const Plan *p, const int *placed, int nplaced, const Buffer *b, Span *spans) {
  int n = 0;
  for (int i = 0; i < nplaced; i++) {
    const Buffer *o = &p->bufs[placed[i]];
    if (o->per_batch == b->per_batch && lifetimes_overlap(o, b))
      spans[n++] = (Span){o->offset, o->offset + o->bytes};
  }
  qsort(spans, (size_t)n, sizeof *spans, by_lo);
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    if (spans[i].lo >= at + b->bytes) break;
    if (spans[i].hi > at) at = spans[i].hi;
  }
  return at;
}

static bool place(const Plan *cp, Plan *p) {
  int *order = malloc(sizeof(int) * (size_t)(p->n + 1));
  int *placed = malloc(sizeof(int) * (size_t)(p->n + 1));
  Span *spans = malloc(sizeof(Span) * (size_t)(p->n + 1));
  if (!order || !placed || !spans) {
    free(order), free(placed), free(spans);
    return false;
  }
  for (int i = 0; i < p->n; i++) order[i] = i;
  sort_plan = cp;
  qsort(order, (size_t)p->n, sizeof *order, by_size_desc);
  for (int i = 0; i < p->n; i++) {
    Buffer *b = &p->bufs[order[i]];
    b->offset = lowest_fit(p, placed, i, b, spans);
    placed[i] = order[i];
    int64_t *top = b->per_batch ? &p->per_batch_bytes : &p->fixed_bytes;
    if (b->offset + b->bytes > *top) *top = b->offset + b->bytes;
    *(b->per_batch ? &p->sum_per_batch : &p->sum_fixed) += b->bytes;
  }
  free(order), free(placed), free(spans);
  return true;
}

static void measure_live(const Schedule *s, Plan *p) {
  for (int k = 0; k <= s->n; k++) {
    int64_t fixed = 0, per_batch = 0;
    for (int i = 0; i < p->n; i++) {
      const Buffer *b = &p->bufs[i];
      if (b->first <= k && k <= b->last) *(b->per_batch ? &per_batch : &fixed) += b->bytes;
    }
    if (fixed > p->live_fixed) p->live_fixed = fixed;
    if (per_batch > p->live_per_batch) p->live_per_batch = per_batch;
  }
}

bool plan_build(Arena *a, DiagList *d, const Schedule *s, Plan *out) {
  memset(out, 0, sizeof *out);
  out->buf_of = arena_alloc(a, sizeof(int) * (size_t)(s->g->n + 1));
  if (!out->buf_of) goto oom;
  for (int i = 0; i < s->g->n; i++) out->buf_of[i] = -1;
  if (!find_lifetimes(a, s, out) || !place(out, out)) goto oom;
  measure_live(s, out);
  return plan_verify(d, s, out);
oom:
  diag_error(d, s->g->loc, "out of memory while planning entry %s", s->g->name);
  return false;
}

static bool reads(const Kernel *K, const Node *x) {
  for (int i = 0; i < K->ninputs; i++)
    if (K->inputs[i] == x) return true;
  return false;
}

/* Within the writer, every value that depends on the leaf is elementwise
 * and of the leaf's shape, so element i is read and written by the same
 * thread. */
static bool elementwise_in(const Kernel *K, const Node *leaf) {
  if (K->kind != K_POINTWISE) return false;
  const Node *dep[256];
  int ndep = 0;
  for (int i = 0; i < K->nnodes; i++) {
    const Node *n = K->nodes[i];
    bool depends = false;
    for (int k = 0; k < n->nsrc; k++) {
      depends |= n->src[k] == leaf;
      for (int j = 0; j < ndep; j++) depends |= n->src[k] == dep[j];
    }
    if (!depends) continue;
    if (!(op_flags[n->op] & OPF_ELEMENTWISE) || !shape_eq(&n->shape, &leaf->shape) || ndep == 256) return false;
    dep[ndep++] = n;
  }
  return true;
}

static bool verify_in_place(DiagList *d, const Schedule *s, const Buffer *x) {
  const Kernel *W = s->kernels[x->first];
  for (int k = x->first + 1; k < s->n; k++)
    if (reads(s->kernels[k], x->alias)) {
      diag_error(d, x->value->loc, "internal: kernel k%d reads '%s' after k%d updated it in place", k,
                 x->alias->name, x->first);
      return false;
    }
  if (!elementwise_in(W, x->alias)) {
    diag_error(d, x->value->loc, "internal: kernel k%d updates '%s' in place but does not read it element for element",
               x->first, x->alias->name);
    return false;
  }
  return true;
}

bool plan_verify(DiagList *d, const Schedule *s, const Plan *p) {
  for (int i = 0; i < p->n; i++) {
    const Buffer *x = &p->bufs[i];
    if (x->alias && !verify_in_place(d, s, x)) return false;
    int64_t top = x->per_batch ? p->per_batch_bytes : p->fixed_bytes;
    if (x->offset < 0 || x->offset % PLAN_ALIGN || x->offset + x->bytes > top) {
      diag_error(d, x->value->loc, "internal: buffer of %%%d lies outside its arena", x->value->id);
      return false;
    }
    for (int j = i + 1; j < p->n; j++) {
      const Buffer *y = &p->bufs[j];
      if (x->per_batch != y->per_batch || !lifetimes_overlap(x, y)) continue;
      if (x->offset < y->offset + y->bytes && y->offset < x->offset + x->bytes) {
        diag_error(d, s->g->loc, "internal: buffers of %%%d and %%%d overlap while both live",
                   x->value->id, y->value->id);
        return false;
      }
    }
  }
  return true;
}

static void print_bytes(FILE *out, int64_t fixed, int64_t per_batch) {
  fprintf(out, "%lld + %lld*B bytes", (long long)fixed, (long long)per_batch);
}

void plan_print(FILE *out, const Schedule *s, const Plan *p) {
  fprintf(out, "entry %s: %d buffers; arena ", s->g->name, p->n);
  print_bytes(out, p->fixed_bytes, p->per_batch_bytes);
  fputs("; live peak ", out);
  print_bytes(out, p->live_fixed, p->live_per_batch);
  fputs("; without reuse ", out);
  print_bytes(out, p->sum_fixed, p->sum_per_batch);
  fputc('\n', out);
  for (int i = 0; i < p->n; i++) {
    const Buffer *b = &p->bufs[i];
    if (b->alias) {
      fprintf(out, "  %%%d k%d..k%d in place of %s\n", b->value->id, b->first, b->last, b->alias->name);
      continue;
    }
    fprintf(out, "  %%%d k%d..k%d %s@%lld +%lld\n", b->value->id, b->first, b->last,
            b->per_batch ? "B*" : "", (long long)b->offset, (long long)b->bytes);
  }
}
