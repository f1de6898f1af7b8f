/* cuda_api.c: what the three CUDA parts (cuda_rtc.c, cuda_drv.c,
 * cuda_blas.c) share: finding a library among candidate names, binding its
 * symbols into a table of function pointers, the load-once state, and
 * cu_api_shutdown. Nothing here knows a CUDA type. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_api.h"
#include "cuda_dl.h"

/* Appends s to the list in buf (", "-separated), truncating quietly: the
 * list only ever goes into an error message. */
/* dlerror() into buf; it can be NULL when a loader hook failed silently. */
static void last_dlerror(char *buf, size_t size) {
  const char *e = dlerror();
  snprintf(buf, size, "%s", e ? e : "dlopen failed, no reason given");
}

static void list_append(char *buf, size_t size, const char *s) {
  size_t used = strlen(buf);
  if (used + 1 >= size) return;
  snprintf(buf + used, size - used, "%s%s", used ? ", " : "", s);
}

/* RTLD_NODELETE: dlclose balances our dlopen but leaves the library mapped.
 * NVRTC and cuBLAS carry a static C++ runtime that allocates at load time
 * and never frees (libstdc++'s exception pool, 71 KiB each); unmapping them
 * would orphan that memory on every shutdown/reload cycle, and CUDA
 * libraries are not meant to be unloaded from a live process anyway. */
static void *open_one(const char *path) {
  return dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
}

void *cuda_dl_open(const char *env, const char *const *names, RtError *err) {
  char tried[640] = "", last[320] = "", item[256];
  const char *override = env ? getenv(env) : NULL;
  if (override && *override) {
    void *h = open_one(override);
    if (h) return h;
    last_dlerror(last, sizeof last);
    snprintf(item, sizeof item, "$%s=%s", env, override);
    list_append(tried, sizeof tried, item);
  }
  for (int i = 0; names[i]; i++) {
    void *h = open_one(names[i]);
    if (h) return h;
    last_dlerror(last, sizeof last);
    list_append(tried, sizeof tried, names[i]);
  }
  rt_fail(err, "tried %s (%s)", tried, last);
  return NULL;
}

bool cuda_dl_bind(void *lib, const char *libname, const CudaSym *syms, size_t n, RtError *err) {
  for (size_t i = 0; i < n; i++) {
    dlerror();
    void *p = dlsym(lib, syms[i].name);
    if (!p && !syms[i].optional)
      return rt_fail(err, "%s has no symbol %s (too old a version?)", libname, syms[i].name);
    /* memcpy, not a cast: ISO C has no conversion from void * to a function
     * pointer, POSIX guarantees they have the same representation. */
    memcpy(syms[i].slot, &p, sizeof p);
  }
  return true;
}

bool cuda_lib_ensure(CudaLib *l, CudaLoadFn load, RtError *err) {
  if (atomic_load_explicit(&l->ready, memory_order_acquire)) return true;
  pthread_mutex_lock(&l->lock);
  if (!l->tried) {
    l->tried = true;
    l->why.msg[0] = '\0';
    if (load(l, &l->why)) atomic_store_explicit(&l->ready, true, memory_order_release);
  }
  bool ok = atomic_load_explicit(&l->ready, memory_order_relaxed);
  if (!ok) rt_fail(err, "%s", l->why.msg);
  pthread_mutex_unlock(&l->lock);
  return ok;
}

void cuda_lib_close(CudaLib *l, void *table, size_t size) {
  pthread_mutex_lock(&l->lock);
  atomic_store_explicit(&l->ready, false, memory_order_release);
  if (l->lib) dlclose(l->lib);
  l->lib = NULL;
  l->tried = false;
  l->why.msg[0] = '\0';
  memset(table, 0, size);
  pthread_mutex_unlock(&l->lock);
}

/* cuBLAS first: its embedded CUDA runtime sits on top of the driver. */
void cu_api_shutdown(void) {
  cuda_blas_shutdown();
  cuda_drv_shutdown();
  cuda_rtc_shutdown();
}
