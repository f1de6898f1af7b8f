/* autocast.h: mixed precision the way torch.autocast does it for matrix
 * products: each f32 matmul of an entry reads its operands cast to a low
 * precision (bf16), multiplies in it (f32 accumulation on the GPU, with the
 * result rounded to it) and hands f32 on. Everything else (norms, softmax,
 * losses, the optimiser, the weights) stays f32. Differentiating the
 * rewritten entry makes the backward's matmuls low precision as well. */
#ifndef IREPA_AUTOCAST_H
#define IREPA_AUTOCAST_H

#include "ir.h"

/* Rewrites entry `entry` of ir in place; low is DT_BF16 or DT_F16. */
bool autocast_matmuls(Arena *a, DiagList *d, IrProgram *ir, const char *entry, DType low);

#endif
