/* online_eval.h: the jit trainer's online evaluation (spec/sampling_and_eval.md
 * §4, `--online-eval`, `--evaluate-gen`): sample num_images images with
 * the first EMA's weights and JiT's sampler, labels in class-sorted
 * blocks, then FID and Inception Score as `irepa-run eval` computes them
 * (eval_cmd.h), here on the images in memory instead of a PNG folder. */
#ifndef IREPA_ONLINE_EVAL_H
#define IREPA_ONLINE_EVAL_H

#include "eval_cmd.h"
#include "sampler.h"

typedef struct {
  SamplerOptions sampler;
  int64_t num_images, batch;
  int64_t num_classes, channels, side; /* of the model */
  uint64_t seed;                       /* sample i's noise is keyed by (seed, i), as irepa-run sample's */
  const char *features, *weights, *reference, *backend; /* eval_images' */
} OnlineEvalOptions;

/* Sample i's class: the reference's repeat(arange(C), num_images / C),
 * blocks of num_images / C samples per class, padded with class 0. */
int64_t online_eval_label(int64_t i, int64_t num_images, int64_t num_classes);

/* Samples with model's EMA weights (ema.*) and scores them. */
bool online_eval_run(Trainer *model, const OnlineEvalOptions *o, EvalScores *scores, RtError *err);

/* The name the reference logs a metric under, fid_cfg{cfg}_res{side},
 * with the feature network appended (irepa's numbers are domain metrics):
 * e.g. fid_cfg1.0_res32_fmnist-vit. */
void online_eval_tag(const char *metric, double cfg, int64_t side, const char *features, char *buf, size_t size);

#endif
