/* loader.c: the background batch assembler (loader.h). A ring of SLOTS
 * batches; the training loop consumes them in order. The slot last handed
 * out is in use until the next call, so the threads keep at most
 * SLOTS - 1 batches ahead. Workers claim the places of the oldest
 * unfilled batch one at a time under the lock and load them outside it,
 * so a slow item (a large JPEG) delays only its own place. */
#include "loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

enum { SLOTS = 3, MAX_WORKERS = 256 };

typedef struct {
  Tensor *x, *y, *t;
  int64_t *items; /* [batch] the item at each place */
  int64_t index;  /* global batch index held, -1 while empty */
  int64_t done;   /* places written (or failed) */
  bool failed;
  RtError err;    /* the first failure's */
} Slot;

struct Loader {
  LoaderSource src;
  LoaderOptions o;
  int64_t per_x, per_t, per_epoch;
  int64_t *perm, perm_epoch;
  Slot slot[SLOTS];
  int64_t claim_batch, claim_place; /* the next place to load */
  int64_t next_take;                /* the next batch to hand out */
  bool stop;
  int nthreads;
  pthread_t threads[MAX_WORKERS];
  void *owned; /* loader_open's source context, freed with the loader */
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

static void permute(Loader *l, int64_t epoch) {
  uint64_t s = l->o.seed * 0x100000001B3ull ^ (uint64_t)epoch * 0xD1B54A32D192ED03ull;
  for (int64_t i = 0; i < l->src.n; i++) l->perm[i] = i;
  for (int64_t i = l->src.n - 1; i > 0; i--) {
    int64_t j = (int64_t)(rng_splitmix64(&s) % (uint64_t)(i + 1));
    int64_t t = l->perm[i];
    l->perm[i] = l->perm[j], l->perm[j] = t;
  }
  l->perm_epoch = epoch;
}

/* Under the lock, when place 0 of batch `index` is claimed: the slot is
 * free (its previous batch was released) and nobody loads into it yet. */
static void begin_batch(Loader *l, Slot *s, int64_t index) {
  int64_t epoch = index / l->per_epoch, k = index % l->per_epoch;
  if (l->perm_epoch != epoch) permute(l, epoch);
  for (int64_t b = 0; b < l->o.batch; b++) s->items[b] = l->perm[k * l->o.batch + b];
  s->index = index;
  s->done = 0;
  s->failed = false;
}

/* A stream of its own (splitmix64 of seed and pos, apart from the
 * order's keys), so that turning the flip on changes nothing else. */
bool loader_flips(uint64_t seed, int64_t pos) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)pos + 0x5851F42D4C957F2Dull) * 0xC2B2AE3D27D4EB4Full;
  return rng_splitmix64(&s) >> 63;
}

/* Reverses each row (the last axis) of one item. */
static void mirror(float *x, int64_t numel, int64_t width) {
  for (float *row = x; row < x + numel; row += width)
    for (int64_t i = 0, j = width - 1; i < j; i++, j--) {
      float t = row[i];
      row[i] = row[j], row[j] = t;
    }
}

static bool load_place(Loader *l, Slot *s, int64_t b, RtError *err) {
  int64_t item = s->items[b], pos = s->index * l->o.batch + b;
  float *x = (float *)s->x->data + b * l->per_x;
  int64_t *y = (int64_t *)s->y->data + b;
  if (!l->src.load(l->src.ctx, item, pos, x, y, err)) return false;
  if (l->o.hflip && loader_flips(l->o.seed, pos)) mirror(x, l->per_x, l->src.shape[l->src.rank - 1]);
  if (s->t) memcpy((float *)s->t->data + b * l->per_t, l->o.table + item * l->per_t, sizeof(float) * (size_t)l->per_t);
  return true;
}

