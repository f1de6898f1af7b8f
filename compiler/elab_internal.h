/* elab_internal.h: compile-time values and scopes shared by the
 * elaborator's files (elab.c: modules, statements and calls; elab_expr.c:
 * expressions and annotations; builtins.c: built-in functions). */
#ifndef IREPA_ELAB_INTERNAL_H
#define IREPA_ELAB_INTERNAL_H

#include "elab.h"

typedef struct Value Value;
typedef struct Env Env;
typedef struct Instance Instance;
typedef struct Builtin Builtin;
typedef struct Elab Elab;

typedef enum {
  V_NONE, V_INT, V_FLOAT, V_BOOL, V_STR, V_LIST, V_TUPLE,
  V_DIM,      /* a dimension that involves the batch symbol */
  V_TENSOR,   /* a graph node (inside methods only) */
  V_PARAM,    /* a declared parameter (becomes a PARAM node when used) */
  V_INSTANCE, /* a module instance or a module list */
  V_MODULE,   /* a module declaration, callable to instantiate */
  V_FN,       /* a file-level function */
  V_METHOD,   /* a method bound to its instance */
  V_BUILTIN,
  V_DTYPE,
  V_SLICE,    /* start:stop:step inside an index */
} ValueKind;

typedef struct OwnParam OwnParam;

struct Value {
  ValueKind kind;
  int64_t i;        /* V_INT, V_BOOL */
  double f;         /* V_FLOAT */
  const char *s;    /* V_STR */
  Value **items;    /* V_LIST, V_TUPLE; V_SLICE: start stop step (or NULL) */
  int n;
  Dim dim;          /* V_DIM */
  Node *node;       /* V_TENSOR */
  OwnParam *param;  /* V_PARAM */
  Instance *inst;   /* V_INSTANCE, V_METHOD */
  Decl *decl;       /* V_MODULE, V_FN */
  Stmt *method;     /* V_METHOD */
  const Builtin *builtin;
  DType dtype;      /* V_DTYPE */
};

struct OwnParam {
  const char *name;
  Instance *owner;
  ParamInfo info;   /* name filled in when the table is built */
  int index;        /* in the ParamTable; -1 before */
};

struct Instance {
  Decl *decl;             /* NULL for a module list / Sequential */
  const char *name;       /* within the parent; NULL until registered */
  Instance *parent;
  bool sequential;        /* calling it applies the children in order */
  Env *env;               /* arguments and members */
  Instance **children;    /* registration order */
  int nchildren, capchildren;
  OwnParam **params;      /* own parameters, declaration order */
  int nparams, capparams;
  SrcLoc loc;
};

struct Env {
  const char **names;
  Value **values;
  int n, cap;
  Env *parent;
  int file;            /* for global lookup */
  Instance *self;      /* module body or method: the instance */
};

typedef struct {
  Value **pos;
  int npos;
  const char **kw_names;
  Value **kw;
  SrcLoc *kw_locs;
  int nkw;
  SrcLoc *pos_locs;
} CallArgs;

struct Builtin {
  const char *name;
  Value *(*fn)(Elab *E, const Builtin *b, CallArgs *args, SrcLoc loc);
  const char *params[6];  /* names, positional order */
  int nrequired;
  const char *doc;
};

/* Control flow of statement execution. */
typedef enum { FLOW_NEXT, FLOW_RETURN, FLOW_ERROR } Flow;

enum {
  ELAB_MAX_CALL_DEPTH = 64,
  ELAB_MAX_UNROLL = 100000,
  ELAB_MAX_LIST = 1 << 20,
  ELAB_MAX_STRING = 1 << 16,   /* bytes in a compile-time string */
  /* Expressions and blocks being evaluated at once, across calls: bounds
   * the C stack (each call may nest PARSE_MAX_EXPR_DEPTH operators). */
  ELAB_MAX_NESTING = 2000,
  /* Total work: evaluations plus list elements built. Bounds compile time
   * for runaway programs (exponential recursion, nested comprehensions). */
  ELAB_MAX_STEPS = 2000000,    /* SiT-B/2 needs about 10000 */
};

