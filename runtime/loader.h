/* loader.h: batches of a data set, assembled by background threads a few
 * steps ahead of the training loop. The data set is a LoaderSource: n
 * items, each loaded on its own (copied from memory, decoded from a file,
 * sampled from stored moments), so any number of threads can fill a batch
 * together. The order is a function of (seed, epoch) alone: epoch e visits
 * the items in a Fisher-Yates permutation keyed by both, and drops the
 * last partial batch, so batch k of a run is the same whether the run
 * started at 0 or resumed at k, and whatever the number of threads: each
 * item is a pure function of (item, pos) written to its own place. */
#ifndef IREPA_LOADER_H
#define IREPA_LOADER_H

#include "tensor.h"

/* A data set read item by item. load writes item `item` (0 <= item < n)
 * as f32 into x[numel(shape)] and its label into *y. `pos` numbers the
 * sample within the run (global batch index * batch size + place in the
 * batch), for randomness drawn per sample. It is called from several
 * threads at once, so it must not change shared state; an error names the
 * item's file and is reported by loader_take. */
typedef struct {
  int64_t n;
  int rank;                   /* of one item's x */
  int64_t shape[IR_MAX_RANK];
  bool (*load)(void *ctx, int64_t item, int64_t pos, float *x, int64_t *y, RtError *err);
  void *ctx;
} LoaderSource;

typedef struct {
  const char *x_name, *y_name; /* the batch tensors' names */
  int64_t batch;
  uint64_t seed;               /* of the order */
  int64_t first;               /* the first global batch index to deliver */
  int workers;                 /* background threads (at least one is started) */
  /* Optional: a per-item table, table[item * numel(t_shape) ...], gathered
   * into a third tensor t_name [batch, t_shape...] (cached features). */
  const float *table;
  const char *t_name;
  int t_rank;
  int64_t t_shape[IR_MAX_RANK];
  /* The jit trainer's augmentation: each sample mirrored along its last
   * axis (the width) with probability 1/2, decided by (seed, pos) alone
   * (loader_flips). Not with a table: the table's rows are of the items
   * as stored. */
  bool hflip;
} LoaderOptions;

/* One batch: x f32[batch, shape...], y i64[batch], t (NULL without a
 * table). Owned by the loader until the next loader_take. */
typedef struct {
  Tensor *x, *y, *t;
  int64_t index; /* global batch index */
} LoaderBatch;

typedef struct Loader Loader;

/* Starts the threads; the source (and table) must outlive the loader. */
Loader *loader_start(const LoaderSource *src, const LoaderOptions *o, RtError *err);
/* The next batch, waiting only while the threads are behind. False with
 * the message of the first item of the batch that failed to load. */
bool loader_take(Loader *l, LoaderBatch *b, RtError *err);

/* The in-memory form: images [N, ...] (any float dtype) and labels i64[N]
 * stay the caller's and must outlive the loader; one thread. */
Loader *loader_open(const Tensor *images, const Tensor *labels, const char *x_name, const char *y_name, int64_t batch,
                    uint64_t seed, int64_t first, RtError *err);
/* loader_take's x and y. */
bool loader_next(Loader *l, Tensor **x, Tensor **y, RtError *err);

int64_t loader_batches_per_epoch(const Loader *l);
/* Whether sample `pos` of a run with this seed is mirrored under hflip. */
bool loader_flips(uint64_t seed, int64_t pos);
void loader_close(Loader *l);

/* A source over images [N, ...] and labels [N] in memory (loader_open's);
 * `ctx` must stay valid while the source is used. */
typedef struct {
  const Tensor *images, *labels;
} LoaderTensors;
bool loader_tensor_source(LoaderSource *src, LoaderTensors *ctx, RtError *err);

#endif
