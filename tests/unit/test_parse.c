/* test_parse.c: the parser (grammar/irg.y, grammar/irg.l) through
 * irg_load_program_text: declarations, operator precedence, postfix forms,
 * error locations and recovery, and the limits that keep hostile input
 * from crashing later passes. */
#include "unit.h"

static Decl *decl(Ctx *c, int i) {
  assert_true(c->prog.nfiles >= 1);
  assert_true(i < c->prog.files[0]->decls.n);
  return c->prog.files[0]->decls.items[i];
}

/* The expression of `fn f() { return <src>; }`. */
static Expr *parse_expr(Ctx *c, const char *src) {
  const char *text = arena_printf(&c->arena, "fn f() {\n  return %s;\n}\n", src);
  assert_true(ctx_parse(c, text));
  Decl *d = decl(c, 0);
  assert_int_equal(d->body.n, 1);
  Stmt *s = d->body.items[0];
  assert_int_equal(s->kind, S_RETURN);
  assert_int_equal(s->values.n, 1);
  return s->values.items[0];
}

static void assert_name(const Expr *e, const char *name) {
  assert_non_null(e);
  assert_int_equal(e->kind, E_NAME);
  assert_string_equal(e->str, name);
}

static void assert_op(const Expr *e, ExprKind kind, OprKind op) {
  assert_non_null(e);
  assert_int_equal(e->kind, kind);
  assert_int_equal(e->op, op);
}

static bool has_message(Ctx *c, const char *prefix, int line, int col) {
  for (int i = 0; i < c->diags.n; i++) {
    const Diag *d = &c->diags.items[i];
    if (d->kind == DIAG_ERROR && !strncmp(d->msg, prefix, strlen(prefix)) &&
        d->loc.line == line && d->loc.col == col)
      return true;
  }
  return false;
}

static void declarations(void **state) {
  Ctx *c = *state;
  assert_true(ctx_parse(c,
      "import \"nn.irg\";\n"
      "fn double(x: int = 2) -> int { return 2 * x; }\n"
      "module M(d: int, name: str = \"m\") {\n"
      "  frozen param pos: f32[1, d] = zeros();\n"
      "  param w: f32[d, d] = xavier_uniform();\n"
      "  entry forward(x: f32[B, ..., d]) -> (f32[B, d], f32[]) { return x, w; }\n"
      "  fn helper() { }\n"
      "}\n"
      "model = M(4);\n"));
  assert_int_equal(c->diags.nerrors, 0);
  assert_int_equal(c->prog.files[0]->decls.n, 4);
  assert_true(c->prog.nfiles >= 2); /* nn.irg came from models/ */
  assert_int_equal(decl(c, 0)->kind, D_IMPORT);
  assert_string_equal(decl(c, 0)->name, "nn.irg");
  assert_int_equal(decl(c, 0)->import_file, c->prog.files[1]->file);

  Decl *fn = decl(c, 1);
  assert_int_equal(fn->kind, D_FN);
  assert_string_equal(fn->name, "double");
  assert_int_equal(fn->params.n, 1);
  assert_int_equal(fn->params.items[0].type->kind, TY_INT);
  assert_int_equal(fn->params.items[0].deflt->ival, 2);
  assert_true(fn->has_rets);
  assert_int_equal(fn->loc.line, 2);
  assert_int_equal(fn->loc.col, 1);

  Decl *m = decl(c, 2);
  assert_int_equal(m->kind, D_MODULE);
  assert_string_equal(m->params.items[1].name, "name");
  assert_string_equal(m->params.items[1].deflt->str, "m");
  assert_int_equal(m->body.n, 4);
  Stmt *pos = m->body.items[0], *w = m->body.items[1];
  assert_int_equal(pos->kind, S_PARAM);
  assert_true(pos->flag);
  assert_int_equal(pos->loc.col, 3); /* at 'frozen' */
  assert_false(w->flag);
  assert_string_equal(w->type->dtype, "f32");
  assert_int_equal(w->type->ndims, 2);
  Stmt *fwd = m->body.items[2];
  assert_int_equal(fwd->kind, S_METHOD);
  assert_true(fwd->flag);
  assert_int_equal(fwd->rets.n, 2);
  assert_int_equal(fwd->rets.items[1]->ndims, 0);
  assert_false(fwd->rets.items[1]->any_rank);
  TypeExpr *xt = fwd->params.items[0].type;
  assert_int_equal(xt->ndims, 3);
  assert_true(xt->dims[1].ellipsis);
  assert_name(xt->dims[0].expr, "B");
  assert_false(m->body.items[3]->flag); /* fn, not entry */
  assert_false(m->body.items[3]->has_rets);

  Decl *model = decl(c, 3);
  assert_int_equal(model->kind, D_MODEL);
  assert_int_equal(model->value->kind, E_CALL);
  assert_name(model->value->a, "M");
}

