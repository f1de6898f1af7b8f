/* sampler.c: the sampling loops of sampler.h. The arithmetic of a step
 * lives in the model's entries (models/sit.irg), so the same loop drives
 * the interpreter, the C kernels and the GPU; here are the time grid, the
 * choice of entry per step, and the keyed random numbers. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pngwrite.h"
#include "rng.h"

/* The SDE grid stops at 0.04 before its last step to 0 (ldm/samplers.py). */
static const double SDE_T_LAST = 0.04;

SamplerOptions sampler_defaults(void) { return (SamplerOptions){SAMPLER_SDE, false, 250, 1.0, 0.0, 1.0}; }

SamplerOptions sampler_training_grid_options(void) { return (SamplerOptions){SAMPLER_ODE, false, 50, 4.0, 0.0, 1.0}; }

bool sampler_check(const SamplerOptions *o, RtError *err) {
  if (o->num_steps < 1 || o->num_steps > 100000)
    return rt_fail(err, "--num-steps %lld: expected 1 to 100000", (long long)o->num_steps);
  if (!(o->cfg_scale >= 1.0) || !isfinite(o->cfg_scale))
    return rt_fail(err, "--cfg-scale %g: must be a finite number >= 1 (1: no guidance)", o->cfg_scale);
  if (!isfinite(o->guidance_low) || !isfinite(o->guidance_high) || o->guidance_low > o->guidance_high)
    return rt_fail(err, "--guidance-low %g, --guidance-high %g: expected low <= high", o->guidance_low,
                   o->guidance_high);
  if (o->heun && o->mode == SAMPLER_SDE) return rt_fail(err, "--heun applies to --mode ode only");
  return true;
}

/* JiT's interval test (jit/denoiser.py): off where t >= high or (low != 0
 * and t <= low). */
static bool guided(const SamplerOptions *o, double t_cur) {
  if (o->mode == SAMPLER_JIT)
    return o->cfg_scale > 1.0 && !(t_cur >= o->guidance_high || (o->guidance_low != 0.0 && t_cur <= o->guidance_low));
  return o->cfg_scale > 1.0 && t_cur <= o->guidance_high && t_cur >= o->guidance_low;
}

/* The entry of step k of K, guided or not. */
static const char *step_entry(const SamplerOptions *o, int64_t k, bool cfg) {
  if (o->mode == SAMPLER_SDE) return cfg ? "sde_step_cfg" : "sde_step";
  if (o->heun && k < o->num_steps - 1) return cfg ? "heun_step_cfg" : "heun_step";
  return cfg ? "euler_step_cfg" : "euler_step";
}

static int add_name(const char *names[SAMPLER_MAX_ENTRIES], int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(names[i], name)) return n;
  names[n] = name;
  return n + 1;
}

int sampler_entries(const SamplerOptions *o, const char *names[SAMPLER_MAX_ENTRIES]) {
  int n = 0;
  double *t = malloc(sizeof(double) * (size_t)(o->num_steps + 1));
  if (t) sampler_time_grid(o, t);
  for (int64_t k = 0; k < o->num_steps; k++)
    for (int cfg = 0; cfg < 2; cfg++) /* where the grid is unknown (no memory), both */
      if (t ? cfg == guided(o, t[k]) : cfg == 0 || o->cfg_scale > 1.0) n = add_name(names, n, step_entry(o, k, cfg));
  free(t);
  return n;
}

/* torch.linspace(start, end, n) in float64, as PyTorch's CPU kernel
 * computes it: symmetric halves, each point one fused multiply-add. */
static void linspace(double start, double end, int64_t n, double *out) {
  if (n == 1) {
    out[0] = start;
    return;
  }
  double step = (end - start) / (double)(n - 1);
  int64_t half = n / 2;
  for (int64_t i = 0; i < n; i++)
    out[i] = i < half ? fma(step, (double)i, start) : fma(-step, (double)(n - 1 - i), end);
}

void sampler_time_grid(const SamplerOptions *o, double *t) {
  int64_t k = o->num_steps;
  if (o->mode == SAMPLER_JIT) {
    linspace(0.0, 1.0, k + 1, t);
    return;
  }
  if (o->mode == SAMPLER_ODE) {
    linspace(1.0, 0.0, k + 1, t);
    return;
  }
  linspace(1.0, SDE_T_LAST, k, t);
  t[k] = 0.0;
}

