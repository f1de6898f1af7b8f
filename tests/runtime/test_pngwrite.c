/* Tests of runtime/pngwrite.c: PNGs read back with libpng's simplified
 * reader (grey and RGB, pixel for pixel), make_grid's layout (cells,
 * padding, the partial last row, a single image unpadded), the two
 * float-to-uint8 rules of the reference, and errors that leave no file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pngwrite.h"

#define TMPDIR_TEMPLATE "/tmp/irepa-png-XXXXXX"
#include "tmpdir.h"

/* The file's pixels in its own format (grey or RGB); *c is its channels. */
static uint8_t *read_png(const char *path, int *h, int *w, int *c) {
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path)) fail_msg("%s: %s", path, img.message);
  *c = (img.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
  img.format = *c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  uint8_t *px = malloc(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, NULL, px, 0, NULL)) fail_msg("%s: %s", path, img.message);
  *h = (int)img.height, *w = (int)img.width;
  return px;
}

static void test_round_trip(void **state) {
  (void)state;
  for (int c = 1; c <= 3; c += 2) {
    enum { H = 5, W = 7 };
    uint8_t px[H * W * 3];
    for (int i = 0; i < H * W * c; i++) px[i] = (uint8_t)(i * 37 + 11);
    RtError err = {{0}};
    assert_true(png_write(tmp_path("a.png"), px, H, W, c, &err));
    int h, w, cc;
    uint8_t *back = read_png(tmp_path("a.png"), &h, &w, &cc);
    assert_true(h == H && w == W && cc == c);
    assert_memory_equal(back, px, (size_t)(H * W * c));
    free(back);
  }
}

/* 5 images of 2x3 in 3 columns with padding 2: 2 rows of cells, the last
 * one with two images and an empty (black) cell. */
static void test_grid_layout(void **state) {
  (void)state;
  enum { N = 5, H = 2, W = 3 };
  uint8_t imgs[N * H * W];
  for (int k = 0; k < N; k++)
    for (int i = 0; i < H * W; i++) imgs[k * H * W + i] = (uint8_t)(100 + 10 * k + i);
  int gh, gw;
  png_grid_size(N, H, W, 3, 2, &gh, &gw);
  assert_int_equal(gh, 2 * (H + 2) + 2);
  assert_int_equal(gw, 3 * (W + 2) + 2);
  RtError err = {{0}};
  assert_true(png_write_grid(tmp_path("g.png"), imgs, N, H, W, 1, 3, 2, &err));
  int h, w, c;
  uint8_t *g = read_png(tmp_path("g.png"), &h, &w, &c);
  assert_true(h == gh && w == gw && c == 1);
  int inside = 0;
  for (int y = 0; y < gh; y++)
    for (int x = 0; x < gw; x++) {
      int cy = (y - 2) / (H + 2), cx = (x - 2) / (W + 2), iy = (y - 2) % (H + 2), ix = (x - 2) % (W + 2);
      int k = cy * 3 + cx;
      bool in = y >= 2 && x >= 2 && iy < H && ix < W && k < N;
      uint8_t want = in ? imgs[k * H * W + iy * W + ix] : 0;
      if (g[y * gw + x] != want) fail_msg("grid pixel (%d, %d) is %d, expected %d", y, x, g[y * gw + x], want);
      inside += in;
    }
  assert_int_equal(inside, N * H * W);
  free(g);
  /* fewer images than columns: one row of n cells; one image: no padding */
  png_grid_size(2, H, W, 8, 2, &gh, &gw);
  assert_true(gh == H + 4 && gw == 2 * (W + 2) + 2);
  png_grid_size(1, H, W, 8, 2, &gh, &gw);
  assert_true(gh == H && gw == W);
  uint8_t rgb[H * W * 3];
  for (int i = 0; i < H * W * 3; i++) rgb[i] = (uint8_t)(200 - i);
  assert_true(png_write_grid(tmp_path("one.png"), rgb, 1, H, W, 3, 8, 2, &err));
  g = read_png(tmp_path("one.png"), &h, &w, &c);
  assert_true(h == H && w == W && c == 3);
  assert_memory_equal(g, rgb, sizeof rgb);
  free(g);
}

static void test_u8_rules(void **state) {
  (void)state;
  const struct {
    float x;
    uint8_t trunc, round;
  } cases[] = {
      {-1.0f, 0, 0},     {1.0f, 255, 255},  {0.0f, 127, 128},        {2.0f, 255, 255},       {-3.0f, 0, 0},
      {NAN, 0, 0},       {INFINITY, 255, 255}, {-INFINITY, 0, 0},    {-0.99f, 1, 1},          {0.999f, 254, 255},
      {1.0f / 255.0f - 1.0f + 1e-7f, 0, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(png_float_to_u8(cases[i].x, PNG_U8_TRUNCATE), cases[i].trunc);
    assert_int_equal(png_float_to_u8(cases[i].x, PNG_U8_ROUND), cases[i].round);
  }
  /* every level k maps back from x = k/127.5 - 1 by rounding; truncation
   * loses at most one level */
  for (int k = 0; k < 256; k++) {
    float x = (float)k / 127.5f - 1.0f;
    assert_int_equal(png_float_to_u8(x, PNG_U8_ROUND), k);
    assert_true(k - png_float_to_u8(x, PNG_U8_TRUNCATE) <= 1);
  }
  /* NCHW -> NHWC */
  float in[2 * 3 * 1 * 2];
  for (int i = 0; i < 12; i++) in[i] = (float)i / 6.0f - 1.0f;
  uint8_t out[12];
  png_images_to_u8(in, 2, 3, 1, 2, PNG_U8_ROUND, out);
  for (int n = 0; n < 2; n++)
    for (int p = 0; p < 2; p++)
      for (int c = 0; c < 3; c++)
        assert_int_equal(out[(n * 2 + p) * 3 + c], png_float_to_u8(in[(n * 3 + c) * 2 + p], PNG_U8_ROUND));
}

static void test_errors(void **state) {
  (void)state;
  uint8_t px[16] = {0};
  RtError err = {{0}};
  struct stat st;
  assert_false(png_write(tmp_path("x.png"), px, 2, 2, 2, &err));
  assert_non_null(strstr(err.msg, "2 channels"));
  assert_false(png_write(tmp_path("x.png"), px, 0, 2, 1, &err));
  assert_false(png_write_grid(tmp_path("x.png"), px, 0, 2, 2, 1, 3, 2, &err));
  assert_true(stat(tmp_path("x.png"), &st) != 0);
  assert_false(png_write("/nonexistent/dir/x.png", px, 2, 2, 1, &err));
  assert_non_null(strstr(err.msg, "/nonexistent/dir/x.png: cannot create a temporary file"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_grid_layout),
      cmocka_unit_test(test_u8_rules),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
