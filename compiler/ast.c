/* ast.c: AST constructors, list helpers and the `--stage=ast` printer. */
#include "ast.h"

#include <string.h>

Expr *ast_expr(Arena *a, ExprKind kind, SrcLoc loc) {
  Expr *e = arena_alloc(a, sizeof *e);
  if (e) {
    e->kind = kind;
    e->loc = loc;
    e->depth = 1;
  }
  return e;
}

Stmt *ast_stmt(Arena *a, StmtKind kind, SrcLoc loc) {
  Stmt *s = arena_alloc(a, sizeof *s);
  if (s) {
    s->kind = kind;
    s->loc = loc;
  }
  return s;
}

Decl *ast_decl(Arena *a, DeclKind kind, SrcLoc loc) {
  Decl *d = arena_alloc(a, sizeof *d);
  if (d) {
    d->kind = kind;
    d->loc = loc;
    d->file = loc.file;
    d->import_file = -1;
  }
  return d;
}

TypeExpr *ast_type(Arena *a, TypeKind kind, SrcLoc loc) {
  TypeExpr *t = arena_alloc(a, sizeof *t);
  if (t) {
    t->kind = kind;
    t->loc = loc;
  }
  return t;
}

/* Appends to an arena-backed array of `elem` bytes, doubling capacity. */
static bool push(Arena *a, void **items, int *n, int *cap, const void *elem,
                 size_t size) {
  if (*n == *cap) {
    int ncap = *cap ? *cap * 2 : 4;
    void *p = arena_grow(a, *items, (size_t)*cap, (size_t)ncap, size);
    if (!p) return false;
    *items = p;
    *cap = ncap;
  }
  memcpy((char *)*items + (size_t)*n * size, elem, size);
  (*n)++;
  return true;
}

#define PUSH(a, l, x) push((a), (void **)&(l)->items, &(l)->n, &(l)->cap, &(x), sizeof(x))

bool ast_push_expr(Arena *a, ExprList *l, Expr *e) { return PUSH(a, l, e); }
bool ast_push_arg(Arena *a, ArgList *l, Arg arg) { return PUSH(a, l, arg); }
bool ast_push_param(Arena *a, ParamList *l, Param p) { return PUSH(a, l, p); }
bool ast_push_type(Arena *a, TypeList *l, TypeExpr *t) { return PUSH(a, l, t); }
bool ast_push_stmt(Arena *a, StmtList *l, Stmt *s) { return PUSH(a, l, s); }
bool ast_push_decl(Arena *a, DeclList *l, Decl *d) { return PUSH(a, l, d); }

bool ast_push_name(Arena *a, NameList *l, char *name, SrcLoc loc) {
  int n = l->n, cap = l->cap;
  if (!push(a, (void **)&l->items, &l->n, &l->cap, &name, sizeof name))
    return false;
  /* locs grows in step with items: same n, same capacity. */
  if (l->cap != cap) {
    SrcLoc *locs = arena_grow(a, l->locs, (size_t)cap, (size_t)l->cap,
                              sizeof *locs);
    if (!locs) return false;
    l->locs = locs;
  }
  l->locs[n] = loc;
  return true;
}

bool ast_push_dim(Arena *a, TypeExpr *t, DimExpr d) {
  int cap = t->ndims; /* exact-size growth: annotations are short */
  DimExpr *dims = arena_grow(a, t->dims, (size_t)cap, (size_t)cap + 1,
                             sizeof *dims);
  if (!dims) return false;
  dims[t->ndims++] = d;
  t->dims = dims;
  return true;
}

static const char *const opr_names[] = {
    [OPR_ADD] = "+",  [OPR_SUB] = "-",   [OPR_MUL] = "*",  [OPR_DIV] = "/",
    [OPR_FLOORDIV] = "//", [OPR_MOD] = "%", [OPR_POW] = "**",
    [OPR_MATMUL] = "@", [OPR_EQ] = "==", [OPR_NE] = "!=", [OPR_LT] = "<",
    [OPR_LE] = "<=", [OPR_GT] = ">",     [OPR_GE] = ">=",  [OPR_AND] = "and",
    [OPR_OR] = "or", [OPR_NOT] = "not",  [OPR_NEG] = "neg", [OPR_POS] = "pos",
};

