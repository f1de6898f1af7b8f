/* train_data.c: see train_data.h. Each data set is opened here and read
 * through a load function that the loader's threads call concurrently:
 * they only read the data set's state. */
#include "train_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "feature_cache.h"
#include "idx.h"

/* ---- the load functions ------------------------------------------------- */

static bool check_grey(const TrainData *d, int64_t item, const uint8_t *chw, size_t plane, RtError *err) {
  for (size_t k = 0; k < plane; k++)
    if (chw[k] != chw[plane + k] || chw[k] != chw[2 * plane + k])
      return rt_fail(err, "%s: a colour image (R, G and B differ), but --enc-type fmnist-vit reads greyscale images; "
                          "use a greyscale folder, or --proj-coeff 0 to train without alignment",
                     d->folder.paths[item]);
  return true;
}

static bool load_image(void *ctx, int64_t item, int64_t pos, float *x, int64_t *y, RtError *err) {
  (void)pos;
  const TrainData *d = ctx;
  size_t plane = (size_t)d->resolution * (size_t)d->resolution;
  uint8_t *chw = malloc(3 * plane);
  if (!chw) return rt_fail(err, "out of memory decoding %s", d->folder.paths[item]);
  bool ok = imf_load(&d->folder, item, d->resolution, chw, err) && (!d->grey || check_grey(d, item, chw, plane, err));
  for (size_t k = 0; ok && k < 3 * plane; k++) x[k] = (float)chw[k] / 127.5f - 1.0f;
  free(chw);
  *y = d->folder.labels[item];
  return ok;
}

static bool load_latent(void *ctx, int64_t item, int64_t pos, float *x, int64_t *y, RtError *err) {
  const TrainData *d = ctx;
  const LatentSet *s = &d->latents;
  float *m = malloc(sizeof(float) * (size_t)(2 * s->channels * s->side * s->side));
  if (!m) return rt_fail(err, "out of memory reading latents");
  lat_read(s, item, m, y);
  lat_sample_posterior(s, m, d->seed, pos, x);
  free(m);
  return true;
}

/* ---- opening ------------------------------------------------------------ */

static int workers(const TrainConfig *c) { return c->num_workers < 1 ? 1 : c->num_workers > 64 ? 64 : (int)c->num_workers; }

static bool open_fmnist(TrainData *d, RtError *err) {
  if (!fmnist_load(fmnist_dir(), "train", &d->images, &d->labels, err)) return false;
  d->tensors = (LoaderTensors){d->images, d->labels};
  if (!loader_tensor_source(&d->src, &d->tensors, err)) return false;
  d->channels = d->images->shape[1], d->side = d->images->shape[2];
  d->nclasses = 10, d->pixels = true, d->workers = 1; /* a copy from memory: one thread keeps up */
  return true;
}

static bool open_folder(TrainData *d, const TrainConfig *c, bool grey, RtError *err) {
  if (!imf_scan(c->data_dir, &d->folder, err)) return false;
  d->resolution = (int)c->resolution, d->grey = grey;
  d->src = (LoaderSource){d->folder.n, 3, {3, c->resolution, c->resolution}, load_image, d};
  d->channels = 3, d->side = c->resolution;
  d->nclasses = d->folder.nclasses, d->pixels = true, d->workers = workers(c);
  return true;
}

static bool open_latents(TrainData *d, const TrainConfig *c, RtError *err) {
  LatentSet *s = &d->latents;
  if (!lat_open(c->data_dir, s, err)) return false;
  if (c->resolution % 8 || s->side != c->resolution / 8)
    return rt_fail(err, "--resolution %lld: %s holds latents of side %lld, which is resolution %lld (side = resolution / 8)",
                   (long long)c->resolution, c->data_dir, (long long)s->side, (long long)(8 * s->side));
  d->src = (LoaderSource){s->n, 3, {s->channels, s->side, s->side}, load_latent, d};
  d->channels = s->channels, d->side = s->side;
  d->nclasses = s->max_label + 1, d->workers = workers(c);
  return true;
}

bool td_open(TrainData *d, const TrainConfig *c, bool grey, RtError *err) {
  memset(d, 0, sizeof *d);
  d->kind = c->dataset;
  d->seed = (uint64_t)c->seed;
  bool ok = !strcmp(c->dataset, "fashion-mnist") ? open_fmnist(d, err)
            : !strcmp(c->dataset, "imagefolder") ? open_folder(d, c, grey, err)
            : !strcmp(c->dataset, "latents")     ? open_latents(d, c, err)
                                                 : rt_fail(err, "--dataset %s: unknown", c->dataset);
  if (ok && d->nclasses > c->num_classes)
    ok = rt_fail(err, "--num-classes %lld, but the %s data set has %lld classes%s%s", (long long)c->num_classes,
                 c->dataset, (long long)d->nclasses, strcmp(c->dataset, "fashion-mnist") ? " in " : "",
                 strcmp(c->dataset, "fashion-mnist") ? c->data_dir : "");
  return ok;
}

void td_close(TrainData *d) {
  tensor_free(d->images);
  tensor_free(d->labels);
  imf_free(&d->folder);
  lat_close(&d->latents);
  memset(d, 0, sizeof *d);
}

/* ---- what the encoder sees ---------------------------------------------- */

static uint64_t hash_i64(uint64_t h, int64_t v) { return fc_hash(h, &v, sizeof v); }

static bool hash_folder(const TrainData *d, uint64_t *out, RtError *err) {
  uint64_t h = hash_i64(FC_HASH_INIT, d->resolution);
  for (int64_t i = 0; i < d->folder.n; i++) {
    const char *p = d->folder.paths[i];
    struct stat st;
    if (stat(p, &st) != 0) return rt_fail(err, "%s: cannot stat it", p);
    h = fc_hash(h, p, strlen(p) + 1);
    h = hash_i64(hash_i64(hash_i64(h, d->folder.labels[i]), (int64_t)st.st_size), (int64_t)st.st_mtime);
  }
  *out = h;
  return true;
}

bool td_hash(const TrainData *d, uint64_t *h, RtError *err) {
  if (d->images) {
    *h = fc_hash(hash_i64(FC_HASH_INIT, tensor_numel(d->images)), d->images->data, d->images->nbytes);
    return true;
  }
  if (d->folder.n > 0) return hash_folder(d, h, err);
  return rt_fail(err, "--dataset %s: no encoder features for it", d->kind);
}

Tensor *td_encoder_input(const TrainData *d, const Tensor *x, RtError *err) {
  if (d->images) return tensor_view("x", x, err);
  if (!d->grey) {
    rt_fail(err, "--dataset %s: no greyscale images for the encoder", d->kind);
    return NULL;
  }
  const int64_t shape[4] = {x->shape[0], 1, x->shape[2], x->shape[3]};
  Tensor *t = tensor_new("x", DT_F32, 4, shape, err);
  if (!t) return NULL;
  size_t plane = (size_t)(shape[2] * shape[3]);
  for (int64_t b = 0; b < shape[0]; b++)
    memcpy((float *)t->data + (size_t)b * plane, (const float *)x->data + (size_t)b * 3 * plane, sizeof(float) * plane);
  return t;
}
