/* plot_cmd.c: `irepa-run plot`, a chart of series read from TSV files
 * (plot.h draws it). Each file is one series: lines of "x<TAB>y" (or
 * spaces), '#' comments and blank lines skipped, a y of "-", "nan" or
 * nothing a missing point (the line breaks there) so that a table with a
 * failed evaluation still plots. */
#include "plot_cmd.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"
#include "util.h"

enum { EXIT_FAIL = 1, EXIT_BAD = 2, MAX_SERIES = 64 };

static const char usage[] =
    "usage: irepa-run plot --out CHART.png [options] [--style S] [NAME=]SERIES.tsv...\n"
    "\n"
    "Draws a chart of the series as a PNG. Each SERIES.tsv holds one series, a line\n"
    "'x y' (tab or spaces) per point; '#' lines and blank lines are skipped, a y of\n"
    "'-', 'nan' or nothing is a missing point. NAME (default: the file name without\n"
    "its extension) is the series' legend entry.\n"
    "\n"
    "options:\n"
    "  --out FILE.png   the chart (required; replaced atomically)\n"
    "  --title T        --xlabel X   --ylabel Y\n"
    "  --width W        --height H   pixels (default 800 x 500)\n"
    "  --style S        line, markers (or scatter), line+markers: for the series\n"
    "                   after it (default line+markers)\n";

typedef struct {
  PlotSeries s[MAX_SERIES];
  double *xs[MAX_SERIES], *ys[MAX_SERIES];
  char *names[MAX_SERIES];
  size_t n;
} SeriesSet;

static void series_free(SeriesSet *set) {
  for (size_t k = 0; k < set->n; k++) free(set->xs[k]), free(set->ys[k]), free(set->names[k]);
}

static int usage_error(const char *fmt, const char *arg) {
  fputs("irepa-run plot: error: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs(" (see 'irepa-run plot --help')\n", stderr);
  return EXIT_BAD;
}

/* A number, or NaN for a missing one; false for anything else. */
static bool parse_y(const char *s, double *out) {
  if (!*s || !strcmp(s, "-") || !strcmp(s, "nan") || !strcmp(s, "NaN")) return *out = NAN, true;
  char *end;
  errno = 0;
  *out = strtod(s, &end);
  return !errno && !*end;
}

/* One line into (x, y); false with the reason. */
static bool parse_line(char *line, double *x, double *y, const char **why) {
  char *f1 = strtok(line, " \t\r\n"), *f2 = f1 ? strtok(NULL, " \t\r\n") : NULL, *f3 = f2 ? strtok(NULL, " \t\r\n") : NULL;
  char *end;
  if (f3) return *why = "more than two columns", false;
  errno = 0;
  *x = strtod(f1, &end);
  if (errno || *end || !isfinite(*x)) return *why = "x is not a finite number", false;
  if (!parse_y(f2 ? f2 : "", y)) return *why = "y is not a number (nor '-' or 'nan' for a missing one)", false;
  return true;
}

static bool read_series(const char *path, double **xs, double **ys, size_t *n, RtError *err) {
  FILE *f = fopen(path, "r");
  if (!f) return rt_fail(err, "%s: %s", path, strerror(errno));
  char line[1024];
  size_t cap = 0, lineno = 0;
  bool ok = true;
  *n = 0;
  while (ok && fgets(line, sizeof line, f)) {
    lineno++;
    size_t k = strspn(line, " \t\r\n");
    if (!line[k] || line[k] == '#') continue;
    double x = 0, y = 0;
    const char *why = NULL;
    if (!strchr(line, '\n') && !feof(f)) ok = rt_fail(err, "%s:%zu: line too long", path, lineno);
    else if (!parse_line(line, &x, &y, &why)) ok = rt_fail(err, "%s:%zu: %s", path, lineno, why);
    else if (*n == cap) {
      cap = cap ? 2 * cap : 64;
      double *nx = realloc(*xs, cap * sizeof **xs), *ny = nx ? realloc(*ys, cap * sizeof **ys) : NULL;
      if (nx) *xs = nx;
      if (ny) *ys = ny;
      ok = ny || rt_fail(err, "%s: out of memory", path);
    }
    if (ok) (*xs)[*n] = x, (*ys)[*n] = y, (*n)++;
  }
  if (ok && ferror(f)) ok = rt_fail(err, "%s: read error", path);
  fclose(f);
  if (ok && !*n) ok = rt_fail(err, "%s: no points (lines 'x y')", path);
  return ok;
}

/* "NAME=FILE" or "FILE" (named after its base name without extension). */
static bool add_series(SeriesSet *set, const char *arg, PlotStyle style, RtError *err) {
  if (set->n == MAX_SERIES) return rt_fail(err, "%s: more than %d series", arg, MAX_SERIES);
  const char *eq = strchr(arg, '='), *path = eq ? eq + 1 : arg;
  char *name;
  if (eq) name = strndup(arg, (size_t)(eq - arg));
  else {
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path, *dot = strrchr(base, '.');
    name = strndup(base, dot && dot != base ? (size_t)(dot - base) : strlen(base));
  }
  size_t k = set->n;
  set->xs[k] = set->ys[k] = NULL;
  set->names[k] = name;
  set->n++;
  if (!name) return rt_fail(err, "out of memory");
  if (!read_series(path, &set->xs[k], &set->ys[k], &set->s[k].n, err)) return false;
  set->s[k] = (PlotSeries){name, set->xs[k], set->ys[k], set->s[k].n, style};
  return true;
}

static bool parse_size(const char *s, int *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || *end || v < 64 || v > 8192) return false;
  *out = (int)v;
  return true;
}

int plot_command(int argc, char **argv) {
  PlotOptions o = {0};
  const char *out = NULL, *v;
  PlotStyle style = PLOT_LINE_MARKERS;
  SeriesSet set = {0};
  RtError err = {{0}};
  int rc = 0;
  for (int i = 0; i < argc && !rc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return series_free(&set), fputs(usage, stdout), 0;
    if ((v = cli_option_value("--out", argc, argv, &i))) out = v;
    else if ((v = cli_option_value("--title", argc, argv, &i))) o.title = v;
    else if ((v = cli_option_value("--xlabel", argc, argv, &i))) o.xlabel = v;
    else if ((v = cli_option_value("--ylabel", argc, argv, &i))) o.ylabel = v;
    else if ((v = cli_option_value("--width", argc, argv, &i))) rc = parse_size(v, &o.width) ? 0 : usage_error("--width '%s': expected 64 to 8192", v);
    else if ((v = cli_option_value("--height", argc, argv, &i))) rc = parse_size(v, &o.height) ? 0 : usage_error("--height '%s': expected 64 to 8192", v);
    else if ((v = cli_option_value("--style", argc, argv, &i)))
      rc = plot_style_parse(v, &style) ? 0 : usage_error("--style '%s': expected line, markers or line+markers", v);
    else if (argv[i][0] == '-' && argv[i][1]) rc = usage_error("unknown option '%s'", argv[i]);
    else if (!add_series(&set, argv[i], style, &err)) rc = EXIT_BAD;
  }
  if (!rc && !out) rc = usage_error("%s", "--out CHART.png is required");
  if (!rc && !set.n) rc = usage_error("%s", "no SERIES.tsv given");
  if (!rc && !plot_write_png(out, &o, set.s, set.n, &err)) rc = EXIT_FAIL;
  if (!rc) printf("%s: %zu series\n", out, set.n);
  if (rc && err.msg[0]) fprintf(stderr, "irepa-run plot: error: %s\n", err.msg);
  series_free(&set);
  plot_release_caches();
  return rc;
}
