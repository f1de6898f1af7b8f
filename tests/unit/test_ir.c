/* test_ir.c: the shape and dtype rule of every builder in ir.c, driven
 * directly with an IrBuilder on a fresh Graph, plus ir_prune/ir_verify.
 * In shapes written with S(...), a negative number -k means k*B. */
#include "unit.h"

static Shape S(int rank, ...) {
  Shape s = {0};
  s.rank = rank;
  va_list ap;
  va_start(ap, rank);
  for (int i = 0; i < rank; i++) {
    int64_t n = va_arg(ap, int64_t);
    s.d[i] = n < 0 ? (Dim){-n, true} : (Dim){n, false};
  }
  va_end(ap);
  return s;
}
#define SH(...) S(__VA_ARGS__)
#define D(x) ((int64_t)(x))

typedef struct {
  Ctx c;
  IrBuilder b;
} T;

static int setup(void **state) {
  T *t = calloc(1, sizeof *t);
  if (!t) return -1;
  arena_init(&t->c.arena);
  diag_init(&t->c.diags, &t->c.arena, &t->c.sources);
  t->b.arena = &t->c.arena;
  t->b.diags = &t->c.diags;
  t->b.g = ir_new_graph(&t->c.arena, "g", NO_LOC);
  t->b.g->sym_name = "B";
  *state = t;
  return 0;
}

static int teardown(void **state) {
  T *t = *state;
  arena_free(&t->c.arena);
  free(t);
  return 0;
}

static Node *in(T *t, DType dt, Shape s) {
  Node *n = ir_input(&t->b, "x", dt, s, NO_LOC);
  assert_non_null(n);
  return n;
}

static const char *type_of(T *t, const Node *n) {
  assert_non_null(n);
  return ir_type_str(&t->c.arena, n->dtype, &n->shape, "B");
}

/* The builder returned NULL and reported exactly `msg`. */
static void assert_fails(T *t, const Node *n, const char *msg) {
  assert_null(n);
  assert_int_equal(t->c.diags.nerrors, 1);
  assert_string_equal(t->c.diags.items[0].msg, msg);
}

static void shapes_and_names(void **state) {
  T *t = *state;
  Shape s = SH(3, D(-1), D(-2), D(3));
  assert_string_equal(ir_type_str(&t->c.arena, DT_BF16, &s, "N"), "bf16[N,N*2,3]");
  Dim n;
  Shape one_sym = SH(2, D(-2), D(5));
  assert_true(shape_numel(&one_sym, &n));
  assert_true(n.n == 10 && n.sym);
  assert_false(shape_numel(&s, &n)); /* B squared is not a dimension */
  Shape huge = SH(2, D(INT64_MAX / 2), D(3));
  assert_false(shape_numel(&huge, &n));
  DType dt;
  assert_true(dtype_from_name("i64", &dt));
  assert_int_equal(dt, DT_I64);
  assert_false(dtype_from_name("f8", &dt));
  assert_int_equal(dtype_size(DT_BF16), 2);
  assert_string_equal(op_name(OP_STOP_GRAD), "stop_grad");
  assert_string_equal(op_name(OP_RMAX), "rmax");
}

static void broadcasting(void **state) {
  T *t = *state;
  Node *x = in(t, DT_F32, SH(3, D(-1), D(1), D(4)));
  Node *y = in(t, DT_F32, SH(2, D(3), D(1)));
  assert_string_equal(type_of(t, ir_binary(&t->b, OP_ADD, x, y, NO_LOC)), "f32[B,3,4]");
  Node *c = ir_const(&t->b, 2.0, DT_F32, NO_LOC);
  assert_int_equal(c->shape.rank, 0);
  assert_string_equal(type_of(t, ir_binary(&t->b, OP_MUL, c, y, NO_LOC)), "f32[3,1]");
  Node *ones = in(t, DT_F32, SH(2, D(1), D(4)));
  Node *bx = in(t, DT_F32, SH(2, D(-1), D(4)));
  assert_string_equal(type_of(t, ir_binary(&t->b, OP_SUB, ones, bx, NO_LOC)), "f32[B,4]");
  assert_int_equal(t->c.diags.nerrors, 0);
}

