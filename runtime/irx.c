/* irx.c: the .irx program format, both directions. A file is
 *   "IREPAIRX" | u32 version | u32 0 | u64 header bytes H | u64 blob bytes L
 *   | H bytes of JSON | L bytes of blobs | u64 FNV-1a of all that precedes
 * (integers little-endian). The JSON says everything about the program;
 * blobs hold the kernel sources and CUBINs it points into by offset. The
 * checksum makes a truncated or damaged file an error, not a crash. */
#include "irx.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"

const char IRX_MAGIC[8] = {'I', 'R', 'E', 'P', 'A', 'I', 'R', 'X'};

static const char *const init_names[] = {"zeros", "ones", "constant", "normal", "uniform",
                                         "xavier_uniform", "torch_default", "sincos_2d"};
static const char *const kind_names[] = {"pointwise", "reduce", "matmul", "conv", "gather", "attention"};
static const char *const ref_names[] = {"input", "param", "buffer"};

static uint64_t fnv1a(const unsigned char *p, size_t n) { return fnv1a64_update(FNV1A64_INIT, p, n); }

static void put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* ---- writing ---------------------------------------------------------- */

/* A dimension: an integer, or [n] for n times the batch size. */
static json_t *dim_json(Dim d) { return d.sym ? json_pack("[I]", (json_int_t)d.n) : json_integer(d.n); }

static json_t *shape_json(const Shape *s) {
  json_t *a = json_array();
  for (int k = 0; k < s->rank; k++) json_array_append_new(a, dim_json(s->d[k]));
  return a;
}

static json_t *tensor_json(const char *name, DType t, const Shape *s) {
  return json_pack("{s:s, s:s, s:o}", "name", name, "dtype", dtype_name(t), "shape", shape_json(s));
}

static json_t *param_json(const ParamInfo *p) {
  const InitRule *r = &p->init;
  json_t *init = json_pack("{s:s, s:f, s:f, s:I, s:I, s:I}", "kind", init_names[r->kind], "a", r->a, "b", r->b,
                           "fan_in", (json_int_t)r->fan_in, "fan_out", (json_int_t)r->fan_out, "grid",
                           (json_int_t)r->grid);
  json_t *o = tensor_json(p->name, p->dtype, &p->shape);
  json_object_set_new(o, "trainable", json_boolean(p->trainable));
  json_object_set_new(o, "init", init);
  return o;
}

/* An in-place update is written straight over its leaf. */
static json_t *ref_json(const Plan *plan, const Node *x) {
  int b = x->op == OP_INPUT || x->op == OP_PARAM ? -1 : plan->buf_of[x->id];
  if (b >= 0 && plan->bufs[b].alias) x = plan->bufs[b].alias;
  if (x->op == OP_INPUT) return json_pack("{s:i}", "input", x->attr.index);
  if (x->op == OP_PARAM) return json_pack("{s:i}", "param", x->attr.index);
  return json_pack("{s:i}", "buffer", plan->buf_of[x->id]);
}

static json_t *dims_json(const Dim *d, int n) {
  json_t *a = json_array();
  for (int i = 0; i < n; i++) json_array_append_new(a, dim_json(d[i]));
  return a;
}

static json_t *gemm_json(const GemmDesc *g) {
  return json_pack("{s:i, s:i, s:b, s:b, s:o, s:o, s:o, s:o, s:o, s:o}", "a", g->a_arg, "b", g->b_arg, "ta", g->ta,
                   "tb", g->tb, "m", dim_json(g->m), "n", dim_json(g->n), "k", dim_json(g->k), "batch",
                   dims_json(g->batch, g->batch_rank), "a_stride", dims_json(g->a_stride, g->batch_rank),
                   "b_stride", dims_json(g->b_stride, g->batch_rank));
}

