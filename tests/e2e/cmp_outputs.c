/* cmp_outputs.c: compares two safetensors files tensor by tensor, for the
 * end-to-end tests. The error of a tensor is max |a - b| / max |a|.
 *   cmp_outputs EXPECTED.safetensors GOT.safetensors TOLERANCE
 * Exit 0 when every tensor of EXPECTED is in GOT, with the same shape,
 * within TOLERANCE; else 1, naming each one that is not. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: cmp_outputs EXPECTED GOT TOLERANCE\n");
    return 2;
  }
  double tol = atof(argv[3]);
  RtError err;
  StFile *fa = st_open(argv[1], &err), *fb = fa ? st_open(argv[2], &err) : NULL;
  if (!fa || !fb) {
    fprintf(stderr, "cmp_outputs: %s\n", err.msg);
    st_close(fa);
    return 2;
  }
  const TensorList *a = st_tensors(fa), *b = st_tensors(fb);
  int bad = 0;
  for (int i = 0; i < a->n; i++) {
    const Tensor *x = a->items[i], *y = tensorlist_find(b, x->name);
    bool same = y && x->rank == y->rank && !memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->rank);
    double e = same ? tensor_rel_error(x, y) : INFINITY;
    if (!(e <= tol)) {
      printf("%s: %s (error %.3g)\n", x->name, !y ? "missing" : same ? "differs" : "shape differs", e);
      bad++;
    }
  }
  if (!bad) printf("%d tensors agree within %g\n", a->n, tol);
  st_close(fa);
  st_close(fb);
  return bad ? 1 : 0;
}
