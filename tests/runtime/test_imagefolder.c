/* Tests of runtime/imagefolder.c: the folder scan (class order, labels,
 * file order in nested folders, hidden and foreign files skipped, the
 * refused layouts); decoding of PNGs and JPEGs written here with libpng
 * and libjpeg (grey, alpha, palette, 16-bit, low bit depths, interlacing;
 * corrupt, truncated and foreign files refused with the file's name); and
 * the centre crop against PIL: tests/runtime/golden/imagefolder/, written
 * by `python3 tools/gen_imagefolder_golden.py --images` under Pillow 13.0.0
 * and its crops again under Pillow 12.1.1 and 12.3.0 (the commands are in
 * the script's docstring), must be reproduced byte for byte: decoding, and
 * the crops of each Pillow. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

#include "imagefolder.h"

#define TMPDIR_TEMPLATE "/tmp/irepa-imf-XXXXXX"
#include "tmpdir.h"

static const char *golden_path(const char *name) {
  static char buf[4096];
  const char *root = getenv("IREPA_SOURCE_DIR");
  snprintf(buf, sizeof buf, "%s/tests/runtime/golden/imagefolder/%s", root ? root : "../..", name);
  return buf;
}

/* ---- writing test files ---------------------------------------------- */

typedef struct {
  int w, h, ctype, depth;
  bool interlace;
  const uint8_t *data; /* h rows of rowbytes, PNG's packing and byte order */
  size_t rowbytes;
  const png_color *palette;
  int npalette;
  const uint8_t *trans; /* palette alpha */
  int ntrans;
} PngSpec;

static void write_png(const char *path, const PngSpec *s) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  assert_non_null(info);
  if (setjmp(png_jmpbuf(png))) fail_msg("libpng could not write %s", path);
  png_init_io(png, fp);
  png_set_IHDR(png, info, (png_uint_32)s->w, (png_uint_32)s->h, s->depth, s->ctype,
               s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (s->palette) png_set_PLTE(png, info, s->palette, s->npalette);
  if (s->trans) png_set_tRNS(png, info, s->trans, s->ntrans, NULL);
  png_bytep rows[64];
  assert_true(s->h <= 64);
  for (int y = 0; y < s->h; y++) rows[y] = (png_bytep)(s->data + (size_t)y * s->rowbytes);
  png_set_rows(png, info, rows);
  png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
  png_destroy_write_struct(&png, &info);
  fclose(fp);
}

/* An 8-bit RGB PNG of w*h*3 bytes. */
static void write_rgb_png(const char *path, int w, int h, const uint8_t *rgb) {
  PngSpec s = {.w = w, .h = h, .ctype = PNG_COLOR_TYPE_RGB, .depth = 8, .data = rgb, .rowbytes = (size_t)w * 3};
  write_png(path, &s);
}

/* A JPEG of `components` (1 grey, 3 RGB, 4 CMYK) interleaved samples. */
static void write_jpeg(const char *path, int w, int h, int components, const uint8_t *px, int quality) {
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr jerr;
  c.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&c);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  jpeg_stdio_dest(&c, fp);
  c.image_width = (JDIMENSION)w;
  c.image_height = (JDIMENSION)h;
  c.input_components = components;
  c.in_color_space = components == 1 ? JCS_GRAYSCALE : components == 3 ? JCS_RGB : JCS_CMYK;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  for (int i = 0; i < c.num_components; i++) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * w * components);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  fclose(fp);
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  if (n) assert_int_equal(fwrite(data, 1, n, fp), n);
  fclose(fp);
}

static size_t read_file(const char *path, uint8_t *buf, size_t cap) {
  FILE *fp = fopen(path, "rb");
  if (!fp) fail_msg("cannot open %s", path);
  size_t n = fread(buf, 1, cap, fp);
  fclose(fp);
  return n;
}

/* Keeps the first `keep` bytes of a file. */
static void truncate_to(const char *path, long keep) { assert_int_equal(truncate(path, keep), 0); }

static long file_size(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return (long)st.st_size;
}

static void make_dirs(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s", tmp_path(rel));
  for (char *s = p + strlen(tmpdir) + 1; *s; s++)
    if (*s == '/') {
      *s = '\0';
      mkdir(p, 0700);
      *s = '/';
    }
  mkdir(p, 0700);
}

