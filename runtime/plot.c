/* plot.c: see plot.h. One cairo image surface, drawn in layers: frame and
 * grid, series (clipped to the plot area), text, legend; then encoded to a
 * PNG in memory so that the file is written atomically (fileio.h). */
#include "plot.h"

#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"

static const double PI = 3.14159265358979323846;
enum { MARGIN_L = 84, MARGIN_R = 24, MARGIN_T = 44, MARGIN_B = 62, FONT = 13 };

/* Okabe-Ito's colour-blind-safe palette, black last. */
static const double palette[][3] = {{0.000, 0.447, 0.698}, {0.835, 0.369, 0.000}, {0.000, 0.620, 0.451},
                                    {0.800, 0.475, 0.655}, {0.902, 0.624, 0.000}, {0.337, 0.706, 0.914},
                                    {0.941, 0.894, 0.259}, {0.0, 0.0, 0.0}};
enum { NCOLOURS = sizeof palette / sizeof palette[0] };

bool plot_style_parse(const char *s, PlotStyle *out) {
  if (!strcmp(s, "line")) return *out = PLOT_LINE, true;
  if (!strcmp(s, "markers") || !strcmp(s, "scatter")) return *out = PLOT_MARKERS, true;
  if (!strcmp(s, "line+markers")) return *out = PLOT_LINE_MARKERS, true;
  return false;
}

/* ---- axes ----------------------------------------------------------------- */

typedef struct {
  double lo, hi, step; /* the axis spans [lo, hi], ticks every step */
  int decimals;        /* of the tick labels */
} Axis;

/* 1, 2 or 5 times a power of ten, near span / 6: ticks a reader can add up. */
static double nice_step(double span) {
  double raw = span / 6, p = pow(10, floor(log10(raw))), f = raw / p;
  return p * (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10);
}

static Axis axis_for(double lo, double hi) {
  if (!(hi > lo)) { /* one value: a unit (or 10%) window around it */
    double d = lo == 0 ? 1 : fabs(lo) * 0.1;
    lo -= d, hi += d;
  }
  Axis a;
  a.step = nice_step(hi - lo);
  a.lo = floor(lo / a.step) * a.step;
  a.hi = ceil(hi / a.step) * a.step;
  int d = -(int)floor(log10(a.step) + 1e-9);
  a.decimals = d > 0 ? d : 0;
  return a;
}

typedef struct {
  Axis x, y;
  double left, top, width, height; /* the plot area in pixels */
} Frame;

static double px(const Frame *f, double x) { return f->left + (x - f->x.lo) / (f->x.hi - f->x.lo) * f->width; }
static double py(const Frame *f, double y) { return f->top + (f->y.hi - y) / (f->y.hi - f->y.lo) * f->height; }

/* The finite points' bounding box; false when there is no finite point. */
static bool bounds(const PlotSeries *s, size_t ns, double *x0, double *x1, double *y0, double *y1) {
  bool any = false;
  for (size_t k = 0; k < ns; k++)
    for (size_t i = 0; i < s[k].n; i++) {
      double x = s[k].x[i], y = s[k].y[i];
      if (!isfinite(x) || !isfinite(y)) continue;
      if (!any) *x0 = *x1 = x, *y0 = *y1 = y, any = true;
      *x0 = fmin(*x0, x), *x1 = fmax(*x1, x), *y0 = fmin(*y0, y), *y1 = fmax(*y1, y);
    }
  return any;
}

/* ---- drawing -------------------------------------------------------------- */

static void text_at(cairo_t *cr, const char *s, double x, double y, double ax, double ay) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, s, &e);
  cairo_move_to(cr, x - ax * e.width - e.x_bearing, y - ay * e.height - e.y_bearing);
  cairo_show_text(cr, s);
}

static void draw_grid(cairo_t *cr, const Frame *f) {
  char buf[64];
  cairo_set_font_size(cr, FONT - 1);
  cairo_set_line_width(cr, 1);
  for (int k = 0;; k++) {
    double v = f->x.lo + k * f->x.step, x = round(px(f, v)) + 0.5;
    if (v > f->x.hi + 1e-9 * f->x.step) break;
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, x, f->top), cairo_line_to(cr, x, f->top + f->height), cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    snprintf(buf, sizeof buf, "%.*f", f->x.decimals, v);
    text_at(cr, buf, x, f->top + f->height + 8, 0.5, 0);
  }
  for (int k = 0;; k++) {
    double v = f->y.lo + k * f->y.step, y = round(py(f, v)) + 0.5;
    if (v > f->y.hi + 1e-9 * f->y.step) break;
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, f->left, y), cairo_line_to(cr, f->left + f->width, y), cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    snprintf(buf, sizeof buf, "%.*f", f->y.decimals, v);
    text_at(cr, buf, f->left - 8, y, 1, 0.5);
  }
  cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
  cairo_rectangle(cr, f->left + 0.5, f->top + 0.5, f->width, f->height);
  cairo_stroke(cr);
}

