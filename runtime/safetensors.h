/* safetensors.h: reading and writing the safetensors format: an 8-byte
 * little-endian header length N, N bytes of JSON naming each tensor's
 * dtype, shape and [begin, end) byte span in the data that follows, and an
 * optional "__metadata__" map of strings. Files are validated completely on
 * open (see the list in safetensors.c) and mapped, not copied.
 *
 * dtypes: F64 F32 F16 BF16 I64 I32 U8 BOOL. Tensors read from a file keep
 * the file's byte offsets, which need not be aligned for their dtype: read
 * elements with tensor_get (or memcpy), not through a typed pointer. */
#ifndef IREPA_SAFETENSORS_H
#define IREPA_SAFETENSORS_H

#include "tensor.h"

typedef struct StFile StFile;

/* Opens and validates a file. Its tensors (in data order) borrow a
 * read-only mapping: they are valid until st_close and must not be written
 * or freed. NULL with a message naming the file (and tensor) on error. */
StFile *st_open(const char *path, RtError *err);
/* The same from bytes in memory (copied); `name` is used in messages. */
StFile *st_open_memory(const char *name, const void *bytes, size_t len, RtError *err);
const TensorList *st_tensors(const StFile *f);
/* A "__metadata__" value, or NULL. */
const char *st_metadata(const StFile *f, const char *key);
void st_close(StFile *f);  /* NULL is fine */

/* Writes tensors in the given order, with metadata from a NULL-terminated
 * key, value, key, value, ... array (may be NULL). Atomic: a temporary file
 * beside `path` is written, synced and renamed over it; on failure `path`
 * is left as it was and the temporary file is removed. An existing file's
 * permissions are kept. */
bool st_write(const char *path, Tensor *const *tensors, int n, const char *const *meta,
              RtError *err);

#endif
