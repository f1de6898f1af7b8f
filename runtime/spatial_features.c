/* spatial_features.c: see spatial_features.h. Features from a file are
 * converted to f32 once; from an encoder, the images go through the
 * compiled entry `features` (or `block_features` for a layer) in batches,
 * exactly as `irepa-run train` computes its alignment targets. */
#include "spatial_features.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idx.h"
#include "safetensors.h"
#include "train_cmd.h"

void sp_free(SpFeatures *f) {
  free(f->data), free(f->masks), free(f->images);
  memset(f, 0, sizeof *f);
}

static bool is_float(DType t) { return t == DT_F32 || t == DT_F64 || t == DT_F16 || t == DT_BF16; }

/* The tensor named `name`, or the file's only one. */
static const Tensor *pick(const StFile *sf, const char *path, const char *name, RtError *err) {
  const TensorList *l = st_tensors(sf);
  const Tensor *t = name ? tensorlist_find(l, name) : l->n == 1 ? l->items[0] : NULL;
  if (!t && name) rt_fail(err, "%s: no tensor named '%s'", path, name);
  else if (!t) rt_fail(err, "%s holds %d tensors: name the features with --tensor NAME", path, l->n);
  return t;
}

/* H, W of [N, T, D] features on the given grid, or square. */
static bool grid_of(const char *path, int64_t T, int64_t gh, int64_t gw, int64_t *H, int64_t *W, RtError *err) {
  if (gh > 0) {
    if (gh * gw != T)
      return rt_fail(err, "%s: --grid %lldx%lld is %lld tokens, the features have %lld", path, (long long)gh,
                     (long long)gw, (long long)(gh * gw), (long long)T);
    return *H = gh, *W = gw, true;
  }
  int64_t s = (int64_t)llround(sqrt((double)T));
  if (s * s != T) return rt_fail(err, "%s: %lld tokens are not a square grid: give --grid HxW", path, (long long)T);
  return *H = *W = s, true;
}

bool sp_load_features(const char *path, const char *name, int64_t gh, int64_t gw, SpFeatures *f, RtError *err) {
  memset(f, 0, sizeof *f);
  StFile *sf = st_open(path, err);
  const Tensor *t = sf ? pick(sf, path, name, err) : NULL;
  char ty[96];
  bool ok = t != NULL;
  if (ok && (!is_float(t->dtype) || (t->rank != 3 && t->rank != 4)))
    ok = rt_fail(err, "%s: features must be a float tensor [N, H, W, D] or [N, T, D], found %s", path,
                 tensor_type_str(t, ty, sizeof ty));
  if (ok && t->rank == 4 && gh > 0)
    ok = rt_fail(err, "%s: --grid is for [N, T, D] features; these are [N, H, W, D]", path);
  if (ok && t->rank == 4) f->H = t->shape[1], f->W = t->shape[2];
  if (ok && t->rank == 3) ok = grid_of(path, t->shape[1], gh, gw, &f->H, &f->W, err);
  if (ok) {
    f->n = t->shape[0], f->D = t->shape[t->rank - 1];
    if (f->n < 1 || f->H * f->W < 1 || f->D < 1)
      ok = rt_fail(err, "%s: empty features %s", path, tensor_type_str(t, ty, sizeof ty));
  }
  int64_t numel = ok ? tensor_numel(t) : 0;
  if (ok && !(f->data = malloc(sizeof(float) * (size_t)numel))) ok = rt_fail(err, "out of memory");
  for (int64_t i = 0; ok && i < numel; i++) f->data[i] = (float)tensor_get(t, i);
  st_close(sf);
  return ok;
}

