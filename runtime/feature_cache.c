/* feature_cache.c: see feature_cache.h. Building streams the features to
 * a temporary file chunk by chunk (constant memory, whatever n), writes
 * the header last, syncs and renames; opening maps the file and checks it
 * against the key before any of it is used. */
#include "feature_cache.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char MAGIC[8] = {'I', 'R', 'E', 'P', 'A', 'F', 'C', '1'};
enum { VERSION = 1, NFIELDS = 7 }; /* version n tokens width encoder data checksum */

#define FNV_PRIME 0x100000001b3ull

uint64_t fc_hash(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w = 0;
    for (int k = 7; k >= 0; k--) w = w << 8 | p[i + (size_t)k]; /* little-endian on any host */
    h = (h ^ w) * FNV_PRIME;
  }
  for (; i < n; i++) h = (h ^ p[i]) * FNV_PRIME;
  return h;
}

bool fc_hash_file(const char *path, uint64_t *h, RtError *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return rt_fail(err, "%s: %s", path, strerror(errno));
  enum { BUF = 1 << 16 };
  unsigned char *buf = malloc(BUF);
  uint64_t acc = FC_HASH_INIT;
  size_t k;
  /* full reads are multiples of 8 bytes, so chunking does not change the hash */
  while (buf && (k = fread(buf, 1, BUF, f)) > 0) acc = fc_hash(acc, buf, k);
  bool ok = !buf ? rt_fail(err, "out of memory") : !ferror(f) ? true : rt_fail(err, "%s: read error", path);
  free(buf);
  fclose(f);
  *h = acc;
  return ok;
}

void fc_path(const char *dir, const char *tag, const FcKey *key, char *buf, size_t size) {
  snprintf(buf, size, "%s/features-%s-%016llx-%016llx.bin", dir, tag, (unsigned long long)key->encoder_hash,
           (unsigned long long)key->data_hash);
}

static size_t data_bytes(const FcKey *k) { return sizeof(float) * (size_t)(k->n * k->tokens * k->width); }

/* ---- the header --------------------------------------------------------- */

static void put64(unsigned char *p, uint64_t v) {
  for (int k = 0; k < 8; k++) p[k] = (unsigned char)(v >> (8 * k));
}

static uint64_t get64(const unsigned char *p) {
  uint64_t v = 0;
  for (int k = 7; k >= 0; k--) v = v << 8 | p[k];
  return v;
}

static void make_header(unsigned char *h, const FcKey *k, uint64_t checksum) {
  uint64_t f[NFIELDS] = {VERSION, (uint64_t)k->n, (uint64_t)k->tokens, (uint64_t)k->width, k->encoder_hash,
                         k->data_hash, checksum};
  memset(h, 0, FC_HEADER_BYTES);
  memcpy(h, MAGIC, 8);
  for (int i = 0; i < NFIELDS; i++) put64(h + 8 + 8 * i, f[i]);
}

/* Why the mapped file does not hold the features of k, or NULL. */
static const char *check_file(const unsigned char *m, size_t len, const FcKey *k, char *why, size_t size) {
  if (len < FC_HEADER_BYTES) return snprintf(why, size, "truncated: %zu bytes, shorter than its header", len), why;
  if (memcmp(m, MAGIC, 8)) return "not a feature cache (bad magic)";
  if (get64(m + 8) != VERSION) return "another version of the format";
  const uint64_t want[NFIELDS - 2] = {(uint64_t)k->n, (uint64_t)k->tokens, (uint64_t)k->width, k->encoder_hash,
                                      k->data_hash};
  for (int i = 0; i < NFIELDS - 2; i++)
    if (get64(m + 16 + 8 * i) != want[i]) return "its header names other data or another encoder";
  size_t expect = FC_HEADER_BYTES + data_bytes(k);
  if (len != expect)
    return snprintf(why, size, "truncated or overlong: %zu bytes, expected %zu", len, expect), why;
  if (fc_hash(FC_HASH_INIT, m + FC_HEADER_BYTES, data_bytes(k)) != get64(m + 8 + 8 * (NFIELDS - 1)))
    return "corrupt: the checksum of its data does not match";
  return NULL;
}

/* ---- opening ------------------------------------------------------------ */

/* Maps path and checks it: true and *fc set when it holds the features;
 * false with *missing or *why otherwise (not an error yet). */