static void broadcast_mismatch(void **state) {
  T *t = *state;
  Node *x = in(t, DT_F32, SH(2, D(-1), D(4)));
  Node *y = in(t, DT_F32, SH(2, D(2), D(4)));
  assert_fails(t, ir_binary(&t->b, OP_ADD, x, y, NO_LOC),
               "add: shapes f32[B,4] and f32[2,4] do not broadcast (axis -2 from the right)");
}

static void batch_multiples_do_not_broadcast(void **state) {
  T *t = *state;
  Node *x = in(t, DT_F32, SH(2, D(-2), D(4)));
  Node *y = in(t, DT_F32, SH(2, D(-1), D(4)));
  assert_fails(t, ir_binary(&t->b, OP_MUL, x, y, NO_LOC),
               "mul: shapes f32[B*2,4] and f32[B,4] do not broadcast (axis -2 from the right)");
}

static void dtype_rules(void **state) {
  T *t = *state;
  Node *f = in(t, DT_F32, SH(1, D(2)));
  Node *i = in(t, DT_I64, SH(1, D(2)));
  Node *lt = ir_binary(&t->b, OP_LT, f, f, NO_LOC);
  assert_string_equal(type_of(t, lt), "bool[2]");
  assert_int_equal(ir_binary(&t->b, OP_EQ, lt, lt, NO_LOC)->dtype, DT_BOOL);
  assert_int_equal(ir_binary(&t->b, OP_ADD, i, i, NO_LOC)->dtype, DT_I64);
  assert_int_equal(ir_unary(&t->b, OP_NEG, i, NO_LOC)->dtype, DT_I64);
  assert_ptr_equal(ir_cast(&t->b, f, DT_F32, NO_LOC), f);
  Node *c = ir_cast(&t->b, i, DT_F16, NO_LOC);
  assert_int_equal(c->op, OP_CAST);
  assert_string_equal(type_of(t, c), "f16[2]");
  assert_int_equal(t->c.diags.nerrors, 0);

  assert_null(ir_binary(&t->b, OP_ADD, f, i, NO_LOC));
  assert_string_equal(t->c.diags.items[0].msg, "add: dtypes differ: f32[2] and i64[2]");
  assert_null(ir_binary(&t->b, OP_ADD, lt, lt, NO_LOC));
  assert_string_equal(t->c.diags.items[1].msg, "add: not defined on bool tensors (use where)");
  assert_null(ir_binary(&t->b, OP_POW, i, i, NO_LOC));
  assert_string_equal(t->c.diags.items[2].msg, "pow: needs floating-point tensors, found i64[2]");
  assert_null(ir_unary(&t->b, OP_EXP, i, NO_LOC));
  assert_string_equal(t->c.diags.items[3].msg, "exp: needs a floating-point tensor, found i64[2]");
  assert_null(ir_unary(&t->b, OP_ABS, lt, NO_LOC));
  assert_string_equal(t->c.diags.items[4].msg, "abs: not defined on bool tensors");
  assert_null(ir_unary(&t->b, OP_RSQRT, lt, NO_LOC));
  assert_int_equal(t->c.diags.nerrors, 6);
}

static void matmul(void **state) {
  T *t = *state;
  Node *x = in(t, DT_F32, SH(4, D(-1), D(2), D(3), D(4)));
  Node *w = in(t, DT_F32, SH(2, D(4), D(5)));
  assert_string_equal(type_of(t, ir_matmul(&t->b, x, w, NO_LOC)), "f32[B,2,3,5]");
  Node *a = in(t, DT_F32, SH(4, D(2), D(1), D(3), D(4)));
  Node *b = in(t, DT_F32, SH(3, D(5), D(4), D(6)));
  assert_string_equal(type_of(t, ir_matmul(&t->b, a, b, NO_LOC)), "f32[2,5,3,6]");
  /* A batch-sized inner dimension matches itself. */
  Node *k = in(t, DT_F32, SH(2, D(7), D(-1)));
  Node *m = in(t, DT_F32, SH(2, D(-1), D(2)));
  assert_string_equal(type_of(t, ir_matmul(&t->b, k, m, NO_LOC)), "f32[7,2]");
  assert_int_equal(t->c.diags.nerrors, 0);
}

