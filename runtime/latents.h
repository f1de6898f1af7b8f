/* latents.h: the reference's SD-VAE latent data set (spec/training.md §6)
 * as tools/convert_latents.py writes it: DIR/latents-00000.safetensors,
 * latents-00001..., each with `moments` f32[n, 2C, L, L] (the posterior's
 * mean, channels 0..C-1, and its standard deviation, channels C..2C-1),
 * `labels` i64[n], and the data set's standardisation `latents_scale`,
 * `latents_bias` f32[C] (docs/formats.md, "Latent shards"). Shards are
 * mapped, validated completely when opened, and read item by item.
 *
 * Training takes x0 = sample_posterior(moments) (spec/heads_and_losses.md
 * §4): z = mean + std * n, n ~ N(0, 1), then x0 = (z - bias) * scale per
 * channel, in f32. */
#ifndef IREPA_LATENTS_H
#define IREPA_LATENTS_H

#include "safetensors.h"

enum { LAT_MAX_CHANNELS = 64 };

typedef struct {
  char *dir;
  int nshards;
  StFile **files;
  const Tensor **moments, **labels; /* [nshards], borrowed from the files */
  int64_t *start;                   /* [nshards + 1]: shard i holds items start[i] .. start[i+1]-1 */
  int64_t n;                        /* items */
  int64_t channels, side;           /* C and L: moments are [2C, L, L], x0 [C, L, L] */
  float scale[LAT_MAX_CHANNELS], bias[LAT_MAX_CHANNELS];
  int64_t max_label;
} LatentSet;

/* Opens and validates every shard of dir (names, consecutive numbering,
 * format, dtypes, shapes, counts, equal constants, labels >= 0; a
 * truncated file is refused by the safetensors reader). *s is zeroed
 * first; lat_close it also after a failure. */
bool lat_open(const char *dir, LatentSet *s, RtError *err);

/* Item i's moments into moments[2C * L * L] and its label. */
void lat_read(const LatentSet *s, int64_t i, float *moments, int64_t *label);

/* x0[C * L * L] from moments, with n drawn from (seed, stream
 * "sample_posterior", pos * C * L * L + element): a pure function of the
 * run's seed and the sample's position in the run. */
void lat_sample_posterior(const LatentSet *s, const float *moments, uint64_t seed, int64_t pos, float *x0);

void lat_close(LatentSet *s);

#endif
