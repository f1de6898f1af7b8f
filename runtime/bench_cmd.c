/* bench_cmd.c: `irepa-run bench`, the throughput of one compiled entry.
 * The model is compiled (or a program loaded) through the trainer, as
 * `irepa-run train` and `sample` do, so what is timed is what they run:
 * a training step (trainer_step), a sampler run of one batch over the
 * whole time grid (sampler_run), or one run of any other entry
 * (trainer_run), on random inputs of the entry's shapes. W warm-up
 * iterations, then K timed ones; the report gives the median and spread
 * of their wall time, images per second, the FLOP rate from the
 * compiler's count (compiler/flops.h), MFU against a GPU's peak, and
 * memory. docs/performance.md ("The benchmark") says how to read it. */
#include "bench_cmd.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "cuda_api.h"
#include "rng.h"
#include "sampler.h"
#include "train_cmd.h"
#include "trainer.h"
#include "util.h"

enum { EXIT_FAILED = 1, EXIT_BAD = 2 };

static const char usage[] =
    "usage: irepa-run bench PROGRAM.irx|FILE.irg --batch N [options]\n"
    "\n"
    "Times one entry of a model on random inputs: W warm-up runs, then K timed\n"
    "ones; prints the median and spread of the time per run, images per second,\n"
    "GFLOP/s from the compiler's FLOP count, MFU on a GPU, and memory.\n"
    "\n"
    "options:\n"
    "  --entry NAME        train_step (default): one training step of the loss\n"
    "                      entry (gradients, clipping, AdamW, EMA), as irepa-run\n"
    "                      train runs it; euler_step[_cfg], heun_step[_cfg],\n"
    "                      sde_step[_cfg]: one sampler run of the batch over\n"
    "                      --sample-steps steps; any other entry: one run\n"
    "  --loss NAME         the loss entry of the training step (default train_loss)\n"
    "  --batch N           batch size (required)\n"
    "  --steps K           timed runs (default 10)\n"
    "  --warmup W          untimed runs first (default 2)\n"
    "  --backend B         auto (default), c, cuda or cuda-emu\n"
    "  --threads T         CPU threads (0: all cores)\n"
    "  --sample-steps S    sampler steps per run (default 50)\n"
    "  --cfg-scale X       guidance of the _cfg samplers (default 4)\n"
    "  --peak-tflops P     the device's peak, for MFU (default: known GPUs; none on a CPU)\n"
    "  --seed N            seed of the weights and inputs (default 0)\n"
    "  --json              print one JSON object instead of the report\n";

typedef struct {
  const char *file, *entry, *loss, *backend;
  int64_t batch, steps, warmup, threads, sample_steps, seed;
  double cfg_scale, peak_tflops;
  bool json;
} BenchOptions;

typedef enum { MODE_TRAIN, MODE_SAMPLE, MODE_ENTRY } Mode;

typedef struct {
  BenchOptions o;
  Mode mode;
  SamplerOptions so;
  Trainer t;
  TensorList inputs;    /* training and other entries: the random inputs */
  Tensor *x, *y;        /* sampling: the state and the labels */
  double *out;          /* training: the loss terms and the gradient norm */
  double *times;        /* seconds per timed run */
  double start, compile_s, first_s, startup_s;
  double flops;         /* per run; < 0 where not counted */
  bool loaded;          /* a compiled program, not an .irg compiled here */
  int64_t arena_bytes;  /* the largest arena one run lays out */
  char device[128];
} Bench;

/* ---- options -------------------------------------------------------------- */

static int usage_error(const char *fmt, const char *arg) {
  fputs("irepa-run bench: error: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs(" (see 'irepa-run bench --help')\n", stderr);
  return EXIT_BAD;
}

static bool parse_num(const char *s, double lo, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end || !isfinite(v) || v < lo) return false;
  *out = v;
  return true;
}

