/* latents.c: see latents.h. lat_open lists the shard names, opens each
 * shard (st_open checks the file's structure and spans) and checks what
 * the trainer relies on; after that, reading an item cannot fail. */
#include "latents.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

static const char FORMAT[] = "irepa-latents-1";
static const char HINT[] = "(tools/convert_latents.py writes latent shards; docs/formats.md)";
enum { MAX_SHARDS = 100000 };

/* latents-NNNNN.safetensors -> NNNNN, else -1. */
static long shard_number(const char *name) {
  if (strncmp(name, "latents-", 8) || strlen(name) != 8 + 5 + 12 || strcmp(name + 13, ".safetensors")) return -1;
  long v = 0;
  for (int k = 8; k < 13; k++) {
    if (name[k] < '0' || name[k] > '9') return -1;
    v = v * 10 + (name[k] - '0');
  }
  return v;
}

/* How many shards: numbers 0..k-1, each present once. */
static bool count_shards(const char *dir, int *count, RtError *err) {
  DIR *d = opendir(dir);
  if (!d) return rt_fail(err, "latents: %s: %s %s", dir, strerror(errno), HINT);
  long max = -1, found = 0;
  for (struct dirent *e; (e = readdir(d));) {
    long v = shard_number(e->d_name);
    if (v < 0) continue;
    found++;
    if (v > max) max = v;
  }
  closedir(d);
  if (found == 0) return rt_fail(err, "latents: %s has no latents-00000.safetensors %s", dir, HINT);
  if (max + 1 != found) return rt_fail(err, "latents: %s: shards numbered up to %05ld but only %ld present: some are missing", dir, max, found);
  *count = (int)found;
  return true;
}

static bool alloc_shards(LatentSet *s, int n, RtError *err) {
  s->files = calloc((size_t)n, sizeof *s->files);
  s->moments = calloc((size_t)n, sizeof *s->moments);
  s->labels = calloc((size_t)n, sizeof *s->labels);
  s->start = calloc((size_t)n + 1, sizeof *s->start);
  s->nshards = n;
  return s->files && s->moments && s->labels && s->start ? true : rt_fail(err, "out of memory");
}

static const Tensor *find(const StFile *f, const char *path, const char *name, DType dt, int rank, RtError *err) {
  const Tensor *t = tensorlist_find(st_tensors(f), name);
  char have[128];
  if (!t) rt_fail(err, "%s: no tensor '%s' %s", path, name, HINT);
  else if (t->dtype != dt || t->rank != rank)
    rt_fail(err, "%s: tensor '%s' is %s; expected %s of rank %d", path, name, tensor_type_str(t, have, sizeof have),
            dt == DT_F32 ? "f32" : "i64", rank);
  else return t;
  return NULL;
}

/* The constants of the first shard, or a check that they are the same. */
static bool check_constants(LatentSet *s, int i, const Tensor *scale, const Tensor *bias, const char *path,
                            RtError *err) {
  if (scale->shape[0] != s->channels || bias->shape[0] != s->channels)
    return rt_fail(err, "%s: latents_scale and latents_bias must have %lld values (one per latent channel)", path,
                   (long long)s->channels);
  for (int64_t c = 0; c < s->channels; c++) {
    float sc = (float)tensor_get(scale, c), bi = (float)tensor_get(bias, c);
    if (i == 0) s->scale[c] = sc, s->bias[c] = bi;
    else if (sc != s->scale[c] || bi != s->bias[c])
      return rt_fail(err, "%s: latents_scale/latents_bias differ from those of latents-00000.safetensors", path);
  }
  return true;
}

static bool check_shape(LatentSet *s, int i, const Tensor *m, const Tensor *y, const char *path, RtError *err) {
  int64_t n = m->shape[0], c2 = m->shape[1];
  if (n < 1 || c2 < 2 || c2 % 2 || c2 / 2 > LAT_MAX_CHANNELS || m->shape[2] < 1 || m->shape[3] != m->shape[2])
    return rt_fail(err, "%s: moments [%lld, %lld, %lld, %lld]: expected [n >= 1, 2C, L, L] with C <= %d", path,
                   (long long)n, (long long)c2, (long long)m->shape[2], (long long)m->shape[3], LAT_MAX_CHANNELS);
  if (y->shape[0] != n)
    return rt_fail(err, "%s: %lld labels for %lld moments", path, (long long)y->shape[0], (long long)n);
  if (i == 0) s->channels = c2 / 2, s->side = m->shape[2];
  else if (c2 / 2 != s->channels || m->shape[2] != s->side)
    return rt_fail(err, "%s: moments of %lld channels of side %lld; latents-00000.safetensors has %lld of side %lld",
                   path, (long long)c2, (long long)m->shape[2], (long long)(2 * s->channels), (long long)s->side);
  return true;
}

