/* spatial_viz.c: `irepa-run viz-spatialnorm`, the reference's
 * scripts/viz_spatialnorm.py for irepa's encoder: one Fashion-MNIST image,
 * the encoder's patch tokens without and with iREPA's spatial z-score,
 * and for each of the reference's query points the map of every token's
 * cosine with the query token (viridis, one colour scale for all maps, a
 * red star at the query), drawn with cairo into one PNG. */
#include "spatial_viz.h"

#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "idx.h"
#include "mt19937.h"
#include "plot.h"
#include "spatial_cmd.h"
#include "spatial_features.h"
#include "train_cmd.h"
#include "util.h"

enum { EXIT_FAIL = 1, EXIT_BAD = 2, MAX_REFS = 16, MAX_ROWS = 8 };

/* ---- the reference points, z-score and maps -------------------------------- */

/* Python's round() of a non-negative value: half to even. */
static int64_t round_half_even(double v) {
  double f = floor(v), d = v - f;
  if (d > 0.5 || (d == 0.5 && fmod(f, 2) != 0)) f += 1;
  return (int64_t)f;
}

static int64_t cell(double v, int64_t n) {
  int64_t k = round_half_even(v * (double)(n - 1));
  return k < 0 ? 0 : k > n - 1 ? n - 1 : k;
}

void sv_ref_points(uint64_t seed, int n, int64_t H, int64_t W, double *ys, double *xs, int64_t *rows, int64_t *cols) {
  Mt19937 m;
  mt_seed_python(&m, seed);
  int k = 0;
  if (n > 0) ys[0] = xs[0] = 0.5, k = 1;
  for (int tries = 0; k < n && tries < 500; tries++) {
    double y = mt_random(&m), x = mt_random(&m);
    bool far = true;
    for (int j = 0; j < k && far; j++) far = fmax(fabs(y - ys[j]), fabs(x - xs[j])) >= 0.15;
    if (far) ys[k] = y, xs[k] = x, k++;
  }
  for (; k < n; k++) ys[k] = mt_random(&m), xs[k] = mt_random(&m);
  for (int i = 0; i < n; i++) rows[i] = cell(ys[i], H), cols[i] = cell(xs[i], W);
}

void sv_zscore(float *f, int64_t T, int64_t D, double alpha) {
  for (int64_t k = 0; k < D; k++) {
    double mu = 0, ss = 0;
    for (int64_t t = 0; t < T; t++) mu += f[t * D + k];
    mu /= (double)T;
    for (int64_t t = 0; t < T; t++) ss += (f[t * D + k] - mu) * (f[t * D + k] - mu);
    double sd = sqrt(ss / (double)(T - 1)) + 1e-6;
    for (int64_t t = 0; t < T; t++) f[t * D + k] = (float)((f[t * D + k] - alpha * mu) / sd);
  }
}

static double norm_of(const float *a, int64_t D) {
  double s = 0;
  for (int64_t k = 0; k < D; k++) s += (double)a[k] * a[k];
  return sqrt(s) + 1e-12;
}

void sv_cos_map(const float *f, int64_t T, int64_t D, int64_t ref, double *map) {
  const float *r = f + ref * D;
  double nr = norm_of(r, D);
  for (int64_t t = 0; t < T; t++) {
    double dot = 0;
    for (int64_t k = 0; k < D; k++) dot += (double)f[t * D + k] * r[k];
    map[t] = dot / (norm_of(f + t * D, D) * nr);
  }
}

/* ---- options -------------------------------------------------------------- */

static const char usage[] =
    "usage: irepa-run viz-spatialnorm [options]\n"
    "\n"
    "Cosine-similarity maps of an encoder's patch tokens to a few query tokens, for\n"
    "one Fashion-MNIST image, without and with the spatial z-score of iREPA\n"
    "(docs/spatial_metrics.md), as the reference's scripts/viz_spatialnorm.py.\n"
    "\n"
    "options:\n"
    "  --encoder E          fmnist-vit (default) or an .irg with an entry features\n"
    "  --weights [NAME=]W   its weights (default exps/encoders/fmnist-vit.safetensors),\n"
    "                       or init:SEED for untrained ones; repeat for one row each\n"
    "                       (at most 8), labelled NAME (default the file's name;\n"
    "                       FMNIST-ViT for the default weights)\n"
    "  --layer K            tokens after block K (default: the entry features)\n"
    "  --data D             fashion-mnist[:test|:train] (default fashion-mnist:test)\n"
    "  --image-index K      which image of the split (default 0)\n"
    "  --num-refs N         query points (default 4, at most 16)\n"
    "  --zscore-alpha A     the z-score's alpha (default 0.6)\n"
    "  --output-dir DIR     (default exps/viz)\n"
    "  --output-index I     the figure is DIR/viz-spatialnorm-vI.png (default 1)\n"
    "  --out FILE.png       write here instead\n"
    "  --dpi N              pixels per inch of the reference's figure size (default 100)\n"
    "  --backend B          auto, c, cuda or cuda-emu (default auto)\n";