bool sp_load_masks(const char *path, SpFeatures *f, RtError *err) {
  StFile *sf = st_open(path, err);
  const Tensor *t = sf ? tensorlist_find(st_tensors(sf), "masks") : NULL;
  if (sf && !t) t = pick(sf, path, NULL, err);
  int64_t T = f->H * f->W;
  char ty[96];
  bool ok = t != NULL;
  bool shape_ok = ok && ((t->rank == 2 && t->shape[1] == T) ||
                         (t->rank == 3 && t->shape[1] == f->H && t->shape[2] == f->W));
  if (ok && (!shape_ok || t->shape[0] < f->n))
    ok = rt_fail(err, "%s: masks %s do not fit %lld images of %lldx%lld tokens: expected [%lld, %lld] or [%lld, %lld, %lld]",
                 path, tensor_type_str(t, ty, sizeof ty), (long long)f->n, (long long)f->H, (long long)f->W,
                 (long long)f->n, (long long)T, (long long)f->n, (long long)f->H, (long long)f->W);
  if (ok && !(f->masks = malloc((size_t)(f->n * T)))) ok = rt_fail(err, "out of memory");
  for (int64_t i = 0; ok && i < f->n * T; i++) {
    double v = tensor_get(t, i);
    if (v != 0 && v != 1) ok = rt_fail(err, "%s: element %lld is %g; masks hold 0 and 1", path, (long long)i, v);
    else f->masks[i] = v != 0;
  }
  st_close(sf);
  return ok;
}

bool sp_image_masks(SpFeatures *f, double threshold, RtError *err) {
  int64_t S = f->side, ph = f->H ? S / f->H : 0, pw = f->W ? S / f->W : 0, T = f->H * f->W;
  if (!f->images) return rt_fail(err, "no images to make foreground masks from: give --masks FILE");
  if (ph * f->H != S || pw * f->W != S)
    return rt_fail(err, "a %lldx%lld image does not split evenly into the %lldx%lld token grid", (long long)S,
                   (long long)S, (long long)f->H, (long long)f->W);
  if (!(f->masks = calloc((size_t)(f->n * T), 1))) return rt_fail(err, "out of memory");
  /* images are in [-1, 1]: intensity (x + 1) / 2 */
  float cut = (float)(2 * threshold - 1);
  for (int64_t i = 0; i < f->n; i++)
    for (int64_t y = 0; y < S; y++)
      for (int64_t x = 0; x < S; x++)
        if (f->images[(i * S + y) * S + x] > cut) f->masks[i * T + (y / ph) * f->W + x / pw] = 1;
  return true;
}

/* ---- the encoder ---------------------------------------------------------- */

static char *read_file(const char *path, RtError *err) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return rt_fail(err, "%s: %s", path, strerror(errno)), NULL;
  char *buf = NULL;
  long len = fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
  if (len > 0 && fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1)) &&
      fread(buf, 1, (size_t)len, fp) == (size_t)len)
    buf[len] = '\0';
  else free(buf), buf = NULL, rt_fail(err, "%s: empty or unreadable", path);
  fclose(fp);
  return buf;
}

/* "init:SEED": the weights as the init rules make them from SEED. */
static bool weights_are_init(const char *w, uint64_t *seed) {
  if (strncmp(w, "init:", 5)) return false;
  char *end;
  errno = 0;
  *seed = strtoull(w + 5, &end, 10);
  return !errno && end != w + 5 && !*end;
}

bool sp_open_encoder(const SpEncodeOptions *o, Trainer *t, RtError *err) {
  char path[4096];
  memset(t, 0, sizeof *t);
  if (!strcmp(o->encoder, "fmnist-vit")) snprintf(path, sizeof path, "%s/encoders/fmnist_vit.irg", trainer_models_dir());
  else snprintf(path, sizeof path, "%s", o->encoder);
  const char *entry = o->layer > 0 ? "block_features" : "features";
  char *src = read_file(path, err);
  uint64_t seed = 0;
  bool init = weights_are_init(o->weights, &seed);
  bool ok = src && trainer_compile_inference(t, path, src, &entry, 1, o->backend, err) && trainer_init(t, seed, err) &&
            (init || train_load_weights(t, o->weights, err));
  free(src);
  if (!ok) return false;
  const XTensor *out = &irx_entry(&t->prog, entry)->outputs[0];
  if (o->layer > 0 && (out->shape.rank != 4 || o->layer > out->shape.d[1].n))
    return rt_fail(err, "--layer %lld: %s's block_features has %lld blocks", (long long)o->layer, path,
                   out->shape.rank == 4 ? (long long)out->shape.d[1].n : 0LL);
  if (o->layer == 0 && out->shape.rank != 3)
    return rt_fail(err, "%s: the entry features must return [B, T, D]", path);
  return true;
}

