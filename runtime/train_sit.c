/* train_sit.c: `irepa-run train`, REPA / iREPA training of a SiT
 * (spec/training.md §3) with the compiled training step. The loop: take a
 * batch from the loader threads (train_data.h), compute the encoder's
 * targets or take them from the feature cache (feature_cache.h), run one
 * step, log, checkpoint. Everything a step depends on is in a checkpoint
 * or a function of (seed, step), so a resumed run repeats a straight one
 * bit for bit (docs/training.md). */
#include "train_cmd.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "feature_cache.h"
#include "fileio.h"
#include "online_eval.h"
#include "safetensors.h"
#include "sampler.h"
#include "tbevents.h"
#include "train_config.h"
#include "train_data.h"
#include "trainer.h"
#include "util.h"

enum {
  PATH_BYTES = 4200, /* two options of TC_STR_MAX and a file name */
  CACHE_CHUNK = 500, /* images per encoder call while building the feature cache */
};

typedef struct {
  TrainConfig c;
  char run_dir[2 * TC_STR_MAX + 8];
  bool repa, grey;
  bool jit; /* a JiT-* model: models/jit.irg's JiTDenoiser (docs/jit.md) */
  double proj_coeff;
  Trainer model, encoder;
  char enc_path[PATH_BYTES];
  int64_t enc_width, enc_tokens;
  TrainData data;
  FeatureCache cache; /* cache.data is NULL without --cache-features */
  FILE *log;
  TbWriter *tb;
  /* fp16's dynamic loss scale, as torch.cuda.amp.GradScaler keeps it */
  bool scaled;
  double loss_scale, step_scale; /* now, and the one the last step used */
  int64_t scale_growth;           /* finite steps since the scale last changed */
} Run;

/* GradScaler's defaults: growth_factor 2, backoff_factor 0.5,
 * growth_interval 2000; init_scale 2^16 is --loss-scale-init. */
enum { SCALE_GROWTH_INTERVAL = 2000 };

/* ---- the model ---------------------------------------------------------- */

/* Without alignment there is no tap: encoder depth 0 whatever the option
 * says (its default, 8, is deeper than the small models). */
static char *sit_source(const Run *r, int64_t channels, int64_t side) {
  const TrainConfig *c = &r->c;
  char z[64] = "[]";
  if (r->repa) snprintf(z, sizeof z, "[%lld]", (long long)r->enc_width);
  char *s = NULL;
  int n = asprintf(&s,
                   "import \"sit.irg\";\n"
                   "model = SiT(model = \"%s\", input_size = %lld, in_channels = %lld, num_classes = %lld,\n"
                   "            class_dropout_prob = %.17g, encoder_depth = %lld, z_dims = %s, projector_dim = %lld,\n"
                   "            projection_layer_type = \"%s\", proj_kernel_size = %lld, spnorm_method = \"%s\",\n"
                   "            zscore_alpha = %.17g, path_type = \"%s\", weighting = \"%s\");\n",
                   c->model, (long long)side, (long long)channels, (long long)c->num_classes, 0.1,
                   (long long)(r->repa ? c->encoder_depth : 0), z, (long long)c->projector_dim, c->projection_layer_type,
                   (long long)c->proj_kwargs_kernel_size, c->spnorm_method, c->zscore_alpha, c->path_type,
                   c->weighting);
  return n < 0 ? NULL : s;
}

/* JiT (docs/jit.md): the reference's Denoiser on the images themselves
 * (x in [-1, 1]); label dropout at --cfg-prob (jit's --label_drop_prob),
 * the time distribution, t_eps and noise scale from the jit options. */
static char *jit_source(const Run *r, int64_t channels, int64_t side) {
  const TrainConfig *c = &r->c;
  char z[64] = "[]";
  if (r->repa) snprintf(z, sizeof z, "[%lld]", (long long)r->enc_width);
  char *s = NULL;
  int n = asprintf(&s,
                   "import \"jit.irg\";\n"
                   "model = JiTDenoiser(model = \"%s\", img_size = %lld, in_channels = %lld, class_num = %lld,\n"
                   "                    label_drop_prob = %.17g, P_mean = %.17g, P_std = %.17g, t_eps = %.17g,\n"
                   "                    noise_scale = %.17g, encoder_depth = %lld, z_dims = %s,\n"
                   "                    projector_dim = %lld, projection_layer_type = \"%s\",\n"
                   "                    proj_kernel_size = %lld, spnorm_method = \"%s\", zscore_alpha = %.17g,\n"
                   "                    attn_dropout = %.17g, proj_dropout = %.17g);\n",
                   c->model, (long long)side, (long long)channels, (long long)c->num_classes, c->cfg_prob,
                   c->P_mean, c->P_std, c->t_eps, c->noise_scale, (long long)(r->repa ? c->encoder_depth : 0), z,
                   (long long)c->projector_dim, c->projection_layer_type,
                   (long long)c->proj_kwargs_kernel_size, c->spnorm_method, c->zscore_alpha, c->attn_dropout,
                   c->proj_dropout);
  return n < 0 ? NULL : s;
}

static char *read_text(const char *path, RtError *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    rt_fail(err, "%s: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = NULL;
  size_t len = 0, cap = 0, k;
  char chunk[65536];
  while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (len + k + 1 > cap) {
      cap = (len + k + 1) * 2;
      char *nb = realloc(buf, cap);
      if (!nb) break;
      buf = nb;
    }
    memcpy(buf + len, chunk, k);
    len += k;
  }
  fclose(f);
  if (buf) buf[len] = '\0';
  else rt_fail(err, "%s: empty or unreadable", path);
  return buf;
}