typedef struct {
  const char *encoder, *data, *output_dir, *out, *backend;
  const char *weights[MAX_ROWS]; /* "NAME=PATH" or "PATH" */
  int nrows;
  int64_t layer, image, refs, index, dpi;
  double alpha;
} VizOptions;

static int usage_error(const char *fmt, const char *arg) {
  fputs("irepa-run viz-spatialnorm: error: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs(" (see 'irepa-run viz-spatialnorm --help')\n", stderr);
  return EXIT_BAD;
}

static int parse_option(VizOptions *o, int argc, char **argv, int *i) {
  struct { const char *name; const char **dst; } strs[] = {
      {"--encoder", &o->encoder}, {"--data", &o->data}, {"--output-dir", &o->output_dir},
      {"--out", &o->out},         {"--backend", &o->backend}};
  struct { const char *name; int64_t *dst, lo, hi; } ints[] = {
      {"--layer", &o->layer, 1, 1000},    {"--image-index", &o->image, 0, 1000000},
      {"--num-refs", &o->refs, 1, MAX_REFS}, {"--output-index", &o->index, 0, 1000000},
      {"--dpi", &o->dpi, 20, 300}};
  const char *v;
  for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++)
    if ((v = cli_option_value(strs[k].name, argc, argv, i)))
      return *v ? (*strs[k].dst = v, -1) : usage_error("%s needs a value", strs[k].name);
  if ((v = cli_option_value("--weights", argc, argv, i))) {
    if (!*v) return usage_error("%s needs a value", "--weights");
    if (o->nrows == MAX_ROWS) return usage_error("more than %s --weights (rows)", "8");
    return o->weights[o->nrows++] = v, -1;
  }
  for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
    if ((v = cli_option_value(ints[k].name, argc, argv, i))) {
      if (parse_int_in(v, ints[k].lo, ints[k].hi, ints[k].dst)) return -1;
      fprintf(stderr, "irepa-run viz-spatialnorm: error: %s '%s': expected an integer in %lld..%lld\n", ints[k].name,
              v, (long long)ints[k].lo, (long long)ints[k].hi);
      return EXIT_BAD;
    }
  if ((v = cli_option_value("--zscore-alpha", argc, argv, i))) {
    char *end;
    o->alpha = strtod(v, &end);
    return end != v && !*end && isfinite(o->alpha) ? -1 : usage_error("--zscore-alpha '%s': expected a number", v);
  }
  return usage_error("unknown option '%s'", argv[*i]);
}

static int parse(VizOptions *o, int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return fputs(usage, stdout), 0;
    if (argv[i][0] != '-') return usage_error("unexpected argument '%s'", argv[i]);
    int rc = parse_option(o, argc, argv, &i);
    if (rc >= 0) return rc;
  }
  if (o->data && strcmp(o->data, "fashion-mnist") && strcmp(o->data, "fashion-mnist:test") &&
      strcmp(o->data, "fashion-mnist:train"))
    return usage_error("--data '%s': only fashion-mnist[:test|:train] so far", o->data);
  return -1;
}

/* ---- the figure ----------------------------------------------------------- */

/* Matplotlib's viridis as Matt Zucker's degree-6 polynomial fit
 * (shadertoy.com/view/WlfXRN, CC0): within about 1% of its table, and no
 * 256-entry table to carry. */
static void viridis(double t, double rgb[3]) {
  static const double c[7][3] = {{0.2777273272234177, 0.005407344544966578, 0.3340998053353061},
                                 {0.1050930431085774, 1.404613529898575, 1.384590162594685},
                                 {-0.3308618287255563, 0.214847559468213, 0.09509516302823659},
                                 {-4.634230498983486, -5.799100973351585, -19.33244095627987},
                                 {6.228269936347081, 14.17993336680509, 56.69055260068105},
                                 {4.776384997670288, -13.74514537774601, -65.35303263337234},
                                 {-5.435455855934631, 4.645852612178535, 26.3124352495832}};
  t = fmin(fmax(t, 0), 1);
  for (int k = 0; k < 3; k++) {
    double v = c[6][k];
    for (int i = 5; i >= 0; i--) v = v * t + c[i][k];
    rgb[k] = fmin(fmax(v, 0), 1);
  }
}

