/* spatial_features.h: the patch tokens and foreground masks that the
 * spatial metrics (spatial_metrics.h) and the spatial-normalisation figure
 * read: from a safetensors tensor of any source, or computed here by an
 * .irg encoder (the Fashion-MNIST ViT by default) on Fashion-MNIST images
 * through a compiled program. */
#ifndef IREPA_SPATIAL_FEATURES_H
#define IREPA_SPATIAL_FEATURES_H

#include "trainer.h"

typedef struct {
  float *data;     /* [n, H·W, D], malloc'ed */
  int64_t n, H, W, D;
  uint8_t *masks;  /* [n, H·W] of 0/1, or NULL */
  float *images;   /* [n, 1, S, S] in [-1, 1] when computed from images, else NULL */
  int64_t side;    /* S */
} SpFeatures;

/* The tensor of `path` (the one named `name`, or the file's only tensor):
 * f32/f64/f16/bf16 [N, H, W, D], or [N, T, D] on the grid grid_h × grid_w
 * (0 × 0: square, H = W = √T, an error when T is not a square). */
bool sp_load_features(const char *path, const char *name, int64_t grid_h, int64_t grid_w, SpFeatures *f,
                      RtError *err);
/* Masks from `path`'s tensor "masks" (else its only tensor), [N, T] or
 * [N, H, W] matching f, any
 * dtype, nonzero = foreground; the first f->n are kept. */
bool sp_load_masks(const char *path, SpFeatures *f, RtError *err);
/* Foreground masks from f->images: a token is foreground when any pixel
 * of its patch (the image side divided evenly by the grid) exceeds
 * `threshold` in [0, 1] intensity; the max-pooling of a thresholded image,
 * as the reference pools its saliency masks to the token grid. */
bool sp_image_masks(SpFeatures *f, double threshold, RtError *err);

typedef struct {
  const char *encoder;   /* "fmnist-vit" or a path to an .irg */
  const char *weights;   /* safetensors, or "init:SEED" for initialised weights */
  const char *split;     /* "t10k" or "train" */
  int64_t first, count;  /* images [first, first + count) of the split */
  int64_t layer;         /* 0: the entry `features`; K: block K of `block_features` */
  const char *backend;
  int64_t batch;
} SpEncodeOptions;

/* Runs the encoder on the images and fills f (masks left NULL). */
bool sp_encode(const SpEncodeOptions *o, SpFeatures *f, RtError *err);

/* The encoder compiled with the entry it needs and its weights loaded. */
bool sp_open_encoder(const SpEncodeOptions *o, Trainer *t, RtError *err);
/* Tokens [n, T, D] of images x [n, 1, S, S] through an open encoder, in
 * batches of o->batch. */
bool sp_encode_images(const SpEncodeOptions *o, Trainer *t, const float *x, int64_t n, int64_t side, SpFeatures *f,
                      RtError *err);

void sp_free(SpFeatures *f);

#endif