bool train_encoder_program(Trainer *t, const char *backend, RtError *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/encoders/fmnist_vit.irg", trainer_models_dir());
  char *src = read_text(path, err);
  static const char *const keep[] = {"loss", "features", "pooled", "logits"};
  bool ok = src && trainer_compile(t, path, src, "loss", keep, 4, backend, err);
  free(src);
  return ok;
}

bool train_load_weights(Trainer *t, const char *path, RtError *err) {
  StFile *f = st_open(path, err);
  if (!f) return false;
  const TensorList *w = st_tensors(f);
  bool ok = true;
  for (int i = 0; ok && i < t->params.n; i++) {
    Tensor *x = t->params.items[i];
    const Tensor *y = tensorlist_find(w, x->name);
    ok = y && y->nbytes == x->nbytes && y->dtype == x->dtype
             ? true : rt_fail(err, "%s: no tensor '%s' of %zu bytes: weights of another model?", path, x->name, x->nbytes);
    if (ok) memcpy(x->data, y->data, x->nbytes);
  }
  st_close(f);
  return ok;
}

const char *train_default_encoder_path(const char *output_dir, char *buf, size_t size) {
  snprintf(buf, size, "%s/encoders/fmnist-vit.safetensors", output_dir);
  return buf;
}

static bool setup_encoder(Run *r, RtError *err) {
  const TrainConfig *c = &r->c;
  if (strcmp(c->enc_type, "fmnist-vit"))
    return rt_fail(err, "--enc-type %s: only fmnist-vit (the Fashion-MNIST encoder) is available so far", c->enc_type);
  char *path = r->enc_path;
  if (*c->encoder_weights) snprintf(path, PATH_BYTES, "%s", c->encoder_weights);
  else train_default_encoder_path(c->output_dir, path, PATH_BYTES);
  struct stat st;
  if (stat(path, &st) != 0)
    return rt_fail(err, "encoder weights %s: %s (train them with: irepa-run train-encoder --output %s)", path,
                   strerror(errno), path);
  if (!train_encoder_program(&r->encoder, c->backend, err) || !trainer_init(&r->encoder, 0, err) ||
      !train_load_weights(&r->encoder, path, err))
    return false;
  const XEntry *e = irx_entry(&r->encoder.prog, "features");
  r->enc_tokens = e->outputs[0].shape.d[1].n;
  r->enc_width = e->outputs[0].shape.d[2].n;
  fprintf(stderr, "train: encoder %s from %s: %lld tokens of width %lld\n", c->enc_type, path,
          (long long)r->enc_tokens, (long long)r->enc_width);
  return true;
}

/* The encoder's patch tokens of a batch x of the data set. */
static bool encode(Run *r, const Tensor *x, Tensor **features, RtError *err) {
  TensorList in = {0}, out = {0};
  Tensor *view = td_encoder_input(&r->data, x, err);
  bool ok = view && tensorlist_add(&in, view, err) && trainer_run(&r->encoder, "features", &in, false, &out, err);
  if (!view) return false;
  tensorlist_free(&in);
  *features = ok ? out.items[0] : NULL;
  if (ok) out.n = 0; /* keep items[0] */
  tensorlist_free(&out);
  return ok;
}

/* FcCompute: the features of items [first, first + count), in order. */
static bool cache_chunk(void *ctx, int64_t first, int64_t count, float *out, RtError *err) {
  Run *r = ctx;
  const LoaderSource *src = &r->data.src;
  const int64_t shape[4] = {count, r->data.channels, r->data.side, r->data.side}, per = shape[1] * shape[2] * shape[3];
  Tensor *x = tensor_new("x0", DT_F32, 4, shape, err), *f = NULL;
  bool ok = x != NULL;
  for (int64_t i = 0; ok && i < count; i++) {
    int64_t y;
    ok = src->load(src->ctx, first + i, 0, (float *)x->data + i * per, &y, err);
  }
  ok = ok && encode(r, x, &f, err);
  if (ok) memcpy(out, f->data, f->nbytes);
  tensor_free(x);
  tensor_free(f);
  return ok;
}

/* --cache-features: OUTPUT_DIR/encoders/features-DATASET-ENCODERHASH-DATAHASH.bin,
 * built on first use. The targets cached are the encoder's raw tokens:
 * the spatial normalisation (spnorm, alpha) is part of the training
 * step's graph, so one cache serves every recipe. */
static bool open_cache(Run *r, RtError *err) {
  FcKey key = {0, 0, r->data.src.n, r->enc_tokens, r->enc_width};
  char dir[PATH_BYTES], path[2 * PATH_BYTES];
  snprintf(dir, sizeof dir, "%s/encoders", r->c.output_dir);
  if (!fc_hash_file(r->enc_path, &key.encoder_hash, err) || !td_hash(&r->data, &key.data_hash, err) ||
      !rt_make_dirs(dir, 0777, err))
    return false;
  fc_path(dir, r->c.dataset, &key, path, sizeof path);
  if (!fc_open(&r->cache, path, &key, CACHE_CHUNK, cache_chunk, r, err)) return false;
  fprintf(stderr, "train: encoder features from %s\n", path);
  return true;
}

/* ---- the run folder ----------------------------------------------------- */

static const char *path_in(const Run *r, const char *name, char *buf, size_t size) {
  snprintf(buf, size, "%s/%s", r->run_dir, name);
  return buf;
}

