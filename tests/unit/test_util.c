/* test_util.c: the arena, StrBuf and checked arithmetic of util.h. */
#include "unit.h"

static const size_t align = _Alignof(max_align_t);

static void arena_aligns_every_size(void **state) {
  (void)state;
  Arena a;
  arena_init(&a);
  for (size_t size = 0; size < 100; size++) {
    unsigned char *p = arena_alloc(&a, size);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % align, 0);
  }
  arena_free(&a);
}

static void arena_returns_zeroed_distinct_memory(void **state) {
  (void)state;
  Arena a;
  arena_init(&a);
  unsigned char *p = arena_alloc(&a, 40);
  memset(p, 0xAB, 40);
  unsigned char *q = arena_alloc(&a, 40);
  assert_true(q >= p + 40 || q + 40 <= p);
  for (int i = 0; i < 40; i++) assert_int_equal(q[i], 0);
  /* A zero-byte request still gets its own address. */
  void *z1 = arena_alloc(&a, 0), *z2 = arena_alloc(&a, 0);
  assert_non_null(z1);
  assert_ptr_not_equal(z1, z2);
  arena_free(&a);
}

static void arena_handles_allocations_larger_than_a_block(void **state) {
  (void)state;
  Arena a;
  arena_init(&a);
  char *small = arena_alloc(&a, 10);
  size_t big_n = (size_t)1 << 20;
  unsigned char *big = arena_alloc(&a, big_n);
  assert_non_null(big);
  for (size_t i = 0; i < big_n; i += 4096) assert_int_equal(big[i], 0);
  memset(big, 1, big_n);
  /* The smaller allocation made before is untouched and still usable. */
  strcpy(small, "intact");
  assert_string_equal(small, "intact");
  assert_true(a.used_bytes >= big_n + 10);
  arena_free(&a);
  assert_null(a.head);
  assert_int_equal(a.used_bytes, 0);
}

static void arena_limit_returns_null_and_keeps_going(void **state) {
  (void)state;
  Arena a;
  arena_init(&a);
  a.limit_bytes = 1000;
  assert_non_null(arena_alloc(&a, 512));
  assert_null(arena_alloc(&a, 600));        /* 512 + 600 > 1000 */
  assert_int_equal(a.used_bytes, 512);      /* a refusal costs nothing */
  assert_non_null(arena_alloc(&a, 400));    /* still fits */
  assert_null(arena_alloc(&a, 200));
  assert_null(arena_strdup(&a, "does not fit either, it is long enough..."
                               "......................................."
                               "......................................."));
  arena_free(&a);
}

static void arena_string_helpers(void **state) {
  (void)state;
  Arena a;
  arena_init(&a);
  assert_string_equal(arena_strdup(&a, "hello"), "hello");
  assert_string_equal(arena_strndup(&a, "hello world", 5), "hello");
  assert_string_equal(arena_printf(&a, "%s-%d-%.1f", "x", 42, 2.5), "x-42-2.5");
  char *longer = arena_printf(&a, "%300s", "r");
  assert_int_equal(strlen(longer), 300);
  assert_int_equal(longer[299], 'r');
  arena_free(&a);
}

static void arena_grow_keeps_contents(void **state) {
  (void)state;
  Arena a;
  arena_init(&a);
  int *xs = arena_grow(&a, NULL, 0, 4, sizeof *xs);
  for (int i = 0; i < 4; i++) xs[i] = i * 7;
  int *ys = arena_grow(&a, xs, 4, 10000, sizeof *ys);
  assert_non_null(ys);
  for (int i = 0; i < 4; i++) assert_int_equal(ys[i], i * 7);
  for (int i = 4; i < 10000; i++) assert_int_equal(ys[i], 0);
  arena_free(&a);
}

static void arena_is_reusable_after_free(void **state) {
  (void)state;
  Arena a;
  arena_init(&a);
  a.limit_bytes = 4096;
  assert_non_null(arena_alloc(&a, 4000));
  arena_free(&a);
  assert_non_null(arena_alloc(&a, 4000)); /* the limit counts from zero again */
  arena_free(&a);
}

static void strbuf_builds_text(void **state) {
  (void)state;
  StrBuf sb;
  sb_init(&sb);
  assert_null(sb.data);
  sb_puts(&sb, "ab");
  sb_putc(&sb, 'c');
  sb_printf(&sb, "[%d,%s]", -5, "x");
  assert_string_equal(sb.data, "abc[-5,x]");
  assert_int_equal(sb.len, 9);
  /* Past the first 256 bytes the buffer grows and keeps everything. */
  for (int i = 0; i < 100; i++) sb_printf(&sb, "%02d|", i);
  assert_int_equal(sb.len, 9 + 300);
  assert_int_equal(strlen(sb.data), sb.len);
  assert_memory_equal(sb.data + 9, "00|01|02|", 9);
  assert_string_equal(sb.data + sb.len - 3, "99|");
  assert_true(sb.cap > sb.len);
  assert_false(sb.failed);
  sb_free(&sb);
  assert_null(sb.data);
  assert_int_equal(sb.len, 0);
}

static void strbuf_empty_string(void **state) {
  (void)state;
  StrBuf sb;
  sb_init(&sb);
  sb_puts(&sb, "");
  assert_non_null(sb.data);
  assert_string_equal(sb.data, "");
  sb_free(&sb);
}

static void checked_arithmetic(void **state) {
  (void)state;
  int64_t r;
  assert_false(add_overflows(INT64_MAX - 1, 1, &r));
  assert_true(r == INT64_MAX);
  assert_true(add_overflows(INT64_MAX, 1, &r));
  assert_true(add_overflows(INT64_MIN, -1, &r));
  assert_false(add_overflows(-5, 3, &r));
  assert_true(r == -2);
  assert_false(mul_overflows(3037000499LL, 3037000499LL, &r));
  assert_true(r == 9223372030926249001LL);
  assert_true(mul_overflows(3037000500LL, 3037000500LL, &r));
  assert_true(mul_overflows(INT64_MIN, -1, &r));
  assert_false(mul_overflows(INT64_MIN, 1, &r));
  assert_true(r == INT64_MIN);
  assert_false(mul_overflows(-4, 6, &r));
  assert_true(r == -24);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(arena_aligns_every_size),
      cmocka_unit_test(arena_returns_zeroed_distinct_memory),
      cmocka_unit_test(arena_handles_allocations_larger_than_a_block),
      cmocka_unit_test(arena_limit_returns_null_and_keeps_going),
      cmocka_unit_test(arena_string_helpers),
      cmocka_unit_test(arena_grow_keeps_contents),
      cmocka_unit_test(arena_is_reusable_after_free),
      cmocka_unit_test(strbuf_builds_text),
      cmocka_unit_test(strbuf_empty_string),
      cmocka_unit_test(checked_arithmetic),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
