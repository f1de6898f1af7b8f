/* safetensors.c: the safetensors reader (validating, mmap-based) and the
 * atomic writer. JSON goes through jansson, which also rejects headers that
 * are not UTF-8, hold a NUL, or repeat a key (JSON_REJECT_DUPLICATES).
 *
 * What the reader checks, each failure naming the file (and tensor):
 *  - at least 8 bytes; header length N <= the bytes after it, and <= 100 MB;
 *  - the header is a JSON object;
 *  - "__metadata__", if present, is an object of strings;
 *  - every other entry is an object with "dtype" (a known tag), "shape"
 *    (at most IR_MAX_RANK non-negative integers whose product, times the
 *    dtype size, fits in int64 whatever the order) and "data_offsets"
 *    [begin, end], integers with 0 <= begin <= end and end - begin equal to
 *    the bytes the shape needs;
 *  - sorted by offsets, the spans tile the data exactly, as the format
 *    requires: no gap, no overlap, nothing past the end, no trailing bytes. */
#include "safetensors.h"
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation's limit; a larger length is corruption, and
 * refusing it early avoids parsing (or allocating for) a huge header. */
enum { HEADER_MAX = 100000000 };

struct StFile {
  char *name;
  unsigned char *bytes; /* the whole file */
  size_t size;
  bool mapped;          /* bytes is an mmap, else malloc'ed */
  TensorList tensors;
  char **meta;          /* key, value, key, value, ... */
  int nmeta;
};

static const struct {
  const char *tag;
  DType dtype;
} st_dtypes[] = {
    {"F64", DT_F64}, {"F32", DT_F32}, {"F16", DT_F16}, {"BF16", DT_BF16},
    {"I64", DT_I64}, {"I32", DT_I32}, {"U8", DT_U8},   {"BOOL", DT_BOOL},
};
enum { ST_NDTYPES = sizeof st_dtypes / sizeof st_dtypes[0] };

static bool dtype_of_tag(const char *s, DType *out) {
  for (int i = 0; i < ST_NDTYPES; i++)
    if (!strcmp(s, st_dtypes[i].tag)) {
      *out = st_dtypes[i].dtype;
      return true;
    }
  return false;
}

static const char *tag_of_dtype(DType t) {
  for (int i = 0; i < ST_NDTYPES; i++)
    if (st_dtypes[i].dtype == t) return st_dtypes[i].tag;
  return NULL;
}

void st_close(StFile *f) {
  if (!f) return;
  /* The tensors borrow the mapping (owns_data is false): freeing them
   * frees names and structs only. */
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
  int index; /* in the header: a tie-break that keeps the sort deterministic */
  Tensor *t;
} Span;

/* By (begin, end): empty tensors then sit before a tensor starting at the
 * same byte, as the reference implementation orders them. */
static int by_offsets(const void *a, const void *b) {
  const Span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return (x->index > y->index) - (x->index < y->index);
}

static bool read_metadata(StFile *f, json_t *meta, RtError *err) {
  if (!json_is_object(meta)) return rt_fail(err, "%s: __metadata__ is not an object", f->name);
  f->meta = calloc(2 * json_object_size(meta) + 1, sizeof *f->meta);
  if (!f->meta) return rt_fail(err, "%s: out of memory", f->name);
  const char *key;
  json_t *v;
  json_object_foreach(meta, key, v) {
    if (!json_is_string(v))
      return rt_fail(err, "%s: __metadata__ value of '%s' is not a string", f->name, key);
    char **kv = f->meta + 2 * f->nmeta++;
    kv[0] = strdup(key);
    kv[1] = strdup(json_string_value(v));
    if (!kv[0] || !kv[1]) return rt_fail(err, "%s: out of memory", f->name);
  }
  return true;
}

/* Reads a shape into dims and the bytes it needs into *bytes. The product
 * of the non-zero dimensions must fit, so that no later product over the
 * shape can overflow whatever order it multiplies in. */
