/* fuzz_safetensors.c: libFuzzer target for the safetensors reader. Every
 * input is opened from memory; whatever opens is walked element by element,
 * so a validation gap shows as an out-of-bounds read under ASan. */
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  RtError err;
  StFile *f = st_open_memory("fuzz.safetensors", data, size, &err);
  if (!f) return 0;
  const TensorList *l = st_tensors(f);
  volatile double sink = 0;
  for (int i = 0; i < l->n; i++)
    for (int64_t k = 0; k < tensor_numel(l->items[i]); k++) sink += tensor_get(l->items[i], k);
  (void)sink;
  st_close(f);
  return 0;
}
