/* ir.h: the graph IR. A DAG of typed tensor ops with static shapes, where
 * one dimension symbol (the batch, usually "B") may appear as a factor of a
 * dimension. Nodes are created through the ir_* builders below, which apply
 * each op's shape rule and report a located error when it fails. */
#ifndef IREPA_IR_H
#define IREPA_IR_H

#include <stdint.h>

#include "diag.h"

typedef enum {
#define OP(name, arity, flags, doc) OP_##name,
#include "ops.def"
#undef OP
  OP_COUNT
} OpKind;

enum {
  OPF_LEAF = 1 << 0,
  OPF_RANDOM = 1 << 1,
  OPF_ELEMENTWISE = 1 << 2,
  OPF_COMMUTATIVE = 1 << 3,
  OPF_REDUCE = 1 << 4,
  OPF_MOVEMENT = 1 << 5,
  OPF_COMPUTE = 1 << 6,
};

typedef enum { DT_F32, DT_F16, DT_BF16, DT_F64, DT_I32, DT_I64, DT_U8, DT_BOOL, DT_COUNT } DType;

enum { IR_MAX_RANK = 8 };

/* A dimension: n, or n times the symbolic batch size when sym is set. */
typedef struct {
  int64_t n;
  bool sym;
} Dim;

typedef struct {
  int rank;
  Dim d[IR_MAX_RANK];
} Shape;

typedef struct {
  int index;                    /* INPUT, PARAM */
  double value;                 /* CONST, BERNOULLI p, ATTENTION scale */
  int stream;                   /* random ops */
  uint32_t axes;                /* reductions: bit i = axis i */
  bool keepdims;
  int perm[IR_MAX_RANK];        /* PERMUTE */
  int64_t start[IR_MAX_RANK];   /* SLICE */
  int64_t step[IR_MAX_RANK];
  int axis;                     /* CONCAT */
  int stride[2], pad[2];        /* CONV2D */
} Attr;

typedef struct Node Node;
struct Node {
  int id;          /* position in the graph; sources have smaller ids */
  OpKind op;
  DType dtype;
  Shape shape;
  Node **src;
  int nsrc;
  Attr attr;
  SrcLoc loc;
  const char *name; /* INPUT and PARAM: their name */
  int uses;         /* scratch for passes */
};

typedef struct {
  const char *name;
  SrcLoc loc;
  Node **nodes;
  int n, cap;
  Node **inputs;
  int ninputs;
  Node **outputs;
  const char **output_names;  /* NULL entries: unnamed (printed as out.N) */
  Node **updates;   /* per output: the INPUT or PARAM it replaces after the
                       run (written in place, plan.c), or NULL */
  int noutputs;
  const char *sym_name;  /* the batch symbol's name, or NULL if unused */
} Graph;

/* Parameter initialisation rules (spec/sit.md §6). */
typedef enum {
  INIT_ZEROS, INIT_ONES, INIT_CONSTANT, INIT_NORMAL, INIT_UNIFORM,
  INIT_XAVIER_UNIFORM, INIT_TORCH_DEFAULT, INIT_SINCOS_2D,
} InitKind;

typedef struct {
  InitKind kind;
  double a, b;             /* constant value; normal mean,std; uniform low,high */
  int64_t fan_in, fan_out; /* xavier_uniform, torch_default */
  int64_t grid;            /* sincos_2d */
} InitRule;

typedef struct {
  const char *name;        /* hierarchical, PyTorch state_dict style */
  DType dtype;
  Shape shape;
  InitRule init;
  bool trainable;
  SrcLoc loc;
} ParamInfo;

typedef struct {
  ParamInfo *items;
  int n, cap;
} ParamTable;

typedef struct {
  const char *root_module;
  ParamTable params;
  Graph **entries;
  int nentries;
} IrProgram;

typedef struct {
  Arena *arena;
  DiagList *diags;
  Graph *g;
  int next_stream;
} IrBuilder;

const char *op_name(OpKind op);
extern const int op_flags[OP_COUNT];
extern const int op_arity[OP_COUNT];
const char *dtype_name(DType t);
bool dtype_from_name(const char *s, DType *out);
bool dtype_is_float(DType t);
int dtype_size(DType t);

/* Shapes. */
Shape shape_make(int rank, const int64_t *dims);
bool dim_eq(Dim a, Dim b);
bool shape_eq(const Shape *a, const Shape *b);
/* Element count as a Dim; false on overflow or a squared symbol. */
bool shape_numel(const Shape *s, Dim *out);
/* "f32[B,256,768]" */
const char *ir_type_str(Arena *a, DType t, const Shape *s, const char *sym);
void ir_format_dim(StrBuf *sb, Dim d, const char *sym);

