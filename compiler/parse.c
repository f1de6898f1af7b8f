/* parse.c: reads source files (checking size, NUL bytes and UTF-8 before
 * the lexer sees them), runs the bison parser on each, and follows imports
 * depth first: relative to the importing file, then the -I directories.
 * Each file is loaded once (by canonical path); a cycle is an error at the
 * import that closes it. */
#include "parse.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "irg.tab.h"
#include "irg.lex.h"

/* Returns the offset of the first invalid UTF-8 byte, or len if valid. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    size_t n;
    unsigned min;
    if (c < 0x80) { i++; continue; }
    else if ((c & 0xE0) == 0xC0) { n = 1; min = 0x80; c &= 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 2; min = 0x800; c &= 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 3; min = 0x10000; c &= 0x07; }
    else return i;
    for (size_t k = 1; k <= n; k++) {
      if (i + k >= len || (s[i + k] & 0xC0) != 0x80) return i;
      c = (c << 6) | (s[i + k] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return i;
    i += n + 1;
  }
  return len;
}

/* Line and column (1-based, columns in characters) of byte `off`. */
static void line_col(const char *text, size_t off, int *line, int *col) {
  *line = 1;
  *col = 1;
  for (size_t i = 0; i < off; i++) {
    if (text[i] == '\n') {
      (*line)++;
      *col = 1;
    } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
      (*col)++;
    }
  }
}

/* Reports an error about a file that could not be read: at the import that
 * named it, or, for the file named on the command line, against its path. */
static int file_error(Arena *a, DiagList *d, const char *path, SrcLoc from,
                      const char *why) {
  if (from.file >= 0) {
    diag_error(d, from, "cannot import '%s': %s", path, why);
    return -1;
  }
  int f = src_add(d->sources, a, path, NULL, 0);
  diag_error(d, f >= 0 ? (SrcLoc){f, 0, 0} : NO_LOC, "%s", why);
  return -1;
}

static char *read_all(Arena *a, FILE *fp, size_t size) {
  char *text = arena_alloc(a, size + 1);
  if (!text) return NULL;
  size_t got = fread(text, 1, size, fp);
  if (got != size) return NULL;
  text[size] = '\0';
  return text;
}

int irg_add_source(Arena *a, DiagList *d, const char *path, char *text, size_t size) {
  int f = src_add(d->sources, a, path, text, size);
  if (f < 0) {
    diag_error(d, NO_LOC, "out of memory reading '%s'", path);
    return -1;
  }
  char real[PATH_MAX];
  if (realpath(path, real)) d->sources->files[f]->real_path = arena_strdup(a, real);
  const char *nul = memchr(text, '\0', size);
  if (nul) {
    int line, col;
    line_col(text, (size_t)(nul - text), &line, &col);
    diag_error(d, (SrcLoc){f, line, col}, "NUL byte in source file");
    return -1;
  }
  size_t bad = utf8_invalid_at((const unsigned char *)text, size);
  if (bad < size) {
    int line, col;
    line_col(text, bad, &line, &col);
    diag_error(d, (SrcLoc){f, line, col},
               "invalid UTF-8 byte 0x%02X (source files must be UTF-8)",
               (unsigned char)text[bad]);
    return -1;
  }
  return f;
}

int irg_read_source(Arena *a, DiagList *d, const char *path, SrcLoc from) {
  struct stat st;
  if (stat(path, &st) != 0) return file_error(a, d, path, from, strerror(errno));
  if (S_ISDIR(st.st_mode)) return file_error(a, d, path, from, "is a directory");
  if (!S_ISREG(st.st_mode)) return file_error(a, d, path, from, "not a regular file");
  if (st.st_size > SOURCE_MAX_BYTES)
    return file_error(a, d, path, from, "file larger than 16 MiB");
  FILE *fp = fopen(path, "rb");
  if (!fp) return file_error(a, d, path, from, strerror(errno));
  size_t size = (size_t)st.st_size;
  char *text = read_all(a, fp, size);
  int read_errno = errno;
  fclose(fp);
  if (!text)
    return file_error(a, d, path, from,
                      read_errno ? strerror(read_errno) : "short read");
  return irg_add_source(a, d, path, text, size);
}

AstFile *irg_parse(Arena *arena, DiagList *diags, int file) {
  const SourceFile *src = src_get(diags->sources, file);
  AstFile *out = arena_alloc(arena, sizeof *out);
  if (!src || !out) return NULL;
  out->file = file;
  ParseState ps = {.arena = arena, .diags = diags, .file = file, .out = out, .line = 1, .col = 1};
  yyscan_t scanner;
  if (irg_yylex_init_extra(&ps, &scanner) != 0) return NULL;
  YY_BUFFER_STATE buf = irg_yy_scan_bytes(src->text, (int)src->len, scanner);
  irg_yyparse(scanner, &ps);
  irg_yy_delete_buffer(buf, scanner);
  irg_yylex_destroy(scanner);
  return out;
}

/* ---- imports ---------------------------------------------------------- */

typedef struct {
  Arena *arena;
  DiagList *diags;
  const ParseOptions *opt;
  Program *prog;
  int stack[IMPORT_MAX_FILES];  /* files being loaded, for cycle reports */
  int depth;
  bool ok;
} Loader;

/* The directory part of `path`, or NULL when it has none (then imports
 * are named as written: "lib.irg", not "./lib.irg", in messages). */
static const char *dir_of(Arena *a, const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return NULL;
  return arena_strndup(a, path, (size_t)(slash - path));
}

