/* loader.h: batches of an in-memory image dataset, assembled on a
 * background thread a few steps ahead of the training loop. The order is
 * a function of (seed, epoch) alone: epoch e visits the images in a
 * Fisher-Yates permutation keyed by both, and drops the last partial
 * batch, so batch k of a run is the same whether the run started at 0 or
 * resumed at k. */
#ifndef IREPA_LOADER_H
#define IREPA_LOADER_H

#include "tensor.h"

typedef struct Loader Loader;

/* images [N, ...] (any float dtype) and labels i64[N] stay the caller's
 * and must outlive the loader. Batches start at global batch `first`. */
Loader *loader_open(const Tensor *images, const Tensor *labels, const char *x_name, const char *y_name, int64_t batch,
                    uint64_t seed, int64_t first, RtError *err);
/* The next batch: x f32[batch, ...] and y i64[batch], named as given.
 * Owned by the loader until the next call. Waits only when the thread is
 * behind. */
bool loader_next(Loader *l, Tensor **x, Tensor **y, RtError *err);
int64_t loader_batches_per_epoch(const Loader *l);
void loader_close(Loader *l);

#endif