static json_t *kernel_json(const CompiledEntry *e, int entry, const Kernel *K) {
  StrBuf ops;
  sb_init(&ops);
  for (int i = 0; i < K->nnodes; i++) sb_printf(&ops, "%s%s", i ? " " : "", op_name(K->nodes[i]->op));
  json_t *args = json_array();
  for (int i = 0; i < K->ninputs; i++) json_array_append_new(args, ref_json(&e->plan, K->inputs[i]));
  for (int i = 0; i < K->noutputs; i++) json_array_append_new(args, ref_json(&e->plan, K->outputs[i]));
  LaunchShape l = cg_cuda_launch(K);
  char name[64];
  snprintf(name, sizeof name, "e%d_k%d", entry, K->id);
  json_t *k = json_pack("{s:s, s:s, s:s, s:o, s:i, s:s, s:{s:o, s:i, s:i}}", "name", name, "kind",
                        kind_names[K->kind], "ops", ops.data ? ops.data : "", "args", args, "inputs", K->ninputs,
                        "dtype", dtype_name(K->outputs[0]->dtype), "launch", "work", dim_json(l.work),
                        "per_block", l.per_block, "block", l.block);
  sb_free(&ops);
  GemmDesc g;
  if (K->kind == K_MATMUL && program_gemm(K, &g)) json_object_set_new(k, "gemm", gemm_json(&g));
  return k;
}

static json_t *bytes_json(int64_t fixed, int64_t per_batch) {
  return json_pack("{s:I, s:I}", "fixed", (json_int_t)fixed, "per_batch", (json_int_t)per_batch);
}

static json_t *entry_json(const CompiledEntry *e, int index) {
  const Graph *g = e->g;
  const Plan *p = &e->plan;
  json_t *inputs = json_array(), *outputs = json_array(), *bufs = json_array(), *kernels = json_array();
  for (int i = 0; i < g->ninputs; i++)
    json_array_append_new(inputs, tensor_json(g->inputs[i]->name, g->inputs[i]->dtype, &g->inputs[i]->shape));
  for (int i = 0; i < g->noutputs; i++) {
    const Node *x = g->outputs[i];
    char fallback[32];
    snprintf(fallback, sizeof fallback, "out.%d", i);
    json_t *o = tensor_json(g->output_names[i] ? g->output_names[i] : fallback, x->dtype, &x->shape);
    json_object_set_new(o, "ref", ref_json(p, x));
    if (g->updates && g->updates[i]) json_object_set_new(o, "update", json_true());
    json_array_append_new(outputs, o);
  }
  for (int i = 0; i < p->n; i++) {
    const Buffer *b = &p->bufs[i];
    json_array_append_new(bufs, json_pack("{s:I, s:I, s:b, s:i, s:i}", "offset", (json_int_t)b->offset, "bytes",
                                          (json_int_t)b->bytes, "per_batch", b->per_batch, "first", b->first,
                                          "last", b->last));
  }
  for (int k = 0; k < e->sched.n; k++) json_array_append_new(kernels, kernel_json(e, index, e->sched.kernels[k]));
  json_t *j = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "name", g->name, "inputs", inputs, "outputs",
                        outputs, "arena", bytes_json(p->fixed_bytes, p->per_batch_bytes), "live_peak",
                        bytes_json(p->live_fixed, p->live_per_batch), "without_reuse",
                        bytes_json(p->sum_fixed, p->sum_per_batch), "buffers", bufs, "kernels", kernels);
  /* the FLOPs, for irepa-run bench on the file; left out where they do not count */
  FlopCount f;
  Arena a;
  SourceSet sources = {0};
  DiagList d;
  arena_init(&a);
  diag_init(&d, &a, &sources);
  bool counted = flops_count(&d, g, &f);
  arena_free(&a);
  if (j && counted)
    json_object_set_new(j, "flops", json_pack("{s:o, s:o}", "gemm", bytes_json(f.gemm.fixed, f.gemm.per_batch),
                                              "pointwise", bytes_json(f.pointwise.fixed, f.pointwise.per_batch)));
  return j;
}

typedef struct {
  const void *data;
  size_t size;
} Blob;

static json_t *blob_json(Blob *blobs, int *n, size_t *at, const void *data, size_t size) {
  blobs[*n] = (Blob){data, size};
  (*n)++;
  json_t *o = json_pack("{s:I, s:I}", "offset", (json_int_t)*at, "size", (json_int_t)size);
  *at += size;
  return o;
}