static void arithmetic_precedence(void **state) {
  Ctx *c = *state;
  Expr *e = parse_expr(c, "a + b * c");
  assert_op(e, E_BINARY, OPR_ADD);
  assert_name(e->a, "a");
  assert_op(e->b, E_BINARY, OPR_MUL);
  assert_name(e->b->a, "b");
  assert_name(e->b->b, "c");
  assert_int_equal(e->loc.line, 2);
  assert_int_equal(e->loc.col, 12); /* binary operators sit at the operator */
}

static void left_assoc_minus(void **state) {
  Ctx *c = *state;
  Expr *e = parse_expr(c, "a - b - c");
  assert_op(e, E_BINARY, OPR_SUB);
  assert_op(e->a, E_BINARY, OPR_SUB);
  assert_name(e->b, "c");
}

static void unary_minus_binds_looser_than_pow(void **state) {
  Ctx *c = *state;
  Expr *e = parse_expr(c, "-x ** 2");
  assert_op(e, E_UNARY, OPR_NEG);
  assert_op(e->a, E_BINARY, OPR_POW);
  assert_name(e->a->a, "x");
  assert_int_equal(e->a->b->ival, 2);
}

static void pow_is_right_assoc(void **state) {
  Ctx *c = *state;
  Expr *e = parse_expr(c, "2 ** 3 ** 2");
  assert_op(e, E_BINARY, OPR_POW);
  assert_int_equal(e->a->kind, E_INT);
  assert_op(e->b, E_BINARY, OPR_POW);
}

static void conditional_is_right_assoc(void **state) {
  Ctx *c = *state;
  Expr *e = parse_expr(c, "a if c else b if d else e");
  assert_int_equal(e->kind, E_COND);
  assert_name(e->a, "a");
  assert_name(e->b, "c");
  assert_int_equal(e->c->kind, E_COND);
  assert_name(e->c->a, "b");
  assert_name(e->c->b, "d");
  assert_name(e->c->c, "e");
}

static void logic_and_comparison_levels(void **state) {
  Ctx *c = *state;
  Expr *e = parse_expr(c, "not a == b or c and d");
  assert_op(e, E_BINARY, OPR_OR);
  assert_op(e->a, E_UNARY, OPR_NOT);
  assert_op(e->a->a, E_BINARY, OPR_EQ);
  assert_op(e->b, E_BINARY, OPR_AND);
}

static void comparison_is_not_associative(void **state) {
  Ctx *c = *state;
  assert_false(ctx_parse(c, "fn f() { return a < b < c; }\n"));
  assert_int_equal(c->diags.nerrors, 1);
  assert_true(has_message(c, "unexpected '<'", 1, 23));
}

static void matmul_and_floordiv_share_the_product_level(void **state) {
  Ctx *c = *state;
  Expr *e = parse_expr(c, "x @ w // 2 % 3 + 1");
  assert_op(e, E_BINARY, OPR_ADD);
  assert_op(e->a, E_BINARY, OPR_MOD);
  assert_op(e->a->a, E_BINARY, OPR_FLOORDIV);
  assert_op(e->a->a->a, E_BINARY, OPR_MATMUL);
}