static int parse_value(BenchOptions *o, int argc, char **argv, int *i) {
  const char *v;
  struct { const char *name; const char **dst; } strs[] = {
      {"--entry", &o->entry}, {"--loss", &o->loss}, {"--backend", &o->backend}};
  for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++)
    if ((v = cli_option_value(strs[k].name, argc, argv, i))) {
      if (!*v) return usage_error("%s needs a value", strs[k].name);
      *strs[k].dst = v;
      return -1;
    }
  struct { const char *name; int64_t *dst, lo, hi; } ints[] = {
      {"--batch", &o->batch, 1, 1 << 20},       {"--steps", &o->steps, 1, 1000000},
      {"--warmup", &o->warmup, 0, 1000000},     {"--threads", &o->threads, 0, 4096},
      {"--sample-steps", &o->sample_steps, 1, 100000}, {"--seed", &o->seed, 0, INT64_MAX}};
  for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
    if ((v = cli_option_value(ints[k].name, argc, argv, i))) {
      if (!parse_int_in(v, ints[k].lo, ints[k].hi, ints[k].dst)) {
        fprintf(stderr, "irepa-run bench: error: %s: '%s' is not an integer in [%lld, %lld]\n", ints[k].name, v,
                (long long)ints[k].lo, (long long)ints[k].hi);
        return EXIT_BAD;
      }
      return -1;
    }
  if ((v = cli_option_value("--cfg-scale", argc, argv, i)))
    return parse_num(v, 1.0, &o->cfg_scale) ? -1 : usage_error("--cfg-scale: '%s' is not a number >= 1", v);
  if ((v = cli_option_value("--peak-tflops", argc, argv, i)))
    return parse_num(v, 1e-9, &o->peak_tflops) ? -1 : usage_error("--peak-tflops: '%s' is not a number > 0", v);
  if (!strcmp(argv[*i], "--json")) return o->json = true, -1;
  return usage_error("unknown option '%s'", argv[*i]);
}

static int check_options(const BenchOptions *o, int npos) {
  if (npos != 1) return usage_error("%s", "bench needs one PROGRAM.irx or FILE.irg");
  if (!o->batch) return usage_error("%s", "--batch N is required");
  const char *b = o->backend;
  if (strcmp(b, "auto") && strcmp(b, "c") && strcmp(b, "cuda") && strcmp(b, "cuda-emu"))
    return usage_error("unknown backend '%s' (auto, c, cuda, cuda-emu)", b);
  struct stat st;
  if (stat(o->file, &st) != 0 || !S_ISREG(st.st_mode)) {
    fprintf(stderr, "irepa-run bench: error: cannot read '%s': %s\n", o->file,
            stat(o->file, &st) != 0 ? strerror(errno) : "not a regular file");
    return EXIT_BAD;
  }
  return -1;
}

static int parse(BenchOptions *o, int argc, char **argv) {
  *o = (BenchOptions){NULL, "train_step", "train_loss", "auto", 0, 10, 2, 0, 50, 0, 4.0, 0, false};
  int npos = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return fputs(usage, stdout), 0;
    if (argv[i][0] == '-' && argv[i][1]) {
      int rc = parse_value(o, argc, argv, &i);
      if (rc >= 0) return rc;
    } else if (npos++ == 0) {
      o->file = argv[i];
    } else {
      return usage_error("unexpected argument '%s'", argv[i]);
    }
  }
  return check_options(o, npos);
}

/* ---- the model ------------------------------------------------------------ */

/* A sampler entry's options: euler_step, heun_step, sde_step, each with
 * guidance as `_cfg` (on the whole time interval). */
static bool sampler_mode(const BenchOptions *o, SamplerOptions *so) {
  static const char *const names[] = {"euler_step", "heun_step", "sde_step"};
  for (int i = 0; i < 3; i++) {
    size_t n = strlen(names[i]);
    if (strncmp(o->entry, names[i], n) || (o->entry[n] && strcmp(o->entry + n, "_cfg"))) continue;
    bool cfg = o->entry[n] != '\0';
    *so = (SamplerOptions){i == 2 ? SAMPLER_SDE : SAMPLER_ODE, i == 1, o->sample_steps, cfg ? o->cfg_scale : 1.0,
                           0.0, 1.0};
    return true;
  }
  return false;
}

