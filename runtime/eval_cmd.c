/* eval_cmd.c: `irepa-run eval`, the ADM evaluation suite's metrics
 * (FID, Inception Score, precision and recall; fid.c) on .npz files of
 * uint8 NHWC images (npz.c), with a feature network run by the compiled
 * backends (trainer.h).
 *
 * The feature networks are a table: a name, how the model is compiled,
 * its entries, its input, where its weights are. Only the Fashion-MNIST
 * classifier is there, and with it every number is a *domain* metric, so
 * every name printed or written carries the network's name; ImageNet's
 * Inception-v3 would be one more row (and its own preprocessing). */
#include "eval_cmd.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fid.h"
#include "fileio.h"
#include "idx.h"
#include "npz.h"
#include "train_cmd.h"
#include "util.h"

enum { EXIT_FAIL = 1, EXIT_BAD = 2, PR_K = 3 };

static const char usage[] =
    "usage: irepa-run eval SAMPLES.npz REFERENCE [options]\n"
    "       irepa-run eval --save-stats OUT.npz IMAGES [options]\n"
    "\n"
    "Evaluates samples against a reference as the ADM suite does: FID, Inception\n"
    "Score, precision and recall (k = 3). Each .npz holds arr_0, uint8 images\n"
    "[N, H, W, C]; a REFERENCE with mu and sigma but no arr_0 (from --save-stats)\n"
    "gives the FID only. REFERENCE (or IMAGES) may also be fashion-mnist:test or\n"
    "fashion-mnist:train, the built-in data set's images ($IREPA_FMNIST_DIR, else\n"
    "Debian's dataset-fashion-mnist), padded to 32x32 as training pads them.\n"
    "With fmnist-vit the features are those of irepa's own\n"
    "Fashion-MNIST classifier: domain metrics, not comparable with Inception ones.\n"
    "\n"
    "options:\n"
    "  --features NAME        feature network (default fmnist-vit, the only one)\n"
    "  --encoder-weights FILE its weights (default OUTPUT_DIR/encoders/fmnist-vit.safetensors)\n"
    "  --output-dir DIR       (default exps)\n"
    "  --batch-size N         images per network call (default 256)\n"
    "  --split-size N         Inception Score split (default 5000, as ADM)\n"
    "  --backend B            auto, c, cuda or cuda-emu (default auto)\n"
    "  --threads N            CPU threads (default 0: all cores)\n"
    "  --out FILE.json        also write the results as JSON\n"
    "  --save-stats OUT.npz   write mu and sigma (f64) of IMAGES.npz's features\n";

/* ---- feature networks ----------------------------------------------------- */

typedef struct FeatureNet FeatureNet;

/* n images of h x w x c bytes to the network's f32 input; false (with the
 * image index in *bad) for an image it cannot take. */
typedef bool (*PrepFn)(const FeatureNet *net, const uint8_t *u8, int64_t n, int64_t h, int64_t w, int64_t c,
                       float *out, int64_t *bad);

struct FeatureNet {
  const char *name, *what;
  bool (*compile)(Trainer *t, const char *backend, RtError *err);
  const char *(*default_weights)(const char *output_dir, char *buf, size_t size);
  const char *pooled;                  /* entry: the features [B, D] */
  const char *head_weight, *head_bias; /* logits = features · Wᵀ + b, on the host */
  int side, channels;                  /* the input: f32 [B, channels, side, side] */
  PrepFn prep;
  const char *accepts;                 /* what images prep takes, for messages */
};

/* Fashion-MNIST: grey 32 x 32 (28 x 28 is padded by 2 with black, as
 * fmnist_load pads), x / 127.5 - 1 as the trainer feeds the classifier;
 * three equal channels are taken as grey, colour is refused. */
static bool prep_fmnist(const FeatureNet *net, const uint8_t *u8, int64_t n, int64_t h, int64_t w, int64_t c,
                        float *out, int64_t *bad) {
  int64_t side = net->side, pad = (side - h) / 2;
  for (int64_t i = 0; i < n; i++) {
    float *o = out + i * side * side;
    for (int64_t p = 0; p < side * side; p++) o[p] = -1.0f;
    for (int64_t y = 0; y < h; y++)
      for (int64_t x = 0; x < w; x++) {
        const uint8_t *px = u8 + ((i * h + y) * w + x) * c;
        if (c == 3 && (px[1] != px[0] || px[2] != px[0])) return *bad = i, false;
        o[(y + pad) * side + x + pad] = (float)px[0] / 127.5f - 1.0f;
      }
  }
  return true;
}

