/* imagefolder.h: an image-folder data set as torchvision's ImageFolder
 * lays it out (one sub-folder per class, PNG and JPEG files inside), and
 * the preprocessing the reference applies to each image: PIL's
 * convert("RGB"), then ADM's centre crop (spec/training.md §6) to S×S,
 * reproducing PIL's BOX and BICUBIC resampling bit for bit.
 *
 * Layout and order (imf_scan):
 *   - classes are the sub-folders of the root, sorted by strcmp; a class's
 *     label is its index in that order;
 *   - inside a class, files ending in .png, .jpg or .jpeg (any case) are
 *     taken, and nested folders are recursed, in torchvision's order:
 *     folders sorted by path (strcmp), files by name within a folder
 *     (sorted(os.walk(class_dir)) with sorted(fnames)); symbolic links are
 *     followed;
 *   - names starting with '.' (hidden files and folders) are skipped at
 *     every level. torchvision would take a hidden folder as a class (for
 *     example .ipynb_checkpoints); this reader does not.
 * A missing root, a root with no class folders, an empty data set and a
 * class folder without images (which torchvision refuses too) are errors
 * naming the path. */
#ifndef IREPA_IMAGEFOLDER_H
#define IREPA_IMAGEFOLDER_H

#include "tensor.h"

/* Which Pillow's resize to reproduce. They differ only in the order of the
 * two passes (each rounds to 8 bits, so the order shows: a few levels on
 * natural images, tens on noise), and only on tall images:
 *   IMF_PILLOW_12_1  up to 12.1: the horizontal pass first, always. The
 *                    default (0): the releases current when the
 *                    reference's data sets were made.
 *   IMF_PILLOW_12_2  12.2 and 12.3: the vertical pass first where h > 100·w
 *                    and the height shrinks (Image.resize does two resizes).
 *   IMF_PILLOW_13    13.0 on: the vertical pass first where the height
 *                    shrinks by more than twice what the width does
 *                    (ImagingResampleInner). */
typedef enum { IMF_PILLOW_12_1 = 0, IMF_PILLOW_12_2, IMF_PILLOW_13 } ImfPillow;

typedef struct {
  ImfPillow pillow; /* for imf_load; imf_scan sets IMF_PILLOW_12_1 */
  char *root;
  int nclasses;
  char **classes;  /* [nclasses] the class folder names, in label order */
  int64_t n;
  char **paths;    /* [n] root/class/.../file, in data set order */
  int64_t *labels; /* [n] in [0, nclasses) */
} ImageFolder;

/* An 8-bit RGB image, interleaved (HWC), as PIL's convert("RGB") makes it. */
typedef struct {
  int w, h;
  uint8_t *rgb; /* [h][w][3] */
} ImfImage;

/* Lists the data set under root into *out (zeroed first; free with
 * imf_free, also after a failure). */
bool imf_scan(const char *root, ImageFolder *out, RtError *err);

/* Image `index` decoded, converted to RGB and centre-cropped to
 * size×size, as uint8 CHW into chw_out[3 * size * size]. */
bool imf_load(const ImageFolder *f, int64_t index, int size, uint8_t *chw_out, RtError *err);

void imf_free(ImageFolder *f);

/* Decodes a PNG (libpng) or JPEG (libjpeg) file, whatever its extension
 * (the signature decides, as PIL does), to RGB as PIL's convert("RGB"):
 * grey is copied to three channels, alpha dropped, a palette expanded;
 * 16-bit samples keep their high byte, except 16-bit grey without alpha,
 * which PIL opens as mode I;16 and clips to 255. Low bit depths are scaled
 * up (1-bit to 0/255, 2-bit ×85, 4-bit ×17). CMYK JPEGs are refused. A
 * corrupt or truncated file is an error naming it with the decoder's
 * reason. */
bool imf_decode(const char *path, ImfImage *img, RtError *err);

void imf_image_free(ImfImage *img);

/* ADM's center_crop_arr: while min(w, h) >= 2·size, halve both sides
 * (integer division) with PIL's BOX filter; then resize with PIL's BICUBIC
 * to round(side · size / min(w, h)) (round half to even, as Python's
 * round); then crop size×size at (⌊(h−size)/2⌋, ⌊(w−size)/2⌋). Writes
 * uint8 CHW into chw_out[3 * size * size]. Equal, byte for byte, to what
 * that Pillow computes. */
bool imf_center_crop(const ImfImage *img, int size, ImfPillow pillow, uint8_t *chw_out, RtError *err);

#endif
