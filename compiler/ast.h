/* ast.h: the syntax tree the parser (grammar/irg.y) builds. It records what
 * was written, nothing more: every node keeps the SrcLoc of its first token
 * so that later passes report errors where the user wrote the thing. */
#ifndef IREPA_AST_H
#define IREPA_AST_H

#include <stdio.h>

#include "diag.h"

typedef struct Expr Expr;
typedef struct Stmt Stmt;
typedef struct TypeExpr TypeExpr;

typedef enum {
  E_INT, E_FLOAT, E_STR, E_BOOL, E_NONE, E_NAME,
  E_UNARY,    /* op a */
  E_BINARY,   /* a op b */
  E_CALL,     /* callee(args) */
  E_INDEX,    /* base[subs] */
  E_SLICE,    /* start:stop:step, only inside E_INDEX */
  E_ATTR,     /* base.name */
  E_LIST,     /* [a, b] */
  E_TUPLE,    /* (a, b) */
  E_LISTCOMP, /* [elem for var in iter] */
  E_COND,     /* a if cond else b */
} ExprKind;

/* Operator tokens of E_UNARY / E_BINARY. */
typedef enum {
  OPR_ADD, OPR_SUB, OPR_MUL, OPR_DIV, OPR_FLOORDIV, OPR_MOD, OPR_POW,
  OPR_MATMUL, OPR_EQ, OPR_NE, OPR_LT, OPR_LE, OPR_GT, OPR_GE, OPR_AND,
  OPR_OR, OPR_NOT, OPR_NEG, OPR_POS,
} OprKind;

typedef struct {
  char *name;   /* NULL for a positional argument */
  Expr *value;
  SrcLoc loc;
} Arg;

typedef struct {
  Expr **items;
  int n, cap;
} ExprList;

typedef struct {
  Arg *items;
  int n, cap;
} ArgList;

struct Expr {
  ExprKind kind;
  SrcLoc loc;
  int depth;  /* nesting depth, bounded by the parser */
  long long ival;
  double fval;
  char *str;  /* E_STR text, E_NAME / E_ATTR name, E_LISTCOMP variable */
  OprKind op;
  Expr *a, *b, *c;  /* operands; E_SLICE: start stop step (any NULL);
                       E_COND: a if b else c; E_LISTCOMP: elem, iter */
  ExprList items;   /* E_LIST, E_TUPLE, E_INDEX subscripts */
  ArgList args;     /* E_CALL */
};

/* A dtype name or one of the compile-time kinds for annotations. */
typedef enum {
  TY_ANY, TY_INT, TY_FLOAT, TY_BOOL, TY_STR, TY_LIST, TY_TENSOR,
} TypeKind;

/* One dimension in a tensor annotation: an expression, a bare name that
 * binds a shape variable, or "..." (any leading dimensions). */
typedef struct {
  Expr *expr;       /* NULL for ellipsis */
  bool ellipsis;
} DimExpr;

struct TypeExpr {
  TypeKind kind;
  SrcLoc loc;
  char *dtype;   /* TY_TENSOR: "f32", "i64", ... as written */
  DimExpr *dims;
  int ndims;
  bool any_rank; /* tensor type written without brackets: any shape */
};

typedef struct {
  char *name;
  TypeExpr *type;  /* may be NULL */
  Expr *deflt;     /* may be NULL */
  SrcLoc loc;
} Param;

typedef struct {
  Param *items;
  int n, cap;
} ParamList;

typedef struct {
  TypeExpr **items;
  int n, cap;
} TypeList;

typedef struct {
  Stmt **items;
  int n, cap;
} StmtList;

typedef struct {
  char **items;
  SrcLoc *locs;
  int n, cap;
} NameList;

typedef enum {
  S_ASSIGN,  /* names = value; */
  S_EXPR,    /* value; */
  S_RETURN,  /* return values; */
  S_FOR,     /* for var in iter { body } */
  S_IF,      /* if cond { body } else { orelse } */
  S_PARAM,   /* [frozen] param name: type = init;   (module bodies only) */
  S_METHOD,  /* [entry] name(params) -> rets { body } (module bodies only) */
} StmtKind;

struct Stmt {
  StmtKind kind;
  SrcLoc loc;
  NameList targets;   /* S_ASSIGN */
  Expr *value;        /* S_ASSIGN, S_EXPR, S_FOR iter, S_IF cond, S_PARAM init */
  ExprList values;    /* S_RETURN */
  char *name;         /* S_FOR variable, S_PARAM / S_METHOD name */
  TypeExpr *type;     /* S_PARAM */
  bool flag;          /* S_PARAM frozen, S_METHOD entry */
  ParamList params;   /* S_METHOD */
  TypeList rets;      /* S_METHOD return annotation */
  bool has_rets;
  StmtList body, orelse;
};

typedef enum { D_IMPORT, D_MODULE, D_FN, D_MODEL } DeclKind;

typedef struct {
  DeclKind kind;
  SrcLoc loc;
  char *name;        /* module / fn name; D_IMPORT: the path as written */
  ParamList params;
  TypeList rets;
  bool has_rets;
  StmtList body;
  Expr *value;       /* D_MODEL: the root module's constructor call */
  int file;          /* source file the declaration came from */
  int import_file;   /* D_IMPORT: file index once resolved, else -1 */
} Decl;

typedef struct {
  Decl **items;
  int n, cap;
} DeclList;

/* One parsed file. */
typedef struct {
  int file;
  DeclList decls;
} AstFile;

/* Constructors; they return NULL when the arena is exhausted. */
Expr *ast_expr(Arena *a, ExprKind kind, SrcLoc loc);
Stmt *ast_stmt(Arena *a, StmtKind kind, SrcLoc loc);
Decl *ast_decl(Arena *a, DeclKind kind, SrcLoc loc);
TypeExpr *ast_type(Arena *a, TypeKind kind, SrcLoc loc);
bool ast_push_expr(Arena *a, ExprList *l, Expr *e);
bool ast_push_arg(Arena *a, ArgList *l, Arg arg);
bool ast_push_param(Arena *a, ParamList *l, Param p);
bool ast_push_type(Arena *a, TypeList *l, TypeExpr *t);
bool ast_push_stmt(Arena *a, StmtList *l, Stmt *s);
bool ast_push_name(Arena *a, NameList *l, char *name, SrcLoc loc);
bool ast_push_decl(Arena *a, DeclList *l, Decl *d);
bool ast_push_dim(Arena *a, TypeExpr *t, DimExpr d);

const char *ast_opr_name(OprKind op);
/* Stable, diff-friendly dump for `irepac dump --stage=ast`. */
void ast_print(FILE *out, const AstFile *f, const SourceSet *src,
               bool with_locs);

#endif