/* The largest step N with checkpoints/NNNNNNN.safetensors, or 0. */
static int64_t latest_checkpoint(const Run *r) {
  char dir[PATH_BYTES];
  DIR *d = opendir(path_in(r, "checkpoints", dir, sizeof dir));
  int64_t best = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    char *end;
    long long n = strtoll(e->d_name, &end, 10);
    if (end != e->d_name && !strcmp(end, ".safetensors") && n > best) best = n;
  }
  if (d) closedir(d);
  return best;
}

static const char *checkpoint_path(const Run *r, int64_t step, char *buf, size_t size) {
  snprintf(buf, size, "%s/checkpoints/%07lld.safetensors", r->run_dir, (long long)step);
  return buf;
}

static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* Refuses to write over an earlier run unless told to resume or overwrite;
 * --overwrite removes only what a run writes. */
static bool prepare_run_dir(Run *r, int64_t *resume_from, RtError *err) {
  TrainConfig *c = &r->c;
  char p[PATH_BYTES];
  snprintf(r->run_dir, sizeof r->run_dir, "%s/%s", c->output_dir, c->exp_name);
  bool earlier = exists(path_in(r, "config.yaml", p, sizeof p)) || exists(path_in(r, "log.jsonl", p, sizeof p)) ||
                 latest_checkpoint(r) > 0;
  *resume_from = 0;
  if (c->resume || c->resume_step > 0) {
    *resume_from = c->resume_step > 0 ? c->resume_step : latest_checkpoint(r);
    if (c->resume && *resume_from == 0)
      fprintf(stderr, "train: --resume: no checkpoint in %s/checkpoints; starting afresh\n", r->run_dir);
    else if (!exists(checkpoint_path(r, *resume_from, p, sizeof p)))
      return rt_fail(err, "--resume-step %lld: no checkpoint %s", (long long)*resume_from, p);
  } else if (earlier && !c->overwrite) {
    return rt_fail(err, "%s holds an earlier run; pass --resume to continue it or --overwrite to replace it",
                   r->run_dir);
  } else if (earlier) {
    int64_t n;
    while ((n = latest_checkpoint(r)) > 0) remove(checkpoint_path(r, n, p, sizeof p));
    remove(path_in(r, "log.jsonl", p, sizeof p));
  }
  return rt_make_dirs(path_in(r, "checkpoints", p, sizeof p), 0777, err);
}

static bool open_tb(Run *r, RtError *err) {
  char tb[PATH_BYTES];
  snprintf(tb, sizeof tb, "%s/%s", r->run_dir, r->c.logging_dir);
  return rt_make_dirs(tb, 0777, err) && (r->tb = tb_open(tb, err)) != NULL;
}

/* log.jsonl keeps the lines of steps up to `step`: a resumed run appends
 * after them, so the file reads as one run. */
static bool open_log(Run *r, int64_t step, RtError *err) {
  char path[PATH_BYTES];
  path_in(r, "log.jsonl", path, sizeof path);
  if (r->c.evaluate_gen) { /* no training: the log stays whole, the evaluation goes at its end */
    if (!(r->log = fopen(path, "a"))) return rt_fail(err, "cannot write %s: %s", path, strerror(errno));
    return open_tb(r, err);
  }
  FILE *old = step > 0 ? fopen(path, "r") : NULL;
  char tmp[PATH_BYTES + 8];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    if (old) fclose(old);
    return rt_fail(err, "cannot write %s: %s", tmp, strerror(errno));
  }
  char line[4096];
  while (old && fgets(line, sizeof line, old)) {
    const char *s = strstr(line, "\"step\":");
    if (s && strtoll(s + 7, NULL, 10) <= step) fputs(line, f);
  }
  if (old) fclose(old);
  if (fflush(f) != 0 || rename(tmp, path) != 0) {
    fclose(f);
    return rt_fail(err, "cannot replace %s: %s", path, strerror(errno));
  }
  r->log = f;
  return open_tb(r, err);
}

/* ---- the loop ----------------------------------------------------------- */

static bool save(Run *r, int64_t step, RtError *err) {
  char path[PATH_BYTES], seed[32];
  snprintf(seed, sizeof seed, "%lld", (long long)r->c.seed);
  char *yaml = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&yaml, &len);
  bool ok = m && tc_write_yaml(&r->c, m, err);
  if (m) fclose(m);
  char scale[32], growth[32];
  snprintf(scale, sizeof scale, "%.17g", r->loss_scale);
  snprintf(growth, sizeof growth, "%lld", (long long)r->scale_growth);
  /* without a loss scale the list ends after the config */
  const char *meta[] = {"seed", seed, "config", yaml ? yaml : "", r->scaled ? "loss_scale" : NULL, scale,
                        "loss_scale_growth", growth, NULL};
  ok = ok && trainer_save(&r->model, checkpoint_path(r, step, path, sizeof path), step, meta, err);
  free(yaml);
  if (ok) fprintf(stderr, "\ntrain: saved %s\n", path);
  return ok;
}

static const char *const TERMS[] = {"loss", "denoising_loss", "proj_loss"};

/* A number for JSON, which has no NaN or infinity: null for those. */
static const char *json_num(double x, char buf[32]) {
  if (isfinite(x)) snprintf(buf, 32, "%.9g", x);
  else snprintf(buf, 32, "null");
  return buf;
}

