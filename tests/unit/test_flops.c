/* test_flops.c: the FLOP count (compiler/flops.c) on a small graph counted
 * by hand, on the backward ops autodiff makes, and on SiT-B/2 and SiT-XL/2
 * against the multiply-adds the DiT paper reports (Peebles & Xie 2023,
 * Table 4: "Gflops" 23.01 and 118.64 per 256x256 image, i.e. 32x32x4
 * latents, forward; counted as multiply-adds, as fvcore counts them). */
#include "autodiff.h"
#include "flops.h"
#include "optim.h"
#include "unit.h"

#include <math.h>

static void assert_elab_ok(Ctx *c, const char *src) {
  bool ok = ctx_elab(c, src);
  if (!ok) fprintf(stderr, "%s", ctx_diag_text(c));
  assert_true(ok);
}

static Graph *entry(Ctx *c, const char *name) {
  for (int i = 0; i < c->ir.nentries; i++)
    if (!strcmp(c->ir.entries[i]->name, name)) return c->ir.entries[i];
  fail_msg("no entry %s", name);
  return NULL;
}

/* The FLOPs of g's nodes of one op. */
static FlopTerm op_total(Ctx *c, const Graph *g, OpKind op) {
  FlopCount n = {{0, 0}, {0, 0}};
  for (int i = 0; i < g->n; i++)
    if (g->nodes[i]->op == op) assert_true(flops_node(&c->diags, g->nodes[i], &n));
  return flops_total(&n);
}

static const char *tiny_src =
    "module Tiny() {\n"
    "  param w: f32[8, 16] = zeros();\n"
    "  param kernel: f32[5, 3, 3, 3] = zeros();\n"
    "  entry loss(x: f32[B, 4, 8], img: f32[B, 3, 6, 6], q: f32[B, 2, 5, 4], k: f32[B, 2, 9, 4],\n"
    "             v: f32[B, 2, 9, 6]) -> f32[] {\n"
    "    y = x @ w;\n"
    "    c = conv2d(img, kernel, padding = 1);\n"
    "    a = attention(q, k, v);\n"
    "    return sum(y * y) + sum(c) + sum(a);\n"
    "  }\n"
    "}\n"
    "model = Tiny();\n";

/* By hand, per sample: the matmul [4,8] @ [8,16] is 2*4*16*8 = 1024; the
 * conv's output [5,6,6] times C kh kw = 27 multiply-adds, 2*180*27 = 9720;
 * attention, 2 heads of 5 queries over 9 keys, 2*(2*5*9*4) + 2*(2*5*9*6)
 * = 1800. Pointwise: y*y 64, its sum 64, sum(c) 180, sum(a) 2*5*6 = 60;
 * the two scalar adds once per run. */
static void tiny_graph_by_hand(void **state) {
  Ctx *c = *state;
  assert_elab_ok(c, tiny_src);
  FlopCount n;
  assert_true(flops_count(&c->diags, entry(c, "loss"), &n));
  assert_int_equal(n.gemm.per_batch, 1024 + 9720 + 1800);
  assert_int_equal(n.gemm.fixed, 0);
  assert_int_equal(n.pointwise.per_batch, 64 + 64 + 180 + 60);
  assert_int_equal(n.pointwise.fixed, 2);
  FlopTerm t = flops_total(&n);
  assert_true(flops_at(t, 3) == 3.0 * (12544 + 368) + 2);
}

/* Each backward op counts as much as its forward GEMM: conv2d's input and
 * weight gradients one forward each, attention's three together twice the
 * forward, matmul's two gradients one forward each. */
static void backward_ops(void **state) {
  Ctx *c = *state;
  assert_elab_ok(c, tiny_src);
  Graph *g = entry(c, "loss");
  const char *wrt[] = {"x", "img", "q", "k", "v"};
  AdOptions opt = {0, wrt, 5};
  assert_true(ad_build_grad(&c->arena, &c->diags, g, &c->ir.params, &opt));
  assert_int_equal(op_total(c, g, OP_CONV2D_BWD_INPUT).per_batch, 9720);
  assert_int_equal(op_total(c, g, OP_CONV2D_BWD_WEIGHT).per_batch, 9720);
  assert_int_equal(op_total(c, g, OP_ATTENTION_BWD).per_batch, 2 * 1800);
  assert_int_equal(op_total(c, g, OP_MATMUL).per_batch, 3 * 1024);
}