static void marker(cairo_t *cr, double x, double y) {
  cairo_new_sub_path(cr);
  cairo_arc(cr, x, y, 3.5, 0, 2 * PI);
  cairo_fill(cr);
}

static void draw_series(cairo_t *cr, const Frame *f, const PlotSeries *s, const double *rgb) {
  cairo_save(cr);
  cairo_rectangle(cr, f->left, f->top, f->width + 1, f->height + 1);
  cairo_clip(cr);
  cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
  cairo_set_line_width(cr, 2);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  if (s->style & PLOT_LINE) {
    bool pen = false; /* a non-finite point lifts the pen */
    for (size_t i = 0; i < s->n; i++) {
      bool ok = isfinite(s->x[i]) && isfinite(s->y[i]);
      if (ok) (pen ? cairo_line_to : cairo_move_to)(cr, px(f, s->x[i]), py(f, s->y[i]));
      pen = ok;
    }
    cairo_stroke(cr);
  }
  if (s->style & PLOT_MARKERS)
    for (size_t i = 0; i < s->n; i++)
      if (isfinite(s->x[i]) && isfinite(s->y[i])) marker(cr, px(f, s->x[i]), py(f, s->y[i]));
  cairo_restore(cr);
}

/* Top right inside the plot area, on white so that lines under it stay
 * readable. */
static void draw_legend(cairo_t *cr, const Frame *f, const PlotSeries *s, size_t ns) {
  double w = 0, row = FONT + 8;
  size_t rows = 0;
  cairo_set_font_size(cr, FONT);
  for (size_t k = 0; k < ns; k++)
    if (s[k].name && *s[k].name) {
      cairo_text_extents_t e;
      cairo_text_extents(cr, s[k].name, &e);
      w = fmax(w, e.x_advance), rows++;
    }
  if (!rows) return;
  double bw = w + 52, bh = (double)rows * row + 8, x0 = f->left + f->width - bw - 8, y0 = f->top + 8;
  cairo_rectangle(cr, x0 + 0.5, y0 + 0.5, bw, bh);
  cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
  cairo_fill_preserve(cr);
  cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
  cairo_set_line_width(cr, 1);
  cairo_stroke(cr);
  double y = y0 + 4 + row / 2;
  for (size_t k = 0; k < ns; k++) {
    if (!s[k].name || !*s[k].name) continue;
    const double *rgb = palette[k % NCOLOURS];
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
    cairo_set_line_width(cr, 2);
    if (s[k].style & PLOT_LINE) cairo_move_to(cr, x0 + 8, y), cairo_line_to(cr, x0 + 36, y), cairo_stroke(cr);
    if (s[k].style & PLOT_MARKERS) marker(cr, x0 + 22, y);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, s[k].name, x0 + 44, y, 0, 0.5);
    y += row;
  }
}

static void draw_labels(cairo_t *cr, const Frame *f, const PlotOptions *o, int width, int height) {
  cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  if (o->title) {
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, FONT + 3);
    text_at(cr, o->title, width / 2.0, 14, 0.5, 0);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  }
  cairo_set_font_size(cr, FONT);
  if (o->xlabel) text_at(cr, o->xlabel, f->left + f->width / 2, height - 8, 0.5, 1);
  if (o->ylabel) {
    cairo_save(cr);
    cairo_translate(cr, 16, f->top + f->height / 2);
    cairo_rotate(cr, -PI / 2);
    text_at(cr, o->ylabel, 0, 0, 0.5, 0.5);
    cairo_restore(cr);
  }
}

/* ---- PNG ------------------------------------------------------------------ */

typedef struct {
  unsigned char *data;
  size_t n, cap;
} Buf;