/* A 2x2 RGB PNG whose first pixel is `tag`, at rel inside the scratch dir. */
static void put_png(const char *rel, uint8_t tag) {
  uint8_t rgb[12] = {tag, tag, tag};
  write_rgb_png(tmp_path(rel), 2, 2, rgb);
}

static void expect_decode_error(const char *path, const char *fragment) {
  RtError err = {{0}};
  ImfImage img;
  assert_false(imf_decode(path, &img, &err));
  assert_null(img.rgb);
  if (!strstr(err.msg, fragment) || !strstr(err.msg, path)) fail_msg("message '%s' lacks '%s' or the path", err.msg, fragment);
}

static void expect_scan_error(const char *root, const char *fragment) {
  RtError err = {{0}};
  ImageFolder f;
  assert_false(imf_scan(root, &f, &err));
  imf_free(&f);
  if (!strstr(err.msg, fragment) || !strstr(err.msg, root)) fail_msg("message '%s' lacks '%s' or the path", err.msg, fragment);
}

/* ---- the scan ----------------------------------------------------------- */

/* Classes by strcmp (upper case first), files by folder then name, nested
 * folders recursed in torchvision's order ("sub-x" < "sub/deeper", as '-'
 * < '/'), hidden names, other extensions and loose files at the root
 * skipped, extensions matched in any case. */
static void scans_in_torchvision_order(void **state) {
  (void)state;
  make_dirs("ds/cat/sub/deeper");
  make_dirs("ds/cat/sub-x");
  make_dirs("ds/Zebra");
  make_dirs("ds/dog");
  make_dirs("ds/.hidden_class");
  put_png("ds/cat/b.png", 1);
  put_png("ds/cat/A.PNG", 2);
  put_png("ds/cat/sub/a.png", 3);
  put_png("ds/cat/sub/deeper/c.png", 4);
  put_png("ds/cat/sub-x/b.png", 5);
  put_png("ds/cat/.hidden.png", 6);
  put_png("ds/Zebra/z.png", 7);
  put_png("ds/dog/x.jpeg", 8); /* a PNG under a JPEG name: the signature decides */
  put_png("ds/.hidden_class/h.png", 9);
  put_png("ds/loose.png", 10);
  write_bytes(tmp_path("ds/dog/notes.txt"), "hi", 2);
  write_bytes(tmp_path("ds/dog/y.JPG.bak"), "hi", 2);

  ImageFolder f;
  RtError err;
  char root[512];
  snprintf(root, sizeof root, "%s/", tmp_path("ds")); /* a trailing slash is dropped */
  if (!imf_scan(root, &f, &err)) fail_msg("%s", err.msg);
  assert_int_equal(f.nclasses, 3);
  assert_string_equal(f.classes[0], "Zebra");
  assert_string_equal(f.classes[1], "cat");
  assert_string_equal(f.classes[2], "dog");
  const char *want[] = {"Zebra/z.png", "cat/A.PNG", "cat/b.png", "cat/sub/a.png", "cat/sub-x/b.png",
                        "cat/sub/deeper/c.png", "dog/x.jpeg"};
  const int64_t labels[] = {0, 1, 1, 1, 1, 1, 2};
  const uint8_t tags[] = {7, 2, 1, 3, 5, 4, 8};
  assert_int_equal(f.n, 7);
  for (int i = 0; i < 7; i++) {
    char full[600];
    snprintf(full, sizeof full, "%s/%s", tmp_path("ds"), want[i]);
    assert_string_equal(f.paths[i], full);
    assert_int_equal(f.labels[i], labels[i]);
    ImfImage img;
    if (!imf_decode(f.paths[i], &img, &err)) fail_msg("%s", err.msg);
    assert_int_equal(img.rgb[0], tags[i]);
    imf_image_free(&img);
  }
  imf_free(&f);
  assert_null(f.paths);
}

