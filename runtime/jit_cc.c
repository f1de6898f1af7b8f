/* jit_cc.c: the compilers behind jit.c. Builds their command lines from the
 * environment and runs them with posix_spawnp (no shell: cache paths may
 * hold any character), their output going to a log file whose first error
 * lines a failure's message quotes. */
#include "jit_cc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Fixed flags; -lm follows the source, since the linker reads in order. */
static const char *const C_FLAGS[] = {"-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=c11", NULL};
static const char *const EMU_FLAGS[] = {"-O2",      "-fPIC",    "-shared", "-std=c++17",
                                        "-fopenmp", "-U_FORTIFY_SOURCE", NULL};

bool jit_argv_push(JitArgv *a, const char *s, RtError *err) {
  if (a->n + 2 > a->cap) {
    int cap = a->cap ? 2 * a->cap : 16;
    char **v = realloc(a->v, (size_t)cap * sizeof *v);
    if (!v) return rt_fail(err, "jit: out of memory");
    a->v = v;
    a->cap = cap;
  }
  if (!(a->v[a->n] = strdup(s))) return rt_fail(err, "jit: out of memory");
  a->v[++a->n] = NULL;
  return true;
}

void jit_argv_free(JitArgv *a) {
  for (int i = 0; i < a->n; i++) free(a->v[i]);
  free(a->v);
  *a = (JitArgv){0};
}

/* Appends the blank-separated words of s (no quoting). */
static bool push_words(JitArgv *a, const char *s, RtError *err) {
  char word[4096];
  for (;;) {
    s += strspn(s, " \t\n");
    size_t n = strcspn(s, " \t\n");
    if (!n) return true;
    if (n >= sizeof word) return rt_fail(err, "jit: over-long word in compiler settings: %.40s...", s);
    memcpy(word, s, n);
    word[n] = 0;
    if (!jit_argv_push(a, word, err)) return false;
    s += n;
  }
}

static const char *env_or(const char *name, const char *dflt) {
  const char *v = getenv(name);
  return v && *v ? v : dflt;
}

bool jit_cc_command(JitLang lang, JitArgv *cmd, RtError *err) {
  bool c = lang == JIT_LANG_C;
  bool portable = c && strcmp(env_or("IREPA_JIT_PORTABLE", "0"), "0") != 0;
  const char *cc = c ? env_or("IREPA_CC", "cc") : env_or("IREPA_CXX", "c++");
  if (!push_words(cmd, cc, err)) return false;
  if (cmd->n == 0) return rt_fail(err, "jit: %s names no compiler", c ? "IREPA_CC" : "IREPA_CXX");
  for (const char *const *f = c ? C_FLAGS : EMU_FLAGS; *f; f++) {
    if (portable && strcmp(*f, "-march=native") == 0) continue;
    if (!jit_argv_push(cmd, *f, err)) return false;
  }
  return push_words(cmd, env_or("IREPA_JIT_EXTRA_FLAGS", ""), err);
}

static char host_tag[16384];
static pthread_once_t host_tag_once = PTHREAD_ONCE_INIT;

/* The first "model name" and "flags" (x86) or "Features" (Arm) lines. */
static void read_host_tag(void) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[8192];
  size_t k = 0;
  bool model = false, flags = false;
  while (!(model && flags) && fgets(line, sizeof line, f)) {
    bool is_model = !model && strncmp(line, "model name", 10) == 0;
    bool is_flags = !flags && (strncmp(line, "flags", 5) == 0 || strncmp(line, "Features", 8) == 0);
    if (!is_model && !is_flags) continue;
    model |= is_model;
    flags |= is_flags;
    k += (size_t)snprintf(host_tag + k, sizeof host_tag - k, "%s", line);
    if (k >= sizeof host_tag) k = sizeof host_tag - 1;
  }
  fclose(f);
}

const char *jit_cc_host_tag(void) {
  pthread_once(&host_tag_once, read_host_tag);
  return host_tag;
}

/* Reads the first size - 1 bytes of path into buf (NUL-terminated). */
static size_t read_head(const char *path, char *buf, size_t size) {
  size_t n = 0;
  FILE *f = fopen(path, "r");
  if (f) {
    n = fread(buf, 1, size - 1, f);
    fclose(f);
  }
  buf[n] = 0;
  return n;
}

/* The log from the line of its first "error" on (a compiler prints
 * "In function ..." context first), trailing blanks dropped. */
static const char *first_error(const char *log, size_t *len) {
  const char *start = strstr(log, "error");
  if (!start) start = log;
  while (start > log && start[-1] != '\n') start--;
  size_t n = strlen(start);
  while (n && (start[n - 1] == '\n' || start[n - 1] == ' ')) n--;
  *len = n;
  return start;
}

/* Room for the quoted log: the message holds 1024 bytes and the caller may
 * append a log path. */
enum { LOG_QUOTE_MAX = 640 };

static bool fail_with_log(const char *cc, int status, const char *log_path, RtError *err) {
  char why[64], log[16384];
  if (WIFEXITED(status)) snprintf(why, sizeof why, "exit status %d", WEXITSTATUS(status));
  else snprintf(why, sizeof why, "killed by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  read_head(log_path, log, sizeof log);
  size_t len;
  const char *quote = first_error(log, &len);
  bool cut = len > LOG_QUOTE_MAX;
  return rt_fail(err, "jit: %s failed (%s):\n%.*s%s", cc, why, (int)(cut ? LOG_QUOTE_MAX : len), quote,
                 cut ? "\n[...]" : "");
}

static pid_t spawn(const JitArgv *argv, const char *log_path, RtError *err) {
  posix_spawn_file_actions_t fa;
  pid_t pid = -1;
  int rc = posix_spawn_file_actions_init(&fa);
  if (rc) {
    rt_fail(err, "jit: posix_spawn: error %d", rc);
    return -1;
  }
  rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (!rc) rc = posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, 1, 2);
  if (!rc) rc = posix_spawnp(&pid, argv->v[0], &fa, NULL, argv->v, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc) {
    char buf[128];
    rt_fail(err, "jit: cannot run %s: %s", argv->v[0], strerror_r(rc, buf, sizeof buf));
    return -1;
  }
  return pid;
}

bool jit_cc_run(const JitArgv *argv, const char *log_path, RtError *err) {
  pid_t pid = spawn(argv, log_path, err);
  if (pid < 0) return false;
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      char buf[128];
      return rt_fail(err, "jit: waiting for %s: %s", argv->v[0], strerror_r(errno, buf, sizeof buf));
    }
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  return fail_with_log(argv->v[0], status, log_path, err);
}