/* One batch x[b, 1, S, S] through the entry into dst[b, T, D]. */
static bool encode_batch(const SpEncodeOptions *o, Trainer *t, const float *x, int64_t b, int64_t side, SpFeatures *f,
                         float *dst, RtError *err) {
  int64_t shape[4] = {b, 1, side, side};
  Tensor *in = tensor_new("x", DT_F32, 4, shape, err);
  TensorList inputs = {0}, out = {0};
  bool ok = in && tensorlist_add(&inputs, in, err);
  if (in && !ok) tensor_free(in);
  if (ok) memcpy(in->data, x, in->nbytes);
  ok = ok && trainer_run(t, o->layer > 0 ? "block_features" : "features", &inputs, false, &out, err);
  if (ok) {
    const Tensor *y = out.items[0];
    int64_t T = y->shape[y->rank - 2], D = y->shape[y->rank - 1], L = y->rank == 4 ? y->shape[1] : 1;
    if (!f->D) f->D = D, f->H = f->W = (int64_t)llround(sqrt((double)T));
    if (f->H * f->W != T) ok = rt_fail(err, "the encoder's %lld tokens are not a square grid", (long long)T);
    const float *src = y->data;
    int64_t k = o->layer > 0 ? o->layer - 1 : 0;
    for (int64_t i = 0; ok && i < b; i++) memcpy(dst + i * T * D, src + (i * L + k) * T * D, sizeof(float) * (size_t)(T * D));
  }
  tensorlist_free(&inputs);
  tensorlist_free(&out);
  return ok;
}

bool sp_encode_images(const SpEncodeOptions *o, Trainer *t, const float *x, int64_t n, int64_t side, SpFeatures *f,
                      RtError *err) {
  const XTensor *out = &irx_entry(&t->prog, o->layer > 0 ? "block_features" : "features")->outputs[0];
  int64_t T = out->shape.d[out->shape.rank - 2].n, D = out->shape.d[out->shape.rank - 1].n;
  f->n = n, f->D = 0;
  free(f->data);
  if (!(f->data = malloc(sizeof(float) * (size_t)(n * T * D)))) return rt_fail(err, "out of memory");
  bool ok = true;
  for (int64_t i = 0; ok && i < n; i += o->batch) {
    int64_t b = n - i < o->batch ? n - i : o->batch;
    ok = encode_batch(o, t, x + i * side * side, b, side, f, f->data + i * T * D, err);
  }
  return ok;
}

bool sp_encode(const SpEncodeOptions *o, SpFeatures *f, RtError *err) {
  memset(f, 0, sizeof *f);
  Tensor *images = NULL, *labels = NULL;
  Trainer t;
  memset(&t, 0, sizeof t);
  bool ok = fmnist_load(fmnist_dir(), o->split, &images, &labels, err);
  int64_t side = ok ? images->shape[3] : 0, plane = side * side;
  if (ok && (o->first < 0 || o->count < 1 || o->first + o->count > images->shape[0]))
    ok = rt_fail(err, "images %lld..%lld: the %s split has %lld", (long long)o->first,
                 (long long)(o->first + o->count - 1), o->split, (long long)images->shape[0]);
  if (ok && !(f->images = malloc(sizeof(float) * (size_t)(o->count * plane)))) ok = rt_fail(err, "out of memory");
  if (ok) {
    memcpy(f->images, (const float *)images->data + o->first * plane, sizeof(float) * (size_t)(o->count * plane));
    f->side = side;
  }
  ok = ok && sp_open_encoder(o, &t, err) && sp_encode_images(o, &t, f->images, o->count, side, f, err);
  trainer_free(&t);
  tensor_free(images);
  tensor_free(labels);
  return ok;
}
