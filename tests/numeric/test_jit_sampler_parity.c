/* test_jit_sampler_parity.c: JiT's sampler (runtime/sampler.c with
 * SamplerOptions.jit, the sampler entries of models/jit.irg's JiTDenoiser)
 * against the reference's, transcribed in tools/jit_ref.py
 * (Denoiser.generate): golden/tiny_jit_sampler.safetensors, written by
 * tools/gen_jit_golden.py, holds a tiny JiT's float32 weights, a batch's
 * starting points x1 and labels y, and the samples of Euler and Heun with
 * and without guidance, one case with the guidance interval [0.25, 0.75].
 * From the golden's starting points, our samples must be within 1e-5
 * (max |ours - ref| / max |ref|) on the C kernels in f32 and on the
 * interpreter in f64. Also: JiT's time grid runs upward, its interval
 * test and the entries a sampling run needs. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "numeric.h"
#include "safetensors.h"
#include "sampler.h"

static const char GOLDEN[] = "golden/tiny_jit_sampler.safetensors";
static const double BOUND = 1e-5;

static const char SRC[] =
    "import \"jit.irg\";\n"
    "model = JiTDenoiser(model = \"JiT-T/4\", depth = 2, hidden_size = 32, num_heads = 2, patch_size = 4,\n"
    "                    img_size = 16, bottleneck_dim = 8, in_context_len = 2, in_context_start = 1,\n"
    "                    class_num = 10, z_dims = [], encoder_depth = 0);\n";
static const char *const CONFIG_MUST_HAVE[] = {"\"img_size\": 16", "\"in_context_len\": 2", "\"depth\": 2"};

typedef struct {
  const char *name;
  SamplerOptions o;
} Case;

/* The golden's cases (its metadata "cases"): mode, heun, K, cfg, low, high. */
static const Case cases[] = {
    {"euler", {SAMPLER_JIT, false, 5, 1.0, 0.0, 1.0}},
    {"heun", {SAMPLER_JIT, true, 5, 1.0, 0.0, 1.0}},
    {"heun_cfg", {SAMPLER_JIT, true, 5, 2.5, 0.0, 1.0}},
    {"euler_cfg_interval", {SAMPLER_JIT, false, 5, 3.0, 0.25, 0.75}},
};
enum { NCASES = sizeof cases / sizeof cases[0] };

static const char *const ENTRIES[] = {"euler_step", "heun_step", "euler_step_cfg", "heun_step_cfg"};
enum { NENTRIES = 4 };

static StFile *open_golden(void) {
  RtError err;
  StFile *f = st_open(GOLDEN, &err);
  if (!f) fail_msg("%s", err.msg);
  const char *config = st_metadata(f, "config"), *cs = st_metadata(f, "cases");
  assert_non_null(config);
  assert_non_null(cs);
  for (size_t i = 0; i < sizeof CONFIG_MUST_HAVE / sizeof *CONFIG_MUST_HAVE; i++)
    if (!strstr(config, CONFIG_MUST_HAVE[i])) fail_msg("golden config %s lacks %s", config, CONFIG_MUST_HAVE[i]);
  for (int i = 0; i < NCASES; i++) {
    char key[96];
    snprintf(key, sizeof key, "\"name\": \"%s\"", cases[i].name);
    if (!strstr(cs, key)) fail_msg("golden cases %s lack %s", cs, cases[i].name);
  }
  return f;
}

static void copy_params(const TensorList *golden, TensorList *params) {
  for (int i = 0; i < params->n; i++) {
    Tensor *x = params->items[i];
    const Tensor *y = tensorlist_find(golden, x->name);
    if (!y) fail_msg("golden has no %s", x->name);
    assert_int_equal(tensor_numel(y), tensor_numel(x));
    for (int64_t k = 0; k < tensor_numel(x); k++) tensor_set(x, k, tensor_get(y, k));
  }
}

