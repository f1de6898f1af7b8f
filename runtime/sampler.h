/* sampler.h: the samplers of the reference's ldm (spec/sampling_and_eval.md
 * §1) on a SiT compiled with the sampler entries of models/sit.irg: ODE
 * Euler and Heun, SDE Euler-Maruyama, classifier-free guidance with a
 * guidance interval; and JiT's (§3, SAMPLER_JIT, models/jit.irg). Each
 * step is one entry of the model (euler_step, heun_step, sde_step and
 * their `_cfg` twins, which run the network on the doubled batch [x; x]
 * with labels [y; null]); the state stays in f64 and this file only walks
 * the time grid, picks the entry of each step and feeds it tensors.
 *
 * Randomness is keyed by sample, never by batch: sample i's initial noise,
 * its label and its SDE noise at step k are functions of (seed, i[, k])
 * (Philox, runtime/rng.h), so any subset of a run regenerates the same
 * samples whatever the batch size or the split across processes. */
#ifndef IREPA_SAMPLER_H
#define IREPA_SAMPLER_H

#include "trainer.h"

/* SAMPLER_JIT: JiT's ODE (models/jit.irg, docs/jit.md), Euler or Heun on
 * the grid linspace(0, 1, K + 1) upward, guidance off where t_cur >= high
 * or (low != 0 and t_cur <= low). */
typedef enum { SAMPLER_ODE, SAMPLER_SDE, SAMPLER_JIT } SamplerMode;

typedef struct {
  SamplerMode mode;
  bool heun;            /* ODE only: Heun's correction on every step but the last */
  int64_t num_steps;    /* K >= 1: network evaluations per sample (2K - 1 with Heun) */
  double cfg_scale;     /* >= 1; 1 is no guidance */
  double guidance_low;  /* guidance where cfg_scale > 1 and low <= t_cur <= high */
  double guidance_high;
} SamplerOptions;

/* What runs an entry of the model on inputs by name (x, y, t_cur, ...):
 * a compiled model (trainer_run on the trainer's weights, or on its EMA
 * weights with ema), or, where trainer is NULL, run(ctx, ...) (the tests
 * run the interpreter so). The entry's first output is the new state. */
typedef bool (*SamplerRunFn)(void *ctx, const char *entry, const TensorList *inputs, TensorList *out, RtError *err);
typedef struct {
  Trainer *trainer;
  bool ema;
  SamplerRunFn run;
  void *ctx;
} SamplerModel;

/* Called after each step of sampler_run: `done` of `total` steps. */
typedef struct {
  void (*step)(void *ctx, int64_t done, int64_t total);
  void *ctx;
} SamplerProgress;

/* The options of the reference's generate.py (ldm): SDE, 250 steps, no
 * guidance, interval [0, 1]. */
SamplerOptions sampler_defaults(void);
/* The training-time grid's sampler (spec/training.md §3 step 7): Euler
 * ODE, 50 steps, cfg 4.0 on [0, 1]. */
SamplerOptions sampler_training_grid_options(void);
/* Whether o is usable; the message names the option (--num-steps, ...). */
bool sampler_check(const SamplerOptions *o, RtError *err);

/* The entries that sampling with o runs, 1 to SAMPLER_MAX_ENTRIES names
 * into names[0..] (Heun ends on an Euler step; guided and unguided steps
 * where the interval covers part of the grid): the keep list for
 * trainer_compile / trainer_compile_inference. */
enum { SAMPLER_MAX_ENTRIES = 4 };
int sampler_entries(const SamplerOptions *o, const char *names[SAMPLER_MAX_ENTRIES]);

/* The time grid t[0..K], K = num_steps: ODE linspace(1, 0, K + 1); SDE
 * linspace(1, 0.04, K) followed by 0; JiT linspace(0, 1, K + 1). linspace
 * as PyTorch computes it in float64 on the CPU: the first half start +
 * step i, the second half end - step (n - 1 - i), each with one rounding
 * (fused multiply-add). */
void sampler_time_grid(const SamplerOptions *o, double *t);

/* Sample i's starting point, for i = first .. first + n - 1 of x's n
 * (x: f64[n, C, H, W]): N(0, 1) drawn in f32, as the reference draws its
 * latents, held in f64. */
void sampler_initial_noise(Tensor *x, uint64_t seed, int64_t first);
/* Sample i's class label, uniform in [0, num_classes), into y (i64[n]). */
void sampler_labels(Tensor *y, int64_t num_classes, uint64_t seed, int64_t first);
/* New x (f64[n, channels, side, side]) and y (i64[n]) for samples
 * first .. first + n - 1, drawn as above. */
bool sampler_prepare(int64_t first, int64_t n, int64_t channels, int64_t side, int64_t num_classes, uint64_t seed,
                     Tensor **x, Tensor **y, RtError *err);

/* Runs the sampler on the batch: x holds the samples' starting points
 * and receives the samples; y their labels. The SDE's noise for sample
 * first + i at step k is N(0, 1) in f64 keyed by (seed, first + i, k);
 * the last step takes none. progress may be NULL. */
bool sampler_run(const SamplerModel *m, const SamplerOptions *o, Tensor *x, const Tensor *y, uint64_t seed,
                 int64_t first, const SamplerProgress *progress, RtError *err);

/* Samples in [-1, 1] (f64[n, C, H, W]) to uint8 images NHWC into
 * out[n*H*W*C]: cast to f32, as generate.py casts the sampler's output,
 * then png_float_to_u8: clamp(255 (x + 1) / 2, 0, 255) truncated (the
 * .npz samples), or with round 255 (x + 1) / 2 + 0.5 (the training-time
 * grid). NaN becomes 0. */
void sampler_to_uint8(const Tensor *x, bool round, uint8_t *out);

/* The training-time sample grid: samples 0 .. n-1 (n = labels' length)
 * of seed with the given labels, sampled with o by m, rounded to uint8 and
 * written at path as the reference's array2grid lays them out
 * (make_grid, round(sqrt(n)) columns, padding 2). */
bool sampler_write_grid(const SamplerModel *m, const SamplerOptions *o, const Tensor *labels, int64_t channels,
                        int64_t side, uint64_t seed, const char *path, RtError *err);

#endif
