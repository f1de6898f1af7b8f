/* spatial_corr.c: `irepa-run spatial-corr`, the reference's
 * metrics/spatial_metrics_comparison.py on a table: for each encoder its
 * generation FID, optionally its linear-probe accuracy, and its four
 * spatial metrics; prints Pearson's r (and Spearman's ρ) of each against
 * FID with the least-squares line, and draws the row of scatter panels
 * (plot.h) with the line and "Pearson Corr. r = x.xxx" where there are at
 * least 3 points, as the reference does. */
#include "spatial_cmd.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"
#include "spatial_stats.h"
#include "util.h"

enum { EXIT_FAIL = 1, EXIT_BAD = 2, MAX_ROWS = 256, NCOLS = 6 };

static const char usage[] =
    "usage: irepa-run spatial-corr TABLE.tsv [--out FIGURE.png] [options]\n"
    "\n"
    "Correlates spatial metrics with generation quality across encoders, as the\n"
    "reference's spatial_metrics_comparison.py. TABLE.tsv has a header line naming\n"
    "its columns (tabs or spaces): encoder, fid, lds, cds, srss, rmsc and optionally\n"
    "lp_acc; then one line per encoder. '-', 'nan' or 'null' is a missing value;\n"
    "'#' lines are skipped. Prints Pearson's r, Spearman's rho and the least-squares\n"
    "line of FID on each metric.\n"
    "\n"
    "options:\n"
    "  --out FILE.png       the figure: one panel per metric (LP accuracy when the\n"
    "                       table has it, LDS, CDS, SRSS, RMSC) against FID\n"
    "  --panel-size WxH     pixels of each panel (default 400x360)\n"
    "  --title-suffix S     appended to each panel's title\n";

/* x columns in the reference's panel order, then fid */
static const char *const col_names[NCOLS] = {"lp_acc", "lds", "cds", "srss", "rmsc", "fid"};
static const char *const col_titles[NCOLS] = {"LP Acc.", "LDS", "CDS", "SRSS", "RMSC", "gFID"};
enum { COL_FID = 5 };

typedef struct {
  char *names[MAX_ROWS];
  double v[NCOLS][MAX_ROWS];
  bool has[NCOLS];
  size_t n;
} Table;

