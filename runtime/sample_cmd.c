/* sample_cmd.c: `irepa-run sample` (alias `generate`), the reference's
 * ldm/generate.py (spec/sampling_and_eval.md §2) on a checkpoint of
 * `irepa-run train`: the model rebuilt from the checkpoint's config, its
 * EMA weights, N samples by the samplers of sampler.h, written as PNGs
 * ({index:06d}.png), a grid PNG and an ADM-style .npz (arr_0, uint8 NHWC).
 *
 * Samples are drawn in batches aligned to the batch size: batch b holds
 * samples b·n .. b·n + n - 1 whatever part of the run a process does, so a
 * sample is computed in the same batch, bit for bit, by every run with the
 * same --per-proc-batch-size (BLAS results depend on the matrix sizes);
 * its randomness depends on (seed, index) alone (sampler.h). */
#include "sample_cmd.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "imagefolder.h"
#include "npz.h"
#include "pngwrite.h"
#include "safetensors.h"
#include "sampler.h"
#include "train_cmd.h"
#include "train_config.h"
#include "util.h"

enum { PATH_BYTES = 4200, GRID_MAX = 1024 };

/* ---- options ---------------------------------------------------------------- */

typedef enum { O_STR, O_INT, O_FLOAT, O_BOOL } OptKind;

typedef struct {
  const char *ckpt, *sample_dir, *model, *mode, *path_type, *backend, *shard, *z_dims;
  int64_t num_classes, encoder_depth, resolution, batch, num_samples, num_steps, seed, threads, grid;
  double cfg_scale, guidance_low, guidance_high;
  bool heun, no_ema, ema2, fused_attn, qk_norm, tf32, legacy;
  bool given_model, given_num_classes, given_encoder_depth, given_resolution, given_path_type;
} Args;

#define OFF(f) offsetof(Args, f)
static const struct {
  const char *name;
  OptKind kind;
  size_t off;
  const char *help;
} OPTIONS[] = {
    {"ckpt", O_STR, OFF(ckpt), "checkpoint of irepa-run train (required)"},
    {"sample-dir", O_STR, OFF(sample_dir), "parent folder of the outputs (samples)"},
    {"model", O_STR, OFF(model), "must be the checkpoint's model (default: the checkpoint's)"},
    {"num-classes", O_INT, OFF(num_classes), "must be the checkpoint's"},
    {"encoder-depth", O_INT, OFF(encoder_depth), "must be the checkpoint's (sampling uses no projector)"},
    {"resolution", O_INT, OFF(resolution), "must be the checkpoint's"},
    {"per-proc-batch-size", O_INT, OFF(batch), "samples per batch (256)"},
    {"num-fid-samples", O_INT, OFF(num_samples), "samples to write (50000)"},
    {"mode", O_STR, OFF(mode), "sde (default) or ode"},
    {"cfg-scale", O_FLOAT, OFF(cfg_scale), "classifier-free guidance scale, >= 1 (1: none)"},
    {"path-type", O_STR, OFF(path_type), "linear or cosine (default: the checkpoint's)"},
    {"num-steps", O_INT, OFF(num_steps), "sampler steps (250)"},
    {"heun", O_BOOL, OFF(heun), "Heun's correction (ode only)"},
    {"guidance-low", O_FLOAT, OFF(guidance_low), "guidance where low <= t <= high (0)"},
    {"guidance-high", O_FLOAT, OFF(guidance_high), "(1)"},
    {"global-seed", O_INT, OFF(seed), "seed of the noise and labels (0)"},
    {"fused-attn", O_BOOL, OFF(fused_attn), "accepted for the reference; no effect"},
    {"qk-norm", O_BOOL, OFF(qk_norm), "not supported (the checkpoint's model has none)"},
    {"tf32", O_BOOL, OFF(tf32), "accepted for the reference; no effect"},
    {"z-dims", O_STR, OFF(z_dims), "accepted for the reference; sampling uses no projector"},
    {"legacy", O_BOOL, OFF(legacy), "not supported (irepa's checkpoints use the current names)"},
    {"no-ema", O_BOOL, OFF(no_ema), "sample with the online weights, not the EMA"},
    {"ema2", O_BOOL, OFF(ema2), "JiT: sample with the second EMA (ema2.*, --ema-decay2), not the first"},
    {"backend", O_STR, OFF(backend), "auto (default), c, cuda or cuda-emu"},
    {"threads", O_INT, OFF(threads), "CPU threads (0: all cores)"},
    {"shard", O_STR, OFF(shard), "K/N: this process's share (whole batches), K in 0..N-1"},
    {"grid-size", O_INT, OFF(grid), "images in the grid PNG (64; 0: no grid)"},
};
enum { NOPTIONS = sizeof OPTIONS / sizeof OPTIONS[0] };

