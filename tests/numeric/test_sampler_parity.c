/* test_sampler_parity.c: the samplers (runtime/sampler.c and the sampler
 * entries of models/sit.irg) against the reference's ldm/samplers.py in
 * PyTorch: golden/tiny_sit_samplers.safetensors (tools/gen_sampler_golden.py)
 * holds a tiny SiT's float32 weights, a batch's starting points and
 * labels, and the final samples of each case (ODE Euler and Heun, SDE,
 * with and without guidance on [0.3, 0.8], the cosine path). Our samples
 * must be within 1e-5 (max |ours - ref| / max |ref|) on the C kernels in
 * f32 and on the interpreter in f64; the starting points and labels, drawn
 * by sampler.c's keyed Philox, must equal the golden's bit for bit; and a
 * batch sampled twice must give the same bytes. */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "numeric.h"
#include "safetensors.h"
#include "sampler.h"

static const char *const GOLDEN = "golden/tiny_sit_samplers.safetensors";
static const double BOUND = 1e-5;

typedef struct {
  char name[64], path[16];
  SamplerOptions o;
} Case;

typedef struct {
  StFile *f;
  const TensorList *t;
  int64_t batch, first, channels, side, classes;
  uint64_t seed;
  Case cases[16];
  int ncases;
} Golden;

static int64_t json_int(json_t *o, const char *key) { return (int64_t)json_integer_value(json_object_get(o, key)); }
static double json_num(json_t *o, const char *key) { return json_number_value(json_object_get(o, key)); }

static void load_golden(Golden *g) {
  RtError err;
  memset(g, 0, sizeof *g);
  if (!(g->f = st_open(GOLDEN, &err))) fail_msg("%s", err.msg);
  g->t = st_tensors(g->f);
  json_error_t je;
  json_t *cfg = json_loads(st_metadata(g->f, "config"), 0, &je), *cases = json_loads(st_metadata(g->f, "cases"), 0, &je);
  assert_non_null(cfg);
  assert_non_null(cases);
  g->batch = json_int(cfg, "batch"), g->first = json_int(cfg, "first_index");
  g->channels = json_int(cfg, "in_channels"), g->side = json_int(cfg, "input_size");
  g->classes = json_int(cfg, "num_classes"), g->seed = (uint64_t)json_int(cfg, "global_seed");
  for (size_t i = 0; i < json_array_size(cases) && g->ncases < 16; i++) {
    json_t *c = json_array_get(cases, i);
    Case *k = &g->cases[g->ncases++];
    snprintf(k->name, sizeof k->name, "%s", json_string_value(json_object_get(c, "name")));
    snprintf(k->path, sizeof k->path, "%s", json_string_value(json_object_get(c, "path")));
    k->o.mode = !strcmp(json_string_value(json_object_get(c, "mode")), "ode") ? SAMPLER_ODE : SAMPLER_SDE;
    k->o.heun = json_is_true(json_object_get(c, "heun"));
    k->o.num_steps = json_int(c, "num_steps");
    k->o.cfg_scale = json_num(c, "cfg_scale");
    k->o.guidance_low = json_num(c, "low"), k->o.guidance_high = json_num(c, "high");
  }
  json_decref(cfg);
  json_decref(cases);
  assert_int_equal(g->ncases, 7);
}

static char *model_source(const char *path, int channels) {
  char *s = NULL;
  int n = asprintf(&s,
                   "import \"sit.irg\";\n"
                   "model = SiT(model = \"SiT-S/2\", depth = 2, hidden_size = 64, num_heads = 2, patch_size = 2,\n"
                   "            input_size = 8, in_channels = %d, num_classes = 10, encoder_depth = 1, z_dims = [],\n"
                   "            path_type = \"%s\");\n",
                   channels, path);
  assert_true(n > 0);
  return s;
}

static const char *const ENTRIES[] = {"euler_step", "heun_step", "sde_step",
                                      "euler_step_cfg", "heun_step_cfg", "sde_step_cfg"};
enum { NENTRIES = 6 };

/* The golden's weights into a list of tensors of the model's table. */
static void copy_params(const Golden *g, TensorList *params) {
  for (int i = 0; i < params->n; i++) {
    Tensor *x = params->items[i];
    const Tensor *y = tensorlist_find(g->t, x->name);
    if (!y) fail_msg("golden has no %s", x->name);
    assert_int_equal(tensor_numel(y), tensor_numel(x));
    for (int64_t k = 0; k < tensor_numel(x); k++) tensor_set(x, k, tensor_get(y, k));
  }
}

