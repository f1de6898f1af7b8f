/* test_elab.c: elaboration of small programs given as text: the parameter
 * table (order, init rules, frozen flags), entries and the batch symbol,
 * shape variables, compile-time arithmetic, limits and error messages. */
#include "unit.h"

/* Elaborates `src`; on an unexpected error prints what was reported. */
static void assert_elab_ok(Ctx *c, const char *src) {
  bool ok = ctx_elab(c, src);
  if (!ok) fprintf(stderr, "%s", ctx_diag_text(c));
  assert_true(ok);
}

static void assert_elab_fails(Ctx *c, const char *src, int line, int col, const char *msg) {
  assert_false(ctx_elab(c, src));
  assert_first_error(c, line, col, msg);
}

static const ParamInfo *param(Ctx *c, int i, const char *name) {
  assert_true(i < c->ir.params.n);
  const ParamInfo *p = &c->ir.params.items[i];
  assert_string_equal(p->name, name);
  return p;
}

static const char *params_src =
    "import \"nn.irg\";\n"
    "module Block(d: int) {\n"
    "  norm = LayerNorm(d);\n"
    "  param scale: f32[d] = ones();\n"
    "  fc = Linear(d, 2 * d);\n"
    "}\n"
    "module Net(d: int = 4, depth: int = 2) {\n"
    "  param first: f32[1, 9, d] = sincos_2d();\n"
    "  blocks = [Block(d) for i in range(depth)];\n"
    "  head = Sequential(Linear(2 * d, d, init = \"torch_default\"), SiLU());\n"
    "  frozen param table: f32[5, d] = normal(std = 0.5);\n"
    "  param conv: f32[8, 3, 2, 2] = xavier_uniform();\n"
    "  param u: f32[2] = uniform(-1, high = 2);\n"
    "}\n"
    "model = Net();\n";

static void parameter_table_order(void **state) {
  Ctx *c = *state;
  assert_elab_ok(c, params_src);
  assert_string_equal(c->ir.root_module, "Net");
  static const char *const names[] = {
      "first", "table", "conv", "u",       /* own parameters first */
      "blocks.0.scale", "blocks.0.norm.weight", "blocks.0.norm.bias",
      "blocks.0.fc.weight", "blocks.0.fc.bias",
      "blocks.1.scale", "blocks.1.norm.weight", "blocks.1.norm.bias",
      "blocks.1.fc.weight", "blocks.1.fc.bias",
      "head.0.weight", "head.0.bias",      /* SiLU has none */
  };
  int n = (int)(sizeof names / sizeof names[0]);
  assert_int_equal(c->ir.params.n, n);
  for (int i = 0; i < n; i++) param(c, i, names[i]);
  const ParamInfo *w = param(c, 7, "blocks.0.fc.weight");
  assert_int_equal(w->shape.rank, 2);
  assert_int_equal(w->shape.d[0].n, 8);
  assert_int_equal(w->shape.d[1].n, 4);
  assert_int_equal(w->dtype, DT_F32);
  assert_non_null(strstr(src_path(&c->sources, w->loc.file), "models/nn.irg")); /* where declared */
  assert_int_equal(c->ir.nentries, 0);
}