static void refuses_bad_folders(void **state) {
  (void)state;
  expect_scan_error(tmp_path("no-such-folder"), "cannot open");
  write_bytes(tmp_path("plain-file"), "x", 1);
  expect_scan_error(tmp_path("plain-file"), "not a folder");
  make_dirs("empty");
  expect_scan_error(tmp_path("empty"), "no class folders");
  make_dirs("files-only");
  put_png("files-only/a.png", 1);
  expect_scan_error(tmp_path("files-only"), "no class folders");
  make_dirs("no-images/a");
  make_dirs("no-images/b/c");
  write_bytes(tmp_path("no-images/a/readme.txt"), "x", 1);
  expect_scan_error(tmp_path("no-images"), "empty data set");
  make_dirs("one-empty/a");
  make_dirs("one-empty/b");
  put_png("one-empty/a/x.png", 1);
  char b[512];
  snprintf(b, sizeof b, "%s", tmp_path("one-empty/b"));
  expect_scan_error(tmp_path("one-empty"), "class folder with no");
  RtError err = {{0}};
  ImageFolder f;
  assert_false(imf_scan(tmp_path("one-empty"), &f, &err));
  assert_non_null(strstr(err.msg, b));
  imf_free(&f);
}

/* ---- decoding ----------------------------------------------------------- */

static void decode_ok(const char *path, int w, int h, const uint8_t *want_rgb) {
  RtError err;
  ImfImage img;
  if (!imf_decode(path, &img, &err)) fail_msg("%s", err.msg);
  assert_int_equal(img.w, w);
  assert_int_equal(img.h, h);
  assert_memory_equal(img.rgb, want_rgb, (size_t)w * h * 3);
  imf_image_free(&img);
}

