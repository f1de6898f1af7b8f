/* unit.h: what every unit test program includes: CMocka, and a Ctx that
 * owns one compilation's arena, sources and diagnostics, with helpers to
 * read back what was reported. */
#ifndef IREPA_UNIT_H
#define IREPA_UNIT_H

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elab.h"
#include "parse.h"

typedef struct {
  Arena arena;
  SourceSet sources;
  DiagList diags;
  Program prog;
  IrProgram ir;
} Ctx;

static inline int ctx_setup(void **state) {
  Ctx *c = calloc(1, sizeof *c);
  if (!c) return -1;
  arena_init(&c->arena);
  diag_init(&c->diags, &c->arena, &c->sources);
  *state = c;
  return 0;
}

static inline int ctx_teardown(void **state) {
  Ctx *c = *state;
  arena_free(&c->arena);
  free(c);
  return 0;
}

/* Everything diag_print writes, in the arena. */
static inline const char *ctx_diag_text(Ctx *c) {
  FILE *f = tmpfile();
  assert_non_null(f);
  diag_print(f, &c->diags);
  long n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  char *text = arena_alloc(&c->arena, (size_t)n + 1);
  assert_non_null(text);
  assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  return text;
}

/* Parses `src` as file "t.irg", imports resolved in models/. */
static inline bool ctx_parse(Ctx *c, const char *src) {
  static const char *dirs[] = {IREPA_MODELS_DIR};
  ParseOptions opt = {dirs, 1};
  return irg_load_program_text(&c->arena, &c->diags, "t.irg", src, strlen(src),
                               &opt, &c->prog);
}

/* Parses and elaborates; false if either reported an error. */
static inline bool ctx_elab(Ctx *c, const char *src) {
  if (!ctx_parse(c, src)) return false;
  return elab_program(&c->arena, &c->diags, &c->prog, NULL, &c->ir) &&
         c->diags.nerrors == 0;
}

/* Fails the test unless the first error is `msg` at line:col of t.irg. */
#define assert_first_error(c, line_, col_, msg_)                 \
  do {                                                          \
    assert_true((c)->diags.n > 0);                              \
    const Diag *d_ = &(c)->diags.items[0];                      \
    assert_int_equal(d_->kind, DIAG_ERROR);                     \
    assert_string_equal(d_->msg, (msg_));                       \
    assert_int_equal(d_->loc.line, (line_));                    \
    assert_int_equal(d_->loc.col, (col_));                      \
  } while (0)

#endif
