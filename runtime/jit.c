/* jit.c: source in, loaded shared object out (jit.h). Names each object by
 * a 128-bit FNV-1a hash of its inputs, serves it from the cache directory
 * when present and loadable, and otherwise compiles it there (jit_cc.c)
 * under a temporary name that is renamed into place once complete. */
#include "jit.h"

#include "fileio.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jit_cc.h"

struct JitModule {
  void *handle;
  char *path;
};

enum { JIT_PATH_MAX = 4096 };

static atomic_uint_fast64_t n_loads, n_compiles, n_hits, n_failures;
static atomic_uint n_temps; /* makes temporary names unique within the process */

/* ------------------------------------------------------------------ */
/* The cache directory                                                  */

static const char *fit(char *buf, size_t size, int n) { return n >= 0 && (size_t)n < size ? buf : NULL; }

static const char *home_dir(void) {
  const char *home = getenv("HOME");
  if (home && *home) return home;
  struct passwd pw, *res = NULL;
  static _Thread_local char pwbuf[4096];
  if (getpwuid_r(getuid(), &pw, pwbuf, sizeof pwbuf, &res) == 0 && res) return res->pw_dir;
  return NULL;
}

const char *jit_cache_dir(char *buf, size_t size) {
  const char *dir = getenv("IREPA_CACHE_DIR");
  if (dir && *dir) return fit(buf, size, snprintf(buf, size, "%s", dir));
  dir = getenv("XDG_CACHE_HOME"); /* the XDG spec ignores relative paths */
  if (dir && dir[0] == '/') return fit(buf, size, snprintf(buf, size, "%s/irepa", dir));
  dir = home_dir();
  if (!dir) return NULL;
  return fit(buf, size, snprintf(buf, size, "%s/.cache/irepa", dir));
}


/* ------------------------------------------------------------------ */
/* Keys: FNV-1a over every input, each string with its NUL as separator */

typedef unsigned __int128 u128;

static u128 fnv_init(void) { return ((u128)0x6c62272e07bb0142ULL << 64) | 0x62b821756295c58dULL; }

static u128 fnv_bytes(u128 h, const void *p, size_t n) {
  const u128 prime = ((u128)1 << 88) | 0x13b;
  for (const unsigned char *b = p; n--; b++) h = (h ^ *b) * prime;
  return h;
}

static u128 fnv_str(u128 h, const char *s) { return fnv_bytes(h, s, strlen(s) + 1); }

static void hex128(u128 h, char out[33]) {
  snprintf(out, 33, "%016llx%016llx", (unsigned long long)(h >> 64), (unsigned long long)h);
}

static bool is_native(const JitArgv *cmd) {
  for (int i = 0; i < cmd->n; i++)
    if (strcmp(cmd->v[i], "-march=native") == 0 || strcmp(cmd->v[i], "-mcpu=native") == 0) return true;
  return false;
}

static void cache_key(JitLang lang, const JitArgv *cmd, const char *source, char key[33]) {
  u128 h = fnv_str(fnv_init(), "irepa-jit 1");
  h = fnv_str(h, lang == JIT_LANG_C ? "c" : "cuda-emu");
  for (int i = 0; i < cmd->n; i++) h = fnv_str(h, cmd->v[i]);
  if (is_native(cmd)) h = fnv_str(h, jit_cc_host_tag()); /* objects for this CPU only */
  if (lang == JIT_LANG_CUDA_EMU) h = fnv_str(h, irepa_cuda_emu_header);
  hex128(fnv_str(h, source), key);
}

/* ------------------------------------------------------------------ */
/* Files                                                                */

typedef struct {
  char dir[JIT_PATH_MAX];
  char key[33];
  char so[JIT_PATH_MAX];
} CachePaths;

/* dir/<key><suffix>, or dir/<key>.<pid>.<n><suffix> when temp. */
static bool key_path(const CachePaths *p, const char *suffix, bool temp, char *out, RtError *err) {
  int n = temp ? snprintf(out, JIT_PATH_MAX, "%s/%s.%ld.%u%s", p->dir, p->key, (long)getpid(),
                          atomic_fetch_add(&n_temps, 1), suffix)
               : snprintf(out, JIT_PATH_MAX, "%s/%s%s", p->dir, p->key, suffix);
  if (n < 0 || n >= JIT_PATH_MAX) return rt_fail(err, "jit: cache path too long under %s", p->dir);
  return true;
}