static int usage_error(const char *fmt, const char *arg) {
  fputs("irepa-run spatial-corr: error: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs(" (see 'irepa-run spatial-corr --help')\n", stderr);
  return EXIT_BAD;
}

static bool parse_value(const char *s, double *out) {
  if (!strcmp(s, "-") || !strcasecmp(s, "nan") || !strcmp(s, "null")) return *out = NAN, true;
  char *end;
  errno = 0;
  *out = strtod(s, &end);
  return !errno && end != s && !*end;
}

/* The header: which column of the file each known column is (-1: absent). */
static bool parse_header(char *line, int where[NCOLS], int *enc_col, int *ncols, const char *path, RtError *err) {
  for (int c = 0; c < NCOLS; c++) where[c] = -1;
  *enc_col = -1, *ncols = 0;
  for (char *tok = strtok(line, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n"), (*ncols)++) {
    if (!strcmp(tok, "encoder")) *enc_col = *ncols;
    for (int c = 0; c < NCOLS; c++)
      if (!strcmp(tok, col_names[c])) where[c] = *ncols;
  }
  if (*enc_col < 0) return rt_fail(err, "%s: the header has no column 'encoder'", path);
  for (int c = 1; c < NCOLS; c++)
    if (where[c] < 0) return rt_fail(err, "%s: the header has no column '%s'", path, col_names[c]);
  return true;
}

static bool parse_row(Table *t, char *line, const int where[NCOLS], int enc_col, int ncols, const char *path,
                      size_t lineno, RtError *err) {
  char *fields[64];
  int k = 0;
  for (char *tok = strtok(line, " \t\r\n"); tok && k < 64; tok = strtok(NULL, " \t\r\n")) fields[k++] = tok;
  if (k != ncols) return rt_fail(err, "%s:%zu: %d fields, the header has %d", path, lineno, k, ncols);
  if (t->n == MAX_ROWS) return rt_fail(err, "%s: more than %d encoders", path, MAX_ROWS);
  for (int c = 0; c < NCOLS; c++) {
    t->v[c][t->n] = NAN;
    if (where[c] >= 0 && !parse_value(fields[where[c]], &t->v[c][t->n]))
      return rt_fail(err, "%s:%zu: %s '%s' is not a number (nor '-' or 'nan')", path, lineno, col_names[c],
                     fields[where[c]]);
  }
  if (!(t->names[t->n] = strdup(fields[enc_col]))) return rt_fail(err, "out of memory");
  t->n++;
  return true;
}

static bool read_table(const char *path, Table *t, RtError *err) {
  FILE *f = fopen(path, "r");
  if (!f) return rt_fail(err, "%s: %s", path, strerror(errno));
  char line[4096];
  int where[NCOLS], enc_col = -1, ncols = 0;
  bool header = false, ok = true;
  for (size_t lineno = 1; ok && fgets(line, sizeof line, f); lineno++) {
    size_t k = strspn(line, " \t\r\n");
    if (!line[k] || line[k] == '#') continue;
    if (!header) ok = parse_header(line, where, &enc_col, &ncols, path, err), header = true;
    else ok = parse_row(t, line, where, enc_col, ncols, path, lineno, err);
  }
  fclose(f);
  for (int c = 0; c < NCOLS; c++) t->has[c] = where[c] >= 0;
  if (ok && !header) ok = rt_fail(err, "%s: empty table (no header line)", path);
  if (ok && !t->n) ok = rt_fail(err, "%s: no encoder rows", path);
  return ok;
}

/* ---- the figure ----------------------------------------------------------- */

typedef struct {
  PlotSeries s[2];
  double fx[2], fy[2];
  char title[96], note[64];
} PanelData;

static void make_panel(const Table *t, int c, const char *suffix, PanelData *d, PlotPanel *p) {
  const double *x = t->v[c], *y = t->v[COL_FID];
  size_t used, ns = 1;
  double r = ss_pearson(x, y, t->n, &used), a, b;
  d->s[0] = (PlotSeries){NULL, x, y, t->n, PLOT_MARKERS};
  if (ss_linfit(x, y, t->n, &a, &b)) {
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < t->n; i++)
      if (isfinite(x[i]) && isfinite(y[i])) lo = fmin(lo, x[i]), hi = fmax(hi, x[i]);
    d->fx[0] = lo, d->fx[1] = hi, d->fy[0] = a * lo + b, d->fy[1] = a * hi + b;
    d->s[1] = (PlotSeries){NULL, d->fx, d->fy, 2, PLOT_LINE}, ns = 2;
  }
  snprintf(d->title, sizeof d->title, "%s%s", col_titles[c], suffix);
  snprintf(d->note, sizeof d->note, "Pearson Corr. r = %.3f", r);
  *p = (PlotPanel){{d->title, col_titles[c], col_titles[COL_FID], 0, 0}, d->s, ns,
                   used >= 3 && isfinite(r) ? d->note : NULL};
}

static bool draw_figure(const Table *t, const char *out, int pw, int ph, const char *suffix, RtError *err) {
  PanelData d[NCOLS];
  PlotPanel p[NCOLS];
  size_t n = 0;
  for (int c = 0; c < COL_FID; c++)
    if (t->has[c]) make_panel(t, c, suffix, &d[n], &p[n]), n++;
  bool ok = plot_write_panels_png(out, p, n, pw, ph, err);
  plot_release_caches();
  return ok;
}

static void print_stats(const Table *t) {
  for (int c = 0; c < COL_FID; c++) {
    if (!t->has[c]) continue;
    size_t used;
    double r = ss_pearson(t->v[c], t->v[COL_FID], t->n, &used), rho = ss_spearman(t->v[c], t->v[COL_FID], t->n), a, b;
    printf("%-6s vs fid: n %zu  pearson r %s%.4f  spearman rho %.4f", col_names[c], used, r < 0 ? "" : " ", r, rho);
    if (ss_linfit(t->v[c], t->v[COL_FID], t->n, &a, &b)) printf("  fit fid = %.6g * %s + %.6g", a, col_names[c], b);
    putchar('\n');
  }
}

static bool parse_panel_size(const char *v, int *w, int *h) {
  char *x;
  long a = strtol(v, &x, 10), b = *x == 'x' ? strtol(x + 1, &x, 10) : 0;
  if (*x || a < 64 || b < 64 || a > 4096 || b > 4096) return false;
  return *w = (int)a, *h = (int)b, true;
}

int spatial_corr_command(int argc, char **argv) {
  const char *table = NULL, *out = NULL, *suffix = "", *v;
  int pw = 400, ph = 360;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return fputs(usage, stdout), 0;
    if ((v = cli_option_value("--out", argc, argv, &i))) out = v;
    else if ((v = cli_option_value("--title-suffix", argc, argv, &i))) suffix = v;
    else if ((v = cli_option_value("--panel-size", argc, argv, &i))) {
      if (!parse_panel_size(v, &pw, &ph)) return usage_error("--panel-size '%s': expected WxH, 64 to 4096", v);
    } else if (argv[i][0] == '-' && argv[i][1]) return usage_error("unknown option '%s'", argv[i]);
    else if (table) return usage_error("unexpected argument '%s' (one TABLE.tsv)", argv[i]);
    else table = argv[i];
  }
  if (!table) return usage_error("%s", "no TABLE.tsv given");
  if (out && !*out) return usage_error("%s", "--out needs a file name");
  Table t = {0};
  RtError err = {{0}};
  bool ok = read_table(table, &t, &err);
  if (ok) print_stats(&t);
  if (ok && out) ok = draw_figure(&t, out, pw, ph, suffix, &err);
  if (ok && out) printf("spatial-corr: %zu encoders -> %s\n", t.n, out);
  if (!ok) fprintf(stderr, "irepa-run spatial-corr: error: %s\n", err.msg);
  for (size_t i = 0; i < t.n; i++) free(t.names[i]);
  return ok ? 0 : EXIT_FAIL;
}
