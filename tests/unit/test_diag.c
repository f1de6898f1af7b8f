/* test_diag.c: the source registry, the diagnostic list and its limits,
 * and the exact text diag_print writes (snippet and caret). */
#include "unit.h"

static int add_file(Ctx *c, const char *path, const char *text) {
  char *copy = arena_strdup(&c->arena, text);
  int f = src_add(&c->sources, &c->arena, path, copy, strlen(text));
  assert_true(f >= 0);
  return f;
}

/* Prints one error "m" at line:col of a file holding `text`. */
static const char *print_one(Ctx *c, const char *text, int line, int col) {
  int f = add_file(c, "t.irg", text);
  diag_error(&c->diags, (SrcLoc){f, line, col}, "m");
  return ctx_diag_text(c);
}

static char *repeat(Ctx *c, const char *unit, int n) {
  size_t k = strlen(unit);
  char *s = arena_alloc(&c->arena, k * (size_t)n + 1);
  for (int i = 0; i < n; i++) memcpy(s + k * (size_t)i, unit, k);
  return s;
}

static void sources_index_lines(void **state) {
  Ctx *c = *state;
  int f = add_file(c, "a.irg", "a\nbb\n\nccc");
  const SourceFile *sf = src_get(&c->sources, f);
  assert_non_null(sf);
  assert_int_equal(sf->nlines, 4);
  assert_int_equal(sf->line_starts[0], 0);
  assert_int_equal(sf->line_starts[1], 2);
  assert_int_equal(sf->line_starts[2], 5);
  assert_int_equal(sf->line_starts[3], 6);
  int g = src_add(&c->sources, &c->arena, "missing.irg", NULL, 0);
  assert_int_equal(g, f + 1);
  assert_int_equal(src_get(&c->sources, g)->nlines, 0);
  assert_null(src_get(&c->sources, -1));
  assert_null(src_get(&c->sources, g + 1));
  assert_string_equal(src_path(&c->sources, g), "missing.irg");
  assert_string_equal(src_path(&c->sources, 99), "<unknown>");
  /* More files than the initial capacity keep their indices. */
  for (int i = 0; i < 20; i++) add_file(c, arena_printf(&c->arena, "f%d", i), "x");
  assert_string_equal(src_path(&c->sources, g + 20), "f19");
  assert_string_equal(src_path(&c->sources, f), "a.irg");
}

static void notes_do_not_count_as_errors(void **state) {
  Ctx *c = *state;
  int f = add_file(c, "a.irg", "x\n");
  diag_error(&c->diags, (SrcLoc){f, 1, 1}, "bad %d", 1);
  diag_note(&c->diags, (SrcLoc){f, 1, 1}, "see %s", "here");
  assert_int_equal(c->diags.n, 2);
  assert_int_equal(c->diags.nerrors, 1);
  assert_int_equal(c->diags.items[0].kind, DIAG_ERROR);
  assert_string_equal(c->diags.items[0].msg, "bad 1");
  assert_int_equal(c->diags.items[1].kind, DIAG_NOTE);
  assert_string_equal(c->diags.items[1].msg, "see here");
  assert_string_equal(diag_loc_str(&c->diags, (SrcLoc){f, 3, 7}), "a.irg:3:7");
  assert_string_equal(diag_loc_str(&c->diags, NO_LOC), "<builtin>");
}

static void errors_past_max_are_counted_not_kept(void **state) {
  Ctx *c = *state;
  c->diags.max_errors = 3;
  for (int i = 0; i < 5; i++) diag_error(&c->diags, NO_LOC, "e%d", i);
  assert_int_equal(c->diags.nerrors, 5);
  assert_int_equal(c->diags.n, 3);
  assert_int_equal(c->diags.dropped, 2);
  assert_string_equal(ctx_diag_text(c),
                      "irepac: error: e0\n"
                      "irepac: error: e1\n"
                      "irepac: error: e2\n"
                      "irepac: note: 2 more errors not shown\n");
}

static void many_errors_grow_the_list(void **state) {
  Ctx *c = *state;
  for (int i = 0; i < 40; i++) diag_error(&c->diags, NO_LOC, "e%d", i);
  assert_int_equal(c->diags.n, 40);
  assert_string_equal(c->diags.items[39].msg, "e39");
  assert_int_equal(c->diags.dropped, 0);
}

static void long_messages_are_truncated(void **state) {
  Ctx *c = *state;
  diag_error(&c->diags, NO_LOC, "%s", repeat(c, "x", 5000));
  assert_int_equal(strlen(c->diags.items[0].msg), 1023);
}