static bool write_all(int fd, const char *data, size_t len) {
  while (len) {
    ssize_t w = write(fd, data, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    len -= (size_t)w;
  }
  return true;
}

/* Writes path through a temporary file and rename(), so that readers see
 * the old content or the whole new one. */
static bool write_file_atomic(const char *path, const char *data, size_t len, RtError *err) {
  char tmp[JIT_PATH_MAX + 32], ebuf[128];
  snprintf(tmp, sizeof tmp, "%s.%ld.%u.tmp", path, (long)getpid(), atomic_fetch_add(&n_temps, 1));
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && write_all(fd, data, len);
  if (fd >= 0 && close(fd) != 0) ok = false;
  if (ok && rename(tmp, path) == 0) return true;
  int e = errno;
  unlink(tmp);
  return rt_fail(err, "jit: cannot write %s: %s", path, strerror_r(e, ebuf, sizeof ebuf));
}

/* dir/cuda_emu-<hash>.h: the header every .cu of this runtime build is
 * compiled with, written once (or again if it is not whole). */
static bool emu_header_path(const char *dir, char *out, RtError *err) {
  size_t len = strlen(irepa_cuda_emu_header);
  char key[33];
  hex128(fnv_bytes(fnv_init(), irepa_cuda_emu_header, len), key);
  int n = snprintf(out, JIT_PATH_MAX, "%s/cuda_emu-%.16s.h", dir, key);
  if (n < 0 || n >= JIT_PATH_MAX) return rt_fail(err, "jit: cache path too long under %s", dir);
  struct stat st;
  if (stat(out, &st) == 0 && st.st_size == (off_t)len) return true;
  return write_file_atomic(out, irepa_cuda_emu_header, len, err);
}

/* ------------------------------------------------------------------ */
/* Compiling                                                            */

/* cmd + output, inputs and libraries: C links libm after the source; CUDA
 * is read as C++ after the emulation header. */
static bool full_command(JitLang lang, const JitArgv *cmd, const char *src, const char *out,
                         const char *header, JitArgv *full, RtError *err) {
  for (int i = 0; i < cmd->n; i++)
    if (!jit_argv_push(full, cmd->v[i], err)) return false;
  if (!jit_argv_push(full, "-o", err) || !jit_argv_push(full, out, err)) return false;
  if (lang == JIT_LANG_CUDA_EMU) {
    const char *pre[] = {"-include", header, "-x", "c++"};
    for (int i = 0; i < 4; i++)
      if (!jit_argv_push(full, pre[i], err)) return false;
  }
  if (!jit_argv_push(full, src, err)) return false;
  return lang != JIT_LANG_C || jit_argv_push(full, "-lm", err);
}

/* Adds where the whole log is to a failure's message. */
static void keep_log(const CachePaths *p, const char *tmp_log, RtError *err) {
  char log[JIT_PATH_MAX];
  if (!key_path(p, ".log", false, log, NULL) || rename(tmp_log, log) != 0) {
    unlink(tmp_log);
    return;
  }
  char tail[JIT_PATH_MAX + 16];
  int n = snprintf(tail, sizeof tail, "\n(full log: %s)", log);
  size_t k = err ? strlen(err->msg) : 0;
  if (err && n > 0 && k + (size_t)n < sizeof err->msg) memcpy(err->msg + k, tail, (size_t)n + 1);
}

/* Compiles source into p->so: sources and headers first, then the object
 * under a temporary name, renamed into place when complete. */
static bool compile(JitLang lang, const JitArgv *cmd, const char *source, const CachePaths *p, RtError *err) {
  char src[JIT_PATH_MAX], header[JIT_PATH_MAX] = "", tmp_so[JIT_PATH_MAX], tmp_log[JIT_PATH_MAX];
  if (!key_path(p, lang == JIT_LANG_C ? ".c" : ".cu", false, src, err) ||
      !write_file_atomic(src, source, strlen(source), err))
    return false;
  if (lang == JIT_LANG_CUDA_EMU && !emu_header_path(p->dir, header, err)) return false;
  if (!key_path(p, ".tmp.so", true, tmp_so, err) || !key_path(p, ".tmp.log", true, tmp_log, err)) return false;
  JitArgv full = {0};
  bool ok = full_command(lang, cmd, src, tmp_so, header, &full, err) && jit_cc_run(&full, tmp_log, err);
  jit_argv_free(&full);
  if (!ok) {
    keep_log(p, tmp_log, err);
    unlink(tmp_so);
    return false;
  }
  unlink(tmp_log);
  if (rename(tmp_so, p->so) != 0) {
    char ebuf[128];
    unlink(tmp_so);
    return rt_fail(err, "jit: cannot move the object to %s: %s", p->so, strerror_r(errno, ebuf, sizeof ebuf));
  }
  atomic_fetch_add(&n_compiles, 1);
  return true;
}

/* ------------------------------------------------------------------ */
/* Loading                                                              */

static JitModule *module_new(void *handle, const char *path, RtError *err) {
  JitModule *m = malloc(sizeof *m);
  char *copy = strdup(path);
  if (!m || !copy) {
    free(m);
    free(copy);
    dlclose(handle);
    rt_fail(err, "jit: out of memory");
    return NULL;
  }
  m->handle = handle;
  m->path = copy;
  return m;
}

/* Keeps the OpenMP runtime that a module brought in loaded for good:
 * unloading it with the module would pull the code from under its idle
 * worker threads. Its path comes from where its entry points resolve. */
static void pin_openmp_runtime(void *handle) {
  static atomic_bool pinned;
  static const char *const entries[] = {"GOMP_parallel", "__kmpc_fork_call", NULL};
  for (const char *const *e = entries; !atomic_load(&pinned) && *e; e++) {
    Dl_info info;
    void *sym = dlsym(handle, *e);
    if (sym && dladdr(sym, &info) && info.dli_fname &&
        dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE)) /* never closed */
      atomic_store(&pinned, true);
  }
}