static bool log_step(Run *r, int64_t step, const double *out, double lr, double img_s, bool skipped, RtError *err) {
  char v[4][32];
  fprintf(r->log, "{\"step\": %lld, \"loss\": %s, \"denoising_loss\": %s, \"proj_loss\": %s, \"grad_norm\": %s, "
                  "\"lr\": %.9g, \"img_per_s\": %.2f, \"skipped\": %s",
          (long long)step, json_num(out[0], v[0]), json_num(out[1], v[1]), json_num(out[2], v[2]),
          json_num(out[3], v[3]), lr, img_s, skipped ? "true" : "false");
  if (r->scaled) fprintf(r->log, ", \"loss_scale\": %.9g", r->step_scale);
  fputs("}\n", r->log);
  fflush(r->log);
  bool ok = true;
  for (int i = 0; i < 3 && ok; i++) {
    char tag[64];
    snprintf(tag, sizeof tag, "loss/%s", TERMS[i]);
    ok = tb_scalar(r->tb, tag, step, out[i], err);
  }
  return ok && tb_scalar(r->tb, "grad_norm", step, out[3], err) && tb_scalar(r->tb, "lr", step, lr, err) &&
         tb_scalar(r->tb, "img_per_s", step, img_s, err);
}

static void progress(int64_t step, int64_t total, const double *out, double img_s, double eta) {
  fprintf(stderr, "\rstep %lld/%lld  loss %.4f (denoise %.4f, proj %.4f)  grad %.3f  %.1f img/s  ETA %dm%02ds   ",
          (long long)step, (long long)total, out[0], out[1], out[2], out[3], img_s, (int)(eta / 60),
          (int)fmod(eta, 60));
}

/* The alignment targets of the batch: cached, or the encoder's tokens now. */
static bool targets(Run *r, const LoaderBatch *b, TensorList *batch, RtError *err) {
  if (b->t) return tensorlist_add(batch, tensor_view("target", b->t, err), err);
  Tensor *t;
  if (!encode(r, b->x, &t, err)) return false;
  free(t->name);
  if ((t->name = strdup("target")) && tensorlist_add(batch, t, err)) return true;
  tensor_free(t);
  return rt_fail(err, "out of memory");
}

/* After a step with fp16's loss scale: an overflow (finite losses, a
 * gradient norm that is not) halves the scale, and the step, masked in the
 * graph, counts as skipped; 2000 finite steps in a row double it. */
static bool scaler_update(Run *r, int64_t step, const double *out) {
  if (!r->scaled || !isfinite(out[0]) || !isfinite(out[1]) || !isfinite(out[2])) return false;
  if (!isfinite(out[3])) {
    fprintf(stderr, "\ntrain: step %lld: gradients overflow at loss scale %g; step skipped, scale %g\n",
            (long long)step, r->loss_scale, r->loss_scale * 0.5);
    r->loss_scale *= 0.5;
    r->scale_growth = 0;
    return true;
  }
  if (++r->scale_growth == SCALE_GROWTH_INTERVAL) r->loss_scale *= 2.0, r->scale_growth = 0;
  return false;
}

static bool check_finite(Run *r, int64_t step, const double *out, bool *skipped, RtError *err) {
  *skipped = scaler_update(r, step, out);
  if (*skipped) return true;
  for (int i = 0; i < 4; i++)
    if (!isfinite(out[i])) {
      const char *what = i < 3 ? TERMS[i] : "grad_norm";
      *skipped = true;
      if (!strcmp(r->c.on_nan, "stop"))
        return rt_fail(err, "step %lld: %s is %g; the step was not applied (--on-nan skip goes on)", (long long)step,
                       what, out[i]);
      fprintf(stderr, "\ntrain: step %lld: %s is %g; step skipped\n", (long long)step, what, out[i]);
      return true;
    }
  return true;
}

static Loader *start_loader(Run *r, int64_t start, RtError *err) {
  const TrainConfig *c = &r->c;
  /* with accumulation each step takes gradient_accumulation_steps batches */
  int64_t first = start * c->gradient_accumulation_steps;
  LoaderOptions o = {r->jit ? "x" : "x0", "y",      c->batch_size, (uint64_t)c->seed, first, r->data.workers,
                     r->cache.data,        "target", 2,             {r->enc_tokens, r->enc_width}, c->hflip};
  return loader_start(&r->data.src, &o, err);
}

/* spec/training.md §3 step 5: the EMA moves when global_step (before its
 * increment, so step - 1) is a multiple of ema_update_freq. The step
 * always blends ema*decay + p*(1 - decay); decay 1 leaves it as it is. */
/* ---- the training-time sample grid ------------------------------------- */

/* Grids are written at step 1 and every --sampling-steps, as the reference
 * does, or every --sample-every; latents would need the VAE to decode. */
static int64_t grid_every(const Run *r) {
  const TrainConfig *c = &r->c;
  if (!strcmp(c->dataset, "latents")) return 0;
  return c->sample_every > 0 ? c->sample_every : c->sampling_steps;
}

/* SiT: the reference's ldm grid (Euler ODE, 50 steps, cfg 4.0). JiT: its
 * sampler's defaults (Heun, 50 steps, cfg 1.0; spec/sampling_and_eval.md §3). */
static SamplerOptions grid_options(const Run *r) {
  if (r->jit) return (SamplerOptions){SAMPLER_JIT, true, 50, 1.0, 0.0, 1.0};
  return sampler_training_grid_options();
}

static bool grid_due(const Run *r, int64_t step) {
  int64_t every = grid_every(r);
  return every > 0 && (step == 1 || step % every == 0);
}

