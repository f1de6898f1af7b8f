/* imagefolder.c: see imagefolder.h. Three parts: the folder scan
 * (torchvision's ImageFolder order), decoding (libpng, libjpeg) to PIL's
 * convert("RGB"), and ADM's centre crop on a re-implementation of PIL's
 * two-pass resampler (Pillow's src/libImaging/Resample.c: the coefficient
 * computation, 22-bit fixed point, and the order of the two passes,
 * which changed in Pillow 12.2 and 13.0).
 *
 * libpng and libjpeg report errors through a callback that must not
 * return; ours longjmp back to png_run or jpeg_run, the only callers of
 * setjmp, which turn the decoder's message into an RtError. Nothing else
 * jumps, and all state that outlives a jump lives in their caller's frame. */
#include "imagefolder.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>

enum {
  MAX_DEPTH = 32,     /* folder nesting below the root: deeper is a link loop */
  MAX_SIZE = 1 << 16, /* the crop side S */
};
/* PIL refuses images above twice Image.MAX_IMAGE_PIXELS (DecompressionBombError). */
static const int64_t MAX_PIXELS = 2 * 89478485LL;

/* ---- the folder scan ---------------------------------------------------- */

typedef struct {
  char *path;
  size_t dirlen; /* path[dirlen] is the '/' before the file name */
} Entry;

typedef struct {
  Entry *v;
  size_t n, cap;
} EntryList;

static char *join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  p[a] = '/';
  memcpy(p + a + 1, name, b + 1);
  return p;
}

static bool has_image_ext(const char *name) {
  const char *dot = strrchr(name, '.');
  return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

/* Takes ownership of path. */
static bool push_entry(EntryList *l, char *path, size_t dirlen, RtError *err) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    Entry *v = realloc(l->v, cap * sizeof *v);
    if (!v) {
      free(path);
      return rt_fail(err, "out of memory listing images");
    }
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = (Entry){path, dirlen};
  return true;
}