static bool fits_fmnist(int64_t h, int64_t w, int64_t c) { return h == w && (h == 32 || h == 28) && (c == 1 || c == 3); }

static const FeatureNet feature_nets[] = {
    {"fmnist-vit", "irepa's Fashion-MNIST ViT classifier (models/encoders/fmnist_vit.irg)", train_encoder_program,
     train_default_encoder_path, "pooled", "head.weight", "head.bias", 32, 1, prep_fmnist,
     "grey 32x32 or 28x28 images, [N, H, W, 1] or [N, H, W]"},
};

static const FeatureNet *find_net(const char *name) {
  for (size_t i = 0; i < sizeof feature_nets / sizeof feature_nets[0]; i++)
    if (!strcmp(feature_nets[i].name, name)) return &feature_nets[i];
  return NULL;
}

static bool net_fits(const FeatureNet *net, int64_t h, int64_t w, int64_t c) {
  return net->prep == prep_fmnist ? fits_fmnist(h, w, c) : h == net->side && w == net->side;
}

/* ---- options -------------------------------------------------------------- */

typedef struct {
  const char *samples, *reference, *features, *weights, *output_dir, *backend, *out, *save_stats;
  int64_t batch, split, threads;
} EvalOptions;

static int usage_error(const char *fmt, const char *arg) {
  fputs("irepa-run eval: error: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs(" (see 'irepa-run eval --help')\n", stderr);
  return EXIT_BAD;
}

static int parse_value(EvalOptions *o, int argc, char **argv, int *i) {
  const char *v;
  struct { const char *name; const char **dst; } strs[] = {
      {"--features", &o->features}, {"--encoder-weights", &o->weights}, {"--output-dir", &o->output_dir},
      {"--backend", &o->backend},   {"--out", &o->out},                 {"--save-stats", &o->save_stats}};
  for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++)
    if ((v = cli_option_value(strs[k].name, argc, argv, i))) {
      if (!*v) return usage_error("%s needs a value", strs[k].name);
      *strs[k].dst = v;
      return -1;
    }
  struct { const char *name; int64_t *dst, lo, hi; } ints[] = {
      {"--batch-size", &o->batch, 1, 1 << 20}, {"--split-size", &o->split, 1, INT64_MAX}, {"--threads", &o->threads, 0, 4096}};
  for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
    if ((v = cli_option_value(ints[k].name, argc, argv, i))) {
      if (!parse_int_in(v, ints[k].lo, ints[k].hi, ints[k].dst)) return usage_error("%s: '%s' is not an integer in range", v);
      return -1;
    }
  return usage_error("unknown option '%s'", argv[*i]);
}

static int parse(EvalOptions *o, int argc, char **argv) {
  const char *pos[3] = {NULL, NULL, NULL};
  int npos = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return fputs(usage, stdout), 0;
    if (argv[i][0] == '-' && argv[i][1]) {
      int rc = parse_value(o, argc, argv, &i);
      if (rc >= 0) return rc;
    } else if (npos < 3) pos[npos++] = argv[i];
    else return usage_error("unexpected argument '%s'", argv[i]);
  }
  if (!find_net(o->features)) return usage_error("unknown feature network '%s' (available: fmnist-vit)", o->features);
  if (o->save_stats && npos != 1) return usage_error("%s", "--save-stats OUT.npz takes one IMAGES.npz");
  if (!o->save_stats && npos != 2) return usage_error("%s", "eval needs SAMPLES.npz and REFERENCE.npz");
  o->samples = pos[0], o->reference = pos[1];
  if (strcmp(o->backend, "auto") && strcmp(o->backend, "c") && strcmp(o->backend, "cuda") && strcmp(o->backend, "cuda-emu"))
    return usage_error("unknown backend '%s' (auto, c, cuda, cuda-emu)", o->backend);
  return -1;
}

/* ---- inputs --------------------------------------------------------------- */