typedef struct {
  char name[128];
  double *maps[2]; /* [refs, H·W] without and with the z-score */
} Row;

typedef struct {
  int64_t H, W, S, refs;
  float *image;                       /* [S, S] in [-1, 1] */
  int64_t qrow[MAX_REFS], qcol[MAX_REFS]; /* the query tokens */
  Row rows[MAX_ROWS];
  int nrows;
  double vmin, vmax;
} Figure;

/* An h×w surface of colours from v (grey: v in [-1, 1]; else viridis of
 * v scaled by the figure's range), painted over the rectangle unsmoothed. */
static void paint_cells(cairo_t *cr, const Figure *fig, const double *v, const float *grey, int64_t h, int64_t w,
                        double x, double y, double size) {
  cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)w, (int)h);
  unsigned char *px = cairo_image_surface_get_data(s);
  int stride = cairo_image_surface_get_stride(s);
  cairo_surface_flush(s);
  for (int64_t r = 0; r < h; r++)
    for (int64_t c = 0; c < w; c++) {
      double rgb[3];
      if (grey) rgb[0] = rgb[1] = rgb[2] = fmin(fmax((grey[r * w + c] + 1) / 2, 0), 1);
      else viridis((v[r * w + c] - fig->vmin) / (fig->vmax - fig->vmin), rgb);
      uint32_t p = (uint32_t)lround(rgb[0] * 255) << 16 | (uint32_t)lround(rgb[1] * 255) << 8 | (uint32_t)lround(rgb[2] * 255);
      memcpy(px + r * stride + c * 4, &p, 4);
    }
  cairo_surface_mark_dirty(s);
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_scale(cr, size / (double)w, size / (double)h);
  cairo_set_source_surface(cr, s, 0, 0);
  cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
  cairo_paint(cr);
  cairo_restore(cr);
  cairo_surface_destroy(s);
}

static void star(cairo_t *cr, double cx, double cy, double r) {
  for (int k = 0; k < 10; k++) {
    double a = -M_PI / 2 + k * M_PI / 5, rr = k % 2 ? r * 0.4 : r;
    (k ? cairo_line_to : cairo_move_to)(cr, cx + rr * cos(a), cy + rr * sin(a));
  }
  cairo_close_path(cr);
  cairo_set_source_rgb(cr, 1, 0, 0);
  cairo_fill_preserve(cr);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_set_line_width(cr, r * 0.12);
  cairo_stroke(cr);
}

static void centred_text(cairo_t *cr, const char *s, double x, double y) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, s, &e);
  cairo_move_to(cr, x - e.width / 2 - e.x_bearing, y - e.height / 2 - e.y_bearing);
  cairo_show_text(cr, s);
}

/* The vertical colour bar in the strip at x, with five ticks and its label. */
static void colorbar(cairo_t *cr, const Figure *fig, double x, double top, double height, double dpi) {
  double bw = 0.15 * dpi, font = 0.11 * dpi;
  for (int i = 0; i < (int)height; i++) {
    double rgb[3];
    viridis(1 - i / height, rgb);
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
    cairo_rectangle(cr, x, top + i, bw, 1.5);
    cairo_fill(cr);
  }
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_font_size(cr, font);
  char buf[32];
  for (int k = 0; k <= 4; k++) {
    double v = fig->vmin + (fig->vmax - fig->vmin) * k / 4, y = top + height * (1 - k / 4.0);
    cairo_move_to(cr, x + bw, y), cairo_line_to(cr, x + bw + 0.04 * dpi, y);
    cairo_set_line_width(cr, 1), cairo_stroke(cr);
    snprintf(buf, sizeof buf, "%.2f", v);
    cairo_move_to(cr, x + bw + 0.07 * dpi, y + font / 3), cairo_show_text(cr, buf);
  }
  cairo_save(cr);
  cairo_translate(cr, x + bw + 0.5 * dpi, top + height / 2);
  cairo_rotate(cr, -M_PI / 2);
  centred_text(cr, "Cosine Similarity", 0, 0);
  cairo_restore(cr);
}

