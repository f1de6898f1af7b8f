/* spatial_cmd.c: `irepa-run spatial-metrics`, the spatial-structure
 * metrics of patch tokens (spatial_metrics.h) given as a safetensors
 * tensor or computed by an encoder on Fashion-MNIST (spatial_features.h),
 * written as JSON in the reference runner's shape
 * {NAME: {metric: {"per_image": [...], "mean": m}}} with a "_meta" entry,
 * and summarised in one line. Also the dispatcher of the spatial commands. */
#include "spatial_cmd.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "spatial_features.h"
#include "spatial_metrics.h"
#include "train_cmd.h"
#include "util.h"

enum { EXIT_FAIL = 1, EXIT_BAD = 2 };

int spatial_command(int argc, char **argv) {
  if (argc < 1) return -1;
  if (!strcmp(argv[0], "spatial-metrics")) return spatial_metrics_command(argc - 1, argv + 1);
  if (!strcmp(argv[0], "spatial-corr")) return spatial_corr_command(argc - 1, argv + 1);
  if (!strcmp(argv[0], "viz-spatialnorm")) return viz_spatialnorm_command(argc - 1, argv + 1);
  return -1;
}

static const char usage[] =
    "usage: irepa-run spatial-metrics --features F.safetensors [options]\n"
    "       irepa-run spatial-metrics --encoder fmnist-vit|FILE.irg --weights W [options]\n"
    "\n"
    "LDS, CDS, SRSS and RMSC of patch tokens, per image and their mean\n"
    "(docs/spatial_metrics.md), as JSON (--out) and one summary line.\n"
    "\n"
    "features from a file:\n"
    "  --features FILE      a float tensor [N, H, W, D], or [N, T, D] on a square grid\n"
    "  --tensor NAME        which tensor of FILE (default: its only one)\n"
    "  --grid HxW           the grid of [N, T, D] features (default square)\n"
    "features from an encoder on Fashion-MNIST:\n"
    "  --encoder E          fmnist-vit (models/encoders/fmnist_vit.irg) or an .irg with\n"
    "                       an entry features (and block_features for --layer)\n"
    "  --weights W          its weights (safetensors), or init:SEED for untrained ones\n"
    "  --data D             fashion-mnist[:test|:train] (default fashion-mnist:test)\n"
    "  --num-images N       the first N images of the split (default 1000)\n"
    "  --layer K            tokens after block K (through the final norm; default:\n"
    "                       the entry features, i.e. after the last block)\n"
    "  --batch-size N       images per encoder call (default 250)\n"
    "  --backend B          auto, c, cuda or cuda-emu (default auto)\n"
    "  --threads N          CPU threads (default 0: all cores)\n"
    "masks (SRSS):\n"
    "  --masks M            FILE.safetensors (its tensor masks or its only one, [N, T]\n"
    "                       or [N, H, W] of 0/1), auto (with\n"
    "                       --encoder: pixels above --mask-threshold, max-pooled to the\n"
    "                       token grid; the default there) or none (SRSS skipped; the\n"
    "                       default with --features)\n"
    "  --mask-threshold X   intensity in [0, 1] of a foreground pixel (default 0.1)\n"
    "metrics:\n"
    "  --metrics LIST       comma-separated among lds,cds,srss,rmsc (default all)\n"
    "  --far-dist N  --dmax N  --d-pos N  --d-pos-min N  --d-neg N   (6, 8, 1, 1, 6)\n"
    "  --no-sqrt            RMSC without the square root\n"
    "output:\n"
    "  --name NAME          the key of the results (default the encoder or file name)\n"
    "  --out FILE.json      where to write the results (replaced atomically)\n";

typedef struct {
  const char *features, *tensor, *encoder, *weights, *data, *masks, *name, *out, *metrics;
  int64_t grid_h, grid_w, num_images, layer, batch, threads;
  const char *backend;
  double mask_threshold;
  SmParams p;
} SmOptions;