static void defaults(Args *a) {
  memset(a, 0, sizeof *a);
  a->sample_dir = "samples", a->model = "SiT-XL/2", a->mode = "sde", a->path_type = "linear", a->backend = "auto";
  a->num_classes = 1000, a->encoder_depth = 8, a->resolution = 256, a->batch = 256, a->num_samples = 50000;
  a->num_steps = 250, a->grid = 64;
  a->cfg_scale = 1.0, a->guidance_high = 1.0;
  a->fused_attn = true, a->tf32 = true;
}

/* "--per_proc_batch_size" and "--per-proc-batch-size" alike. */
static int find_option(const char *name, size_t len) {
  for (int i = 0; i < NOPTIONS; i++) {
    const char *o = OPTIONS[i].name;
    if (strlen(o) != len) continue;
    size_t k = 0;
    while (k < len && (name[k] == o[k] || (name[k] == '_' && o[k] == '-'))) k++;
    if (k == len) return i;
  }
  return -1;
}

static bool parse_bool(const char *s, bool *v) {
  static const char *const yes[] = {"true", "1", "yes"}, *const no[] = {"false", "0", "no"};
  for (int i = 0; i < 3; i++) {
    if (!strcmp(s, yes[i])) return *v = true, true;
    if (!strcmp(s, no[i])) return *v = false, true;
  }
  return false;
}

static bool set_value(Args *a, int i, const char *v, RtError *err) {
  void *dst = (char *)a + OPTIONS[i].off;
  const char *name = OPTIONS[i].name;
  char *end = NULL;
  errno = 0;
  switch (OPTIONS[i].kind) {
  case O_STR:
    *(const char **)dst = v;
    return *v ? true : rt_fail(err, "--%s needs a value", name);
  case O_INT: {
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno) return rt_fail(err, "--%s: '%s' is not an integer", name, v);
    *(int64_t *)dst = x;
    return true;
  }
  case O_FLOAT: {
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x)) return rt_fail(err, "--%s: '%s' is not a finite number", name, v);
    *(double *)dst = x;
    return true;
  }
  case O_BOOL:
    return parse_bool(v, (bool *)dst) ? true : rt_fail(err, "--%s: '%s' is not true or false", name, v);
  }
  return false;
}

static void mark_given(Args *a, const char *name) {
  if (!strcmp(name, "model")) a->given_model = true;
  if (!strcmp(name, "num-classes")) a->given_num_classes = true;
  if (!strcmp(name, "encoder-depth")) a->given_encoder_depth = true;
  if (!strcmp(name, "resolution")) a->given_resolution = true;
  if (!strcmp(name, "path-type")) a->given_path_type = true;
}

/* --name value, --name=value; a boolean alone is true, and takes a
 * true/false word as the next argument. */