typedef struct {
  const char *path;
  NpzFile *f;
  uint8_t *mem; /* the images held in memory ([n, h, w, c]) instead of f's arr_0 */
  int64_t n, h, w, c; /* images, when arr_0 is there */
  bool images;
  FidStats stats; /* from mu / sigma, when images is false */
} Input;

static void input_close(Input *in) {
  npz_close(in->f);
  free(in->mem);
  fid_stats_free(&in->stats);
}

/* arr_0 must be uint8 images the network takes. */
static bool check_images(Input *in, const NpzArray *a, const FeatureNet *net, RtError *err) {
  char shape[128] = "";
  for (int k = 0; k < a->rank; k++)
    snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", k ? "," : "", (long long)a->shape[k]);
  if (a->dtype != DT_U8 || (a->rank != 3 && a->rank != 4))
    return rt_fail(err, "%s: arr_0 is %s[%s]; expected uint8 images [N, H, W, C] (as ADM's sample batches)", in->path,
                   dtype_name(a->dtype), shape);
  in->n = a->shape[0], in->h = a->shape[1], in->w = a->shape[2], in->c = a->rank == 4 ? a->shape[3] : 1;
  if (in->n == 0) return rt_fail(err, "%s: arr_0 holds no images (shape [%s])", in->path, shape);
  if (!net_fits(net, in->h, in->w, in->c))
    return rt_fail(err, "%s: arr_0 holds images of shape [%s]; the %s features take %s", in->path, shape, net->name,
                   net->accepts);
  return in->images = true;
}

/* Statistics of a reference without images. */
static bool read_stats(Input *in, RtError *err) {
  Tensor *mu = npz_read(in->f, "mu", err), *sigma = mu ? npz_read(in->f, "sigma", err) : NULL;
  bool ok = sigma && fid_stats_from(mu, sigma, &in->stats, err);
  if (!ok && mu && sigma) {
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    rt_fail(err, "%s: %s", in->path, msg);
  }
  const NpzArray *n = npz_find(in->f, "n");
  if (ok && n && !n->error && n->rank == 0) {
    Tensor *t = npz_read(in->f, "n", err);
    in->stats.n = t ? (int64_t)tensor_get(t, 0) : 0;
    tensor_free(t);
  }
  tensor_free(mu);
  tensor_free(sigma);
  return ok;
}

/* "fashion-mnist:SPLIT": the built-in data set as a reference, so a domain
 * FID needs no exported .npz. fmnist_load gives what the SiT trains on
 * (x / 127.5 - 1, padded to 32 x 32 with -1); that maps back to the bytes
 * exactly (k / 127.5 * 127.5 rounds to k), so these are the very images,
 * padded as prep_fmnist pads 28 x 28 ones. */
static const char fmnist_prefix[] = "fashion-mnist:";

static bool open_fmnist(Input *in, const char *split, const FeatureNet *net, RtError *err) {
  const char *idx = !strcmp(split, "test") || !strcmp(split, "t10k") ? "t10k" : !strcmp(split, "train") ? "train" : NULL;
  if (!idx) return rt_fail(err, "%s: unknown Fashion-MNIST split '%s' (test or train)", in->path, split);
  Tensor *img = NULL, *lab = NULL;
  bool ok = fmnist_load(fmnist_dir(), idx, &img, &lab, err);
  if (ok) {
    in->n = img->shape[0], in->h = img->shape[2], in->w = img->shape[3], in->c = 1;
    ok = net_fits(net, in->h, in->w, in->c) ||
         rt_fail(err, "%s: %lldx%lld images; the %s features take %s", in->path, (long long)in->h, (long long)in->w,
                 net->name, net->accepts);
  }
  int64_t total = ok ? in->n * in->h * in->w : 0;
  if (ok && !(in->mem = malloc((size_t)total))) ok = rt_fail(err, "%s: out of memory", in->path);
  for (int64_t i = 0; ok && i < total; i++) in->mem[i] = (uint8_t)lrintf((((float *)img->data)[i] + 1.0f) * 127.5f);
  tensor_free(img);
  tensor_free(lab);
  return ok && (in->images = true);
}