/* The reference's grid (grid_options), the online weights, fixed noise
 * (the run's seed). Labels run through the classes in order
 * (the reference takes the first batch's), so a column is a class. */
static bool write_grid(Run *r, int64_t step, RtError *err) {
  const TrainConfig *c = &r->c;
  SamplerOptions so = grid_options(r);
  int64_t n = c->n_samples;
  char path[PATH_BYTES], name[64];
  snprintf(name, sizeof name, "samples/%07lld.png", (long long)step);
  Tensor *labels = tensor_new("y", DT_I64, 1, &n, err);
  if (!labels) return false;
  for (int64_t i = 0; i < n; i++) tensor_set(labels, i, (double)(i % c->num_classes));
  SamplerModel m = {&r->model, false, NULL, NULL};
  double t0 = monotonic_seconds();
  bool ok = rt_make_dirs(path_in(r, "samples", path, sizeof path), 0777, err) &&
            sampler_write_grid(&m, &so, labels, r->data.channels, r->data.side, (uint64_t)c->seed,
                               path_in(r, name, path, sizeof path), err);
  tensor_free(labels);
  if (ok) fprintf(stderr, "\ntrain: sample grid %s (%.1f s)\n", path, monotonic_seconds() - t0);
  return ok;
}

/* ---- the online evaluation (JiT) ------------------------------------------ */

static const char *eval_reference(const TrainConfig *c) {
  return *c->eval_reference ? c->eval_reference : "fashion-mnist:test";
}

static const char *eval_weights(const TrainConfig *c, char *buf, size_t size) {
  return *c->encoder_weights ? c->encoder_weights : train_default_encoder_path(c->output_dir, buf, size);
}

/* What the evaluation reads must be there before hours of training: the
 * network must take the images, the reference and its weights must open. */
static bool check_eval(const Run *r, RtError *err) {
  const TrainConfig *c = &r->c;
  char buf[PATH_BYTES];
  const char *weights = eval_weights(c, buf, sizeof buf);
  struct stat st;
  bool ok = eval_features_fit(c->eval_features, r->data.side, r->data.side, r->data.channels, err) &&
            eval_reference_ok(c->eval_features, eval_reference(c), err) &&
            (stat(weights, &st) == 0 || rt_fail(err, "the %s weights %s: %s (irepa-run train-encoder writes them)",
                                                c->eval_features, weights, strerror(errno)));
  if (ok) return true;
  char msg[sizeof err->msg];
  snprintf(msg, sizeof msg, "%s", err->msg);
  return rt_fail(err, "--%s: %s (--eval-features, --eval-reference, --encoder-weights)",
                 c->online_eval ? "online-eval" : "evaluate-gen", msg);
}

/* Optimiser steps an epoch: floor(items / batch) batches, k of them a step. */
static int64_t steps_per_epoch(const Run *r) {
  int64_t n = r->data.src.n / r->c.batch_size / r->c.gradient_accumulation_steps;
  return n > 0 ? n : 1;
}

static SamplerOptions eval_sampler(const TrainConfig *c) {
  return (SamplerOptions){SAMPLER_JIT, !strcmp(c->sampling_method, "heun"), c->num_sampling_steps,
                          c->cfg,      c->interval_min,                     c->interval_max};
}

/* Every --eval-freq epochs (counted in finished epochs) and after the last step. */
static bool eval_due(const Run *r, int64_t step) {
  const TrainConfig *c = &r->c;
  if (!c->online_eval) return false;
  int64_t per_epoch = steps_per_epoch(r);
  return step == c->max_train_steps || (step % per_epoch == 0 && (step / per_epoch) % c->eval_freq == 0);
}

/* The reference's evaluate(): the first EMA's samples, FID and IS logged
 * at the step (and in log.jsonl, so a resumed run keeps them). */
static bool online_eval(Run *r, int64_t step, RtError *err) {
  const TrainConfig *c = &r->c;
  char weights[PATH_BYTES];
  OnlineEvalOptions o = {eval_sampler(c),
                         c->num_images,
                         c->gen_bsz,
                         c->num_classes,
                         r->data.channels,
                         r->data.side,
                         (uint64_t)c->seed,
                         c->eval_features,
                         eval_weights(c, weights, sizeof weights),
                         eval_reference(c),
                         c->backend};
  EvalScores s;
  double t0 = monotonic_seconds();
  if (!online_eval_run(&r->model, &o, &s, err)) return false;
  char fid[128], is[128];
  online_eval_tag("fid", c->cfg, r->data.side, c->eval_features, fid, sizeof fid);
  online_eval_tag("is", c->cfg, r->data.side, c->eval_features, is, sizeof is);
  fprintf(stderr, "train: step %lld: online evaluation of %lld EMA samples against %s (%.1f s): %s %.4f, %s %.4f "
                  "(domain metrics: %s features)\n",
          (long long)step, (long long)c->num_images, o.reference, monotonic_seconds() - t0, fid, s.fid, is,
          s.is_mean, c->eval_features);
  fprintf(r->log, "{\"step\": %lld, \"%s\": %.9g, \"%s\": %.9g, \"eval_images\": %lld, \"eval_reference\": \"%s\"}\n",
          (long long)step, fid, s.fid, is, s.is_mean, (long long)c->num_images, o.reference);
  fflush(r->log);
  return tb_scalar(r->tb, fid, step, s.fid, err) && tb_scalar(r->tb, is, step, s.is_mean, err);
}

