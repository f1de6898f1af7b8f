/* test_autocast.c: compiler/autocast.c. Each f32 matmul of the entry reads
 * bf16 casts of its operands and is cast back to f32; nothing else
 * changes (the other ops, inputs, outputs, random streams); the step built
 * with OptimOptions.autocast differentiates through the casts, so the
 * backward's matmuls are bf16 too, while the weights, the norm and AdamW
 * stay f32; a bad precision or entry is a diagnostic. */
#include "autocast.h"
#include "optim.h"
#include "unit.h"

static const char *src =
    "module Tiny() {\n"
    "  param w: f32[8, 16] = zeros();\n"
    "  param v: f32[16, 2] = zeros();\n"
    "  entry loss(x: f32[B, 4, 8]) -> f32[] {\n"
    "    h = x @ w;\n"
    "    y = (h * h) @ v;\n"
    "    return mean(y * y + normal([B, 4, 2]));\n"
    "  }\n"
    "}\n"
    "model = Tiny();\n";

static Graph *entry(Ctx *c, const char *name) {
  for (int i = 0; i < c->ir.nentries; i++)
    if (!strcmp(c->ir.entries[i]->name, name)) return c->ir.entries[i];
  fail_msg("no entry %s", name);
  return NULL;
}

static int count(const Graph *g, OpKind op, DType t) {
  int n = 0;
  for (int i = 0; i < g->n; i++) n += g->nodes[i]->op == op && g->nodes[i]->dtype == t;
  return n;
}

static void matmuls_read_bf16(void **state) {
  Ctx *c = *state;
  assert_true(ctx_elab(c, src));
  Graph *before = entry(c, "loss");
  int nodes = before->n, randoms = count(before, OP_NORMAL, DT_F32);
  assert_true(autocast_matmuls(&c->arena, &c->diags, &c->ir, "loss", DT_BF16));
  Graph *g = entry(c, "loss");
  assert_int_equal(count(g, OP_MATMUL, DT_F32), 0);
  assert_int_equal(count(g, OP_MATMUL, DT_BF16), 2);
  assert_int_equal(count(g, OP_CAST, DT_BF16), 4);
  assert_int_equal(count(g, OP_CAST, DT_F32), 2);
  assert_int_equal(g->n, nodes + 6);
  assert_int_equal(count(g, OP_NORMAL, DT_F32), randoms);
  for (int i = 0; i < g->n; i++)
    if (g->nodes[i]->op == OP_MATMUL)
      for (int k = 0; k < 2; k++) assert_int_equal(g->nodes[i]->src[k]->op, OP_CAST);
  assert_int_equal(g->ninputs, 1);
  assert_string_equal(g->inputs[0]->name, "x");
  assert_int_equal(g->outputs[0]->dtype, DT_F32);
}

static void step_keeps_master_weights_f32(void **state) {
  Ctx *c = *state;
  assert_true(ctx_elab(c, src));
  const OptimOptions o = {true, 1, false, DT_BF16, false};
  bool ok = optim_add_train_step_opt(&c->arena, &c->diags, &c->ir, "loss", &o);
  if (!ok) fprintf(stderr, "%s", ctx_diag_text(c));
  assert_true(ok);
  Graph *g = entry(c, "train_step");
  /* forward 2, backward: dh and dw of the first (dx is not needed), dh*h and dv of the second */
  assert_int_equal(count(g, OP_MATMUL, DT_F32), 0);
  assert_true(count(g, OP_MATMUL, DT_BF16) >= 5);
  for (int i = 0; i < g->noutputs; i++) assert_true(g->outputs[i]->dtype == DT_F32);
}

static void refuses_bad_requests(void **state) {
  Ctx *c = *state;
  assert_true(ctx_elab(c, src));
  assert_false(autocast_matmuls(&c->arena, &c->diags, &c->ir, "loss", DT_F64));
  assert_non_null(strstr(ctx_diag_text(c), "f64 is not a low precision"));
  assert_false(autocast_matmuls(&c->arena, &c->diags, &c->ir, "nope", DT_BF16));
  assert_non_null(strstr(ctx_diag_text(c), "no entry 'nope'"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(matmuls_read_bf16, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(step_keeps_master_weights_f32, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(refuses_bad_requests, ctx_setup, ctx_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