/* A batch of samples first .. first + n - 1 of the golden's seed. */
static void prepare(const Golden *g, int64_t first, int64_t n, Tensor **x, Tensor **y) {
  RtError err;
  if (!sampler_prepare(first, n, g->channels, g->side, g->classes, g->seed, x, y, &err)) fail_msg("%s", err.msg);
}

/* Rows [from, from + n) of t, as a new f64 tensor. */
static Tensor *rows(const Tensor *t, int64_t from, int64_t n) {
  RtError err;
  int64_t shape[4] = {n, t->shape[1], t->shape[2], t->shape[3]};
  Tensor *r = tensor_new("rows", DT_F64, 4, shape, &err);
  int64_t d = tensor_numel(t) / t->shape[0];
  for (int64_t i = 0; i < n * d; i++) tensor_set(r, i, tensor_get(t, from * d + i));
  return r;
}

static void starting_points_are_keyed_philox(void **state) {
  (void)state;
  Golden g;
  load_golden(&g);
  Tensor *x, *y;
  prepare(&g, g.first, g.batch, &x, &y);
  const Tensor *gx = tensorlist_find(g.t, "x1"), *gy = tensorlist_find(g.t, "y");
  for (int64_t i = 0; i < tensor_numel(x); i++) assert_true(tensor_get(x, i) == tensor_get(gx, i));
  for (int64_t i = 0; i < g.batch; i++) assert_int_equal((int64_t)tensor_get(y, i), (int64_t)tensor_get(gy, i));
  /* a later sample alone draws the same */
  Tensor *x1, *y1;
  prepare(&g, g.first + 2, 1, &x1, &y1);
  Tensor *want = rows(x, 2, 1);
  assert_memory_equal(x1->data, want->data, x1->nbytes);
  assert_int_equal((int64_t)tensor_get(y1, 0), (int64_t)tensor_get(y, 2));
  tensor_free(want), tensor_free(x), tensor_free(y), tensor_free(x1), tensor_free(y1);
  st_close(g.f);
}

static double check_case(const Golden *g, const Case *c, const SamplerModel *m, const char *backend) {
  RtError err;
  Tensor *x, *y;
  prepare(g, g->first, g->batch, &x, &y);
  if (!sampler_run(m, &c->o, x, y, g->seed, g->first, NULL, &err)) fail_msg("%s: %s", c->name, err.msg);
  char key[96];
  snprintf(key, sizeof key, "%s.sample", c->name);
  double e = tensor_rel_error(tensorlist_find(g->t, key), x);
  printf("   %-7s %-16s %2lld steps: max rel error %.2e\n", backend, c->name, (long long)c->o.num_steps, e);
  tensor_free(x);
  tensor_free(y);
  return e;
}

static void c_kernels_match_pytorch(void **state) {
  (void)state;
  Golden g;
  load_golden(&g);
  double worst = 0;
  const char *paths[] = {"linear", "cosine"};
  for (int p = 0; p < 2; p++) {
    RtError err;
    Trainer t;
    char *src = model_source(paths[p], 4);
    if (!trainer_compile_inference(&t, "samplers.irg", src, ENTRIES, NENTRIES, "c", &err) ||
        !trainer_init(&t, 0, &err))
      fail_msg("%s", err.msg);
    free(src);
    copy_params(&g, &t.params);
    SamplerModel m = {&t, false, NULL, NULL};
    for (int i = 0; i < g.ncases; i++)
      if (!strcmp(g.cases[i].path, paths[p])) worst = fmax(worst, check_case(&g, &g.cases[i], &m, "c"));
    trainer_free(&t);
  }
  assert_true(worst <= BOUND);
  st_close(g.f);
}

/* The interpreter as a SamplerModel: one traced graph per entry. */
typedef struct {
  Compiled c[NENTRIES];
  TensorList params;
} Interp;

static bool interp_entry(void *ctx, const char *entry, const TensorList *inputs, TensorList *out, RtError *err) {
  Interp *in = ctx;
  for (int i = 0; i < NENTRIES; i++)
    if (!strcmp(ENTRIES[i], entry)) {
      InterpOptions opt = {INTERP_F64, 0};
      return interp_run(in->c[i].g, &in->c[i].prog.params, &in->params, inputs, &opt, out, err);
    }
  return rt_fail(err, "no entry %s", entry);
}