static void grey_to_rgb(const uint8_t *g, int n, uint8_t *rgb) {
  for (int i = 0; i < n; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = g[i];
}

static void decodes_png_colour_types(void **state) {
  (void)state;
  const uint8_t grey[6] = {0, 50, 100, 150, 200, 255};
  uint8_t want[64 * 3];
  grey_to_rgb(grey, 6, want);
  PngSpec s = {.w = 3, .h = 2, .ctype = PNG_COLOR_TYPE_GRAY, .depth = 8, .data = grey, .rowbytes = 3};
  write_png(tmp_path("g8.png"), &s);
  decode_ok(tmp_path("g8.png"), 3, 2, want);

  uint8_t ga[12], rgba[24], rgb[18];
  for (int i = 0; i < 6; i++) {
    ga[2 * i] = grey[i];
    ga[2 * i + 1] = (uint8_t)(17 * i); /* alpha, dropped */
    for (int c = 0; c < 3; c++) rgb[3 * i + c] = rgba[4 * i + c] = (uint8_t)(grey[i] + 1 - c);
    rgba[4 * i + 3] = (uint8_t)(40 * i);
  }
  s = (PngSpec){.w = 3, .h = 2, .ctype = PNG_COLOR_TYPE_GRAY_ALPHA, .depth = 8, .data = ga, .rowbytes = 6};
  write_png(tmp_path("ga8.png"), &s);
  decode_ok(tmp_path("ga8.png"), 3, 2, want);
  s = (PngSpec){.w = 3, .h = 2, .ctype = PNG_COLOR_TYPE_RGB_ALPHA, .depth = 8, .data = rgba, .rowbytes = 12};
  write_png(tmp_path("rgba8.png"), &s);
  decode_ok(tmp_path("rgba8.png"), 3, 2, rgb);

  /* a 4-bit palette with a transparent entry: colours, no alpha */
  const png_color pal[3] = {{10, 20, 30}, {200, 100, 0}, {1, 2, 3}};
  const uint8_t trans[2] = {255, 0}, idx[2] = {0x01, 0x20}; /* rows: 0 1 | 2 0 */
  s = (PngSpec){.w = 2, .h = 2, .ctype = PNG_COLOR_TYPE_PALETTE, .depth = 4, .data = idx, .rowbytes = 1,
                .palette = pal, .npalette = 3, .trans = trans, .ntrans = 2};
  write_png(tmp_path("pal4.png"), &s);
  const uint8_t want_pal[12] = {10, 20, 30, 200, 100, 0, 1, 2, 3, 10, 20, 30};
  decode_ok(tmp_path("pal4.png"), 2, 2, want_pal);
}

/* 16-bit colour keeps the high byte; 16-bit grey is clipped to 255 (PIL's
 * I;16 through convert("RGB")); 2-bit grey is scaled by 85. */
static void decodes_png_bit_depths(void **state) {
  (void)state;
  const uint16_t v16[4] = {0x0000, 0x12ff, 0x8001, 0xffff};
  uint8_t rgb16[4 * 6], want[4 * 3];
  for (int i = 0; i < 4; i++)
    for (int c = 0; c < 3; c++) {
      rgb16[6 * i + 2 * c] = (uint8_t)(v16[i] >> 8);
      rgb16[6 * i + 2 * c + 1] = (uint8_t)v16[i];
      want[3 * i + c] = (uint8_t)(v16[i] >> 8);
    }
  PngSpec s = {.w = 2, .h = 2, .ctype = PNG_COLOR_TYPE_RGB, .depth = 16, .data = rgb16, .rowbytes = 12};
  write_png(tmp_path("rgb16.png"), &s);
  decode_ok(tmp_path("rgb16.png"), 2, 2, want);

  const uint16_t g16[4] = {7, 255, 256, 0xffff};
  const uint8_t gclip[4] = {7, 255, 255, 255};
  uint8_t g16be[8];
  for (int i = 0; i < 4; i++) {
    g16be[2 * i] = (uint8_t)(g16[i] >> 8);
    g16be[2 * i + 1] = (uint8_t)g16[i];
  }
  grey_to_rgb(gclip, 4, want);
  s = (PngSpec){.w = 2, .h = 2, .ctype = PNG_COLOR_TYPE_GRAY, .depth = 16, .data = g16be, .rowbytes = 4};
  write_png(tmp_path("g16.png"), &s);
  decode_ok(tmp_path("g16.png"), 2, 2, want);

  const uint8_t g2[1] = {0x1b}; /* 0 1 2 3 */
  const uint8_t g2want[4] = {0, 85, 170, 255};
  grey_to_rgb(g2want, 4, want);
  s = (PngSpec){.w = 4, .h = 1, .ctype = PNG_COLOR_TYPE_GRAY, .depth = 2, .data = g2, .rowbytes = 1};
  write_png(tmp_path("g2.png"), &s);
  decode_ok(tmp_path("g2.png"), 4, 1, want);
}

static void decodes_interlaced_png(void **state) {
  (void)state;
  enum { W = 13, H = 11 };
  uint8_t rgb[W * H * 3];
  for (int i = 0; i < W * H * 3; i++) rgb[i] = (uint8_t)(i * 7 + i / 5);
  PngSpec s = {.w = W, .h = H, .ctype = PNG_COLOR_TYPE_RGB, .depth = 8, .interlace = true, .data = rgb, .rowbytes = W * 3};
  write_png(tmp_path("adam7.png"), &s);
  decode_ok(tmp_path("adam7.png"), W, H, rgb);
}

/* Lossy (4:4:4, quality 100), so compared with a bound; grey JPEGs come out as three equal channels. */
static void decodes_jpeg(void **state) {
  (void)state;
  enum { W = 24, H = 16 };
  uint8_t rgb[W * H * 3], grey[W * H];
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      rgb[(y * W + x) * 3 + 0] = (uint8_t)(10 * x);
      rgb[(y * W + x) * 3 + 1] = (uint8_t)(15 * y);
      rgb[(y * W + x) * 3 + 2] = 128;
      grey[y * W + x] = (uint8_t)(5 * x + 3 * y);
    }
  const char *kinds[2] = {"rgb.jpg", "grey.JPEG"};
  for (int k = 0; k < 2; k++) {
    write_jpeg(tmp_path(kinds[k]), W, H, k ? 1 : 3, k ? grey : rgb, 100);
    RtError err;
    ImfImage img;
    if (!imf_decode(tmp_path(kinds[k]), &img, &err)) fail_msg("%s", err.msg);
    assert_int_equal(img.w, W);
    assert_int_equal(img.h, H);
    int maxdiff = 0;
    for (int i = 0; i < W * H; i++)
      for (int c = 0; c < 3; c++) {
        int want = k ? grey[i] : rgb[3 * i + c], d = abs(img.rgb[3 * i + c] - want);
        maxdiff = d > maxdiff ? d : maxdiff;
        if (k) assert_int_equal(img.rgb[3 * i + c], img.rgb[3 * i]);
      }
    print_message("%s: maxdiff %d against the source (quality 100)\n", kinds[k], maxdiff);
    assert_true(maxdiff <= 4);
    imf_image_free(&img);
  }
}

