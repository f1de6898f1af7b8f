/* exec.c: one run of an entry point. The arena holds the fixed-size
 * buffers first and then the per-batch ones, whose offsets scale with B,
 * exactly as plan.c laid them out. */
#include "exec.h"
#include "util.h"

#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  Backend *b;
  const XProgram *p;
  const XEntry *e;
  int64_t batch;
  char *arena;
  void **inputs;  /* device addresses */
  void **params;
  Tensor **input_src, **param_src;  /* the caller's tensors */
  Tensor **input_copy, **param_copy;  /* converted or copied stand-ins, or NULL */
  TensorList converted;  /* inputs and parameters converted to their declared dtype */
  RtError *err;
} Run;

static const char *type_str(DType t, const Shape *s, char *buf, size_t size) {
  Arena a;
  arena_init(&a);
  snprintf(buf, size, "%s", ir_type_str(&a, t, s, "B"));
  arena_free(&a);
  return buf;
}

/* Checks t against the declared type (binding the batch size on first
 * sight), as interp.c does, with the same messages. */
static bool check_leaf(Run *r, const char *what, const char *name, DType dt, const Shape *s, const Tensor *t,
                       bool *bound) {
  char want[256], have[256];
  type_str(dt, s, want, sizeof want);
  tensor_type_str(t, have, sizeof have);
  if (!tensor_dtype_compatible(dt, t->dtype) || t->rank != s->rank)
    return rt_fail(r->err, "%s '%s': expected %s, found %s", what, name, want, have);
  for (int k = 0; k < t->rank; k++) {
    Dim d = s->d[k];
    if (d.sym && !*bound && d.n > 0 && t->shape[k] % d.n == 0 && t->shape[k] > 0) {
      r->batch = t->shape[k] / d.n;
      *bound = true;
    }
    if (t->shape[k] != d.n * (d.sym ? r->batch : 1))
      return rt_fail(r->err, "%s '%s': expected %s%s, found %s", what, name, want,
                     d.sym ? " (the batch size is set by the first input)" : "", have);
  }
  return true;
}

static size_t tensor_bytes(const Tensor *t) { return (size_t)tensor_numel(t) * (size_t)dtype_size(t->dtype); }

/* The tensor as the kernels read it: in place on a host backend when the
 * dtype is the declared one and the data aligned, else converted (f64
 * data for an f32 input), copied, and/or uploaded to the device. */
static bool place_leaf(Run *r, const Tensor *t, DType dt, void **dev, Tensor **copy) {
  /* a mapped safetensors file may place data at any byte offset; kernels
   * and BLAS read through typed pointers, so such data is copied */
  bool misaligned = (uintptr_t)t->data % 16 != 0;
  if (t->dtype != dt || (misaligned && r->b->host_memory)) {
    Tensor *c = tensor_new(t->name, dt, t->rank, t->shape, r->err);
    if (!c || !tensorlist_add(&r->converted, c, r->err)) {
      tensor_free(c);
      return false;
    }
    for (int64_t i = 0; i < tensor_numel(t); i++) tensor_set(c, i, tensor_get(t, i));
    t = *copy = c;
  }
  if (r->b->host_memory) {
    *dev = t->data;
    return true;
  }
  return r->b->alloc(r->b, tensor_bytes(t), dev, r->err) && r->b->upload(r->b, *dev, t->data, tensor_bytes(t), r->err);
}

static bool bind_inputs(Run *r, const TensorList *inputs) {
  bool bound = false;
  r->batch = 1;
  for (int i = 0; i < r->e->ninputs; i++) {
    const XTensor *want = &r->e->inputs[i];
    Tensor *t = r->input_src[i] = tensorlist_find(inputs, want->name);
    char buf[256];
    if (!t)
      return rt_fail(r->err, "missing input '%s' (expected %s)", want->name,
                     type_str(want->dtype, &want->shape, buf, sizeof buf));
    if (!check_leaf(r, "input", want->name, want->dtype, &want->shape, t, &bound) ||
        !place_leaf(r, t, want->dtype, &r->inputs[i], &r->input_copy[i]))
      return false;
  }
  return true;
}

static bool uses_param(const XEntry *e, int index) {
  for (int k = 0; k < e->nkernels; k++)
    for (int i = 0; i < e->kernels[k].ninputs; i++)
      if (e->kernels[k].args[i].kind == REF_PARAM && e->kernels[k].args[i].index == index) return true;
  for (int i = 0; i < e->noutputs; i++)
    if (e->output_refs[i].kind == REF_PARAM && e->output_refs[i].index == index) return true;
  return false;
}

static bool bind_params(Run *r, const TensorList *params) {
  bool bound = true; /* parameters have no batch axis */
  for (int i = 0; i < r->p->params.n; i++) {
    if (!uses_param(r->e, i)) continue;
    const ParamInfo *info = &r->p->params.items[i];
    Tensor *t = r->param_src[i] = tensorlist_find(params, info->name);
    char buf[256];
    if (!t)
      return rt_fail(r->err, "missing parameter '%s' (expected %s)", info->name,
                     type_str(info->dtype, &info->shape, buf, sizeof buf));
    if (!check_leaf(r, "parameter", info->name, info->dtype, &info->shape, t, &bound) ||
        !place_leaf(r, t, info->dtype, &r->params[i], &r->param_copy[i]))
      return false;
  }
  return true;
}

