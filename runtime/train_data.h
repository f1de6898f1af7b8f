/* train_data.h: the data sets of `irepa-run train` (--dataset) as loader
 * sources (loader.h), each item the x0 the SiT trains on and its label:
 *
 *   fashion-mnist  Fashion-MNIST's 60,000 training images, f32[1, 32, 32]
 *                  in [-1, 1] (idx.h), in memory;
 *   imagefolder    --data-dir with one sub-folder per class (imagefolder.h),
 *                  decoded and ADM-centre-cropped to --resolution on the
 *                  loader threads, f32[3, R, R] = u8 / 127.5 - 1;
 *   latents        --data-dir of latent shards (latents.h), f32[C, L, L] =
 *                  sample_posterior(moments), L = --resolution / 8.
 *
 * Pixel data can feed the Fashion-MNIST encoder (1-channel 32x32) when it
 * is greyscale: Fashion-MNIST, or an image folder opened `grey`, whose
 * every image must then have R = G = B (an error names any other). */
#ifndef IREPA_TRAIN_DATA_H
#define IREPA_TRAIN_DATA_H

#include "imagefolder.h"
#include "latents.h"
#include "loader.h"
#include "train_config.h"

typedef struct {
  const char *kind;        /* the --dataset name */
  LoaderSource src;        /* x0 and label of each item */
  int64_t channels, side;  /* x0 is f32[channels, side, side] */
  int64_t nclasses;        /* labels are in [0, nclasses) */
  bool pixels;             /* images (not latents): an encoder can read them */
  int workers;             /* loader threads worth starting */
  /* the data behind src */
  Tensor *images, *labels; /* fashion-mnist */
  LoaderTensors tensors;
  ImageFolder folder;      /* imagefolder */
  int resolution;
  bool grey;
  LatentSet latents;       /* latents */
  uint64_t seed;
} TrainData;

/* Opens c->dataset and checks it against the options (--num-classes,
 * --resolution). *d is zeroed first; td_close it also after a failure. */
bool td_open(TrainData *d, const TrainConfig *c, bool grey, RtError *err);

/* A fingerprint of the items as an encoder sees them, for the feature
 * cache's name: the pixels of Fashion-MNIST; the folder's file list,
 * sizes, modification times and the resolution of an image folder. */
bool td_hash(const TrainData *d, uint64_t *h, RtError *err);

/* The encoder's input for a batch x of pixel data: f32[B, 1, S, S], a view
 * of x for Fashion-MNIST, channel 0 of a grey folder's x. */
Tensor *td_encoder_input(const TrainData *d, const Tensor *x, RtError *err);

void td_close(TrainData *d);

#endif
