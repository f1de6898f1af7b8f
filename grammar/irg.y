/* irg.y: the .irg grammar. A pure (reentrant) bison parser with locations
 * that builds the AST of ast.h. Syntax errors are reported as
 * "unexpected X, expected Y" and the parser recovers at ';' and '}' so one
 * run reports several errors. Placement rules (no `param` inside a method,
 * ...) are checked by the elaborator, not here. */
%define api.pure full
%define api.prefix {irg_yy}
%define parse.error custom
%define parse.lac full
%locations
%expect 0

%code requires {
#include "parse.h"
typedef void *yyscan_t;
}

%code provides {
/* flex's generated code names the token value and location types plainly. */
#define YYSTYPE IRG_YYSTYPE
#define YYLTYPE IRG_YYLTYPE
}

%param {yyscan_t scanner}
%parse-param {ParseState *ps}

%code {
#include <string.h>

int irg_yylex(IRG_YYSTYPE *lval, IRG_YYLTYPE *lloc, yyscan_t scanner);
static void irg_yyerror(IRG_YYLTYPE *loc, yyscan_t scanner, ParseState *ps,
                        const char *msg);

#define LOC(l) ((SrcLoc){ps->file, (l).first_line, (l).first_column})
/* Every constructor may fail when memory runs out: stop cleanly. */
#define CHECK(x) do { if (!(x)) { out_of_memory(ps); YYABORT; } } while (0)

static void out_of_memory(ParseState *ps) {
  if (!ps->fatal) diag_error(ps->diags, NO_LOC, "out of memory while parsing");
  ps->fatal = true;
}

static int max_depth(const Expr *a, const Expr *b) {
  int da = a ? a->depth : 0, db = b ? b->depth : 0;
  return da > db ? da : db;
}

/* Builds an operator node; false when the nesting limit is passed. */
static Expr *op_expr(ParseState *ps, ExprKind kind, OprKind op, Expr *a,
                     Expr *b, SrcLoc loc) {
  Expr *e = ast_expr(ps->arena, kind, loc);
  if (!e) return NULL;
  e->op = op;
  e->a = a;
  e->b = b;
  e->depth = 1 + max_depth(a, b);
  return e;
}

static bool too_deep(ParseState *ps, Expr *e) {
  if (e->depth <= PARSE_MAX_EXPR_DEPTH) return false;
  diag_error(ps->diags, e->loc, "expression nested deeper than %d levels",
             PARSE_MAX_EXPR_DEPTH);
  ps->fatal = true;
  return true;
}

static int list_depth(const ExprList *l) {
  int d = 0;
  for (int i = 0; i < l->n; i++)
    if (l->items[i]->depth > d) d = l->items[i]->depth;
  return d;
}

static int args_depth(const ArgList *l) {
  int d = 0;
  for (int i = 0; i < l->n; i++)
    if (l->items[i].value->depth > d) d = l->items[i].value->depth;
  return d;
}

static TypeExpr *named_type(ParseState *ps, char *name, SrcLoc loc);
}

%union {
  long long ival;
  double fval;
  char *str;
  Expr *expr;
  ExprList exprs;
  Arg arg;
  ArgList args;
  Param param;
  ParamList params;
  TypeExpr *type;
  TypeList types;
  Stmt *stmt;
  StmtList stmts;
  NameList names;
  Decl *decl;
  DimExpr dim;
  bool flag;
}

%token <str> IDENT "identifier"
%token <str> STRING "string"
%token <ival> INT "integer"
%token <fval> FLOAT "number"
%token IMPORT "'import'" MODULE "'module'" FN "'fn'" ENTRY "'entry'"
%token PARAM "'param'" FROZEN "'frozen'" FOR "'for'"
%token IN "'in'" IF "'if'" ELSE "'else'" RETURN "'return'" TRUE "'true'"
%token FALSE "'false'" NONE "'None'" AND "'and'" OR "'or'" NOT "'not'"
%token ELLIPSIS "'...'" ARROW "'->'" POW "'**'" FLOORDIV "'//'"
%token EQ "'=='" NE "'!='" LE "'<='" GE "'>='"

%type <expr> expr expr_opt primary postfix sub
%type <exprs> exprs exprs_opt subs
%type <arg> arg
%type <args> args args_opt
%type <param> param
%type <params> params params_opt
%type <type> type dimlist
%type <types> types rets
%type <stmt> stmt method
%type <stmts> stmts block else_opt
%type <names> targets
%type <decl> decl
%type <dim> dim
%type <flag> frozen_opt