static void init_rules(void **state) {
  Ctx *c = *state;
  assert_elab_ok(c, params_src);
  const InitRule *r = &param(c, 0, "first")->init;
  assert_int_equal(r->kind, INIT_SINCOS_2D);
  assert_int_equal(r->grid, 3);              /* 9 tokens: a 3x3 grid */
  r = &param(c, 1, "table")->init;
  assert_int_equal(r->kind, INIT_NORMAL);
  assert_true(r->a == 0.0 && r->b == 0.5);   /* mean, std */
  r = &param(c, 2, "conv")->init;
  assert_int_equal(r->kind, INIT_XAVIER_UNIFORM);
  assert_int_equal(r->fan_in, 3 * 2 * 2);    /* PyTorch fans: in * receptive field */
  assert_int_equal(r->fan_out, 8 * 2 * 2);
  r = &param(c, 3, "u")->init;
  assert_int_equal(r->kind, INIT_UNIFORM);
  assert_true(r->a == -1.0 && r->b == 2.0);
  r = &param(c, 7, "blocks.0.fc.weight")->init;
  assert_int_equal(r->kind, INIT_XAVIER_UNIFORM);
  assert_int_equal(r->fan_in, 4);
  assert_int_equal(r->fan_out, 8);
  assert_int_equal(param(c, 5, "blocks.0.norm.weight")->init.kind, INIT_ONES);
  assert_int_equal(param(c, 8, "blocks.0.fc.bias")->init.kind, INIT_ZEROS);
  r = &param(c, 14, "head.0.weight")->init;
  assert_int_equal(r->kind, INIT_TORCH_DEFAULT);
  assert_int_equal(r->fan_in, 8);            /* shape [4, 8]: fan_in = 8 */
  r = &param(c, 15, "head.0.bias")->init;
  assert_int_equal(r->kind, INIT_TORCH_DEFAULT);
  assert_int_equal(r->fan_in, 8);            /* given by Linear: in_features */
}

static void frozen_flags(void **state) {
  Ctx *c = *state;
  assert_elab_ok(c, params_src);
  for (int i = 0; i < c->ir.params.n; i++) {
    const ParamInfo *p = &c->ir.params.items[i];
    assert_int_equal(p->trainable, strcmp(p->name, "table") != 0);
  }
}

static void explicit_fans_and_grid(void **state) {
  Ctx *c = *state;
  assert_elab_ok(c,
      "module M() {\n"
      "  param a: f32[6, 2, 3, 3] = xavier_uniform(fan_in = 18, fan_out = 6);\n"
      "  param b: f32[1, 16, 8] = sincos_2d(grid = 4);\n"
      "  param k: f32[3] = constant(value = 0.25);\n"
      "  param t: f32[7] = torch_default();\n"
      "}\n"
      "model = M();\n");
  assert_int_equal(param(c, 0, "a")->init.fan_in, 18);
  assert_int_equal(param(c, 0, "a")->init.fan_out, 6);
  assert_int_equal(param(c, 1, "b")->init.grid, 4);
  assert_true(param(c, 2, "k")->init.a == 0.25);
  assert_int_equal(param(c, 3, "t")->init.fan_in, 7); /* rank 1: fan_in = shape[0] */
}

static void bad_init_arguments(void **state) {
  Ctx *c = *state;
  assert_elab_fails(c,
      "module M() {\n"
      "  param a: f32[4, 4] = xavier_uniform(fan_in = 1e300, fan_out = 3);\n"
      "}\n"
      "model = M();\n",
      2, 24, "xavier_uniform: fan_in and fan_out must be positive whole numbers");
}

static const char *entry_src =
    "fn flat(x: f32[N, T, D]) -> f32[N, T * D] {\n"
    "  return reshape(x, [N, T * D]);\n"
    "}\n"
    "module M(c: int = 3) {\n"
    "  param w: f32[c] = zeros();\n"
    "  entry forward(x: f32[B, 2, c]) {\n"
    "    n = x.shape[0];\n"
    "    assert(n == x.shape[0] and x.ndim == 3, \"shape\");\n"
    "    return flat(x * w), w;\n"
    "  }\n"
    "  entry other(y: f32[K, 5]) { return y; }\n"
    "}\n"
    "model = M();\n";

static void entries_with_symbolic_batch(void **state) {
  Ctx *c = *state;
  assert_elab_ok(c, entry_src);
  assert_int_equal(c->ir.nentries, 2);
  Graph *g = c->ir.entries[0];
  assert_string_equal(g->name, "forward");
  assert_string_equal(g->sym_name, "B");
  assert_int_equal(g->ninputs, 1);
  assert_string_equal(ir_type_str(&c->arena, g->inputs[0]->dtype, &g->inputs[0]->shape, g->sym_name),
                      "f32[B,2,3]");
  assert_int_equal(g->noutputs, 2);
  const Node *out = g->outputs[0];
  assert_string_equal(ir_type_str(&c->arena, out->dtype, &out->shape, g->sym_name), "f32[B,6]");
  assert_int_equal(g->outputs[1]->op, OP_PARAM);
  assert_string_equal(g->outputs[1]->name, "w");
  assert_true(ir_verify(&c->diags, g));
  /* Each entry has its own symbol. */
  assert_string_equal(c->ir.entries[1]->sym_name, "K");
}