static bool open_input(Input *in, const char *path, bool stats_ok, const FeatureNet *net, RtError *err) {
  memset(in, 0, sizeof *in);
  in->path = path;
  if (!strncmp(path, fmnist_prefix, sizeof fmnist_prefix - 1))
    return open_fmnist(in, path + sizeof fmnist_prefix - 1, net, err);
  if (!(in->f = npz_open(path, err))) return false;
  const NpzArray *a = npz_find(in->f, "arr_0");
  if (a) return npz_get(in->f, "arr_0", err) && check_images(in, a, net, err);
  if (stats_ok && npz_find(in->f, "mu") && npz_find(in->f, "sigma")) return read_stats(in, err);
  return rt_fail(err, "%s: no arr_0 (uint8 images)%s", path, stats_ok ? " and no mu/sigma statistics" : "");
}

/* ---- features ------------------------------------------------------------- */

typedef struct {
  const FeatureNet *net;
  Trainer t;
  int64_t batch;
  double t0;
} Extractor;

/* Missing weights, or weights of another model, are bad inputs (2); a
 * model or backend that fails is 1. */
static int open_net(Extractor *x, const EvalOptions *o, RtError *err) {
  char def[4096];
  const char *path = o->weights ? o->weights : x->net->default_weights(o->output_dir, def, sizeof def);
  struct stat st;
  if (stat(path, &st) != 0)
    return rt_fail(err, "%s weights %s: %s (train them with: irepa-run train-encoder --output %s)", x->net->name,
                   path, strerror(errno), path), EXIT_BAD;
  if (!x->net->compile(&x->t, o->backend, err) || !trainer_init(&x->t, 0, err)) return EXIT_FAIL;
  if (!train_load_weights(&x->t, path, err)) return EXIT_BAD;
  fprintf(stderr, "eval: %s features (%s), weights %s, %s backend\n", x->net->name, x->net->what, path,
          x->t.backend->name);
  return 0;
}

/* One batch of images through the network; the features go to rows
 * [first, first + n) of feats. */
static bool run_batch(Extractor *x, const Input *in, int64_t first, int64_t n, uint8_t *u8, Tensor *feats,
                      bool *bad_input, RtError *err) {
  const FeatureNet *net = x->net;
  int64_t shape[4] = {n, net->channels, net->side, net->side}, bad = 0;
  size_t row = (size_t)(in->h * in->w * in->c);
  if (in->mem) memcpy(u8, in->mem + (size_t)first * row, (size_t)n * row);
  else if (!npz_read_rows(in->f, "arr_0", first, n, u8, err)) return *bad_input = true, false;
  Tensor *img = tensor_new("x", DT_F32, 4, shape, err);
  if (!img) return false;
  if (!net->prep(net, u8, n, in->h, in->w, in->c, img->data, &bad)) {
    tensor_free(img);
    *bad_input = true;
    return rt_fail(err, "%s: image %lld is in colour (its channels differ); the %s features take %s", in->path,
                   (long long)(first + bad), net->name, net->accepts);
  }
  TensorList args = {0}, out = {0};
  bool ok = tensorlist_add(&args, img, err) && trainer_run(&x->t, net->pooled, &args, false, &out, err);
  if (!args.n) tensor_free(img);
  tensorlist_free(&args);
  if (ok && (out.n < 1 || out.items[0]->rank != 2 || out.items[0]->shape[1] != feats->shape[1]))
    ok = rt_fail(err, "%s: entry %s did not return [B, %lld] features", net->name, net->pooled,
                 (long long)feats->shape[1]);
  for (int64_t i = 0; ok && i < n * feats->shape[1]; i++)
    ((float *)feats->data)[first * feats->shape[1] + i] = (float)tensor_get(out.items[0], i);
  tensorlist_free(&out);
  return ok;
}

static int64_t feature_dim(const Extractor *x) {
  const XEntry *e = irx_entry(&x->t.prog, x->net->pooled);
  return e && e->noutputs > 0 && e->outputs[0].shape.rank == 2 ? e->outputs[0].shape.d[1].n : 0;
}

