/* jit_cc.h: the compiler side of jit.c (internal): command lines built from
 * the environment, the host tag that -march=native objects depend on, and
 * running the compiler with its output captured. */
#ifndef IREPA_JIT_CC_H
#define IREPA_JIT_CC_H

#include <stdbool.h>
#include <stddef.h>

#include "jit.h"

/* The CUDA emulation header, embedded at build time from cuda_emu.h. */
extern const char irepa_cuda_emu_header[];

/* A NULL-terminated argument vector of malloc'ed strings. */
typedef struct {
  char **v;
  int n, cap;
} JitArgv;

bool jit_argv_push(JitArgv *a, const char *s, RtError *err);
void jit_argv_free(JitArgv *a);

/* The compiler and flags for lang, without inputs and output: IREPA_CC or
 * IREPA_CXX, the fixed flags, IREPA_JIT_EXTRA_FLAGS. */
bool jit_cc_command(JitLang lang, JitArgv *cmd, RtError *err);

/* What a -march=native object depends on besides its command line: the
 * CPU model and feature flags ("" when unknown). Read once. */
const char *jit_cc_host_tag(void);

/* Runs argv with stdout and stderr written to log_path; false with a
 * message quoting the log when it cannot run or does not exit with 0. */
bool jit_cc_run(const JitArgv *argv, const char *log_path, RtError *err);

#endif