/* One encoder's row at y: for each condition the image, then the maps. */
static void draw_row(cairo_t *cr, const Figure *fig, const Row *row, double left, double top, double slot, double pad,
                     double dpi) {
  double size = slot - 2 * pad;
  for (int c = 0; c < 2; c++)
    for (int64_t k = 0; k <= fig->refs; k++) {
      double x = left + (double)(c * (fig->refs + 1) + k) * slot + pad, y = top + pad;
      if (k == 0) {
        paint_cells(cr, fig, NULL, fig->image, fig->S, fig->S, x, y, size);
        continue;
      }
      paint_cells(cr, fig, row->maps[c] + (k - 1) * fig->H * fig->W, NULL, fig->H, fig->W, x, y, size);
      star(cr, x + ((double)fig->qcol[k - 1] + 0.5) * size / (double)fig->W,
           y + ((double)fig->qrow[k - 1] + 0.5) * size / (double)fig->H, 0.09 * dpi);
    }
}

/* Layout (inches, as the reference's figsize): a header row of 0.4, a
 * row of 2 per encoder; a label strip of 0.4 (the reference draws its
 * label in the first cell's margin), 2·(refs + 1) cells of 2, and 0.8 for
 * the colour bar. */
static bool draw_figure(const Figure *fig, const char *path, double dpi, RtError *err) {
  int64_t ncell = 2 * (fig->refs + 1);
  double label = 0.4 * dpi, slot = 2 * dpi, pad = 0.06 * dpi, header = 0.4 * dpi;
  int w = (int)lround(label + (double)ncell * slot + 0.8 * dpi), h = (int)lround(header + fig->nrows * slot);
  cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
  cairo_t *cr = cairo_create(sf);
  cairo_set_source_rgb(cr, 1, 1, 1), cairo_paint(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size(cr, 0.14 * dpi);
  cairo_set_source_rgb(cr, 0, 0, 0);
  static const char *const heads[2] = {"w/o Spatial Normalization Layer", "w/ Spatial Normalization Layer"};
  for (int c = 0; c < 2; c++) centred_text(cr, heads[c], label + ((double)c + 0.5) * (double)(fig->refs + 1) * slot, header / 2);
  for (int r = 0; r < fig->nrows; r++) {
    cairo_save(cr);
    cairo_translate(cr, label / 2, header + (r + 0.5) * slot), cairo_rotate(cr, -M_PI / 2);
    centred_text(cr, fig->rows[r].name, 0, 0);
    cairo_restore(cr);
  }
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  for (int r = 0; r < fig->nrows; r++) draw_row(cr, fig, &fig->rows[r], label, header + r * slot, slot, pad, dpi);
  colorbar(cr, fig, label + (double)ncell * slot + 0.05 * dpi, header + pad, fig->nrows * slot - 2 * pad, dpi);
  cairo_status_t st = cairo_status(cr);
  bool ok = st == CAIRO_STATUS_SUCCESS ? plot_surface_write_png(sf, path, err)
                                       : rt_fail(err, "%s: cairo: %s", path, cairo_status_to_string(st));
  cairo_destroy(cr);
  cairo_surface_destroy(sf);
  plot_release_caches();
  return ok;
}

/* ---- the command ---------------------------------------------------------- */

/* The row's maps, both conditions; widens the figure's range. */
static bool make_maps(const SpFeatures *f, const VizOptions *o, Figure *fig, Row *row, RtError *err) {
  int64_t T = f->H * f->W;
  float *z = malloc(sizeof(float) * (size_t)(T * f->D));
  row->maps[0] = malloc(sizeof(double) * (size_t)(fig->refs * T));
  row->maps[1] = malloc(sizeof(double) * (size_t)(fig->refs * T));
  if (!z || !row->maps[0] || !row->maps[1]) return free(z), rt_fail(err, "out of memory");
  memcpy(z, f->data, sizeof(float) * (size_t)(T * f->D));
  sv_zscore(z, T, f->D, o->alpha);
  for (int64_t k = 0; k < fig->refs; k++) {
    int64_t ref = fig->qrow[k] * f->W + fig->qcol[k];
    sv_cos_map(f->data, T, f->D, ref, row->maps[0] + k * T);
    sv_cos_map(z, T, f->D, ref, row->maps[1] + k * T);
  }
  for (int64_t i = 0; i < 2 * fig->refs * T; i++) {
    double v = row->maps[i / (fig->refs * T)][i % (fig->refs * T)];
    fig->vmin = fmin(fig->vmin, v), fig->vmax = fmax(fig->vmax, v);
  }
  free(z);
  return true;
}

/* "NAME=PATH" or "PATH" (named after the file, FMNIST-ViT for the default). */
static const char *split_row(const char *arg, bool is_default, char *name, size_t size) {
  const char *eq = strchr(arg, '='), *path = eq ? eq + 1 : arg;
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path, *dot = strrchr(base, '.');
  if (eq) snprintf(name, size, "%.*s", (int)(eq - arg), arg);
  else if (is_default) snprintf(name, size, "FMNIST-ViT");
  else snprintf(name, size, "%.*s", (int)(dot && dot != base ? dot - base : (long)strlen(base)), base);
  return path;
}

/* The image and, for each row, the encoder's tokens of it and their maps. */
static bool make_rows(const VizOptions *o, Figure *fig, RtError *err) {
  bool ok = true;
  fig->vmin = INFINITY, fig->vmax = -INFINITY;
  for (int r = 0; ok && r < o->nrows; r++) {
    Row *row = &fig->rows[fig->nrows++];
    const char *path = split_row(o->weights[r], r == 0 && o->nrows == 1 && !strcmp(o->encoder, "fmnist-vit") &&
                                                    strstr(o->weights[r], "exps/encoders/fmnist-vit.safetensors"),
                                 row->name, sizeof row->name);
    SpEncodeOptions e = {o->encoder, path, o->data && !strcmp(o->data, "fashion-mnist:train") ? "train" : "t10k",
                         o->image, 1, o->layer, o->backend, 1};
    SpFeatures f = {0};
    ok = sp_encode(&e, &f, err) && (f.H * f.W >= 2 || rt_fail(err, "one token: nothing to compare"));
    if (ok && r == 0) {
      fig->H = f.H, fig->W = f.W, fig->S = f.side, fig->image = f.images, f.images = NULL;
      double ys[MAX_REFS], xs[MAX_REFS];
      sv_ref_points(42, (int)fig->refs, f.H, f.W, ys, xs, fig->qrow, fig->qcol);
    }
    if (ok && (f.H != fig->H || f.W != fig->W)) ok = rt_fail(err, "%s: a %lldx%lld grid, the first row's is %lldx%lld",
                                                            path, (long long)f.H, (long long)f.W, (long long)fig->H,
                                                            (long long)fig->W);
    ok = ok && make_maps(&f, o, fig, row, err);
    sp_free(&f);
  }
  if (!(fig->vmax > fig->vmin)) fig->vmax = fig->vmin + 1e-6; /* a constant map still draws */
  return ok;
}

static void figure_free(Figure *fig) {
  for (int r = 0; r < fig->nrows; r++) free(fig->rows[r].maps[0]), free(fig->rows[r].maps[1]);
  free(fig->image);
}

int viz_spatialnorm_command(int argc, char **argv) {
  VizOptions o = {"fmnist-vit", NULL, "exps/viz", NULL, "auto", {NULL}, 0, 0, 0, 4, 1, 100, 0.6};
  int rc = parse(&o, argc, argv);
  if (rc >= 0) return rc;
  char wbuf[2048], path[4200];
  if (!o.nrows) o.weights[o.nrows++] = train_default_encoder_path("exps", wbuf, sizeof wbuf);
  if (o.out) snprintf(path, sizeof path, "%s", o.out);
  else snprintf(path, sizeof path, "%s/viz-spatialnorm-v%lld.png", o.output_dir, (long long)o.index);
  RtError err = {{0}};
  Figure fig = {0};
  fig.refs = o.refs;
  bool ok = make_rows(&o, &fig, &err);
  if (ok && !o.out) ok = rt_make_dirs(o.output_dir, 0777, &err);
  ok = ok && draw_figure(&fig, path, (double)o.dpi, &err);
  if (ok) printf("viz-spatialnorm: image %lld, %d encoders, %lld queries, cosine in [%.3f, %.3f] -> %s\n",
                 (long long)o.image, fig.nrows, (long long)o.refs, fig.vmin, fig.vmax, path);
  else fprintf(stderr, "irepa-run viz-spatialnorm: error: %s\n", err.msg);
  figure_free(&fig);
  return ok ? 0 : EXIT_FAIL;
}
