/* diag.c: source registry and diagnostic printing. */
#include "diag.h"

const char *diag_program_name = "irepac";

#include <stdarg.h>
#include <string.h>

/* A caret line is shown for at most this much of a long source line. */
enum { SNIPPET_MAX = 160 };

int src_add(SourceSet *set, Arena *a, const char *path, char *text,
            size_t len) {
  if (set->n == set->cap) {
    int cap = set->cap ? set->cap * 2 : 8;
    SourceFile **files = arena_grow(a, set->files, (size_t)set->cap,
                                    (size_t)cap, sizeof *files);
    if (!files) return -1;
    set->files = files;
    set->cap = cap;
  }
  SourceFile *f = arena_alloc(a, sizeof *f);
  if (!f) return -1;
  f->path = arena_strdup(a, path);
  f->text = text;
  f->len = len;
  if (text) {
    int nlines = 1;
    for (size_t i = 0; i < len; i++) nlines += text[i] == '\n';
    f->line_starts = arena_alloc(a, sizeof(size_t) * (size_t)(nlines + 1));
    if (!f->line_starts) return -1;
    int k = 0;
    f->line_starts[k++] = 0;
    for (size_t i = 0; i < len; i++)
      if (text[i] == '\n') f->line_starts[k++] = i + 1;
    f->nlines = nlines;
  }
  set->files[set->n] = f;
  return set->n++;
}

const SourceFile *src_get(const SourceSet *set, int file) {
  if (!set || file < 0 || file >= set->n) return NULL;
  return set->files[file];
}

const char *src_path(const SourceSet *set, int file) {
  const SourceFile *f = src_get(set, file);
  return f ? f->path : "<unknown>";
}

void diag_init(DiagList *d, Arena *a, SourceSet *sources) {
  memset(d, 0, sizeof *d);
  d->arena = a;
  d->sources = sources;
  d->max_errors = 50;
}

void diag_vadd(DiagList *d, DiagKind kind, SrcLoc loc, const char *fmt,
               va_list ap) {
  if (kind == DIAG_ERROR) d->nerrors++;
  if (d->nerrors > d->max_errors) {
    d->dropped++;
    return;
  }
  if (d->n == d->cap) {
    int cap = d->cap ? d->cap * 2 : 16;
    Diag *items = arena_grow(d->arena, d->items, (size_t)d->cap, (size_t)cap,
                             sizeof *items);
    if (!items) return;
    d->items = items;
    d->cap = cap;
  }
  char buf[1024];
  vsnprintf(buf, sizeof buf, fmt, ap);
  Diag *g = &d->items[d->n++];
  g->kind = kind;
  g->loc = loc;
  g->msg = arena_strdup(d->arena, buf);
}

void diag_error(DiagList *d, SrcLoc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_vadd(d, DIAG_ERROR, loc, fmt, ap);
  va_end(ap);
}

void diag_note(DiagList *d, SrcLoc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_vadd(d, DIAG_NOTE, loc, fmt, ap);
  va_end(ap);
}

const char *diag_loc_str(DiagList *d, SrcLoc loc) {
  if (loc.file < 0) return "<builtin>";
  return arena_printf(d->arena, "%s:%d:%d", src_path(d->sources, loc.file),
                      loc.line, loc.col);
}

/* Length of the UTF-8 sequence at s[i] (before n), or 0 if it is not one. */
static size_t utf8_len(const char *s, size_t i, size_t n) {
  unsigned char c = (unsigned char)s[i];
  size_t len = c < 0x80 ? 1 : c >= 0xC2 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3
             : c >= 0xF0 && c < 0xF5 ? 4 : 0;
  if (len == 0 || i + len > n) return 0;
  for (size_t k = 1; k < len; k++)
    if (((unsigned char)s[i + k] & 0xC0) != 0x80) return 0;
  return len;
}

/* Prints s[0..n) for a terminal: bytes that are not UTF-8 (the file may be
 * the one rejected for them), NUL and other control characters print as
 * '?', one column each, so the output stays text and the caret lines up. */
static void put_text(FILE *out, const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t len = utf8_len(s, i, n);
    unsigned char c = (unsigned char)s[i];
    if (len == 0 || (len == 1 && ((c < 0x20 && c != '\t') || c == 0x7F))) {
      fputc('?', out);
      i++;
    } else {
      fwrite(s + i, 1, len, out);
      i += len;
    }
  }
}

/* Prints the source line of `loc` and a caret under its column. Long lines
 * are cut to a window around the column. */
static void print_snippet(FILE *out, const SourceFile *f, SrcLoc loc) {
  if (!f || !f->text || loc.line < 1 || loc.line > f->nlines) return;
  const char *line = f->text + f->line_starts[loc.line - 1];
  size_t n = 0;
  while (line + n < f->text + f->len && line[n] != '\n') n++;
  if (n > 0 && line[n - 1] == '\r') n--;
  /* loc.col counts characters; find the byte where that character starts. */
  size_t col = 0;
  for (int c = 1; c < loc.col && col < n; c++)
    do col++; while (col < n && ((unsigned char)line[col] & 0xC0) == 0x80);
  size_t start = 0;
  if (n > SNIPPET_MAX && col > SNIPPET_MAX / 2) start = col - SNIPPET_MAX / 2;
  /* Do not start in the middle of a UTF-8 sequence. */
  while (start > 0 && ((unsigned char)line[start] & 0xC0) == 0x80) start--;
  size_t end = start + SNIPPET_MAX < n ? start + SNIPPET_MAX : n;
  while (end < n && ((unsigned char)line[end] & 0xC0) == 0x80) end++;
  fprintf(out, "  %s", start ? "..." : "");
  put_text(out, line + start, end - start);
  fprintf(out, "%s\n  ", end < n ? "..." : "");
  if (start) fputs("   ", out);
  for (size_t i = start; i < col;) { /* one column per character */
    size_t len = utf8_len(line, i, n);
    fputc(line[i] == '\t' ? '\t' : ' ', out);
    i += len ? len : 1;
  }
  fputs("^\n", out);
}

void diag_print(FILE *out, const DiagList *d) {
  for (int i = 0; i < d->n; i++) {
    const Diag *g = &d->items[i];
    const char *kind = g->kind == DIAG_ERROR ? "error" : "note";
    const SourceFile *f = src_get(d->sources, g->loc.file);
    if (!f)
      fprintf(out, "%s: %s: %s\n", diag_program_name, kind, g->msg);
    else if (g->loc.line == 0)
      fprintf(out, "%s: %s: %s\n", f->path, kind, g->msg);
    else {
      fprintf(out, "%s:%d:%d: %s: %s\n", f->path, g->loc.line, g->loc.col,
              kind, g->msg);
      print_snippet(out, f, g->loc);
    }
  }
  if (d->dropped)
    fprintf(out, "%s: note: %d more errors not shown\n", diag_program_name, d->dropped);
}
