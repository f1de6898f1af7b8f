/* plot.h: charts as PNG files, drawn with cairo: named series of (x, y)
 * points, each as a line, markers (a scatter) or both, on linear axes with
 * "nice" ticks, a title, axis labels and a legend. Results pages use it
 * (FID against training steps); a scatter with a fit line is two series,
 * the points as markers and the fit as a two-point line. */
#ifndef IREPA_PLOT_H
#define IREPA_PLOT_H

#include <stddef.h>

#include "tensor.h"

typedef enum { PLOT_LINE = 1, PLOT_MARKERS = 2, PLOT_LINE_MARKERS = 3 } PlotStyle;

typedef struct {
  const char *name; /* in the legend; NULL or "" keeps it out */
  const double *x, *y;
  size_t n;
  PlotStyle style;
} PlotSeries;

typedef struct {
  const char *title, *xlabel, *ylabel; /* NULL: none */
  int width, height;                   /* pixels; 0: 800 x 500 */
} PlotOptions;

/* Parses "line", "markers" (or "scatter") and "line+markers". */
bool plot_style_parse(const char *s, PlotStyle *out);

/* Draws the series and writes the PNG to path atomically (the old file, if
 * any, stays whole on failure). Non-finite points are skipped (a line
 * breaks there); no finite point at all, or a size out of [64, 8192], is
 * an error. */
bool plot_write_png(const char *path, const PlotOptions *o, const PlotSeries *series, size_t nseries,
                    RtError *err);

/* One chart of a row of panels: its title and axis labels (o's size is
 * ignored), its series, and a note written in the top-right corner of its
 * plot area (NULL: none), such as a correlation coefficient. */
typedef struct {
  PlotOptions o;
  const PlotSeries *series;
  size_t nseries;
  const char *note;
} PlotPanel;

/* n panels side by side, each panel_w × panel_h pixels (64 to 8192 a side
 * in all), as one PNG written atomically. A panel with no finite point is
 * drawn with empty axes. */
bool plot_write_panels_png(const char *path, const PlotPanel *panels, size_t n, int panel_w, int panel_h,
                           RtError *err);

/* For figures drawn with cairo elsewhere (spatial_viz.c): an image
 * surface (a cairo_surface_t *, void here so that this header needs no
 * cairo) as a PNG written atomically; the surface stays the caller's. */
bool plot_surface_write_png(void *surface, const char *path, RtError *err);

/* Frees cairo's and fontconfig's process-wide caches (fonts found, glyphs),
 * which they keep for the process's life; for the end of a program that
 * drew charts, so leak checkers see only real leaks. No cairo object may be
 * alive, and no chart drawn concurrently. */
void plot_release_caches(void);

#endif
