/* eval_cmd.h: `irepa-run eval` (eval_cmd.c), the ADM-style evaluation of
 * an .npz of samples against a reference. Returns the exit status: 0 done,
 * 1 a failure on the way (a backend that cannot start), 2 bad usage or a
 * bad input (a missing file, a wrong dtype or shape, an empty array,
 * weights of another model). */
#ifndef IREPA_EVAL_CMD_H
#define IREPA_EVAL_CMD_H

#include <stdint.h>

#include "tensor.h"

int eval_command(int argc, char **argv); /* argv[0] is the first argument after "eval" */

/* What an evaluation gives; precision and recall need a reference of
 * images (have_pr), not statistics. */
typedef struct {
  double fid, is_mean, is_std, precision, recall;
  int64_t is_splits, n_samples, n_reference;
  bool have_pr;
} EvalScores;

/* The metrics `irepa-run eval` computes, for n uint8 images [n, h, w, c]
 * in memory (the training's online evaluation): features by the network
 * named (fmnist-vit) with the weights at weights_path, against reference
 * as `eval` takes it (an .npz of images or of mu/sigma, fashion-mnist:test).
 * Inception Score splits of 5000, as ADM. */
/* Whether the network named takes images [h, w, c]; the message says what it takes. */
bool eval_features_fit(const char *features, int64_t h, int64_t w, int64_t c, RtError *err);
/* Whether reference opens as eval_images will read it (before hours of work that end in it). */
bool eval_reference_ok(const char *features, const char *reference, RtError *err);

bool eval_images(const char *features, const char *weights_path, const char *backend, const uint8_t *u8, int64_t n,
                 int64_t h, int64_t w, int64_t c, const char *reference, EvalScores *scores, RtError *err);

#endif