/* The sampler entries the run needs: the grid's and the evaluation's. */
static int sampler_keep(const Run *r, const char *keep[2 * SAMPLER_MAX_ENTRIES]) {
  int n = 0;
  const char *names[SAMPLER_MAX_ENTRIES];
  SamplerOptions grid = grid_options(r), eval = eval_sampler(&r->c);
  for (int pass = 0; pass < 2; pass++) {
    bool wanted = pass == 0 ? grid_every(r) > 0 : r->c.online_eval || r->c.evaluate_gen;
    int m = wanted ? sampler_entries(pass == 0 ? &grid : &eval, names) : 0;
    for (int i = 0; i < m; i++) {
      bool dup = false;
      for (int j = 0; j < n; j++) dup = dup || !strcmp(keep[j], names[i]);
      if (!dup) keep[n++] = names[i];
    }
  }
  return n;
}

/* The lr of step `step` (from 1), as jit/main_jit.py sets it every
 * iteration: ep = epochs done (fractional, floor(items / batch)
 * iterations an epoch); below --warmup-epochs lr * ep / warmup (exactly 0
 * at the first step), then constant or a half cosine from lr to --min-lr
 * at --epochs. With no warm-up and constant, --learning-rate throughout. */
static double lr_at(const Run *r, int64_t step) {
  const TrainConfig *c = &r->c;
  double ep = (double)(step - 1) / (double)steps_per_epoch(r);
  if (ep < c->warmup_epochs) return c->learning_rate * ep / c->warmup_epochs;
  if (strcmp(c->lr_schedule, "cosine") || (double)c->epochs <= c->warmup_epochs) return c->learning_rate;
  double frac = (ep - c->warmup_epochs) / ((double)c->epochs - c->warmup_epochs);
  return c->min_lr + (c->learning_rate - c->min_lr) * 0.5 * (1.0 + cos(M_PI * frac));
}

static double ema_decay_at(const TrainConfig *c, int64_t step, double decay) {
  return (step - 1) % c->ema_update_freq == 0 ? decay : 1.0;
}

/* The loss entry's inputs for the loader's next batch, as views. */
static bool next_batch(Run *r, Loader *ld, Tensor *coeff, TensorList *batch, RtError *err) {
  LoaderBatch b;
  bool ok = loader_take(ld, &b, err) && tensorlist_add(batch, tensor_view(r->jit ? "x" : "x0", b.x, err), err) &&
            tensorlist_add(batch, tensor_view("y", b.y, err), err);
  if (ok && r->repa)
    ok = targets(r, &b, batch, err) && tensorlist_add(batch, tensor_view("proj_coeff", coeff, err), err);
  return ok;
}

/* out: the loss terms and the gradient norm. */
static bool one_step(Run *r, Loader *ld, Tensor *coeff, int64_t step, const Hyper *h, double *out, RtError *err) {
  TensorList batch = {0};
  bool ok = next_batch(r, ld, coeff, &batch, err) &&
            trainer_step(&r->model, &batch, step, h, trainer_step_seed((uint64_t)r->c.seed, step), out, err);
  tensorlist_free(&batch);
  return ok;
}

/* --gradient-accumulation-steps k: the gradients of k batches add up, then
 * one update with their mean (accelerate's division of each loss by k);
 * micro-batch j of step s draws its randomness from seed key (s - 1) k + j
 * + 1. The loss terms logged are the mean over the k batches. */
static bool accumulated_step(Run *r, Loader *ld, Tensor *coeff, int64_t step, const Hyper *h, double *out,
                             RtError *err) {
  int64_t k = r->c.gradient_accumulation_steps;
  double terms[3];
  bool ok = true;
  out[0] = out[1] = out[2] = 0;
  for (int64_t j = 0; ok && j < k; j++) {
    TensorList batch = {0};
    uint64_t seed = trainer_step_seed((uint64_t)r->c.seed, (step - 1) * k + j + 1);
    ok = next_batch(r, ld, coeff, &batch, err) && trainer_accumulate(&r->model, &batch, seed, terms, err);
    tensorlist_free(&batch);
    for (int i = 0; ok && i < 3; i++) out[i] += terms[i] / (double)k;
  }
  /* the sums are of scaled gradients under fp16: unscale with the mean */
  double scale = r->scaled ? r->loss_scale : 1.0;
  return ok && trainer_apply(&r->model, step, h, 1.0 / ((double)k * scale), &out[3], err);
}