static void matmul_inner_mismatch(void **state) {
  T *t = *state;
  Node *x = in(t, DT_F32, SH(3, D(-1), D(3), D(4)));
  Node *w = in(t, DT_F32, SH(2, D(5), D(6)));
  assert_fails(t, ir_matmul(&t->b, x, w, NO_LOC),
               "matmul: f32[B,3,4] @ f32[5,6]: inner dimensions 4 and 5 differ");
}

static void matmul_other_errors(void **state) {
  T *t = *state;
  Node *v = in(t, DT_F32, SH(1, D(4)));
  Node *m = in(t, DT_F32, SH(2, D(4), D(4)));
  Node *i = in(t, DT_I32, SH(2, D(4), D(4)));
  Node *b2 = in(t, DT_F32, SH(3, D(2), D(4), D(4)));
  Node *b3 = in(t, DT_F32, SH(3, D(3), D(4), D(4)));
  assert_null(ir_matmul(&t->b, v, m, NO_LOC));
  assert_null(ir_matmul(&t->b, i, i, NO_LOC));
  assert_null(ir_matmul(&t->b, b2, b3, NO_LOC));
  assert_int_equal(t->c.diags.nerrors, 3);
  assert_string_equal(t->c.diags.items[0].msg,
                      "matmul: f32[4] @ f32[4,4]: operands need at least two axes");
  assert_string_equal(t->c.diags.items[1].msg,
                      "matmul: i32[4,4] @ i32[4,4]: needs two floating-point tensors of one dtype");
  assert_string_equal(t->c.diags.items[2].msg,
                      "matmul: f32[2,4,4] @ f32[3,4,4]: batch axes do not broadcast");
}

static Node *conv(T *t, Node *x, Node *w, int stride, int pad) {
  int st[2] = {stride, stride}, pd[2] = {pad, pad};
  return ir_conv2d(&t->b, x, w, st, pd, NO_LOC);
}

static void conv2d_output_sizes(void **state) {
  T *t = *state;
  Node *x = in(t, DT_F32, SH(4, D(-1), D(4), D(32), D(32)));
  Node *patch = in(t, DT_F32, SH(4, D(768), D(4), D(2), D(2)));
  Node *k3 = in(t, DT_F32, SH(4, D(8), D(4), D(3), D(3)));
  assert_string_equal(type_of(t, conv(t, x, patch, 2, 0)), "f32[B,768,16,16]");
  assert_string_equal(type_of(t, conv(t, x, k3, 1, 1)), "f32[B,8,32,32]");
  assert_string_equal(type_of(t, conv(t, x, k3, 1, 0)), "f32[B,8,30,30]");
  Node *x7 = in(t, DT_F32, SH(4, D(1), D(4), D(7), D(7)));
  Node *c = conv(t, x7, k3, 2, 1); /* (7 + 2 - 3) / 2 + 1 */
  assert_string_equal(type_of(t, c), "f32[1,8,4,4]");
  assert_int_equal(c->attr.stride[0], 2);
  assert_int_equal(c->attr.pad[1], 1);
  int st[2] = {1, 3}, pd[2] = {0, 2};
  assert_string_equal(type_of(t, ir_conv2d(&t->b, x7, k3, st, pd, NO_LOC)), "f32[1,8,5,3]");
  assert_int_equal(t->c.diags.nerrors, 0);
}

static void conv2d_errors(void **state) {
  T *t = *state;
  Node *x = in(t, DT_F32, SH(4, D(2), D(4), D(5), D(5)));
  Node *w3 = in(t, DT_F32, SH(4, D(8), D(3), D(3), D(3)));
  Node *w9 = in(t, DT_F32, SH(4, D(8), D(4), D(9), D(9)));
  Node *w = in(t, DT_F32, SH(4, D(8), D(4), D(3), D(3)));
  assert_null(conv(t, x, w3, 1, 0));
  assert_null(conv(t, x, w9, 1, 1));
  assert_null(conv(t, x, w, 0, 0));
  assert_string_equal(t->c.diags.items[0].msg,
                      "conv2d: input f32[2,4,5,5] has 4 channels but weight f32[8,3,3,3] expects 3");
  assert_string_equal(t->c.diags.items[1].msg,
                      "conv2d: kernel f32[8,4,9,9] larger than padded input f32[2,4,5,5]");
  assert_string_equal(t->c.diags.items[2].msg,
                      "conv2d: stride must be >= 1 and padding >= 0");
}