static char *header_text(const CompiledProgram *cp, const IrxMeta *meta, Blob *blobs, int *nblobs, size_t *blob_bytes) {
  json_t *params = json_array(), *entries = json_array(), *bl = json_object();
  for (int i = 0; i < cp->ir->params.n; i++) json_array_append_new(params, param_json(&cp->ir->params.items[i]));
  for (int i = 0; i < cp->nentries; i++) json_array_append_new(entries, entry_json(&cp->entries[i], i));
  size_t at = 0;
  if (cp->c_source) json_object_set_new(bl, "c_source", blob_json(blobs, nblobs, &at, cp->c_source, strlen(cp->c_source)));
  if (cp->cuda_source)
    json_object_set_new(bl, "cuda_source", blob_json(blobs, nblobs, &at, cp->cuda_source, strlen(cp->cuda_source)));
  for (int i = 0; i < meta->ncubins; i++) {
    char key[64];
    snprintf(key, sizeof key, "cubin_%s", meta->cubins[i].name);
    json_object_set_new(bl, key, blob_json(blobs, nblobs, &at, meta->cubins[i].data, meta->cubins[i].size));
  }
  *blob_bytes = at;
  char hash[24];
  snprintf(hash, sizeof hash, "%016llx", (unsigned long long)meta->source_hash);
  json_t *root = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:o, s:o, s:o}", "format", "irepa-program", "version",
                           IRX_VERSION, "compiler", "irepac " IREPA_VERSION, "source",
                           meta->source ? meta->source : "", "source_fnv1a64", hash, "model",
                           cp->ir->root_module ? cp->ir->root_module : "", "params", params, "entries", entries,
                           "blobs", bl);
  char *text = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(root);
  return text;
}

bool irx_serialize(const CompiledProgram *cp, const IrxMeta *meta, unsigned char **out, size_t *len, RtError *err) {
  Blob blobs[16];
  int nblobs = 0;
  size_t blob_bytes = 0;
  if (meta->ncubins > 8) return rt_fail(err, "too many CUBINs (%d)", meta->ncubins);
  char *header = header_text(cp, meta, blobs, &nblobs, &blob_bytes);
  if (!header) return rt_fail(err, "out of memory writing the program header");
  size_t hlen = strlen(header), total = IRX_HEADER_BYTES + hlen + blob_bytes + 8;
  unsigned char *b = malloc(total);
  if (!b) {
    free(header);
    return rt_fail(err, "out of memory: program of %zu bytes", total);
  }
  memcpy(b, IRX_MAGIC, 8);
  put_u32(b + 8, IRX_VERSION);
  put_u32(b + 12, 0);
  put_u64(b + 16, hlen);
  put_u64(b + 24, blob_bytes);
  memcpy(b + IRX_HEADER_BYTES, header, hlen);
  size_t at = IRX_HEADER_BYTES + hlen;
  for (int i = 0; i < nblobs; i++) {
    memcpy(b + at, blobs[i].data, blobs[i].size);
    at += blobs[i].size;
  }
  put_u64(b + at, fnv1a(b, at));
  free(header);
  *out = b;
  *len = total;
  return true;
}

bool irx_write(const char *path, const CompiledProgram *cp, const IrxMeta *meta, RtError *err) {
  unsigned char *bytes;
  size_t len;
  if (!irx_serialize(cp, meta, &bytes, &len, err)) return false;
  const void *chunks[1] = {bytes};
  bool ok = rt_write_atomic(path, chunks, &len, 1, err);
  free(bytes);
  return ok;
}

/* ---- reading ---------------------------------------------------------- */

/* Every error names the file and the JSON path of the bad field. */
typedef struct {
  const char *file;
  RtError *err;
  Arena *a;
  const unsigned char *blobs;
  size_t blob_bytes;
  const ParamTable *params;  /* once read */
} Reader;

static bool bad(Reader *r, const char *where, const char *what) {
  return rt_fail(r->err, "%s: invalid program: %s: %s", r->file, where, what);
}

static json_t *field(Reader *r, json_t *o, const char *where, const char *key, json_type t) {
  json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
  if (!v || json_typeof(v) != t) {
    if (!(t == JSON_REAL && v && json_is_integer(v))) {
      rt_fail(r->err, "%s: invalid program: %s: field '%s' %s", r->file, where, key,
              v ? "has the wrong type" : "is missing");
      return NULL;
    }
  }
  return v;
}