/* K = B (a weight's gradient, summed over the batch) is linear in B. (B
 * squared cannot arise: the IR allows the batch in one axis of a shape.) */
static void batch_symbol(void **state) {
  Ctx *c = *state;
  assert_elab_ok(c,
                 "module M() {\n"
                 "  entry f(x: f32[B, 4]) -> f32[4, 4] { return permute(x, [1, 0]) @ x; }\n"
                 "}\n"
                 "model = M();\n");
  const Graph *g = entry(c, "f");
  FlopCount fc = {{0, 0}, {0, 0}};
  assert_int_equal(g->outputs[0]->op, OP_MATMUL);
  assert_true(flops_node(&c->diags, g->outputs[0], &fc));
  assert_int_equal(fc.gemm.per_batch, 2 * 16);
  assert_int_equal(fc.gemm.fixed, 0);
}

/* The forward's multiply-adds per image against the paper's figure, to
 * 0.2 % (irepa's SiT has the paper's DiT layers; the paper rounds, and
 * fvcore may count a few small ops differently). */
static void sit_against_paper(Ctx *c, const char *model, double paper_gmacs) {
  char src[256];
  snprintf(src, sizeof src, "import \"sit.irg\";\nmodel = SiT(model = \"%s\", input_size = 32, num_classes = 1000);\n",
           model);
  assert_elab_ok(c, src);
  FlopCount n;
  assert_true(flops_count(&c->diags, entry(c, "forward"), &n));
  double gmacs = (double)n.gemm.per_batch / 2e9;
  print_message("%s forward: %.4f GMAC per image (paper %.2f), %.4f GFLOP with pointwise ops\n", model, gmacs,
                paper_gmacs, (double)flops_total(&n).per_batch / 1e9);
  assert_true(fabs(gmacs / paper_gmacs - 1) < 0.002);
}

static void sit_b2_paper(void **state) { sit_against_paper(*state, "SiT-B/2", 23.01); }
static void sit_xl2_paper(void **state) { sit_against_paper(*state, "SiT-XL/2", 118.64); }

/* A training step of SiT-S/2 (no alignment): the GEMMs of forward and
 * backward are close to 3x the forward's (the input's gradient of the
 * patch embedding is not needed), and the optimiser adds a fixed part. */
static void train_step_about_three_forwards(void **state) {
  Ctx *c = *state;
  assert_elab_ok(c, "import \"sit.irg\";\nmodel = SiT(model = \"SiT-S/2\", input_size = 32, num_classes = 1000);\n");
  FlopCount fwd, step;
  assert_true(flops_count(&c->diags, entry(c, "train_loss"), &fwd));
  assert_true(optim_add_train_step(&c->arena, &c->diags, &c->ir, "train_loss"));
  assert_true(flops_count(&c->diags, entry(c, "train_step"), &step));
  double ratio = (double)step.gemm.per_batch / (double)fwd.gemm.per_batch;
  print_message("SiT-S/2 train step: %.4f x the forward's GEMM FLOPs; %lld fixed FLOPs\n", ratio,
                (long long)flops_total(&step).fixed);
  assert_true(ratio > 2.95 && ratio <= 3.0);
  assert_true(flops_total(&step).fixed > 0);
}

static void format_prefixes(void **state) {
  (void)state;
  char buf[32];
  assert_string_equal(flops_format(384, "FLOP", buf, sizeof buf), "384 FLOP");
  assert_string_equal(flops_format(46.154e9, "FLOP", buf, sizeof buf), "46.15 GFLOP");
  assert_string_equal(flops_format(23.0e9, "MAC", buf, sizeof buf), "23.00 GMAC");
  assert_string_equal(flops_format(1.5e15, "FLOP", buf, sizeof buf), "1.500 PFLOP");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(tiny_graph_by_hand, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(backward_ops, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(batch_symbol, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(sit_b2_paper, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(sit_xl2_paper, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(train_step_about_three_forwards, ctx_setup, ctx_teardown),
      cmocka_unit_test(format_prefixes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
