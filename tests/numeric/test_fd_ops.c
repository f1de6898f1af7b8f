/* test_fd_ops.c: every op's gradient (autodiff + interpreter, in double)
 * against central finite differences, with broadcasting edge cases: size-1
 * axes, scalars, a batch of 1. Each case is an .irg entry whose loss is
 * sum(op(...) * c) for a random cotangent c; the gradient is checked for the
 * inputs named in `wrt`. Relative error: max |analytic - fd| / max |fd|. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "numeric.h"

typedef struct {
  const char *name;
  const char *src;
  const char *wrt;
  double lo, hi;     /* input range (positive for log, sqrt, pow, ...) */
  int64_t int_max;   /* integer inputs in [0, int_max) */
  int64_t batch;
} Case;

#define TOL 1e-6
#define ENTRY(sig, body) "module M() { entry loss(" sig ") -> f64[] { " body " } }\nmodel = M();\n"
#define UNARY(fn) ENTRY("x: f64[2,3], c: f64[2,3]", "return sum(" fn "(x) * c);")
#define BINARY(op, sx, sy, so) \
  ENTRY("x: f64" sx ", y: f64" sy ", c: f64" so, "return sum((x " op " y) * c);")

static const Case cases[] = {
    {"neg", ENTRY("x: f64[2,3], c: f64[2,3]", "return sum(-x * c);"), "x", -1, 1, 0, 2},
    {"exp", UNARY("exp"), "x", -1, 1, 0, 2},
    {"log", UNARY("log"), "x", 0.5, 2, 0, 2},
    {"sin", UNARY("sin"), "x", -1, 1, 0, 2},
    {"cos", UNARY("cos"), "x", -1, 1, 0, 2},
    {"tanh", UNARY("tanh"), "x", -1, 1, 0, 2},
    {"sqrt", UNARY("sqrt"), "x", 0.5, 2, 0, 2},
    {"rsqrt", UNARY("rsqrt"), "x", 0.5, 2, 0, 2},
    {"abs", UNARY("abs"), "x", -1, 1, 0, 2},
    {"cast_f32", ENTRY("x: f64[2,3], c: f32[2,3]", "return sum(cast(cast(x, f32) * c, f64));"), "x", -1, 1, 0, 2},
    {"add_same", BINARY("+", "[2,3]", "[2,3]", "[2,3]"), "x,y", -1, 1, 0, 2},
    {"add_row", BINARY("+", "[2,3]", "[3]", "[2,3]"), "x,y", -1, 1, 0, 2},
    {"add_outer", BINARY("+", "[2,1]", "[1,3]", "[2,3]"), "x,y", -1, 1, 0, 2},
    {"add_scalar", BINARY("+", "[2,3]", "[]", "[2,3]"), "x,y", -1, 1, 0, 2},
    {"sub_bcast", BINARY("-", "[1,3]", "[4,1,3]", "[4,1,3]"), "x,y", -1, 1, 0, 2},
    {"mul_bcast", BINARY("*", "[2,1,3]", "[4,1]", "[2,4,3]"), "x,y", -1, 1, 0, 2},
    {"div_bcast", BINARY("/", "[2,3]", "[3]", "[2,3]"), "x,y", 0.5, 2, 0, 2},
    {"pow", BINARY("**", "[2,3]", "[3]", "[2,3]"), "x,y", 0.5, 2, 0, 2},
    {"pow_const", ENTRY("x: f64[2,3], c: f64[2,3]", "return sum(x ** 3.0 * c);"), "x", 0.5, 2, 0, 2},
    {"maximum", ENTRY("x: f64[2,3], y: f64[3], c: f64[2,3]", "return sum(maximum(x, y) * c);"), "x,y", -1, 1, 0, 2},
    {"minimum", ENTRY("x: f64[2,3], y: f64[2,1], c: f64[2,3]", "return sum(minimum(x, y) * c);"), "x,y", -1, 1, 0, 2},
    {"where", ENTRY("x: f64[2,3], y: f64[3], s: f64[2,3], c: f64[2,3]",
                    "return sum(where(s < 0.0, x, y) * c);"), "x,y", -1, 1, 0, 2},
    {"sum_axis", ENTRY("x: f64[2,3,4], c: f64[2,4]", "return sum(sum(x, axis=1) * c);"), "x", -1, 1, 0, 2},
    {"sum_keep", ENTRY("x: f64[2,3,4], c: f64[2,1,4]", "return sum(sum(x, axis=1, keepdims=true) * c);"), "x", -1, 1, 0, 2},
    {"sum_all", ENTRY("x: f64[2,3]", "return sum(x * x);"), "x", -1, 1, 0, 2},
    {"mean_axes", ENTRY("x: f64[2,3,4], c: f64[3]", "return sum(mean(x, axis=[0,2]) * c);"), "x", -1, 1, 0, 2},
    {"mean_batch", ENTRY("x: f64[B,3], c: f64[3]", "return sum(mean(x, axis=0) * c);"), "x", -1, 1, 0, 3},
    {"mean_batch1", ENTRY("x: f64[B,3], c: f64[3]", "return sum(mean(x, axis=0) * c);"), "x", -1, 1, 0, 1},
    {"amax", ENTRY("x: f64[2,5], c: f64[2]", "return sum(amax(x, axis=1) * c);"), "x", -1, 1, 0, 2},
    {"reshape", ENTRY("x: f64[2,6], c: f64[3,4]", "return sum(reshape(x, [3, -1]) * c);"), "x", -1, 1, 0, 2},
    {"permute", ENTRY("x: f64[2,3,4], c: f64[4,2,3]", "return sum(permute(x, [2,0,1]) * c);"), "x", -1, 1, 0, 2},
    {"slice", ENTRY("x: f64[4,5], c: f64[2,2]", "return sum(x[1:3, ::2][:, 1:] * c);"), "x", -1, 1, 0, 2},
    {"index_none", ENTRY("x: f64[4,5], c: f64[1,5]", "return sum(x[2][None] * c);"), "x", -1, 1, 0, 2},
    {"chunk", ENTRY("x: f64[2,6], c: f64[2,2]", "a, b, d = chunk(x, 3); return sum((a * b - d) * c);"), "x", -1, 1, 0, 2},
    {"concat", ENTRY("x: f64[2,3], y: f64[2,1], c: f64[2,4]", "return sum(concat([x, y], axis=1) * c);"), "x,y", -1, 1, 0, 2},
    {"expand", ENTRY("x: f64[3,1], c: f64[2,3,4]", "return sum(expand(x, [2,3,4]) * c);"), "x", -1, 1, 0, 2},
    {"matmul", ENTRY("x: f64[2,3], y: f64[3,4], c: f64[2,4]", "return sum((x @ y) * c);"), "x,y", -1, 1, 0, 2},
    {"matmul_batch", ENTRY("x: f64[2,2,3], y: f64[3,4], c: f64[2,2,4]", "return sum((x @ y) * c);"), "x,y", -1, 1, 0, 2},
    {"matmul_bcast", ENTRY("x: f64[3,2,3], y: f64[1,3,4], c: f64[3,2,4]", "return sum((x @ y) * c);"), "x,y", -1, 1, 0, 2},
    {"conv_k3_pad1", ENTRY("x: f64[2,3,5,5], w: f64[4,3,3,3], c: f64[2,4,5,5]",
                           "return sum(conv2d(x, w, padding=1) * c);"), "x,w", -1, 1, 0, 2},
    {"conv_patch", ENTRY("x: f64[2,3,4,4], w: f64[5,3,2,2], c: f64[2,5,2,2]",
                         "return sum(conv2d(x, w, stride=2) * c);"), "x,w", -1, 1, 0, 2},
    {"conv_stride_pad", ENTRY("x: f64[1,2,5,4], w: f64[3,2,3,2], c: f64[1,3,3,3]",
                              "return sum(conv2d(x, w, stride=2, padding=1) * c);"), "x,w", -1, 1, 0, 2},
    {"gather", ENTRY("t: f64[5,3], i: i64[2,4], c: f64[2,4,3]", "return sum(gather(t, i) * c);"), "t", -1, 1, 5, 2},
    {"attention", ENTRY("q: f64[2,3,4], k: f64[2,5,4], v: f64[2,5,2], c: f64[2,3,2]",
                        "return sum(attention(q, k, v, scale=0.7) * c);"), "q,k,v", -1, 1, 0, 2},
    {"attention_heads", ENTRY("q: f64[B,2,3,4], k: f64[B,2,3,4], v: f64[B,2,3,4], c: f64[B,2,3,4]",
                              "return sum(attention(q, k, v) * c);"), "q,k,v", -1, 1, 0, 1},
    {"random_no_grad", ENTRY("x: f64[2,3], c: f64[2,3]",
                             "u = cast(uniform([2,3]), f64); n = cast(normal([2,3]), f64);"
                             "return sum((x * u + n * x) * c);"), "x", -1, 1, 0, 2},
    {"bernoulli_mask", ENTRY("x: f64[2,3], c: f64[2,3]",
                             "return sum(where(bernoulli(0.5, [2,3]), x, 2.0 * x) * c);"), "x", -1, 1, 0, 2},
};