static bool check_labels(LatentSet *s, const Tensor *y, const char *path, RtError *err) {
  for (int64_t k = 0; k < y->shape[0]; k++) {
    int64_t v = (int64_t)tensor_get(y, k);
    if (v < 0) return rt_fail(err, "%s: label %lld of item %lld is negative", path, (long long)v, (long long)k);
    if (v > s->max_label) s->max_label = v;
  }
  return true;
}

static bool open_shard(LatentSet *s, int i, RtError *err) {
  char path[4200];
  snprintf(path, sizeof path, "%s/latents-%05d.safetensors", s->dir, i);
  StFile *f = s->files[i] = st_open(path, err);
  if (!f) return false;
  const char *format = st_metadata(f, "format");
  if (!format || strcmp(format, FORMAT))
    return rt_fail(err, "%s: not a latent shard (metadata format is not %s) %s", path, FORMAT, HINT);
  const Tensor *m = find(f, path, "moments", DT_F32, 4, err), *y = m ? find(f, path, "labels", DT_I64, 1, err) : NULL;
  const Tensor *sc = y ? find(f, path, "latents_scale", DT_F32, 1, err) : NULL;
  const Tensor *bi = sc ? find(f, path, "latents_bias", DT_F32, 1, err) : NULL;
  if (!bi || !check_shape(s, i, m, y, path, err) || !check_constants(s, i, sc, bi, path, err) ||
      !check_labels(s, y, path, err))
    return false;
  s->moments[i] = m, s->labels[i] = y;
  s->start[i + 1] = s->start[i] + m->shape[0];
  return true;
}

bool lat_open(const char *dir, LatentSet *s, RtError *err) {
  memset(s, 0, sizeof *s);
  s->max_label = -1;
  int n = 0;
  if (!(s->dir = strdup(dir))) return rt_fail(err, "out of memory");
  if (!count_shards(dir, &n, err) || !alloc_shards(s, n, err)) return false;
  for (int i = 0; i < n; i++)
    if (!open_shard(s, i, err)) return false;
  s->n = s->start[n];
  return true;
}

static int shard_of(const LatentSet *s, int64_t i) {
  int lo = 0, hi = s->nshards - 1; /* the last shard whose start <= i */
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (s->start[mid] <= i) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

void lat_read(const LatentSet *s, int64_t i, float *moments, int64_t *label) {
  int k = shard_of(s, i);
  int64_t j = i - s->start[k];
  size_t per = (size_t)(2 * s->channels * s->side * s->side);
  /* memcpy: a mapped tensor need not be aligned for its dtype */
  memcpy(moments, (const char *)s->moments[k]->data + sizeof(float) * per * (size_t)j, sizeof(float) * per);
  *label = (int64_t)tensor_get(s->labels[k], j);
}

void lat_sample_posterior(const LatentSet *s, const float *moments, uint64_t seed, int64_t pos, float *x0) {
  const size_t plane = (size_t)(s->side * s->side), n = (size_t)s->channels * plane;
  rng_fill_normal_f32(x0, n, seed, rng_fnv1a64("sample_posterior"), (uint64_t)pos * n);
  for (size_t c = 0; c < (size_t)s->channels; c++)
    for (size_t k = c * plane; k < (c + 1) * plane; k++) {
      float z = moments[k] + moments[n + k] * x0[k];
      x0[k] = (z - s->bias[c]) * s->scale[c];
    }
}

void lat_close(LatentSet *s) {
  for (int i = 0; s->files && i < s->nshards; i++) st_close(s->files[i]);
  free(s->files);
  free((void *)s->moments);
  free((void *)s->labels);
  free(s->start);
  free(s->dir);
  memset(s, 0, sizeof *s);
}