static void subscripts_and_slices(void **state) {
  Ctx *c = *state;
  Expr *e = parse_expr(c, "x[1:2, :, ::2, None, -1]");
  assert_int_equal(e->kind, E_INDEX);
  assert_name(e->a, "x");
  assert_int_equal(e->items.n, 5);
  Expr *s0 = e->items.items[0], *s1 = e->items.items[1], *s2 = e->items.items[2];
  assert_int_equal(s0->kind, E_SLICE);
  assert_int_equal(s0->a->ival, 1);
  assert_int_equal(s0->b->ival, 2);
  assert_null(s0->c);
  assert_int_equal(s1->kind, E_SLICE);
  assert_null(s1->a);
  assert_null(s1->b);
  assert_null(s1->c);
  assert_null(s2->a);
  assert_null(s2->b);
  assert_int_equal(s2->c->ival, 2);
  assert_int_equal(e->items.items[3]->kind, E_NONE);
  assert_op(e->items.items[4], E_UNARY, OPR_NEG);
}

static void calls_with_keyword_arguments(void **state) {
  Ctx *c = *state;
  Expr *e = parse_expr(c, "obj.f(1, y = 2,)(3)");
  assert_int_equal(e->kind, E_CALL);
  assert_int_equal(e->args.n, 1);
  Expr *inner = e->a;
  assert_int_equal(inner->kind, E_CALL);
  assert_int_equal(inner->args.n, 2);
  assert_null(inner->args.items[0].name);
  assert_string_equal(inner->args.items[1].name, "y");
  assert_int_equal(inner->args.items[1].value->ival, 2);
  assert_int_equal(inner->a->kind, E_ATTR);
  assert_string_equal(inner->a->str, "f");
  assert_name(inner->a->a, "obj");
}

static void list_comprehension(void **state) {
  Ctx *c = *state;
  Expr *e = parse_expr(c, "[i * 2 for i in range(3)]");
  assert_int_equal(e->kind, E_LISTCOMP);
  assert_string_equal(e->str, "i");
  assert_op(e->a, E_BINARY, OPR_MUL);
  assert_int_equal(e->b->kind, E_CALL);
}

static void tuples_lists_and_literals(void **state) {
  Ctx *c = *state;
  Expr *e = parse_expr(c, "[(a,), (), (a), [], [1, 2.5, \"s\\n\", true, None,]]");
  assert_int_equal(e->kind, E_LIST);
  assert_int_equal(e->items.n, 5);
  assert_int_equal(e->items.items[0]->kind, E_TUPLE);
  assert_int_equal(e->items.items[0]->items.n, 1);
  assert_int_equal(e->items.items[1]->kind, E_TUPLE);
  assert_int_equal(e->items.items[1]->items.n, 0);
  assert_name(e->items.items[2], "a");
  assert_int_equal(e->items.items[3]->items.n, 0);
  Expr *lits = e->items.items[4];
  assert_int_equal(lits->items.n, 5);
  assert_true(lits->items.items[1]->fval == 2.5);
  assert_string_equal(lits->items.items[2]->str, "s\n");
  assert_int_equal(lits->items.items[3]->kind, E_BOOL);
  assert_int_equal(lits->items.items[3]->ival, 1);
  assert_int_equal(lits->items.items[4]->kind, E_NONE);
}

static void statements(void **state) {
  Ctx *c = *state;
  assert_true(ctx_parse(c,
      "fn f(n) {\n"
      "  a, b = (1, 2);\n"
      "  for i in range(n) { a = a + i; }\n"
      "  if a > 1 { b = 0; } else if a < 0 { b = 1; } else { b = 2; }\n"
      "  g(a);\n"
      "  return;\n"
      "}\n"));
  StmtList *body = &decl(c, 0)->body;
  assert_int_equal(body->n, 5);
  assert_int_equal(body->items[0]->kind, S_ASSIGN);
  assert_int_equal(body->items[0]->targets.n, 2);
  assert_string_equal(body->items[0]->targets.items[1], "b");
  assert_int_equal(body->items[0]->targets.locs[1].col, 6);
  assert_int_equal(body->items[1]->kind, S_FOR);
  assert_string_equal(body->items[1]->name, "i");
  Stmt *s_if = body->items[2];
  assert_int_equal(s_if->kind, S_IF);
  assert_int_equal(s_if->orelse.n, 1);
  Stmt *elif = s_if->orelse.items[0];
  assert_int_equal(elif->kind, S_IF);
  assert_int_equal(elif->orelse.n, 1);
  assert_int_equal(body->items[3]->kind, S_EXPR);
  assert_int_equal(body->items[4]->kind, S_RETURN);
  assert_int_equal(body->items[4]->values.n, 0);
}

