/* pngwrite.h: 8-bit PNG files (grey or RGB), written atomically, and
 * sample grids laid out as torchvision's make_grid lays them out; plus the
 * two float-to-uint8 rules of the reference's image outputs. */
#ifndef IREPA_PNGWRITE_H
#define IREPA_PNGWRITE_H

#include "tensor.h"

/* An h×w image of c channels (1: grey, 3: RGB), HWC, rows top to bottom,
 * as an 8-bit PNG. Atomic: a temporary file beside path is written, synced
 * and renamed over it. */
bool png_write(const char *path, const uint8_t *pixels, int h, int w, int c, RtError *err);

/* The size of a grid of n images: make_grid's ⌈n / ncols⌉ rows of
 * min(n, ncols) cells of (h + pad) × (w + pad), plus pad on the far sides.
 * One image is returned as it is, without padding, as make_grid does. */
void png_grid_size(int64_t n, int h, int w, int ncols, int pad, int *grid_h, int *grid_w);
/* Lays the N×H×W×C images out on a black (0) background, row by row, into
 * `grid` (grid_h × grid_w × c bytes, see png_grid_size). */
void png_grid(const uint8_t *images, int64_t n, int h, int w, int c, int ncols, int pad, uint8_t *grid);
/* png_grid written with png_write. n >= 1, ncols >= 1, pad >= 0. */
bool png_write_grid(const char *path, const uint8_t *images, int64_t n, int h, int w, int c, int ncols, int pad,
                    RtError *err);

/* Float images in [-1, 1] to uint8, in float32 arithmetic as the reference
 * computes it, t = (x + 1) / 2:
 *   PNG_U8_TRUNCATE  clamp(255·t, 0, 255), truncated (ldm/generate.py: the .npz samples)
 *   PNG_U8_ROUND     clamp(255·t + 0.5, 0, 255), truncated (torchvision's
 *                    save_image: the training-time sample grids)
 * NaN gives 0. */
typedef enum { PNG_U8_TRUNCATE, PNG_U8_ROUND } PngU8Rule;
uint8_t png_float_to_u8(float x, PngU8Rule rule);
/* N×C×H×W floats to N×H×W×C bytes by that rule. */
void png_images_to_u8(const float *nchw, int64_t n, int c, int h, int w, PngU8Rule rule, uint8_t *nhwc);

#endif