const char *ast_opr_name(OprKind op) { return opr_names[op]; }

/* ---- printer ---------------------------------------------------------- */

typedef struct {
  FILE *out;
  const SourceSet *src;
  bool with_locs;
} Printer;

static void print_expr(Printer *p, const Expr *e);

static void print_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
    else if (c == '\n') fputs("\\n", out);
    else if (c == '\t') fputs("\\t", out);
    else if (c < 0x20) fprintf(out, "\\x%02x", c);
    else fputc(c, out);
  }
  fputc('"', out);
}

/* A float literal keeps a '.' or an exponent so that 2.0 does not print as
 * the int 2: the two differ in dtype rules. */
static void print_float(FILE *out, double v) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.17g", v);
  fputs(buf, out);
  if (!strpbrk(buf, ".eni")) fputs(".0", out);
}

static void print_exprs(Printer *p, const ExprList *l) {
  for (int i = 0; i < l->n; i++) {
    fputc(' ', p->out);
    print_expr(p, l->items[i]);
  }
}

static void print_opt(Printer *p, const Expr *e) {
  if (e) print_expr(p, e);
  else fputc('_', p->out);
}

static void print_expr(Printer *p, const Expr *e) {
  FILE *out = p->out;
  switch (e->kind) {
  case E_INT: fprintf(out, "%lld", e->ival); break;
  case E_FLOAT: print_float(out, e->fval); break;
  case E_STR: print_string(out, e->str); break;
  case E_BOOL: fputs(e->ival ? "true" : "false", out); break;
  case E_NONE: fputs("None", out); break;
  case E_NAME: fputs(e->str, out); break;
  case E_UNARY:
  case E_BINARY:
    fprintf(out, "(%s ", ast_opr_name(e->op));
    print_expr(p, e->a);
    if (e->b) {
      fputc(' ', out);
      print_expr(p, e->b);
    }
    fputc(')', out);
    break;
  case E_CALL:
    fputs("(call ", out);
    print_expr(p, e->a);
    for (int i = 0; i < e->args.n; i++) {
      fputc(' ', out);
      if (e->args.items[i].name) fprintf(out, "%s=", e->args.items[i].name);
      print_expr(p, e->args.items[i].value);
    }
    fputc(')', out);
    break;
  case E_INDEX:
    fputs("(index ", out);
    print_expr(p, e->a);
    print_exprs(p, &e->items);
    fputc(')', out);
    break;
  case E_SLICE:
    fputs("(slice ", out);
    print_opt(p, e->a);
    fputc(' ', out);
    print_opt(p, e->b);
    fputc(' ', out);
    print_opt(p, e->c);
    fputc(')', out);
    break;
  case E_ATTR:
    fputs("(. ", out);
    print_expr(p, e->a);
    fprintf(out, " %s)", e->str);
    break;
  case E_LIST:
    fputs("(list", out);
    print_exprs(p, &e->items);
    fputc(')', out);
    break;
  case E_TUPLE:
    fputs("(tuple", out);
    print_exprs(p, &e->items);
    fputc(')', out);
    break;
  case E_LISTCOMP:
    fputs("(listcomp ", out);
    print_expr(p, e->a);
    fprintf(out, " %s ", e->str);
    print_expr(p, e->b);
    fputc(')', out);
    break;
  case E_COND:
    fputs("(if ", out);
    print_expr(p, e->b);
    fputc(' ', out);
    print_expr(p, e->a);
    fputc(' ', out);
    print_expr(p, e->c);
    fputc(')', out);
    break;
  }
}

static void print_type(Printer *p, const TypeExpr *t) {
  static const char *const names[] = {"any", "int", "float", "bool",
                                      "str", "list", "tensor"};
  if (t->kind != TY_TENSOR) {
    fputs(names[t->kind], p->out);
    return;
  }
  fputs(t->dtype, p->out);
  if (t->any_rank) return;
  fputc('[', p->out);
  for (int i = 0; i < t->ndims; i++) {
    if (i) fputc(',', p->out);
    if (t->dims[i].ellipsis) fputs("...", p->out);
    else print_expr(p, t->dims[i].expr);
  }
  fputc(']', p->out);
}