static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* Resolves an import path: absolute, beside the importer, then -I dirs. */
static const char *resolve(Loader *L, const char *name, int from_file) {
  if (name[0] == '/') return name;
  const char *base = dir_of(L->arena, src_path(L->diags->sources, from_file));
  const char *p = base ? arena_printf(L->arena, "%s/%s", base, name) : name;
  if (p && exists(p)) return p;
  for (int i = 0; i < L->opt->ninclude; i++) {
    const char *q = arena_printf(L->arena, "%s/%s", L->opt->include_dirs[i], name);
    if (q && exists(q)) return q;
  }
  return p; /* reported as missing where the import is */
}

static int find_loaded(Loader *L, const char *real) {
  for (int i = 0; i < L->prog->nfiles; i++) {
    const SourceFile *f = src_get(L->diags->sources, L->prog->files[i]->file);
    if (f->real_path && !strcmp(f->real_path, real)) return i;
  }
  return -1;
}

static bool on_stack(Loader *L, const char *real) {
  for (int i = 0; i < L->depth; i++) {
    const SourceFile *f = src_get(L->diags->sources, L->stack[i]);
    if (f->real_path && !strcmp(f->real_path, real)) return true;
  }
  return false;
}

static void report_cycle(Loader *L, SrcLoc at, const char *real) {
  StrBuf sb;
  sb_init(&sb);
  bool started = false;
  for (int i = 0; i < L->depth; i++) {
    const SourceFile *f = src_get(L->diags->sources, L->stack[i]);
    if (!started && f->real_path && !strcmp(f->real_path, real)) started = true;
    if (started) sb_printf(&sb, "%s -> ", f->path);
  }
  const SourceFile *first = NULL;
  for (int i = 0; i < L->depth && !first; i++) {
    const SourceFile *f = src_get(L->diags->sources, L->stack[i]);
    if (f->real_path && !strcmp(f->real_path, real)) first = f;
  }
  sb_puts(&sb, first ? first->path : real);
  diag_error(L->diags, at, "import cycle: %s", sb.data ? sb.data : "");
  sb_free(&sb);
}

static int load_file(Loader *L, const char *path, SrcLoc from);

static void load_imports(Loader *L, AstFile *ast) {
  for (int i = 0; i < ast->decls.n; i++) {
    Decl *d = ast->decls.items[i];
    if (d->kind != D_IMPORT) continue;
    const char *path = resolve(L, d->name, ast->file);
    if (!path) {
      diag_error(L->diags, d->loc, "out of memory resolving '%s'", d->name);
      L->ok = false;
      return;
    }
    char real[PATH_MAX];
    if (realpath(path, real)) {
      if (on_stack(L, real)) {
        report_cycle(L, d->loc, real);
        L->ok = false;
        continue;
      }
      int k = find_loaded(L, real);
      if (k >= 0) {
        d->import_file = L->prog->files[k]->file;
        continue;
      }
    }
    d->import_file = load_file(L, path, d->loc);
  }
}

/* Returns the loaded file's index, or -1. */
static int parse_loaded(Loader *L, int f, const char *path, SrcLoc from);

static int load_file(Loader *L, const char *path, SrcLoc from) {
  if (L->prog->nfiles >= IMPORT_MAX_FILES || L->depth >= IMPORT_MAX_FILES) {
    diag_error(L->diags, from, "more than %d files imported", IMPORT_MAX_FILES);
    L->ok = false;
    return -1;
  }
  int f = irg_read_source(L->arena, L->diags, path, from);
  if (f < 0) {
    L->ok = false;
    return -1;
  }
  return parse_loaded(L, f, path, from);
}

/* Parses registered file `f`, adds it to the program and loads its imports. */
static int parse_loaded(Loader *L, int f, const char *path, SrcLoc from) {
  int nerr = L->diags->nerrors;
  AstFile *ast = irg_parse(L->arena, L->diags, f);
  if (!ast) {
    diag_error(L->diags, from, "out of memory while parsing '%s'", path);
    L->ok = false;
    return -1;
  }
  if (L->diags->nerrors > nerr) L->ok = false;
  AstFile **files = arena_grow(L->arena, L->prog->files, (size_t)L->prog->nfiles,
                               (size_t)L->prog->nfiles + 1, sizeof *files);
  if (!files) {
    diag_error(L->diags, from, "out of memory while loading '%s'", path);
    L->ok = false;
    return -1;
  }
  files[L->prog->nfiles++] = ast;
  L->prog->files = files;
  L->stack[L->depth++] = f;
  load_imports(L, ast);
  L->depth--;
  return f;
}

static const ParseOptions no_options = {NULL, 0};

bool irg_load_program(Arena *arena, DiagList *diags, const char *path,
                      const ParseOptions *opt, Program *prog) {
  memset(prog, 0, sizeof *prog);
  Loader L = {arena, diags, opt ? opt : &no_options, prog, {0}, 0, true};
  load_file(&L, path, NO_LOC);
  return L.ok;
}

bool irg_load_program_text(Arena *arena, DiagList *diags, const char *name,
                           const char *text, size_t len, const ParseOptions *opt,
                           Program *prog) {
  memset(prog, 0, sizeof *prog);
  Loader L = {arena, diags, opt ? opt : &no_options, prog, {0}, 0, true};
  char *copy = arena_strndup(arena, text, len);
  if (!copy) {
    diag_error(diags, NO_LOC, "out of memory reading '%s'", name);
    return false;
  }
  int f = irg_add_source(arena, diags, name, copy, len);
  if (f < 0) return false;
  parse_loaded(&L, f, name, NO_LOC);
  return L.ok;
}