static bool read_shape(StFile *f, const char *name, json_t *shape, DType t, int64_t *dims,
                       uint64_t *bytes, RtError *err) {
  size_t rank = json_array_size(shape);
  if (rank > IR_MAX_RANK)
    return rt_fail(err, "%s: tensor '%s': %zu axes; at most %d are supported", f->name, name, rank,
                   IR_MAX_RANK);
  uint64_t nonzero = (uint64_t)dtype_size(t);
  bool empty = false;
  for (size_t i = 0; i < rank; i++) {
    json_t *d = json_array_get(shape, i);
    if (!json_is_integer(d) || json_integer_value(d) < 0)
      return rt_fail(err, "%s: tensor '%s': shape entry %zu is not a non-negative integer", f->name, name,
                     i);
    dims[i] = json_integer_value(d);
    empty |= dims[i] == 0;
    if (dims[i] && (__builtin_mul_overflow(nonzero, (uint64_t)dims[i], &nonzero) || nonzero > INT64_MAX))
      return rt_fail(err, "%s: tensor '%s': shape overflows", f->name, name);
  }
  *bytes = empty ? 0 : nonzero;
  return true;
}

static bool read_offsets(StFile *f, const char *name, json_t *offs, Span *span, RtError *err) {
  json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
  if (json_array_size(offs) != 2 || !json_is_integer(b) || !json_is_integer(e) ||
      json_integer_value(b) < 0 || json_integer_value(e) < json_integer_value(b))
    return rt_fail(err, "%s: tensor '%s': data_offsets must be two integers with 0 <= begin <= end",
                   f->name, name);
  span->begin = (uint64_t)json_integer_value(b);
  span->end = (uint64_t)json_integer_value(e);
  return true;
}

/* Reads one header entry into a Tensor with no data yet (added to
 * f->tensors) and its byte span. */
static bool read_entry(StFile *f, const char *name, json_t *e, Span *span, RtError *err) {
  if (!json_is_object(e)) return rt_fail(err, "%s: tensor '%s': entry is not an object", f->name, name);
  json_t *dt = json_object_get(e, "dtype"), *shape = json_object_get(e, "shape");
  json_t *offs = json_object_get(e, "data_offsets");
  if (!json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs))
    return rt_fail(err,
                   "%s: tensor '%s': needs \"dtype\" (a string), \"shape\" (an array) and "
                   "\"data_offsets\" (an array)",
                   f->name, name);
  DType t;
  if (!dtype_of_tag(json_string_value(dt), &t))
    return rt_fail(err, "%s: tensor '%s': unsupported dtype '%s' (F64 F32 F16 BF16 I64 I32 U8 BOOL)",
                   f->name, name, json_string_value(dt));
  int64_t dims[IR_MAX_RANK];
  uint64_t bytes = 0;
  if (!read_shape(f, name, shape, t, dims, &bytes, err) || !read_offsets(f, name, offs, span, err))
    return false;
  if (span->end - span->begin != bytes)
    return rt_fail(err, "%s: tensor '%s': shape and dtype need %llu bytes but data_offsets span %llu",
                   f->name, name, (unsigned long long)bytes,
                   (unsigned long long)(span->end - span->begin));
  Tensor *tn = calloc(1, sizeof *tn);
  if (!tn || !(tn->name = strdup(name))) {
    free(tn);
    return rt_fail(err, "%s: out of memory", f->name);
  }
  tn->dtype = t;
  tn->rank = (int)json_array_size(shape);
  memcpy(tn->shape, dims, sizeof(int64_t) * (size_t)tn->rank);
  tn->nbytes = (size_t)bytes;
  span->t = tn;
  if (tensorlist_add(&f->tensors, tn, err)) return true;
  tensor_free(tn);
  return false;
}

/* The spans, sorted, must tile the data exactly. Each begins where the
 * previous ended (so none starts past the data unless one before it ends
 * there) and none ends past the data. */
static bool check_layout(StFile *f, Span *spans, int n, uint64_t data_len, RtError *err) {
  qsort(spans, (size_t)n, sizeof *spans, by_offsets);
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

static bool read_header_length(StFile *f, uint64_t *n, RtError *err) {
  if (f->size < 8)
    return rt_fail(err, "%s: file of %zu bytes is too short for a safetensors header", f->name, f->size);
  *n = 0;
  for (int i = 7; i >= 0; i--) *n = (*n << 8) | f->bytes[i];
  if (*n > HEADER_MAX)
    return rt_fail(err, "%s: header length %llu is over the %d-byte limit (not a safetensors file?)",
                   f->name, (unsigned long long)*n, HEADER_MAX);
  if (*n > f->size - 8)
    return rt_fail(err, "%s: header length %llu exceeds the file (%zu bytes after the length)", f->name,
                   (unsigned long long)*n, f->size - 8);
  return true;
}

/* Reads the entries of the header object into f and spans (which has room
 * for every key); *ns is the number of tensors. */
static bool read_entries(StFile *f, json_t *root, Span *spans, int *ns, RtError *err) {
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    bool ok;
    if (!strcmp(key, "__metadata__")) ok = read_metadata(f, v, err);
    else {
      spans[*ns].index = *ns;
      ok = read_entry(f, key, v, &spans[*ns], err);
      *ns += ok;
    }
    if (!ok) return false;
  }
  return true;
}

