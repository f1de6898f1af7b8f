/* idx.h: the IDX format of MNIST and Fashion-MNIST (LeCun's: a magic of two
 * zero bytes, a type byte and a rank byte, big-endian u32 dimensions, then
 * the data), plain or gzip-compressed, and the Fashion-MNIST data set built
 * on it: the default training data, from Debian's dataset-fashion-mnist. */
#ifndef IREPA_IDX_H
#define IREPA_IDX_H

#include "tensor.h"

/* Reads an unsigned-byte IDX file (gzip or not) into a u8 tensor of its
 * shape, named `name`. Every fault (missing file, bad magic, another
 * element type, truncated or trailing data) is an error naming the file. */
Tensor *idx_load(const char *path, const char *name, RtError *err);

/* Where Fashion-MNIST is read from: $IREPA_FMNIST_DIR, else Debian's
 * /usr/share/datasets/fashion-mnist. */
const char *fmnist_dir(void);

/* A split ("train": 60,000 images, "t10k": 10,000) as the models take it:
 * "images" f32[N,1,32,32], pixels scaled to [-1, 1] and padded by 2 on each
 * side with -1 (the background), and "labels" i64[N] in [0, 10). */
bool fmnist_load(const char *dir, const char *split, Tensor **images, Tensor **labels, RtError *err);

#endif
