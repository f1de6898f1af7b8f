/* pngwrite.c: see pngwrite.h. The PNG is encoded into memory and then
 * handed to rt_write_atomic, so a failed encode never touches the file.
 *
 * libpng reports errors through a callback that must not return; ours
 * longjmps back to png_encode, the only caller of setjmp, whose state
 * lives in its caller's frame (PngOut), so nothing is lost in the jump. */
#include "pngwrite.h"
#include "fileio.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  png_structp png;
  png_infop info;
  jmp_buf jmp;
  char why[256];
  uint8_t *buf; /* the encoded file */
  size_t len, cap;
  bool oom;
} PngOut;

static void on_error(png_structp png, png_const_charp msg) {
  PngOut *o = png_get_error_ptr(png);
  snprintf(o->why, sizeof o->why, "%s", msg);
  longjmp(o->jmp, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

static void on_write(png_structp png, png_bytep data, size_t n) {
  PngOut *o = png_get_io_ptr(png);
  if (o->len + n > o->cap) {
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + n) cap *= 2;
    uint8_t *b = realloc(o->buf, cap);
    if (!b) {
      o->oom = true;
      png_error(png, "out of memory");
    }
    o->buf = b, o->cap = cap;
  }
  memcpy(o->buf + o->len, data, n);
  o->len += n;
}

static void on_flush(png_structp png) { (void)png; }

static bool png_encode(PngOut *o, const uint8_t *pixels, int h, int w, int c, const char *path, RtError *err) {
  if (setjmp(o->jmp)) return rt_fail(err, "%s: cannot encode the PNG: %s", path, o->why);
  o->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, o, on_error, on_warning);
  if (!o->png || !(o->info = png_create_info_struct(o->png))) return rt_fail(err, "%s: out of memory", path);
  png_set_write_fn(o->png, o, on_write, on_flush);
  png_set_IHDR(o->png, o->info, (png_uint_32)w, (png_uint_32)h, 8, c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(o->png, o->info);
  for (int y = 0; y < h; y++) png_write_row(o->png, pixels + (size_t)y * (size_t)w * (size_t)c);
  png_write_end(o->png, o->info);
  return true;
}

bool png_write(const char *path, const uint8_t *pixels, int h, int w, int c, RtError *err) {
  if (h < 1 || w < 1 || h > 1000000 || w > 1000000)
    return rt_fail(err, "%s: a PNG of %d x %d pixels cannot be written (1 to 1,000,000 a side)", path, w, h);
  if (c != 1 && c != 3) return rt_fail(err, "%s: %d channels; a PNG is written from 1 (grey) or 3 (RGB)", path, c);
  PngOut o;
  memset(&o, 0, sizeof o);
  bool ok = png_encode(&o, pixels, h, w, c, path, err);
  png_destroy_write_struct(&o.png, &o.info);
  if (ok) {
    const void *chunks[1] = {o.buf};
    size_t sizes[1] = {o.len};
    ok = rt_write_atomic(path, chunks, sizes, 1, err);
  }
  free(o.buf);
  return ok;
}

void png_grid_size(int64_t n, int h, int w, int ncols, int pad, int *grid_h, int *grid_w) {
  if (n == 1) {
    *grid_h = h, *grid_w = w;
    return;
  }
  int64_t xmaps = n < ncols ? n : ncols, ymaps = (n + xmaps - 1) / xmaps;
  *grid_h = (int)(ymaps * (h + pad) + pad);
  *grid_w = (int)(xmaps * (w + pad) + pad);
}

void png_grid(const uint8_t *images, int64_t n, int h, int w, int c, int ncols, int pad, uint8_t *grid) {
  int gh, gw;
  png_grid_size(n, h, w, ncols, pad, &gh, &gw);
  if (n == 1) pad = 0;
  memset(grid, 0, (size_t)gh * (size_t)gw * (size_t)c);
  size_t row = (size_t)w * (size_t)c;
  for (int64_t k = 0; k < n; k++) {
    int64_t y0 = (k / ncols) * (h + pad) + pad, x0 = (k % ncols) * (w + pad) + pad;
    for (int y = 0; y < h; y++)
      memcpy(grid + ((size_t)(y0 + y) * (size_t)gw + (size_t)x0) * (size_t)c,
             images + ((size_t)k * (size_t)h + (size_t)y) * row, row);
  }
}

bool png_write_grid(const char *path, const uint8_t *images, int64_t n, int h, int w, int c, int ncols, int pad,
                    RtError *err) {
  if (n < 1 || ncols < 1 || pad < 0 || h < 1 || w < 1 || pad > 1000)
    return rt_fail(err, "%s: a grid needs images (%lld), columns (%d), sides (%d x %d) and a padding (%d) >= 0",
                   path, (long long)n, ncols, w, h, pad);
  int64_t cols = n < ncols ? n : ncols, rows = (n + cols - 1) / cols;
  if (rows * (h + pad) + pad > 1000000 || cols * (w + pad) + pad > 1000000)
    return rt_fail(err, "%s: a grid of %lld x %lld images of %d x %d is too large for a PNG", path, (long long)rows,
                   (long long)cols, w, h);
  int gh, gw;
  png_grid_size(n, h, w, ncols, pad, &gh, &gw);
  uint8_t *grid = malloc((size_t)gh * (size_t)gw * (size_t)(c > 0 ? c : 1));
  if (!grid) return rt_fail(err, "%s: out of memory for a %d x %d grid", path, gw, gh);
  if (c == 1 || c == 3) png_grid(images, n, h, w, c, ncols, pad, grid);
  bool ok = png_write(path, grid, gh, gw, c, err);
  free(grid);
  return ok;
}

uint8_t png_float_to_u8(float x, PngU8Rule rule) {
  float t = (x + 1.0f) / 2.0f, v = 255.0f * t;
  if (rule == PNG_U8_ROUND) v = v + 0.5f;
  if (!(v > 0.0f)) return 0; /* also NaN */
  return v >= 255.0f ? 255 : (uint8_t)v;
}

void png_images_to_u8(const float *nchw, int64_t n, int c, int h, int w, PngU8Rule rule, uint8_t *nhwc) {
  size_t plane = (size_t)h * (size_t)w;
  for (int64_t i = 0; i < n; i++)
    for (size_t p = 0; p < plane; p++)
      for (int k = 0; k < c; k++)
        nhwc[((size_t)i * plane + p) * (size_t)c + (size_t)k] = png_float_to_u8(nchw[((size_t)i * (size_t)c + (size_t)k) * plane + p], rule);
}
