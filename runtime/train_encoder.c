/* train_encoder.c: `irepa-run train-encoder`, the Fashion-MNIST ViT
 * classifier (models/encoders/fmnist_vit.irg) whose patch tokens are the
 * alignment targets of `irepa-run train` on the default data. AdamW with a
 * short warm-up and a cosine decay, cross-entropy; then its accuracy on
 * the 10,000 test images, saved with the weights. */
#include "train_cmd.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "idx.h"
#include "loader.h"
#include "safetensors.h"
#include "util.h"

static const char usage[] =
    "usage: irepa-run train-encoder [options]\n"
    "\n"
    "Trains the Fashion-MNIST ViT encoder (models/encoders/fmnist_vit.irg) on the\n"
    "60,000 training images and writes its weights and test accuracy.\n"
    "\n"
    "options:\n"
    "  --output FILE         weights to write (default OUTPUT_DIR/encoders/fmnist-vit.safetensors)\n"
    "  --output-dir DIR      (default exps)\n"
    "  --epochs N            passes over the training set (default 2)\n"
    "  --batch-size N        (default 128)\n"
    "  --learning-rate X     peak AdamW learning rate (default 2e-3)\n"
    "  --weight-decay X      AdamW weight decay (default 0.05)\n"
    "  --seed N              initialisation and data order (default 0)\n"
    "  --backend B           auto, c, cuda or cuda-emu (default auto)\n"
    "  --threads N           CPU threads (default 0: all cores)\n"
    "  --overwrite           replace --output if it exists\n";

typedef struct {
  const char *output, *output_dir, *backend;
  int64_t epochs, batch, seed, threads;
  double lr, wd;
  bool overwrite;
} EncOptions;

static int usage_error(const char *fmt, const char *arg) {
  fputs("irepa-run train-encoder: error: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs(" (see 'irepa-run train-encoder --help')\n", stderr);
  return 2;
}

static bool parse_number(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;
  *out = v;
  return true;
}

static int parse(EncOptions *o, int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v;
    double x;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      return 0;
    }
    if (!strcmp(a, "--overwrite")) o->overwrite = true;
    else if ((v = cli_option_value("--output", argc, argv, &i))) o->output = v;
    else if ((v = cli_option_value("--output-dir", argc, argv, &i))) o->output_dir = v;
    else if ((v = cli_option_value("--backend", argc, argv, &i))) o->backend = v;
    else if ((v = cli_option_value("--epochs", argc, argv, &i))) {
      if (!parse_number(v, 1, 1000, &x) || x != floor(x)) return usage_error("--epochs: '%s' is not an integer in 1..1000", v);
      o->epochs = (int64_t)x;
    } else if ((v = cli_option_value("--batch-size", argc, argv, &i))) {
      if (!parse_number(v, 1, 60000, &x) || x != floor(x)) return usage_error("--batch-size: '%s' is not an integer in 1..60000", v);
      o->batch = (int64_t)x;
    } else if ((v = cli_option_value("--seed", argc, argv, &i))) {
      if (!parse_number(v, 0, 1e15, &x) || x != floor(x)) return usage_error("--seed: '%s' is not a non-negative integer", v);
      o->seed = (int64_t)x;
    } else if ((v = cli_option_value("--threads", argc, argv, &i))) {
      if (!parse_number(v, 0, 4096, &x) || x != floor(x)) return usage_error("--threads: '%s' is not an integer in 0..4096", v);
      o->threads = (int64_t)x;
    } else if ((v = cli_option_value("--learning-rate", argc, argv, &i))) {
      if (!parse_number(v, 1e-12, 10, &o->lr)) return usage_error("--learning-rate: '%s' is not a number in (0, 10]", v);
    } else if ((v = cli_option_value("--weight-decay", argc, argv, &i))) {
      if (!parse_number(v, 0, 10, &o->wd)) return usage_error("--weight-decay: '%s' is not a number in [0, 10]", v);
    } else return usage_error("unknown option '%s'", a);
  }
  return -1;
}

/* Linear warm-up over the first 5% of the steps, then a cosine to 0. */
static double schedule(double peak, int64_t step, int64_t total) {
  int64_t warm = total / 20 > 0 ? total / 20 : 1;
  if (step <= warm) return peak * (double)step / (double)warm;
  return peak * 0.5 * (1 + cos(M_PI * (double)(step - warm) / (double)(total - warm)));
}

/* Test accuracy through the loss entry (its second output counts hits). */
static bool accuracy(Trainer *t, const Tensor *images, const Tensor *labels, double *acc, double *loss, RtError *err) {
  Loader *ld = loader_open(images, labels, "x", "y", 500, 0, 0, err);
  if (!ld) return false;
  int64_t n = loader_batches_per_epoch(ld);
  double hits = 0, sum = 0;
  bool ok = true;
  for (int64_t b = 0; ok && b < n; b++) {
    Tensor *x, *y;
    TensorList in = {0}, out = {0};
    ok = loader_next(ld, &x, &y, err) && tensorlist_add(&in, tensor_view("x", x, err), err) &&
         tensorlist_add(&in, tensor_view("y", y, err), err) && trainer_run(t, "loss", &in, false, &out, err);
    if (ok) sum += tensor_get(out.items[0], 0), hits += tensor_get(out.items[1], 0);
    tensorlist_free(&in);
    tensorlist_free(&out);
  }
  loader_close(ld);
  *acc = hits / (double)(n * 500);
  *loss = sum / (double)n;
  return ok;
}

