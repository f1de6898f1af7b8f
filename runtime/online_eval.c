/* online_eval.c: see online_eval.h. */
#include "online_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

int64_t online_eval_label(int64_t i, int64_t num_images, int64_t num_classes) {
  int64_t per = num_images / num_classes;
  return per > 0 && i < per * num_classes ? i / per : 0;
}

/* Samples first .. first + n - 1 into u8 (NHWC, rounded as the reference's
 * round(clip(255 (x + 1) / 2, 0, 255))). */
static bool sample_batch(Trainer *model, const OnlineEvalOptions *o, int64_t first, int64_t n, uint8_t *u8,
                         RtError *err) {
  int64_t shape[4] = {n, o->channels, o->side, o->side};
  Tensor *x = tensor_new("x", DT_F64, 4, shape, err), *y = x ? tensor_new("y", DT_I64, 1, &n, err) : NULL;
  SamplerModel m = {model, true, NULL, NULL};
  bool ok = y != NULL;
  if (ok) {
    sampler_initial_noise(x, o->seed, first);
    for (int64_t i = 0; i < n; i++)
      tensor_set(y, i, (double)online_eval_label(first + i, o->num_images, o->num_classes));
    ok = sampler_run(&m, &o->sampler, x, y, o->seed, first, NULL, err);
  }
  if (ok) sampler_to_uint8(x, true, u8);
  tensor_free(x);
  tensor_free(y);
  return ok;
}

bool online_eval_run(Trainer *model, const OnlineEvalOptions *o, EvalScores *scores, RtError *err) {
  int64_t per = o->channels * o->side * o->side;
  uint8_t *u8 = malloc((size_t)(o->num_images * per));
  if (!u8) return rt_fail(err, "online evaluation: no memory for %lld samples", (long long)o->num_images);
  bool ok = true;
  double t0 = monotonic_seconds();
  for (int64_t first = 0; ok && first < o->num_images; first += o->batch) {
    int64_t n = o->num_images - first < o->batch ? o->num_images - first : o->batch;
    ok = sample_batch(model, o, first, n, u8 + first * per, err);
    fprintf(stderr, "\rtrain: online evaluation: %lld/%lld samples, %.1f samples/s   ", (long long)(first + n),
            (long long)o->num_images, (double)(first + n) / (monotonic_seconds() - t0 + 1e-9));
  }
  fputc('\n', stderr);
  ok = ok && eval_images(o->features, o->weights, o->backend, u8, o->num_images, o->side, o->side, o->channels,
                         o->reference, scores, err);
  free(u8);
  return ok;
}

void online_eval_tag(const char *metric, double cfg, int64_t side, const char *features, char *buf, size_t size) {
  /* Python's str() of a float: 1.0, 2.9 */
  char c[32];
  /* whole numbers with ".0"; otherwise the shortest digits that read back exactly */
  snprintf(c, sizeof c, fabs(cfg) < 1e15 ? "%.1f" : "%.17g", cfg);
  for (int digits = 1; digits <= 17 && cfg != floor(cfg); digits++) {
    snprintf(c, sizeof c, "%.*g", digits, cfg);
    if (strtod(c, NULL) == cfg) break;
  }
  snprintf(buf, size, "%s_cfg%s_res%lld_%s", metric, c, (long long)side, features);
}