static void interpreter_matches_pytorch(void **state) {
  (void)state;
  Golden g;
  load_golden(&g);
  double worst = 0;
  const char *paths[] = {"linear", "cosine"};
  for (int p = 0; p < 2; p++) {
    Interp in = {0};
    char *src = model_source(paths[p], 4);
    for (int i = 0; i < NENTRIES; i++)
      if (!nt_compile(&in.c[i], src, ENTRIES[i], false, NULL)) fail_msg("%s does not compile", ENTRIES[i]);
    free(src);
    if (!nt_make_params(&in.c[0], 0, &in.params)) fail_msg("no parameters");
    copy_params(&g, &in.params);
    SamplerModel m = {NULL, false, interp_entry, &in};
    for (int i = 0; i < g.ncases; i++)
      if (!strcmp(g.cases[i].path, paths[p])) worst = fmax(worst, check_case(&g, &g.cases[i], &m, "interp"));
    tensorlist_free(&in.params);
    for (int i = 0; i < NENTRIES; i++) nt_free(&in.c[i]);
  }
  assert_true(worst <= BOUND);
  st_close(g.f);
}

/* A batch sampled twice gives the same bytes. The same samples in batches
 * of other sizes differ in the last bits only: BLAS takes other paths for
 * other matrix sizes (OpenBLAS's sgemm for a few rows, as in [n, D] @ W).
 * So irepa-run sample draws samples in batches aligned to the batch size
 * (sample_cmd.c), and a subset regenerates the same bytes. */
static void samples_are_deterministic(void **state) {
  (void)state;
  Golden g;
  load_golden(&g);
  RtError err;
  Trainer t;
  char *src = model_source("linear", 4);
  if (!trainer_compile_inference(&t, "samplers.irg", src, ENTRIES, NENTRIES, "c", &err) || !trainer_init(&t, 0, &err))
    fail_msg("%s", err.msg);
  free(src);
  copy_params(&g, &t.params);
  SamplerModel m = {&t, false, NULL, NULL};
  const Case *c = NULL;
  for (int i = 0; i < g.ncases; i++)
    if (!strcmp(g.cases[i].name, "sde_cfg")) c = &g.cases[i];
  assert_non_null(c);
  Tensor *all, *ya, *again, *yb, *two, *y2, *one, *y1;
  prepare(&g, g.first, 3, &all, &ya);
  prepare(&g, g.first, 3, &again, &yb);
  prepare(&g, g.first + 1, 2, &two, &y2);
  prepare(&g, g.first + 2, 1, &one, &y1);
  if (!sampler_run(&m, &c->o, all, ya, g.seed, g.first, NULL, &err) ||
      !sampler_run(&m, &c->o, again, yb, g.seed, g.first, NULL, &err) ||
      !sampler_run(&m, &c->o, two, y2, g.seed, g.first + 1, NULL, &err) ||
      !sampler_run(&m, &c->o, one, y1, g.seed, g.first + 2, NULL, &err))
    fail_msg("%s", err.msg);
  assert_memory_equal(all->data, again->data, all->nbytes);
  Tensor *last2 = rows(all, 1, 2), *last1 = rows(all, 2, 1);
  double e2 = tensor_rel_error(last2, two), e1 = tensor_rel_error(last1, one);
  printf("   the same samples in a batch of 2: %.2e, alone: %.2e (vs a batch of 3)\n", e2, e1);
  assert_true(e2 <= 1e-6 && e1 <= 1e-6);
  Tensor *ts[] = {all, ya, again, yb, two, y2, one, y1, last2, last1};
  for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) tensor_free(ts[i]);
  trainer_free(&t);
  st_close(g.f);
}

/* What --sample-every in training does: the training program compiled
 * with the grid's sampler entries kept, sampled on the EMA weights, a PNG
 * grid written (4 samples: 2x2 cells of 8 + 2 padding, plus 2). */
static void training_grid_is_written(void **state) {
  (void)state;
  RtError err;
  Trainer t;
  SamplerOptions o = sampler_training_grid_options();
  o.num_steps = 3;
  const char *names[SAMPLER_MAX_ENTRIES];
  int n = sampler_entries(&o, names);
  char *src = model_source("linear", 1); /* grey: a PNG has 1 or 3 channels */
  if (!trainer_compile(&t, "train.irg", src, "train_loss", names, n, "c", &err) || !trainer_init(&t, 1, &err))
    fail_msg("%s", err.msg);
  free(src);
  int64_t four = 4;
  Tensor *labels = tensor_new("y", DT_I64, 1, &four, &err);
  for (int i = 0; i < 4; i++) tensor_set(labels, i, i);
  char dir[] = "/tmp/irepa-grid-XXXXXX", path[64];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/grid.png", dir);
  SamplerModel m = {&t, true, NULL, NULL};
  if (!sampler_write_grid(&m, &o, labels, 1, 8, 0, path, &err)) fail_msg("%s", err.msg);
  FILE *f = fopen(path, "rb");
  unsigned char head[24];
  assert_non_null(f);
  assert_int_equal(fread(head, 1, 24, f), 24);
  fclose(f);
  assert_memory_equal(head + 1, "PNG", 3);
  assert_int_equal((head[16] << 24 | head[17] << 16 | head[18] << 8 | head[19]), 22); /* IHDR width */
  remove(path);
  rmdir(dir);
  tensor_free(labels);
  trainer_free(&t);
}