static void indent(Printer *p, int level) {
  for (int i = 0; i < level; i++) fputs("  ", p->out);
}

static void print_loc(Printer *p, SrcLoc loc) {
  if (p->with_locs) fprintf(p->out, "  @%d:%d", loc.line, loc.col);
  fputc('\n', p->out);
}

static void print_params(Printer *p, const ParamList *l, int level) {
  for (int i = 0; i < l->n; i++) {
    const Param *pm = &l->items[i];
    indent(p, level);
    fprintf(p->out, "arg %s", pm->name);
    if (pm->type) {
      fputs(" : ", p->out);
      print_type(p, pm->type);
    }
    if (pm->deflt) {
      fputs(" = ", p->out);
      print_expr(p, pm->deflt);
    }
    print_loc(p, pm->loc);
  }
}

static void print_rets(Printer *p, const TypeList *rets, int level) {
  indent(p, level);
  fputs("returns", p->out);
  for (int i = 0; i < rets->n; i++) {
    fputc(' ', p->out);
    print_type(p, rets->items[i]);
  }
  fputc('\n', p->out);
}

static void print_stmts(Printer *p, const StmtList *l, int level);

static void print_stmt(Printer *p, const Stmt *s, int level) {
  indent(p, level);
  switch (s->kind) {
  case S_ASSIGN:
    fputs("assign", p->out);
    for (int i = 0; i < s->targets.n; i++) fprintf(p->out, " %s", s->targets.items[i]);
    fputs(" = ", p->out);
    print_expr(p, s->value);
    print_loc(p, s->loc);
    break;
  case S_EXPR:
    fputs("expr ", p->out);
    print_expr(p, s->value);
    print_loc(p, s->loc);
    break;
  case S_RETURN:
    fputs("return", p->out);
    print_exprs(p, &s->values);
    print_loc(p, s->loc);
    break;
  case S_FOR:
    fprintf(p->out, "for %s in ", s->name);
    print_expr(p, s->value);
    print_loc(p, s->loc);
    print_stmts(p, &s->body, level + 1);
    break;
  case S_IF:
    fputs("if ", p->out);
    print_expr(p, s->value);
    print_loc(p, s->loc);
    print_stmts(p, &s->body, level + 1);
    if (s->orelse.n) {
      indent(p, level);
      fputs("else\n", p->out);
      print_stmts(p, &s->orelse, level + 1);
    }
    break;
  case S_PARAM:
    fprintf(p->out, "%sparam %s : ", s->flag ? "frozen " : "", s->name);
    print_type(p, s->type);
    if (s->value) {
      fputs(" = ", p->out);
      print_expr(p, s->value);
    }
    print_loc(p, s->loc);
    break;
  case S_METHOD:
    fprintf(p->out, "%smethod %s", s->flag ? "entry " : "", s->name);
    print_loc(p, s->loc);
    print_params(p, &s->params, level + 1);
    if (s->has_rets) print_rets(p, &s->rets, level + 1);
    print_stmts(p, &s->body, level + 1);
    break;
  }
}

static void print_stmts(Printer *p, const StmtList *l, int level) {
  for (int i = 0; i < l->n; i++) print_stmt(p, l->items[i], level);
}

void ast_print(FILE *out, const AstFile *f, const SourceSet *src,
               bool with_locs) {
  Printer p = {out, src, with_locs};
  fprintf(out, "file %s\n", src_path(src, f->file));
  for (int i = 0; i < f->decls.n; i++) {
    const Decl *d = f->decls.items[i];
    switch (d->kind) {
    case D_IMPORT:
      fputs("import ", out);
      print_string(out, d->name);
      print_loc(&p, d->loc);
      break;
    case D_MODULE:
    case D_FN:
      fprintf(out, "%s %s", d->kind == D_MODULE ? "module" : "fn", d->name);
      print_loc(&p, d->loc);
      print_params(&p, &d->params, 1);
      if (d->has_rets) print_rets(&p, &d->rets, 1);
      print_stmts(&p, &d->body, 1);
      break;
    case D_MODEL:
      fputs("model ", out);
      print_expr(&p, d->value);
      print_loc(&p, d->loc);
      break;
    }
  }
}