static char *read_file(const char *path, size_t *len, RtError *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return rt_fail(err, "%s: %s", path, strerror(errno)), NULL;
  char *buf = NULL;
  bool ok = fseek(f, 0, SEEK_END) == 0;
  long n = ok ? ftell(f) : -1;
  ok = n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
       fread(buf, 1, (size_t)n, f) == (size_t)n;
  fclose(f);
  if (!ok) {
    free(buf);
    return rt_fail(err, "%s: cannot read", path), NULL;
  }
  buf[n] = '\0';
  *len = (size_t)n;
  return buf;
}

/* The entries a run needs, NULL-free, into names; their count. */
static int needed_entries(const Bench *b, const char *names[SAMPLER_MAX_ENTRIES]) {
  if (b->mode == MODE_SAMPLE) return sampler_entries(&b->so, names);
  names[0] = b->mode == MODE_TRAIN ? "train_step" : b->o.entry;
  return 1;
}

/* A program compiled by irepac: its training step (compile --train) or
 * the entries named; the FLOP counts the file carries (older files: none). */
static bool load_program(Bench *b, const unsigned char *data, size_t len, RtError *err) {
  Trainer *t = &b->t;
  if (!irx_parse(data, len, b->o.file, &t->prog, err) || !(t->backend = backend_open(b->o.backend, err))) return false;
  const char *names[SAMPLER_MAX_ENTRIES];
  int n = needed_entries(b, names);
  for (int i = 0; i < n; i++)
    if (!irx_entry(&t->prog, names[i]))
      return rt_fail(err, "%s has no entry '%s'%s", b->o.file, names[i],
                     b->mode == MODE_TRAIN ? " (compile one in with irepac compile --train LOSS)" : "");
  bool counted = true;
  for (int i = 0; i < t->prog.nentries; i++) counted = counted && t->prog.entries[i].has_flops;
  if (counted && !(t->flops = calloc((size_t)t->prog.nentries + 1, sizeof *t->flops))) return rt_fail(err, "out of memory");
  for (int i = 0; counted && i < t->prog.nentries; i++) t->flops[i] = t->prog.entries[i].flops;
  return b->mode != MODE_TRAIN || trainer_bind_step(t, false, b->o.file, err);
}

static bool compile_model(Bench *b, const char *source, RtError *err) {
  const char *names[SAMPLER_MAX_ENTRIES];
  int n = needed_entries(b, names);
  if (b->mode == MODE_TRAIN)
    return trainer_compile(&b->t, b->o.file, source, b->o.loss, NULL, 0, b->o.backend, err);
  return trainer_compile_inference(&b->t, b->o.file, source, names, n, b->o.backend, err);
}

/* Compiles or loads the model and makes its weights (and optimiser state). */
static bool open_model(Bench *b, RtError *err) {
  size_t len = 0;
  char *data = read_file(b->o.file, &len, err);
  if (!data) return false;
  double t0 = monotonic_seconds();
  b->loaded = irx_is_irx((const unsigned char *)data, len);
  bool ok = b->loaded ? load_program(b, (const unsigned char *)data, len, err) : compile_model(b, data, err);
  b->compile_s = monotonic_seconds() - t0;
  free(data);
  return ok && trainer_init(&b->t, (uint64_t)b->o.seed, err);
}

/* ---- inputs --------------------------------------------------------------- */

/* Labels are drawn below the class count: the rows of the label table
 * (y_embedder.embedding_table.weight in a SiT) less the null class. 1
 * where the model has no such table. */
static int64_t num_classes(const Trainer *t) {
  for (int i = 0; i < t->params.n; i++) {
    const Tensor *p = t->params.items[i];
    if (strstr(p->name, "embedding_table") && p->rank == 2 && p->shape[0] > 1) return p->shape[0] - 1;
  }
  return 1;
}