static int usage_error(const char *fmt, const char *arg) {
  fputs("irepa-run spatial-metrics: error: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs(" (see 'irepa-run spatial-metrics --help')\n", stderr);
  return EXIT_BAD;
}

static int parse_grid(const char *v, SmOptions *o) {
  char *x = strchr(v, 'x'), buf[64];
  if (!x || (size_t)(x - v) >= sizeof buf) return usage_error("--grid '%s': expected HxW, like 16x16", v);
  snprintf(buf, sizeof buf, "%.*s", (int)(x - v), v);
  if (!parse_int_in(buf, 1, 4096, &o->grid_h) || !parse_int_in(x + 1, 1, 4096, &o->grid_w))
    return usage_error("--grid '%s': expected HxW, like 16x16", v);
  return -1;
}

/* The integer options: name, where, range. */
static int parse_int_option(SmOptions *o, int argc, char **argv, int *i) {
  struct { const char *name; int64_t *dst, lo, hi; } ints[] = {
      {"--num-images", &o->num_images, 1, 1000000}, {"--layer", &o->layer, 1, 1000},
      {"--batch-size", &o->batch, 1, 100000},       {"--threads", &o->threads, 0, 4096},
      {"--far-dist", &o->p.far_dist, 0, 100000},    {"--dmax", &o->p.dmax, 1, 100000},
      {"--d-pos", &o->p.d_pos, 0, 100000},          {"--d-pos-min", &o->p.d_pos_min, 0, 100000},
      {"--d-neg", &o->p.d_neg, 0, 100000}};
  const char *v;
  for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
    if ((v = cli_option_value(ints[k].name, argc, argv, i))) {
      if (parse_int_in(v, ints[k].lo, ints[k].hi, ints[k].dst)) return -1;
      fprintf(stderr, "irepa-run spatial-metrics: error: %s '%s': expected an integer in %lld..%lld\n", ints[k].name, v,
              (long long)ints[k].lo, (long long)ints[k].hi);
      return EXIT_BAD;
    }
  return 0; /* not an integer option */
}

static int parse_option(SmOptions *o, int argc, char **argv, int *i) {
  struct { const char *name; const char **dst; } strs[] = {
      {"--features", &o->features}, {"--tensor", &o->tensor}, {"--encoder", &o->encoder}, {"--weights", &o->weights},
      {"--data", &o->data},         {"--masks", &o->masks},   {"--name", &o->name},       {"--out", &o->out},
      {"--metrics", &o->metrics},   {"--backend", &o->backend}};
  const char *v, *a = argv[*i];
  for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++)
    if ((v = cli_option_value(strs[k].name, argc, argv, i))) {
      if (!*v) return usage_error("%s needs a value", strs[k].name);
      return *strs[k].dst = v, -1;
    }
  if ((v = cli_option_value("--grid", argc, argv, i))) return parse_grid(v, o);
  if ((v = cli_option_value("--mask-threshold", argc, argv, i))) {
    char *end;
    o->mask_threshold = strtod(v, &end);
    if (end == v || *end || !(o->mask_threshold >= 0 && o->mask_threshold < 1))
      return usage_error("--mask-threshold '%s': expected a number in [0, 1)", v);
    return -1;
  }
  if (!strcmp(a, "--no-sqrt")) return o->p.rmsc_sqrt = false, -1;
  int rc = parse_int_option(o, argc, argv, i);
  return rc ? rc : usage_error("unknown option '%s'", a);
}

/* Which metrics --metrics names. */
static int parse_metrics(const char *list, bool want[SM_COUNT]) {
  for (int m = 0; m < SM_COUNT; m++) want[m] = !list;
  if (!list) return -1;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", list);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    int m = 0;
    while (m < SM_COUNT && strcmp(tok, sm_metric_name((SmMetric)m))) m++;
    if (m == SM_COUNT) return usage_error("--metrics: unknown metric '%s' (lds, cds, srss, rmsc)", tok);
    want[m] = true;
  }
  return -1;
}

