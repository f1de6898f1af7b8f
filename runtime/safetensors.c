/* safetensors.c: the safetensors reader (validating, mmap-based) and the
 * atomic writer. JSON goes through jansson. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { HEADER_MAX = 100 << 20 };

struct StFile {
  char *name;
  unsigned char *bytes;  /* the whole file */
  size_t size;
  bool mapped;           /* bytes is an mmap, else malloc'ed */
  TensorList tensors;
  char **meta;           /* key, value, ... */
  int nmeta;
};

static const struct {
  const char *name;
  DType dtype;
} st_dtypes[] = {
    {"F64", DT_F64}, {"F32", DT_F32}, {"F16", DT_F16}, {"BF16", DT_BF16},
    {"I64", DT_I64}, {"I32", DT_I32}, {"U8", DT_U8},   {"BOOL", DT_BOOL},
};

static bool dtype_of(const char *s, DType *out) {
  for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
    if (!strcmp(s, st_dtypes[i].name)) {
      *out = st_dtypes[i].dtype;
      return true;
    }
  return false;
}

static const char *dtype_tag(DType t) {
  for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
    if (st_dtypes[i].dtype == t) return st_dtypes[i].name;
  return NULL;
}

void st_close(StFile *f) {
  if (!f) return;
  for (int i = 0; i < f->tensors.n; i++) f->tensors.items[i]->data = NULL; /* borrowed */
  tensorlist_free(&f->tensors);
  for (int i = 0; i < 2 * f->nmeta; i++) free(f->meta[i]);
  free(f->meta);
  if (f->mapped) munmap(f->bytes, f->size);
  else free(f->bytes);
  free(f->name);
  free(f);
}

const TensorList *st_tensors(const StFile *f) { return &f->tensors; }

const char *st_metadata(const StFile *f, const char *key) {
  for (int i = 0; i < f->nmeta; i++)
    if (!strcmp(f->meta[2 * i], key)) return f->meta[2 * i + 1];
  return NULL;
}

/* ---- reading ---------------------------------------------------------- */

typedef struct {
  uint64_t begin, end;
  Tensor *t;
} Span;

static int by_begin(const void *a, const void *b) {
  const Span *x = a, *y = b;
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

static bool read_metadata(StFile *f, json_t *meta, RtError *err) {
  if (!json_is_object(meta)) return rt_fail(err, "%s: __metadata__ is not an object", f->name);
  size_t n = json_object_size(meta);
  f->meta = calloc(2 * n + 1, sizeof *f->meta);
  if (!f->meta) return rt_fail(err, "%s: out of memory", f->name);
  const char *key;
  json_t *v;
  json_object_foreach(meta, key, v) {
    if (!json_is_string(v)) return rt_fail(err, "%s: __metadata__ value of '%s' is not a string", f->name, key);
    f->meta[2 * f->nmeta] = strdup(key);
    f->meta[2 * f->nmeta + 1] = strdup(json_string_value(v));
    f->nmeta++;
    if (!f->meta[2 * f->nmeta - 2] || !f->meta[2 * f->nmeta - 1]) return rt_fail(err, "%s: out of memory", f->name);
  }
  return true;
}

/* Reads one header entry into a Tensor with no data yet; span filled. */
static bool read_entry(StFile *f, const char *name, json_t *e, Span *span, RtError *err) {
  json_t *dt = json_object_get(e, "dtype"), *shape = json_object_get(e, "shape");
  json_t *offs = json_object_get(e, "data_offsets");
  if (!json_is_object(e) || !json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs) ||
      json_array_size(offs) != 2)
    return rt_fail(err, "%s: tensor '%s': needs \"dtype\", \"shape\" and \"data_offsets\": [begin, end]",
                   f->name, name);
  DType t;
  if (!dtype_of(json_string_value(dt), &t))
    return rt_fail(err, "%s: tensor '%s': unsupported dtype '%s' (F64 F32 F16 BF16 I64 I32 U8 BOOL)", f->name,
                   name, json_string_value(dt));
  size_t rank = json_array_size(shape);
  if (rank > IR_MAX_RANK) return rt_fail(err, "%s: tensor '%s': %zu axes; at most %d", f->name, name, rank, IR_MAX_RANK);
  int64_t dims[IR_MAX_RANK];
  uint64_t bytes = (uint64_t)dtype_size(t);
  for (size_t i = 0; i < rank; i++) {
    json_t *d = json_array_get(shape, i);
    if (!json_is_integer(d) || json_integer_value(d) < 0)
      return rt_fail(err, "%s: tensor '%s': shape entry %zu is not a non-negative integer", f->name, name, i);
    dims[i] = json_integer_value(d);
    if (__builtin_mul_overflow(bytes, (uint64_t)dims[i], &bytes))
      return rt_fail(err, "%s: tensor '%s': shape overflows", f->name, name);
  }
  json_t *b = json_array_get(offs, 0), *en = json_array_get(offs, 1);
  if (!json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 ||
      json_integer_value(en) < json_integer_value(b))
    return rt_fail(err, "%s: tensor '%s': data_offsets must be integers with 0 <= begin <= end", f->name, name);
  span->begin = (uint64_t)json_integer_value(b);
  span->end = (uint64_t)json_integer_value(en);
  if (span->end - span->begin != bytes)
    return rt_fail(err, "%s: tensor '%s': shape and dtype need %llu bytes but data_offsets span %llu", f->name,
                   name, (unsigned long long)bytes, (unsigned long long)(span->end - span->begin));
  Tensor *tn = calloc(1, sizeof *tn);
  if (!tn || !(tn->name = strdup(name))) {
    free(tn);
    return rt_fail(err, "%s: out of memory", f->name);
  }
  tn->dtype = t;
  tn->rank = (int)rank;
  memcpy(tn->shape, dims, sizeof(int64_t) * rank);
  tn->nbytes = (size_t)bytes;
  span->t = tn;
  return tensorlist_add(&f->tensors, tn, err) || (tensor_free(tn), false);
}

