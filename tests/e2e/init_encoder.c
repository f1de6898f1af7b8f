/* init_encoder.c: writes the Fashion-MNIST ViT encoder's weights as
 * initialised from a seed, untrained, for the end-to-end tests that need
 * alignment targets but not good ones (train_cache.sh).
 *   init_encoder OUT.safetensors SEED */
#include <stdio.h>
#include <stdlib.h>

#include "safetensors.h"
#include "train_cmd.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: init_encoder OUT.safetensors SEED\n");
    return 2;
  }
  RtError err;
  Trainer t = {0};
  const char *meta[] = {"format", "irepa-encoder-1", "model", "models/encoders/fmnist_vit.irg", NULL};
  bool ok = train_encoder_program(&t, "c", &err) && trainer_init(&t, strtoull(argv[2], NULL, 10), &err) &&
            st_write(argv[1], t.params.items, t.params.n, meta, &err);
  if (!ok) fprintf(stderr, "init_encoder: %s\n", err.msg);
  trainer_free(&t);
  return ok ? 0 : 1;
}