/* The kernels and the GEMMs share the kernel module's OpenMP pool
 * (backend_host.c), which reads this when the first module loads. */
void train_set_threads(int n) {
  if (n <= 0) return;
  char buf[32];
  snprintf(buf, sizeof buf, "%d", n);
  setenv("OMP_NUM_THREADS", buf, 1);
}

static bool train(const EncOptions *o, Trainer *t, const Tensor *images, const Tensor *labels, RtError *err) {
  Loader *ld = loader_open(images, labels, "x", "y", o->batch, (uint64_t)o->seed, 0, err);
  if (!ld) return false;
  int64_t total = o->epochs * loader_batches_per_epoch(ld);
  Hyper h = {o->lr, 0.9, 0.999, 1e-8, o->wd, 1.0, 0.0};
  double t0 = monotonic_seconds(), out[3], ema_loss = 0, hits = 0;
  bool ok = true;
  for (int64_t step = 1; ok && step <= total; step++) {
    Tensor *x, *y;
    TensorList batch = {0};
    h.lr = schedule(o->lr, step, total);
    ok = loader_next(ld, &x, &y, err) && tensorlist_add(&batch, tensor_view("x", x, err), err) &&
         tensorlist_add(&batch, tensor_view("y", y, err), err) &&
         trainer_step(t, &batch, step, &h, trainer_step_seed((uint64_t)o->seed, step), out, err);
    tensorlist_free(&batch);
    if (ok && !isfinite(out[0])) ok = rt_fail(err, "step %lld: the loss is %g", (long long)step, out[0]);
    if (!ok) break;
    ema_loss = step == 1 ? out[0] : 0.98 * ema_loss + 0.02 * out[0];
    hits += out[1];
    double rate = (double)step / (monotonic_seconds() - t0);
    int64_t since = (step - 1) % 20 + 1; /* steps since the last line, whose hits are counted */
    if (step % 20 == 0 || step == total)
      fprintf(stderr, "\rstep %lld/%lld  epoch %lld  loss %.4f  train acc %.3f  %.0f img/s  ETA %dm%02ds   ",
              (long long)step, (long long)total, (long long)((step - 1) / loader_batches_per_epoch(ld) + 1), ema_loss,
              hits / (double)(since * o->batch), rate * (double)o->batch, (int)((double)(total - step) / rate / 60),
              (int)fmod((double)(total - step) / rate, 60));
    if (step % 20 == 0) hits = 0;
  }
  fputc('\n', stderr);
  loader_close(ld);
  return ok;
}

int train_encoder_command(int argc, char **argv) {
  EncOptions o = {NULL, "exps", "auto", 2, 128, 0, 0, 2e-3, 0.05, false};
  int rc = parse(&o, argc, argv);
  if (rc >= 0) return rc;
  char def[2048], dir[2100];
  const char *path = o.output ? o.output : train_default_encoder_path(o.output_dir, def, sizeof def);
  struct stat st;
  if (stat(path, &st) == 0 && !o.overwrite)
    return usage_error("%s exists; pass --overwrite to replace it", path);
  train_set_threads((int)o.threads);
  RtError err = {{0}};
  Trainer t;
  memset(&t, 0, sizeof t);
  Tensor *images = NULL, *labels = NULL, *test_x = NULL, *test_y = NULL;
  double t0 = monotonic_seconds(), acc = 0, test_loss = 0;
  bool ok = train_encoder_program(&t, o.backend, &err) && trainer_init(&t, (uint64_t)o.seed, &err) &&
            fmnist_load(fmnist_dir(), "train", &images, &labels, &err) &&
            fmnist_load(fmnist_dir(), "t10k", &test_x, &test_y, &err);
  if (ok) {
    int64_t n = 0;
    for (int i = 0; i < t.params.n; i++) n += tensor_numel(t.params.items[i]);
    fprintf(stderr, "train-encoder: fmnist_vit, %lld parameters, %s backend, %lld epochs of %lld images, batch %lld\n",
            (long long)n, t.backend->name, (long long)o.epochs, (long long)images->shape[0], (long long)o.batch);
  }
  ok = ok && train(&o, &t, images, labels, &err) && accuracy(&t, test_x, test_y, &acc, &test_loss, &err);
  if (ok) {
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    ok = !slash || rt_make_dirs(dir, 0777, &err);
    char accs[32];
    snprintf(accs, sizeof accs, "%.4f", acc);
    const char *meta[] = {"format", "irepa-encoder-1", "model", "models/encoders/fmnist_vit.irg", "test_accuracy", accs,
                          NULL};
    ok = ok && st_write(path, t.params.items, t.params.n, meta, &err);
  }
  if (ok)
    printf("train-encoder: test accuracy %.2f%% (loss %.4f) on 10,000 images; %.0f s; wrote %s\n", 100 * acc,
           test_loss, monotonic_seconds() - t0, path);
  else fprintf(stderr, "irepa-run train-encoder: error: %s\n", err.msg);
  trainer_free(&t);
  tensor_free(images);
  tensor_free(labels);
  tensor_free(test_x);
  tensor_free(test_y);
  return ok ? 0 : 1;
}