/* The spans must tile the data exactly: no gap, no overlap, nothing after. */
static bool check_layout(StFile *f, Span *spans, int n, uint64_t data_len, RtError *err) {
  qsort(spans, (size_t)n, sizeof *spans, by_begin);
  uint64_t at = 0;
  for (int i = 0; i < n; i++) {
    if (spans[i].begin != at)
      return rt_fail(err, "%s: tensor '%s': data starts at byte %llu but the previous tensor ends at %llu (%s)",
                     f->name, spans[i].t->name, (unsigned long long)spans[i].begin, (unsigned long long)at,
                     spans[i].begin < at ? "overlap" : "gap");
    at = spans[i].end;
    if (at > data_len)
      return rt_fail(err, "%s: tensor '%s': data_offsets end at %llu, past the %llu data bytes of the file",
                     f->name, spans[i].t->name, (unsigned long long)at, (unsigned long long)data_len);
  }
  if (at != data_len)
    return rt_fail(err, "%s: %llu trailing bytes after the last tensor", f->name,
                   (unsigned long long)(data_len - at));
  return true;
}

static bool parse(StFile *f, RtError *err) {
  if (f->size < 8)
    return rt_fail(err, "%s: file of %zu bytes is too short for a safetensors header", f->name, f->size);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | f->bytes[i];
  if (n > f->size - 8 || n > HEADER_MAX)
    return rt_fail(err, "%s: header length %llu exceeds the file (%zu bytes after the length)", f->name,
                   (unsigned long long)n, f->size - 8);
  json_error_t jerr;
  json_t *root = json_loadb((const char *)f->bytes + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) return rt_fail(err, "%s: header is not valid JSON: %s (at byte %d)", f->name, jerr.text, jerr.position);
  bool ok = json_is_object(root);
  if (!ok) rt_fail(err, "%s: header is not a JSON object", f->name);
  size_t count = ok ? json_object_size(root) : 0;
  Span *spans = calloc(count + 1, sizeof *spans);
  if (ok && !spans) ok = rt_fail(err, "%s: out of memory", f->name);
  int ns = 0;
  const char *key;
  json_t *v;
  if (ok) json_object_foreach(root, key, v) {
    if (!strcmp(key, "__metadata__")) ok = read_metadata(f, v, err);
    else ok = read_entry(f, key, v, &spans[ns++], err);
    if (!ok) break;
  }
  uint64_t data_len = f->size - 8 - n;
  if (ok) ok = check_layout(f, spans, ns, data_len, err);
  for (int i = 0; ok && i < ns; i++) spans[i].t->data = f->bytes + 8 + n + spans[i].begin;
  /* Tensors in file order, as the writer put them. */
  for (int i = 0; ok && i < ns; i++) f->tensors.items[i] = spans[i].t;
  free(spans);
  json_decref(root);
  return ok;
}

static StFile *new_file(const char *name, RtError *err) {
  StFile *f = calloc(1, sizeof *f);
  if (f && !(f->name = strdup(name))) {
    free(f);
    f = NULL;
  }
  if (!f) rt_fail(err, "%s: out of memory", name);
  return f;
}

