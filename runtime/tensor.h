/* tensor.h: host tensors (a name, a dtype, a shape and bytes) and the
 * runtime's error values. Every runtime component reports failure by
 * returning false/NULL with a message in an RtError; nothing exits. */
#ifndef IREPA_TENSOR_H
#define IREPA_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir.h"

typedef struct {
  char msg[1024];
} RtError;

/* Formats the message into err (if not NULL); always returns false. */
bool rt_fail(RtError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct {
  char *name;
  DType dtype;
  int rank;
  int64_t shape[IR_MAX_RANK];
  void *data;
  size_t nbytes;
  bool owns_data;  /* data was malloc'ed for this tensor (else mapped/borrowed) */
} Tensor;

/* A zero-filled tensor; NULL with a message on a bad shape or no memory. */
Tensor *tensor_new(const char *name, DType t, int rank, const int64_t *shape, RtError *err);
void tensor_free(Tensor *t);
/* Another name for t's data, which stays t's (freeing the view frees only
 * the view). */
Tensor *tensor_view(const char *name, const Tensor *t, RtError *err);
int64_t tensor_numel(const Tensor *t);
/* Element i converted to / from double, whatever the dtype. */
double tensor_get(const Tensor *t, int64_t i);
void tensor_set(Tensor *t, int64_t i, double v);
/* Whether data of dtype `have` may stand for a declared `want`, converted:
 * floats for floats, bools for bools, integers for integers. */
bool tensor_dtype_compatible(DType want, DType have);
/* How far got is from ref: max |got - ref| / max |ref| (absolute when ref
 * is all zeros); infinite when the element counts differ or one side has a
 * NaN where the other has not. The numeric tests' one metric. */
double tensor_rel_error(const Tensor *ref, const Tensor *got);
/* "f32[2,3]" into buf. */
const char *tensor_type_str(const Tensor *t, char *buf, size_t size);

/* IEEE half and bfloat16 conversions (round to nearest even). */
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);
float bf16_to_f32(uint16_t h);

/* An ordered set of tensors, looked up by name. */
typedef struct {
  Tensor **items;
  int n, cap;
} TensorList;

bool tensorlist_add(TensorList *l, Tensor *t, RtError *err);
Tensor *tensorlist_find(const TensorList *l, const char *name);
void tensorlist_free(TensorList *l);  /* frees the tensors too */

#endif
