/* npz.c: .npz archives (npz.h). The ZIP side is the small subset numpy
 * uses: stored members, no encryption, one disk, ZIP64 records where a
 * value needs them; the .npy side is format 1.0 (2.0 and 3.0 when read)
 * with a Python-literal header dict.
 *
 * Files are written deterministically (every timestamp is 1980-01-01
 * 00:00, the earliest ZIP date), so the same arrays give the same bytes.
 * Data is written and read in the host's byte order, which must be
 * little-endian like the dtypes numpy writes on such hosts. */
#include "npz.h"
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npz.c reads and writes little-endian data in place: a big-endian host needs byte swaps"
#endif

enum {
  SIG_LOCAL = 0x04034b50,
  SIG_CENTRAL = 0x02014b50,
  SIG_END = 0x06054b50,
  SIG_END64 = 0x06064b50,
  SIG_LOCATOR64 = 0x07064b50,
  LOCAL_BYTES = 30,
  CENTRAL_BYTES = 46,
  END_BYTES = 22,
  END64_BYTES = 56,
  LOCATOR64_BYTES = 20,
  DOS_DATE_1980 = (1 << 5) | 1, /* 1980-01-01: year 0, month 1, day 1 */
  NPY_PREFIX_V1 = 10,           /* magic (6), version (2), header length (2) */
  NPY_HEADER_MAX = 1 << 20,     /* numpy's own limit for untrusted headers is 10,000 bytes */
  NAME_MAX_BYTES = 4096,
};
static const uint64_t U32_SENTINEL = 0xFFFFFFFFu;
static const char NPY_MAGIC[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* ---- little-endian fields ------------------------------------------------- */

static uint8_t *put16(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 2; i++) *p++ = (uint8_t)(v >> (8 * i));
  return p;
}
static uint8_t *put32(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 4; i++) *p++ = (uint8_t)(v >> (8 * i));
  return p;
}
static uint8_t *put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) *p++ = (uint8_t)(v >> (8 * i));
  return p;
}
static uint64_t get(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* ---- dtypes --------------------------------------------------------------- */

static const struct {
  const char *descr;
  DType dtype;
} npy_types[] = {{"|u1", DT_U8}, {"<u1", DT_U8}, {"<f4", DT_F32}, {"<f8", DT_F64}, {"<i8", DT_I64}};
enum { NPY_NTYPES = sizeof npy_types / sizeof npy_types[0] };

static const char *descr_of(DType t) {
  for (int i = 0; i < NPY_NTYPES; i++)
    if (npy_types[i].dtype == t) return npy_types[i].descr;
  return NULL;
}

/* The byte size of an array, or false when it overflows int64. */
static bool array_bytes(DType t, int rank, const int64_t *shape, uint64_t *out) {
  uint64_t n = (uint64_t)dtype_size(t);
  for (int k = 0; k < rank; k++) {
    if (shape[k] < 0) return false;
    if (shape[k] && n > (uint64_t)INT64_MAX / (uint64_t)shape[k]) return false;
    n *= (uint64_t)shape[k];
  }
  *out = n;
  return true;
}

/* ---- .npy headers --------------------------------------------------------- */

/* numpy's version 1.0 header: the dict, padded with spaces and a newline
 * so that the data starts at a multiple of 64 bytes, as numpy writes it.
 * buf holds at least 512 bytes (rank <= IR_MAX_RANK keeps it under 300). */
static size_t npy_header(DType t, int rank, const int64_t *shape, char *buf) {
  int n = snprintf(buf + NPY_PREFIX_V1, 400, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr_of(t));
  for (int k = 0; k < rank; k++)
    n += snprintf(buf + NPY_PREFIX_V1 + n, 400 - (size_t)n, "%s%lld", k ? ", " : "", (long long)shape[k]);
  n += snprintf(buf + NPY_PREFIX_V1 + n, 400 - (size_t)n, "%s), }", rank == 1 ? "," : "");
  size_t total = (NPY_PREFIX_V1 + (size_t)n + 1 + 63) / 64 * 64;
  memset(buf + NPY_PREFIX_V1 + n, ' ', total - NPY_PREFIX_V1 - (size_t)n - 1);
  buf[total - 1] = '\n';
  memcpy(buf, NPY_MAGIC, 6);
  buf[6] = 1;
  buf[7] = 0;
  put16((uint8_t *)buf + 8, total - NPY_PREFIX_V1);
  return total;
}

/* ---- ZIP records ---------------------------------------------------------- */

typedef struct {
  const char *name; /* the member's name, "arr_0.npy" */
  uint64_t size;    /* stored: compressed = uncompressed */
  uint64_t offset;  /* of its local header */
  uint32_t crc;
} ZipEntry;

static bool big(uint64_t v) { return v >= U32_SENTINEL; }

static size_t local_header_bytes(const ZipEntry *e) { return LOCAL_BYTES + strlen(e->name) + (big(e->size) ? 20 : 0); }

/* A local header; with a ZIP64 extra field (both sizes) when the size
 * needs 64 bits. The CRC may be patched in later at byte 14. */
static size_t local_header(uint8_t *buf, const ZipEntry *e) {
  size_t nl = strlen(e->name);
  bool z64 = big(e->size);
  uint8_t *p = put32(buf, SIG_LOCAL);
  p = put16(p, z64 ? 45 : 20);  /* version needed: 4.5 for ZIP64 */
  p = put16(p, 0);              /* flags */
  p = put16(p, 0);              /* method: stored */
  p = put16(p, 0);              /* time 00:00 */
  p = put16(p, DOS_DATE_1980);
  p = put32(p, e->crc);
  p = put32(p, z64 ? U32_SENTINEL : e->size);
  p = put32(p, z64 ? U32_SENTINEL : e->size);
  p = put16(p, nl);
  p = put16(p, z64 ? 20 : 0);
  memcpy(p, e->name, nl);
  p += nl;
  if (z64) p = put64(put64(put16(put16(p, 1), 16), e->size), e->size);
  return (size_t)(p - buf);
}

static size_t central_entry(uint8_t *buf, const ZipEntry *e) {
  size_t nl = strlen(e->name);
  bool zs = big(e->size), zo = big(e->offset);
  int extra = (zs ? 16 : 0) + (zo ? 8 : 0);
  uint8_t *p = put32(buf, SIG_CENTRAL);
  p = put16(p, (3 << 8) | 45); /* made by: Unix, spec 4.5 */
  p = put16(p, extra ? 45 : 20);
  p = put16(p, 0);
  p = put16(p, 0);
  p = put16(p, 0);
  p = put16(p, DOS_DATE_1980);
  p = put32(p, e->crc);
  p = put32(p, zs ? U32_SENTINEL : e->size);
  p = put32(p, zs ? U32_SENTINEL : e->size);
  p = put16(p, nl);
  p = put16(p, extra ? extra + 4 : 0);
  p = put16(p, 0);                   /* comment */
  p = put16(p, 0);                   /* disk */
  p = put16(p, 0);                   /* internal attributes */
  p = put32(p, (uint64_t)0100644 << 16); /* external: a regular file, rw-r--r-- */
  p = put32(p, zo ? U32_SENTINEL : e->offset);
  memcpy(p, e->name, nl);
  p += nl;
  if (extra) {
    p = put16(put16(p, 1), (uint64_t)extra);
    if (zs) p = put64(put64(p, e->size), e->size); /* uncompressed, then compressed */
    if (zo) p = put64(p, e->offset);
  }
  return (size_t)(p - buf);
}

static size_t tail_capacity(const ZipEntry *e, int n) {
  size_t s = END64_BYTES + LOCATOR64_BYTES + END_BYTES;
  for (int i = 0; i < n; i++) s += CENTRAL_BYTES + strlen(e[i].name) + 28;
  return s;
}

/* The central directory at `cd_offset`, then the end records: ZIP64 ones
 * first when a count, size or offset overflows its 16/32-bit field, which
 * then holds its all-ones sentinel (as Python's zipfile writes them). */
static size_t zip_tail(uint8_t *buf, const ZipEntry *e, int n, uint64_t cd_offset) {
  uint8_t *p = buf;
  for (int i = 0; i < n; i++) p += central_entry(p, &e[i]);
  uint64_t cd_size = (uint64_t)(p - buf), end64 = cd_offset + cd_size;
  bool z64 = n >= 0xFFFF || big(cd_size) || big(cd_offset);
  if (z64) {
    p = put64(put32(p, SIG_END64), END64_BYTES - 12);
    p = put16(put16(p, (3 << 8) | 45), 45);
    p = put32(put32(p, 0), 0);
    p = put64(put64(p, (uint64_t)n), (uint64_t)n);
    p = put64(put64(p, cd_size), cd_offset);
    p = put32(put64(put32(put32(p, SIG_LOCATOR64), 0), end64), 1);
  }
  p = put32(p, SIG_END);
  p = put16(put16(p, 0), 0);
  p = put16(put16(p, z64 ? 0xFFFF : (uint64_t)n), z64 ? 0xFFFF : (uint64_t)n);
  p = put32(put32(p, z64 ? U32_SENTINEL : cd_size), z64 ? U32_SENTINEL : cd_offset);
  p = put16(p, 0);
  return (size_t)(p - buf);
}

/* ---- files ---------------------------------------------------------------- */

/* Reads exactly n bytes at off; false with errno 0 at the end of the file. */
static bool pread_all(int fd, void *p, size_t n, uint64_t off) {
  char *c = p;
  while (n > 0) {
    ssize_t r = pread(fd, c, n > (1u << 30) ? (1u << 30) : n, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) errno = 0;
    if (r <= 0) return false;
    c += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return true;
}

static uint32_t crc_update(uint32_t crc, const void *p, uint64_t n) {
  return (uint32_t)crc32_z(crc, p, (z_size_t)n);
}

/* fileio.c's temporary file, with an existing target's permissions
 * copied onto it (best effort). */
static int create_temp(const char *path, char **tmp, RtError *err) {
  int fd = rt_create_temp(path, tmp, err);
  struct stat st;
  if (fd >= 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) (void)fchmod(fd, st.st_mode & 07777);
  return fd;
}

/* ---- the streaming writer ------------------------------------------------- */

struct NpzWriter {
  char *path, *tmp, *member;
  int fd;
  ZipEntry entry;
  int64_t rows, done, row_bytes;
  uint32_t crc;
};

static bool check_layout(const char *path, const char *name, DType t, int rank, const int64_t *shape,
                         uint64_t *bytes, RtError *err) {
  if (!descr_of(t))
    return rt_fail(err, "%s: dtype %s cannot be stored in an npz (u8, f32, f64, i64)", path, dtype_name(t));
  if (rank < 0 || rank > IR_MAX_RANK) return rt_fail(err, "%s: rank %d (0 to %d)", path, rank, IR_MAX_RANK);
  if (!name || !*name || strlen(name) > 255) return rt_fail(err, "%s: an array name of 1 to 255 bytes is needed", path);
  if (!array_bytes(t, rank, shape, bytes)) return rt_fail(err, "%s: array '%s': bad or too large shape", path, name);
  return true;
}

static void writer_free(NpzWriter *w) {
  if (!w) return;
  free(w->path);
  free(w->tmp);
  free(w->member);
  free(w);
}

static bool writer_start(NpzWriter *w, DType dtype, int rank, const int64_t *shape, uint64_t data_bytes,
                         RtError *err) {
  char head[512];
  size_t hl = npy_header(dtype, rank, shape, head);
  w->entry = (ZipEntry){w->member, hl + data_bytes, 0, 0};
  uint8_t local[LOCAL_BYTES + 300];
  size_t ll = local_header(local, &w->entry);
  w->crc = crc_update(0, head, hl);
  if (!rt_write_all(w->fd, local, ll) || !rt_write_all(w->fd, head, hl))
    return rt_fail(err, "%s: cannot write the temporary file: %s", w->path, strerror(errno));
  return true;
}

NpzWriter *npz_writer_open(const char *path, const char *name, DType dtype, int rank, const int64_t *shape,
                           RtError *err) {
  uint64_t bytes;
  if (!check_layout(path, name, dtype, rank, shape, &bytes, err)) return NULL;
  if (rank < 1) return rt_fail(err, "%s: the streaming writer needs rows (rank >= 1)", path), NULL;
  NpzWriter *w = calloc(1, sizeof *w);
  if (!w || !(w->path = strdup(path)) || !(w->member = malloc(strlen(name) + 5))) {
    writer_free(w);
    return rt_fail(err, "out of memory"), NULL;
  }
  sprintf(w->member, "%s.npy", name);
  w->rows = shape[0];
  w->row_bytes = dtype_size(dtype);
  for (int k = 1; k < rank; k++) w->row_bytes *= shape[k];
  w->fd = create_temp(path, &w->tmp, err);
  if (w->fd < 0 || !writer_start(w, dtype, rank, shape, bytes, err)) {
    npz_writer_abort(w);
    return NULL;
  }
  return w;
}

bool npz_writer_append(NpzWriter *w, const void *rows, int64_t nrows, RtError *err) {
  if (nrows < 0 || nrows > w->rows - w->done)
    return rt_fail(err, "%s: %lld more rows after %lld of %lld", w->path, (long long)nrows, (long long)w->done,
                   (long long)w->rows);
  uint64_t n = (uint64_t)nrows * (uint64_t)w->row_bytes;
  if (n && !rt_write_all(w->fd, rows, n))
    return rt_fail(err, "%s: cannot write the temporary file: %s", w->path, strerror(errno));
  w->crc = crc_update(w->crc, rows, n);
  w->done += nrows;
  return true;
}

static bool writer_finish(NpzWriter *w, RtError *err) {
  if (w->done != w->rows)
    return rt_fail(err, "%s: %lld of the %lld rows were written", w->path, (long long)w->done, (long long)w->rows);
  uint8_t crc[4], tail[CENTRAL_BYTES + 300 + END64_BYTES + LOCATOR64_BYTES + END_BYTES];
  w->entry.crc = w->crc;
  put32(crc, w->crc);
  size_t tl = zip_tail(tail, &w->entry, 1, local_header_bytes(&w->entry) + w->entry.size);
  if (pwrite(w->fd, crc, 4, 14) != 4 || !rt_write_all(w->fd, tail, tl))
    return rt_fail(err, "%s: cannot write the temporary file: %s", w->path, strerror(errno));
  if (fsync(w->fd) != 0) return rt_fail(err, "%s: cannot sync the temporary file: %s", w->path, strerror(errno));
  int fd = w->fd;
  w->fd = -1;
  if (close(fd) != 0) return rt_fail(err, "%s: cannot close the temporary file: %s", w->path, strerror(errno));
  if (rename(w->tmp, w->path) != 0) return rt_fail(err, "%s: cannot replace it: %s", w->path, strerror(errno));
  rt_sync_parent_dir(w->path);
  return true;
}

bool npz_writer_close(NpzWriter *w, RtError *err) {
  if (!w) return rt_fail(err, "npz_writer_close: no writer");
  if (!writer_finish(w, err)) {
    npz_writer_abort(w);
    return false;
  }
  writer_free(w);
  return true;
}

void npz_writer_abort(NpzWriter *w) {
  if (!w) return;
  if (w->fd >= 0) close(w->fd);
  if (w->tmp) unlink(w->tmp);
  writer_free(w);
}

/* ---- several arrays in memory --------------------------------------------- */

typedef struct {
  ZipEntry *e;
  char (*names)[260];
  uint8_t *locals; /* LOCAL_BYTES + 300 per tensor */
  char *heads;     /* 512 per tensor */
  const void **chunks;
  size_t *sizes;
} NpzParts;

static void parts_free(NpzParts *p) {
  free(p->e);
  free(p->names);
  free(p->locals);
  free(p->heads);
  free(p->chunks);
  free(p->sizes);
}

static bool parts_alloc(NpzParts *p, int n) {
  p->e = calloc((size_t)n + 1, sizeof *p->e);
  p->names = calloc((size_t)n + 1, sizeof *p->names);
  p->locals = malloc(((size_t)n + 1) * (LOCAL_BYTES + 300));
  p->heads = malloc(((size_t)n + 1) * 512);
  p->chunks = malloc(((size_t)n * 3 + 1) * sizeof *p->chunks);
  p->sizes = malloc(((size_t)n * 3 + 1) * sizeof *p->sizes);
  return p->e && p->names && p->locals && p->heads && p->chunks && p->sizes;
}

/* The local header, .npy header and data of tensor i as chunks 3i..3i+2. */
static bool add_part(NpzParts *p, int i, const Tensor *t, uint64_t *offset, const char *path, RtError *err) {
  uint64_t bytes;
  if (!t || !check_layout(path, t ? t->name : NULL, t ? t->dtype : DT_F32, t ? t->rank : 0, t ? t->shape : NULL,
                          &bytes, err))
    return t ? false : rt_fail(err, "%s: tensor %d is NULL", path, i);
  if (bytes != t->nbytes || (bytes && !t->data))
    return rt_fail(err, "%s: tensor '%s': %zu bytes do not match its shape", path, t->name, t->nbytes);
  snprintf(p->names[i], sizeof p->names[i], "%s.npy", t->name);
  for (int j = 0; j < i; j++)
    if (!strcmp(p->names[j], p->names[i])) return rt_fail(err, "%s: array '%s' given twice", path, t->name);
  char *head = p->heads + (size_t)i * 512;
  size_t hl = npy_header(t->dtype, t->rank, t->shape, head);
  p->e[i] = (ZipEntry){p->names[i], hl + bytes, *offset, crc_update(crc_update(0, head, hl), t->data, bytes)};
  uint8_t *local = p->locals + (size_t)i * (LOCAL_BYTES + 300);
  size_t ll = local_header(local, &p->e[i]);
  p->chunks[3 * i] = local, p->sizes[3 * i] = ll;
  p->chunks[3 * i + 1] = head, p->sizes[3 * i + 1] = hl;
  p->chunks[3 * i + 2] = t->data, p->sizes[3 * i + 2] = bytes;
  *offset += ll + hl + bytes;
  return true;
}

bool npz_write(const char *path, Tensor *const *tensors, int n, RtError *err) {
  if (n < 0 || (n > 0 && !tensors)) return rt_fail(err, "%s: bad array count %d", path, n);
  NpzParts p = {0};
  uint8_t *tail = NULL;
  uint64_t offset = 0;
  bool ok = parts_alloc(&p, n) ? true : rt_fail(err, "out of memory");
  for (int i = 0; ok && i < n; i++) ok = add_part(&p, i, tensors[i], &offset, path, err);
  if (ok && !(tail = malloc(tail_capacity(p.e, n)))) ok = rt_fail(err, "out of memory");
  if (ok) {
    p.chunks[3 * n] = tail;
    p.sizes[3 * n] = zip_tail(tail, p.e, n, offset);
    ok = rt_write_atomic(path, p.chunks, p.sizes, 3 * n + 1, err);
  }
  free(tail);
  parts_free(&p);
  return ok;
}

/* ---- reading: the .npy header --------------------------------------------- */

typedef struct {
  const char *p;
} Lex;

static void skip_ws(Lex *l) {
  while (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r') l->p++;
}

static bool lex_char(Lex *l, char c) {
  skip_ws(l);
  if (*l->p != c) return false;
  l->p++;
  return true;
}

/* A Python string literal in ' or " quotes, without escapes. */
static bool lex_string(Lex *l, char *out, size_t size) {
  skip_ws(l);
  char q = *l->p;
  if (q != '\'' && q != '"') return false;
  const char *end = strchr(l->p + 1, q);
  if (!end || (size_t)(end - l->p - 1) >= size || memchr(l->p + 1, '\\', (size_t)(end - l->p - 1))) return false;
  memcpy(out, l->p + 1, (size_t)(end - l->p - 1));
  out[end - l->p - 1] = '\0';
  l->p = end + 1;
  return true;
}

static bool lex_word(Lex *l, const char *w) {
  skip_ws(l);
  size_t n = strlen(w);
  if (strncmp(l->p, w, n)) return false;
  l->p += n;
  return true;
}

/* A tuple of non-negative integers: (), (5,), (2, 3). */
static bool lex_shape(Lex *l, int *rank, int64_t *shape, char *why, size_t size) {
  if (!lex_char(l, '(')) return snprintf(why, size, "'shape' is not a tuple"), false;
  *rank = 0;
  while (!lex_char(l, ')')) {
    skip_ws(l);
    if (*l->p < '0' || *l->p > '9') return snprintf(why, size, "'shape' holds something other than integers"), false;
    char *end;
    errno = 0;
    long long v = strtoll(l->p, &end, 10);
    if (errno || v < 0) return snprintf(why, size, "a dimension of 'shape' is out of range"), false;
    if (*rank == IR_MAX_RANK) return snprintf(why, size, "more than %d axes", IR_MAX_RANK), false;
    shape[(*rank)++] = v;
    l->p = end;
    if (!lex_char(l, ',') && *(skip_ws(l), l->p) != ')') return snprintf(why, size, "malformed 'shape'"), false;
  }
  return true;
}

static bool parse_descr(const char *descr, DType *t, char *why, size_t size) {
  for (int i = 0; i < NPY_NTYPES; i++)
    if (!strcmp(descr, npy_types[i].descr)) return *t = npy_types[i].dtype, true;
  if (descr[0] == '>') snprintf(why, size, "dtype '%s' is big-endian; only little-endian arrays are read", descr);
  else snprintf(why, size, "dtype '%s' is not supported (|u1 <f4 <f8 <i8)", descr);
  return false;
}

/* The header dict: exactly the keys descr, fortran_order and shape, as
 * numpy requires. */
static bool parse_dict(const char *text, NpzArray *a, char *why, size_t size) {
  Lex l = {text};
  bool seen[3] = {false, false, false}, fortran = false;
  char key[32], descr[64];
  if (!lex_char(&l, '{')) return snprintf(why, size, "the .npy header is not a dict"), false;
  while (!lex_char(&l, '}')) {
    if (!lex_string(&l, key, sizeof key) || !lex_char(&l, ':'))
      return snprintf(why, size, "malformed .npy header"), false;
    int k = !strcmp(key, "descr") ? 0 : !strcmp(key, "fortran_order") ? 1 : !strcmp(key, "shape") ? 2 : -1;
    if (k < 0 || seen[k]) return snprintf(why, size, "the .npy header has an unexpected key '%s'", key), false;
    seen[k] = true;
    if (k == 0 && !lex_string(&l, descr, sizeof descr))
      return snprintf(why, size, "a structured or unknown dtype (only |u1 <f4 <f8 <i8 are read)"), false;
    if (k == 0 && !parse_descr(descr, &a->dtype, why, size)) return false;
    if (k == 1 && !(fortran = lex_word(&l, "True")) && !lex_word(&l, "False"))
      return snprintf(why, size, "'fortran_order' is not True or False"), false;
    if (k == 2 && !lex_shape(&l, &a->rank, a->shape, why, size)) return false;
    if (!lex_char(&l, ',') && *(skip_ws(&l), l.p) != '}') return snprintf(why, size, "malformed .npy header"), false;
  }
  if (!seen[0] || !seen[1] || !seen[2]) return snprintf(why, size, "the .npy header lacks a key"), false;
  if (fortran) return snprintf(why, size, "Fortran-ordered array; only C order is read"), false;
  return true;
}

/* ---- reading: the archive ------------------------------------------------- */

typedef struct {
  NpzArray a;
  uint32_t crc;     /* of the whole member, from the directory */
  uint32_t head_crc; /* of the .npy header */
  uint32_t run_crc; /* of the header and what npz_read_rows read so far, in order */
  int64_t next_row;
  uint64_t local, size, method, flags; /* local header offset, member size */
  char why[256];
} Member;

struct NpzFile {
  char *path;
  int fd;
  uint64_t size;
  Member *m;
  int n;
};

static bool fail_io(const NpzFile *f, const char *what, RtError *err) {
  if (errno) return rt_fail(err, "%s: cannot read %s: %s", f->path, what, strerror(errno));
  return rt_fail(err, "%s: truncated: the file ends inside %s", f->path, what);
}

/* The end-of-central-directory record: the last 22+ bytes whose comment
 * length reaches exactly to the end of the file. */
static bool find_end(NpzFile *f, uint8_t *buf, uint64_t *pos, RtError *err) {
  uint64_t n = f->size < 65557 ? f->size : 65557, base = f->size - n;
  if (n < END_BYTES || !pread_all(f->fd, buf, n, base))
    return rt_fail(err, "%s: not an .npz (ZIP) file: %llu bytes, no end-of-central-directory record", f->path,
                   (unsigned long long)f->size);
  for (uint64_t i = n - END_BYTES + 1; i-- > 0;)
    if (get(buf + i, 4) == SIG_END && i + END_BYTES + get(buf + i + 20, 2) == n) return *pos = base + i, true;
  return rt_fail(err, "%s: not an .npz (ZIP) file, or truncated: no end-of-central-directory record", f->path);
}

/* The directory's place and entry count, from the ZIP64 end record where a
 * locator precedes the end record. */
static bool read_end(NpzFile *f, uint64_t *cd_off, uint64_t *cd_size, uint64_t *count, RtError *err) {
  uint8_t *buf = malloc(65557), rec[END64_BYTES];
  uint64_t pos = 0;
  bool ok = buf ? find_end(f, buf, &pos, err) : rt_fail(err, "out of memory");
  uint8_t end[END_BYTES], loc[LOCATOR64_BYTES];
  ok = ok && (pread_all(f->fd, end, END_BYTES, pos) || fail_io(f, "the end record", err));
  free(buf);
  if (!ok) return false;
  if (get(end + 4, 2) || get(end + 6, 2)) return rt_fail(err, "%s: a multi-disk ZIP archive is not supported", f->path);
  *count = get(end + 10, 2), *cd_size = get(end + 12, 4), *cd_off = get(end + 16, 4);
  uint64_t limit = pos;
  if (pos >= LOCATOR64_BYTES && pread_all(f->fd, loc, LOCATOR64_BYTES, pos - LOCATOR64_BYTES) &&
      get(loc, 4) == SIG_LOCATOR64) {
    uint64_t at = get(loc + 8, 8);
    if (at + END64_BYTES > pos - LOCATOR64_BYTES || !pread_all(f->fd, rec, END64_BYTES, at) || get(rec, 4) != SIG_END64)
      return rt_fail(err, "%s: damaged ZIP64 end record", f->path);
    *count = get(rec + 32, 8), *cd_size = get(rec + 40, 8), *cd_off = get(rec + 48, 8), limit = at;
  } else if (*count == 0xFFFF || *cd_size == U32_SENTINEL || *cd_off == U32_SENTINEL)
    return rt_fail(err, "%s: damaged ZIP archive: a ZIP64 value without its ZIP64 end record", f->path);
  if (*cd_off > limit || *cd_size > limit - *cd_off || *count > *cd_size / CENTRAL_BYTES)
    return rt_fail(err, "%s: damaged ZIP archive: the central directory does not fit before its end record", f->path);
  return true;
}

/* The ZIP64 extra field of a directory entry: 64-bit values for the
 * fields that hold the sentinel, in the order the format fixes. */
static bool zip64_extra(const uint8_t *x, uint64_t len, uint64_t *usize, uint64_t *csize, uint64_t *local) {
  while (len >= 4) {
    uint64_t id = get(x, 2), n = get(x + 2, 2);
    if (n > len - 4) return false;
    if (id == 1) {
      const uint8_t *v = x + 4, *end = x + 4 + n;
      uint64_t *fields[3] = {usize, csize, local};
      for (int i = 0; i < 3; i++) {
        if (*fields[i] != U32_SENTINEL) continue;
        if (v + 8 > end) return false;
        *fields[i] = get(v, 8), v += 8;
      }
    }
    x += 4 + n, len -= 4 + n;
  }
  return true;
}

static bool has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

/* One directory entry at *p; .npy members are kept. */
static bool read_entry(NpzFile *f, const uint8_t **p, const uint8_t *end, RtError *err) {
  const uint8_t *e = *p;
  if (end - e < CENTRAL_BYTES || get(e, 4) != SIG_CENTRAL)
    return rt_fail(err, "%s: damaged ZIP archive: bad central directory entry", f->path);
  uint64_t nl = get(e + 28, 2), xl = get(e + 30, 2), cl = get(e + 32, 2);
  if ((uint64_t)(end - e) < CENTRAL_BYTES + nl + xl + cl || nl == 0 || nl > NAME_MAX_BYTES)
    return rt_fail(err, "%s: damaged ZIP archive: bad central directory entry", f->path);
  uint64_t csize = get(e + 20, 4), usize = get(e + 24, 4), local = get(e + 42, 4);
  if (!zip64_extra(e + CENTRAL_BYTES + nl, xl, &usize, &csize, &local))
    return rt_fail(err, "%s: damaged ZIP archive: bad ZIP64 extra field", f->path);
  *p = e + CENTRAL_BYTES + nl + xl + cl;
  char name[NAME_MAX_BYTES + 1];
  memcpy(name, e + CENTRAL_BYTES, nl);
  name[nl] = '\0';
  if (!has_suffix(name, ".npy") || memchr(name, '\0', nl)) return true;
  Member *m = &f->m[f->n];
  memset(m, 0, sizeof *m);
  name[nl - 4] = '\0';
  for (int i = 0; i < f->n; i++)
    if (!strcmp(f->m[i].a.name, name)) return rt_fail(err, "%s: array '%s' appears twice", f->path, name);
  if (!(m->a.name = strdup(name))) return rt_fail(err, "out of memory");
  f->n++;
  m->crc = (uint32_t)get(e + 16, 4), m->flags = get(e + 8, 2), m->method = get(e + 10, 2);
  m->local = local, m->size = usize;
  if (m->method == 0 && csize != usize)
    return rt_fail(err, "%s: damaged ZIP archive: stored member '%s.npy' with two sizes", f->path, name);
  return true;
}

static bool read_directory(NpzFile *f, RtError *err) {
  uint64_t off = 0, size = 0, count = 0;
  if (!read_end(f, &off, &size, &count, err)) return false;
  uint8_t *cd = malloc(size ? size : 1);
  f->m = calloc(count ? count : 1, sizeof *f->m);
  if (!cd || !f->m) {
    free(cd);
    return rt_fail(err, "out of memory");
  }
  bool ok = pread_all(f->fd, cd, size, off) || fail_io(f, "the central directory", err);
  const uint8_t *p = cd;
  for (uint64_t i = 0; ok && i < count; i++) ok = read_entry(f, &p, cd + size, err);
  free(cd);
  return ok;
}

static bool read_npy_header(NpzFile *f, Member *m, uint64_t start, uint64_t hoff, uint64_t hl, RtError *err) {
  char *buf = malloc(hoff + hl + 1);
  if (!buf) return rt_fail(err, "out of memory");
  if (!pread_all(f->fd, buf, hoff + hl, start)) {
    free(buf);
    return fail_io(f, "a .npy header", err);
  }
  buf[hoff + hl] = '\0';
  NpzArray *a = &m->a;
  uint64_t bytes = 0;
  if (memchr(buf + hoff, '\0', hl)) snprintf(m->why, sizeof m->why, "malformed .npy header");
  else if (parse_dict(buf + hoff, a, m->why, sizeof m->why) && !array_bytes(a->dtype, a->rank, a->shape, &bytes))
    snprintf(m->why, sizeof m->why, "the shape is too large");
  else if (!m->why[0] && hoff + hl + bytes != m->size)
    snprintf(m->why, sizeof m->why, "the member holds %llu data bytes; dtype and shape need %llu",
             (unsigned long long)(m->size - hoff - hl), (unsigned long long)bytes);
  a->offset = start + hoff + hl;
  a->nbytes = bytes;
  a->row_bytes = dtype_size(a->dtype);
  for (int k = 1; k < a->rank; k++) a->row_bytes *= a->shape[k];
  m->head_crc = m->run_crc = crc_update(0, buf, hoff + hl);
  free(buf);
  return true;
}

/* The member's local header and .npy header; what is wrong with the array
 * goes to m->why (the archive itself is fine). */
static bool read_npy(NpzFile *f, Member *m, RtError *err) {
  char *why = m->why;
  size_t wsize = sizeof m->why;
  if (m->flags & 1) return snprintf(why, wsize, "the member is encrypted"), true;
  if (m->method != 0)
    return snprintf(why, wsize,
                    "the member is compressed (ZIP method %llu%s); only stored members are read: write it with "
                    "np.savez, not np.savez_compressed",
                    (unsigned long long)m->method, m->method == 8 ? ", deflate" : ""),
           true;
  uint8_t lh[LOCAL_BYTES];
  if (m->local > f->size || !pread_all(f->fd, lh, LOCAL_BYTES, m->local)) return fail_io(f, "a local header", err);
  if (get(lh, 4) != SIG_LOCAL) return rt_fail(err, "%s: damaged ZIP archive: bad local header of '%s.npy'", f->path, m->a.name);
  uint64_t start = m->local + LOCAL_BYTES + get(lh + 26, 2) + get(lh + 28, 2);
  if (start > f->size || m->size > f->size - start)
    return rt_fail(err, "%s: truncated: array '%s' needs %llu bytes from offset %llu, the file has %llu", f->path,
                   m->a.name, (unsigned long long)m->size, (unsigned long long)start, (unsigned long long)f->size);
  uint8_t pre[12];
  if (m->size < 12 || !pread_all(f->fd, pre, 12, start) || memcmp(pre, NPY_MAGIC, 6))
    return snprintf(why, wsize, "not a .npy array (no \\x93NUMPY magic)"), true;
  if (pre[6] < 1 || pre[6] > 3) return snprintf(why, wsize, ".npy format version %d.%d is not supported", pre[6], pre[7]), true;
  uint64_t hl = pre[6] == 1 ? get(pre + 8, 2) : get(pre + 8, 4), hoff = pre[6] == 1 ? 10 : 12;
  if (hl > NPY_HEADER_MAX || hoff + hl > m->size) return snprintf(why, wsize, "the .npy header is too long"), true;
  return read_npy_header(f, m, start, hoff, hl, err);
}

NpzFile *npz_open(const char *path, RtError *err) {
  NpzFile *f = calloc(1, sizeof *f);
  if (!f || !(f->path = strdup(path))) {
    free(f);
    return rt_fail(err, "out of memory"), NULL;
  }
  struct stat st;
  bool ok = true;
  if ((f->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) ok = rt_fail(err, "%s: cannot open: %s", path, strerror(errno));
  else if (fstat(f->fd, &st) != 0) ok = rt_fail(err, "%s: cannot stat: %s", path, strerror(errno));
  else if (!S_ISREG(st.st_mode)) ok = rt_fail(err, "%s: not a regular file", path);
  f->size = ok ? (uint64_t)st.st_size : 0;
  ok = ok && read_directory(f, err);
  for (int i = 0; ok && i < f->n; i++) {
    ok = read_npy(f, &f->m[i], err);
    f->m[i].a.error = f->m[i].why[0] ? f->m[i].why : NULL;
  }
  if (!ok) {
    npz_close(f);
    return NULL;
  }
  return f;
}

const char *npz_path(const NpzFile *f) { return f->path; }
int npz_count(const NpzFile *f) { return f->n; }
const NpzArray *npz_array(const NpzFile *f, int i) { return i >= 0 && i < f->n ? &f->m[i].a : NULL; }

static Member *member(const NpzFile *f, const char *name) {
  for (int i = 0; i < f->n; i++)
    if (!strcmp(f->m[i].a.name, name)) return &f->m[i];
  return NULL;
}

const NpzArray *npz_find(const NpzFile *f, const char *name) {
  Member *m = member(f, name);
  return m ? &m->a : NULL;
}

static Member *readable(const NpzFile *f, const char *name, RtError *err) {
  Member *m = member(f, name);
  if (!m) {
    char list[512] = "";
    for (int i = 0; i < f->n && strlen(list) < 400; i++)
      snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", f->m[i].a.name);
    return rt_fail(err, "%s: no array '%s' (it has: %s)", f->path, name, f->n ? list : "no arrays"), NULL;
  }
  if (m->a.error) return rt_fail(err, "%s: array '%s': %s", f->path, name, m->a.error), NULL;
  return m;
}

const NpzArray *npz_get(const NpzFile *f, const char *name, RtError *err) {
  Member *m = readable(f, name, err);
  return m ? &m->a : NULL;
}

static bool check_crc(const NpzFile *f, const Member *m, uint32_t crc, RtError *err) {
  if (crc == m->crc) return true;
  return rt_fail(err, "%s: array '%s' is damaged: CRC-32 %08x, the directory says %08x", f->path, m->a.name,
                 (unsigned)crc, (unsigned)m->crc);
}

Tensor *npz_read(NpzFile *f, const char *name, RtError *err) {
  Member *m = readable(f, name, err);
  if (!m) return NULL;
  Tensor *t = tensor_new(name, m->a.dtype, m->a.rank, m->a.shape, err);
  if (!t) return NULL;
  bool ok = !m->a.nbytes || pread_all(f->fd, t->data, m->a.nbytes, m->a.offset) || fail_io(f, "array data", err);
  ok = ok && check_crc(f, m, crc_update(m->head_crc, t->data, m->a.nbytes), err);
  if (!ok) {
    tensor_free(t);
    return NULL;
  }
  return t;
}

bool npz_read_rows(NpzFile *f, const char *name, int64_t first, int64_t nrows, void *dst, RtError *err) {
  Member *m = readable(f, name, err);
  if (!m) return false;
  const NpzArray *a = &m->a;
  if (a->rank < 1 || first < 0 || nrows < 0 || first > a->shape[0] || nrows > a->shape[0] - first)
    return rt_fail(err, "%s: array '%s': rows [%lld, %lld) are outside its %lld rows", f->path, name,
                   (long long)first, (long long)(first + nrows), (long long)(a->rank ? a->shape[0] : 0));
  uint64_t n = (uint64_t)nrows * (uint64_t)a->row_bytes;
  if (n && !pread_all(f->fd, dst, n, a->offset + (uint64_t)first * (uint64_t)a->row_bytes))
    return fail_io(f, "array data", err);
  if (first != m->next_row || !nrows) return true;
  m->run_crc = crc_update(m->run_crc, dst, n);
  m->next_row += nrows;
  return m->next_row < a->shape[0] || check_crc(f, m, m->run_crc, err);
}

void npz_close(NpzFile *f) {
  if (!f) return;
  if (f->fd >= 0) close(f->fd);
  for (int i = 0; i < f->n; i++) free(f->m[i].a.name);
  free(f->m);
  free(f->path);
  free(f);
}