static bool get_int(Reader *r, json_t *o, const char *where, const char *key, int64_t lo, int64_t hi, int64_t *out) {
  json_t *v = field(r, o, where, key, JSON_INTEGER);
  if (!v) return false;
  *out = json_integer_value(v);
  if (*out < lo || *out > hi)
    return rt_fail(r->err, "%s: invalid program: %s: %s = %lld is out of range [%lld, %lld]", r->file, where, key,
                   (long long)*out, (long long)lo, (long long)hi);
  return true;
}

static bool get_str(Reader *r, json_t *o, const char *where, const char *key, char **out) {
  json_t *v = field(r, o, where, key, JSON_STRING);
  return v && (*out = arena_strdup(r->a, json_string_value(v))) != NULL;
}

static bool get_bool(Reader *r, json_t *o, const char *where, const char *key, bool *out) {
  json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
  if (!json_is_boolean(v)) return bad(r, where, arena_printf(r->a, "field '%s' must be true or false", key));
  *out = json_is_true(v);
  return true;
}

static bool read_dim(Reader *r, json_t *v, const char *where, Dim *out) {
  bool sym = json_is_array(v) && json_array_size(v) == 1;
  json_t *n = sym ? json_array_get(v, 0) : v;
  if (!json_is_integer(n) || json_integer_value(n) < 0 || json_integer_value(n) > ((int64_t)1 << 48))
    return bad(r, where, "a dimension must be a non-negative integer or [n] (n times the batch)");
  *out = (Dim){json_integer_value(n), sym};
  return true;
}

static bool read_dims(Reader *r, json_t *a, const char *where, Dim *out, int *n) {
  if (!json_is_array(a) || json_array_size(a) > IR_MAX_RANK) return bad(r, where, "expected at most 8 dimensions");
  *n = (int)json_array_size(a);
  for (int i = 0; i < *n; i++)
    if (!read_dim(r, json_array_get(a, (size_t)i), where, &out[i])) return false;
  return true;
}

static bool read_dtype(Reader *r, json_t *o, const char *where, DType *out) {
  char *s;
  if (!get_str(r, o, where, "dtype", &s)) return false;
  if (!dtype_from_name(s, out)) return bad(r, where, arena_printf(r->a, "unknown dtype '%s'", s));
  return true;
}

static bool read_tensor(Reader *r, json_t *o, const char *where, XTensor *t) {
  return get_str(r, o, where, "name", &t->name) && read_dtype(r, o, where, &t->dtype) &&
         read_dims(r, field(r, o, where, "shape", JSON_ARRAY), where, t->shape.d, &t->shape.rank);
}

static int name_index(const char *const *names, int n, const char *s) {
  for (int i = 0; i < n; i++)
    if (!strcmp(names[i], s)) return i;
  return -1;
}

static bool read_param(Reader *r, json_t *o, const char *where, ParamInfo *p) {
  XTensor t;
  json_t *init = field(r, o, where, "init", JSON_OBJECT);
  char *kind;
  int64_t fi, fo, grid;
  if (!init || !read_tensor(r, o, where, &t) || !get_bool(r, o, where, "trainable", &p->trainable) ||
      !get_str(r, init, where, "kind", &kind) || !get_int(r, init, where, "fan_in", 0, INT64_MAX, &fi) ||
      !get_int(r, init, where, "fan_out", 0, INT64_MAX, &fo) || !get_int(r, init, where, "grid", 0, INT64_MAX, &grid))
    return false;
  json_t *a = field(r, init, where, "a", JSON_REAL), *b = field(r, init, where, "b", JSON_REAL);
  int k = name_index(init_names, 8, kind);
  if (!a || !b) return false;
  if (k < 0) return bad(r, where, arena_printf(r->a, "unknown init rule '%s'", kind));
  p->name = t.name, p->dtype = t.dtype, p->shape = t.shape, p->loc = NO_LOC;
  p->init = (InitRule){(InitKind)k, json_number_value(a), json_number_value(b), fi, fo, grid};
  return true;
}