static void time_grids(void **state) {
  (void)state;
  double t[11];
  SamplerOptions o = sampler_defaults();
  o.mode = SAMPLER_ODE, o.num_steps = 10;
  sampler_time_grid(&o, t);
  assert_true(t[0] == 1.0 && t[10] == 0.0 && t[5] == 0.5);
  for (int k = 0; k < 10; k++) assert_true(fabs(t[k] - (1.0 - k / 10.0)) < 1e-15);
  o.mode = SAMPLER_SDE;
  sampler_time_grid(&o, t);
  assert_true(t[0] == 1.0 && t[9] == 0.04 && t[10] == 0.0);
  o.num_steps = 1;
  sampler_time_grid(&o, t);
  assert_true(t[0] == 1.0 && t[1] == 0.0);
}

static void options_and_entries(void **state) {
  (void)state;
  RtError err;
  const char *names[SAMPLER_MAX_ENTRIES];
  SamplerOptions o = sampler_defaults();
  assert_true(sampler_check(&o, &err));
  assert_int_equal(sampler_entries(&o, names), 1);
  assert_string_equal(names[0], "sde_step");
  o.cfg_scale = 0.5;
  assert_false(sampler_check(&o, &err));
  assert_non_null(strstr(err.msg, "--cfg-scale"));
  o = sampler_training_grid_options(); /* guided on the whole grid */
  assert_int_equal(sampler_entries(&o, names), 1);
  assert_string_equal(names[0], "euler_step_cfg");
  o.guidance_high = 0.7;
  assert_int_equal(sampler_entries(&o, names), 2);
  assert_string_equal(names[0], "euler_step");
  assert_string_equal(names[1], "euler_step_cfg");
  o.heun = true; /* the last step (t = 0.02) is an Euler step, guided */
  assert_int_equal(sampler_entries(&o, names), 3);
  assert_string_equal(names[0], "heun_step");
  assert_string_equal(names[1], "heun_step_cfg");
  assert_string_equal(names[2], "euler_step_cfg");
  o.mode = SAMPLER_SDE;
  assert_false(sampler_check(&o, &err));
  assert_non_null(strstr(err.msg, "--heun"));
  o = sampler_defaults();
  o.num_steps = 0;
  assert_false(sampler_check(&o, &err));
  o = sampler_defaults();
  o.guidance_low = 0.8, o.guidance_high = 0.2;
  assert_false(sampler_check(&o, &err));
}

/* generate.py's uint8: (x + 1) / 2, clamp(255 x, 0, 255), truncated. */
static void images_as_generate_py(void **state) {
  (void)state;
  RtError err;
  int64_t shape[4] = {1, 2, 1, 4};
  Tensor *x = tensor_new("x", DT_F64, 4, shape, &err);
  const double v[8] = {-1.0, 1.0, 0.0, 2.0, NAN, -0.999, 0.99, -5.0};
  for (int i = 0; i < 8; i++) tensor_set(x, i, v[i]);
  uint8_t out[8], rounded[8];
  sampler_to_uint8(x, false, out);
  sampler_to_uint8(x, true, rounded);
  /* NHWC: pixel p's channels 0 and 1 are v[p] and v[4 + p] */
  const uint8_t want[8] = {0, 0, 255, 0, 127, 253, 255, 0};
  const uint8_t want_rounded[8] = {0, 0, 255, 0, 128, 254, 255, 0};
  assert_memory_equal(out, want, 8);
  assert_memory_equal(rounded, want_rounded, 8);
  tensor_free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(time_grids),
      cmocka_unit_test(options_and_entries),
      cmocka_unit_test(images_as_generate_py),
      cmocka_unit_test(starting_points_are_keyed_philox),
      cmocka_unit_test(c_kernels_match_pytorch),
      cmocka_unit_test(interpreter_matches_pytorch),
      cmocka_unit_test(samples_are_deterministic),
      cmocka_unit_test(training_grid_is_written),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
