/* feature_cache.h: the encoder's features of every training item,
 * computed once and kept in a file that is mapped, not read: 60,000
 * Fashion-MNIST images of 64 tokens of width 64 are 983 MB, which the page
 * cache holds or drops as memory allows.
 *
 * The file (docs/formats.md, "Feature caches"): a 4096-byte header (magic
 * "IREPAFC1", then little-endian u64s: version 1, n, tokens, width, the
 * encoder hash, the data hash, a checksum of the data), then the features
 * f32[n, tokens, width] in item order. Its name carries both hashes, so a
 * retrained encoder or other data never meet a stale cache. It is written
 * to a temporary file beside it and renamed into place, so a file under
 * the final name is complete unless damaged later; opening checks the
 * header, the size and the checksum, and rebuilds a file that fails. */
#ifndef IREPA_FEATURE_CACHE_H
#define IREPA_FEATURE_CACHE_H

#include "tensor.h"

typedef struct {
  uint64_t encoder_hash; /* of the encoder weights file's bytes */
  uint64_t data_hash;    /* of the items the features are computed from */
  int64_t n, tokens, width;
} FcKey;

/* Writes the features of items [first, first + count) to
 * out[count * tokens * width]. */
typedef bool (*FcCompute)(void *ctx, int64_t first, int64_t count, float *out, RtError *err);

typedef struct {
  char *path;
  FcKey key;
  const float *data; /* [n, tokens, width], mapped read-only */
  void *map;
  size_t map_len;
} FeatureCache;

/* dir/features-<tag>-<encoder hash>-<data hash>.bin, in hex. */
void fc_path(const char *dir, const char *tag, const FcKey *key, char *buf, size_t size);

/* Opens the cache at `path` for `key`; when the file is missing or fails
 * a check (said on stderr, with the reason), builds it first by calling
 * `compute` on chunks of `chunk` items in order, with a progress line on
 * stderr. *fc is zeroed first; fc_close it also after a failure. */
bool fc_open(FeatureCache *fc, const char *path, const FcKey *key, int64_t chunk, FcCompute compute, void *ctx,
             RtError *err);
void fc_close(FeatureCache *fc);

/* 64-bit FNV-1a over little-endian 8-byte words, then the tail bytes: a
 * fast fingerprint of large data (not cryptographic). Chained through h;
 * start from FC_HASH_INIT. */
enum { FC_HEADER_BYTES = 4096 };
#define FC_HASH_INIT 0xcbf29ce484222325ull
uint64_t fc_hash(uint64_t h, const void *data, size_t n);
/* The hash of a file's bytes. */
bool fc_hash_file(const char *path, uint64_t *h, RtError *err);

#endif