static bool read_ref(Reader *r, json_t *o, const char *where, const XEntry *e, int nparams, XRef *out) {
  const char *key;
  json_t *v;
  if (!json_is_object(o) || json_object_size(o) != 1) return bad(r, where, "a reference is {\"input\"|\"param\"|\"buffer\": n}");
  json_object_foreach(o, key, v) {
    int k = name_index(ref_names, 3, key);
    int64_t limit = k == REF_INPUT ? e->ninputs : k == REF_PARAM ? nparams : e->nbufs;
    if (k < 0 || !json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= limit)
      return bad(r, where, arena_printf(r->a, "bad reference %s (limit %lld)", key, (long long)limit));
    *out = (XRef){(RefKind)k, (int)json_integer_value(v)};
  }
  return true;
}

static bool entry_updates(const XEntry *e, XRef ref) {
  for (int i = 0; i < e->noutputs; i++)
    if (e->updates[i] && e->output_refs[i].kind == ref.kind && e->output_refs[i].index == ref.index) return true;
  return false;
}

/* An update output names the input or parameter it replaces, of its type. */
static bool read_update(Reader *r, json_t *x, const char *where, XEntry *e, int i) {
  json_t *u = json_object_get(x, "update");
  if (!u) return true;
  if (!json_is_boolean(u)) return bad(r, where, "\"update\" must be true or false");
  e->updates[i] = json_is_true(u);
  if (!e->updates[i]) return true;
  XRef ref = e->output_refs[i];
  const XTensor *o = &e->outputs[i];
  DType t = ref.kind == REF_INPUT ? e->inputs[ref.index].dtype : ref.kind == REF_PARAM ? r->params->items[ref.index].dtype : o->dtype;
  const Shape *s = ref.kind == REF_INPUT ? &e->inputs[ref.index].shape
                   : ref.kind == REF_PARAM ? &r->params->items[ref.index].shape : NULL;
  if (!s || t != o->dtype || !shape_eq(s, &o->shape)) return bad(r, where, "an update must replace an input or parameter of its type");
  for (int j = 0; j < i; j++)
    if (e->updates[j] && e->output_refs[j].kind == ref.kind && e->output_refs[j].index == ref.index)
      return bad(r, where, "a leaf is updated twice");
  return true;
}

static bool read_gemm(Reader *r, json_t *o, const char *where, XKernel *k) {
  GemmDesc *g = &k->gemm;
  int64_t a, b;
  int nb, ns1, ns2;
  if (!get_int(r, o, where, "a", 0, k->ninputs - 1, &a) || !get_int(r, o, where, "b", 0, k->ninputs - 1, &b) ||
      !get_bool(r, o, where, "ta", &g->ta) || !get_bool(r, o, where, "tb", &g->tb) ||
      !read_dim(r, json_object_get(o, "m"), where, &g->m) || !read_dim(r, json_object_get(o, "n"), where, &g->n) ||
      !read_dim(r, json_object_get(o, "k"), where, &g->k) ||
      !read_dims(r, json_object_get(o, "batch"), where, g->batch, &nb) ||
      !read_dims(r, json_object_get(o, "a_stride"), where, g->a_stride, &ns1) ||
      !read_dims(r, json_object_get(o, "b_stride"), where, g->b_stride, &ns2))
    return false;
  if (nb != ns1 || nb != ns2) return bad(r, where, "gemm batch and stride lists differ in length");
  g->a_arg = (int)a, g->b_arg = (int)b, g->batch_rank = nb;
  k->has_gemm = true;
  return true;
}