/* The features [N, D] (f32, as the network computes them) of every image. */
static Tensor *features_of(Extractor *x, const Input *in, bool *bad_input, RtError *err) {
  int64_t d = feature_dim(x), shape[2] = {in->n, d};
  if (d < 1) return rt_fail(err, "%s: entry %s has no [B, D] output", x->net->name, x->net->pooled), NULL;
  Tensor *feats = tensor_new("features", DT_F32, 2, shape, err);
  uint8_t *u8 = malloc((size_t)(x->batch * in->h * in->w * in->c));
  bool ok = feats && (u8 || rt_fail(err, "out of memory"));
  double t0 = monotonic_seconds();
  for (int64_t i = 0; ok && i < in->n; i += x->batch) {
    int64_t n = in->n - i < x->batch ? in->n - i : x->batch;
    ok = run_batch(x, in, i, n, u8, feats, bad_input, err);
    fprintf(stderr, "\reval: %s: %lld/%lld images, %.0f img/s   ", in->path, (long long)(i + n), (long long)in->n,
            (double)(i + n) / (monotonic_seconds() - t0 + 1e-9));
  }
  fputc('\n', stderr);
  free(u8);
  if (!ok) tensor_free(feats);
  return ok ? feats : NULL;
}

/* The classifier's logits from the features, in double: head(features). */
static Tensor *logits_of(const Extractor *x, const Tensor *feats, RtError *err) {
  const Tensor *w = tensorlist_find(&x->t.params, x->net->head_weight), *b = tensorlist_find(&x->t.params, x->net->head_bias);
  int64_t n = feats->shape[0], d = feats->shape[1];
  if (!w || !b || w->rank != 2 || w->shape[1] != d || b->rank != 1 || b->shape[0] != w->shape[0])
    return rt_fail(err, "%s: no classifier head %s [C, %lld]", x->net->name, x->net->head_weight, (long long)d), NULL;
  int64_t c = w->shape[0], shape[2] = {n, c};
  Tensor *z = tensor_new("logits", DT_F64, 2, shape, err);
  for (int64_t i = 0; z && i < n; i++)
    for (int64_t k = 0; k < c; k++) {
      double s = tensor_get(b, k);
      for (int64_t j = 0; j < d; j++) s += tensor_get(feats, i * d + j) * tensor_get(w, k * d + j);
      ((double *)z->data)[i * c + k] = s;
    }
  return z;
}

/* ---- results -------------------------------------------------------------- */

static char *metric(const char *what, const char *net) {
  static char buf[4][96];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s_%s", what, net);
  return buf[k];
}

static json_t *results_json(const EvalOptions *o, const FeatureNet *net, const EvalScores *r, const char *weights) {
  json_t *j = json_object();
  json_object_set_new(j, "metric_kind", json_string("domain"));
  json_object_set_new(j, "feature_network", json_string(net->name));
  json_object_set_new(j, "note", json_string("domain metrics: features and logits of irepa's own classifier, not of "
                                             "Inception-v3; not comparable with published FID or IS"));
  json_object_set_new(j, metric("fid", net->name), json_real(r->fid));
  json_object_set_new(j, metric("inception_score", net->name), json_real(r->is_mean));
  json_object_set_new(j, metric("inception_score_std", net->name), json_real(r->is_std));
  json_object_set_new(j, "inception_score_splits", json_integer(r->is_splits));
  json_object_set_new(j, "inception_score_split_size", json_integer(o->split));
  json_object_set_new(j, metric("precision", net->name), r->have_pr ? json_real(r->precision) : json_null());
  json_object_set_new(j, metric("recall", net->name), r->have_pr ? json_real(r->recall) : json_null());
  json_object_set_new(j, "pr_k", json_integer(PR_K));
  json_object_set_new(j, "n_samples", json_integer(r->n_samples));
  json_object_set_new(j, "n_reference", r->n_reference ? json_integer(r->n_reference) : json_null());
  json_object_set_new(j, "samples", json_string(o->samples));
  json_object_set_new(j, "reference", json_string(o->reference));
  json_object_set_new(j, "reference_kind", json_string(r->have_pr ? "images" : "statistics"));
  json_object_set_new(j, "encoder_weights", json_string(weights));
  return j;
}