static void reshape(void **state) {
  T *t = *state;
  Node *x = in(t, DT_F32, SH(3, D(-1), D(256), D(768)));
  assert_string_equal(type_of(t, ir_reshape(&t->b, x, SH(4, D(-1), D(16), D(16), D(768)), NO_LOC)),
                      "f32[B,16,16,768]");
  assert_string_equal(type_of(t, ir_reshape(&t->b, x, SH(2, D(-256), D(768)), NO_LOC)),
                      "f32[B*256,768]");
  assert_ptr_equal(ir_reshape(&t->b, x, x->shape, NO_LOC), x);
  assert_int_equal(t->c.diags.nerrors, 0);
  assert_null(ir_reshape(&t->b, x, SH(2, D(-1), D(768)), NO_LOC));
  assert_string_equal(t->c.diags.items[0].msg,
                      "reshape: cannot reshape f32[B,256,768] to f32[B,768]: element counts differ");
  assert_null(ir_reshape(&t->b, x, SH(3, D(-1), D(-1), D(768)), NO_LOC));
  assert_string_equal(t->c.diags.items[1].msg,
                      "reshape: target shape overflows or uses the batch symbol twice");
}

static void permute(void **state) {
  T *t = *state;
  Node *x = in(t, DT_F32, SH(3, D(-1), D(3), D(4)));
  int p[3] = {0, 2, 1}, id[3] = {0, 1, 2}, dup[3] = {0, 1, 1}, out[3] = {0, 3, 1};
  Node *y = ir_permute(&t->b, x, p, NO_LOC);
  assert_string_equal(type_of(t, y), "f32[B,4,3]");
  assert_int_equal(y->attr.perm[1], 2);
  assert_ptr_equal(ir_permute(&t->b, x, id, NO_LOC), x);
  assert_null(ir_permute(&t->b, x, dup, NO_LOC));
  assert_null(ir_permute(&t->b, x, out, NO_LOC));
  assert_string_equal(t->c.diags.items[0].msg, "permute: 1 is not a valid or unique axis of f32[B,3,4]");
  assert_string_equal(t->c.diags.items[1].msg, "permute: 3 is not a valid or unique axis of f32[B,3,4]");
}

static void slice(void **state) {
  T *t = *state;
  Node *x = in(t, DT_F32, SH(3, D(-1), D(10), D(8)));
  int64_t start[3] = {0, 2, 0}, stop[3] = {INT64_MAX, 9, 100}, step[3] = {1, 3, 1};
  Node *y = ir_slice(&t->b, x, start, stop, step, NO_LOC);
  assert_string_equal(type_of(t, y), "f32[B,3,8]"); /* 2, 5, 8 */
  assert_int_equal(y->attr.start[1], 2);
  assert_int_equal(y->attr.step[1], 3);
  int64_t whole[3] = {INT64_MAX, 10, 8}, zero[3] = {0}, one[3] = {1, 1, 1};
  assert_ptr_equal(ir_slice(&t->b, x, zero, whole, one, NO_LOC), x);
  int64_t big[3] = {1, INT64_MAX, 1}, from1[3] = {0, 1, 0};
  assert_string_equal(type_of(t, ir_slice(&t->b, x, from1, whole, big, NO_LOC)), "f32[B,1,8]");
  assert_int_equal(t->c.diags.nerrors, 0);
  int64_t part[3] = {0, 0, 0}, pstop[3] = {2, 10, 8};
  assert_null(ir_slice(&t->b, x, part, pstop, one, NO_LOC));
  assert_string_equal(t->c.diags.items[0].msg,
                      "slice: the batch axis 0 of f32[B,10,8] can only be taken whole");
  int64_t empty[3] = {0, 5, 0}, estop[3] = {INT64_MAX, 5, 8};
  assert_null(ir_slice(&t->b, x, empty, estop, one, NO_LOC));
  assert_string_equal(t->c.diags.items[1].msg,
                      "slice: range 5:5 on axis 1 of f32[B,10,8] is empty or out of range");
  int64_t zstep[3] = {1, 0, 1};
  assert_null(ir_slice(&t->b, x, zero, whole, zstep, NO_LOC));
  assert_string_equal(t->c.diags.items[2].msg, "slice: step 0 on axis 1 must be positive");
}