static bool read_kernel(Reader *r, json_t *o, const char *where, const XEntry *e, int nparams, XKernel *k) {
  char *kind;
  int64_t ninputs, per_block, block;
  json_t *args = field(r, o, where, "args", JSON_ARRAY), *launch = field(r, o, where, "launch", JSON_OBJECT);
  if (!args || !launch || !get_str(r, o, where, "name", &k->name) || !get_str(r, o, where, "kind", &kind) ||
      !get_str(r, o, where, "ops", &k->ops) || !read_dtype(r, o, where, &k->dtype) ||
      !get_int(r, o, where, "inputs", 0, (int64_t)json_array_size(args), &ninputs) ||
      !read_dim(r, json_object_get(launch, "work"), where, &k->launch.work) ||
      !get_int(r, launch, where, "per_block", 1, 1 << 20, &per_block) ||
      !get_int(r, launch, where, "block", 1, 1024, &block))
    return false;
  int kk = name_index(kind_names, 6, kind);
  if (kk < 0) return bad(r, where, arena_printf(r->a, "unknown kernel kind '%s'", kind));
  k->kind = (KernelKind)kk;
  k->ninputs = (int)ninputs;
  k->nargs = (int)json_array_size(args);
  k->launch.per_block = (int)per_block, k->launch.block = (int)block;
  if (k->nargs == k->ninputs) return bad(r, where, "a kernel needs an output");
  k->args = arena_alloc(r->a, sizeof(XRef) * (size_t)(k->nargs + 1));
  for (int i = 0; i < k->nargs; i++)
    if (!read_ref(r, json_array_get(args, (size_t)i), where, e, nparams, &k->args[i])) return false;
  for (int i = k->ninputs; i < k->nargs; i++)
    if (k->args[i].kind != REF_BUFFER && !entry_updates(e, k->args[i]))
      return bad(r, where, "a kernel writes only to buffers and to the leaves its entry updates");
  json_t *g = json_object_get(o, "gemm");
  if (k->kind == K_MATMUL && !g) return bad(r, where, "a matmul kernel needs its gemm description");
  return !g || read_gemm(r, g, where, k);
}

static bool read_bytes(Reader *r, json_t *o, const char *where, const char *key, int64_t *fixed, int64_t *per) {
  json_t *v = field(r, o, where, key, JSON_OBJECT);
  return v && get_int(r, v, where, "fixed", 0, INT64_MAX, fixed) && get_int(r, v, where, "per_batch", 0, INT64_MAX, per);
}

static bool read_buffers(Reader *r, json_t *a, const char *where, XEntry *e) {
  e->nbufs = (int)json_array_size(a);
  e->bufs = arena_alloc(r->a, sizeof(XBuffer) * (size_t)(e->nbufs + 1));
  for (int i = 0; i < e->nbufs; i++) {
    json_t *o = json_array_get(a, (size_t)i);
    XBuffer *b = &e->bufs[i];
    int64_t first, last;
    if (!get_bool(r, o, where, "per_batch", &b->per_batch) || !get_int(r, o, where, "offset", 0, INT64_MAX, &b->offset) ||
        !get_int(r, o, where, "bytes", 0, INT64_MAX, &b->bytes) || !get_int(r, o, where, "first", 0, INT32_MAX, &first) ||
        !get_int(r, o, where, "last", 0, INT32_MAX, &last))
      return false;
    b->first = (int)first, b->last = (int)last;
    int64_t top = b->per_batch ? e->per_batch_bytes : e->fixed_bytes;
    if (b->offset > top || b->bytes > top - b->offset)
      return bad(r, where, arena_printf(r->a, "buffer %d lies outside the arena", i));
  }
  return true;
}

