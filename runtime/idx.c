/* idx.c: see idx.h. zlib's gzread reads gzip and plain files alike, so
 * the Debian package's .gz files and unpacked copies both work. */
#include "idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

enum { IDX_UBYTE = 0x08, FMNIST_SIDE = 28, FMNIST_PAD = 2, FMNIST_CLASSES = 10 };

static bool read_exact(gzFile f, void *buf, size_t n, const char *path, const char *what, RtError *err) {
  size_t got = 0;
  while (got < n) {
    unsigned chunk = n - got > (1u << 30) ? 1u << 30 : (unsigned)(n - got);
    int r = gzread(f, (char *)buf + got, chunk);
    if (r < 0) {
      int code;
      const char *msg = gzerror(f, &code);
      return rt_fail(err, "%s: cannot read %s: %s", path, what, code == Z_ERRNO ? strerror(errno) : msg);
    }
    if (r == 0) return rt_fail(err, "%s: truncated: %s needs %zu bytes, the file has %zu", path, what, n, got);
    got += (size_t)r;
  }
  return true;
}

static bool read_header(gzFile f, const char *path, int *rank, int64_t *dims, RtError *err) {
  unsigned char magic[4], be[4];
  if (!read_exact(f, magic, 4, path, "the magic number", err)) return false;
  if (magic[0] || magic[1]) return rt_fail(err, "%s: not an IDX file (bad magic bytes)", path);
  if (magic[2] != IDX_UBYTE)
    return rt_fail(err, "%s: IDX element type 0x%02x; only unsigned bytes (0x08) are read", path, magic[2]);
  if (magic[3] < 1 || magic[3] > 4) return rt_fail(err, "%s: IDX rank %d; expected 1 to 4", path, magic[3]);
  *rank = magic[3];
  for (int k = 0; k < *rank; k++) {
    if (!read_exact(f, be, 4, path, "the dimensions", err)) return false;
    dims[k] = (int64_t)be[0] << 24 | be[1] << 16 | be[2] << 8 | be[3];
    if (dims[k] == 0) return rt_fail(err, "%s: dimension %d is 0", path, k);
  }
  return true;
}

Tensor *idx_load(const char *path, const char *name, RtError *err) {
  gzFile f = gzopen(path, "rb");
  if (!f) {
    rt_fail(err, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
    return NULL;
  }
  int rank = 0;
  int64_t dims[4];
  Tensor *t = NULL;
  unsigned char extra;
  if (read_header(f, path, &rank, dims, err) && (t = tensor_new(name, DT_U8, rank, dims, err))) {
    bool ok = read_exact(f, t->data, t->nbytes, path, "the data", err);
    if (ok && gzread(f, &extra, 1) != 0) ok = rt_fail(err, "%s: bytes after the data its header declares", path);
    if (!ok) {
      tensor_free(t);
      t = NULL;
    }
  }
  gzclose(f);
  return t;
}

const char *fmnist_dir(void) {
  const char *d = getenv("IREPA_FMNIST_DIR");
  return d && *d ? d : "/usr/share/datasets/fashion-mnist";
}

/* u8 [N,28,28] -> f32 [N,1,32,32] in [-1, 1], background padding. */
static Tensor *pad_and_scale(const Tensor *raw, RtError *err) {
  const int64_t n = raw->shape[0], side = FMNIST_SIDE + 2 * FMNIST_PAD;
  const int64_t shape[4] = {n, 1, side, side};
  Tensor *t = tensor_new("images", DT_F32, 4, shape, err);
  if (!t) return NULL;
  float *out = t->data;
  const unsigned char *in = raw->data;
  for (int64_t i = 0; i < n * side * side; i++) out[i] = -1.0f;
  for (int64_t i = 0; i < n; i++)
    for (int y = 0; y < FMNIST_SIDE; y++)
      for (int x = 0; x < FMNIST_SIDE; x++)
        out[(i * side + y + FMNIST_PAD) * side + x + FMNIST_PAD] =
            (float)in[(i * FMNIST_SIDE + y) * FMNIST_SIDE + x] / 127.5f - 1.0f;
  return t;
}

static Tensor *widen_labels(const Tensor *raw, const char *path, RtError *err) {
  Tensor *t = tensor_new("labels", DT_I64, 1, raw->shape, err);
  if (!t) return NULL;
  const unsigned char *in = raw->data;
  int64_t *out = t->data;
  for (int64_t i = 0; i < raw->shape[0]; i++) {
    if (in[i] >= FMNIST_CLASSES) {
      rt_fail(err, "%s: label %d at index %lld; Fashion-MNIST has 10 classes", path, in[i], (long long)i);
      tensor_free(t);
      return NULL;
    }
    out[i] = in[i];
  }
  return t;
}

bool fmnist_load(const char *dir, const char *split, Tensor **images, Tensor **labels, RtError *err) {
  char ipath[4096], lpath[4096];
  snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte.gz", dir, split);
  snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte.gz", dir, split);
  *images = *labels = NULL;
  Tensor *ri = idx_load(ipath, "images", err), *rl = ri ? idx_load(lpath, "labels", err) : NULL;
  bool ok = ri && rl;
  if (ok && (ri->rank != 3 || ri->shape[1] != FMNIST_SIDE || ri->shape[2] != FMNIST_SIDE))
    ok = rt_fail(err, "%s: expected 28x28 images (rank 3), found rank %d", ipath, ri->rank);
  if (ok && (rl->rank != 1 || rl->shape[0] != ri->shape[0]))
    ok = rt_fail(err, "%s: %lld labels for %lld images in %s", lpath, (long long)rl->shape[0],
                 (long long)ri->shape[0], ipath);
  if (ok) {
    *images = pad_and_scale(ri, err);
    *labels = *images ? widen_labels(rl, lpath, err) : NULL;
    ok = *images && *labels;
    if (!ok) {
      tensor_free(*images);
      *images = NULL;
    }
  }
  tensor_free(ri);
  tensor_free(rl);
  return ok;
}