/* Floats N(0, 1) (a time input "t" U[0, 1), a scalar 1: coefficients
 * and scales), integers labels, booleans false. */
static Tensor *random_input(const Bench *b, const XTensor *spec, uint64_t stream, RtError *err) {
  int64_t shape[IR_MAX_RANK];
  for (int k = 0; k < spec->shape.rank; k++) shape[k] = dim_value(spec->shape.d[k], b->o.batch);
  Tensor *x = tensor_new(spec->name, spec->dtype, spec->shape.rank, shape, err);
  int64_t n = x ? tensor_numel(x) : 0, classes = num_classes(&b->t);
  uint64_t seed = (uint64_t)b->o.seed;
  for (int64_t i = 0; i < n; i++) {
    double v = 0;
    if (spec->dtype == DT_BOOL) v = 0;
    else if (!dtype_is_float(spec->dtype)) v = floor(rng_uniform_f64(seed, stream, i) * (double)classes);
    else if (spec->shape.rank == 0) v = 1.0;
    else v = strcmp(spec->name, "t") ? rng_normal_f64(seed, stream, i) : rng_uniform_f64(seed, stream, i);
    tensor_set(x, i, v);
  }
  return x;
}

/* The inputs of entry e that the caller feeds: all but the trainer's state. */
static bool make_inputs(Bench *b, const XEntry *e, RtError *err) {
  for (int i = 0; i < e->ninputs; i++) {
    if (tensorlist_find(&b->t.state, e->inputs[i].name)) continue;
    Tensor *x = random_input(b, &e->inputs[i], 1000 + (uint64_t)i, err);
    if (!x || !tensorlist_add(&b->inputs, x, err)) return tensor_free(x), false;
  }
  return true;
}

/* Sampling: x [B, C, H, W] as the entry's input x, labels below the class count. */
static bool make_samples(Bench *b, const XEntry *e, RtError *err) {
  const XTensor *x = NULL;
  for (int i = 0; i < e->ninputs; i++)
    if (!strcmp(e->inputs[i].name, "x")) x = &e->inputs[i];
  if (!x || x->shape.rank != 4) return rt_fail(err, "entry %s: no input x [B, C, H, W] to sample", e->name);
  tensor_free(b->x);
  tensor_free(b->y);
  b->x = b->y = NULL;
  return sampler_prepare(0, b->o.batch, x->shape.d[1].n, x->shape.d[2].n, num_classes(&b->t), (uint64_t)b->o.seed,
                         &b->x, &b->y, err);
}

/* ---- FLOPs and memory ----------------------------------------------------- */

static int entry_index(const XProgram *p, const char *name) {
  for (int i = 0; i < p->nentries; i++)
    if (!strcmp(p->entries[i].name, name)) return i;
  return -1;
}

/* FLOPs of one run of entry `name` at the batch size; < 0 without a count. */
static double entry_flops(const Bench *b, const char *name) {
  int i = entry_index(&b->t.prog, name);
  if (!b->t.flops || i < 0) return -1;
  FlopTerm f = flops_total(&b->t.flops[i]);
  return flops_at(f, b->o.batch);
}

/* Per iteration. A sampler run is num_steps entry runs; Heun's last step
 * is an Euler step. */
static double run_flops(const Bench *b) {
  const char *names[SAMPLER_MAX_ENTRIES];
  int n = needed_entries(b, names);
  if (b->mode != MODE_SAMPLE) return entry_flops(b, names[0]);
  double first = entry_flops(b, names[0]), last = entry_flops(b, names[n - 1]);
  int64_t k = b->so.num_steps;
  return first < 0 || last < 0 ? -1 : b->so.heun ? first * (double)(k - 1) + last : first * (double)k;
}

static int64_t arena_bytes(const Bench *b) {
  const char *names[SAMPLER_MAX_ENTRIES];
  int n = needed_entries(b, names);
  int64_t most = 0;
  for (int i = 0; i < n; i++) {
    const XEntry *e = irx_entry(&b->t.prog, names[i]);
    int64_t bytes = e ? e->fixed_bytes + e->per_batch_bytes * b->o.batch : 0;
    most = bytes > most ? bytes : most;
  }
  return most;
}

