/* fuzz_compile.c: libFuzzer entry point over the whole front end. The
 * input is the root file (it may import the library in models/); it is
 * parsed, elaborated (all entries) and its diagnostics and dumps printed to
 * /dev/null, so the printers are exercised too. Everything lives in one
 * arena with a limit, as in irepac, so running out of it must be handled
 * as an error, never a crash: an input that fails with no diagnostic at all
 * aborts, as that is a silent failure of the library. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "elab.h"
#include "parse.h"

#ifndef IREPA_MODELS_DIR
#define IREPA_MODELS_DIR "models"
#endif

/* Small enough that exhausting it is reachable under -rss_limit_mb=2048. */
enum { FUZZ_ARENA_LIMIT = 256 << 20 };

/* One input in four runs with a small arena (16 KiB to 8 MiB) so that
 * running out part-way through every pass gets explored too. The choice
 * is a hash of the bytes: a saved input replays the same way. */
static size_t arena_limit(const uint8_t *data, size_t size) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 16777619u;
  if (h % 4 != 0) return FUZZ_ARENA_LIMIT;
  return (size_t)16 << 10 << (h / 4 % 10);
}

static FILE *sink(void) {
  static FILE *null_out;
  if (!null_out) null_out = fopen("/dev/null", "w");
  return null_out;
}

static void compile(Arena *arena, DiagList *diags, const uint8_t *data,
                    size_t size, FILE *out) {
  static const char *dirs[] = {IREPA_MODELS_DIR};
  ParseOptions opt = {dirs, 1};
  Program prog;
  bool ok = irg_load_program_text(arena, diags, "fuzz.irg", (const char *)data,
                                  size, &opt, &prog);
  if (!ok && diags->nerrors == 0) abort(); /* failed without saying why */
  if (out && prog.nfiles > 0)
    ast_print(out, prog.files[0], diags->sources, true);
  if (!ok) return;  /* as irepac: no elaboration after syntax errors */
  IrProgram ir;
  ok = elab_program(arena, diags, &prog, NULL, &ir);
  if (!ok && diags->nerrors == 0) abort();
  if (!ok || !out) return;
  ir_print_params(out, &ir.params);
  for (int i = 0; i < ir.nentries; i++)
    ir_print_graph(out, ir.entries[i], true, diags->sources);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > SOURCE_MAX_BYTES) return 0;
  Arena arena;
  arena_init(&arena);
  arena.limit_bytes = arena_limit(data, size);
  SourceSet sources = {0};
  DiagList diags;
  diag_init(&diags, &arena, &sources);
  FILE *out = sink();
  compile(&arena, &diags, data, size, out);
  if (out) diag_print(out, &diags);
  arena_free(&arena);
  return 0;
}