static bool parse_args(Args *a, int argc, char **argv, RtError *err) {
  defaults(a);
  for (int k = 0; k < argc; k++) {
    const char *s = argv[k];
    if (strncmp(s, "--", 2)) return rt_fail(err, "unexpected argument '%s'", s);
    const char *eq = strchr(s + 2, '=');
    size_t len = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
    int i = find_option(s + 2, len);
    if (i < 0) return rt_fail(err, "unknown option '%.*s' (see irepa-run sample --help)", (int)(len + 2), s);
    const char *v = eq ? eq + 1 : NULL;
    bool b;
    if (!v && OPTIONS[i].kind == O_BOOL) v = k + 1 < argc && parse_bool(argv[k + 1], &b) ? argv[++k] : "true";
    if (!v && k + 1 >= argc) return rt_fail(err, "missing value for --%s", OPTIONS[i].name);
    if (!v) v = argv[++k];
    if (!set_value(a, i, v, err)) return false;
    mark_given(a, OPTIONS[i].name);
  }
  return true;
}

/* --shard K/N into *k, *n. */
static bool parse_shard(const char *s, int64_t *k, int64_t *n, RtError *err) {
  *k = 0, *n = 1;
  if (!s) return true;
  char *end;
  long long kk = strtoll(s, &end, 10), nn = *end == '/' ? strtoll(end + 1, &end, 10) : 0;
  if (*end || nn < 1 || kk < 0 || kk >= nn)
    return rt_fail(err, "--shard '%s': expected K/N with 0 <= K < N (this process's share of N)", s);
  *k = kk, *n = nn;
  return true;
}

static bool check_args(const Args *a, SamplerOptions *o, RtError *err) {
  if (!a->ckpt) return rt_fail(err, "--ckpt is required (a checkpoint of irepa-run train)");
  if (strcmp(a->mode, "ode") && strcmp(a->mode, "sde")) return rt_fail(err, "--mode '%s': expected ode or sde", a->mode);
  if (strcmp(a->path_type, "linear") && strcmp(a->path_type, "cosine"))
    return rt_fail(err, "--path-type '%s': expected linear or cosine", a->path_type);
  if (a->batch < 1 || a->num_samples < 1) return rt_fail(err, "--per-proc-batch-size and --num-fid-samples must be >= 1");
  if (a->grid < 0 || a->grid > GRID_MAX) return rt_fail(err, "--grid-size %lld: expected 0 to %d", (long long)a->grid, GRID_MAX);
  if (a->threads < 0) return rt_fail(err, "--threads must be >= 0");
  if (a->qk_norm) return rt_fail(err, "--qk-norm: not supported (irepa's SiT has no q/k norm)");
  if (a->legacy) return rt_fail(err, "--legacy: not supported (irepa's checkpoints use the current names)");
  if (!strcmp(a->backend, "interp")) return rt_fail(err, "--backend interp: sampling runs compiled kernels");
  if (a->no_ema && a->ema2) return rt_fail(err, "--no-ema and --ema2 name different weights; give one");
  *o = (SamplerOptions){!strcmp(a->mode, "ode") ? SAMPLER_ODE : SAMPLER_SDE, a->heun, a->num_steps, a->cfg_scale,
                        a->guidance_low, a->guidance_high};
  int64_t k, n;
  return sampler_check(o, err) && parse_shard(a->shard, &k, &n, err);
}

static void print_help(FILE *out) {
  fprintf(out, "usage: irepa-run sample --ckpt CHECKPOINT [options]   (alias: generate)\n\n"
               "Writes --num-fid-samples samples of a checkpoint of irepa-run train: PNGs\n"
               "SAMPLE_DIR/NAME/{index:06d}.png, a grid SAMPLE_DIR/NAME-grid.png and\n"
               "SAMPLE_DIR/NAME.npz (arr_0, uint8 NHWC), as ldm/generate.py names them.\n"
               "Options in kebab or snake case, --name value or --name=value:\n\n");
  for (int i = 0; i < NOPTIONS; i++) fprintf(out, "  --%-22s %s\n", OPTIONS[i].name, OPTIONS[i].help);
}

/* ---- the checkpoint ------------------------------------------------------------ */

/* The training configuration in the checkpoint's metadata, read as
 * irepa-run train reads a --config file. */