static int64_t list_bytes(const TensorList *l) {
  int64_t n = 0;
  for (int i = 0; i < l->n; i++) n += (int64_t)l->items[i]->nbytes;
  return n;
}

static int64_t peak_rss_bytes(void) {
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? (int64_t)ru.ru_maxrss * 1024 : -1;
}

/* FP32 peaks (no tensor cores: the kernels and cuBLAS calls are f32), by
 * the device's name; 0 where unknown. */
static double known_peak_tflops(const char *device) {
  static const struct { const char *name; double tflops; } peaks[] = {
      {"H200", 66.9}, {"H100 PCIe", 51.2}, {"H100", 66.9}, {"A100", 19.5}, {"L40S", 91.6}, {"A10", 31.2}};
  for (size_t i = 0; i < sizeof peaks / sizeof peaks[0]; i++)
    if (strstr(device, peaks[i].name)) return peaks[i].tflops;
  return 0;
}

static void find_device(Bench *b) {
  snprintf(b->device, sizeof b->device, "%s", "CPU");
  if (!strcmp(b->t.backend->name, "cuda") && !cu_device_name(0, b->device, sizeof b->device, NULL))
    snprintf(b->device, sizeof b->device, "%s", "GPU 0");
  if (b->o.peak_tflops == 0 && !strcmp(b->t.backend->name, "cuda")) b->o.peak_tflops = known_peak_tflops(b->device);
}

/* ---- the runs ------------------------------------------------------------- */

static bool run_once(Bench *b, int64_t iteration, RtError *err) {
  if (b->mode == MODE_TRAIN) {
    Hyper h = {1e-4, 0.9, 0.999, 1e-8, 0.0, 1.0, 0.9999}; /* irepa-run train's defaults */
    return trainer_step(&b->t, &b->inputs, iteration + 1, &h, trainer_step_seed((uint64_t)b->o.seed, iteration + 1),
                        b->out, err);
  }
  if (b->mode == MODE_SAMPLE) {
    sampler_initial_noise(b->x, (uint64_t)b->o.seed, 0); /* x holds the last run's samples */
    SamplerModel m = {&b->t, false, NULL, NULL};
    return sampler_run(&m, &b->so, b->x, b->y, (uint64_t)b->o.seed, 0, NULL, err);
  }
  TensorList out = {0};
  bool ok = trainer_run(&b->t, b->o.entry, &b->inputs, false, &out, err);
  tensorlist_free(&out);
  return ok;
}

static bool prepare_runs(Bench *b, RtError *err) {
  const char *names[SAMPLER_MAX_ENTRIES];
  needed_entries(b, names);
  const XEntry *e = irx_entry(&b->t.prog, names[0]);
  if (!e) return rt_fail(err, "%s: the program has no entry '%s'", b->o.file, names[0]);
  b->times = calloc((size_t)b->o.steps, sizeof *b->times);
  b->out = calloc((size_t)b->t.nloss + 1, sizeof *b->out);
  if (!b->times || !b->out) return rt_fail(err, "out of memory");
  b->flops = run_flops(b);
  b->arena_bytes = arena_bytes(b);
  find_device(b);
  return b->mode == MODE_SAMPLE ? make_samples(b, e, err) : make_inputs(b, e, err);
}

/* Warm-up runs, then timed ones. The first run's time (kernels loaded,
 * compiled on a cache miss) and the time from the start of the command
 * to its end are kept apart. */
static bool time_runs(Bench *b, RtError *err) {
  int64_t total = b->o.warmup + b->o.steps;
  for (int64_t i = 0; i < total; i++) {
    double t0 = monotonic_seconds();
    if (!run_once(b, i, err)) return false;
    double dt = monotonic_seconds() - t0;
    if (i == 0) b->first_s = dt, b->startup_s = monotonic_seconds() - b->start;
    if (i >= b->o.warmup) b->times[i - b->o.warmup] = dt;
    if (!b->o.json) fprintf(stderr, "\rbench: run %lld/%lld  %.3f s   ", (long long)(i + 1), (long long)total, dt);
  }
  if (!b->o.json) fputc('\n', stderr);
  return true;
}