/* ---- keyed random numbers ------------------------------------------------ */

static uint64_t stream(const char *what) { return rng_fnv1a64(what); }

static int64_t per_sample(const Tensor *x) { return x->rank ? tensor_numel(x) / x->shape[0] : 0; }

void sampler_initial_noise(Tensor *x, uint64_t seed, int64_t first) {
  int64_t d = per_sample(x), total = x->shape[0] * d;
  uint64_t base = (uint64_t)first * (uint64_t)d;
  double *out = x->data;
  float chunk[1024]; /* drawn in pieces: a fill split at matching offsets gives the same values */
  for (int64_t i = 0; i < total; i += 1024) {
    size_t n = (size_t)(total - i < 1024 ? total - i : 1024);
    rng_fill_normal_f32(chunk, n, seed, stream("sample.x1"), base + (uint64_t)i);
    for (size_t j = 0; j < n; j++) out[i + (int64_t)j] = (double)chunk[j];
  }
}

void sampler_labels(Tensor *y, int64_t num_classes, uint64_t seed, int64_t first) {
  int64_t *out = y->data;
  for (int64_t i = 0; i < y->shape[0]; i++) {
    int64_t c = (int64_t)(rng_uniform_f64(seed, stream("sample.label"), (uint64_t)(first + i)) * (double)num_classes);
    out[i] = c < num_classes ? c : num_classes - 1;
  }
}

bool sampler_prepare(int64_t first, int64_t n, int64_t channels, int64_t side, int64_t num_classes, uint64_t seed,
                     Tensor **x, Tensor **y, RtError *err) {
  int64_t xs[4] = {n, channels, side, side};
  *x = tensor_new("x", DT_F64, 4, xs, err);
  *y = *x ? tensor_new("y", DT_I64, 1, &n, err) : NULL;
  if (!*y) {
    tensor_free(*x);
    *x = NULL;
    return false;
  }
  sampler_initial_noise(*x, seed, first);
  sampler_labels(*y, num_classes, seed, first);
  return true;
}

/* The SDE noise of step k for the batch; zeros on the last step. Element
 * j of sample i is element i * d + j of step k's stream. */
static void step_noise(Tensor *noise, int64_t k, int64_t nsteps, uint64_t seed, int64_t first) {
  if (k == nsteps - 1) {
    memset(noise->data, 0, noise->nbytes);
    return;
  }
  uint64_t d = (uint64_t)per_sample(noise);
  rng_fill_normal_f64(noise->data, (size_t)tensor_numel(noise), seed, stream("sample.sde") + (uint64_t)k,
                      (uint64_t)first * d);
}

/* ---- the loop ------------------------------------------------------------- */

static bool run_entry(const SamplerModel *m, const char *entry, const TensorList *in, TensorList *out, RtError *err) {
  if (m->trainer) return trainer_run(m->trainer, entry, in, m->ema, out, err);
  return m->run(m->ctx, entry, in, out, err);
}

static Tensor *scalar(const char *name, RtError *err) { return tensor_new(name, DT_F64, 0, NULL, err); }

typedef struct {
  Tensor *t_cur, *t_next, *cfg, *noise;
} StepInputs;

static void free_inputs(StepInputs *s) {
  tensor_free(s->t_cur);
  tensor_free(s->t_next);
  tensor_free(s->cfg);
  tensor_free(s->noise);
}

static bool add_view(TensorList *l, const char *name, const Tensor *t, RtError *err) {
  Tensor *v = tensor_view(name, t, err);
  if (v && tensorlist_add(l, v, err)) return true;
  tensor_free(v);
  return false;
}

