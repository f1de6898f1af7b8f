/* train_cmd.h: the training commands of irepa-run (train_sit.c,
 * train_encoder.c) and what they share. Each returns the exit status:
 * 0 done, 1 a failure on the way (bad data, a non-finite loss with
 * --on-nan stop), 2 bad usage. */
#ifndef IREPA_TRAIN_CMD_H
#define IREPA_TRAIN_CMD_H

#include <stddef.h>

#include "trainer.h"

int train_command(int argc, char **argv);          /* irepa-run train */
int train_encoder_command(int argc, char **argv);  /* irepa-run train-encoder */

/* CPU threads of the kernels and of BLAS (0: all cores). */
void train_set_threads(int n);
/* models/encoders/fmnist_vit.irg compiled with its training step and the
 * entries loss, features, pooled and logits. */
bool train_encoder_program(Trainer *t, const char *backend, RtError *err);
/* Weights by name from a safetensors file (every weight must be there). */
bool train_load_weights(Trainer *t, const char *path, RtError *err);
/* OUTPUT_DIR/encoders/fmnist-vit.safetensors */
const char *train_default_encoder_path(const char *output_dir, char *buf, size_t size);

#endif