/* ---- the report ----------------------------------------------------------- */

typedef struct {
  double median, q1, q3, min, max;
} Spread;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The value at fraction f of the sorted values, interpolated linearly
 * (numpy's default percentile). */
static double quantile(const double *v, int64_t n, double f) {
  double pos = f * (double)(n - 1);
  int64_t lo = (int64_t)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
  return v[lo] + (v[hi] - v[lo]) * (pos - (double)lo);
}

static Spread spread(const double *times, int64_t n) {
  double *v = malloc(sizeof(double) * (size_t)n);
  Spread s = {NAN, NAN, NAN, NAN, NAN};
  if (!v) return s;
  memcpy(v, times, sizeof(double) * (size_t)n);
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  s = (Spread){quantile(v, n, 0.5), quantile(v, n, 0.25), quantile(v, n, 0.75), v[0], v[n - 1]};
  free(v);
  return s;
}

static const char *mode_name(Mode m) { return m == MODE_TRAIN ? "train" : m == MODE_SAMPLE ? "sample" : "entry"; }

static json_t *num_or_null(double v, bool ok) { return ok && isfinite(v) ? json_real(v) : json_null(); }

static void print_json(const Bench *b, const Spread *s) {
  double imgs = (double)b->o.batch / s->median, rate = b->flops / s->median;
  bool mfu = b->flops >= 0 && b->o.peak_tflops > 0;
  json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:f}", "file", b->o.file,
                        "entry", b->o.entry, "mode", mode_name(b->mode), "loss", b->mode == MODE_TRAIN ? b->o.loss : "",
                        "batch", (json_int_t)b->o.batch, "backend", b->t.backend->name, "device", b->device, "threads",
                        (json_int_t)b->o.threads, "steps", (json_int_t)b->o.steps, "warmup", (json_int_t)b->o.warmup,
                        b->loaded ? "load_s" : "compile_s", b->compile_s, "first_run_s", b->first_s, "startup_s",
                        b->startup_s);
  json_t *t = json_pack("{s:f, s:f, s:f, s:f, s:f}", "median", s->median, "q1", s->q1, "q3", s->q3, "min", s->min,
                        "max", s->max);
  json_object_set_new(j, "run_s", t);
  json_object_set_new(j, "sample_steps", b->mode == MODE_SAMPLE ? json_integer(b->so.num_steps) : json_null());
  json_object_set_new(j, "img_per_s", json_real(imgs));
  json_object_set_new(j, "flops_per_run", num_or_null(b->flops, b->flops >= 0));
  json_object_set_new(j, "gflop_per_s", num_or_null(rate / 1e9, b->flops >= 0));
  json_object_set_new(j, "peak_tflops", num_or_null(b->o.peak_tflops, b->o.peak_tflops > 0));
  json_object_set_new(j, "mfu", num_or_null(rate / (b->o.peak_tflops * 1e12), mfu));
  json_object_set_new(j, "arena_bytes", json_integer(b->arena_bytes));
  json_object_set_new(j, "param_bytes", json_integer(list_bytes(&b->t.params)));
  json_object_set_new(j, "state_bytes", json_integer(list_bytes(&b->t.state)));
  json_object_set_new(j, "peak_rss_bytes", json_integer(peak_rss_bytes()));
  char *text = json_dumps(j, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
  if (text) puts(text);
  free(text);
  json_decref(j);
}

/* "1.25 GiB", "312.5 MiB" */
static const char *bytes_str(int64_t bytes, char *buf, size_t size) {
  double mib = (double)bytes / (1024.0 * 1024);
  if (mib >= 1024) snprintf(buf, size, "%.2f GiB", mib / 1024);
  else snprintf(buf, size, "%.1f MiB", mib);
  return buf;
}