static bool train_loop(Run *r, int64_t start, RtError *err) {
  const TrainConfig *c = &r->c;
  Loader *ld = start_loader(r, start, err);
  if (!ld) return false;
  Hyper h = {c->learning_rate, c->adam_beta1, c->adam_beta2, c->adam_epsilon, c->adam_weight_decay, c->max_grad_norm,
             c->ema_decay};
  Tensor *coeff = NULL;
  bool ok = true;
  if (r->repa) {
    coeff = tensor_new("proj_coeff", DT_F32, 0, NULL, err);
    ok = coeff != NULL;
    if (ok) tensor_set(coeff, 0, r->proj_coeff);
  }
  double t0 = monotonic_seconds(), out[4];
  for (int64_t step = start + 1; ok && step <= c->max_train_steps; step++) {
    double ts = monotonic_seconds();
    h.ema_decay = ema_decay_at(c, step, c->ema_decay);
    if (ok && r->jit)
      ok = trainer_set_scalar(&r->model, optim_ema2_decay_input, ema_decay_at(c, step, c->ema_decay2), err);
    h.lr = lr_at(r, step);
    r->step_scale = r->loss_scale;
    if (ok && r->scaled) ok = trainer_set_scalar(&r->model, optim_loss_scale_input, r->loss_scale, err);
    ok = ok && (c->gradient_accumulation_steps > 1 ? accumulated_step(r, ld, coeff, step, &h, out, err)
                                                   : one_step(r, ld, coeff, step, &h, out, err));
    bool skipped = false;
    ok = ok && check_finite(r, step, out, &skipped, err);
    double img_s = (double)(c->batch_size * c->gradient_accumulation_steps) / (monotonic_seconds() - ts);
    ok = ok && log_step(r, step, out, h.lr, img_s, skipped, err);
    double rate = (double)(step - start) / (monotonic_seconds() - t0);
    progress(step, c->max_train_steps, out, img_s, (double)(c->max_train_steps - step) / rate);
    if (ok && (step % c->checkpointing_steps == 0 || step == c->max_train_steps)) ok = save(r, step, err);
    if (ok && grid_due(r, step)) ok = write_grid(r, step, err);
    if (ok && eval_due(r, step)) ok = online_eval(r, step, err);
  }
  fputc('\n', stderr);
  tensor_free(coeff);
  loader_close(ld);
  return ok;
}

/* The loss scale and its growth count of a checkpoint; one written
 * without them (another precision) starts the scale afresh. */
static bool load_scaler(Run *r, const char *path, RtError *err) {
  StFile *f = st_open(path, err);
  if (!f) return false;
  const char *scale = st_metadata(f, "loss_scale"), *growth = st_metadata(f, "loss_scale_growth");
  if (scale && growth) {
    r->loss_scale = strtod(scale, NULL);
    r->scale_growth = strtoll(growth, NULL, 10);
  }
  st_close(f);
  return r->loss_scale > 0 || rt_fail(err, "%s: bad loss_scale '%s' in the metadata", path, scale ? scale : "");
}

/* ---- the command -------------------------------------------------------- */

static bool check_supported(const TrainConfig *c, RtError *err) {
  if (!strcmp(c->dataset, "fashion-mnist") && c->resolution != 32)
    return rt_fail(err, "--resolution %lld: Fashion-MNIST is 32 (28 padded)", (long long)c->resolution);
  if (c->hflip && !strcmp(c->dataset, "latents"))
    return rt_fail(err, "--hflip: latents are not images; the flip is for pixel data (the jit trainer's)");
  if (c->hflip && c->cache_features)
    return rt_fail(err, "--hflip with --cache-features: the cache holds the features of the images as stored, and a "
                        "mirrored image has others; give --hflip false or drop --cache-features");
  if ((c->online_eval || c->evaluate_gen) && !tc_is_jit(c))
    return rt_fail(err, "--%s is the jit trainer's, for JiT-* models; a SiT is evaluated with irepa-run sample and "
                        "irepa-run eval", c->online_eval ? "online-eval" : "evaluate-gen");
  if (c->evaluate_gen && !c->resume && c->resume_step == 0)
    return rt_fail(err, "--evaluate-gen evaluates a checkpoint of the run: give --resume (the latest) or --resume-step N");
  if ((c->online_eval || c->evaluate_gen) && !*c->eval_reference && strcmp(c->dataset, "fashion-mnist"))
    return rt_fail(err, "--online-eval: no FID reference for --dataset %s; give --eval-reference (an .npz of images or "
                        "of mu/sigma)", c->dataset);
  if (!strcmp(c->dataset, "latents") && c->resolution % 8)
    return rt_fail(err, "--resolution %lld: latents are resolution / 8 on a side; give a multiple of 8",
                   (long long)c->resolution);
  return true;
}

/* Which data the alignment can use. Only the Fashion-MNIST encoder exists
 * (1-channel 32x32 images): the reference's ImageNet encoders (DINOv2 and
 * others, spec/encoders.md) read RGB images, and latents have no images. */
static bool check_alignment(Run *r, RtError *err) {
  const TrainConfig *c = &r->c;
  if (!r->repa) return true;
  if (!strcmp(c->dataset, "latents"))
    return rt_fail(err, "--dataset latents with alignment: the targets come from an encoder of the raw images (DINOv2 "
                        "in the reference), which irepa does not have yet; train with --proj-coeff 0 (no alignment)");
  if (!strcmp(c->dataset, "imagefolder") && (strcmp(c->enc_type, "fmnist-vit") || c->resolution != 32))
    return rt_fail(err, "--dataset imagefolder with alignment: colour images need an ImageNet encoder (DINOv2 in the "
                        "reference), which irepa does not have yet; train with --proj-coeff 0, or give a greyscale "
                        "folder with --resolution 32 --enc-type fmnist-vit");
  r->grey = !strcmp(c->dataset, "imagefolder");
  return true;
}

/* The jit trainer counts in epochs: unless set, train --epochs and save
 * every 5 (its --save_last_freq), an epoch being floor(items / batch) steps. */
static void jit_epoch_steps(Run *r, const bool *seen) {
  TrainConfig *c = &r->c;
  int64_t per_epoch = steps_per_epoch(r);
  if (!seen[TC_OPT_max_train_steps]) c->max_train_steps = c->epochs * per_epoch;
  if (!seen[TC_OPT_checkpointing_steps]) c->checkpointing_steps = 5 * per_epoch;
}

static void free_run(Run *r) {
  trainer_free(&r->model);
  trainer_free(&r->encoder);
  fc_close(&r->cache);
  td_close(&r->data);
  if (r->log) fclose(r->log);
  tb_close(r->tb);
}