static cairo_status_t buf_write(void *closure, const unsigned char *data, unsigned int len) {
  Buf *b = closure;
  if (b->n + len > b->cap) {
    size_t cap = (b->n + len) * 2;
    unsigned char *p = realloc(b->data, cap);
    if (!p) return CAIRO_STATUS_NO_MEMORY;
    b->data = p, b->cap = cap;
  }
  memcpy(b->data + b->n, data, len);
  b->n += len;
  return CAIRO_STATUS_SUCCESS;
}

static void draw(cairo_t *cr, const PlotOptions *o, const PlotSeries *s, size_t ns, Frame *f, int w, int h) {
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  f->left = MARGIN_L, f->top = MARGIN_T, f->width = w - MARGIN_L - MARGIN_R, f->height = h - MARGIN_T - MARGIN_B;
  draw_grid(cr, f);
  for (size_t k = 0; k < ns; k++) draw_series(cr, f, &s[k], palette[k % NCOLOURS]);
  draw_labels(cr, f, o, w, h);
  draw_legend(cr, f, s, ns);
}

/* The axes of the series' finite points; false (and [0, 1] axes) when
 * there is none. */
static bool frame_axes(const PlotSeries *s, size_t ns, Frame *f) {
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  bool any = bounds(s, ns, &x0, &x1, &y0, &y1);
  /* a margin of 3% keeps markers at the extremes off the frame */
  double dx = 0.03 * (x1 - x0), dy = 0.03 * (y1 - y0);
  f->x = axis_for(x0 - dx, x1 + dx), f->y = axis_for(y0 - dy, y1 + dy);
  return any;
}

/* The surface as a PNG file, atomically; destroys cr and sf. */
bool plot_surface_write_png(void *surface, const char *path, RtError *err) {
  cairo_surface_t *sf = surface;
  cairo_status_t st = cairo_surface_status(sf);
  Buf b = {0};
  if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_write_to_png_stream(sf, buf_write, &b);
  bool ok = st == CAIRO_STATUS_SUCCESS || rt_fail(err, "%s: cairo: %s", path, cairo_status_to_string(st));
  const void *chunks[1] = {b.data};
  ok = ok && rt_write_atomic(path, chunks, &b.n, 1, err);
  free(b.data);
  return ok;
}

static bool write_surface(cairo_surface_t *sf, cairo_t *cr, const char *path, RtError *err) {
  cairo_status_t st = cairo_status(cr);
  bool ok = st == CAIRO_STATUS_SUCCESS ? plot_surface_write_png(sf, path, err)
                                       : rt_fail(err, "%s: cairo: %s", path, cairo_status_to_string(st));
  cairo_destroy(cr);
  cairo_surface_destroy(sf);
  return ok;
}

bool plot_write_png(const char *path, const PlotOptions *o, const PlotSeries *s, size_t ns, RtError *err) {
  int w = o->width ? o->width : 800, h = o->height ? o->height : 500;
  if (w < 64 || h < 64 || w > 8192 || h > 8192)
    return rt_fail(err, "%s: chart size %dx%d out of range (64 to 8192 pixels a side)", path, w, h);
  Frame f;
  if (!frame_axes(s, ns, &f)) return rt_fail(err, "%s: no finite point to plot", path);
  cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
  cairo_t *cr = cairo_create(sf);
  draw(cr, o, s, ns, &f, w, h);
  return write_surface(sf, cr, path, err);
}

bool plot_write_panels_png(const char *path, const PlotPanel *p, size_t n, int pw, int ph, RtError *err) {
  if (n < 1 || pw < 64 || ph < 64 || (size_t)pw * n > 8192 || ph > 8192)
    return rt_fail(err, "%s: %zu panels of %dx%d out of range (64 to 8192 pixels a side)", path, n, pw, ph);
  cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, pw * (int)n, ph);
  cairo_t *cr = cairo_create(sf);
  for (size_t k = 0; k < n; k++) {
    Frame f;
    frame_axes(p[k].series, p[k].nseries, &f);
    cairo_save(cr);
    cairo_translate(cr, (double)k * pw, 0);
    cairo_rectangle(cr, 0, 0, pw, ph);
    cairo_clip(cr);
    draw(cr, &p[k].o, p[k].series, p[k].nseries, &f, pw, ph);
    if (p[k].note) {
      cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
      cairo_set_font_size(cr, FONT);
      text_at(cr, p[k].note, f.left + f.width - 8, f.top + 8, 1, 0);
    }
    cairo_restore(cr);
  }
  return write_surface(sf, cr, path, err);
}

void plot_release_caches(void) {
  cairo_debug_reset_static_data();
  FcFini();
}
