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

/* Appends entry "train_step" to ir, built from entry `loss_entry`:
 *   inputs   the loss entry's, the scalars above, and per parameter
 *            exp_avg.<name>, exp_avg_sq.<name> (trainable ones the loss
 *            reads) and ema.<name> (every parameter)
 *   outputs  the loss entry's outputs, grad_norm (before clipping), then
 *            the updates of the parameters and of those inputs.
 * A step whose loss or gradient norm is not finite changes no parameter
 * or moment (the EMA still moves), as PyTorch's GradScaler skips one. */
bool optim_add_train_step(Arena *a, DiagList *d, IrProgram *ir, const char *loss_entry);

#endif
