/* cubin_cache.c: NVRTC output cached on disk like the JIT's shared
 * objects, keyed by a hash of the NVRTC version, the architecture and the
 * source: compiling a big program's CUDA kernels takes NVRTC minutes, and
 * the same program is loaded again and again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cuda_api.h"
#include "fileio.h"
#include "jit.h"

/* The text and its NUL, a separator: "ab"+"c" must not hash as "a"+"bc". */
static uint64_t hash_text(uint64_t h, const char *s) { return fnv1a64_update(h, s, strlen(s) + 1); }

static bool read_cached(const char *path, void **data, size_t *size) {
  FILE *f = fopen(path, "rb");
  struct stat st;
  if (!f) return false;
  char *buf = NULL;
  bool ok = fstat(fileno(f), &st) == 0 && st.st_size > 4 && (buf = malloc((size_t)st.st_size));
  ok = ok && fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size && !memcmp(buf, "\x7f" "ELF", 4);
  fclose(f);
  if (!ok) {
    free(buf); /* unreadable or not a CUBIN: compiled again and replaced */
    return false;
  }
  *data = buf;
  *size = (size_t)st.st_size;
  return true;
}


bool rtc_compile_cached(const char *source, const char *name, const char *arch, void **cubin, size_t *size,
                        RtError *err) {
  int major = 0, minor = 0;
  if (!rtc_available(err)) return false;
  rtc_version(&major, &minor);
  char version[32], dir[1024], path[1200];
  snprintf(version, sizeof version, "nvrtc %d.%d", major, minor);
  uint64_t h = hash_text(hash_text(hash_text(FNV1A64_INIT, version), arch), source);
  const char *cache = jit_cache_dir(dir, sizeof dir);
  if (cache) {
    snprintf(path, sizeof path, "%s/%016llx-%s.cubin", cache, (unsigned long long)h, arch);
    if (read_cached(path, cubin, size)) return true;
  }
  if (!rtc_compile(source, name, arch, NULL, 0, cubin, size, err)) return false;
  if (cache && rt_make_dirs(cache, 0700, NULL)) {
    const void *chunks[1] = {*cubin};
    RtError ignored; /* a cache that cannot be written only costs time */
    (void)rt_write_atomic(path, chunks, size, 1, &ignored);
  }
  return true;
}