static void several_syntax_errors_are_reported(void **state) {
  Ctx *c = *state;
  assert_false(ctx_parse(c,
      "fn f() { x = ; }\n"
      "fn g() { y = 1 +; }\n"
      "module M() { z = (1; }\n"
      "x = 3;\n"
      "fn ok() { return 1; }\n"));
  assert_int_equal(c->diags.nerrors, 4);
  assert_true(has_message(c, "unexpected ';'", 1, 14));
  assert_true(has_message(c, "unexpected ';'", 2, 17));
  assert_true(has_message(c, "unexpected ';'", 3, 20));
  assert_true(has_message(c, "only 'model = ...;' may be assigned at file level, not 'x'", 4, 1));
  /* Recovery kept the declaration after the errors. */
  DeclList *ds = &c->prog.files[0]->decls;
  assert_string_equal(ds->items[ds->n - 1]->name, "ok");
}

static void lexical_errors(void **state) {
  Ctx *c = *state;
  assert_false(ctx_parse(c,
      "fn f() { return 99999999999999999999; }\n"
      "fn g() { return \"a\\q\"; }\n"
      "fn h() { return \"open; }\n"));
  assert_true(has_message(c, "integer literal '99999999999999999999' does not fit in 64 bits", 1, 17));
  assert_true(has_message(c, "unknown escape sequence '\\q' in string", 2, 17));
  assert_true(has_message(c, "unterminated string literal", 3, 17));
}

static void unexpected_end_of_file(void **state) {
  Ctx *c = *state;
  assert_false(ctx_parse(c, "fn f() {\n  return 1"));
  /* At end of input the location is still the last token's. */
  assert_true(has_message(c, "unexpected end of file", 2, 10));
}

static void invalid_source_bytes(void **state) {
  Ctx *c = *state;
  static const char text[] = "fn f() {}\n  \xff\n";
  Program *p = &c->prog;
  assert_false(irg_load_program_text(&c->arena, &c->diags, "t.irg", text,
                                     sizeof text - 1, NULL, p));
  assert_first_error(c, 2, 3, "invalid UTF-8 byte 0xFF (source files must be UTF-8)");
}

static void nul_byte(void **state) {
  Ctx *c = *state;
  static const char text[] = "fn f() {}\nab\0cd";
  assert_false(irg_load_program_text(&c->arena, &c->diags, "t.irg", text,
                                     sizeof text - 1, NULL, &c->prog));
  assert_first_error(c, 2, 3, "NUL byte in source file");
}

static void missing_import(void **state) {
  Ctx *c = *state;
  assert_false(ctx_parse(c, "\nimport \"no_such_file.irg\";\n"));
  assert_int_equal(c->diags.nerrors, 1);
  assert_int_equal(c->diags.items[0].loc.line, 2);
  assert_int_equal(c->diags.items[0].loc.col, 1);
  assert_non_null(strstr(c->diags.items[0].msg, "cannot import"));
}

/* The limits: each turns into one error, not a crash. */
static char *repeat(Ctx *c, const char *unit, int n) {
  size_t k = strlen(unit);
  char *s = arena_alloc(&c->arena, k * (size_t)n + 1);
  for (int i = 0; i < n; i++) memcpy(s + k * (size_t)i, unit, k);
  return s;
}

static void bracket_nesting_limit(void **state) {
  Ctx *c = *state;
  const char *src = arena_printf(&c->arena, "fn f() { return %s1%s; }\n",
                                 repeat(c, "(", PARSE_MAX_NESTING + 5),
                                 repeat(c, ")", PARSE_MAX_NESTING + 5));
  assert_false(ctx_parse(c, src));
  assert_int_equal(c->diags.nerrors, 1);
  /* '{' is level 1, so the 200th '(' is the 201st bracket, at column 216. */
  assert_first_error(c, 1, 16 + PARSE_MAX_NESTING,
                     "brackets nested deeper than 200 levels");
}