static bool try_map(FeatureCache *fc, const char *path, const FcKey *k, bool *missing, char *why, size_t size) {
  int fd = open(path, O_RDONLY);
  *missing = fd < 0 && errno == ENOENT;
  if (fd < 0) return snprintf(why, size, "%s", strerror(errno)), false;
  struct stat st;
  void *m = MAP_FAILED;
  if (fstat(fd, &st) != 0) snprintf(why, size, "cannot stat it: %s", strerror(errno));
  else if (st.st_size == 0) snprintf(why, size, "empty");
  else if ((m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED)
    snprintf(why, size, "cannot map it: %s", strerror(errno));
  close(fd);
  if (m == MAP_FAILED) return false;
  const char *bad = check_file(m, (size_t)st.st_size, k, why, size);
  if (bad) {
    if (bad != why) snprintf(why, size, "%s", bad);
    munmap(m, (size_t)st.st_size);
    return false;
  }
  fc->map = m;
  fc->map_len = (size_t)st.st_size;
  fc->data = (const float *)((const unsigned char *)m + FC_HEADER_BYTES);
  return true;
}

/* ---- building ----------------------------------------------------------- */

static void progress(int64_t done, int64_t n, double t0) {
  double rate = (double)done / (monotonic_seconds() - t0 + 1e-9), eta = (double)(n - done) / (rate > 0 ? rate : 1);
  fprintf(stderr, "\rtrain: caching encoder features: %lld/%lld items (%d%%), %.0f items/s, ETA %dm%02ds   ",
          (long long)done, (long long)n, (int)(100 * done / n), rate, (int)(eta / 60), (int)eta % 60);
}

static bool write_all(FILE *f, const void *p, size_t n, const char *path, RtError *err) {
  return fwrite(p, 1, n, f) == n ? true : rt_fail(err, "%s: cannot write: %s", path, strerror(errno));
}

/* The features of every item, streamed after a placeholder header. */
static bool write_data(FILE *f, const char *tmp, const FcKey *k, int64_t chunk, FcCompute compute, void *ctx,
                       uint64_t *checksum, RtError *err) {
  size_t per = (size_t)(k->tokens * k->width);
  if (per % 2 && chunk % 2) chunk++; /* every chunk but the last a multiple of 8 bytes: hashed as one */
  float *buf = malloc(sizeof(float) * per * (size_t)chunk);
  if (!buf) return rt_fail(err, "out of memory for %lld items of features", (long long)chunk);
  static const unsigned char zero[FC_HEADER_BYTES];
  bool ok = write_all(f, zero, sizeof zero, tmp, err);
  uint64_t h = FC_HASH_INIT;
  double t0 = monotonic_seconds();
  for (int64_t first = 0; ok && first < k->n; first += chunk) {
    int64_t count = k->n - first < chunk ? k->n - first : chunk;
    size_t bytes = sizeof(float) * per * (size_t)count; /* a multiple of 8 unless it is the last */
    ok = compute(ctx, first, count, buf, err) && write_all(f, buf, bytes, tmp, err);
    h = fc_hash(h, buf, bytes);
    progress(first + count, k->n, t0);
  }
  fputc('\n', stderr);
  free(buf);
  *checksum = h;
  return ok;
}

static bool finish_file(FILE *f, const char *tmp, const FcKey *k, uint64_t checksum, RtError *err) {
  unsigned char header[FC_HEADER_BYTES];
  make_header(header, k, checksum);
  bool ok = fseek(f, 0, SEEK_SET) == 0 && write_all(f, header, sizeof header, tmp, err);
  if (ok && (fflush(f) != 0 || fsync(fileno(f)) != 0)) ok = rt_fail(err, "%s: cannot write: %s", tmp, strerror(errno));
  return ok;
}

static bool build(const char *path, const FcKey *k, int64_t chunk, FcCompute compute, void *ctx, RtError *err) {
  size_t len = strlen(path) + 16;
  char *tmp = malloc(len);
  if (!tmp) return rt_fail(err, "out of memory");
  snprintf(tmp, len, "%s.tmpXXXXXX", path);
  int fd = mkstemp(tmp);
  mode_t mask = umask(0); /* mkstemp makes 0600; give the cache the usual 0666 & ~umask */
  umask(mask);
  if (fd >= 0) fchmod(fd, 0666 & ~mask);
  FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
  bool ok = f ? true : rt_fail(err, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
  if (!f && fd >= 0) close(fd);
  uint64_t checksum = 0;
  ok = ok && write_data(f, tmp, k, chunk, compute, ctx, &checksum, err) && finish_file(f, tmp, k, checksum, err);
  if (f && fclose(f) != 0 && ok) ok = rt_fail(err, "%s: cannot close: %s", tmp, strerror(errno));
  if (ok && rename(tmp, path) != 0) ok = rt_fail(err, "%s: cannot rename the new cache into place: %s", path, strerror(errno));
  if (!ok && fd >= 0) unlink(tmp);
  free(tmp);
  return ok;
}

bool fc_open(FeatureCache *fc, const char *path, const FcKey *key, int64_t chunk, FcCompute compute, void *ctx,
             RtError *err) {
  memset(fc, 0, sizeof *fc);
  fc->key = *key;
  if (!(fc->path = strdup(path))) return rt_fail(err, "out of memory");
  if (key->n < 1 || key->tokens < 1 || key->width < 1 || chunk < 1)
    return rt_fail(err, "%s: no features to cache (%lld items of %lld x %lld)", path, (long long)key->n,
                   (long long)key->tokens, (long long)key->width);
  char why[256];
  bool missing;
  if (try_map(fc, path, key, &missing, why, sizeof why)) return true;
  if (missing)
    fprintf(stderr, "train: building the feature cache %s (%.1f MB)\n", path, (double)data_bytes(key) / 1e6);
  else fprintf(stderr, "train: the feature cache %s is unusable (%s); rebuilding it\n", path, why);
  if (!build(path, key, chunk, compute, ctx, err)) return false;
  if (try_map(fc, path, key, &missing, why, sizeof why)) return true;
  return rt_fail(err, "%s: the feature cache just written fails its check: %s", path, why);
}

void fc_close(FeatureCache *fc) {
  if (fc->map) munmap(fc->map, fc->map_len);
  free(fc->path);
  memset(fc, 0, sizeof *fc);
}