static void run_case(void **state) {
  const Case *k = *state;
  Compiled c;
  assert_true(nt_compile(&c, k->src, "loss", true, k->wrt));
  TensorList inputs = {0}, params = {0};
  assert_true(nt_make_inputs(&c, k->batch, k->lo, k->hi, k->int_max, 42, &inputs));
  char list[64], name[80];
  snprintf(list, sizeof list, "%s", k->wrt);
  for (char *w = strtok(list, ","); w; w = strtok(NULL, ",")) {
    snprintf(name, sizeof name, "grad.%s", w);
    double e = nt_fd_error(&c, &params, &inputs, tensorlist_find(&inputs, w), name, 0, 1e-6);
    printf("FD %-18s d/d%-2s max rel err %.3e\n", k->name, w, e);
    assert_true(e <= TOL);
  }
  tensorlist_free(&inputs);
  nt_free(&c);
}

/* stop_gradient: the analytic gradient is zero even though the value
 * depends on x (finite differences do not apply). */
static void stop_gradient_blocks(void **state) {
  (void)state;
  Compiled c;
  assert_true(nt_compile(&c, ENTRY("x: f64[2,3]", "return sum(stop_gradient(x) * x);"), "loss", true, "x"));
  TensorList inputs = {0}, params = {0}, out = {0};
  RtError err;
  InterpOptions opt = {INTERP_F64, 0};
  assert_true(nt_make_inputs(&c, 2, -1, 1, 0, 7, &inputs));
  assert_true(interp_run(c.g, &c.prog.params, &params, &inputs, &opt, &out, &err));
  Tensor *x = tensorlist_find(&inputs, "x"), *g = tensorlist_find(&out, "grad.x");
  for (int64_t i = 0; i < tensor_numel(x); i++) assert_true(fabs(tensor_get(g, i) - tensor_get(x, i)) < 1e-15);
  tensorlist_free(&out);
  tensorlist_free(&inputs);
  nt_free(&c);
}

int main(void) {
  enum { N = sizeof cases / sizeof cases[0] };
  struct CMUnitTest tests[N + 1];
  for (int i = 0; i < N; i++)
    tests[i] = (struct CMUnitTest){cases[i].name, run_case, NULL, NULL, (void *)&cases[i]};
  tests[N] = (struct CMUnitTest)cmocka_unit_test(stop_gradient_blocks);
  return _cmocka_run_group_tests("fd_ops", tests, N + 1, NULL, NULL);
}
