/* loader.c: the background batch assembler (loader.h). One producer
 * thread fills a ring of SLOTS batches; the training loop consumes them
 * in order. The slot last handed out is in use until the next call, so
 * the producer keeps at most SLOTS - 1 batches ahead. */
#include "loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

enum { SLOTS = 3 };

typedef struct {
  Tensor *x, *y;
  int64_t index;  /* global batch index held, -1 while empty */
} Slot;

struct Loader {
  const Tensor *images, *labels;
  int64_t n, batch, per_image, per_epoch;
  uint64_t seed;
  int64_t *perm, perm_epoch;
  Slot slot[SLOTS];
  int64_t next_fill, next_take;  /* global batch indices */
  bool stop;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

static void permute(Loader *l, int64_t epoch) {
  uint64_t s = l->seed * 0x100000001B3ull ^ (uint64_t)epoch * 0xD1B54A32D192ED03ull;
  for (int64_t i = 0; i < l->n; i++) l->perm[i] = i;
  for (int64_t i = l->n - 1; i > 0; i--) {
    int64_t j = (int64_t)(rng_splitmix64(&s) % (uint64_t)(i + 1));
    int64_t t = l->perm[i];
    l->perm[i] = l->perm[j], l->perm[j] = t;
  }
  l->perm_epoch = epoch;
}

static void fill(Loader *l, Slot *s, int64_t index) {
  int64_t epoch = index / l->per_epoch, k = index % l->per_epoch;
  if (l->perm_epoch != epoch) permute(l, epoch);
  float *x = s->x->data;
  int64_t *y = s->y->data;
  for (int64_t b = 0; b < l->batch; b++) {
    int64_t i = l->perm[k * l->batch + b];
    for (int64_t j = 0; j < l->per_image; j++) x[b * l->per_image + j] = (float)tensor_get(l->images, i * l->per_image + j);
    y[b] = (int64_t)tensor_get(l->labels, i);
  }
  s->index = index;
}

static void *produce(void *arg) {
  Loader *l = arg;
  pthread_mutex_lock(&l->mu);
  for (;;) {
    while (!l->stop && l->next_fill >= l->next_take + SLOTS - 1) pthread_cond_wait(&l->cv, &l->mu);
    if (l->stop) break;
    int64_t index = l->next_fill;
    Slot *s = &l->slot[index % SLOTS];
    pthread_mutex_unlock(&l->mu);
    fill(l, s, index);  /* the consumer does not touch this slot meanwhile */
    pthread_mutex_lock(&l->mu);
    l->next_fill++;
    pthread_cond_broadcast(&l->cv);
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

Loader *loader_open(const Tensor *images, const Tensor *labels, const char *x_name, const char *y_name, int64_t batch,
                    uint64_t seed, int64_t first, RtError *err) {
  int64_t n = images->rank > 0 ? images->shape[0] : 0;
  if (labels->rank != 1 || labels->shape[0] != n) {
    rt_fail(err, "loader: %lld images but labels of another length", (long long)n);
    return NULL;
  }
  if (batch < 1 || batch > n) {
    rt_fail(err, "loader: batch size %lld for a dataset of %lld images", (long long)batch, (long long)n);
    return NULL;
  }
  Loader *l = calloc(1, sizeof *l);
  if (!l) {
    rt_fail(err, "out of memory");
    return NULL;
  }
  *l = (Loader){images, labels, n, batch, tensor_numel(images) / n, n / batch, seed, malloc(sizeof(int64_t) * (size_t)n),
                -1, {{0}}, first, first, false, 0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};
  bool ok = l->perm != NULL;
  int64_t shape[IR_MAX_RANK];
  shape[0] = batch;
  for (int k = 1; k < images->rank; k++) shape[k] = images->shape[k];
  for (int i = 0; ok && i < SLOTS; i++) {
    l->slot[i].x = tensor_new(x_name, DT_F32, images->rank, shape, err);
    l->slot[i].y = tensor_new(y_name, DT_I64, 1, &batch, err);
    l->slot[i].index = -1;
    ok = l->slot[i].x && l->slot[i].y;
  }
  if (ok && pthread_create(&l->thread, NULL, produce, l) != 0) ok = rt_fail(err, "loader: cannot start its thread");
  else if (!ok && !l->perm) rt_fail(err, "out of memory");
  if (!ok) {
    for (int i = 0; i < SLOTS; i++) tensor_free(l->slot[i].x), tensor_free(l->slot[i].y);
    free(l->perm);
    free(l);
    return NULL;
  }
  return l;
}

bool loader_next(Loader *l, Tensor **x, Tensor **y, RtError *err) {
  (void)err;
  pthread_mutex_lock(&l->mu);
  /* the slot handed out last time is released now */
  while (l->next_fill <= l->next_take) pthread_cond_wait(&l->cv, &l->mu);
  Slot *s = &l->slot[l->next_take % SLOTS];
  l->next_take++;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  *x = s->x, *y = s->y;
  return true;
}

int64_t loader_batches_per_epoch(const Loader *l) { return l->per_epoch; }

void loader_close(Loader *l) {
  if (!l) return;
  pthread_mutex_lock(&l->mu);
  l->stop = true;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  pthread_join(l->thread, NULL);
  for (int i = 0; i < SLOTS; i++) tensor_free(l->slot[i].x), tensor_free(l->slot[i].y);
  free(l->perm);
  free(l);
}
