/* util.h: arena allocation, growable strings and small helpers shared by
 * every compiler pass. Everything a compilation allocates lives in one arena
 * that is freed at once, so passes never free piecemeal and cannot leak. */
#ifndef IREPA_UTIL_H
#define IREPA_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ArenaBlock ArenaBlock;
typedef struct {
  ArenaBlock *head;
  size_t used_bytes;   /* total handed out, for limits and statistics */
  size_t limit_bytes;  /* 0 = no limit; past it arena_alloc returns NULL */
} Arena;

void arena_init(Arena *a);
void arena_free(Arena *a);
/* Zeroed memory, aligned for any type; NULL only when the limit is hit or
 * malloc fails. */
void *arena_alloc(Arena *a, size_t size);
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Grows an array held in the arena: returns a copy with room for `new_cap`
 * elements (old contents kept). */
void *arena_grow(Arena *a, void *old, size_t old_cap, size_t new_cap,
                 size_t elem_size);

/* Growable string on the heap (for printers that build text). */
typedef struct {
  char *data;
  size_t len, cap;
  bool failed;  /* an allocation failed; contents are truncated */
} StrBuf;

void sb_init(StrBuf *sb);
void sb_free(StrBuf *sb);
void sb_puts(StrBuf *sb, const char *s);
void sb_putc(StrBuf *sb, char c);
void sb_printf(StrBuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sb_vprintf(StrBuf *sb, const char *fmt, va_list ap);

/* Command-line helpers shared by irepac and irepa-run. cli_option_value:
 * the value of "--name=VALUE" or "--name VALUE" at argv[*i] (advancing *i
 * past a separate value; "" when it is missing), or NULL if argv[*i] is not
 * --name. cli_include_dir: likewise for "-IDIR" / "-I DIR". */
const char *cli_option_value(const char *name, int argc, char **argv, int *i);
const char *cli_include_dir(int argc, char **argv, int *i);

/* FNV-1a, 64 bits: FNV1A64_INIT, then fed any number of byte runs (content
 * hashes of sources, programs and caches). */
#define FNV1A64_INIT 0xcbf29ce484222325ull
uint64_t fnv1a64_update(uint64_t h, const void *data, size_t n);

/* Seconds on the monotonic clock: for durations and rates. */
double monotonic_seconds(void);

/* A command-line integer: all of s, in [lo, hi]; false (and *out
 * untouched) otherwise. */
bool parse_int_in(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* Checked int64 arithmetic: false on overflow. */
bool mul_overflows(int64_t a, int64_t b, int64_t *out);
bool add_overflows(int64_t a, int64_t b, int64_t *out);

#endif