static void print_flops(const Bench *b, const Spread *s) {
  char per[32], rate[32];
  if (b->flops < 0) {
    printf("  FLOPs        n/a (a program file without the compiler's count; recompile it, or bench the .irg)\n");
    return;
  }
  printf("  FLOPs        %s per run; %s/s achieved\n", flops_format(b->flops, "FLOP", per, sizeof per),
         flops_format(b->flops / s->median, "FLOP", rate, sizeof rate));
  if (b->o.peak_tflops > 0)
    printf("  MFU          %.2f %% of %.1f TFLOP/s (%s, FP32)\n",
           100 * b->flops / s->median / (b->o.peak_tflops * 1e12), b->o.peak_tflops, b->device);
  else
    printf("  MFU          n/a (%s; give --peak-tflops for one)\n",
           strcmp(b->t.backend->name, "cuda") ? "a CPU backend" : "unknown GPU");
}

static void print_report(const Bench *b, const Spread *s) {
  char a[32], p[32], st[32], r[32];
  printf("bench: %s, entry %s", b->o.file, b->o.entry);
  if (b->mode == MODE_TRAIN) printf(" (loss %s)", b->o.loss);
  if (b->mode == MODE_SAMPLE) printf(" (%lld steps, cfg %g)", (long long)b->so.num_steps, b->so.cfg_scale);
  char threads[32] = "all cores";
  if (b->o.threads > 0) snprintf(threads, sizeof threads, "%lld", (long long)b->o.threads);
  printf(", batch %lld, %s backend on %s, threads %s\n", (long long)b->o.batch, b->t.backend->name, b->device,
         threads);
  printf("  %s      %.3f s\n  first run    %.3f s (kernels loaded; compiled on a cache miss)\n",
         b->loaded ? "load   " : "compile", b->compile_s, b->first_s);
  printf("  start-up     %.3f s (command start to the end of the first run)\n", b->startup_s);
  printf("  time per run median %.4f s, IQR %.4f-%.4f s, min %.4f s, max %.4f s (%lld runs after %lld warm-up)\n",
         s->median, s->q1, s->q3, s->min, s->max, (long long)b->o.steps, (long long)b->o.warmup);
  printf("  throughput   %.2f img/s\n", (double)b->o.batch / s->median);
  print_flops(b, s);
  printf("  memory       arena %s, parameters %s, optimiser state %s; peak RSS %s\n",
         bytes_str(b->arena_bytes, a, sizeof a), bytes_str(list_bytes(&b->t.params), p, sizeof p),
         bytes_str(list_bytes(&b->t.state), st, sizeof st), bytes_str(peak_rss_bytes(), r, sizeof r));
}

/* ---- the command ---------------------------------------------------------- */

static void free_bench(Bench *b) {
  tensorlist_free(&b->inputs);
  tensor_free(b->x);
  tensor_free(b->y);
  free(b->out);
  free(b->times);
  trainer_free(&b->t);
}

int bench_command(int argc, char **argv) {
  Bench *b = calloc(1, sizeof *b);
  if (!b) return EXIT_FAILED;
  b->start = monotonic_seconds();
  int rc = parse(&b->o, argc, argv);
  if (rc >= 0) return free(b), rc;
  b->mode = !strcmp(b->o.entry, "train_step") ? MODE_TRAIN : sampler_mode(&b->o, &b->so) ? MODE_SAMPLE : MODE_ENTRY;
  train_set_threads((int)b->o.threads);
  RtError err = {{0}};
  bool ok = open_model(b, &err) && prepare_runs(b, &err) && time_runs(b, &err);
  if (ok) {
    Spread s = spread(b->times, b->o.steps);
    if (b->o.json) print_json(b, &s);
    else print_report(b, &s);
  } else {
    fprintf(stderr, "irepa-run bench: error: %s\n", err.msg);
  }
  free_bench(b);
  free(b);
  return ok ? 0 : EXIT_FAILED;
}
