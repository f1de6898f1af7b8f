/* jit.h: compiles generated source to a shared object at run time and
 * dlopens it. Objects are cached on disk by a hash of everything that goes
 * into them (language, compiler, flags, host CPU for -march=native, the
 * emulation header, the source), so a program's kernels compile once per
 * machine. The C backend uses JIT_LANG_C; JIT_LANG_CUDA_EMU runs the CUDA
 * backend's kernels on the CPU through cuda_emu.h (see there).
 *
 * Environment:
 *   IREPA_CACHE_DIR        cache directory (else $XDG_CACHE_HOME/irepa, else
 *                          ~/.cache/irepa); created with mode 0700
 *   IREPA_CC, IREPA_CXX    compilers for C and CUDA_EMU (default cc, c++);
 *                          may carry words, e.g. "ccache gcc"
 *   IREPA_JIT_PORTABLE=1   no -march=native for C
 *   IREPA_JIT_EXTRA_FLAGS  more compiler flags, e.g. "-g -DIREPA_EMU_UCONTEXT"
 *
 * In the cache directory, <key>.so is the object, <key>.c/.cu its source
 * (for debugging), <key>.log the compiler's output when it failed, and
 * cuda_emu-<hash>.h the emulation header that .cu files are compiled with.
 * Objects are compiled to a temporary name and renamed into place, so
 * concurrent processes and interrupted compiles never leave a partial one;
 * a cached object that does not load is compiled again, once.
 * All functions are thread-safe (they do not change the environment). */
#ifndef IREPA_JIT_H
#define IREPA_JIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

typedef enum {
  JIT_LANG_C,        /* C11, cc -O3 -march=native -fopenmp */
  JIT_LANG_CUDA_EMU, /* CUDA C compiled as host C++ with cuda_emu.h first */
} JitLang;

typedef struct JitModule JitModule; /* a dlopen handle and its path */

/* Counters since process start, for tests and statistics. */
typedef struct {
  uint64_t loads;      /* successful jit_load calls */
  uint64_t compiles;   /* compiler runs that succeeded */
  uint64_t cache_hits; /* loads served by an object already in the cache */
  uint64_t failures;   /* jit_load calls that failed */
} JitStats;

/* Loads `source` (NUL-terminated) compiled for `lang`, compiling it unless
 * the cache holds it. NULL with a message on failure; a compile error's
 * message quotes the compiler's diagnostics. */
JitModule *jit_load(JitLang lang, const char *source, RtError *err);

/* The address of `name` in m; NULL with a message naming it if absent. */
void *jit_symbol(JitModule *m, const char *name, RtError *err);

/* The module's shared object in the cache. */
const char *jit_module_path(const JitModule *m);

/* For a JIT_LANG_CUDA_EMU module: false with the emulator's message if a
 * launch failed (a divergent barrier, a bad launch shape) since the last
 * check, which clears it. True for modules without the emulator. */
bool jit_emu_check(JitModule *m, RtError *err);

void jit_unload(JitModule *m);

/* The cache directory into buf, or NULL if none can be named or it does
 * not fit. Does not create it. */
const char *jit_cache_dir(char *buf, size_t size);

JitStats jit_stats(void);

#endif