%right IF ELSE
%left OR
%left AND
%precedence NOT
%nonassoc EQ NE '<' LE '>' GE
%left '+' '-'
%left '*' '/' FLOORDIV '%' '@'
%precedence UMINUS
%right POW

%%

/* file = decl* */
file
  : %empty
  | file decl       { if ($2) CHECK(ast_push_decl(ps->arena, &ps->out->decls, $2)); }
  ;

/* decl = import | module | fn | "model" "=" expr ";" */
decl
  : IMPORT STRING ';' {
      CHECK($$ = ast_decl(ps->arena, D_IMPORT, LOC(@1)));
      $$->name = $2;
    }
  | MODULE IDENT '(' params_opt ')' block {
      CHECK($$ = ast_decl(ps->arena, D_MODULE, LOC(@1)));
      $$->name = $2;
      $$->params = $4;
      $$->body = $6;
    }
  | FN IDENT '(' params_opt ')' rets block {
      CHECK($$ = ast_decl(ps->arena, D_FN, LOC(@1)));
      $$->name = $2;
      $$->params = $4;
      $$->rets = $6;
      $$->has_rets = @6.first_line != 0 && $6.n > 0;
      $$->body = $7;
    }
  | IDENT '=' expr ';' {
      /* `model` is an ordinary name elsewhere (a SiT argument is called
       * model), so the declaration is recognised here by its text. */
      if (strcmp($1, "model") != 0) {
        diag_error(ps->diags, LOC(@1),
                   "only 'model = ...;' may be assigned at file level, not '%s'", $1);
        $$ = NULL;
      } else {
        CHECK($$ = ast_decl(ps->arena, D_MODEL, LOC(@1)));
        $$->value = $3;
      }
    }
  | error ';'       { $$ = NULL; }
  | error '}'       { $$ = NULL; }
  ;

/* params = param ("," param)* ","? */
params_opt
  : %empty              { memset(&$$, 0, sizeof $$); }
  | params
  | params ','
  ;

params
  : param               { memset(&$$, 0, sizeof $$); CHECK(ast_push_param(ps->arena, &$$, $1)); }
  | params ',' param    { $$ = $1; CHECK(ast_push_param(ps->arena, &$$, $3)); }
  ;

/* param = IDENT (":" type)? ("=" expr)? */
param
  : IDENT                   { $$ = (Param){$1, NULL, NULL, LOC(@1)}; }
  | IDENT ':' type          { $$ = (Param){$1, $3, NULL, LOC(@1)}; }
  | IDENT '=' expr          { $$ = (Param){$1, NULL, $3, LOC(@1)}; }
  | IDENT ':' type '=' expr { $$ = (Param){$1, $3, $5, LOC(@1)}; }
  ;

/* type = IDENT ("[" dim ("," dim)* "]")? */
type
  : IDENT                   { CHECK($$ = named_type(ps, $1, LOC(@1))); }
  | IDENT '[' ']' {
      CHECK($$ = ast_type(ps->arena, TY_TENSOR, LOC(@1)));
      $$->dtype = $1;
    }
  | IDENT '[' dimlist ']' {
      $$ = $3;
      $$->dtype = $1;
      $$->loc = LOC(@1);
    }
  ;

dimlist
  : dim {
      CHECK($$ = ast_type(ps->arena, TY_TENSOR, LOC(@1)));
      CHECK(ast_push_dim(ps->arena, $$, $1));
    }
  | dimlist ',' dim  { $$ = $1; CHECK(ast_push_dim(ps->arena, $$, $3)); }
  ;

dim
  : expr               { $$ = (DimExpr){$1, false}; }
  | ELLIPSIS           { $$ = (DimExpr){NULL, true}; }
  ;

/* rets = ("->" (type | "(" type ("," type)* ")"))? */
rets
  : %empty               { memset(&$$, 0, sizeof $$); }
  | ARROW type           { memset(&$$, 0, sizeof $$); CHECK(ast_push_type(ps->arena, &$$, $2)); }
  | ARROW '(' types ')'  { $$ = $3; }
  ;

types
  : type            { memset(&$$, 0, sizeof $$); CHECK(ast_push_type(ps->arena, &$$, $1)); }
  | types ',' type  { $$ = $1; CHECK(ast_push_type(ps->arena, &$$, $3)); }
  ;