static void concat(void **state) {
  T *t = *state;
  Node *a = in(t, DT_F32, SH(3, D(-1), D(2), D(3)));
  Node *b = in(t, DT_F32, SH(3, D(-1), D(2), D(5)));
  Node *xs[2] = {a, b};
  Node *r = ir_concat(&t->b, xs, 2, 2, NO_LOC);
  assert_string_equal(type_of(t, r), "f32[B,2,8]");
  assert_int_equal(r->nsrc, 2);
  assert_int_equal(r->attr.axis, 2);
  assert_ptr_equal(ir_concat(&t->b, xs, 1, 0, NO_LOC), a);
  assert_int_equal(t->c.diags.nerrors, 0);
  assert_null(ir_concat(&t->b, xs, 2, 1, NO_LOC));
  assert_string_equal(t->c.diags.items[0].msg,
                      "concat: f32[B,2,3] and f32[B,2,5] differ on axis 2");
  Node *same[2] = {a, a};
  assert_null(ir_concat(&t->b, same, 2, 0, NO_LOC));
  assert_string_equal(t->c.diags.items[1].msg, "concat: cannot join along the batch axis");
  Node *i = in(t, DT_I64, SH(3, D(-1), D(2), D(3)));
  Node *mixed[2] = {a, i};
  assert_null(ir_concat(&t->b, mixed, 2, 2, NO_LOC));
  assert_string_equal(t->c.diags.items[2].msg,
                      "concat: f32[B,2,3] and i64[B,2,3] differ in dtype or rank");
}

static void expand(void **state) {
  T *t = *state;
  Node *x = in(t, DT_F32, SH(2, D(1), D(4)));
  assert_string_equal(type_of(t, ir_expand(&t->b, x, SH(3, D(-1), D(3), D(4)), NO_LOC)),
                      "f32[B,3,4]");
  assert_ptr_equal(ir_expand(&t->b, x, x->shape, NO_LOC), x);
  Node *c = ir_const(&t->b, 1, DT_F32, NO_LOC);
  assert_string_equal(type_of(t, ir_expand(&t->b, c, SH(2, D(2), D(2)), NO_LOC)), "f32[2,2]");
  assert_int_equal(t->c.diags.nerrors, 0);
  Node *y = in(t, DT_F32, SH(2, D(2), D(4)));
  assert_null(ir_expand(&t->b, y, SH(2, D(3), D(4)), NO_LOC));
  assert_string_equal(t->c.diags.items[0].msg, "expand: cannot expand f32[2,4] to f32[3,4]");
  assert_null(ir_expand(&t->b, y, SH(1, D(4)), NO_LOC));
  assert_string_equal(t->c.diags.items[1].msg, "expand: cannot expand f32[2,4] to fewer axes");
  assert_null(ir_expand(&t->b, c, SH(2, D(0), D(4)), NO_LOC));
  assert_string_equal(t->c.diags.items[2].msg, "expand: dimension 0 of f32[0,4] must be positive");
}

static void gather(void **state) {
  T *t = *state;
  Node *table = in(t, DT_F32, SH(2, D(1001), D(16)));
  Node *idx = in(t, DT_I64, SH(1, D(-1)));
  assert_string_equal(type_of(t, ir_gather(&t->b, table, idx, NO_LOC)), "f32[B,16]");
  Node *fidx = in(t, DT_F32, SH(1, D(-1)));
  assert_null(ir_gather(&t->b, table, fidx, NO_LOC));
  assert_string_equal(t->c.diags.items[0].msg, "gather: indices must be i32 or i64, found f32[B]");
  Node *t3 = in(t, DT_F32, SH(3, D(2), D(2), D(2)));
  assert_null(ir_gather(&t->b, t3, idx, NO_LOC));
  assert_string_equal(t->c.diags.items[1].msg, "gather: table f32[2,2,2] must have 2 axes [rows, dim]");
}