static bool read_config(const char *ckpt, TrainConfig *c, RtError *err) {
  StFile *f = st_open(ckpt, err);
  if (!f) return false;
  const char *format = st_metadata(f, "format"), *yaml = st_metadata(f, "config");
  bool ok = format && !strcmp(format, "irepa-checkpoint-1") && yaml
                ? true : rt_fail(err, "%s: not a checkpoint of irepa-run train (its metadata has %s)", ckpt,
                                 !format ? "no format" : strcmp(format, "irepa-checkpoint-1") ? "another format"
                                                                                               : "no config");
  char tmp[] = "/tmp/irepa-ckpt-config-XXXXXX";
  int fd = ok ? mkstemp(tmp) : -1;
  if (ok && fd < 0) ok = rt_fail(err, "cannot make a temporary file: %s", strerror(errno));
  if (ok) {
    size_t len = strlen(yaml);
    ok = write(fd, yaml, len) == (ssize_t)len ? true : rt_fail(err, "%s: %s", tmp, strerror(errno));
    close(fd);
    tc_defaults(c);
    RtError e2;
    if (ok && !tc_load_yaml(c, tmp, &e2)) ok = rt_fail(err, "%s: its config metadata does not read: %s", ckpt, e2.msg);
    unlink(tmp);
  }
  st_close(f);
  return ok;
}

/* The options that name the model must agree with the checkpoint. */
static bool check_model(const Args *a, const TrainConfig *c, RtError *err) {
  if (a->given_model && strcmp(a->model, c->model))
    return rt_fail(err, "--model %s: %s is a checkpoint of %s", a->model, a->ckpt, c->model);
  struct {
    bool given;
    const char *name;
    int64_t want, have;
  } ints[] = {{a->given_num_classes, "num-classes", a->num_classes, c->num_classes},
              {a->given_encoder_depth, "encoder-depth", a->encoder_depth, c->encoder_depth},
              {a->given_resolution, "resolution", a->resolution, c->resolution}};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
    if (ints[i].given && ints[i].want != ints[i].have)
      return rt_fail(err, "--%s %lld: %s was trained with %lld", ints[i].name, (long long)ints[i].want, a->ckpt,
                     (long long)ints[i].have);
  if (!strcmp(c->dataset, "latents"))
    return rt_fail(err, "%s: a model of latents; decoding its samples needs the SD-VAE, which irepa does not have yet",
                   a->ckpt);
  return true;
}

static bool is_jit(const TrainConfig *c) { return !strncmp(c->model, "JiT-", 4); }

/* JiT (docs/jit.md) samples with its own ODE: Euler, or Heun with --heun. */
static bool jit_mode(const TrainConfig *c, const char *ckpt, SamplerOptions *o, RtError *err) {
  if (!is_jit(c)) return true;
  if (o->mode == SAMPLER_SDE)
    return rt_fail(err, "--mode sde: %s is a JiT, whose sampler is an ODE: give --mode ode (Euler) or --mode ode "
                        "--heun", ckpt);
  o->mode = SAMPLER_JIT;
  return true;
}

/* Channels and side of the model's input, from its patch embedding and
 * position table in the checkpoint ([D, C, p, p] and [1, T, D]; JiT's
 * under net., its first patch conv proj1). */
static bool geometry(const char *ckpt, bool jit, int64_t *channels, int64_t *side, RtError *err) {
  StFile *f = st_open(ckpt, err);
  if (!f) return false;
  const char *wname = jit ? "net.x_embedder.proj1.weight" : "x_embedder.proj.weight",
             *pname = jit ? "net.pos_embed" : "pos_embed";
  const Tensor *w = tensorlist_find(st_tensors(f), wname), *pos = tensorlist_find(st_tensors(f), pname);
  bool ok = w && pos && w->rank == 4 && pos->rank == 3
                ? true : rt_fail(err, "%s: no %s weights (%s, %s)", ckpt, jit ? "JiT" : "SiT", wname, pname);
  if (ok) {
    int64_t grid = (int64_t)llround(sqrt((double)pos->shape[1]));
    *channels = w->shape[1], *side = grid * w->shape[2];
  }
  st_close(f);
  return ok;
}