struct Elab {
  Arena *arena;
  DiagList *diags;
  const Program *prog;
  IrBuilder ir;         /* ir.g is the graph being traced, NULL outside */
  IrProgram *out;
  Node **param_nodes;   /* per current graph: PARAM node of each table entry */
  int depth;            /* call depth */
  int unrolled;         /* loop iterations so far */
  int nesting;          /* evaluations in progress (C stack depth) */
  int64_t steps;        /* work done so far, against ELAB_MAX_STEPS */
  bool out_of_steps;    /* ELAB_MAX_STEPS was reported */
  bool in_method;       /* tensors allowed, instantiation not */
  SrcLoc ret_loc;       /* the return statement last executed */
  Value *none, *true_v, *false_v;
};

/* elab.c */
Value *new_value(Elab *E, ValueKind k);
Value *int_value(Elab *E, int64_t i);
Value *float_value(Elab *E, double f);
Value *bool_value(Elab *E, bool b);
Value *tensor_value(Elab *E, Node *n);
Env *env_new(Elab *E, Env *parent, int file, Instance *self);
bool env_set(Elab *E, Env *env, const char *name, Value *v);
Value *env_get_local(Env *env, const char *name);
Value *lookup(Elab *E, Env *env, const char *name, SrcLoc loc, bool report);
Value *call_value(Elab *E, Value *callee, CallArgs *args, SrcLoc loc, const char *what);
const char *kind_name(ValueKind k);
/* The kind with its article, for messages: "an int", "a list", "None". */
const char *a_kind(ValueKind k);
const char *value_str(Elab *E, Value *v);
Node *param_node(Elab *E, OwnParam *p, SrcLoc loc);

/* elab_expr.c */
Value *eval(Elab *E, Env *env, Expr *e);
/* Counts `n` units of work; false, reported once, past ELAB_MAX_STEPS. */
bool charge(Elab *E, int64_t n, SrcLoc loc);
/* Enters one level of evaluation (false, reported, past ELAB_MAX_NESTING);
 * every successful nest_enter is paired with E->nesting--. */
bool nest_enter(Elab *E, SrcLoc loc);
bool eval_args(Elab *E, Env *env, ArgList *in, CallArgs *out);
Value *binary_op(Elab *E, OprKind op, Value *a, Value *b, SrcLoc loc);
/* Converts a value to a tensor node (tensors, params, numbers, bools as
 * rank-0 constants of `like`'s dtype when given). NULL with a diagnostic. */
Node *as_tensor(Elab *E, Value *v, DType like, bool have_like, SrcLoc loc);
bool as_int(Elab *E, Value *v, int64_t *out, SrcLoc loc, const char *what);
bool as_float(Elab *E, Value *v, double *out, SrcLoc loc, const char *what);
bool as_bool(Elab *E, Value *v, bool *out, SrcLoc loc, const char *what);
bool as_dim(Elab *E, Value *v, Dim *out, SrcLoc loc, const char *what);
bool truthy(Elab *E, Value *v, bool *out, SrcLoc loc);
/* Checks v against an annotation. Unbound bare names in tensor shapes bind
 * shape variables in `bind` (and become visible there). */
bool check_type(Elab *E, Env *scope, Env *bind, Value *v, TypeExpr *t,
                SrcLoc loc, const char *what);
bool eval_shape_list(Elab *E, Value *v, Shape *out, SrcLoc loc, const char *what);

Instance *make_container(Elab *E, Value **items, int n, bool sequential, SrcLoc loc);

/* builtins.c */
const Builtin *builtin_find(const char *name);
bool bind_builtin_args(Elab *E, const Builtin *b, CallArgs *args, Value **out, SrcLoc loc);
Value *builtin_constant(Elab *E, const char *name);

#endif
