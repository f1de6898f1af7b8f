/* Tests of the chart writer (runtime/plot.c) and `irepa-run plot`
 * (plot_cmd.c): a chart of three series (line, markers, both, one with a
 * missing point) decodes (imagefolder.h's PNG reader) to the asked size,
 * is not blank, and carries each series' colour; bad inputs are errors
 * naming the file and line, and leave no chart behind. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "imagefolder.h"
#include "plot.h"
#include "plot_cmd.h"

#define TMPDIR_TEMPLATE "/tmp/irepa-plot-XXXXXX"
#include "tmpdir.h"

static void write_text(const char *name, const char *text) {
  FILE *f = fopen(tmp_path(name), "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

/* Pixels of exactly this colour (within 8 per channel). */
static long count_rgb(const ImfImage *im, int r, int g, int b) {
  long n = 0;
  for (long i = 0; i < (long)im->w * im->h; i++) {
    const uint8_t *p = im->rgb + 3 * i;
    n += abs(p[0] - r) < 8 && abs(p[1] - g) < 8 && abs(p[2] - b) < 8;
  }
  return n;
}

static void test_chart(void **state) {
  (void)state;
  double x[4] = {100, 200, 300, 400}, y1[4] = {50, 30, NAN, 20}, y2[4] = {60, 25, 18, 15}, y3[4] = {40, 35, 30, 28};
  PlotSeries s[3] = {{"REPA", x, y1, 4, PLOT_LINE}, {"iREPA", x, y2, 4, PLOT_LINE_MARKERS}, {"pts", x, y3, 4, PLOT_MARKERS}};
  PlotOptions o = {"FID against steps", "step", "FID", 640, 400};
  RtError err = {{0}};
  char path[256];
  snprintf(path, sizeof path, "%s", tmp_path("chart.png"));
  if (!plot_write_png(path, &o, s, 3, &err)) fail_msg("%s", err.msg);
  ImfImage im = {0};
  if (!imf_decode(path, &im, &err)) fail_msg("%s", err.msg);
  assert_int_equal(im.w, 640);
  assert_int_equal(im.h, 400);
  long white = count_rgb(&im, 255, 255, 255), total = (long)im.w * im.h;
  long c0 = count_rgb(&im, 0, 114, 178), c1 = count_rgb(&im, 213, 94, 0), c2 = count_rgb(&im, 0, 158, 115);
  printf("white %ld of %ld; series colours %ld, %ld, %ld pixels\n", white, total, c0, c1, c2);
  assert_true(white < total * 98 / 100 && white > total / 2); /* drawn on, mostly background */
  assert_true(c0 > 100 && c1 > 100 && c2 > 20);                /* every series (and its legend entry) is there */
  imf_image_free(&im);
  /* no finite point, and a silly size: errors, the old chart stays */
  double nan4[4] = {NAN, NAN, NAN, NAN};
  PlotSeries bad = {"nan", x, nan4, 4, PLOT_LINE};
  assert_false(plot_write_png(path, &o, &bad, 1, &err));
  assert_non_null(strstr(err.msg, "no finite point"));
  PlotOptions tiny = {NULL, NULL, NULL, 10, 10};
  assert_false(plot_write_png(path, &tiny, s, 1, &err));
  assert_true(imf_decode(path, &im, &err) && im.w == 640);
  imf_image_free(&im);
}

static int plot(const char *a0, const char *a1, const char *a2) {
  char out[256];
  snprintf(out, sizeof out, "%s", tmp_path("cmd.png"));
  const char *args[8] = {"--out", out, "--title", "t", a0, a1, a2};
  int n = 4;
  while (n < 7 && args[n]) n++;
  return plot_command(n, (char **)args);
}

static void test_command(void **state) {
  (void)state;
  write_text("a.tsv", "# step\tfid\n100\t50.5\n200\t-\n\n300  20\n");
  write_text("b.tsv", "100 1\n200 2 3\n");
  write_text("c.tsv", "100 x\n");
  write_text("empty.tsv", "# nothing\n");
  char a[256], b[256], c[256], e[256], named[300];
  snprintf(a, sizeof a, "%s", tmp_path("a.tsv"));
  snprintf(b, sizeof b, "%s", tmp_path("b.tsv"));
  snprintf(c, sizeof c, "%s", tmp_path("c.tsv"));
  snprintf(e, sizeof e, "%s", tmp_path("empty.tsv"));
  snprintf(named, sizeof named, "vanilla SiT=%s", a);
  assert_int_equal(plot(named, "--style", "markers"), 0);
  struct stat st;
  assert_int_equal(stat(tmp_path("cmd.png"), &st), 0);
  remove(tmp_path("cmd.png"));
  assert_int_equal(plot(b, NULL, NULL), 2);     /* three columns, line 2 */
  assert_int_equal(plot(c, NULL, NULL), 2);     /* y not a number */
  assert_int_equal(plot(e, NULL, NULL), 2);     /* no points */
  assert_int_equal(plot("missing.tsv", NULL, NULL), 2);
  assert_int_equal(plot(a, "--style", "bars"), 2);
  assert_int_equal(plot("--width", "9", a), 2);
  assert_int_equal(plot("--frob", a, NULL), 2);
  assert_int_not_equal(stat(tmp_path("cmd.png"), &st), 0);
  const char *no_out[] = {a};
  assert_int_equal(plot_command(1, (char **)no_out), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chart),
      cmocka_unit_test(test_command),
  };
  int rc = cmocka_run_group_tests(tests, make_dir, remove_dir);
  plot_release_caches(); /* fontconfig's caches, so that LeakSanitizer sees only ours */
  return rc;
}