block
  : '{' stmts '}'   { $$ = $2; }
  ;

stmts
  : %empty          { memset(&$$, 0, sizeof $$); }
  | stmts stmt      { $$ = $1; if ($2) CHECK(ast_push_stmt(ps->arena, &$$, $2)); }
  ;

/* stmt = targets "=" exprs ";" | expr ";" | "return" exprs? ";"
 *      | "for" IDENT "in" expr block | "if" expr block ("else" (block|if))?
 *      | "frozen"? "param" IDENT ":" type "=" expr ";" | method */
stmt
  : targets '=' exprs ';' {
      CHECK($$ = ast_stmt(ps->arena, S_ASSIGN, LOC(@1)));
      $$->targets = $1;
      if ($3.n == 1) {
        $$->value = $3.items[0];
      } else { /* a, b = x, y: the right side is a tuple */
        CHECK($$->value = ast_expr(ps->arena, E_TUPLE, $3.items[0]->loc));
        $$->value->items = $3;
        $$->value->depth = 1 + list_depth(&$3);
      }
    }
  | expr ';' {
      CHECK($$ = ast_stmt(ps->arena, S_EXPR, LOC(@1)));
      $$->value = $1;
    }
  | RETURN exprs_opt ';' {
      CHECK($$ = ast_stmt(ps->arena, S_RETURN, LOC(@1)));
      $$->values = $2;
    }
  | FOR IDENT IN expr block {
      CHECK($$ = ast_stmt(ps->arena, S_FOR, LOC(@1)));
      $$->name = $2;
      $$->value = $4;
      $$->body = $5;
    }
  | IF expr block else_opt {
      CHECK($$ = ast_stmt(ps->arena, S_IF, LOC(@1)));
      $$->value = $2;
      $$->body = $3;
      $$->orelse = $4;
    }
  | frozen_opt PARAM IDENT ':' type '=' expr ';' {
      CHECK($$ = ast_stmt(ps->arena, S_PARAM, @1.first_line ? LOC(@1) : LOC(@2)));
      $$->flag = $1;
      $$->name = $3;
      $$->type = $5;
      $$->value = $7;
    }
  | method
  | error ';'   { $$ = NULL; }
  ;

frozen_opt
  : %empty      { $$ = false; @$.first_line = 0; }
  | FROZEN      { $$ = true; }
  ;

else_opt
  : %empty              { memset(&$$, 0, sizeof $$); }
  | ELSE block          { $$ = $2; }
  | ELSE IF expr block else_opt {
      Stmt *s;
      CHECK(s = ast_stmt(ps->arena, S_IF, LOC(@2)));
      s->value = $3;
      s->body = $4;
      s->orelse = $5;
      memset(&$$, 0, sizeof $$);
      CHECK(ast_push_stmt(ps->arena, &$$, s));
    }
  ;

/* method = ("fn" | "entry") IDENT "(" params ")" rets block */
method
  : FN IDENT '(' params_opt ')' rets block {
      CHECK($$ = ast_stmt(ps->arena, S_METHOD, LOC(@1)));
      $$->name = $2;
      $$->params = $4;
      $$->rets = $6;
      $$->has_rets = $6.n > 0;
      $$->body = $7;
    }
  | ENTRY IDENT '(' params_opt ')' rets block {
      CHECK($$ = ast_stmt(ps->arena, S_METHOD, LOC(@1)));
      $$->flag = true;
      $$->name = $2;
      $$->params = $4;
      $$->rets = $6;
      $$->has_rets = $6.n > 0;
      $$->body = $7;
    }
  ;

/* targets = IDENT ("," IDENT)* */
targets
  : IDENT               { memset(&$$, 0, sizeof $$); CHECK(ast_push_name(ps->arena, &$$, $1, LOC(@1))); }
  | targets ',' IDENT   { $$ = $1; CHECK(ast_push_name(ps->arena, &$$, $3, LOC(@3))); }
  ;

exprs_opt
  : %empty      { memset(&$$, 0, sizeof $$); }
  | exprs
  ;

exprs
  : expr            { memset(&$$, 0, sizeof $$); CHECK(ast_push_expr(ps->arena, &$$, $1)); }
  | exprs ',' expr  { $$ = $1; CHECK(ast_push_expr(ps->arena, &$$, $3)); }
  ;