static void print_results(const FeatureNet *net, const EvalScores *r, int64_t split) {
  printf("domain metrics with %s features: %s; not Inception-v3, not comparable with published FID/IS\n", net->name,
         net->what);
  printf("  samples %lld, reference %lld%s\n", (long long)r->n_samples, (long long)r->n_reference,
         r->have_pr ? "" : " (statistics)");
  printf("  %-32s %.6f\n", metric("fid", net->name), r->fid);
  printf("  %-32s %.6f +- %.6f (%lld splits of up to %lld)\n", metric("inception_score", net->name), r->is_mean,
         r->is_std, (long long)r->is_splits, (long long)split);
  if (r->have_pr) {
    printf("  %-32s %.6f (k = %d)\n", metric("precision", net->name), r->precision, PR_K);
    printf("  %-32s %.6f (k = %d)\n", metric("recall", net->name), r->recall, PR_K);
  } else
    printf("  precision and recall: not computed (the reference holds statistics only; they need its images)\n");
}

static bool write_json(const char *path, json_t *j, RtError *err) {
  char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
  if (!text) return rt_fail(err, "out of memory");
  size_t n = strlen(text);
  text[n] = '\n'; /* json_dumps' terminating NUL becomes the final newline */
  const void *chunks[1] = {text};
  size_t sizes[1] = {n + 1};
  bool ok = rt_write_atomic(path, chunks, sizes, 1, err);
  free(text);
  return ok;
}

/* ---- the two commands ----------------------------------------------------- */

/* Features of the samples (and of a reference with images) to metrics. */
static bool evaluate(Extractor *x, Input *smp, Input *ref, const EvalOptions *o, EvalScores *r, bool *bad, RtError *err) {
  Tensor *fs = features_of(x, smp, bad, err), *fr = fs && ref->images ? features_of(x, ref, bad, err) : NULL;
  Tensor *logits = fs ? logits_of(x, fs, err) : NULL;
  FidStats ss = {0}, rs = {0};
  bool ok = logits && (fr || !ref->images) && fid_stats_compute(fs, &ss, err) &&
            (!fr || fid_stats_compute(fr, &rs, err)) && fid_distance(&ss, fr ? &rs : &ref->stats, &r->fid, err) &&
            fid_inception_score(logits, o->split, &r->is_mean, &r->is_std, &r->is_splits, err) &&
            (!fr || fid_precision_recall(fr, fs, PR_K, &r->precision, &r->recall, err));
  r->have_pr = fr != NULL;
  r->n_samples = smp->n;
  r->n_reference = ref->images ? ref->n : ref->stats.n;
  fid_stats_free(&ss);
  fid_stats_free(&rs);
  tensor_free(fs);
  tensor_free(fr);
  tensor_free(logits);
  return ok;
}

static int eval_pair(Extractor *x, const EvalOptions *o, RtError *err) {
  Input smp, ref;
  memset(&ref, 0, sizeof ref);
  if (!open_input(&smp, o->samples, false, x->net, err) || !open_input(&ref, o->reference, true, x->net, err)) {
    input_close(&smp);
    input_close(&ref);
    return EXIT_BAD;
  }
  int rc = open_net(x, o, err);
  if (rc == 0 && !ref.images && ref.stats.d != feature_dim(x))
    rc = EXIT_BAD, rt_fail(err, "%s: statistics of dimension %lld; %s features have %lld (another network's?)",
                           ref.path, (long long)ref.stats.d, x->net->name, (long long)feature_dim(x));
  EvalScores r = {0};
  bool bad = false;
  if (rc == 0 && !evaluate(x, &smp, &ref, o, &r, &bad, err)) rc = bad ? EXIT_BAD : EXIT_FAIL;
  if (rc == 0) {
    print_results(x->net, &r, o->split);
    char def[4096];
    json_t *j = results_json(o, x->net, &r, o->weights ? o->weights : x->net->default_weights(o->output_dir, def, sizeof def));
    if (o->out && !write_json(o->out, j, err)) rc = EXIT_FAIL;
    json_decref(j);
  }
  input_close(&smp);
  input_close(&ref);
  return rc;
}

bool eval_features_fit(const char *features, int64_t h, int64_t w, int64_t c, RtError *err) {
  const FeatureNet *net = find_net(features);
  if (!net) return rt_fail(err, "unknown feature network '%s' (fmnist-vit)", features);
  if (!net_fits(net, h, w, c))
    return rt_fail(err, "the %s features take %s, not %lldx%lldx%lld images", net->name, net->accepts, (long long)h,
                   (long long)w, (long long)c);
  return true;
}