/* The model as irepa-run train builds it (train_sit.c), without projectors:
 * sampling needs the network alone (the reference's eval_mode). */
static char *model_source(const TrainConfig *c, const char *path_type, int64_t channels, int64_t side) {
  char *s = NULL;
  if (is_jit(c)) {
    int n = asprintf(&s,
                     "import \"jit.irg\";\n"
                     "model = JiTDenoiser(model = \"%s\", img_size = %lld, in_channels = %lld, class_num = %lld,\n"
                     "                    encoder_depth = 0, z_dims = []);\n",
                     c->model, (long long)side, (long long)channels, (long long)c->num_classes);
    return n < 0 ? NULL : s;
  }
  int n = asprintf(&s,
                   "import \"sit.irg\";\n"
                   "model = SiT(model = \"%s\", input_size = %lld, in_channels = %lld, num_classes = %lld,\n"
                   "            class_dropout_prob = %.17g, encoder_depth = %lld, z_dims = [],\n"
                   "            path_type = \"%s\");\n",
                   c->model, (long long)side, (long long)channels, (long long)c->num_classes, 0.1,
                   (long long)c->encoder_depth, path_type);
  return n < 0 ? NULL : s;
}

typedef struct {
  Args a;
  SamplerOptions o;
  TrainConfig c;
  Trainer model;
  int64_t channels, side, step, shard, nshards;
  char folder[PATH_BYTES], npz[PATH_BYTES + 8], grid[PATH_BYTES + 16];
} Job;

static const char *weights_prefix(const Args *a) { return a->no_ema ? "" : a->ema2 ? "ema2." : "ema."; }
static const char *weights_name(const Args *a) { return a->no_ema ? "online" : a->ema2 ? "second EMA" : "EMA"; }

/* Whether the checkpoint holds a tensor whose name starts with prefix. */
static bool st_has_prefix(const char *path, const char *prefix, RtError *err) {
  StFile *f = st_open(path, err);
  const TensorList *all = f ? st_tensors(f) : NULL;
  bool found = false;
  for (int i = 0; all && i < all->n && !found; i++) found = !strncmp(all->items[i]->name, prefix, strlen(prefix));
  st_close(f);
  return found;
}

static bool load_model(Job *j, RtError *err) {
  const char *names[SAMPLER_MAX_ENTRIES];
  int n = sampler_entries(&j->o, names);
  const char *path = j->a.given_path_type ? j->a.path_type : j->c.path_type;
  char *src = model_source(&j->c, path, j->channels, j->side);
  bool ok = src ? trainer_compile_inference(&j->model, "sample.irg", src, names, n, j->a.backend, err)
                : rt_fail(err, "out of memory");
  free(src);
  if (ok && j->a.ema2 && !st_has_prefix(j->a.ckpt, "ema2.", err))
    return rt_fail(err, "--ema2: %s has no second EMA (ema2.*): only a JiT's training keeps one", j->a.ckpt);
  return ok && trainer_load_weights(&j->model, j->a.ckpt, weights_prefix(&j->a), &j->step, err);
}

/* ---- names --------------------------------------------------------------------- */

/* A float as Python's str() writes it: the shortest text that reads back,
 * with ".0" on whole numbers. */