static bool parse(StFile *f, RtError *err) {
  uint64_t n = 0;
  if (!read_header_length(f, &n, err)) return false;
  /* JSON_DECODE_ANY lets a scalar header parse, to be refused below with
   * a plainer message than jansson's. */
  json_error_t jerr;
  json_t *root =
      json_loadb((const char *)f->bytes + 8, (size_t)n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
  if (!root)
    return rt_fail(err, "%s: header is not valid JSON: %s (at byte %d)", f->name, jerr.text, jerr.position);
  if (!json_is_object(root)) {
    json_decref(root);
    return rt_fail(err, "%s: header is not a JSON object", f->name);
  }
  Span *spans = calloc(json_object_size(root) + 1, sizeof *spans);
  int ns = 0;
  bool ok = spans ? read_entries(f, root, spans, &ns, err) : rt_fail(err, "%s: out of memory", f->name);
  const unsigned char *data = f->bytes + 8 + n;
  ok = ok && check_layout(f, spans, ns, f->size - 8 - n, err);
  /* Data order, which is the order the writer was given. */
  for (int i = 0; ok && i < ns; i++) {
    spans[i].t->data = (void *)(data + spans[i].begin);
    f->tensors.items[i] = spans[i].t;
  }
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

/* Maps the file at f->name into f; an empty file maps to nothing. */
static bool map_file(StFile *f, RtError *err) {
  int fd = open(f->name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return rt_fail(err, "%s: cannot open: %s", f->name, strerror(errno));
  struct stat st;
  bool ok = true;
  if (fstat(fd, &st) != 0) ok = rt_fail(err, "%s: cannot stat: %s", f->name, strerror(errno));
  else if (!S_ISREG(st.st_mode)) ok = rt_fail(err, "%s: not a regular file", f->name);
  else if (st.st_size > 0) {
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) ok = rt_fail(err, "%s: cannot map: %s", f->name, strerror(errno));
    else {
      f->bytes = m;
      f->size = (size_t)st.st_size;
      f->mapped = true;
    }
  }
  close(fd);
  return ok;
}

StFile *st_open(const char *path, RtError *err) {
  StFile *f = new_file(path, err);
  if (f && (!map_file(f, err) || !parse(f, err))) {
    st_close(f);
    return NULL;
  }
  return f;
}

StFile *st_open_memory(const char *name, const void *bytes, size_t len, RtError *err) {
  StFile *f = new_file(name, err);
  if (!f) return NULL;
  f->bytes = malloc(len ? len : 1);
  bool ok = f->bytes ? true : rt_fail(err, "%s: out of memory", name);
  if (ok) {
    if (len) memcpy(f->bytes, bytes, len);
    f->size = len;
    ok = parse(f, err);
  }
  if (!ok) {
    st_close(f);
    return NULL;
  }
  return f;
}

/* ---- writing ---------------------------------------------------------- */

static bool check_tensor(const Tensor *t, RtError *err) {
  if (!t || !t->name) return rt_fail(err, "a tensor (or its name) is NULL");
  if (!strcmp(t->name, "__metadata__"))
    return rt_fail(err, "tensor name '__metadata__' is reserved for the metadata");
  if (!tag_of_dtype(t->dtype))
    return rt_fail(err, "tensor '%s': dtype %s cannot be stored", t->name, dtype_name(t->dtype));
  if (t->rank < 0 || t->rank > IR_MAX_RANK) return rt_fail(err, "tensor '%s': bad rank %d", t->name, t->rank);
  uint64_t bytes = (uint64_t)dtype_size(t->dtype);
  for (int i = 0; i < t->rank; i++)
    if (t->shape[i] < 0 || __builtin_mul_overflow(bytes, (uint64_t)t->shape[i], &bytes))
      return rt_fail(err, "tensor '%s': shape is negative or too large", t->name);
  if (t->nbytes != bytes)
    return rt_fail(err, "tensor '%s': %zu bytes do not match its shape (%llu)", t->name, t->nbytes,
                   (unsigned long long)bytes);
  if (bytes && !t->data) return rt_fail(err, "tensor '%s': no data", t->name);
  return true;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [begin, begin + nbytes]} */
static json_t *entry_json(const Tensor *t, uint64_t begin) {
  json_t *e = json_object(), *shape = json_array(), *offs = json_array();
  bool ok = e && shape && offs;
  for (int k = 0; ok && k < t->rank; k++) ok = json_array_append_new(shape, json_integer(t->shape[k])) == 0;
  ok = ok && json_array_append_new(offs, json_integer((json_int_t)begin)) == 0 &&
       json_array_append_new(offs, json_integer((json_int_t)(begin + t->nbytes))) == 0;
  ok = ok && json_object_set_new(e, "dtype", json_string(tag_of_dtype(t->dtype))) == 0;
  ok = ok && json_object_set(e, "shape", shape) == 0 && json_object_set(e, "data_offsets", offs) == 0;
  json_decref(shape);
  json_decref(offs);
  if (!ok) json_decref(e);
  return ok ? e : NULL;
}

/* jansson refuses keys and strings that are not UTF-8: the messages say so,
 * since that is the likely cause when memory is not short. */
static bool add_metadata(json_t *root, const char *const *meta, RtError *err) {
  if (!meta || !meta[0]) return true;
  json_t *m = json_object();
  if (!m || json_object_set_new(root, "__metadata__", m) != 0) return rt_fail(err, "out of memory");
  for (int i = 0; meta[i]; i += 2) {
    if (!meta[i + 1]) return rt_fail(err, "metadata key '%s' has no value", meta[i]);
    if (json_object_get(m, meta[i])) return rt_fail(err, "metadata key '%s' appears twice", meta[i]);
    if (json_object_set_new(m, meta[i], json_string(meta[i + 1])) != 0)
      return rt_fail(err, "metadata '%s': key or value is not valid UTF-8", meta[i]);
  }
  return true;
}

static bool add_tensors(json_t *root, Tensor *const *ts, int n, RtError *err) {
  uint64_t at = 0;
  for (int i = 0; i < n; i++) {
    if (!check_tensor(ts[i], err)) return false;
    if (json_object_get(root, ts[i]->name)) return rt_fail(err, "tensor name '%s' appears twice", ts[i]->name);
    json_t *e = entry_json(ts[i], at);
    if (!e || json_object_set_new(root, ts[i]->name, e) != 0)
      return rt_fail(err, "tensor '%s': name is not valid UTF-8 (or out of memory)", ts[i]->name);
    at += ts[i]->nbytes;
  }
  return true;
}

/* The JSON header, padded with spaces to a multiple of 8 bytes so that the
 * data starts aligned, as the reference implementation does. */
static char *make_header(Tensor *const *ts, int n, const char *const *meta, size_t *len, RtError *err) {
  json_t *root = json_object();
  bool ok = root ? add_metadata(root, meta, err) && add_tensors(root, ts, n, err) : rt_fail(err, "out of memory");
  char *text = ok ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(root);
  size_t n0 = text ? strlen(text) : 0, padded = (n0 + 7) / 8 * 8;
  char *out = text ? realloc(text, padded + 1) : NULL;
  if (!out) {
    free(text);
    if (ok) rt_fail(err, "out of memory building the header");
    return NULL;
  }
  memset(out + n0, ' ', padded - n0);
  out[padded] = '\0';
  *len = padded;
  return out;
}

bool st_write(const char *path, Tensor *const *ts, int n, const char *const *meta, RtError *err) {
  if (n < 0 || (n > 0 && !ts)) return rt_fail(err, "%s: bad tensor count %d", path, n);
  size_t hlen;
  char *header = make_header(ts, n, meta, &hlen, err);
  if (!header) return false;
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  const void **chunks = malloc(sizeof(void *) * (size_t)(n + 2));
  size_t *sizes = malloc(sizeof(size_t) * (size_t)(n + 2));
  bool ok = chunks && sizes;
  if (ok) {
    chunks[0] = len8, sizes[0] = 8;
    chunks[1] = header, sizes[1] = hlen;
    for (int i = 0; i < n; i++) chunks[i + 2] = ts[i]->data, sizes[i + 2] = ts[i]->nbytes;
    ok = rt_write_atomic(path, chunks, sizes, n + 2, err);
  } else {
    rt_fail(err, "out of memory");
  }
  free(chunks);
  free(sizes);
  free(header);
  return ok;
}