static bool read_entry(Reader *r, json_t *o, int index, int nparams, XEntry *e) {
  const char *where = arena_printf(r->a, "entries[%d]", index);
  json_t *in = field(r, o, where, "inputs", JSON_ARRAY), *out = field(r, o, where, "outputs", JSON_ARRAY);
  json_t *bufs = field(r, o, where, "buffers", JSON_ARRAY), *ks = field(r, o, where, "kernels", JSON_ARRAY);
  if (!in || !out || !bufs || !ks || !get_str(r, o, where, "name", &e->name) ||
      !read_bytes(r, o, where, "arena", &e->fixed_bytes, &e->per_batch_bytes) ||
      !read_bytes(r, o, where, "live_peak", &e->live_fixed, &e->live_per_batch) ||
      !read_bytes(r, o, where, "without_reuse", &e->sum_fixed, &e->sum_per_batch))
    return false;
  json_t *f = json_object_get(o, "flops");
  e->has_flops = f != NULL;
  if (f && (!json_is_object(f) ||
            !read_bytes(r, f, where, "gemm", &e->flops.gemm.fixed, &e->flops.gemm.per_batch) ||
            !read_bytes(r, f, where, "pointwise", &e->flops.pointwise.fixed, &e->flops.pointwise.per_batch)))
    return json_is_object(f) ? false : bad(r, where, "flops is not an object");
  where = arena_printf(r->a, "entry %s", e->name);
  e->ninputs = (int)json_array_size(in);
  e->noutputs = (int)json_array_size(out);
  e->nkernels = (int)json_array_size(ks);
  e->inputs = arena_alloc(r->a, sizeof(XTensor) * (size_t)(e->ninputs + 1));
  e->outputs = arena_alloc(r->a, sizeof(XTensor) * (size_t)(e->noutputs + 1));
  e->output_refs = arena_alloc(r->a, sizeof(XRef) * (size_t)(e->noutputs + 1));
  e->updates = arena_alloc(r->a, sizeof(bool) * (size_t)(e->noutputs + 1));
  e->kernels = arena_alloc(r->a, sizeof(XKernel) * (size_t)(e->nkernels + 1));
  if (!e->inputs || !e->outputs || !e->output_refs || !e->updates || !e->kernels) return rt_fail(r->err, "out of memory");
  for (int i = 0; i < e->ninputs; i++)
    if (!read_tensor(r, json_array_get(in, (size_t)i), arena_printf(r->a, "%s input %d", where, i), &e->inputs[i]))
      return false;
  if (!read_buffers(r, bufs, where, e)) return false;
  for (int i = 0; i < e->noutputs; i++) {
    json_t *x = json_array_get(out, (size_t)i);
    const char *w = arena_printf(r->a, "%s output %d", where, i);
    if (!read_tensor(r, x, w, &e->outputs[i]) || !read_ref(r, json_object_get(x, "ref"), w, e, nparams, &e->output_refs[i]) ||
        !read_update(r, x, w, e, i))
      return false;
  }
  for (int i = 0; i < e->nkernels; i++)
    if (!read_kernel(r, json_array_get(ks, (size_t)i), arena_printf(r->a, "%s kernel %d", where, i), e, nparams,
                     &e->kernels[i]))
      return false;
  return true;
}

static bool read_blob(Reader *r, json_t *blobs, const char *key, const unsigned char **data, size_t *size) {
  json_t *o = json_object_get(blobs, key);
  int64_t off, n;
  *data = NULL;
  if (!o) return true;
  if (!get_int(r, o, key, "offset", 0, (int64_t)r->blob_bytes, &off) ||
      !get_int(r, o, key, "size", 0, (int64_t)r->blob_bytes - off, &n))
    return false;
  *data = r->blobs + off;
  *size = (size_t)n;
  return true;
}

static bool read_sources(Reader *r, json_t *blobs, XProgram *p) {
  const unsigned char *d;
  size_t n = 0;
  if (!read_blob(r, blobs, "c_source", &d, &n)) return false;
  if (d) p->c_source = arena_strndup(r->a, (const char *)d, n);
  if (!read_blob(r, blobs, "cuda_source", &d, &n)) return false;
  if (d) p->cuda_source = arena_strndup(r->a, (const char *)d, n);
  const char *key;
  json_t *v;
  p->cubins = arena_alloc(r->a, sizeof(XCubin) * (json_object_size(blobs) + 1));
  json_object_foreach(blobs, key, v) {
    if (strncmp(key, "cubin_", 6)) continue;
    if (!read_blob(r, blobs, key, &d, &n)) return false;
    XCubin *c = &p->cubins[p->ncubins++];
    c->name = arena_strdup(r->a, key + 6);
    c->data = arena_alloc(r->a, n + 1);
    memcpy(c->data, d, n);
    c->size = n;
  }
  return true;
}