static void one_entry_or_params_only(void **state) {
  Ctx *c = *state;
  assert_true(ctx_parse(c, entry_src));
  ElabOptions only = {"other", false};
  assert_true(elab_program(&c->arena, &c->diags, &c->prog, &only, &c->ir));
  assert_int_equal(c->ir.nentries, 1);
  assert_string_equal(c->ir.entries[0]->name, "other");
  ElabOptions params = {NULL, true};
  assert_true(elab_program(&c->arena, &c->diags, &c->prog, &params, &c->ir));
  assert_int_equal(c->ir.nentries, 0);
  assert_int_equal(c->ir.params.n, 1);
  ElabOptions missing = {"nope", false};
  assert_false(elab_program(&c->arena, &c->diags, &c->prog, &missing, &c->ir));
  assert_string_equal(c->diags.items[0].msg, "model M has no entry named 'nope' (entries: forward, other)");
}

static void shape_variable_mismatch(void **state) {
  Ctx *c = *state;
  assert_elab_fails(c,
      "fn g(x: f32[N, 3]) { return x; }\n"
      "module M() {\n"
      "  entry forward(x: f32[B, 4]) { return g(x); }\n"
      "}\n"
      "model = M();\n",
      3, 42, "argument 'x' of g: expected f32[B,3], found f32[B,4]");
  assert_int_equal(c->diags.items[1].kind, DIAG_NOTE);
  assert_int_equal(c->diags.items[1].loc.line, 1);
}

static void library_without_model(void **state) {
  Ctx *c = *state;
  assert_elab_ok(c, "import \"nn.irg\";\nfn f(x) { return x; }\n");
  assert_false(elab_has_model(&c->prog));
  assert_null(c->ir.root_module);
  assert_int_equal(c->ir.params.n, 0);
}

static void compile_time_arithmetic(void **state) {
  Ctx *c = *state;
  /* Python's semantics; each failing check names itself. */
  assert_elab_ok(c,
      "module M() {\n"
      "  assert(7 // 2 == 3, \"floordiv\");\n"
      "  assert(-7 // 2 == -4, \"floordiv rounds down\");\n"
      "  assert(7 // -2 == -4, \"floordiv negative divisor\");\n"
      "  assert(-8 // 2 == -4, \"exact floordiv\");\n"
      "  assert(-7 % 3 == 2, \"mod has the divisor's sign\");\n"
      "  assert(7 % -3 == -2, \"mod negative divisor\");\n"
      "  assert(-7 % -3 == -1, \"mod both negative\");\n"
      "  assert(-9223372036854775807 - 1 == -9223372036854775807 - 1, \"int64 min\");\n"
      "  assert(7 / 2 == 3.5, \"true division\");\n"
      "  assert(-7.5 // 2 == -4.0, \"float floordiv\");\n"
      "  assert(2 ** 3 ** 2 == 512, \"pow right assoc\");\n"
      "  assert(-2 ** 2 == -4, \"unary minus below pow\");\n"
      "  assert(2 ** -1 == 0.5, \"negative exponent\");\n"
      "  assert(3 ** 39 == 4052555153018976267, \"pow near the limit\");\n"
      "  assert(1 ** 1000000000000000 == 1, \"huge exponent\");\n"
      "  assert((-1) ** 1000000000000001 == -1, \"odd huge exponent\");\n"
      "  assert(1 == 1.0 and 1 != 2, \"mixed compare\");\n"
      "  assert(int(-2.7) == -2 and int(2.7) == 2, \"int truncates\");\n"
      "  assert(isqrt(9223372036854775807) == 3037000499, \"isqrt of int64 max\");\n"
      "  assert(isqrt(15) == 3 and isqrt(16) == 4, \"isqrt\");\n"
      "  assert(min(3, 2.5) == 2.5 and max(3, 2) == 3, \"min max\");\n"
      "  assert(\"a\" + \"b\" == \"ab\" and len(\"abc\") == 3, \"strings\");\n"
      "  assert(len([1, 2] + [3]) == 3 and [10, 20, 30][-1] == 30, \"lists\");\n"
      "  assert([1, 2, 3, 4, 5][1::2][1] == 4, \"slice step\");\n"
      "  assert(len([1, 2, 3][5:]) == 0 and len([1, 2, 3][-2:]) == 2, \"slice clamp\");\n"
      "  assert(len([1, 2, 3][1::9223372036854775807]) == 1, \"huge slice step\");\n"
      "  assert(len(range(10, 0, -3)) == 4 and range(10, 0, -3)[3] == 1, \"range\");\n"
      "  assert((true if 1 > 0 else false) and not (1 == 2), \"conditional\");\n"
      "  assert(false or true, \"or\");\n"
      "  assert(len([i * i for i in range(4)]) == 4, \"comprehension\");\n"
      "}\n"
      "model = M();\n");
}