int train_command(int argc, char **argv) {
  Run *r = calloc(1, sizeof *r);
  RtError err = {{0}};
  int64_t start = 0;
  int coeffs = 0;
  if (!r) return 1;
  for (int i = 0; i < argc; i++)
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      printf("usage: irepa-run train [options]   (kebab or snake case; --config FILE.yaml overwrites them)\n\n");
      tc_print_help(stdout);
      free(r);
      return 0;
    }
  TrainConfig *c = &r->c;
  bool seen[TC_NOPTS];
  bool ok = tc_from_args(c, argc, argv, seen, &err);
  r->jit = ok && tc_is_jit(c);
  if (r->jit) tc_jit_defaults(c, seen, stderr);
  ok = ok && tc_validate(c, &err) && check_supported(c, &err) && tc_proj_coeffs(c, &r->proj_coeff, 1, &coeffs, &err);
  r->repa = ok && (c->repa_loss || c->enable_repa) && r->proj_coeff != 0 && c->encoder_depth > 0;
  if (!ok || !check_alignment(r, &err)) {
    fprintf(stderr, "irepa-run train: error: %s\n", err.msg);
    free(r);
    return 2;
  }
  tc_warn(c, stderr);
  if (c->cache_features && !r->repa) fprintf(stderr, "train: --cache-features: no alignment, so no features to cache\n");
  train_set_threads((int)c->threads);
  ok = ok && td_open(&r->data, c, r->grey, &err); /* bad data is refused before the run folder is made */
  if (ok && r->jit) jit_epoch_steps(r, seen);
  if (ok && (c->online_eval || c->evaluate_gen)) ok = check_eval(r, &err);
  fprintf(stderr, "train: configuration\n");
  tc_print(c, stderr);
  ok = ok && prepare_run_dir(r, &start, &err);
  char path[PATH_BYTES];
  ok = ok && (!r->repa || setup_encoder(r, &err));
  ok = ok && (!r->repa || !c->cache_features || open_cache(r, &err));
  char *src = !ok ? NULL
              : r->jit ? jit_source(r, r->data.channels, r->data.side)
                       : sit_source(r, r->data.channels, r->data.side);
  const char *keep[2 * SAMPLER_MAX_ENTRIES];
  int nkeep = sampler_keep(r, keep);
  /* JiT: the jit trainer's AdamW groups and two EMAs (spec/training.md §5) */
  bool fp16 = !strcmp(c->mixed_precision, "fp16"), bf16 = !strcmp(c->mixed_precision, "bf16");
  const OptimOptions step_opt = {!r->jit, r->jit ? 2 : 1, c->gradient_accumulation_steps > 1,
                                 bf16 ? DT_BF16 : fp16 ? DT_F16 : DT_F32, fp16};
  ok = ok && src &&
       trainer_compile_opt(&r->model, "train.irg", src, "train_loss", &step_opt, keep, nkeep, c->backend, &err);
  free(src);
  bool on_c = ok && !strcmp(r->model.backend->name, "c");
  r->scaled = ok && fp16 && !on_c;
  r->loss_scale = c->loss_scale_init;
  if (ok && (bf16 || fp16) && (!on_c || seen[TC_OPT_mixed_precision]))
    fprintf(stderr, "train: --mixed-precision %s: %s\n", c->mixed_precision,
            on_c ? "the C backend computes in f32; low-precision matmuls are for the CUDA backends"
            : bf16 ? "matmuls in bf16 (f32 accumulation), the rest in f32"
                   : "matmuls in f16 (f32 accumulation), the rest in f32, with a dynamic loss scale");
  ok = ok && trainer_init(&r->model, (uint64_t)c->seed, &err);
  if (ok) {
    int64_t n = 0;
    for (int i = 0; i < r->model.params.n; i++) n += tensor_numel(r->model.params.items[i]);
    fprintf(stderr, "train: %s, %lld parameters, %s backend, %s; %s: %lld items of [%lld, %lld, %lld], batch %lld\n",
            c->model, (long long)n, r->model.backend->name,
            r->repa ? "with alignment" : r->jit ? "no alignment (vanilla JiT)" : "no alignment (vanilla SiT)",
            c->dataset, (long long)r->data.src.n, (long long)r->data.channels, (long long)r->data.side,
            (long long)r->data.side, (long long)c->batch_size);
  }
  if (ok && start > 0) {
    int64_t done = 0;
    ok = trainer_load(&r->model, checkpoint_path(r, start, path, sizeof path), &done, &err) &&
         (!r->scaled || load_scaler(r, path, &err));
    if (ok) fprintf(stderr, "train: resumed from %s (step %lld)\n", path, (long long)done);
  }
  if (ok && c->evaluate_gen && start == 0)
    ok = rt_fail(&err, "--evaluate-gen: no checkpoint in %s/checkpoints to evaluate", r->run_dir);
  /* written once the model compiled and loaded, so that a run that cannot
   * start leaves no run behind to refuse the next try; --evaluate-gen
   * changes nothing of the run, its configuration included */
  ok = ok && (c->evaluate_gen || tc_save_yaml(c, path_in(r, "config.yaml", path, sizeof path), &err));
  ok = ok && open_log(r, start, &err);
  ok = ok && (c->evaluate_gen ? online_eval(r, start, &err) : train_loop(r, start, &err));
  if (!ok) fprintf(stderr, "irepa-run train: error: %s\n", err.msg);
  free_run(r);
  free(r);
  return ok ? 0 : 1;
}