static void attention(void **state) {
  T *t = *state;
  Node *q = in(t, DT_F32, SH(4, D(-1), D(12), D(256), D(64)));
  Node *v = in(t, DT_F32, SH(4, D(-1), D(12), D(256), D(32)));
  Node *a = ir_attention(&t->b, q, q, v, 0.125, NO_LOC);
  assert_string_equal(type_of(t, a), "f32[B,12,256,32]");
  assert_true(a->attr.value == 0.125);
  Node *k = in(t, DT_F32, SH(4, D(-1), D(12), D(256), D(32)));
  assert_null(ir_attention(&t->b, q, k, v, 1, NO_LOC));
  assert_string_equal(t->c.diags.items[0].msg,
                      "attention: q f32[B,12,256,64] and k f32[B,12,256,32] differ in head dimension");
  Node *v2 = in(t, DT_F32, SH(4, D(-1), D(12), D(100), D(32)));
  assert_null(ir_attention(&t->b, q, q, v2, 1, NO_LOC));
  assert_string_equal(t->c.diags.items[1].msg,
                      "attention: k f32[B,12,256,64] and v f32[B,12,100,32] differ in sequence length");
  Node *r1 = in(t, DT_F32, SH(1, D(4)));
  assert_null(ir_attention(&t->b, r1, r1, r1, 1, NO_LOC));
  assert_int_equal(t->c.diags.nerrors, 3);
}

static void reductions(void **state) {
  T *t = *state;
  Node *x = in(t, DT_F32, SH(3, D(-1), D(3), D(4)));
  Node *k = ir_reduce(&t->b, OP_SUM, x, 1u << 1, true, NO_LOC);
  assert_string_equal(type_of(t, k), "f32[B,1,4]");
  assert_true(k->attr.keepdims);
  assert_string_equal(type_of(t, ir_reduce(&t->b, OP_MEAN, x, 6u, false, NO_LOC)), "f32[B]");
  assert_int_equal(ir_reduce(&t->b, OP_RMAX, x, 7u, false, NO_LOC)->shape.rank, 0);
  Node *i = in(t, DT_I32, SH(1, D(3)));
  assert_int_equal(ir_reduce(&t->b, OP_SUM, i, 1u, false, NO_LOC)->dtype, DT_I32);
  assert_int_equal(t->c.diags.nerrors, 0);
  assert_null(ir_reduce(&t->b, OP_MEAN, i, 1u, false, NO_LOC));
  assert_string_equal(t->c.diags.items[0].msg, "mean: needs a floating-point tensor, found i32[3]");
  assert_null(ir_reduce(&t->b, OP_SUM, x, 1u << 3, false, NO_LOC));
  assert_string_equal(t->c.diags.items[1].msg, "sum: axis out of range for f32[B,3,4]");
}

static void where(void **state) {
  T *t = *state;
  Node *x = in(t, DT_F32, SH(2, D(-1), D(4)));
  Node *c = ir_binary(&t->b, OP_LT, x, ir_const(&t->b, 0, DT_F32, NO_LOC), NO_LOC);
  Node *col = in(t, DT_BOOL, SH(2, D(-1), D(1)));
  Node *row = in(t, DT_F32, SH(1, D(4)));
  Node *zero = ir_const(&t->b, 0, DT_F32, NO_LOC);
  assert_string_equal(type_of(t, ir_where(&t->b, c, x, zero, NO_LOC)), "f32[B,4]");
  assert_string_equal(type_of(t, ir_where(&t->b, col, row, zero, NO_LOC)), "f32[B,4]");
  assert_int_equal(t->c.diags.nerrors, 0);
  assert_null(ir_where(&t->b, x, x, x, NO_LOC));
  assert_string_equal(t->c.diags.items[0].msg, "where: condition must be bool, found f32[B,4]");
  Node *i = in(t, DT_I64, SH(1, D(4)));
  assert_null(ir_where(&t->b, c, x, i, NO_LOC));
  assert_string_equal(t->c.diags.items[1].msg, "where: dtypes differ: f32[B,4] and i64[4]");
}

