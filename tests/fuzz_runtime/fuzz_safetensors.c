/* fuzz_safetensors.c: libFuzzer target for the safetensors reader. Every
 * input is opened from memory (a malloc'ed copy, so ASan sees a read past
 * its end); whatever opens is walked element by element, and its metadata
 * looked up, so a validation gap shows as an out-of-bounds read. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  RtError err;
  StFile *f = st_open_memory("fuzz.safetensors", data, size, &err);
  if (!f) return 0;
  const TensorList *l = st_tensors(f);
  volatile double sink = 0;
  for (int i = 0; i < l->n; i++) {
    const Tensor *t = l->items[i];
    if (tensorlist_find(l, t->name) != t) __builtin_trap(); /* names are unique */
    for (int64_t k = 0; k < tensor_numel(t); k++) sink += tensor_get(t, k);
  }
  sink += st_metadata(f, "format") ? (double)strlen(st_metadata(f, "format")) : 0;
  (void)sink;
  st_close(f);
  return 0;
}