static bool read_header(Reader *r, json_t *root, XProgram *p) {
  char *format;
  int64_t version;
  if (!get_str(r, root, "header", "format", &format)) return false;
  if (strcmp(format, "irepa-program")) return bad(r, "header", "format is not irepa-program");
  if (!get_int(r, root, "header", "version", 0, INT32_MAX, &version)) return false;
  if (version != IRX_VERSION)
    return rt_fail(r->err, "%s: program format version %lld; this build reads version %d (recompile with irepac)",
                   r->file, (long long)version, IRX_VERSION);
  json_t *params = field(r, root, "header", "params", JSON_ARRAY), *entries = field(r, root, "header", "entries", JSON_ARRAY);
  json_t *blobs = field(r, root, "header", "blobs", JSON_OBJECT);
  if (!params || !entries || !blobs || !get_str(r, root, "header", "compiler", &p->compiler) ||
      !get_str(r, root, "header", "source", &p->source) || !get_str(r, root, "header", "model", &p->model) ||
      !get_str(r, root, "header", "source_fnv1a64", &p->source_hash))
    return false;
  p->params.n = p->params.cap = (int)json_array_size(params);
  p->params.items = arena_alloc(r->a, sizeof(ParamInfo) * (size_t)(p->params.n + 1));
  for (int i = 0; i < p->params.n; i++)
    if (!read_param(r, json_array_get(params, (size_t)i), arena_printf(r->a, "params[%d]", i), &p->params.items[i]))
      return false;
  p->nentries = (int)json_array_size(entries);
  p->entries = arena_alloc(r->a, sizeof(XEntry) * (size_t)(p->nentries + 1));
  for (int i = 0; i < p->nentries; i++)
    if (!read_entry(r, json_array_get(entries, (size_t)i), i, p->params.n, &p->entries[i])) return false;
  return read_sources(r, blobs, p);
}

bool irx_is_irx(const unsigned char *data, size_t len) { return len >= 8 && !memcmp(data, IRX_MAGIC, 8); }

bool irx_parse(const unsigned char *data, size_t len, const char *name, XProgram *out, RtError *err) {
  memset(out, 0, sizeof *out);
  arena_init(&out->arena);
  if (!irx_is_irx(data, len)) return rt_fail(err, "%s: not an irepa program (.irx): bad magic bytes", name);
  if (len < IRX_HEADER_BYTES + 8) return rt_fail(err, "%s: truncated: %zu bytes", name, len);
  uint32_t version = (uint32_t)(get_u64(data + 8) & 0xFFFFFFFFu);
  if (version != IRX_VERSION) /* a later layout may differ past this point */
    return rt_fail(err, "%s: program format version %u; this build reads version %d (recompile with irepac)", name,
                   version, IRX_VERSION);
  uint64_t hlen = get_u64(data + 16), blen = get_u64(data + 24);
  if (hlen > len || blen > len || IRX_HEADER_BYTES + hlen + blen + 8 != len)
    return rt_fail(err, "%s: truncated or padded: the header promises %llu bytes, the file has %zu", name,
                   (unsigned long long)(IRX_HEADER_BYTES + hlen + blen + 8), len);
  if (fnv1a(data, len - 8) != get_u64(data + len - 8))
    return rt_fail(err, "%s: damaged: checksum mismatch", name);
  json_error_t je;
  json_t *root = json_loadb((const char *)data + IRX_HEADER_BYTES, hlen, 0, &je);
  if (!root) return rt_fail(err, "%s: header is not JSON: %s (position %d)", name, je.text, je.position);
  Reader r = {name, err, &out->arena, data + IRX_HEADER_BYTES + hlen, blen, &out->params};
  bool ok = read_header(&r, root, out);
  json_decref(root);
  if (!ok) irx_free(out);
  return ok;
}

bool irx_load(const char *path, XProgram *out, RtError *err) {
  memset(out, 0, sizeof *out);
  struct stat st;
  if (stat(path, &st) != 0) return rt_fail(err, "%s: cannot read: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode)) return rt_fail(err, "%s: not a regular file", path);
  FILE *f = fopen(path, "rb");
  if (!f) return rt_fail(err, "%s: cannot read: %s", path, strerror(errno));
  unsigned char *data = malloc((size_t)st.st_size + 1);
  bool ok = data && fread(data, 1, (size_t)st.st_size, f) == (size_t)st.st_size;
  fclose(f);
  if (!ok) {
    free(data);
    return rt_fail(err, "%s: cannot read: %s", path, data ? "short read" : "out of memory");
  }
  ok = irx_parse(data, (size_t)st.st_size, path, out, err);
  free(data);
  return ok;
}

void irx_free(XProgram *p) { arena_free(&p->arena); memset(p, 0, sizeof *p); }

const XEntry *irx_entry(const XProgram *p, const char *name) {
  for (int i = 0; i < p->nentries; i++)
    if (!strcmp(p->entries[i].name, name)) return &p->entries[i];
  return NULL;
}
