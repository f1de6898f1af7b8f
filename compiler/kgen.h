/* kgen.h: the body of a fused kernel as C statements, shared by the C and
 * the CUDA generators (CUDA C is C for these purposes). Given index
 * variables for a node's elements, kgen emits the statements that compute
 * the node's value there, walking its producers inside the kernel and
 * loading what comes from memory. */
#ifndef IREPA_KGEN_H
#define IREPA_KGEN_H

#include "fuse.h"

/* An index into a node's elements: a flat row-major position, or one
 * expression per axis. Expressions are C text over idx_t variables. */
typedef struct {
  bool flat;
  const char *pos;                  /* flat */
  const char *ax[IR_MAX_RANK];      /* per axis */
  /* A flat index made from axes (a reshape's): ax holds them, over this
   * shape, so that splitting it again reuses them instead of dividing. */
  const Shape *of;
} KIndex;

enum { KG_MAX_BOUND = 64 };

typedef struct {
  Arena *a;
  StrBuf *sb;
  const Kernel *K;
  int indent;
  int ntmp;
  DiagList *d;
  bool failed;  /* an op the backend cannot emit; a diagnostic says which */
  const Graph *graph;
  /* Outputs already computed in this element's body (kg_pointwise_body),
   * reused where read at the same index bound_at. */
  int nbound;
  const Node *bound[KG_MAX_BOUND];
  const char *bound_v[KG_MAX_BOUND];
  KIndex bound_at;
} KGen;

/* The C type values of dtype t are computed in: float for f32, f16 and
 * bf16; double for the rest, as the interpreter does. */
const char *kg_compute_type(DType t);
/* The C type t is stored as. */
const char *kg_storage_type(DType t);
/* "64" or "(64*B)". */
const char *kg_dim(Arena *a, Dim d);
/* A shape's element count, as a Dim and as C text. */
Dim kg_numel(const Shape *s);
const char *kg_numel_expr(Arena *a, const Shape *s);
/* The axes of src that a reduction over `axes` keeps (reduced = false) or
 * reduces (true), as a shape of their own. */
Shape kg_reduce_axes(const Shape *src, uint32_t axes, bool reduced);
/* Name of argument i of K: inputs first ("in0".."inN"), then outputs. */
const char *kg_arg(Arena *a, const Kernel *K, const Node *x);

void kg_line(KGen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A fresh variable name with the given prefix. */
const char *kg_tmp(KGen *g, const char *prefix);
/* The index over `s` whose axes are the variables names[0..rank). */
KIndex kg_axes(const Shape *s, const char *const *names);
const char *kg_flat(KGen *g, const Shape *s, KIndex i);
/* The flat index pos. */
KIndex kg_at(const char *pos);
/* i as one expression per axis of s (emits the divisions). */
KIndex kg_split(KGen *g, const Shape *s, KIndex i);
/* Emits the statements computing node n at index i; returns the variable
 * that holds it (in n's compute type). */
const char *kg_value(KGen *g, const Node *n, KIndex i);
/* Whether argument x of the kernel shares its buffer with another of its
 * arguments: an input leaf that one of its outputs replaces in place, or
 * that output. Such pointers must not be declared restrict. */
bool kg_in_place(const KGen *g, const Node *x);
/* `out[pos] = v;` with the conversion to x's storage type. */
void kg_store(KGen *g, const Node *x, const char *pos, const char *v);
/* A pointwise kernel's body for the element at (flat position pos): every
 * output in node order, computed and stored; a later output reading an
 * earlier one (a merged kernel, fuse.c) takes its value, not its memory. */
void kg_pointwise_body(KGen *g, KIndex at, const char *pos);
/* The compute ops (conv, gather, attention) take f32 operands (indices
 * aside); false with a diagnostic naming the backend otherwise. */
bool kg_check_float(KGen *g, const Node *n, const char *backend);

#endif