static Tensor *copy_of(const Tensor *t, const char *name) {
  RtError err;
  Tensor *c = tensor_new(name, t->dtype, t->rank, t->shape, &err);
  if (!c) fail_msg("%s", err.msg);
  memcpy(c->data, t->data, t->nbytes);
  return c;
}

static double run_cases(const TensorList *golden, const SamplerModel *m, const char *where) {
  double worst = 0;
  for (int i = 0; i < NCASES; i++) {
    RtError err;
    Tensor *x = copy_of(tensorlist_find(golden, "x1"), "x"), *y = copy_of(tensorlist_find(golden, "y"), "y");
    if (!sampler_run(m, &cases[i].o, x, y, 0, 0, NULL, &err)) fail_msg("%s: %s", cases[i].name, err.msg);
    char key[96];
    snprintf(key, sizeof key, "%s.sample", cases[i].name);
    const Tensor *want = tensorlist_find(golden, key);
    assert_non_null(want);
    double e = tensor_rel_error(want, x);
    printf("   %-7s %-20s %lld steps: max rel error %.2e\n", where, cases[i].name, (long long)cases[i].o.num_steps, e);
    worst = fmax(worst, e);
    tensor_free(x);
    tensor_free(y);
  }
  return worst;
}

static void c_kernels_match_pytorch(void **state) {
  (void)state;
  StFile *f = open_golden();
  RtError err;
  Trainer t;
  if (!trainer_compile_inference(&t, "jit_sampler.irg", SRC, ENTRIES, NENTRIES, "c", &err) ||
      !trainer_init(&t, 0, &err))
    fail_msg("%s", err.msg);
  copy_params(st_tensors(f), &t.params);
  SamplerModel m = {&t, false, NULL, NULL};
  assert_true(run_cases(st_tensors(f), &m, "c") <= BOUND);
  trainer_free(&t);
  st_close(f);
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
  StFile *f = open_golden();
  Interp in = {0};
  for (int i = 0; i < NENTRIES; i++)
    if (!nt_compile(&in.c[i], SRC, ENTRIES[i], false, NULL)) fail_msg("%s does not compile", ENTRIES[i]);
  if (!nt_make_params(&in.c[0], 0, &in.params)) fail_msg("no parameters");
  copy_params(st_tensors(f), &in.params);
  SamplerModel m = {NULL, false, interp_entry, &in};
  assert_true(run_cases(st_tensors(f), &m, "interp") <= BOUND);
  tensorlist_free(&in.params);
  for (int i = 0; i < NENTRIES; i++) nt_free(&in.c[i]);
  st_close(f);
}

static void grid_interval_and_entries(void **state) {
  (void)state;
  RtError err;
  double t[6];
  SamplerOptions o = cases[3].o;
  sampler_time_grid(&o, t);
  for (int k = 0; k <= 5; k++) assert_true(fabs(t[k] - k / 5.0) < 1e-15);
  assert_true(t[0] == 0.0 && t[5] == 1.0);
  const char *names[SAMPLER_MAX_ENTRIES];
  /* guided at t = .4 and .6 only: unguided first, guided, and the last step unguided */
  assert_int_equal(sampler_entries(&o, names), 2);
  assert_string_equal(names[0], "euler_step");
  assert_string_equal(names[1], "euler_step_cfg");
  o = cases[2].o; /* [0, 1]: every t_cur < 1 is guided, the last step Euler */
  assert_int_equal(sampler_entries(&o, names), 2);
  assert_string_equal(names[0], "heun_step_cfg");
  assert_string_equal(names[1], "euler_step_cfg");
  o.guidance_low = 0.0, o.guidance_high = 0.0; /* t >= 0 everywhere: never guided */
  assert_int_equal(sampler_entries(&o, names), 2);
  assert_string_equal(names[0], "heun_step");
  assert_string_equal(names[1], "euler_step");
  assert_true(sampler_check(&o, &err)); /* Heun is allowed with JiT's ODE */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(grid_interval_and_entries),
      cmocka_unit_test(c_kernels_match_pytorch),
      cmocka_unit_test(interpreter_matches_pytorch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