static void arithmetic_errors(void **state) {
  (void)state;
  static const struct {
    const char *stmt;
    int col;
    const char *msg;
  } cases[] = {
      {"x = 9223372036854775807 + 1;", 27, "integer overflow in '+'"},
      {"x = 1 // 0;", 9, "integer division by zero"},
      {"x = 5 % 0;", 9, "integer division by zero"},
      {"x = 2 ** 64;", 9, "integer overflow in '**'"},
      {"x = 1.0 / 0;", 11, "division by zero"},
      {"x = 7.5 % 2;", 11, "operator '%' is not defined on floats"},
      {"x = [1] + (1,);", 11, "operator '+' is not defined for list and tuple"},
      {"x = y;", 7, "unknown name 'y'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    void *fresh = NULL;
    assert_int_equal(ctx_setup(&fresh), 0);
    Ctx *c = fresh;
    const char *src = arena_printf(&c->arena, "module M() {\n  %s\n}\nmodel = M();\n", cases[i].stmt);
    assert_elab_fails(c, src, 2, cases[i].col, cases[i].msg);
    ctx_teardown(&fresh);
  }
}

static void recursion_is_bounded(void **state) {
  Ctx *c = *state;
  assert_elab_fails(c,
      "module Q() { x = Q(); }\n"
      "model = Q();\n",
      1, 18, "calls nested more than 64 deep at Q (recursive module or function?)");
}

static void runaway_work_is_bounded(void **state) {
  Ctx *c = *state;
  /* 2^60 calls, each shallow: the step budget stops it, somewhere in f. */
  assert_false(ctx_elab(c,
      "fn f(n: int) { if n == 0 { return 0; } return f(n - 1) + f(n - 1); }\n"
      "module M() { x = f(60); }\n"
      "model = M();\n"));
  assert_int_equal(c->diags.nerrors, 1);
  assert_int_equal(c->diags.items[0].loc.line, 1);
  assert_string_equal(c->diags.items[0].msg,
                      "elaboration takes more than 2000000 steps (runaway recursion or loops?)");
}

static void deep_recursion_is_bounded(void **state) {
  Ctx *c = *state;
  /* Each call nests 400 operators: 64 calls would overflow the C stack. */
  StrBuf sb;
  sb_init(&sb);
  sb_puts(&sb, "fn f(k: int) { if k == 0 { return 0; } return ");
  for (int i = 0; i < 400; i++) sb_puts(&sb, "- ");
  sb_puts(&sb, "f(k - 1); }\nmodule M() { x = f(60); }\nmodel = M();\n");
  assert_false(ctx_elab(c, sb.data));
  sb_free(&sb);
  assert_string_equal(c->diags.items[0].msg,
                      "expressions, blocks and calls nested more than 2000 deep (runaway recursion?)");
}

static void deep_blocks_are_bounded(void **state) {
  Ctx *c = *state;
  /* 150 nested ifs per call, 20 calls deep. */
  StrBuf sb;
  sb_init(&sb);
  sb_puts(&sb, "fn f(k: int) { if k == 0 { return 0; }\n");
  for (int i = 0; i < 150; i++) sb_puts(&sb, "if true {");
  sb_puts(&sb, "return f(k - 1);");
  for (int i = 0; i < 150; i++) sb_puts(&sb, "}");
  sb_puts(&sb, "}\nmodule M() { x = f(20); }\nmodel = M();\n");
  assert_false(ctx_elab(c, sb.data));
  sb_free(&sb);
  assert_int_equal(c->diags.nerrors, 1);
  assert_int_equal(c->diags.items[0].loc.line, 2);
  assert_string_equal(c->diags.items[0].msg,
                      "expressions, blocks and calls nested more than 2000 deep (runaway recursion?)");
}

static void growth_is_bounded(void **state) {
  Ctx *c = *state;
  assert_elab_fails(c,
      "module M() { x = range(100000); for i in range(4) { x = x + x; } }\n"
      "model = M();\n",
      1, 59, "list of 1600000 elements is longer than the limit of 1048576");
  void *fresh = NULL;
  assert_int_equal(ctx_setup(&fresh), 0);
  Ctx *d = fresh;
  assert_elab_fails(d,
      "module M() { s = \"ab\"; for i in range(40) { s = s + s; } }\n"
      "model = M();\n",
      1, 51, "string of 131072 bytes is longer than the limit of 65536");
  ctx_teardown(&fresh);
}

static void module_errors(void **state) {
  Ctx *c = *state;
  assert_elab_fails(c,
      "module M() {\n"
      "  param w: f32[2] = zeros();\n"
      "  param w: f32[3] = ones();\n"
      "}\n"
      "model = M();\n",
      3, 3, "'w' is already defined in this module");
}

/* Running out of arena anywhere in loading or elaboration is an error with
 * a message, never a crash or a silent failure. */
static void out_of_memory_is_reported(void **state) {
  (void)state;
  static const char *dirs[] = {IREPA_MODELS_DIR};
  ParseOptions opt = {dirs, 1};
  bool ok = false;
  int runs = 0;
  for (size_t limit = 2048; !ok; limit += limit / 64, runs++) {
    assert_true(limit < ((size_t)64 << 20));
    void *fresh = NULL;
    assert_int_equal(ctx_setup(&fresh), 0);
    Ctx *c = fresh;
    c->arena.limit_bytes = limit;
    ok = irg_load_program(&c->arena, &c->diags, IREPA_MODELS_DIR "/sit_b2_irepa.irg", &opt, &c->prog) &&
         elab_program(&c->arena, &c->diags, &c->prog, NULL, &c->ir);
    if (!ok) assert_true(c->diags.nerrors > 0);
    else assert_int_equal(c->ir.nentries, 9); /* forward, loss, train_loss and six sampler steps */
    ctx_teardown(&fresh);
  }
  assert_true(runs > 200); /* it took many limits to get through */
}

#define T(name) cmocka_unit_test_setup_teardown(name, ctx_setup, ctx_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(parameter_table_order), T(init_rules), T(frozen_flags), T(explicit_fans_and_grid),
      T(bad_init_arguments), T(entries_with_symbolic_batch), T(one_entry_or_params_only),
      T(shape_variable_mismatch), T(library_without_model), T(compile_time_arithmetic),
      T(arithmetic_errors), T(recursion_is_bounded), T(runaway_work_is_bounded),
      T(deep_recursion_is_bounded), T(deep_blocks_are_bounded), T(growth_is_bounded), T(module_errors),
      cmocka_unit_test(out_of_memory_is_reported),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