static int check_options(SmOptions *o) {
  if (!o->features == !o->encoder) return usage_error("%s", "give --features FILE or --encoder E (one of them)");
  if (o->encoder && !o->weights) return usage_error("%s", "--encoder needs --weights W.safetensors (or init:SEED)");
  if (o->features && (o->weights || o->data || o->layer))
    return usage_error("%s", "--weights, --data and --layer go with --encoder, not --features");
  if (o->features && o->masks && !strcmp(o->masks, "auto"))
    return usage_error("%s", "--masks auto needs images: it goes with --encoder");
  if (o->encoder && o->grid_h) return usage_error("%s", "--grid goes with --features");
  if (o->data && strcmp(o->data, "fashion-mnist") && strcmp(o->data, "fashion-mnist:test") &&
      strcmp(o->data, "fashion-mnist:train"))
    return usage_error("--data '%s': only fashion-mnist[:test|:train] so far", o->data);
  return -1;
}

static int parse(SmOptions *o, bool want[SM_COUNT], int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return fputs(usage, stdout), 0;
    if (argv[i][0] != '-') return usage_error("unexpected argument '%s'", argv[i]);
    int rc = parse_option(o, argc, argv, &i);
    if (rc >= 0) return rc;
  }
  int rc = check_options(o);
  return rc >= 0 ? rc : parse_metrics(o->metrics, want);
}

/* ---- results -------------------------------------------------------------- */

static json_t *number_or_null(double v) { return isnan(v) ? json_null() : json_real(v); }

static const char *series_note(SmMetric m, const SmSeries *s, int64_t n) {
  if (!s->computed) return "skipped: no foreground masks (--masks FILE or, with --encoder, --masks auto)";
  if (!s->nan_count) return NULL;
  if (s->nan_count == n)
    return m == SM_SRSS ? "NaN (null) for every image: each has fewer than 2 foreground or no background tokens, "
                          "or no anchor with both a positive and a negative set"
                        : "NaN (null) for every image";
  return m == SM_SRSS ? "null images: fewer than 2 foreground or no background tokens, or no valid anchor (NaN in "
                        "the reference); the mean ignores them"
                      : "null images are NaN; the mean ignores them";
}

static json_t *series_json(SmMetric m, const SmSeries *s, int64_t n) {
  json_t *j = json_object(), *per = json_array();
  const char *note = series_note(m, s, n);
  for (int64_t i = 0; s->computed && i < n; i++) json_array_append_new(per, number_or_null(s->per_image[i]));
  json_object_set_new(j, "per_image", s->computed ? per : (json_decref(per), json_null()));
  json_object_set_new(j, "mean", s->computed ? number_or_null(s->mean) : json_null());
  if (s->computed) json_object_set_new(j, "nan_count", json_integer(s->nan_count));
  if (note) json_object_set_new(j, "note", json_string(note));
  return j;
}

static json_t *meta_json(const SmOptions *o, const SpFeatures *f, const char *mask_source) {
  json_t *j = json_object(), *p = json_object();
  json_object_set_new(j, "source", json_string(o->features ? o->features : o->encoder));
  if (o->encoder) {
    json_object_set_new(j, "weights", json_string(o->weights));
    json_object_set_new(j, "data", json_string(o->data ? o->data : "fashion-mnist:test"));
    json_object_set_new(j, "layer", o->layer ? json_integer(o->layer) : json_string("features"));
  }
  json_object_set_new(j, "n", json_integer(f->n));
  json_object_set_new(j, "grid", json_pack("[I, I]", (json_int_t)f->H, (json_int_t)f->W));
  json_object_set_new(j, "dim", json_integer(f->D));
  json_object_set_new(j, "masks", json_string(mask_source));
  json_object_set_new(p, "far_dist", json_integer(o->p.far_dist));
  json_object_set_new(p, "dmax", json_integer(o->p.dmax));
  json_object_set_new(p, "d_pos", json_integer(o->p.d_pos));
  json_object_set_new(p, "d_pos_min", json_integer(o->p.d_pos_min));
  json_object_set_new(p, "d_neg", json_integer(o->p.d_neg));
  json_object_set_new(p, "rmsc_sqrt", json_boolean(o->p.rmsc_sqrt));
  json_object_set_new(j, "params", p);
  return j;
}

