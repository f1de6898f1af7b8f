/* diag.h: source files and diagnostics. Errors are values: every pass
 * appends Diags to a DiagList and returns failure; only main() prints them
 * (file:line:col, the source line and a caret) and chooses the exit code. */
#ifndef IREPA_DIAG_H
#define IREPA_DIAG_H

#include <stdio.h>

#include "util.h"

typedef struct {
  int file;  /* index into the SourceSet; -1 = no file */
  int line;  /* 1-based; 0 = the file as a whole */
  int col;   /* 1-based byte column */
} SrcLoc;

#define NO_LOC ((SrcLoc){-1, 0, 0})

typedef struct {
  char *path;        /* as the user or the import named it */
  char *real_path;   /* canonical, for import de-duplication; may be NULL */
  char *text;        /* NUL-terminated contents; NULL if never read */
  size_t len;
  size_t *line_starts;
  int nlines;
} SourceFile;

typedef struct {
  SourceFile **files;
  int n, cap;
} SourceSet;

typedef enum { DIAG_ERROR, DIAG_NOTE } DiagKind;

typedef struct {
  DiagKind kind;
  SrcLoc loc;
  char *msg;
} Diag;

typedef struct {
  Diag *items;
  int n, cap;
  int nerrors;
  int max_errors;   /* after this many, further errors are counted, not kept */
  int dropped;
  Arena *arena;
  SourceSet *sources;
} DiagList;

/* Registers a file (text may be NULL); returns its index or -1. */
int src_add(SourceSet *set, Arena *a, const char *path, char *text, size_t len);
const SourceFile *src_get(const SourceSet *set, int file);
const char *src_path(const SourceSet *set, int file);

/* The prefix of messages without a place ("irepac: error: ..."); the
 * programs set it to their own name. */
extern const char *diag_program_name;

void diag_init(DiagList *d, Arena *a, SourceSet *sources);
void diag_error(DiagList *d, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_note(DiagList *d, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_vadd(DiagList *d, DiagKind kind, SrcLoc loc, const char *fmt,
               va_list ap);
void diag_print(FILE *out, const DiagList *d);
/* "file:line:col" for messages that mention a second place. */
const char *diag_loc_str(DiagList *d, SrcLoc loc);

#endif