static void prints_file_level_and_plain_messages(void **state) {
  Ctx *c = *state;
  int f = add_file(c, "a.irg", "x\n");
  diag_error(&c->diags, (SrcLoc){f, 0, 0}, "whole file");
  diag_note(&c->diags, NO_LOC, "no place");
  assert_string_equal(ctx_diag_text(c),
                      "a.irg: error: whole file\n"
                      "irepac: note: no place\n");
}

static void prints_snippet_and_caret(void **state) {
  Ctx *c = *state;
  assert_string_equal(print_one(c, "first\n  x = y +;\r\nlast", 2, 10),
                      "t.irg:2:10: error: m\n"
                      "    x = y +;\n"
                      "           ^\n");
}

static void caret_at_end_of_line_and_bad_lines(void **state) {
  Ctx *c = *state;
  int f = add_file(c, "t.irg", "ab\n");
  diag_error(&c->diags, (SrcLoc){f, 1, 3}, "end");   /* just past "ab" */
  diag_error(&c->diags, (SrcLoc){f, 9, 1}, "beyond"); /* no such line: no snippet */
  assert_string_equal(ctx_diag_text(c),
                      "t.irg:1:3: error: end\n"
                      "  ab\n"
                      "    ^\n"
                      "t.irg:9:1: error: beyond\n");
}

static void tabs_are_kept_in_the_caret_line(void **state) {
  Ctx *c = *state;
  assert_string_equal(print_one(c, "\tx =\t$;", 1, 6),
                      "t.irg:1:6: error: m\n"
                      "  \tx =\t$;\n"
                      "  \t   \t^\n");
}

static void utf8_columns_count_characters(void **state) {
  Ctx *c = *state;
  /* \u00e9 and \u00fc take two bytes each but one column. */
  assert_string_equal(print_one(c, "s = \"\xc3\xa9\" + \xc3\xbc;", 1, 10),
                      "t.irg:1:10: error: m\n"
                      "  s = \"\xc3\xa9\" + \xc3\xbc;\n"
                      "           ^\n");
}

static void long_line_is_cut_to_a_window(void **state) {
  Ctx *c = *state;
  char *line = repeat(c, "0123456789", 30);  /* 300 bytes */
  const char *got = print_one(c, line, 1, 250);
  /* start = 249 - 80 = 169 and the end of the line is within 160 bytes. */
  const char *want = arena_printf(&c->arena, "t.irg:1:250: error: m\n  ...%s\n     %*s^\n",
                                  line + 169, 80, "");
  assert_string_equal(got, want);
}

static void long_line_window_near_the_start(void **state) {
  Ctx *c = *state;
  char *line = repeat(c, "abcdefghij", 40);  /* 400 bytes */
  const char *got = print_one(c, line, 1, 10);
  const char *want = arena_printf(&c->arena, "t.irg:1:10: error: m\n  %.160s...\n  %*s^\n",
                                  line, 9, "");
  assert_string_equal(got, want);
}

static void long_utf8_line_window_keeps_characters_whole(void **state) {
  Ctx *c = *state;
  /* 150 euro signs of 3 bytes; column 101 starts at byte 300. The window
   * would start at byte 220 and end at 380, inside characters: it widens
   * to bytes 219..381, 54 whole characters, and the caret sits 27 columns
   * (bytes 219..299) after the "...". */
  char *line = repeat(c, "\xe2\x82\xac", 150);
  const char *got = print_one(c, line, 1, 101);
  char *window = repeat(c, "\xe2\x82\xac", 54);
  const char *want = arena_printf(&c->arena, "t.irg:1:101: error: m\n  ...%s...\n     %*s^\n",
                                  window, 27, "");
  assert_string_equal(got, want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(sources_index_lines, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(notes_do_not_count_as_errors, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(errors_past_max_are_counted_not_kept, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(many_errors_grow_the_list, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(long_messages_are_truncated, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(prints_file_level_and_plain_messages, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(prints_snippet_and_caret, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(caret_at_end_of_line_and_bad_lines, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(tabs_are_kept_in_the_caret_line, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(utf8_columns_count_characters, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(long_line_is_cut_to_a_window, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(long_line_window_near_the_start, ctx_setup, ctx_teardown),
      cmocka_unit_test_setup_teardown(long_utf8_line_window_keeps_characters_whole, ctx_setup, ctx_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