static void refuses_bad_files(void **state) {
  (void)state;
  enum { W = 40, H = 30 };
  uint8_t rgb[W * H * 3];
  for (int i = 0; i < W * H * 3; i++) rgb[i] = (uint8_t)(i * 2654435761u >> 24); /* incompressible */
  write_rgb_png(tmp_path("cut.png"), W, H, rgb);
  truncate_to(tmp_path("cut.png"), file_size(tmp_path("cut.png")) / 2);
  expect_decode_error(tmp_path("cut.png"), "corrupt or truncated PNG");

  write_rgb_png(tmp_path("crc.png"), W, H, rgb); /* a flipped bit inside IDAT: a CRC error */
  uint8_t buf[8192];
  size_t n = read_file(tmp_path("crc.png"), buf, sizeof buf);
  buf[n / 2] ^= 0x10;
  write_bytes(tmp_path("crc.png"), buf, n);
  expect_decode_error(tmp_path("crc.png"), "corrupt or truncated PNG");

  write_jpeg(tmp_path("cut.jpg"), W, H, 3, rgb, 90);
  truncate_to(tmp_path("cut.jpg"), file_size(tmp_path("cut.jpg")) / 2);
  expect_decode_error(tmp_path("cut.jpg"), "Premature end of JPEG file");

  const uint8_t junk[] = {0xFF, 0xD8, 0xFF, 0x00, 0x12, 0x34, 0x56};
  write_bytes(tmp_path("junk.jpg"), junk, sizeof junk);
  expect_decode_error(tmp_path("junk.jpg"), "corrupt or truncated JPEG");

  uint8_t cmyk[8 * 8 * 4] = {0};
  write_jpeg(tmp_path("cmyk.jpg"), 8, 8, 4, cmyk, 90);
  expect_decode_error(tmp_path("cmyk.jpg"), "CMYK");

  write_bytes(tmp_path("text.png"), "this is not a picture", 21);
  expect_decode_error(tmp_path("text.png"), "not a PNG or JPEG file");
  write_bytes(tmp_path("empty.jpeg"), "", 0);
  expect_decode_error(tmp_path("empty.jpeg"), "empty");
  expect_decode_error(tmp_path("missing.png"), "cannot open");
}

/* imf_load names the file that fails, and refuses a bad index or size. */
static void load_reports_the_file(void **state) {
  (void)state;
  make_dirs("bad/a");
  put_png("bad/a/0.png", 1);
  write_bytes(tmp_path("bad/a/1.png"), "GIF89a......", 12);
  ImageFolder f;
  RtError err = {{0}};
  if (!imf_scan(tmp_path("bad"), &f, &err)) fail_msg("%s", err.msg);
  uint8_t out[3 * 8 * 8];
  assert_true(imf_load(&f, 0, 8, out, &err));
  assert_int_equal(out[0], 1);
  assert_false(imf_load(&f, 1, 8, out, &err));
  assert_non_null(strstr(err.msg, f.paths[1]));
  assert_false(imf_load(&f, 2, 8, out, &err));
  assert_non_null(strstr(err.msg, "out of range"));
  assert_false(imf_load(&f, 0, 0, out, &err));
  assert_non_null(strstr(err.msg, "crop size 0"));
  imf_free(&f);
}

/* ---- the crop against PIL ---------------------------------------------- */

/* The number of bytes that differ (each file that has some is printed);
 * *maxdiff keeps the largest difference seen. */
static int compare_bytes(const char *what, const uint8_t *got, const uint8_t *want, size_t n, int *maxdiff) {
  int md = 0, ndiff = 0;
  for (size_t i = 0; i < n; i++) {
    int d = abs(got[i] - want[i]);
    md = d > md ? d : md;
    ndiff += d != 0;
  }
  if (ndiff) print_message("  %s: %d of %zu bytes differ, maxdiff %d\n", what, ndiff, n, md);
  *maxdiff = md > *maxdiff ? md : *maxdiff;
  return ndiff;
}