static void *address(Run *r, XRef ref) {
  switch (ref.kind) {
  case REF_INPUT: return r->inputs[ref.index];
  case REF_PARAM: return r->params[ref.index];
  default: {
    const XBuffer *b = &r->e->bufs[ref.index];
    return r->arena + (b->per_batch ? r->e->fixed_bytes + b->offset * r->batch : b->offset);
  }
  }
}

/* With IREPA_TRACE_KERNELS set, each kernel's wall time goes to stderr
 * (host backends; on a GPU it measures launches, not execution). */
static bool run_kernels(Run *r, uint64_t seed) {
  void *args[BACKEND_MAX_KERNEL_ARGS];
  bool trace = getenv("IREPA_TRACE_KERNELS") != NULL;
  for (int k = 0; k < r->e->nkernels; k++) {
    const XKernel *K = &r->e->kernels[k];
    if (K->nargs > BACKEND_MAX_KERNEL_ARGS)
      return rt_fail(r->err, "kernel %s has %d arguments; at most %d", K->name, K->nargs, BACKEND_MAX_KERNEL_ARGS);
    for (int i = 0; i < K->nargs; i++) args[i] = address(r, K->args[i]);
    double t0 = trace ? monotonic_seconds() : 0;
    bool ok = K->has_gemm ? r->b->gemm(r->b, K, args, r->batch, r->err)
                          : r->b->kernel(r->b, K, args, r->batch, seed, r->err);
    if (trace) fprintf(stderr, "%s %s %.6f s: %s\n", r->b->name, K->name, monotonic_seconds() - t0, K->ops);
    if (!ok) return false;
  }
  return r->b->finish(r->b, r->err);
}

/* An update was written over the leaf where the kernels read it; a
 * converted stand-in or a device copy goes back to the caller's tensor. */
static bool write_back(Run *r, XRef ref) {
  bool input = ref.kind == REF_INPUT;
  Tensor *dst = input ? r->input_src[ref.index] : r->param_src[ref.index];
  Tensor *copy = input ? r->input_copy[ref.index] : r->param_copy[ref.index];
  if (r->b->host_memory && !copy) return true;
  Tensor *host = copy ? copy : dst;
  if (!r->b->host_memory && !r->b->download(r->b, host->data, address(r, ref), host->nbytes, r->err)) return false;
  if (copy)
    for (int64_t i = 0; i < tensor_numel(dst); i++) tensor_set(dst, i, tensor_get(copy, i));
  return true;
}

static bool collect(Run *r, TensorList *out) {
  for (int i = 0; i < r->e->noutputs; i++) {
    const XTensor *x = &r->e->outputs[i];
    if (r->e->updates[i]) {
      if (!write_back(r, r->e->output_refs[i])) return false;
      continue;
    }
    int64_t shape[IR_MAX_RANK];
    for (int k = 0; k < x->shape.rank; k++) shape[k] = dim_value(x->shape.d[k], r->batch);
    Tensor *t = tensor_new(x->name, x->dtype, x->shape.rank, shape, r->err);
    if (!t) return false;
    if (!r->b->download(r->b, t->data, address(r, r->e->output_refs[i]), t->nbytes, r->err) ||
        !tensorlist_add(out, t, r->err)) {
      tensor_free(t);
      return false;
    }
  }
  return true;
}

static void release_copies(Run *r) {
  if (r->b->host_memory) return;
  for (int i = 0; i < r->e->ninputs; i++)
    if (r->inputs[i]) r->b->release(r->b, r->inputs[i]);
  for (int i = 0; i < r->p->params.n; i++)
    if (r->params[i]) r->b->release(r->b, r->params[i]);
}

bool exec_run(Backend *b, const XProgram *p, const XEntry *e, const TensorList *params, const TensorList *inputs,
              const ExecOptions *opt, TensorList *out, RtError *err) {
  size_t ni = (size_t)e->ninputs + 1, np = (size_t)p->params.n + 1;
  Run r = {b, p, e, 1, NULL, calloc(ni, sizeof(void *)), calloc(np, sizeof(void *)),
           calloc(ni, sizeof(Tensor *)), calloc(np, sizeof(Tensor *)), calloc(ni, sizeof(Tensor *)),
           calloc(np, sizeof(Tensor *)), {0}, err};
  bool ok = r.inputs && r.params && r.input_src && r.param_src && r.input_copy && r.param_copy
                ? true : rt_fail(err, "out of memory");
  ok = ok && b->prepare(b, p, err) && bind_inputs(&r, inputs) && bind_params(&r, params);
  size_t bytes = ok ? (size_t)(e->fixed_bytes + e->per_batch_bytes * r.batch) : 0;
  ok = ok && b->alloc(b, bytes, (void **)&r.arena, err);
  ok = ok && run_kernels(&r, opt ? opt->seed : 0) && collect(&r, out);
  if (r.arena) b->release(b, r.arena);
  if (r.inputs && r.params) release_copies(&r);
  free(r.inputs);
  free(r.params);
  free(r.input_src);
  free(r.param_src);
  free(r.input_copy);
  free(r.param_copy);
  tensorlist_free(&r.converted);
  return ok;
}