static void *work(void *arg) {
  Loader *l = arg;
  pthread_mutex_lock(&l->mu);
  for (;;) {
    while (!l->stop && l->claim_batch >= l->next_take + SLOTS - 1) pthread_cond_wait(&l->cv, &l->mu);
    if (l->stop) break;
    int64_t index = l->claim_batch, b = l->claim_place;
    Slot *s = &l->slot[index % SLOTS];
    if (b == 0) begin_batch(l, s, index);
    if (++l->claim_place == l->o.batch) l->claim_place = 0, l->claim_batch++;
    pthread_mutex_unlock(&l->mu);
    RtError e;
    bool ok = load_place(l, s, b, &e); /* the consumer does not touch this slot meanwhile */
    pthread_mutex_lock(&l->mu);
    if (!ok && !s->failed) s->failed = true, s->err = e;
    if (++s->done == l->o.batch) pthread_cond_broadcast(&l->cv);
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

static Tensor *batch_tensor(const char *name, DType dt, int64_t batch, int rank, const int64_t *shape, RtError *err) {
  int64_t s[IR_MAX_RANK];
  if (rank + 1 > IR_MAX_RANK) {
    rt_fail(err, "loader: items of rank %d; at most %d", rank, IR_MAX_RANK - 1);
    return NULL;
  }
  s[0] = batch;
  for (int k = 0; k < rank; k++) s[k + 1] = shape[k];
  return tensor_new(name, dt, rank + 1, s, err);
}

static int64_t numel(int rank, const int64_t *shape) {
  int64_t n = 1;
  for (int k = 0; k < rank; k++) n *= shape[k];
  return n;
}

static bool alloc_slots(Loader *l, RtError *err) {
  const LoaderOptions *o = &l->o;
  for (int i = 0; i < SLOTS; i++) {
    Slot *s = &l->slot[i];
    s->index = -1;
    s->x = batch_tensor(o->x_name, DT_F32, o->batch, l->src.rank, l->src.shape, err);
    s->y = s->x ? tensor_new(o->y_name, DT_I64, 1, &o->batch, err) : NULL;
    s->t = s->y && o->table ? batch_tensor(o->t_name, DT_F32, o->batch, o->t_rank, o->t_shape, err) : NULL;
    s->items = malloc(sizeof(int64_t) * (size_t)o->batch);
    if (!s->x || !s->y || (o->table && !s->t)) return false;
    if (!s->items) return rt_fail(err, "out of memory");
  }
  return true;
}

static void free_loader(Loader *l) {
  for (int i = 0; i < SLOTS; i++) {
    tensor_free(l->slot[i].x), tensor_free(l->slot[i].y), tensor_free(l->slot[i].t);
    free(l->slot[i].items);
  }
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
  free(l->perm);
  free(l->owned);
  free(l);
}

static bool check_options(const LoaderSource *src, const LoaderOptions *o, RtError *err) {
  if (src->n < 1) return rt_fail(err, "loader: an empty data set");
  if (o->batch < 1 || o->batch > src->n)
    return rt_fail(err, "loader: batch size %lld for a data set of %lld items", (long long)o->batch, (long long)src->n);
  if (o->table && !o->t_name) return rt_fail(err, "loader: a table without a name");
  if (o->table && o->hflip) return rt_fail(err, "loader: a table of per-item rows cannot follow a flipped item");
  if (o->hflip && src->rank < 1) return rt_fail(err, "loader: items of rank 0 cannot be flipped");
  return true;
}

Loader *loader_start(const LoaderSource *src, const LoaderOptions *o, RtError *err) {
  if (!check_options(src, o, err)) return NULL;
  Loader *l = calloc(1, sizeof *l);
  if (!l) {
    rt_fail(err, "out of memory");
    return NULL;
  }
  l->src = *src;
  l->o = *o;
  l->per_x = numel(src->rank, src->shape);
  l->per_t = o->table ? numel(o->t_rank, o->t_shape) : 0;
  l->per_epoch = src->n / o->batch;
  l->perm_epoch = -1;
  l->claim_batch = l->next_take = o->first;
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  l->perm = malloc(sizeof(int64_t) * (size_t)src->n);
  bool ok = l->perm ? alloc_slots(l, err) : rt_fail(err, "out of memory");
  int want = o->workers < 1 ? 1 : o->workers > MAX_WORKERS ? MAX_WORKERS : o->workers;
  while (ok && l->nthreads < want && pthread_create(&l->threads[l->nthreads], NULL, work, l) == 0) l->nthreads++;
  if (ok && l->nthreads == 0) ok = rt_fail(err, "loader: cannot start a thread"); /* fewer than asked will do */
  if (!ok) {
    free_loader(l);
    return NULL;
  }
  return l;
}

bool loader_take(Loader *l, LoaderBatch *b, RtError *err) {
  pthread_mutex_lock(&l->mu);
  Slot *s = &l->slot[l->next_take % SLOTS];
  while (!(s->index == l->next_take && s->done == l->o.batch)) pthread_cond_wait(&l->cv, &l->mu);
  l->next_take++; /* the slot handed out last time is released now */
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  if (s->failed) return rt_fail(err, "%s", s->err.msg);
  *b = (LoaderBatch){s->x, s->y, s->t, s->index};
  return true;
}

int64_t loader_batches_per_epoch(const Loader *l) { return l->per_epoch; }

void loader_close(Loader *l) {
  if (!l) return;
  pthread_mutex_lock(&l->mu);
  l->stop = true;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  for (int i = 0; i < l->nthreads; i++) pthread_join(l->threads[i], NULL);
  free_loader(l);
}

/* ---- the in-memory source ----------------------------------------------- */

static bool load_tensor_item(void *ctx, int64_t item, int64_t pos, float *x, int64_t *y, RtError *err) {
  (void)pos, (void)err;
  const LoaderTensors *t = ctx;
  int64_t per = tensor_numel(t->images) / t->images->shape[0];
  if (t->images->dtype == DT_F32) memcpy(x, (const float *)t->images->data + item * per, sizeof(float) * (size_t)per);
  else
    for (int64_t j = 0; j < per; j++) x[j] = (float)tensor_get(t->images, item * per + j);
  *y = (int64_t)tensor_get(t->labels, item);
  return true;
}

bool loader_tensor_source(LoaderSource *src, LoaderTensors *ctx, RtError *err) {
  const Tensor *images = ctx->images;
  if (images->rank < 1) return rt_fail(err, "loader: images of rank 0");
  int64_t n = images->shape[0];
  if (ctx->labels->rank != 1 || ctx->labels->shape[0] != n)
    return rt_fail(err, "loader: %lld images but labels of another length", (long long)n);
  *src = (LoaderSource){n, images->rank - 1, {0}, load_tensor_item, ctx};
  for (int k = 1; k < images->rank; k++) src->shape[k - 1] = images->shape[k];
  return true;
}

Loader *loader_open(const Tensor *images, const Tensor *labels, const char *x_name, const char *y_name, int64_t batch,
                    uint64_t seed, int64_t first, RtError *err) {
  LoaderTensors *ctx = malloc(sizeof *ctx); /* lives with the loader */
  if (!ctx) {
    rt_fail(err, "out of memory");
    return NULL;
  }
  *ctx = (LoaderTensors){images, labels};
  LoaderSource src;
  LoaderOptions o = {x_name, y_name, batch, seed, first, 1, NULL, NULL, 0, {0}, false};
  Loader *l = loader_tensor_source(&src, ctx, err) ? loader_start(&src, &o, err) : NULL;
  if (l) l->owned = ctx;
  else free(ctx);
  return l;
}

bool loader_next(Loader *l, Tensor **x, Tensor **y, RtError *err) {
  LoaderBatch b;
  if (!loader_take(l, &b, err)) return false;
  *x = b.x, *y = b.y;
  return true;
}