/* sorted(os.walk(class_dir)) then sorted(fnames): by folder, then name. */
static int cmp_entry(const void *pa, const void *pb) {
  const Entry *a = pa, *b = pb;
  size_t n = a->dirlen < b->dirlen ? a->dirlen : b->dirlen;
  int c = memcmp(a->path, b->path, n);
  if (c) return c;
  if (a->dirlen != b->dirlen) return a->dirlen < b->dirlen ? -1 : 1;
  return strcmp(a->path + a->dirlen + 1, b->path + b->dirlen + 1);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Appends the images under dir (recursing, skipping hidden names). */
static bool walk(const char *dir, int depth, EntryList *l, RtError *err) {
  if (depth > MAX_DEPTH) return rt_fail(err, "%s: folders nested more than %d deep (a link loop?)", dir, MAX_DEPTH);
  DIR *d = opendir(dir);
  if (!d) return rt_fail(err, "%s: cannot open: %s", dir, strerror(errno));
  bool ok = true;
  struct dirent *e;
  while (ok && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char *p = join(dir, e->d_name);
    struct stat st;
    if (!p) ok = rt_fail(err, "out of memory listing %s", dir);
    else if (stat(p, &st) != 0) free(p); /* a dangling link */
    else if (S_ISREG(st.st_mode) && has_image_ext(e->d_name)) ok = push_entry(l, p, strlen(dir), err);
    else {
      if (S_ISDIR(st.st_mode)) ok = walk(p, depth + 1, l, err);
      free(p);
    }
  }
  closedir(d);
  return ok;
}

/* The sorted names of root's visible sub-folders. */
static bool list_classes(const char *root, ImageFolder *f, RtError *err) {
  DIR *d = opendir(root);
  if (!d) return rt_fail(err, "%s: cannot open the image folder: %s", root, strerror(errno));
  bool ok = true;
  int cap = 0;
  struct dirent *e;
  while (ok && (e = readdir(d))) {
    struct stat st;
    char *p = e->d_name[0] == '.' ? NULL : join(root, e->d_name);
    bool is_dir = p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
    free(p);
    if (!is_dir) continue;
    if (f->nclasses == cap) {
      cap = cap ? 2 * cap : 16;
      char **v = realloc(f->classes, (size_t)cap * sizeof *v);
      if (!v) ok = rt_fail(err, "out of memory listing %s", root);
      else f->classes = v;
    }
    if (ok && !(f->classes[f->nclasses] = strdup(e->d_name))) ok = rt_fail(err, "out of memory listing %s", root);
    if (ok) f->nclasses++;
  }
  closedir(d);
  if (ok && f->nclasses == 0)
    return rt_fail(err, "%s: no class folders (an image folder has one sub-folder of images per class)", root);
  if (ok) qsort(f->classes, (size_t)f->nclasses, sizeof *f->classes, cmp_str);
  return ok;
}

/* Walks every class, sorts its images, and counts the empty classes. */
static bool collect(ImageFolder *f, EntryList *l, int64_t *counts, RtError *err) {
  for (int c = 0; c < f->nclasses; c++) {
    char *dir = join(f->root, f->classes[c]);
    if (!dir) return rt_fail(err, "out of memory listing %s", f->root);
    size_t first = l->n;
    bool ok = walk(dir, 1, l, err);
    free(dir);
    if (!ok) return false;
    if (l->n > first) qsort(l->v + first, l->n - first, sizeof *l->v, cmp_entry);
    counts[c] = (int64_t)(l->n - first);
  }
  return true;
}

static bool check_counts(const ImageFolder *f, const int64_t *counts, int64_t total, RtError *err) {
  if (total == 0)
    return rt_fail(err, "%s: empty data set: no .png, .jpg or .jpeg files in its %d class folder%s", f->root,
                   f->nclasses, f->nclasses == 1 ? "" : "s");
  for (int c = 0; c < f->nclasses; c++)
    if (counts[c] == 0)
      return rt_fail(err, "%s/%s: class folder with no .png, .jpg or .jpeg files (torchvision refuses it too)",
                     f->root, f->classes[c]);
  return true;
}

bool imf_scan(const char *root, ImageFolder *out, RtError *err) {
  memset(out, 0, sizeof *out);
  struct stat st;
  if (stat(root, &st) != 0) return rt_fail(err, "%s: cannot open the image folder: %s", root, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return rt_fail(err, "%s: not a folder (an image folder has one sub-folder per class)", root);
  if (!(out->root = strdup(root))) return rt_fail(err, "out of memory");
  for (size_t n = strlen(out->root); n > 1 && out->root[n - 1] == '/'; n--) out->root[n - 1] = '\0';
  if (!list_classes(out->root, out, err)) return false;
  EntryList l = {0};
  int64_t *counts = calloc((size_t)out->nclasses, sizeof *counts);
  bool ok = counts ? collect(out, &l, counts, err) : rt_fail(err, "out of memory");
  ok = ok && check_counts(out, counts, (int64_t)l.n, err);
  if (ok) {
    out->paths = malloc(l.n * sizeof *out->paths);
    out->labels = malloc(l.n * sizeof *out->labels);
    ok = out->paths && out->labels ? true : rt_fail(err, "out of memory");
  }
  if (ok) {
    int64_t i = 0;
    for (int c = 0; c < out->nclasses; c++)
      for (int64_t j = 0; j < counts[c]; j++, i++) {
        out->paths[i] = l.v[i].path;
        out->labels[i] = c;
      }
    out->n = (int64_t)l.n;
  } else {
    for (size_t i = 0; i < l.n; i++) free(l.v[i].path);
  }
  free(l.v);
  free(counts);
  return ok;
}

void imf_free(ImageFolder *f) {
  if (!f) return;
  for (int c = 0; c < f->nclasses; c++) free(f->classes[c]);
  for (int64_t i = 0; i < f->n; i++) free(f->paths[i]);
  free(f->classes);
  free(f->paths);
  free(f->labels);
  free(f->root);
  memset(f, 0, sizeof *f);
}

/* ---- decoding ----------------------------------------------------------- */

static bool check_dims(const char *path, const char *kind, int64_t w, int64_t h, RtError *err) {
  if (w < 1 || h < 1 || w * h > MAX_PIXELS)
    return rt_fail(err, "%s: %s of %lldx%lld pixels; at most %lld pixels are read (PIL's limit too)", path, kind,
                   (long long)w, (long long)h, (long long)MAX_PIXELS);
  return true;
}

static bool alloc_image(ImfImage *img, int w, int h, const char *path, RtError *err) {
  img->w = w;
  img->h = h;
  img->rgb = malloc((size_t)w * (size_t)h * 3);
  return img->rgb ? true : rt_fail(err, "%s: out of memory for a %dx%d image", path, w, h);
}

typedef struct {
  png_structp png;
  png_infop info;
  jmp_buf jmp;
  char why[256];
  uint8_t *row;
} PngRead;

static void png_on_error(png_structp png, png_const_charp msg) {
  PngRead *r = png_get_error_ptr(png);
  snprintf(r->why, sizeof r->why, "%s", msg);
  longjmp(r->jmp, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

/* One decoded PNG row (8- or 16-bit big-endian samples, 1 to 4 channels)
 * to RGB: grey copied, alpha dropped, 16 bits to their high byte except
 * grey16, PIL's I;16, which clips to 255. */
static void png_row_to_rgb(const uint8_t *in, int w, int channels, int depth, bool grey16, uint8_t *out) {
  const int step = depth == 16 ? 2 : 1;
  for (int x = 0; x < w; x++, out += 3) {
    const uint8_t *px = in + (size_t)x * channels * step;
    if (grey16) {
      unsigned v = (unsigned)px[0] << 8 | px[1];
      out[0] = out[1] = out[2] = (uint8_t)(v > 255 ? 255 : v);
    } else if (channels <= 2) {
      out[0] = out[1] = out[2] = px[0];
    } else {
      out[0] = px[0];
      out[1] = px[step];
      out[2] = px[2 * step];
    }
  }
}

/* Runs libpng over the file. State that outlives a longjmp is in *r and
 * *img (the caller's); this function's locals are not read after one. */
static bool png_run(PngRead *r, FILE *fp, const char *path, ImfImage *img, RtError *err) {
  if (setjmp(r->jmp)) return rt_fail(err, "%s: corrupt or truncated PNG: %s", path, r->why);
  r->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, r, png_on_error, png_on_warning);
  if (!r->png || !(r->info = png_create_info_struct(r->png))) return rt_fail(err, "%s: out of memory", path);
  png_init_io(r->png, fp);
  png_read_info(r->png, r->info);
  const int ctype = png_get_color_type(r->png, r->info), depth0 = png_get_bit_depth(r->png, r->info);
  const png_uint_32 w = png_get_image_width(r->png, r->info), h = png_get_image_height(r->png, r->info);
  if (!check_dims(path, "a PNG", w, h, err)) return false;
  if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(r->png);
  if (ctype == PNG_COLOR_TYPE_GRAY && depth0 < 8) png_set_expand_gray_1_2_4_to_8(r->png);
  const int passes = png_set_interlace_handling(r->png);
  png_read_update_info(r->png, r->info);
  const int channels = png_get_channels(r->png, r->info), depth = png_get_bit_depth(r->png, r->info);
  const bool grey16 = ctype == PNG_COLOR_TYPE_GRAY && depth0 == 16;
  /* Interlaced images need every row in memory; the RGB buffer is used
   * as scratch for them where a row fits, else the whole decoded image. */
  const size_t rowbytes = png_get_rowbytes(r->png, r->info);
  if (!alloc_image(img, (int)w, (int)h, path, err)) return false;
  if (!(r->row = malloc(passes > 1 ? rowbytes * h : rowbytes))) return rt_fail(err, "%s: out of memory", path);
  if (passes > 1) {
    for (int p = 0; p < passes; p++)
      for (png_uint_32 y = 0; y < h; y++) png_read_row(r->png, r->row + y * rowbytes, NULL);
    for (png_uint_32 y = 0; y < h; y++)
      png_row_to_rgb(r->row + y * rowbytes, (int)w, channels, depth, grey16, img->rgb + (size_t)y * w * 3);
  } else {
    for (png_uint_32 y = 0; y < h; y++) {
      png_read_row(r->png, r->row, NULL);
      png_row_to_rgb(r->row, (int)w, channels, depth, grey16, img->rgb + (size_t)y * w * 3);
    }
  }
  return true;
}

/* The chunks after the image data are not read: PIL does not insist on
 * them either. */
static bool decode_png(FILE *fp, const char *path, ImfImage *img, RtError *err) {
  PngRead r;
  memset(&r, 0, sizeof r);
  bool ok = png_run(&r, fp, path, img, err);
  if (r.png) png_destroy_read_struct(&r.png, r.info ? &r.info : NULL, NULL);
  free(r.row);
  return ok;
}

typedef struct {
  struct jpeg_error_mgr mgr; /* first: libjpeg hands back &mgr */
  jmp_buf jmp;
  char why[JMSG_LENGTH_MAX];
} JpegErr;

typedef struct {
  struct jpeg_decompress_struct cinfo;
  JpegErr err;
  uint8_t *row;
} JpegRead;

static void jpeg_on_error(j_common_ptr cinfo) {
  JpegErr *e = (JpegErr *)cinfo->err;
  cinfo->err->format_message(cinfo, e->why);
  longjmp(e->jmp, 1);
}

/* Warnings and traces are dropped, as PIL drops them, except a premature
 * end of file: libjpeg would pad the image, PIL says "image file is
 * truncated". */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_on_error(cinfo);
}

/* As png_run: state that outlives a longjmp is in *r and *img. */
static bool jpeg_run(JpegRead *r, FILE *fp, const char *path, ImfImage *img, RtError *err) {
  if (setjmp(r->err.jmp)) return rt_fail(err, "%s: corrupt or truncated JPEG: %s", path, r->err.why);
  struct jpeg_decompress_struct *ci = &r->cinfo;
  jpeg_create_decompress(ci);
  jpeg_stdio_src(ci, fp);
  jpeg_read_header(ci, TRUE);
  if (ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK)
    return rt_fail(err, "%s: a CMYK JPEG; only greyscale and colour (YCbCr, RGB) JPEGs are read", path);
  const bool grey = ci->jpeg_color_space == JCS_GRAYSCALE;
  ci->out_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
  if (!check_dims(path, "a JPEG", ci->image_width, ci->image_height, err)) return false;
  jpeg_start_decompress(ci);
  const int w = (int)ci->output_width, h = (int)ci->output_height;
  if (!alloc_image(img, w, h, path, err)) return false;
  if (!(r->row = malloc((size_t)w * 3))) return rt_fail(err, "%s: out of memory", path);
  while (ci->output_scanline < ci->output_height) {
    uint8_t *dst = img->rgb + (size_t)ci->output_scanline * w * 3;
    JSAMPROW row = grey ? r->row : dst;
    if (jpeg_read_scanlines(ci, &row, 1) != 1) return rt_fail(err, "%s: corrupt JPEG: no scanline", path);
    for (int x = 0; grey && x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = r->row[x];
  }
  jpeg_finish_decompress(ci);
  return true;
}

static bool decode_jpeg(FILE *fp, const char *path, ImfImage *img, RtError *err) {
  JpegRead r;
  memset(&r, 0, sizeof r);
  r.cinfo.err = jpeg_std_error(&r.err.mgr);
  r.err.mgr.error_exit = jpeg_on_error;
  r.err.mgr.emit_message = jpeg_on_message;
  bool ok = jpeg_run(&r, fp, path, img, err);
  jpeg_destroy_decompress(&r.cinfo); /* safe on a never-created object: mem is NULL */
  free(r.row);
  return ok;
}

bool imf_decode(const char *path, ImfImage *img, RtError *err) {
  memset(img, 0, sizeof *img);
  FILE *fp = fopen(path, "rb");
  if (!fp) return rt_fail(err, "%s: cannot open: %s", path, strerror(errno));
  unsigned char sig[8];
  size_t got = fread(sig, 1, sizeof sig, fp);
  rewind(fp);
  bool ok;
  if (got == sizeof sig && png_sig_cmp(sig, 0, sizeof sig) == 0) ok = decode_png(fp, path, img, err);
  else if (got >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF) ok = decode_jpeg(fp, path, img, err);
  else ok = rt_fail(err, "%s: not a PNG or JPEG file (%s)", path, got ? "unknown signature" : "empty");
  fclose(fp);
  if (!ok) imf_image_free(img);
  return ok;
}

void imf_image_free(ImfImage *img) {
  free(img->rgb);
  memset(img, 0, sizeof *img);
}

/* ---- PIL's resampling --------------------------------------------------- */

typedef struct {
  double (*fn)(double x);
  double support;
} Filter;

static double box_filter(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }

/* Keys' cubic convolution with a = -0.5. */
static double bicubic_filter(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

static const Filter BOX = {box_filter, 0.5}, BICUBIC = {bicubic_filter, 2.0};

/* 8 bits of result, 2 for overflow and sign: coefficients are 22-bit fixed point. */
enum { PRECISION_BITS = 32 - 8 - 2 };

/* For each output position: the first input index, the number of taps,
 * and ksize fixed-point weights. */
typedef struct {
  int ksize;
  int *bounds; /* [out][2]: xmin, count */
  int32_t *k;  /* [out][ksize] */
} Coeffs;

static void coeffs_free(Coeffs *c) {
  free(c->bounds);
  free(c->k);
}

/* Pillow's precompute_coeffs over the box (0, in_size) and its
 * normalize_coeffs_8bpc; the same double arithmetic in the same order.
 * The filter is stretched by the downscale factor (antialiasing). */
static bool coeffs_new(int in_size, int out_size, const Filter *f, Coeffs *c) {
  const double scale = (double)((float)in_size - 0.0f) / out_size; /* Pillow's box is float */
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = f->support * filterscale;
  const int ksize = (int)ceil(support) * 2 + 1;
  double *w = malloc((size_t)ksize * sizeof *w);
  c->ksize = ksize;
  c->bounds = malloc((size_t)out_size * 2 * sizeof *c->bounds);
  c->k = calloc((size_t)out_size * (size_t)ksize, sizeof *c->k);
  if (!w || !c->bounds || !c->k) {
    free(w);
    return false;
  }
  for (int xx = 0; xx < out_size; xx++) {
    const double center = (xx + 0.5) * scale, ss = 1.0 / filterscale;
    int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
    if (xmin < 0) xmin = 0;
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    if (xmax > ksize) xmax = ksize; /* never: Pillow relies on it */
    double ww = 0.0;
    for (int x = 0; x < xmax; x++) ww += w[x] = f->fn((x + xmin - center + 0.5) * ss);
    for (int x = 0; x < xmax; x++) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      c->k[(size_t)xx * ksize + x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
    }
    c->bounds[2 * xx] = xmin;
    c->bounds[2 * xx + 1] = xmax;
  }
  free(w);
  return true;
}

static uint8_t clip8(int ss) {
  const int v = ss >> PRECISION_BITS; /* arithmetic shift, as Pillow */
  return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* out [rows][ow][3] from rows y0 .. y0+rows-1 of in [.][w][3]. */
static void resample_h(uint8_t *out, const uint8_t *in, int w, int y0, int rows, int ow, const Coeffs *c) {
  for (int yy = 0; yy < rows; yy++)
    for (int xx = 0; xx < ow; xx++) {
      const int xmin = c->bounds[2 * xx], xmax = c->bounds[2 * xx + 1];
      const int32_t *k = c->k + (size_t)xx * c->ksize;
      const uint8_t *src = in + ((size_t)(y0 + yy) * w + xmin) * 3;
      for (int ch = 0; ch < 3; ch++) {
        int ss = 1 << (PRECISION_BITS - 1);
        for (int x = 0; x < xmax; x++) ss += src[3 * x + ch] * k[x];
        out[((size_t)yy * ow + xx) * 3 + ch] = clip8(ss);
      }
    }
}

/* out [oh][w][3] from in [.][w][3]; the bounds are rows of in. */
static void resample_v(uint8_t *out, const uint8_t *in, int w, int oh, const Coeffs *c) {
  const size_t stride = (size_t)w * 3;
  for (int yy = 0; yy < oh; yy++) {
    const int ymin = c->bounds[2 * yy], ymax = c->bounds[2 * yy + 1];
    const int32_t *k = c->k + (size_t)yy * c->ksize;
    for (size_t i = 0; i < stride; i++) {
      int ss = 1 << (PRECISION_BITS - 1);
      for (int y = 0; y < ymax; y++) ss += in[(size_t)(y + ymin) * stride + i] * k[y];
      out[yy * stride + i] = clip8(ss);
    }
  }
}

/* Whether this Pillow runs the vertical pass first (imagefolder.h). */
static bool vertical_first(ImfPillow pillow, int w, int h, int ow, int oh) {
  if (pillow == IMF_PILLOW_12_2) return h > 100 * (int64_t)w && oh < h;
  if (pillow == IMF_PILLOW_13) return h - oh > 0 && h - oh > (int64_t)(w - ow) * 2;
  return false;
}

/* Pillow's ImagingResampleInner for 8-bit RGB: a pass for each side that
 * changes, each rounding and clipping to 8 bits. Horizontal first, it
 * resamples only the rows the vertical pass reads. A new [oh][ow][3]
 * buffer, or NULL when out of memory. */
static uint8_t *resample(const uint8_t *in, int w, int h, int ow, int oh, const Filter *f, ImfPillow pillow) {
  const bool need_h = ow != w, need_v = oh != h;
  Coeffs cv = {0}, chz = {0};
  uint8_t *tmp = NULL, *out = NULL;
  if ((need_v && !coeffs_new(h, oh, f, &cv)) || (need_h && !coeffs_new(w, ow, f, &chz))) goto done;
  if (!(out = malloc((size_t)ow * (size_t)oh * 3))) goto done;
  if (!need_h && !need_v) {
    memcpy(out, in, (size_t)w * (size_t)h * 3);
  } else if (!need_v) {
    resample_h(out, in, w, 0, h, ow, &chz);
  } else if (!need_h) {
    resample_v(out, in, w, oh, &cv);
  } else if (vertical_first(pillow, w, h, ow, oh)) {
    if (!(tmp = malloc((size_t)w * (size_t)oh * 3))) goto fail;
    resample_v(tmp, in, w, oh, &cv);
    resample_h(out, tmp, w, 0, oh, ow, &chz);
  } else {
    const int y0 = cv.bounds[0], y1 = cv.bounds[2 * oh - 2] + cv.bounds[2 * oh - 1];
    if (!(tmp = malloc((size_t)ow * (size_t)(y1 - y0) * 3))) goto fail;
    resample_h(tmp, in, w, y0, y1 - y0, ow, &chz);
    for (int i = 0; i < oh; i++) cv.bounds[2 * i] -= y0;
    resample_v(out, tmp, ow, oh, &cv);
  }
  goto done;
fail:
  free(out);
  out = NULL;
done:
  coeffs_free(&cv);
  coeffs_free(&chz);
  free(tmp);
  return out;
}

bool imf_center_crop(const ImfImage *img, int size, ImfPillow pillow, uint8_t *chw_out, RtError *err) {
  if (size < 1 || size > MAX_SIZE) return rt_fail(err, "crop size %d; expected 1 to %d", size, MAX_SIZE);
  int w = img->w, h = img->h;
  const uint8_t *cur = img->rgb;
  uint8_t *owned = NULL;
  while ((w < h ? w : h) >= 2 * size) {
    uint8_t *half = resample(cur, w, h, w / 2, h / 2, &BOX, pillow);
    free(owned);
    if (!half) return rt_fail(err, "out of memory halving a %dx%d image", w, h);
    cur = owned = half;
    w /= 2;
    h /= 2;
  }
  const double scale = (double)size / (w < h ? w : h);
  const int nw = (int)rint(w * scale), nh = (int)rint(h * scale); /* Python's round: half to even */
  uint8_t *res = nw >= size && nh >= size ? resample(cur, w, h, nw, nh, &BICUBIC, pillow) : NULL;
  free(owned);
  if (!res) return rt_fail(err, "cannot resize a %dx%d image to %dx%d (out of memory?)", w, h, nw, nh);
  const int top = (nh - size) / 2, left = (nw - size) / 2;
  for (int ch = 0; ch < 3; ch++)
    for (int y = 0; y < size; y++)
      for (int x = 0; x < size; x++)
        chw_out[((size_t)ch * size + y) * size + x] = res[((size_t)(top + y) * nw + left + x) * 3 + ch];
  free(res);
  return true;
}

bool imf_load(const ImageFolder *f, int64_t index, int size, uint8_t *chw_out, RtError *err) {
  if (index < 0 || index >= f->n)
    return rt_fail(err, "%s: image index %lld out of range [0, %lld)", f->root, (long long)index, (long long)f->n);
  ImfImage img;
  if (!imf_decode(f->paths[index], &img, err)) return false;
  RtError why;
  bool ok = imf_center_crop(&img, size, f->pillow, chw_out, &why);
  if (!ok) rt_fail(err, "%s: %s", f->paths[index], why.msg);
  imf_image_free(&img);
  return ok;
}