static void leaves(void **state) {
  T *t = *state;
  Node *u = ir_random(&t->b, OP_UNIFORM, SH(2, D(-1), D(3)), 0, NO_LOC);
  Node *b = ir_random(&t->b, OP_BERNOULLI, SH(1, D(3)), 0.25, NO_LOC);
  assert_string_equal(type_of(t, u), "f32[B,3]");
  assert_string_equal(type_of(t, b), "bool[3]");
  assert_int_equal(u->attr.stream, 0);
  assert_int_equal(b->attr.stream, 1); /* every random op its own stream */
  assert_string_equal(type_of(t, ir_arange(&t->b, 5, DT_I64, NO_LOC)), "i64[5]");
  Node *x = in(t, DT_F32, SH(1, D(2)));
  assert_int_equal(x->attr.index, 0);
  assert_int_equal(in(t, DT_F32, SH(1, D(2)))->attr.index, 1);
  assert_int_equal(t->b.g->ninputs, 2);
  assert_int_equal(t->c.diags.nerrors, 0);
  assert_null(ir_random(&t->b, OP_BERNOULLI, SH(1, D(3)), 1.5, NO_LOC));
  assert_string_equal(t->c.diags.items[0].msg, "bernoulli: probability 1.5 is not in [0, 1]");
  assert_null(ir_arange(&t->b, 0, DT_I64, NO_LOC));
  assert_string_equal(t->c.diags.items[1].msg, "arange: length 0 must be positive");
  assert_null(ir_input(&t->b, "big", DT_F32, SH(3, D(1) << 20, D(1) << 20, D(1) << 20), NO_LOC));
  assert_string_equal(t->c.diags.items[2].msg,
                      "input: result f32[1048576,1048576,1048576] has too many elements");
}

static void prune_and_verify(void **state) {
  T *t = *state;
  Graph *g = t->b.g;
  Node *x = in(t, DT_F32, SH(1, D(4)));
  Node *dead = ir_unary(&t->b, OP_EXP, x, NO_LOC);
  Node *unused_in = in(t, DT_F32, SH(1, D(4)));
  Node *y = ir_unary(&t->b, OP_SIN, x, NO_LOC);
  Node *z = ir_binary(&t->b, OP_ADD, y, x, NO_LOC);
  (void)dead;
  g->outputs = arena_alloc(&t->c.arena, sizeof(Node *));
  g->outputs[0] = z;
  g->noutputs = 1;
  assert_int_equal(g->n, 5);
  assert_true(ir_prune(&t->c.arena, g));
  assert_int_equal(g->n, 4); /* exp is gone; the unused input stays */
  assert_ptr_equal(g->nodes[0], x);
  assert_ptr_equal(g->nodes[1], unused_in);
  assert_ptr_equal(g->nodes[2], y);
  assert_ptr_equal(g->nodes[3], z);
  for (int i = 0; i < g->n; i++) assert_int_equal(g->nodes[i]->id, i);
  assert_true(ir_verify(&t->c.diags, g));
  assert_int_equal(t->c.diags.nerrors, 0);

  /* An operand that comes later than its user is caught. */
  g->nodes[2] = z;
  g->nodes[3] = y;
  z->id = 2;
  y->id = 3;
  assert_false(ir_verify(&t->c.diags, g));
  assert_string_equal(t->c.diags.items[0].msg, "internal: operand 0 of %2 is not an earlier node");
  z->nsrc = 1;
  assert_false(ir_verify(&t->c.diags, g));
  assert_string_equal(t->c.diags.items[1].msg, "internal: add has 1 operands");
  x->id = 7;
  assert_false(ir_verify(&t->c.diags, g));
  assert_string_equal(t->c.diags.items[2].msg, "internal: node %7 stored at 0");
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(shapes_and_names), TEST(broadcasting), TEST(broadcast_mismatch),
      TEST(batch_multiples_do_not_broadcast), TEST(dtype_rules), TEST(matmul),
      TEST(matmul_inner_mismatch), TEST(matmul_other_errors), TEST(conv2d_output_sizes),
      TEST(conv2d_errors), TEST(reshape), TEST(permute), TEST(slice), TEST(concat),
      TEST(expand), TEST(gather), TEST(attention), TEST(reductions), TEST(where),
      TEST(leaves), TEST(prune_and_verify),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