/* expr = expr "if" expr "else" expr | expr binop expr | unop expr | postfix */
expr
  : postfix
  | expr IF expr ELSE expr {
      CHECK($$ = ast_expr(ps->arena, E_COND, $1->loc));
      $$->a = $1; $$->b = $3; $$->c = $5;
      int d = max_depth($1, $3);
      $$->depth = 1 + (d > $5->depth ? d : $5->depth);
      if (too_deep(ps, $$)) YYABORT;
    }
  | expr OR expr       { CHECK($$ = op_expr(ps, E_BINARY, OPR_OR, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | expr AND expr      { CHECK($$ = op_expr(ps, E_BINARY, OPR_AND, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | NOT expr           { CHECK($$ = op_expr(ps, E_UNARY, OPR_NOT, $2, NULL, LOC(@1))); if (too_deep(ps, $$)) YYABORT; }
  | expr EQ expr       { CHECK($$ = op_expr(ps, E_BINARY, OPR_EQ, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | expr NE expr       { CHECK($$ = op_expr(ps, E_BINARY, OPR_NE, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | expr '<' expr      { CHECK($$ = op_expr(ps, E_BINARY, OPR_LT, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | expr LE expr       { CHECK($$ = op_expr(ps, E_BINARY, OPR_LE, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | expr '>' expr      { CHECK($$ = op_expr(ps, E_BINARY, OPR_GT, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | expr GE expr       { CHECK($$ = op_expr(ps, E_BINARY, OPR_GE, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | expr '+' expr      { CHECK($$ = op_expr(ps, E_BINARY, OPR_ADD, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | expr '-' expr      { CHECK($$ = op_expr(ps, E_BINARY, OPR_SUB, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | expr '*' expr      { CHECK($$ = op_expr(ps, E_BINARY, OPR_MUL, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | expr '/' expr      { CHECK($$ = op_expr(ps, E_BINARY, OPR_DIV, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | expr FLOORDIV expr { CHECK($$ = op_expr(ps, E_BINARY, OPR_FLOORDIV, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | expr '%' expr      { CHECK($$ = op_expr(ps, E_BINARY, OPR_MOD, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | expr '@' expr      { CHECK($$ = op_expr(ps, E_BINARY, OPR_MATMUL, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | expr POW expr      { CHECK($$ = op_expr(ps, E_BINARY, OPR_POW, $1, $3, LOC(@2))); if (too_deep(ps, $$)) YYABORT; }
  | '-' expr %prec UMINUS { CHECK($$ = op_expr(ps, E_UNARY, OPR_NEG, $2, NULL, LOC(@1))); if (too_deep(ps, $$)) YYABORT; }
  | '+' expr %prec UMINUS { CHECK($$ = op_expr(ps, E_UNARY, OPR_POS, $2, NULL, LOC(@1))); if (too_deep(ps, $$)) YYABORT; }
  ;

/* postfix = primary ("(" args ")" | "[" subs "]" | "." IDENT)* */
postfix
  : primary
  | postfix '(' args_opt ')' {
      /* Located at the callee, so errors in nested calls point at names. */
      CHECK($$ = ast_expr(ps->arena, E_CALL, $1->loc));
      $$->a = $1;
      $$->args = $3;
      int d = args_depth(&$3);
      $$->depth = 1 + (d > $1->depth ? d : $1->depth);
      if (too_deep(ps, $$)) YYABORT;
    }
  | postfix '[' subs ']' {
      CHECK($$ = ast_expr(ps->arena, E_INDEX, LOC(@2)));
      $$->a = $1;
      $$->items = $3;
      int d = list_depth(&$3);
      $$->depth = 1 + (d > $1->depth ? d : $1->depth);
      if (too_deep(ps, $$)) YYABORT;
    }
  | postfix '.' IDENT {
      CHECK($$ = ast_expr(ps->arena, E_ATTR, LOC(@3)));
      $$->a = $1;
      $$->str = $3;
      $$->depth = 1 + $1->depth;
      if (too_deep(ps, $$)) YYABORT;
    }
  ;

subs
  : sub             { memset(&$$, 0, sizeof $$); CHECK(ast_push_expr(ps->arena, &$$, $1)); }
  | subs ',' sub    { $$ = $1; CHECK(ast_push_expr(ps->arena, &$$, $3)); }
  ;

/* sub = expr | expr? ":" expr? (":" expr?)? */
sub
  : expr
  | expr_opt ':' expr_opt {
      CHECK($$ = ast_expr(ps->arena, E_SLICE, LOC(@2)));
      $$->a = $1; $$->b = $3;
      $$->depth = 1 + max_depth($1, $3);
    }
  | expr_opt ':' expr_opt ':' expr_opt {
      CHECK($$ = ast_expr(ps->arena, E_SLICE, LOC(@2)));
      $$->a = $1; $$->b = $3; $$->c = $5;
      int d = max_depth($1, $3);
      $$->depth = 1 + (d > max_depth($5, NULL) ? d : max_depth($5, NULL));
    }
  ;

expr_opt
  : %empty      { $$ = NULL; }
  | expr
  ;

args_opt
  : %empty      { memset(&$$, 0, sizeof $$); }
  | args
  | args ','
  ;

args
  : arg             { memset(&$$, 0, sizeof $$); CHECK(ast_push_arg(ps->arena, &$$, $1)); }
  | args ',' arg    { $$ = $1; CHECK(ast_push_arg(ps->arena, &$$, $3)); }
  ;

/* arg = (IDENT "=")? expr */
arg
  : expr            { $$ = (Arg){NULL, $1, $1->loc}; }
  | IDENT '=' expr  { $$ = (Arg){$1, $3, LOC(@1)}; }
  ;

/* primary = literal | IDENT | "(" expr ")" | "(" exprs "," ")" | list | listcomp */
primary
  : INT     { CHECK($$ = ast_expr(ps->arena, E_INT, LOC(@1))); $$->ival = $1; }
  | FLOAT   { CHECK($$ = ast_expr(ps->arena, E_FLOAT, LOC(@1))); $$->fval = $1; }
  | STRING  { CHECK($$ = ast_expr(ps->arena, E_STR, LOC(@1))); $$->str = $1; }
  | TRUE    { CHECK($$ = ast_expr(ps->arena, E_BOOL, LOC(@1))); $$->ival = 1; }
  | FALSE   { CHECK($$ = ast_expr(ps->arena, E_BOOL, LOC(@1))); $$->ival = 0; }
  | NONE    { CHECK($$ = ast_expr(ps->arena, E_NONE, LOC(@1))); }
  | IDENT   { CHECK($$ = ast_expr(ps->arena, E_NAME, LOC(@1))); $$->str = $1; }
  | '(' expr ')'    { $$ = $2; }
  | '(' ')'         { CHECK($$ = ast_expr(ps->arena, E_TUPLE, LOC(@1))); }
  | '(' expr ',' exprs_opt ')' {
      CHECK($$ = ast_expr(ps->arena, E_TUPLE, LOC(@1)));
      CHECK(ast_push_expr(ps->arena, &$$->items, $2));
      for (int i = 0; i < $4.n; i++) CHECK(ast_push_expr(ps->arena, &$$->items, $4.items[i]));
      $$->depth = 1 + list_depth(&$$->items);
    }
  | '[' exprs_opt ']' {
      CHECK($$ = ast_expr(ps->arena, E_LIST, LOC(@1)));
      $$->items = $2;
      $$->depth = 1 + list_depth(&$2);
    }
  | '[' exprs ',' ']' {
      CHECK($$ = ast_expr(ps->arena, E_LIST, LOC(@1)));
      $$->items = $2;
      $$->depth = 1 + list_depth(&$2);
    }
  | '[' expr FOR IDENT IN expr ']' {
      CHECK($$ = ast_expr(ps->arena, E_LISTCOMP, LOC(@1)));
      $$->a = $2;
      $$->str = $4;
      $$->b = $6;
      $$->depth = 1 + max_depth($2, $6);
    }
  ;

%%

/* A bare name: a compile-time type (bool is the scalar one), or a dtype
 * meaning a tensor of any shape. */
static TypeExpr *named_type(ParseState *ps, char *name, SrcLoc loc) {
  static const struct { const char *name; TypeKind kind; } scalars[] = {
      {"any", TY_ANY}, {"int", TY_INT}, {"float", TY_FLOAT},
      {"bool", TY_BOOL}, {"str", TY_STR}, {"list", TY_LIST},
  };
  for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
    if (!strcmp(name, scalars[i].name)) {
      return ast_type(ps->arena, scalars[i].kind, loc);
    }
  TypeExpr *t = ast_type(ps->arena, TY_TENSOR, loc);
  if (t) {
    t->dtype = name;
    t->any_rank = true;
  }
  return t;
}

static void irg_yyerror(IRG_YYLTYPE *loc, yyscan_t scanner, ParseState *ps,
                        const char *msg) {
  (void)scanner;
  if (ps->fatal) return;
  if (!strcmp(msg, "memory exhausted")) {
    diag_error(ps->diags, LOC(*loc), "program nested too deeply to parse");
    ps->fatal = true;
    return;
  }
  diag_error(ps->diags, LOC(*loc), "%s", msg);
}

/* Classes of tokens, to summarise a long list of expected tokens: those
 * that can start an expression, those that continue one, and both. */
enum { TOK_OTHER, TOK_START, TOK_CONTINUE, TOK_BOTH };

static int token_class(yysymbol_kind_t k) {
  static const char *const start[] = {"identifier", "string", "integer", "number",
                                      "'true'", "'false'", "'None'", "'not'"};
  static const char *const cont[] = {"'or'", "'and'", "'=='", "'!='", "'<='", "'>='",
                                     "'<'", "'>'", "'*'", "'/'", "'//'", "'%'",
                                     "'@'", "'**'", "'if'", "'.'"};
  static const char *const both[] = {"'('", "'['", "'-'", "'+'"};
  const char *name = yysymbol_name(k);
  for (size_t i = 0; i < sizeof start / sizeof *start; i++)
    if (!strcmp(name, start[i])) return TOK_START;
  for (size_t i = 0; i < sizeof cont / sizeof *cont; i++)
    if (!strcmp(name, cont[i])) return TOK_CONTINUE;
  for (size_t i = 0; i < sizeof both / sizeof *both; i++)
    if (!strcmp(name, both[i])) return TOK_BOTH;
  return TOK_OTHER;
}

/* Appends "A, B or C" for the n phrases of `items`. */
static void put_alternatives(StrBuf *sb, const char *const *items, int n) {
  for (int i = 0; i < n; i++) {
    if (i) sb_puts(sb, i == n - 1 ? " or " : ", ");
    sb_puts(sb, items[i]);
  }
}

/* ", expected ..." for the tokens the parser could have taken: all of them
 * when few; else the few others plus "an expression" / "an operator"
 * (after `x = 1` a ',' gets "expected ';' or an operator"); else nothing. */
static void put_expected(StrBuf *sb, const yypcontext_t *ctx) {
  enum { MAX_LISTED = 5, MAX_OTHERS = 3 };
  yysymbol_kind_t all[YYNTOKENS];
  int n = yypcontext_expected_tokens(ctx, all, YYNTOKENS);
  const char *items[MAX_LISTED + 2];
  int k = 0;
  if (n <= 0) return;
  if (n <= MAX_LISTED) {
    for (int i = 0; i < n; i++)
      items[k++] = all[i] == YYSYMBOL_YYEOF ? "end of file" : yysymbol_name(all[i]);
  } else {
    bool start = false, cont = false;
    for (int i = 0; i < n; i++) {
      int c = token_class(all[i]);
      start |= c == TOK_START;
      cont |= c == TOK_CONTINUE;
      if (c != TOK_OTHER) continue;
      if (k == MAX_OTHERS) return;
      items[k++] = all[i] == YYSYMBOL_YYEOF ? "end of file" : yysymbol_name(all[i]);
    }
    if (start) items[k++] = "an expression";
    if (cont) items[k++] = "an operator";
  }
  sb_puts(sb, ", expected ");
  put_alternatives(sb, items, k);
}

/* "unexpected X, expected A, B or C"; at the end of the file, a note on
 * the innermost bracket still open. */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner,
                                 ParseState *ps) {
  (void)scanner;
  if (ps->fatal) return 0;
  yysymbol_kind_t found = yypcontext_token(ctx);
  StrBuf sb;
  sb_init(&sb);
  if (found == YYSYMBOL_YYEOF) sb_puts(&sb, "unexpected end of file");
  else sb_printf(&sb, "unexpected %s", yysymbol_name(found));
  put_expected(&sb, ctx);
  const IRG_YYLTYPE *loc = yypcontext_location(ctx);
  diag_error(ps->diags, LOC(*loc), "%s", sb.data ? sb.data : "syntax error");
  sb_free(&sb);
  if (found == YYSYMBOL_YYEOF && ps->nesting > 0)
    diag_note(ps->diags, ps->open_at[ps->nesting - 1], "this '%c' is not closed",
              ps->open_ch[ps->nesting - 1]);
  return 0;
}