static void bracket_nesting_at_the_limit_is_fine(void **state) {
  Ctx *c = *state;
  int n = PARSE_MAX_NESTING - 1; /* plus the '{' of the function */
  const char *src = arena_printf(&c->arena, "fn f() { return %s1%s; }\n",
                                 repeat(c, "[", n), repeat(c, "]", n));
  assert_true(ctx_parse(c, src));
}

static void expression_depth_limit(void **state) {
  Ctx *c = *state;
  const char *src = arena_printf(&c->arena, "fn f() { return %sx; }\n",
                                 repeat(c, "-", PARSE_MAX_EXPR_DEPTH + 10));
  assert_false(ctx_parse(c, src));
  assert_int_equal(c->diags.nerrors, 1);
  assert_string_equal(c->diags.items[0].msg, "expression nested deeper than 500 levels");
}

static void expression_depth_at_the_limit_is_fine(void **state) {
  Ctx *c = *state;
  /* x is depth 1; each '-' adds one. */
  const char *src = arena_printf(&c->arena, "fn f() { return %sx; }\n",
                                 repeat(c, "-", PARSE_MAX_EXPR_DEPTH - 1));
  Expr *e = NULL;
  assert_true(ctx_parse(c, src));
  e = decl(c, 0)->body.items[0]->values.items[0];
  assert_int_equal(e->depth, PARSE_MAX_EXPR_DEPTH);
}

static void long_left_chain_hits_the_depth_limit(void **state) {
  Ctx *c = *state;
  const char *src = arena_printf(&c->arena, "fn f() { return 1%s; }\n",
                                 repeat(c, " + 1", PARSE_MAX_EXPR_DEPTH + 1));
  assert_false(ctx_parse(c, src));
  assert_int_equal(c->diags.nerrors, 1);
  assert_string_equal(c->diags.items[0].msg, "expression nested deeper than 500 levels");
}

static void identifier_length_limit(void **state) {
  Ctx *c = *state;
  const char *ok = arena_printf(&c->arena, "fn %s() {}\n", repeat(c, "a", PARSE_MAX_IDENT));
  assert_true(ctx_parse(c, ok));
  Ctx *d = calloc(1, sizeof *d);
  arena_init(&d->arena);
  diag_init(&d->diags, &d->arena, &d->sources);
  const char *bad = arena_printf(&c->arena, "fn f() {}\nfn %s() {}\n",
                                 repeat(c, "a", PARSE_MAX_IDENT + 1));
  assert_false(ctx_parse(d, bad));
  assert_int_equal(d->diags.nerrors, 1);
  assert_first_error(d, 2, 4, "identifier of 257 bytes is longer than the limit of 256");
  arena_free(&d->arena);
  free(d);
}

static void string_length_limit(void **state) {
  Ctx *c = *state;
  const char *src = arena_printf(&c->arena, "fn f() { return \"%s\"; }\n",
                                 repeat(c, "s", PARSE_MAX_STRING + 1));
  assert_false(ctx_parse(c, src));
  assert_int_equal(c->diags.nerrors, 1);
  assert_first_error(c, 1, 17, "string literal of 4097 bytes is longer than the limit of 4096");
}

#define T(name) cmocka_unit_test_setup_teardown(name, ctx_setup, ctx_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(declarations), T(arithmetic_precedence), T(left_assoc_minus),
      T(unary_minus_binds_looser_than_pow), T(pow_is_right_assoc),
      T(conditional_is_right_assoc), T(logic_and_comparison_levels),
      T(comparison_is_not_associative), T(matmul_and_floordiv_share_the_product_level),
      T(subscripts_and_slices), T(calls_with_keyword_arguments), T(list_comprehension),
      T(tuples_lists_and_literals), T(statements), T(several_syntax_errors_are_reported),
      T(lexical_errors), T(unexpected_end_of_file), T(invalid_source_bytes), T(nul_byte),
      T(missing_import), T(bracket_nesting_limit), T(bracket_nesting_at_the_limit_is_fine),
      T(expression_depth_limit), T(expression_depth_at_the_limit_is_fine),
      T(long_left_chain_hits_the_depth_limit), T(identifier_length_limit),
      T(string_length_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