bool eval_reference_ok(const char *features, const char *reference, RtError *err) {
  const FeatureNet *net = find_net(features);
  if (!net) return rt_fail(err, "unknown feature network '%s' (fmnist-vit)", features);
  Input in;
  bool ok = open_input(&in, reference, true, net, err);
  input_close(&in);
  return ok;
}

bool eval_images(const char *features, const char *weights_path, const char *backend, const uint8_t *u8, int64_t n,
                 int64_t h, int64_t w, int64_t c, const char *reference, EvalScores *scores, RtError *err) {
  Extractor x;
  memset(&x, 0, sizeof x);
  x.net = find_net(features);
  x.batch = 256;
  EvalOptions o = {"the samples", reference, features, weights_path, "exps", backend, NULL, NULL, 256, 5000, 0};
  Input smp = {.path = o.samples, .mem = (uint8_t *)u8, .n = n, .h = h, .w = w, .c = c, .images = true}, ref;
  memset(&ref, 0, sizeof ref);
  bool ok = eval_features_fit(features, h, w, c, err) && open_input(&ref, reference, true, x.net, err) &&
            open_net(&x, &o, err) == 0;
  if (ok && !ref.images && ref.stats.d != feature_dim(&x))
    ok = rt_fail(err, "%s: statistics of dimension %lld; %s features have %lld (another network's?)", ref.path,
                 (long long)ref.stats.d, x.net->name, (long long)feature_dim(&x));
  bool bad = false;
  ok = ok && evaluate(&x, &smp, &ref, &o, scores, &bad, err);
  input_close(&ref); /* smp's images are the caller's */
  trainer_free(&x.t);
  return ok;
}

/* mu, sigma (f64) and n (i64) of the images' features. */
static int save_stats(Extractor *x, const EvalOptions *o, RtError *err) {
  Input in;
  if (!open_input(&in, o->samples, false, x->net, err)) return input_close(&in), EXIT_BAD;
  int rc = open_net(x, o, err);
  bool bad = false;
  Tensor *fs = rc ? NULL : features_of(x, &in, &bad, err);
  FidStats s = {0};
  if (rc == 0 && (!fs || !fid_stats_compute(fs, &s, err))) rc = bad ? EXIT_BAD : EXIT_FAIL;
  if (rc == 0) {
    int64_t d1[1] = {s.d}, d2[2] = {s.d, s.d};
    Tensor *t[3] = {tensor_new("mu", DT_F64, 1, d1, err), tensor_new("sigma", DT_F64, 2, d2, err),
                    tensor_new("n", DT_I64, 0, NULL, err)};
    bool ok = t[0] && t[1] && t[2];
    if (ok) {
      memcpy(t[0]->data, s.mu, t[0]->nbytes);
      memcpy(t[1]->data, s.sigma, t[1]->nbytes);
      tensor_set(t[2], 0, (double)s.n);
      ok = npz_write(o->save_stats, t, 3, err);
    }
    if (ok) printf("%s: mu and sigma of %lld %s features (dimension %lld)\n", o->save_stats, (long long)s.n,
                   x->net->name, (long long)s.d);
    rc = ok ? 0 : EXIT_FAIL;
    for (int i = 0; i < 3; i++) tensor_free(t[i]);
  }
  fid_stats_free(&s);
  tensor_free(fs);
  input_close(&in);
  return rc;
}

int eval_command(int argc, char **argv) {
  EvalOptions o = {NULL, NULL, "fmnist-vit", NULL, "exps", "auto", NULL, NULL, 256, 5000, 0};
  int rc = parse(&o, argc, argv);
  if (rc >= 0) return rc;
  train_set_threads((int)o.threads);
  Extractor x;
  memset(&x, 0, sizeof x);
  x.net = find_net(o.features);
  x.batch = o.batch;
  RtError err = {{0}};
  rc = o.save_stats ? save_stats(&x, &o, &err) : eval_pair(&x, &o, &err);
  if (rc) fprintf(stderr, "irepa-run eval: error: %s\n", err.msg);
  trainer_free(&x.t);
  return rc;
}
