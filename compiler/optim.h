/* optim.h: the training step as one entry point. From an entry whose first
 * output is the loss, builds `train_step`: the loss and its gradients, the
 * global gradient-norm clip, AdamW, and the EMA of the weights, with the
 * parameters, the optimiser moments and the EMA updated in place. The
 * runtime only feeds batches and scalars (docs/training.md). */
#ifndef IREPA_OPTIM_H
#define IREPA_OPTIM_H

#include "ir.h"

/* The scalar inputs of a training step, all f64[]: lr, step (the count of
 * this step, from 1), beta1, beta2, eps, weight_decay, max_grad_norm (0: no
 * clipping), ema_decay. */
extern const char *const optim_scalar_inputs[];
enum { OPTIM_NSCALARS = 8 };

/* The scalar input of the second EMA's decay (f64[]), with OptimOptions.nema 2. */
extern const char optim_ema2_decay_input[];

/* How the step is built. The defaults (optim_add_train_step) are ldm's:
 * every trainable parameter decays, one EMA. The jit trainer
 * (spec/training.md §5) exempts 1-D parameters and those named *.bias
 * from weight decay, and keeps two EMAs. */
typedef struct {
  bool decay_1d;   /* weight decay on 1-D parameters and biases too */
  int nema;        /* 1: ema.<name>; 2: also ema2.<name>, decayed by optim_ema2_decay_input */
  bool accumulate; /* gradient accumulation: grad_step and apply_step instead of train_step */
  DType autocast;  /* DT_F32: none; DT_BF16 or DT_F16: the loss entry's matmuls in it (autocast.h) */
  bool loss_scale; /* the loss times optim_loss_scale_input is differentiated (fp16) */
} OptimOptions;

/* With OptimOptions.loss_scale, the scalar input (f64[]) the loss is
 * multiplied by before differentiating, as a GradScaler scales it, so that
 * small gradients survive f16. train_step divides the gradients by it
 * before the norm; with accumulation, apply_step's grad_scale must carry
 * the division (1 / (micro-batches * scale)). */
extern const char optim_loss_scale_input[];

/* With OptimOptions.accumulate, apply_step's scalar input (f64[]) that
 * the summed gradients are multiplied by: 1 / the micro-batches. */
extern const char optim_grad_scale_input[];

/* Appends entry "train_step" to ir, built from entry `loss_entry`:
 *   inputs   the loss entry's, the scalars above, and per parameter
 *            exp_avg.<name>, exp_avg_sq.<name> (trainable ones the loss
 *            reads), ema.<name> (every parameter) and, with
 *            OptimOptions.nema 2, ema_decay2 and ema2.<name>
 *   outputs  the loss entry's outputs, grad_norm (before clipping), then
 *            the updates of the parameters and of those inputs.
 * A step whose loss or gradient norm is not finite changes no parameter
 * or moment (the EMA still moves), as PyTorch's GradScaler skips one. */
bool optim_add_train_step(Arena *a, DiagList *d, IrProgram *ir, const char *loss_entry);
/* The same with options o; {true, 1, false} builds what optim_add_train_step
 * does. With o->accumulate the step is two entries instead, so that the
 * gradients of several micro-batches add up before one update:
 *   grad_step   the loss entry's inputs and grad_acc.<name> per parameter
 *               with a gradient; outputs the loss entry's, then
 *               grad_acc.<name> + gradient, in place;
 *   apply_step  the scalars, grad_scale, grad_acc.* and the state inputs
 *               of train_step; outputs grad_norm, then the updates of
 *               train_step and grad_acc.<name> set to 0. The gradient is
 *               grad_acc * grad_scale; a non-finite norm skips the update. */
bool optim_add_train_step_opt(Arena *a, DiagList *d, IrProgram *ir, const char *loss_entry, const OptimOptions *o);

#endif