static bool write_json(const char *path, json_t *j, RtError *err) {
  char *s = json_dumps(j, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
  if (!s) return rt_fail(err, "%s: out of memory", path);
  size_t len = strlen(s);
  const void *chunks[2] = {s, "\n"};
  size_t sizes[2] = {len, 1};
  bool ok = rt_write_atomic(path, chunks, sizes, 2, err);
  free(s);
  return ok;
}

/* The default name: the encoder's, or the file's base name without extension. */
static const char *result_name(const SmOptions *o, char *buf, size_t size) {
  if (o->name) return o->name;
  const char *p = o->features ? o->features : o->encoder, *base = strrchr(p, '/') ? strrchr(p, '/') + 1 : p;
  const char *dot = strrchr(base, '.');
  snprintf(buf, size, "%.*s", (int)(dot && dot != base ? dot - base : (long)strlen(base)), base);
  if (o->layer) snprintf(buf + strlen(buf), size - strlen(buf), "-layer%lld", (long long)o->layer);
  return buf;
}

static void print_summary(const char *name, const SpFeatures *f, const bool *want, const SmResult *r, const char *out) {
  printf("spatial-metrics: %s: %lld images, %lldx%lld tokens of %lld:", name, (long long)f->n, (long long)f->H,
         (long long)f->W, (long long)f->D);
  for (int m = 0; m < SM_COUNT; m++) {
    const SmSeries *s = &r->m[m];
    if (want[m] && !s->computed) printf(" %s skipped (no masks)", sm_metric_name((SmMetric)m));
    if (!s->computed) continue;
    printf(" %s %s", sm_metric_name((SmMetric)m), isnan(s->mean) ? "null" : "");
    if (!isnan(s->mean)) printf("%.6f", s->mean);
    if (s->nan_count) printf(" (%lld NaN)", (long long)s->nan_count);
  }
  printf("%s%s\n", out ? " -> " : "", out ? out : "");
}

/* ---- the command ---------------------------------------------------------- */

static bool load(const SmOptions *o, SpFeatures *f, const char **mask_source, RtError *err) {
  if (o->features) {
    if (!sp_load_features(o->features, o->tensor, o->grid_h, o->grid_w, f, err)) return false;
  } else {
    SpEncodeOptions e = {o->encoder, o->weights, o->data && !strcmp(o->data, "fashion-mnist:train") ? "train" : "t10k",
                         0, o->num_images, o->layer, o->backend, o->batch};
    if (!sp_encode(&e, f, err)) return false;
  }
  const char *m = o->masks ? o->masks : o->encoder ? "auto" : "none";
  *mask_source = m;
  if (!strcmp(m, "none")) return true;
  if (!strcmp(m, "auto")) return sp_image_masks(f, o->mask_threshold, err);
  return sp_load_masks(m, f, err);
}

int spatial_metrics_command(int argc, char **argv) {
  SmOptions o = {0};
  o.num_images = 1000, o.batch = 250, o.backend = "auto", o.mask_threshold = 0.1, o.p = sm_default_params(0, 0);
  bool want[SM_COUNT];
  int rc = parse(&o, want, argc, argv);
  if (rc >= 0) return rc;
  train_set_threads((int)o.threads);
  RtError err = {{0}};
  SpFeatures f = {0};
  SmResult r = {0};
  const char *mask_source = "none";
  char namebuf[256];
  const char *name = result_name(&o, namebuf, sizeof namebuf);
  bool ok = load(&o, &f, &mask_source, &err);
  o.p.H = f.H, o.p.W = f.W;
  ok = ok && sm_compute(f.data, f.n, f.D, f.masks, &o.p, want, &r, &err);
  if (ok && o.out) {
    json_t *root = json_object(), *res = json_object();
    for (int m = 0; m < SM_COUNT; m++)
      if (want[m]) json_object_set_new(res, sm_metric_name((SmMetric)m), series_json((SmMetric)m, &r.m[m], r.n));
    json_object_set_new(root, name, res);
    json_object_set_new(root, "_meta", meta_json(&o, &f, mask_source));
    ok = write_json(o.out, root, &err);
    json_decref(root);
  }
  if (ok) print_summary(name, &f, want, &r, o.out);
  else fprintf(stderr, "irepa-run spatial-metrics: error: %s\n", err.msg);
  sm_result_free(&r);
  sp_free(&f);
  return ok ? 0 : EXIT_FAIL;
}