static void *open_object(const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (h) pin_openmp_runtime(h);
  return h;
}

/* The cached object, if there is one and it loads; else NULL and the
 * caller compiles it (again). */
static JitModule *open_cached(const CachePaths *p, RtError *err) {
  if (access(p->so, F_OK) != 0) return NULL;
  void *h = open_object(p->so);
  if (!h) return NULL;
  atomic_fetch_add(&n_hits, 1);
  return module_new(h, p->so, err);
}

static JitModule *load(JitLang lang, const char *source, RtError *err) {
  CachePaths p;
  JitArgv cmd = {0};
  JitModule *m = NULL;
  if (!source) {
    rt_fail(err, "jit: no source");
    goto done;
  }
  if (lang != JIT_LANG_C && lang != JIT_LANG_CUDA_EMU) {
    rt_fail(err, "jit: unknown language %d", (int)lang);
    goto done;
  }
  if (!jit_cache_dir(p.dir, sizeof p.dir)) {
    rt_fail(err, "jit: no cache directory (set IREPA_CACHE_DIR or HOME)");
    goto done;
  }
  if (!jit_cc_command(lang, &cmd, err)) goto done;
  cache_key(lang, &cmd, source, p.key);
  if (!key_path(&p, ".so", false, p.so, err)) goto done;
  if ((m = open_cached(&p, err))) goto done;
  if (!rt_make_dirs(p.dir, 0700, err) || !compile(lang, &cmd, source, &p, err)) goto done;
  void *h = open_object(p.so);
  if (!h) rt_fail(err, "jit: cannot load %s: %s", p.so, dlerror());
  else m = module_new(h, p.so, err);
done:
  jit_argv_free(&cmd);
  return m;
}

JitModule *jit_load(JitLang lang, const char *source, RtError *err) {
  JitModule *m = load(lang, source, err);
  atomic_fetch_add(m ? &n_loads : &n_failures, 1);
  return m;
}

void *jit_symbol(JitModule *m, const char *name, RtError *err) {
  void *sym = dlsym(m->handle, name);
  if (!sym) rt_fail(err, "jit: no symbol '%s' in %s", name, m->path);
  return sym;
}

const char *jit_module_path(const JitModule *m) { return m->path; }

bool jit_emu_check(JitModule *m, RtError *err) {
  int (*take_error)(char *, unsigned long) = (int (*)(char *, unsigned long))dlsym(m->handle, "irepa_emu_error");
  char msg[512];
  if (!take_error || !take_error(msg, sizeof msg)) return true;
  return rt_fail(err, "cuda emulation: %s", msg);
}

void jit_unload(JitModule *m) {
  if (!m) return;
  dlclose(m->handle);
  free(m->path);
  free(m);
}

JitStats jit_stats(void) {
  return (JitStats){.loads = atomic_load(&n_loads),
                    .compiles = atomic_load(&n_compiles),
                    .cache_hits = atomic_load(&n_hits),
                    .failures = atomic_load(&n_failures)};
}