Graph *ir_new_graph(Arena *a, const char *name, SrcLoc loc);

/* Builders: NULL and a diagnostic at `loc` when the shape rule fails. */
Node *ir_input(IrBuilder *b, const char *name, DType t, Shape s, SrcLoc loc);
Node *ir_param(IrBuilder *b, int index, const ParamInfo *p, SrcLoc loc);
Node *ir_const(IrBuilder *b, double value, DType t, SrcLoc loc);
Node *ir_arange(IrBuilder *b, int64_t n, DType t, SrcLoc loc);
Node *ir_random(IrBuilder *b, OpKind op, Shape s, double p, SrcLoc loc);
Node *ir_unary(IrBuilder *b, OpKind op, Node *a, SrcLoc loc);
Node *ir_cast(IrBuilder *b, Node *a, DType to, SrcLoc loc);
Node *ir_binary(IrBuilder *b, OpKind op, Node *x, Node *y, SrcLoc loc);
Node *ir_where(IrBuilder *b, Node *c, Node *x, Node *y, SrcLoc loc);
Node *ir_reduce(IrBuilder *b, OpKind op, Node *a, uint32_t axes, bool keepdims, SrcLoc loc);
Node *ir_reshape(IrBuilder *b, Node *a, Shape s, SrcLoc loc);
Node *ir_permute(IrBuilder *b, Node *a, const int *perm, SrcLoc loc);
Node *ir_slice(IrBuilder *b, Node *a, const int64_t *start, const int64_t *stop,
               const int64_t *step, SrcLoc loc);
Node *ir_concat(IrBuilder *b, Node **xs, int n, int axis, SrcLoc loc);
Node *ir_expand(IrBuilder *b, Node *a, Shape s, SrcLoc loc);
Node *ir_matmul(IrBuilder *b, Node *x, Node *y, SrcLoc loc);
Node *ir_conv2d(IrBuilder *b, Node *x, Node *w, const int stride[2], const int pad[2], SrcLoc loc);
Node *ir_gather(IrBuilder *b, Node *table, Node *idx, SrcLoc loc);
Node *ir_attention(IrBuilder *b, Node *q, Node *k, Node *v, double scale, SrcLoc loc);
/* Backward ops; their operands come from a forward node, so only the
 * result shape needs stating. */
Node *ir_pad(IrBuilder *b, Node *a, Shape to, const int64_t *start, const int64_t *step, SrcLoc loc);
Node *ir_conv2d_bwd_input(IrBuilder *b, Node *g, Node *w, const int stride[2], const int pad[2],
                          Shape input, SrcLoc loc);
Node *ir_conv2d_bwd_weight(IrBuilder *b, Node *x, Node *g, const int stride[2], const int pad[2],
                           Shape weight, SrcLoc loc);
Node *ir_scatter_add(IrBuilder *b, Node *g, Node *idx, Shape table, SrcLoc loc);
Node *ir_attention_bwd(IrBuilder *b, Node *q, Node *k, Node *v, Node *g, int which, double scale,
                       SrcLoc loc);

/* Appends an output (name may be NULL). */
bool ir_add_output(Arena *a, Graph *g, Node *n, const char *name);
/* Appends an output that replaces the leaf `target` (an INPUT or PARAM of
 * g, of n's type, replaced at most once): the state a training step
 * carries from one run to the next. Named after the target. */
bool ir_add_update(Arena *a, DiagList *d, Graph *g, Node *n, Node *target);
/* A deep copy of g under another name: passes that extend an entry (the
 * training step) leave the original intact. */
Graph *ir_clone_graph(Arena *a, const Graph *g, const char *name);
/* The INPUT or PARAM that output node x replaces in place, or NULL. */
const Node *ir_update_target(const Graph *g, const Node *x);
/* Appends a copy of x (op, type, attributes, name) reading src, to a pass
 * that rebuilds a graph; an INPUT copy is not registered as an input. */
Node *ir_copy_node(IrBuilder *b, const Node *x, Node **src);
/* Keeps only nodes that reach an output (and all inputs), renumbered. */
bool ir_prune(Arena *a, Graph *g);
/* Structural invariants; false with a diagnostic naming the node. */
bool ir_verify(DiagList *d, const Graph *g);

void ir_print_graph(FILE *out, const Graph *g, bool with_locs, const SourceSet *src);
void ir_print_params(FILE *out, const ParamTable *t);
const char *ir_init_str(Arena *a, const InitRule *r);

#endif
