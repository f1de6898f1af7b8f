/* parse.h: reading .irg files into ASTs (grammar/irg.l, grammar/irg.y) and
 * resolving their imports into one Program of declarations. */
#ifndef IREPA_PARSE_H
#define IREPA_PARSE_H

#include "ast.h"

/* Limits that turn pathological input into errors instead of crashes. */
enum {
  PARSE_MAX_NESTING = 200,       /* open ( [ { at once */
  PARSE_MAX_EXPR_DEPTH = 500,    /* operator nesting in one expression */
  PARSE_MAX_IDENT = 256,         /* bytes in an identifier */
  PARSE_MAX_STRING = 4096,       /* bytes in a string literal */
  SOURCE_MAX_BYTES = 16 << 20,   /* one .irg file */
  IMPORT_MAX_FILES = 256,
};

/* State shared by the reentrant lexer and parser of one file. */
typedef struct {
  Arena *arena;
  DiagList *diags;
  int file;
  AstFile *out;
  int nesting;
  bool fatal;   /* a limit was hit: stop, and report nothing further */
  int line, col;
  SrcLoc open_at[PARSE_MAX_NESTING];  /* each open bracket: where, */
  char open_ch[PARSE_MAX_NESTING];     /* and which */
} ParseState;

/* Parses source file `file` (already registered in diags->sources).
 * Returns NULL if the arena is exhausted; syntax errors go to diags and
 * the returned AST holds what could be recovered. */
AstFile *irg_parse(Arena *arena, DiagList *diags, int file);

/* A program: the root file and everything it imports, each file once. */
typedef struct {
  AstFile **files;   /* in load order; files[0] is the root */
  int nfiles;
} Program;

typedef struct {
  const char **include_dirs;
  int ninclude;
} ParseOptions;

/* Loads `path`, parses it and its imports (depth first, cycles are
 * errors). Returns false with diagnostics on any error; *prog holds what
 * was parsed. `from` is where the path was named (NO_LOC for the CLI). */
bool irg_load_program(Arena *arena, DiagList *diags, const char *path,
                      const ParseOptions *opt, Program *prog);

/* Like irg_load_program, with the root file's text given (imports are
 * still read from disk, relative to `name` and the include directories). */
bool irg_load_program_text(Arena *arena, DiagList *diags, const char *name,
                           const char *text, size_t len, const ParseOptions *opt,
                           Program *prog);

/* Validates text (NUL bytes, UTF-8) and registers it as file `path`; the
 * text must stay alive as long as the arena. Returns the index or -1. */
int irg_add_source(Arena *arena, DiagList *diags, const char *path, char *text,
                   size_t len);

/* Reads and validates one file (size, NUL bytes, UTF-8) and registers it.
 * Returns its file index, or -1 with a diagnostic at `from`. */
int irg_read_source(Arena *arena, DiagList *diags, const char *path,
                    SrcLoc from);

#endif
