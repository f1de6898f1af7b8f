/* backend.c: choosing a backend by name. */
#include "backend.h"

#include <string.h>

#include "cuda_api.h"

Backend *backend_open(const char *name, RtError *err) {
  if (!strcmp(name, "c")) return backend_host_open(false, err);
  if (!strcmp(name, "cuda-emu")) return backend_host_open(true, err);
  if (!strcmp(name, "cuda")) return backend_cuda_open(err);
  if (!strcmp(name, "auto")) {
    RtError ignored;
    if (cu_available(&ignored)) return backend_cuda_open(err);
    return backend_host_open(false, err);
  }
  rt_fail(err, "unknown backend '%s' (c, cuda, cuda-emu, auto)", name);
  return NULL;
}

void backend_close(Backend *b) {
  if (b) b->destroy(b);
}