/* Every image of the manifest, decoded and cropped as `pillow` does, the
 * crops compared with those that Pillow wrote into golden/.../dir. */
static int check_against(const char *dir, ImfPillow pillow) {
  FILE *m = fopen(golden_path("manifest.txt"), "r");
  if (!m) fail_msg("cannot open %s", golden_path("manifest.txt"));
  char line[512];
  int cases = 0, crops = 0, bad = 0, maxdiff = 0;
  static uint8_t want[100 * 100 * 3], got[3 * 32 * 32];
  while (fgets(line, sizeof line, m)) {
    char name[256], what[600];
    int w, h, has_rgb, used;
    if (line[0] == '#' || sscanf(line, "image %255s %d %d %d%n", name, &w, &h, &has_rgb, &used) != 4) continue;
    RtError err;
    ImfImage img;
    if (!imf_decode(golden_path(name), &img, &err)) fail_msg("%s", err.msg);
    assert_int_equal(img.w, w);
    assert_int_equal(img.h, h);
    if (has_rgb) {
      snprintf(what, sizeof what, "%s.rgb", name);
      assert_int_equal(read_file(golden_path(what), want, sizeof want), (size_t)w * h * 3);
      bad += compare_bytes(what, img.rgb, want, (size_t)w * h * 3, &maxdiff);
    }
    for (char *tok = strtok(line + used, " \n"); tok; tok = strtok(NULL, " \n")) {
      const int s = atoi(tok);
      assert_true(s >= 1 && s <= 32);
      snprintf(what, sizeof what, "%s/%s.s%d.chw", dir, name, s);
      assert_int_equal(read_file(golden_path(what), want, sizeof want), (size_t)3 * s * s);
      if (!imf_center_crop(&img, s, pillow, got, &err)) fail_msg("%s: %s", name, err.msg);
      bad += compare_bytes(what, got, want, (size_t)3 * s * s, &maxdiff);
      crops++;
    }
    imf_image_free(&img);
    cases++;
  }
  fclose(m);
  print_message("%s: %d images, %d crops: %d bytes differ, maxdiff %d (tolerance 0)\n", dir, cases, crops, bad,
                maxdiff);
  assert_true(cases >= 11);
  return bad;
}

/* Pillow 12.1 (the default), 12.3 and 13.0 differ only on the tall images. */
static void matches_pil(void **state) {
  (void)state;
  int bad = check_against("pillow-12.1.1", IMF_PILLOW_12_1);
  bad += check_against("pillow-12.3.0", IMF_PILLOW_12_2);
  bad += check_against("pillow-13.0.0", IMF_PILLOW_13);
  assert_int_equal(bad, 0);
}

/* The whole path: a golden image in a class folder, through imf_load. */
static void loads_through_the_folder(void **state) {
  (void)state;
  static uint8_t png[16384], want[3 * 32 * 32], got[3 * 32 * 32];
  size_t n = read_file(golden_path("rgb_517x301.png"), png, sizeof png);
  assert_true(n < sizeof png);
  make_dirs("one/only");
  write_bytes(tmp_path("one/only/pic.png"), png, n);
  read_file(golden_path("pillow-12.1.1/rgb_517x301.png.s32.chw"), want, sizeof want);
  ImageFolder f;
  RtError err;
  if (!imf_scan(tmp_path("one"), &f, &err)) fail_msg("%s", err.msg);
  assert_int_equal(f.n, 1);
  assert_int_equal(f.labels[0], 0);
  if (!imf_load(&f, 0, 32, got, &err)) fail_msg("%s", err.msg);
  assert_memory_equal(got, want, sizeof want);
  imf_free(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(scans_in_torchvision_order),
      cmocka_unit_test(refuses_bad_folders),
      cmocka_unit_test(decodes_png_colour_types),
      cmocka_unit_test(decodes_png_bit_depths),
      cmocka_unit_test(decodes_interlaced_png),
      cmocka_unit_test(decodes_jpeg),
      cmocka_unit_test(refuses_bad_files),
      cmocka_unit_test(load_reports_the_file),
      cmocka_unit_test(matches_pil),
      cmocka_unit_test(loads_through_the_folder),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