/* One step: x <- entry(x, y, t_cur, t_next[, noise][, cfg_scale]). */
static bool step(const SamplerModel *m, const char *entry, bool cfg, Tensor *x, const Tensor *y, StepInputs *s,
                 RtError *err) {
  TensorList in = {0}, out = {0};
  bool ok = add_view(&in, "x", x, err) && add_view(&in, "y", y, err) && add_view(&in, "t_cur", s->t_cur, err) &&
            add_view(&in, "t_next", s->t_next, err) && (!s->noise || add_view(&in, "noise", s->noise, err)) &&
            (!cfg || add_view(&in, "cfg_scale", s->cfg, err)) && run_entry(m, entry, &in, &out, err);
  if (ok && (out.n < 1 || out.items[0]->dtype != DT_F64 || out.items[0]->nbytes != x->nbytes))
    ok = rt_fail(err, "entry %s: expected the new state f64 like x as its first output", entry);
  if (ok) memcpy(x->data, out.items[0]->data, x->nbytes);
  tensorlist_free(&in);
  tensorlist_free(&out);
  return ok;
}

static bool check_batch(const Tensor *x, const Tensor *y, RtError *err) {
  if (x->dtype != DT_F64 || x->rank != 4)
    return rt_fail(err, "sampler: the state must be f64[n, C, H, W]");
  if (y->dtype != DT_I64 || y->rank != 1 || y->shape[0] != x->shape[0])
    return rt_fail(err, "sampler: the labels must be i64[%lld]", (long long)x->shape[0]);
  return true;
}

bool sampler_run(const SamplerModel *m, const SamplerOptions *o, Tensor *x, const Tensor *y, uint64_t seed,
                 int64_t first, const SamplerProgress *progress, RtError *err) {
  if (!sampler_check(o, err) || !check_batch(x, y, err)) return false;
  int64_t nsteps = o->num_steps;
  double *t = malloc(sizeof(double) * (size_t)(nsteps + 1));
  StepInputs s = {scalar("t_cur", err), scalar("t_next", err), scalar("cfg_scale", err), NULL};
  bool ok = t && s.t_cur && s.t_next && s.cfg ? true : rt_fail(err, "out of memory");
  if (ok && o->mode == SAMPLER_SDE) ok = (s.noise = tensor_new("noise", DT_F64, x->rank, x->shape, err)) != NULL;
  if (ok) {
    sampler_time_grid(o, t);
    tensor_set(s.cfg, 0, o->cfg_scale);
  }
  for (int64_t k = 0; ok && k < nsteps; k++) {
    bool cfg = guided(o, t[k]);
    tensor_set(s.t_cur, 0, t[k]);
    tensor_set(s.t_next, 0, t[k + 1]);
    if (s.noise) step_noise(s.noise, k, nsteps, seed, first);
    ok = step(m, step_entry(o, k, cfg), cfg, x, y, &s, err);
    if (ok && progress && progress->step) progress->step(progress->ctx, k + 1, nsteps);
  }
  free_inputs(&s);
  free(t);
  return ok;
}

/* ---- images --------------------------------------------------------------- */

void sampler_to_uint8(const Tensor *x, bool round, uint8_t *out) {
  int64_t n = x->shape[0], c = x->shape[1], hw = x->shape[2] * x->shape[3];
  const double *in = x->data;
  for (int64_t i = 0; i < n; i++)
    for (int64_t ch = 0; ch < c; ch++)
      for (int64_t p = 0; p < hw; p++)
        out[(i * hw + p) * c + ch] =
            png_float_to_u8((float)in[(i * c + ch) * hw + p], round ? PNG_U8_ROUND : PNG_U8_TRUNCATE);
}

bool sampler_write_grid(const SamplerModel *m, const SamplerOptions *o, const Tensor *labels, int64_t channels,
                        int64_t side, uint64_t seed, const char *path, RtError *err) {
  int64_t n = labels->shape[0];
  Tensor *x = NULL, *y = NULL;
  if (!sampler_prepare(0, n, channels, side, 1, seed, &x, &y, err)) return false;
  for (int64_t i = 0; i < n; i++) tensor_set(y, i, tensor_get(labels, i));
  uint8_t *img = malloc((size_t)(n * channels * side * side));
  bool ok = img ? sampler_run(m, o, x, y, seed, 0, NULL, err) : rt_fail(err, "out of memory");
  if (ok) {
    int cols = (int)lround(sqrt((double)n)); /* the reference's array2grid: nrow = round(sqrt(n)) */
    sampler_to_uint8(x, true, img);
    ok = png_write_grid(path, img, n, (int)side, (int)side, (int)channels, cols, 2, err);
  }
  free(img);
  tensor_free(x);
  tensor_free(y);
  return ok;
}