StFile *st_open(const char *path, RtError *err) {
  StFile *f = new_file(path, err);
  if (!f) return NULL;
  int fd = open(path, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    rt_fail(err, "%s: cannot open: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    st_close(f);
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    rt_fail(err, "%s: not a regular file", path);
    close(fd);
    st_close(f);
    return NULL;
  }
  f->size = (size_t)st.st_size;
  if (f->size > 0) {
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      rt_fail(err, "%s: cannot map: %s", path, strerror(errno));
      close(fd);
      f->size = 0;
      st_close(f);
      return NULL;
    }
    f->bytes = m;
    f->mapped = true;
  }
  close(fd);
  if (!parse(f, err)) {
    st_close(f);
    return NULL;
  }
  return f;
}

StFile *st_open_memory(const char *name, const void *bytes, size_t len, RtError *err) {
  StFile *f = new_file(name, err);
  if (!f) return NULL;
  f->bytes = malloc(len ? len : 1);
  if (!f->bytes) {
    rt_fail(err, "%s: out of memory", name);
    st_close(f);
    return NULL;
  }
  memcpy(f->bytes, bytes, len);
  f->size = len;
  if (!parse(f, err)) {
    st_close(f);
    return NULL;
  }
  return f;
}

/* ---- writing ---------------------------------------------------------- */

/* The JSON header, padded with spaces to a multiple of 8 bytes. */
static char *make_header(Tensor *const *ts, int n, const char *const *meta, size_t *len, RtError *err) {
  json_t *root = json_object(), *m = NULL;
  bool ok = root != NULL;
  if (ok && meta && meta[0]) {
    m = json_object();
    for (int i = 0; m && meta[i] && meta[i + 1]; i += 2) json_object_set_new(m, meta[i], json_string(meta[i + 1]));
    ok = m && json_object_set_new(root, "__metadata__", m) == 0;
  }
  uint64_t at = 0;
  for (int i = 0; ok && i < n; i++) {
    const char *tag = dtype_tag(ts[i]->dtype);
    if (!tag) {
      ok = rt_fail(err, "tensor '%s': dtype %s cannot be stored", ts[i]->name, dtype_name(ts[i]->dtype));
      break;
    }
    if (json_object_get(root, ts[i]->name)) {
      ok = rt_fail(err, "tensor name '%s' appears twice", ts[i]->name);
      break;
    }
    json_t *shape = json_array();
    for (int k = 0; shape && k < ts[i]->rank; k++) json_array_append_new(shape, json_integer(ts[i]->shape[k]));
    json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", tag, "shape", shape, "data_offsets",
                          (json_int_t)at, (json_int_t)(at + ts[i]->nbytes));
    ok = e && json_object_set_new(root, ts[i]->name, e) == 0;
    at += ts[i]->nbytes;
  }
  char *text = ok ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(root);
  if (!text) {
    if (ok) rt_fail(err, "out of memory building the header");
    return NULL;
  }
  size_t n0 = strlen(text), padded = (n0 + 7) / 8 * 8;
  char *out = realloc(text, padded + 1);
  if (!out) {
    free(text);
    rt_fail(err, "out of memory");
    return NULL;
  }
  memset(out + n0, ' ', padded - n0);
  out[padded] = '\0';
  *len = padded;
  return out;
}

static bool write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= (size_t)w;
  }
  return true;
}

bool st_write(const char *path, Tensor *const *ts, int n, const char *const *meta, RtError *err) {
  for (int i = 0; i < n; i++)
    if (ts[i]->nbytes != (size_t)tensor_numel(ts[i]) * (size_t)dtype_size(ts[i]->dtype))
      return rt_fail(err, "tensor '%s': %zu bytes do not match its shape", ts[i]->name, ts[i]->nbytes);
  size_t hlen;
  char *header = make_header(ts, n, meta, &hlen, err);
  if (!header) return false;
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 16);
  if (!tmp) {
    free(header);
    return rt_fail(err, "out of memory");
  }
  snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  bool ok = fd >= 0;
  if (!ok) rt_fail(err, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  ok = ok && write_all(fd, len8, 8) && write_all(fd, header, hlen);
  for (int i = 0; ok && i < n; i++) ok = write_all(fd, ts[i]->data, ts[i]->nbytes);
  ok = ok && fchmod(fd, 0644) == 0 && fsync(fd) == 0;
  if (fd >= 0 && close(fd) != 0) ok = false;
  if (ok && rename(tmp, path) != 0) ok = false;
  if (!ok) {
    if (fd >= 0) {
      rt_fail(err, "%s: write failed: %s", path, strerror(errno));
      unlink(tmp);
    }
  }
  free(tmp);
  free(header);
  return ok;
}
