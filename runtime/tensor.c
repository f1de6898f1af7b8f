/* tensor.c: host tensors, dtype conversions and tensor lists. */
#include "tensor.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool rt_fail(RtError *err, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return false;
}

int64_t tensor_numel(const Tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) n *= t->shape[i];
  return n;
}

Tensor *tensor_new(const char *name, DType dt, int rank, const int64_t *shape, RtError *err) {
  if (rank < 0 || rank > IR_MAX_RANK) {
    rt_fail(err, "tensor '%s': rank %d is not supported", name, rank);
    return NULL;
  }
  int64_t n = 1;
  for (int i = 0; i < rank; i++) {
    if (shape[i] < 0 || mul_overflows(n, shape[i], &n) || n > ((int64_t)1 << 40)) {
      rt_fail(err, "tensor '%s': shape is negative or too large", name);
      return NULL;
    }
  }
  Tensor *t = calloc(1, sizeof *t);
  size_t bytes = (size_t)n * (size_t)dtype_size(dt);
  if (t) {
    t->name = strdup(name);
    t->data = calloc(bytes ? bytes : 1, 1);
  }
  if (!t || !t->name || !t->data) {
    tensor_free(t);
    rt_fail(err, "tensor '%s': out of memory (%zu bytes)", name, bytes);
    return NULL;
  }
  t->dtype = dt;
  t->rank = rank;
  if (rank) memcpy(t->shape, shape, sizeof(int64_t) * (size_t)rank);
  t->nbytes = bytes;
  t->owns_data = true;
  return t;
}

Tensor *tensor_view(const char *name, const Tensor *t, RtError *err) {
  Tensor *v = calloc(1, sizeof *v);
  if (v) *v = *t, v->name = strdup(name), v->owns_data = false;
  if (!v || !v->name) {
    free(v);
    rt_fail(err, "out of memory");
    return NULL;
  }
  return v;
}

void tensor_free(Tensor *t) {
  if (!t) return;
  if (t->owns_data) free(t->data);
  free(t->name);
  free(t);
}

typedef union {
  float f;
  uint32_t u;
} F32Bits;

uint16_t f32_to_bf16(float f) {
  F32Bits b = {.f = f};
  if (isnan(f)) return (uint16_t)((b.u >> 16) | 0x40);
  uint32_t rounding = 0x7FFF + ((b.u >> 16) & 1);
  return (uint16_t)((b.u + rounding) >> 16);
}

float bf16_to_f32(uint16_t h) {
  F32Bits b = {.u = (uint32_t)h << 16};
  return b.f;
}

uint16_t f32_to_f16(float f) {
  F32Bits b = {.f = f};
  uint32_t sign = (b.u >> 16) & 0x8000, x = b.u & 0x7FFFFFFF;
  if (x >= 0x7F800000) return (uint16_t)(sign | 0x7C00 | (x > 0x7F800000 ? 0x200 : 0));
  if (x >= 0x477FF000) return (uint16_t)(sign | 0x7C00); /* overflow to inf */
  if (x < 0x38800000) {                                  /* subnormal or zero */
    if (x < 0x33000000) return (uint16_t)sign;
    uint32_t mant = (x & 0x7FFFFF) | 0x800000;
    int shift = 126 - (int)(x >> 23);
    uint32_t half = mant >> (shift + 1), rem = mant & ((1u << (shift + 1)) - 1);
    uint32_t mid = 1u << shift;
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t r = x - 0x38000000 + 0xFFF + ((x >> 13) & 1);
  return (uint16_t)(sign | (r >> 13));
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  F32Bits b;
  if (exp == 0) {
    float v = ldexpf((float)mant, -24);
    return sign ? -v : v;
  }
  if (exp == 31) b.u = sign | 0x7F800000 | (mant << 13);
  else b.u = sign | ((exp + 112) << 23) | (mant << 13);
  return b.f;
}

/* Elements are read and written with memcpy: tensors mapped from a file
 * may sit at any byte offset, and a misaligned typed access is undefined. */
/* One element of any dtype, for the memcpy in and out. */
typedef union {
  float f;
  double d;
  uint16_t h;
  int32_t i32;
  int64_t i64;
  uint8_t u8;
} Scalar;

double tensor_get(const Tensor *t, int64_t i) {
  const char *p = (const char *)t->data + (size_t)i * (size_t)dtype_size(t->dtype);
  Scalar v;
  memcpy(&v, p, (size_t)dtype_size(t->dtype));
  switch (t->dtype) {
  case DT_F32: return v.f;
  case DT_F64: return v.d;
  case DT_F16: return f16_to_f32(v.h);
  case DT_BF16: return bf16_to_f32(v.h);
  case DT_I32: return v.i32;
  case DT_I64: return (double)v.i64;
  case DT_U8: return v.u8;
  case DT_BOOL: return v.u8 != 0;
  default: return 0;
  }
}

void tensor_set(Tensor *t, int64_t i, double x) {
  char *p = (char *)t->data + (size_t)i * (size_t)dtype_size(t->dtype);
  Scalar v;
  switch (t->dtype) {
  case DT_F32: v.f = (float)x; break;
  case DT_F64: v.d = x; break;
  case DT_F16: v.h = f32_to_f16((float)x); break;
  case DT_BF16: v.h = f32_to_bf16((float)x); break;
  case DT_I32: v.i32 = (int32_t)x; break;
  case DT_I64: v.i64 = (int64_t)x; break;
  case DT_U8: v.u8 = (uint8_t)x; break;
  case DT_BOOL: v.u8 = x != 0; break;
  default: return;
  }
  memcpy(p, &v, (size_t)dtype_size(t->dtype));
}

const char *tensor_type_str(const Tensor *t, char *buf, size_t size) {
  size_t k = (size_t)snprintf(buf, size, "%s[", dtype_name(t->dtype));
  for (int i = 0; i < t->rank && k < size; i++)
    k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? "," : "", (long long)t->shape[i]);
  if (k < size) snprintf(buf + k, size - k, "]");
  return buf;
}

bool tensorlist_add(TensorList *l, Tensor *t, RtError *err) {
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 16;
    Tensor **items = realloc(l->items, sizeof *items * (size_t)cap);
    if (!items) return rt_fail(err, "out of memory");
    l->items = items;
    l->cap = cap;
  }
  l->items[l->n++] = t;
  return true;
}

Tensor *tensorlist_find(const TensorList *l, const char *name) {
  for (int i = 0; i < l->n; i++)
    if (!strcmp(l->items[i]->name, name)) return l->items[i];
  return NULL;
}

void tensorlist_free(TensorList *l) {
  for (int i = 0; i < l->n; i++) tensor_free(l->items[i]);
  free(l->items);
  l->items = NULL;
  l->n = l->cap = 0;
}

bool tensor_dtype_compatible(DType want, DType have) {
  if (dtype_is_float(want)) return dtype_is_float(have);
  if (want == DT_BOOL) return have == DT_BOOL;
  return have == DT_I32 || have == DT_I64 || have == DT_U8;
}

double tensor_rel_error(const Tensor *ref, const Tensor *got) {
  if (tensor_numel(ref) != tensor_numel(got)) return INFINITY;
  double worst = 0, scale = 0;
  for (int64_t i = 0; i < tensor_numel(ref); i++) {
    double r = tensor_get(ref, i), x = tensor_get(got, i);
    scale = fmax(scale, fabs(r));
    worst = fmax(worst, isnan(x) != isnan(r) ? INFINITY : fabs(x - r));
  }
  return scale > 0 ? worst / scale : worst;
}
