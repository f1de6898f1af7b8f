/* trainer.h: what every training command shares: a model compiled from
 * .irg text with its training step (compiler/optim.h), the weights and
 * the optimiser state, one step at a time, and checkpoints. The commands
 * (train_sit.c, train_encoder.c) add data, logging and their loops. */
#ifndef IREPA_TRAINER_H
#define IREPA_TRAINER_H

#include "exec.h"
#include "flops.h"
#include "optim.h"

typedef struct {
  double lr, beta1, beta2, eps, weight_decay, max_grad_norm, ema_decay;
} Hyper;

typedef struct {
  XProgram prog;
  const XEntry *step;   /* train_step, or apply_step with gradient accumulation */
  const XEntry *grad;   /* grad_step with gradient accumulation, else NULL */
  Backend *backend;
  TensorList params;    /* the weights, by parameter table name */
  TensorList state;     /* exp_avg.*, exp_avg_sq.*, ema.*, ema2.* and the step's scalars */
  int nloss;            /* outputs of the loss entry, before grad_norm */
  char *irx;            /* the program's bytes, kept for the run folder */
  size_t irx_len;
  FlopCount *flops;     /* per entry of prog, in its order: the graph's FLOPs
                           (compiler/flops.h); NULL for a loaded program */
} Trainer;

/* Where `import "sit.irg"` finds the models: $IREPA_MODELS_DIR, else the
 * source tree's models/ this binary was built from. */
const char *trainer_models_dir(void);

/* Compiles `source` (named `name` in messages) with the training step of
 * `loss_entry`, keeping that step and the entries listed in `keep`, for
 * backend `backend` (c, cuda, cuda-emu or auto), and opens the backend. */
bool trainer_compile(Trainer *t, const char *name, const char *source, const char *loss_entry,
                     const char *const *keep, int nkeep, const char *backend, RtError *err);
/* The same with the step built by options oo (compiler/optim.h): the jit
 * trainer's weight-decay groups and second EMA, gradient accumulation, and
 * bf16 matmuls (oo->autocast), which apply on the CUDA backends only: the
 * C backend computes in f32. */
bool trainer_compile_opt(Trainer *t, const char *name, const char *source, const char *loss_entry,
                         const OptimOptions *oo, const char *const *keep, int nkeep, const char *backend,
                         RtError *err);
/* Finds the compiled step of t->prog: train_step, or grad_step and
 * apply_step with accumulate, and the count of loss outputs; `name`
 * labels the error when they are not there. */
bool trainer_bind_step(Trainer *t, bool accumulate, const char *name, RtError *err);
/* Compiles `source` without a training step, keeping only the entries in
 * `keep` (the sampler's, say), for inference: t->step is NULL, and
 * trainer_init then makes the weights alone. Each kept entry must exist. */
bool trainer_compile_inference(Trainer *t, const char *name, const char *source, const char *const *keep, int nkeep,
                               const char *backend, RtError *err);
/* Weights by their init rules from `seed`, zero moments, EMA = weights. */
bool trainer_init(Trainer *t, uint64_t seed, RtError *err);
/* One step: `batch` holds the loss entry's inputs; step counts from 1;
 * `seed` keys the step's random ops. out[0..nloss-1] are the loss terms,
 * out[nloss] the gradient norm. A non-finite loss or norm leaves the
 * weights and moments as they were (optim.h). */
bool trainer_step(Trainer *t, const TensorList *batch, int64_t step, const Hyper *h, uint64_t seed, double *out,
                  RtError *err);
/* With gradient accumulation (compiled with OptimOptions.accumulate):
 * one micro-batch's gradients added to grad_acc.*, its loss terms into
 * out[0..nloss-1]; `seed` keys its random ops. */
bool trainer_accumulate(Trainer *t, const TensorList *batch, uint64_t seed, double *out, RtError *err);
/* Then the update from the summed gradients times scale (1 / the
 * micro-batches), which clears the sum; *norm is the gradient norm. A
 * non-finite norm leaves the weights and moments as they were. */
bool trainer_apply(Trainer *t, int64_t step, const Hyper *h, double scale, double *norm, RtError *err);
/* Sets a scalar input of the step that Hyper does not carry (the second
 * EMA's decay, optim_ema2_decay_input) until changed; an error if the
 * step has none by that name. */
bool trainer_set_scalar(Trainer *t, const char *name, double v, RtError *err);
/* Runs another entry on the weights (ema: on the EMA weights instead). */
bool trainer_run(Trainer *t, const char *entry, const TensorList *inputs, bool ema, TensorList *out, RtError *err);
/* Checkpoints: weights under their names, then the state, with metadata
 * (NULL-terminated key, value pairs) plus format and step. Atomic. */
bool trainer_save(const Trainer *t, const char *path, int64_t step, const char *const *meta, RtError *err);
/* Restores weights and state from a checkpoint of the same model; *step
 * is the steps done. */
bool trainer_load(Trainer *t, const char *path, int64_t *step, RtError *err);
/* Reads the weights of a checkpoint of trainer_save into t->params, by
 * the model's parameter names with prefix in front: "ema." (the EMA),
 * "ema2." (a JiT's second EMA) or "" (the online weights). Tensors the model lacks (a projector) are ignored, as
 * the reference loads non-strictly; a missing or mis-shaped one is an
 * error. Without trainer_init before, the weights are made here (no init
 * rules run). *step is the checkpoint's step. */
bool trainer_load_weights(Trainer *t, const char *path, const char *prefix, int64_t *step, RtError *err);
void trainer_free(Trainer *t);

/* The seed of step `step` of a run seeded `seed` (SplitMix64 of both). */
uint64_t trainer_step_seed(uint64_t seed, int64_t step);

#endif