static void py_float(double x, char *buf, size_t size) {
  for (int p = 1; p <= 17; p++) {
    snprintf(buf, size, "%.*g", p, x);
    if (strtod(buf, NULL) == x) break;
  }
  if (!strpbrk(buf, ".en")) strncat(buf, ".0", size - strlen(buf) - 1);
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* ldm/generate.py's folder: SAMPLE_DIR/{exp}_{hparams}, exp the folder
 * that holds checkpoints/, hparams cfg{s}[_{lo}_{hi}]-seed{seed}-mode{mode}
 * -steps{K}_{checkpoint name}; irepa adds "-heun" after the mode. */
static void output_names(Job *j) {
  char dir[PATH_BYTES], exp[PATH_BYTES], ckpt[PATH_BYTES], cfg[40], lo[40], hi[40], interval[100] = "";
  snprintf(dir, sizeof dir, "%s", j->a.ckpt);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
  else snprintf(dir, sizeof dir, ".");
  const char *parent = base_name(dir);
  if (!strcmp(parent, "checkpoints") && (slash = strrchr(dir, '/'))) {
    *slash = '\0';
    parent = base_name(dir);
  } else if (!strcmp(parent, "checkpoints")) {
    parent = ".";
  }
  snprintf(exp, sizeof exp, "%s", !strcmp(parent, ".") || !*parent ? "sample" : parent);
  snprintf(ckpt, sizeof ckpt, "%s", base_name(j->a.ckpt));
  char *dot = strrchr(ckpt, '.');
  if (dot && dot != ckpt) *dot = '\0';
  py_float(j->a.cfg_scale, cfg, sizeof cfg);
  if (j->a.guidance_low != 0.0 || j->a.guidance_high != 1.0) {
    py_float(j->a.guidance_low, lo, sizeof lo);
    py_float(j->a.guidance_high, hi, sizeof hi);
    snprintf(interval, sizeof interval, "_%s_%s", lo, hi);
  }
  snprintf(j->folder, sizeof j->folder, "%s/%.1000s_cfg%s%s-seed%lld-mode%s%s-steps%lld_%.1000s", j->a.sample_dir, exp,
           cfg, interval, (long long)j->a.seed, j->a.mode, j->a.heun ? "-heun" : "", (long long)j->a.num_steps, ckpt);
  snprintf(j->npz, sizeof j->npz, "%s.npz", j->folder);
  snprintf(j->grid, sizeof j->grid, "%s-grid.png", j->folder);
}

static const char *png_path(const Job *j, int64_t index, char *buf, size_t size) {
  snprintf(buf, size, "%s/%06lld.png", j->folder, (long long)index);
  return buf;
}

/* ---- progress -------------------------------------------------------------------- */

typedef struct {
  double t0;
  int64_t done, total, batch; /* samples written, of total; the batch in flight */
} Progress;

static void show(Progress *p, double done) {
  double el = monotonic_seconds() - p->t0, rate = done > 0 ? done / el : 0, eta = rate > 0 ? ((double)p->total - done) / rate : 0;
  int width = 30, fill = (int)(width * done / (double)p->total);
  char bar[64];
  for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
  bar[width] = '\0';
  fprintf(stderr, "\rsample: [%s] %lld/%lld  %.2f samples/s  ETA %dh%02dm%02ds   ", bar, (long long)(done + 0.5),
          (long long)p->total, rate, (int)(eta / 3600), (int)fmod(eta / 60, 60), (int)fmod(eta, 60));
}

static void on_step(void *ctx, int64_t k, int64_t nsteps) {
  Progress *p = ctx;
  show(p, (double)p->done + (double)p->batch * (double)k / (double)nsteps);
}

/* ---- writing ---------------------------------------------------------------------- */

typedef struct {
  NpzWriter *npz;  /* NULL when this process writes a shard */
  uint8_t *grid;   /* the first min(grid, N) images */
  int64_t ngrid;
} Outputs;

static bool write_batch(Job *j, Outputs *out, int64_t first, int64_t count, const uint8_t *img, RtError *err) {
  int64_t per = j->channels * j->side * j->side;
  char path[PATH_BYTES + 64];
  bool ok = true;
  for (int64_t i = 0; ok && i < count; i++)
    ok = png_write(png_path(j, first + i, path, sizeof path), img + i * per, (int)j->side, (int)j->side,
                   (int)j->channels, err);
  for (int64_t i = 0; ok && i < count && first + i < out->ngrid; i++)
    memcpy(out->grid + (first + i) * per, img + i * per, (size_t)per);
  return ok && (!out->npz || npz_writer_append(out->npz, img, count, err));
}

static bool write_grid(const Job *j, const Outputs *out, RtError *err) {
  if (out->ngrid == 0) return true;
  int cols = (int)lround(sqrt((double)out->ngrid));
  return png_write_grid(j->grid, out->grid, out->ngrid, (int)j->side, (int)j->side, (int)j->channels, cols, 2, err);
}

/* Batches [b0, b1) of the run, each of the full batch size; samples past
 * N are drawn (the batch stays the same) and dropped. */
static bool sample_batches(Job *j, Outputs *out, int64_t b0, int64_t b1, RtError *err) {
  int64_t n = j->a.batch, total = j->a.num_samples, per = j->channels * j->side * j->side;
  uint8_t *img = malloc((size_t)(n * per));
  Progress p = {monotonic_seconds(), 0, 0, n};
  for (int64_t b = b0; b < b1; b++) p.total += (b * n + n < total ? n : total - b * n);
  SamplerModel m = {&j->model, false, NULL, NULL};
  SamplerProgress sp = {on_step, &p};
  bool ok = img ? true : rt_fail(err, "out of memory");
  for (int64_t b = b0; ok && b < b1; b++) {
    Tensor *x = NULL, *y = NULL;
    int64_t first = b * n, count = first + n < total ? n : total - first;
    p.batch = count;
    ok = sampler_prepare(first, n, j->channels, j->side, j->c.num_classes, (uint64_t)j->a.seed, &x, &y, err);
    ok = ok && sampler_run(&m, &j->o, x, y, (uint64_t)j->a.seed, first, &sp, err);
    if (ok) sampler_to_uint8(x, false, img);
    ok = ok && write_batch(j, out, first, count, img, err);
    p.done += count;
    tensor_free(x);
    tensor_free(y);
  }
  fputc('\n', stderr);
  free(img);
  return ok;
}

/* With shards: once every PNG is there, whichever process sees it writes
 * the .npz and the grid from them (both atomic: two that race write the
 * same bytes). */
static bool assemble(Job *j, RtError *err) {
  char path[PATH_BYTES + 64];
  struct stat st;
  for (int64_t i = 0; i < j->a.num_samples; i++)
    if (stat(png_path(j, i, path, sizeof path), &st) != 0) {
      fprintf(stderr, "sample: shard %lld/%lld done; %s is missing, so another shard writes the .npz\n",
              (long long)j->shard, (long long)j->nshards, path);
      return true;
    }
  int64_t per = j->channels * j->side * j->side, shape[4] = {j->a.num_samples, j->side, j->side, j->channels};
  Outputs out = {npz_writer_open(j->npz, "arr_0", DT_U8, 4, shape, err), NULL, j->a.grid < shape[0] ? j->a.grid : shape[0]};
  uint8_t *img = malloc((size_t)per);
  out.grid = malloc((size_t)(out.ngrid * per + 1));
  bool ok = out.npz && img && out.grid ? true : rt_fail(err, "cannot start %s", j->npz);
  for (int64_t i = 0; ok && i < j->a.num_samples; i++) {
    ImfImage im = {0};
    ok = imf_decode(png_path(j, i, path, sizeof path), &im, err);
    ok = ok && (im.w == j->side && im.h == j->side ? true : rt_fail(err, "%s: not %lld×%lld", path,
                                                                     (long long)j->side, (long long)j->side));
    for (int64_t p = 0; ok && p < j->side * j->side; p++) /* RGB back to the model's channels (grey: the first) */
      for (int64_t c = 0; c < j->channels; c++) img[p * j->channels + c] = im.rgb[p * 3 + c];
    imf_image_free(&im);
    if (ok && i < out.ngrid) memcpy(out.grid + i * per, img, (size_t)per);
    ok = ok && npz_writer_append(out.npz, img, 1, err);
  }
  if (ok) { /* close frees the writer, also when it fails */
    ok = npz_writer_close(out.npz, err);
    out.npz = NULL;
    ok = ok && write_grid(j, &out, err);
  }
  if (out.npz) npz_writer_abort(out.npz);
  free(img);
  free(out.grid);
  if (ok) fprintf(stderr, "sample: every shard is done; wrote %s and %s\n", j->npz, j->grid);
  return ok;
}

static bool run_job(Job *j, RtError *err) {
  int64_t n = j->a.batch, nb = (j->a.num_samples + n - 1) / n;
  int64_t b0 = nb * j->shard / j->nshards, b1 = nb * (j->shard + 1) / j->nshards;
  if (!rt_make_dirs(j->folder, 0777, err)) return false;
  fprintf(stderr, "sample: %s (step %lld, %s weights), %s%s, %lld steps, cfg %g on [%g, %g]; samples %lld..%lld of %lld "
                  "in batches of %lld into %s\n",
          j->c.model, (long long)j->step, weights_name(&j->a), j->a.mode, j->a.heun ? " (Heun)" : "",
          (long long)j->a.num_steps, j->a.cfg_scale, j->a.guidance_low, j->a.guidance_high, (long long)(b0 * n),
          (long long)(b1 * n < j->a.num_samples ? b1 * n : j->a.num_samples) - 1, (long long)j->a.num_samples,
          (long long)n, j->folder);
  if (j->nshards > 1) return sample_batches(j, &(Outputs){0}, b0, b1, err) && assemble(j, err);
  int64_t per = j->channels * j->side * j->side, shape[4] = {j->a.num_samples, j->side, j->side, j->channels};
  Outputs out = {npz_writer_open(j->npz, "arr_0", DT_U8, 4, shape, err), NULL, j->a.grid < shape[0] ? j->a.grid : shape[0]};
  out.grid = out.npz ? malloc((size_t)(out.ngrid * per + 1)) : NULL;
  bool ok = out.grid ? sample_batches(j, &out, b0, b1, err) : (out.npz ? rt_fail(err, "out of memory") : false);
  if (ok) { /* close frees the writer, also when it fails */
    ok = npz_writer_close(out.npz, err);
    out.npz = NULL;
    ok = ok && write_grid(j, &out, err);
  }
  if (out.npz) npz_writer_abort(out.npz);
  free(out.grid);
  if (ok) fprintf(stderr, "sample: wrote %lld PNGs in %s, %s and %s\n", (long long)j->a.num_samples, j->folder, j->npz,
                  j->grid);
  return ok;
}

/* ---- the command -------------------------------------------------------------------- */

int sample_command(int argc, char **argv) {
  for (int i = 0; i < argc; i++)
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      print_help(stdout);
      return 0;
    }
  Job *j = calloc(1, sizeof *j);
  RtError err = {{0}};
  if (!j) return 1;
  if (!parse_args(&j->a, argc, argv, &err) || !check_args(&j->a, &j->o, &err) ||
      !parse_shard(j->a.shard, &j->shard, &j->nshards, &err)) {
    fprintf(stderr, "irepa-run sample: error: %s\n", err.msg);
    free(j);
    return 2;
  }
  train_set_threads((int)j->a.threads);
  bool ok = read_config(j->a.ckpt, &j->c, &err) && check_model(&j->a, &j->c, &err) &&
            jit_mode(&j->c, j->a.ckpt, &j->o, &err) &&
            geometry(j->a.ckpt, is_jit(&j->c), &j->channels, &j->side, &err) && load_model(j, &err);
  if (ok) output_names(j);
  ok = ok && run_job(j, &err);
  if (!ok) fprintf(stderr, "irepa-run sample: error: %s\n", err.msg);
  trainer_free(&j->model);
  free(j);
  return ok ? 0 : 1;
}
