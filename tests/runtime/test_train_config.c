/* Tests of runtime/train_config.c: the defaults of the reference; the
 * command line (kebab and snake names, --x=v and --x v, boolean forms,
 * every malformed or out-of-range value refused with the flag named,
 * unknown flags with a suggestion); YAML configs (their values beat the
 * command line, scalar types as YAML gives them, every error with file,
 * line and column, the config untouched on failure); write -> load round
 * trips; and every config shipped in configs/. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "train_config.h"

#define TMPDIR_TEMPLATE "/tmp/irepa-cfg-XXXXXX"
#include "tmpdir.h"

static TrainConfig a, b, defaults; /* big: kept out of the stack */

/* Splits line on spaces into argv and parses it onto the defaults in c. */
static bool parse(TrainConfig *c, const char *line, bool *seen, RtError *err) {
  static char buf[2048];
  char *argv[64];
  int argc = 0;
  snprintf(buf, sizeof buf, "%s", line);
  for (char *t = strtok(buf, " "); t && argc < 64; t = strtok(NULL, " ")) argv[argc++] = t;
  tc_defaults(c);
  return tc_parse_args(c, argc, argv, seen, err);
}

static void assert_contains(const char *text, const char *fragment) {
  if (!strstr(text, fragment)) {
    print_error("'%.300s' lacks '%s'\n", text, fragment);
    fail();
  }
}

static void expect_args_error(const char *line, const char *fragment) {
  RtError err = {{0}};
  assert_false(parse(&a, line, NULL, &err));
  assert_contains(err.msg, fragment);
}

/* Writes text to name in the scratch directory; the path, kept. */
static const char *write_file(const char *name, const char *text) {
  static char path[8][300];
  static int k;
  char *p = path[k++ % 8];
  snprintf(p, sizeof path[0], "%s", tmp_path(name));
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return p;
}

static void defaults_are_the_reference(void **state) {
  (void)state;
  tc_defaults(&a);
  assert_string_equal(a.output_dir, "exps");
  assert_string_equal(a.exp_name, "");
  assert_string_equal(a.report_to, "tensorboard");
  assert_string_equal(a.model, "SiT-B/2");
  assert_int_equal(a.batch_size, 256);
  assert_int_equal(a.max_train_steps, 400000);
  assert_int_equal(a.proj_kwargs_kernel_size, 1);
  assert_true(a.learning_rate == 1e-4 && a.adam_epsilon == 1e-8 && a.ema_decay == 0.9999);
  assert_true(a.zscore_alpha == 0.6 && a.cfg_prob == 0.1 && a.adam_weight_decay == 0.0);
  assert_true(a.fused_attn && a.allow_tf32 && a.compile);
  assert_false(a.qk_norm || a.repa_loss || a.resume || a.overwrite || a.zscore_proj_skip_std);
  assert_string_equal(a.mixed_precision, "fp16");
  assert_string_equal(a.proj_coeff, "0.5");
  assert_string_equal(a.dataset, "fashion-mnist");
  assert_string_equal(a.on_nan, "stop");
  assert_int_equal(a.projector_dim, 2048);
  assert_int_equal(a.log_every, 1);
  RtError err = {{0}};
  assert_false(tc_validate(&a, &err));
  assert_contains(err.msg, "--exp-name is required");
  snprintf(a.exp_name, sizeof a.exp_name, "run");
  assert_true(tc_validate(&a, &err));
}

/* Names: the YAML key is the flag with '_', and both find the option. */
static void table_is_consistent(void **state) {
  (void)state;
  for (int i = 0; i < TC_NOPTS; i++) {
    const TcOption *o = &tc_options[i];
    char key[64];
    snprintf(key, sizeof key, "%s", o->name);
    for (char *p = key; *p; p++)
      if (*p == '-') *p = '_';
    assert_string_equal(key, o->key);
    assert_ptr_equal(tc_find(o->name), o);
    assert_ptr_equal(tc_find(o->key), o);
    assert_true(strlen(o->help) > 3);
  }
  assert_int_equal(tc_options[TC_OPT_batch_size].type, TC_INT);
  assert_null(tc_find("batchsize"));
}

static void kebab_and_snake(void **state) {
  (void)state;
  bool seen[TC_NOPTS];
  RtError err = {{0}};
  assert_true(parse(&a, "--batch-size 32 --learning_rate 0.0002 --mixed_precision=bf16 --exp-name=r1 --model SiT-XL/2",
                    seen, &err));
  assert_int_equal(a.batch_size, 32);
  assert_true(a.learning_rate == 0.0002);
  assert_string_equal(a.mixed_precision, "bf16");
  assert_string_equal(a.exp_name, "r1");
  assert_string_equal(a.model, "SiT-XL/2");
  int given = 0;
  for (int i = 0; i < TC_NOPTS; i++) given += seen[i];
  assert_int_equal(given, 5);
  assert_true(seen[TC_OPT_batch_size] && seen[TC_OPT_learning_rate] && seen[TC_OPT_mixed_precision]);
  assert_false(seen[TC_OPT_seed]);
  assert_true(parse(&a, "--proj_kwargs_kernel_size 3 --zscore-alpha=0.8", NULL, &err));
  assert_int_equal(a.proj_kwargs_kernel_size, 3);
  assert_true(a.zscore_alpha == 0.8);
}

static void equals_and_space_forms(void **state) {
  (void)state;
  RtError err = {{0}};
  assert_true(parse(&a, "--seed=7 --enc-type=dinov2-vit-b,mae-vit-l --exp-name=a=b", NULL, &err));
  assert_int_equal(a.seed, 7);
  assert_string_equal(a.enc_type, "dinov2-vit-b,mae-vit-l");
  assert_string_equal(a.exp_name, "a=b");
  assert_true(parse(&b, "--seed 7 --enc-type dinov2-vit-b,mae-vit-l --exp-name a=b", NULL, &err));
  assert_true(tc_equal(&a, &b));
  char *argv[] = {"--encoder-weights", "", "--output-dir=", "--seed", "9", "--seed", "11"};
  tc_defaults(&a);
  assert_true(tc_parse_args(&a, 7, argv, NULL, &err));
  assert_string_equal(a.encoder_weights, "");
  assert_string_equal(a.output_dir, "");
  assert_int_equal(a.seed, 11); /* the last one counts */
  expect_args_error("--seed -1", "--seed: -1 is out of range (expected x >= 0)"); /* "-1" is a value */
}

static void bool_forms(void **state) {
  (void)state;
  RtError err = {{0}};
  assert_true(
      parse(&a, "--qk-norm --compile=false --fused-attn 0 --allow-tf32 no --repa-loss yes --resume=1", NULL, &err));
  assert_true(a.qk_norm && a.repa_loss && a.resume);
  assert_false(a.compile || a.fused_attn || a.allow_tf32);
  assert_true(parse(&a, "--compile=0 --overwrite --seed 3 --cache-features true --qk-norm=yes", NULL, &err));
  assert_false(a.compile);
  assert_true(a.overwrite && a.cache_features && a.qk_norm);
  assert_int_equal(a.seed, 3);
  assert_true(parse(&a, "--fused-attn=false --fused-attn", NULL, &err));
  assert_true(a.fused_attn);
  expect_args_error("--qk-norm maybe", "unexpected argument 'maybe'");
  expect_args_error("--qk-norm=maybe", "--qk-norm: expected true, false, 1, 0, yes or no, got 'maybe'");
  expect_args_error("--compile=True", "got 'True'");
}

static void bad_numbers_and_values(void **state) {
  (void)state;
  static const char *const cases[][2] = {
      {"--batch-size 12x", "--batch-size: expected an integer, got '12x'"},
      {"--batch-size=", "--batch-size: expected an integer, got ''"},
      {"--batch-size 1.5", "--batch-size: expected an integer, got '1.5'"},
      {"--batch-size 0x10", "expected an integer, got '0x10'"},
      {"--seed 99999999999999999999", "--seed: 99999999999999999999 is out of range"},
      {"--batch-size 0", "--batch-size: 0 is out of range (expected x >= 1)"},
      {"--max-train-steps -5", "--max-train-steps: -5 is out of range (expected x >= 1)"},
      {"--learning-rate 0", "--learning-rate: 0 is out of range (expected x > 0)"},
      {"--learning-rate -1e-4", "out of range (expected x > 0)"},
      {"--learning-rate nan", "--learning-rate: expected a finite number, got 'nan'"},
      {"--learning-rate inf", "expected a finite number, got 'inf'"},
      {"--learning-rate 1e400", "--learning-rate: 1e400 is out of range (expected a finite number)"},
      {"--learning-rate 0x1p-3", "expected a finite number"},
      {"--learning-rate 1e-4x", "expected a finite number, got '1e-4x'"},
      {"--adam-beta1 1", "--adam-beta1: 1 is out of range (expected 0 <= x < 1)"},
      {"--ema-decay 1.5", "--ema-decay: 1.5 is out of range (expected 0 <= x <= 1)"},
      {"--mixed-precision fp8", "--mixed-precision: 'fp8' is not one of no|fp16|bf16"},
      {"--path-type=sine", "'sine' is not one of linear|cosine"},
      {"--weighting normal", "not one of uniform|lognormal"},
      {"--spnorm-method layernorm", "not one of none|zscore"},
      {"--projection-layer-type attn", "not one of mlp|linear|conv"},
      {"--dataset mnist", "not one of fashion-mnist|imagefolder|latents"},
      {"--backend gpu", "--backend: 'gpu' is not one of auto|c|cuda|cuda-emu|interp"},
      {"--on-nan ignore", "not one of stop|skip"},
      {"--prediction eps", "not one of v"},
      {"--proj-kwargs-kernel-size 2", "--proj-kwargs-kernel-size: '2' is not one of 1|3|5|7"},
      {"--proj-coeff 0.5,x", "--proj-coeff: '0.5,x': item 2, 'x', is not a finite number >= 0"},
      {"--proj-coeff=-1", "item 1, '-1', is not a finite number >= 0"},
      {"--proj-coeff 0.5,", "item 2, '', is not"},
      {"--batch-size", "missing value for --batch-size"},
      {"--batch_size --seed 1", "missing value for --batch-size"},
      {"--exp-name", "missing value for --exp-name"},
      {"train", "unexpected argument 'train'"},
      {"--", "unexpected argument '--'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_args_error(cases[i][0], cases[i][1]);
  char *space[] = {"--batch-size", " 5"};
  RtError err = {{0}};
  tc_defaults(&a);
  assert_false(tc_parse_args(&a, 2, space, NULL, &err));
  assert_contains(err.msg, "expected an integer, got ' 5'");
}

static void expect_exact(const char *line, const char *message) {
  RtError err = {{0}};
  assert_false(parse(&a, line, NULL, &err));
  assert_string_equal(err.msg, message);
}

static void unknown_flags_get_suggestions(void **state) {
  (void)state;
  expect_exact("--batchsize 4", "unknown option '--batchsize' (did you mean '--batch-size'?)");
  expect_exact("--batch_sise=4", "unknown option '--batch_sise' (did you mean '--batch-size'?)");
  expect_exact("--learning 1", "unknown option '--learning' (did you mean '--learning-rate'?)");
  expect_exact("--encoder-depht 4", "unknown option '--encoder-depht' (did you mean '--encoder-depth'?)");
  expect_exact("--mixed-precision-mode bf16",
               "unknown option '--mixed-precision-mode' (did you mean '--mixed-precision'?)");
  expect_exact("--xyzzy-plugh 1", "unknown option '--xyzzy-plugh'");
  expect_exact("--lr-shedule cosine", "unknown option '--lr-shedule' (did you mean '--lr-schedule'?)");
  expect_exact("--ema_decay3 0.9996", "unknown option '--ema_decay3' (did you mean '--ema-decay'?)");
}

/* The reference's order: flags first, then --config's keys overwrite them. */
static void yaml_beats_the_command_line(void **state) {
  (void)state;
  const char *path = write_file("c.yaml", "batch_size: 64\nmixed-precision: bf16\nrepa_loss: true\n");
  char line[512];
  snprintf(line, sizeof line, "--batch-size 32 --seed 5 --repa-loss false --config %s", path);
  char *argv[8], buf[512];
  int argc = 0;
  snprintf(buf, sizeof buf, "%s", line);
  for (char *t = strtok(buf, " "); t; t = strtok(NULL, " ")) argv[argc++] = t;
  bool seen[TC_NOPTS];
  RtError err = {{0}};
  assert_true(tc_from_args(&a, argc, argv, seen, &err));
  assert_int_equal(a.batch_size, 64);
  assert_string_equal(a.mixed_precision, "bf16");
  assert_true(a.repa_loss);
  assert_int_equal(a.seed, 5);
  assert_string_equal(a.config, path);
  /* seen: set by flag or by YAML */
  assert_true(seen[TC_OPT_batch_size] && seen[TC_OPT_config] && seen[TC_OPT_mixed_precision]);
  assert_true(seen[TC_OPT_seed] && !seen[TC_OPT_learning_rate]);
  /* a bad config fails tc_from_args with the file's message */
  path = write_file("bad.yaml", "batch_size: 0\n");
  snprintf(line, sizeof line, "--config=%s", path);
  char *one[] = {line};
  assert_false(tc_from_args(&a, 1, one, NULL, &err));
  assert_contains(err.msg, "bad.yaml:1:13: batch_size: 0 is out of range");
}

static void yaml_scalars_keep_their_types(void **state) {
  (void)state;
  const char *path = write_file("v.yaml",
                                "# a comment\n"
                                "proj_coeff: \"1.0, 0.5\"\n"
                                "repa_loss: yes\n"
                                "qk_norm: On\n"
                                "compile: FALSE\n"
                                "learning_rate: 1e-4\n"
                                "adam_epsilon: 1.0e-08\n"
                                "max_grad_norm: 2        # an integer for a FLOAT\n"
                                "max_train_steps: 1_000\n"
                                "encoder_weights: ~\n"
                                "data_dir:\n"
                                "model: 'SiT-L/2'\n"
                                "exp_name: !!str 123\n"
                                "logging-dir: \"tb logs\"\n"
                                "seed: +3\n");
  RtError err = {{0}};
  tc_defaults(&a);
  assert_true(tc_load_yaml(&a, path, &err));
  assert_string_equal(a.proj_coeff, "1.0, 0.5");
  assert_true(a.repa_loss && a.qk_norm);
  assert_false(a.compile);
  assert_true(a.learning_rate == 1e-4 && a.adam_epsilon == 1e-8 && a.max_grad_norm == 2.0);
  assert_int_equal(a.max_train_steps, 1000);
  assert_string_equal(a.encoder_weights, "");
  assert_string_equal(a.data_dir, "");
  assert_string_equal(a.model, "SiT-L/2");
  assert_string_equal(a.exp_name, "123");
  assert_string_equal(a.logging_dir, "tb logs");
  assert_int_equal(a.seed, 3);
  double k[4];
  int n = 0;
  assert_true(tc_proj_coeffs(&a, k, 4, &n, &err));
  assert_int_equal(n, 2);
  assert_true(k[0] == 1.0 && k[1] == 0.5);
  assert_false(tc_proj_coeffs(&a, k, 1, &n, &err));
  assert_contains(err.msg, "proj-coeff: '1.0, 0.5' has more than 1 values");
  /* empty files and an empty document change nothing */
  tc_defaults(&b);
  assert_true(tc_load_yaml(&b, write_file("empty.yaml", ""), &err));
  assert_true(tc_load_yaml(&b, write_file("comments.yaml", "# nothing\n---\n"), &err));
  tc_defaults(&defaults);
  assert_true(tc_equal(&b, &defaults));
}

/* The file fails to load with path:fragment and leaves the config as it was. */
static void expect_yaml_error(const char *text, const char *fragment) {
  const char *path = write_file("e.yaml", text);
  RtError err = {{0}};
  tc_defaults(&a);
  tc_defaults(&defaults);
  a.seed = 99;
  defaults.seed = 99;
  if (tc_load_yaml(&a, path, &err)) {
    print_error("'%s' loaded\n", text);
    fail();
  }
  assert_true(strncmp(err.msg, path, strlen(path)) == 0);
  assert_contains(err.msg + strlen(path), fragment);
  assert_true(tc_equal(&a, &defaults));
}

static void yaml_errors_say_where(void **state) {
  (void)state;
  expect_yaml_error("seed: 1\nthreads: 2\nbatchsize: 3\n",
                    ":3:1: unknown key 'batchsize' (did you mean 'batch_size'?)");
  expect_yaml_error("ema_decay3: 0.9996\n", ":1:1: unknown key 'ema_decay3' (did you mean 'ema_decay'?)");
  expect_yaml_error("seed: 1\nrepa_loss: \"true\"\n",
                    ":2:12: repa_loss: expected a boolean (true or false), found a string 'true'");
  expect_yaml_error("batch_size: 1.5\n", ":1:13: batch_size: expected an integer, found a float '1.5'");
  expect_yaml_error("batch_size: \"64\"\n", ":1:13: batch_size: expected an integer, found a string '64'");
  expect_yaml_error("learning_rate: fast\n", ":1:16: learning_rate: expected a number, found a string 'fast'");
  expect_yaml_error("proj_coeff: 0.5\n",
                    ":1:13: proj_coeff: expected a string, found a float '0.5' (quote it: \"0.5\")");
  expect_yaml_error("mixed_precision: no\n", "mixed_precision: expected a string, found a boolean 'no'");
  expect_yaml_error("seed:\n", ":1:6: seed: expected an integer, found no value");
  expect_yaml_error("\n\nbatch_size: 0\n", ":3:13: batch_size: 0 is out of range (expected x >= 1)");
  expect_yaml_error("mixed_precision: fp8\n", "mixed_precision: 'fp8' is not one of no|fp16|bf16");
  expect_yaml_error("seed: 010\n", "seed: '010' has a leading zero, which YAML 1.1 reads as octal");
  expect_yaml_error("learning_rate: .inf\n", "learning_rate: expected a number, found a string '.inf'");
  expect_yaml_error("seed: !!int 3\n", "seed: tag tag:yaml.org,2002:int is not supported");
  expect_yaml_error("enc_type: [a, b]\n", ":1:11: enc_type: expected one value, found a list");
  expect_yaml_error("model:\n  name: x\n", ":2:3: model: expected one value, found a mapping");
  expect_yaml_error("seed: &s 1\nthreads: *s\n", ":2:10: threads: expected one value, found an alias");
  expect_yaml_error("- seed\n- 1\n", ":1:1: expected a mapping of option: value, found a list");
  expect_yaml_error("[seed]: 1\n", ":1:1: expected an option name, found a list");
  expect_yaml_error("seed: 1\nseed: 2\n", ":2:1: seed is set twice (first on line 1)");
  expect_yaml_error("seed: 1\n---\nthreads: 2\n", ":2:1: a second document");
  expect_yaml_error("seed: 1\nmodel: \"SiT\n",
                    ":3:1: malformed YAML: found unexpected end of stream while scanning a quoted scalar at 2:8");
  expect_yaml_error("seed: 1\nbatch_size: 2: 3\n",
                    ":2:14: malformed YAML: mapping values are not allowed in this context");
  expect_yaml_error("seed: 1\n  threads: 2\n", ":2:10: malformed YAML");
  expect_yaml_error("model: \"\xff\"\n", ": malformed YAML: invalid leading UTF-8 octet");
  RtError err = {{0}};
  assert_false(tc_load_yaml(&a, tmp_path("missing.yaml"), &err));
  assert_contains(err.msg, "missing.yaml: cannot open: No such file or directory");
  assert_false(tc_load_yaml(&a, tmpdir, &err));
  assert_contains(err.msg, ": is a directory");
}

/* Writes c to text, loads it onto `start`, and checks the result equals c. */
static void round_trip(const TrainConfig *c, const TrainConfig *start) {
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  RtError err = {{0}};
  assert_true(tc_write_yaml(c, mem, &err));
  fclose(mem);
  b = *start;
  if (!tc_load_yaml(&b, write_file("rt.yaml", text), &err)) {
    print_error("%s\n%s\n", err.msg, text);
    fail();
  }
  assert_true(tc_equal(&b, c));
  free(text);
}

static void write_load_round_trip(void **state) {
  (void)state;
  RtError err = {{0}};
  tc_defaults(&defaults);
  assert_true(parse(&a, "--batch-size 7 --learning-rate 3e-4 --adam-epsilon 1e-12 --ema-decay 0.30000000000000004 "
                        "--seed 1234567890123 --cfg-prob 0 --qk-norm --compile=false --report-to wandb "
                        "--enc-type a,b --proj-coeff 1.0,0.25 --backend cuda-emu --max-grad-norm 1e300",
                    NULL, &err));
  round_trip(&a, &defaults); /* changed values onto the defaults */
  round_trip(&defaults, &a); /* and the defaults back onto them */
  static const char *const tricky[] = {
      "no", "yes", "true", "~", "null", "", "123", "1_000", "1e5", ".inf", "0x1F", "-dash", ",comma", "a: b",
      "x #y", "  padded  ", "quote \" and \\ back", "tab\tnew\nline\rcr", "\x01\x7f", "é ü 日本 🙂",
      "\xc2\x85nel", "\xe2\x80\xa8ls", "\357\273\277bom",
      "[list]", "{map}", "*star", "&amp", "!bang", "%pct", "@at", "`tick`", "'single'", "SiT-B/2", "../data",
  };
  for (size_t i = 0; i < sizeof tricky / sizeof tricky[0]; i++) {
    tc_defaults(&a);
    snprintf(a.exp_name, sizeof a.exp_name, "%s", tricky[i]);
    snprintf(a.data_dir, sizeof a.data_dir, "/data/%s", tricky[i]);
    round_trip(&a, &defaults);
  }
  /* the text: plain where YAML reads a string anyway, PyYAML-readable floats */
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  assert_true(tc_write_yaml(&defaults, mem, &err));
  fclose(mem);
  assert_contains(text, "output_dir: exps\nexp_name: \"\"\n");
  assert_contains(text, "\nmodel: SiT-B/2\n");
  assert_contains(text, "\nproj_coeff: \"0.5\"\n");
  assert_contains(text, "\nlearning_rate: 0.0001\n");
  assert_contains(text, "\nadam_epsilon: 1.0e-08\n");
  assert_contains(text, "\nmax_grad_norm: 1.0\n");
  assert_contains(text, "\nfused_attn: true\n");
  assert_contains(text, "\nbatch_size: 256\n");
  int lines = 0;
  for (char *p = text; *p; p++) lines += *p == '\n';
  assert_int_equal(lines, TC_NOPTS);
  free(text);
  /* saved atomically to a file, read back */
  const char *path = write_file("saved.yaml", "old contents\n");
  a = defaults;
  snprintf(a.exp_name, sizeof a.exp_name, "saved");
  assert_true(tc_save_yaml(&a, path, &err));
  assert_true(tc_load_yaml(&b, path, &err));
  assert_true(tc_equal(&a, &b));
  /* a string that is not UTF-8 cannot be written */
  snprintf(a.model, sizeof a.model, "bad\xff");
  mem = open_memstream(&text, &len);
  assert_false(tc_write_yaml(&a, mem, &err));
  fclose(mem);
  free(text);
  assert_contains(err.msg, "model: the value is not UTF-8");
}

static void shipped_configs_load(void **state) {
  (void)state;
  const char *root = getenv("IREPA_SOURCE_DIR");
  assert_non_null(root);
  char dir[512], path[1024];
  snprintf(dir, sizeof dir, "%s/configs", root);
  DIR *d = opendir(dir);
  assert_non_null(d);
  int loaded = 0;
  RtError err = {{0}};
  for (struct dirent *e; (e = readdir(d));) {
    size_t n = strlen(e->d_name);
    if (n < 5 || strcmp(e->d_name + n - 5, ".yaml") != 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    tc_defaults(&a);
    if (!tc_load_yaml(&a, path, &err)) {
      print_error("%s\n", err.msg);
      fail();
    }
    snprintf(a.exp_name, sizeof a.exp_name, "x");
    assert_true(tc_validate(&a, &err));
    loaded++;
  }
  closedir(d);
  assert_true(loaded >= 5);
  static const struct {
    const char *file, *layer, *spnorm, *coeff;
    bool repa, fmnist;
  } want[] = {
      {"repa.yaml", "mlp", "none", "0.5", true, false},
      {"irepa.yaml", "conv", "zscore", "1.0", true, false},
      {"fmnist_repa.yaml", "mlp", "none", "0.5", true, true},
      {"fmnist_irepa.yaml", "conv", "zscore", "1.0", true, true},
      {"fmnist_vanilla.yaml", "mlp", "none", "0", false, true},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, want[i].file);
    tc_defaults(&a);
    assert_true(tc_load_yaml(&a, path, &err));
    assert_string_equal(a.projection_layer_type, want[i].layer);
    assert_string_equal(a.spnorm_method, want[i].spnorm);
    assert_string_equal(a.proj_coeff, want[i].coeff);
    assert_int_equal(a.repa_loss, want[i].repa);
    assert_string_equal(a.model, want[i].fmnist ? "SiT-T/4" : "SiT-B/2");
    if (!want[i].fmnist) continue;
    assert_int_equal(a.num_classes, 10);
    assert_int_equal(a.resolution, 32);
    assert_int_equal(a.encoder_depth, 2);
    assert_int_equal(a.batch_size, 64);
    assert_int_equal(a.max_train_steps, 2000);
    assert_int_equal(a.checkpointing_steps, 500);
    assert_string_equal(a.enc_type, "fmnist-vit");
    assert_true(a.learning_rate == 1e-4);
    assert_int_equal(a.projector_dim, 256);
  }
  /* the JiT files hold the jit trainer's enable_repa (docs/jit.md) */
  snprintf(path, sizeof path, "%s/jit/irepa.yaml", dir);
  tc_defaults(&a);
  assert_true(tc_load_yaml(&a, path, &err));
  assert_true(a.enable_repa && !a.repa_loss);
  assert_string_equal(a.projection_layer_type, "conv");
  assert_string_equal(a.spnorm_method, "zscore");
  assert_string_equal(a.proj_coeff, "0.5");
}

static void validate_checks_fields_set_by_code(void **state) {
  (void)state;
  RtError err = {{0}};
  tc_defaults(&a);
  snprintf(a.exp_name, sizeof a.exp_name, "run");
  a.batch_size = 0;
  assert_false(tc_validate(&a, &err));
  assert_contains(err.msg, "--batch-size: 0 is out of range (expected x >= 1)");
  a.batch_size = 8;
  a.learning_rate = NAN;
  assert_false(tc_validate(&a, &err));
  assert_contains(err.msg, "--learning-rate: expected a finite number");
  a.learning_rate = 1e-3;
  snprintf(a.mixed_precision, sizeof a.mixed_precision, "fp8");
  assert_false(tc_validate(&a, &err));
  assert_contains(err.msg, "--mixed-precision: 'fp8' is not one of");
  snprintf(a.mixed_precision, sizeof a.mixed_precision, "no");
  a.resume = true;
  a.resume_step = 50000;
  assert_false(tc_validate(&a, &err));
  assert_contains(err.msg, "--resume and --resume-step 50000");
  a.resume_step = 0;
  assert_true(tc_validate(&a, &err));
  snprintf(a.proj_coeff, sizeof a.proj_coeff, "half");
  assert_false(tc_proj_coeffs(&a, NULL, 4, NULL, &err));
  assert_contains(err.msg, "proj-coeff: 'half': item 1, 'half', is not a finite number >= 0");
}

static void warnings_and_help(void **state) {
  (void)state;
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  tc_defaults(&a);
  tc_warn(&a, mem);
  fflush(mem);
  assert_int_equal(len, 0);
  snprintf(a.report_to, sizeof a.report_to, "wandb");
  a.cls_token_weight = 0.5;
  tc_warn(&a, mem);
  fclose(mem);
  assert_contains(text, "--report-to wandb is not supported; TensorBoard files are written instead");
  assert_contains(text, "--cls-token-weight is ignored");
  free(text);
  mem = open_memstream(&text, &len);
  tc_print_help(mem);
  fclose(mem);
  for (int i = 0; i < TC_NOPTS; i++) {
    char flag[80];
    snprintf(flag, sizeof flag, "--%s%s", tc_options[i].name, tc_options[i].type == TC_BOOL ? "[=BOOL]" : " ");
    assert_contains(text, flag);
  }
  assert_contains(text, "(default 256)");
  assert_contains(text, "(default \"fp16\")");
  free(text);
}

/* The jit trainer's names set ldm's options, in flags and YAML. */
static void jit_aliases(void **state) {
  (void)state;
  bool seen[TC_NOPTS];
  RtError err = {{0}};
  assert_true(parse(&a,
                    "--lr 2e-4 --img_size 64 --class_num 10 --data_path d --label_drop_prob 0.2 --weight_decay 0.01 "
                    "--ema_decay1 0.999 --P_mean -0.6 --P_std 1.0 --t_eps 0.1 --noise_scale 2 --blr 1e-4",
                    seen, &err));
  assert_true(a.learning_rate == 2e-4 && seen[TC_OPT_learning_rate]);
  assert_int_equal(a.resolution, 64);
  assert_int_equal(a.num_classes, 10);
  assert_string_equal(a.data_dir, "d");
  assert_true(a.cfg_prob == 0.2 && a.adam_weight_decay == 0.01 && a.ema_decay == 0.999);
  assert_true(a.P_mean == -0.6 && a.P_std == 1.0 && a.t_eps == 0.1 && a.noise_scale == 2 && a.blr == 1e-4);
  const char *path = write_file("j.yaml", "lr: 3.0e-4\nimg_size: 32\nP_mean: -1.0\n");
  assert_true(tc_load_yaml(&a, path, &err));
  assert_true(a.learning_rate == 3e-4 && a.resolution == 32 && a.P_mean == -1.0);
  path = write_file("twice.yaml", "lr: 3.0e-4\nlearning_rate: 1.0e-4\n");
  assert_false(tc_load_yaml(&a, path, &err));
  assert_contains(err.msg, "learning_rate is set twice");
  expect_args_error("--t_eps 0", "out of range");
  expect_args_error("--P_std 0", "out of range");
  /* 0 turns clipping off; negative norms stay errors */
  assert_true(parse(&a, "--max-grad-norm 0", NULL, &err) && a.max_grad_norm == 0);
  expect_args_error("--max-grad-norm -1", "out of range");
}

/* A JiT gets the jit trainer's defaults where nothing was set, the lr
 * from --blr and the batch; SiT keeps ldm's. */
static void jit_defaults_fill_what_was_not_set(void **state) {
  (void)state;
  bool seen[TC_NOPTS];
  RtError err = {{0}};
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  assert_true(parse(&a, "--model JiT-B/16 --zscore_alpha 0.7 --batch_size 512", seen, &err));
  tc_jit_defaults(&a, seen, mem);
  fclose(mem);
  assert_int_equal(a.proj_kwargs_kernel_size, 3);
  assert_true(a.zscore_alpha == 0.7 && a.adam_beta2 == 0.95 && a.max_grad_norm == 0);
  assert_true(a.warmup_epochs == 5 && a.epochs == 200 && a.sampling_steps == 0);
  assert_int_equal(a.batch_size, 512);
  assert_true(a.learning_rate == 5e-5 * 512 / 256);
  assert_contains(text, "--adam-beta2 0.95");
  assert_true(strstr(text, "zscore-alpha") == NULL);
  free(text);
  assert_true(parse(&a, "--model JiT-B/16 --blr 1e-4 --adam_beta2 0.99", seen, &err));
  tc_jit_defaults(&a, seen, NULL);
  assert_int_equal(a.batch_size, 128);
  assert_true(a.learning_rate == 1e-4 * 128 / 256 && a.adam_beta2 == 0.99);
  assert_true(parse(&a, "--model JiT-B/16 --lr 3e-4", seen, &err));
  tc_jit_defaults(&a, seen, NULL);
  assert_true(a.learning_rate == 3e-4);
  /* YAML counts as set */
  const char *path = write_file("jit.yaml", "zscore_alpha: 0.6\nmax_grad_norm: 1.0\n");
  char flag[400];
  snprintf(flag, sizeof flag, "--config=%s", path);
  char model[] = "--model=JiT-T/4", *argv[] = {model, flag};
  assert_true(tc_from_args(&a, 2, argv, seen, &err));
  tc_jit_defaults(&a, seen, NULL);
  assert_true(a.zscore_alpha == 0.6 && a.max_grad_norm == 1.0 && a.adam_beta2 == 0.95);
  assert_true(tc_is_jit(&a));
  tc_defaults(&b);
  assert_false(tc_is_jit(&b));
  /* options only a JiT reads are warned about for a SiT */
  text = NULL;
  mem = open_memstream(&text, &len);
  b.P_mean = 0;
  tc_warn(&b, mem);
  fclose(mem);
  assert_contains(text, "for JiT models only");
  free(text);
}

/* docs/cli.md lists every option. */
static void documented(void **state) {
  (void)state;
  const char *root = getenv("IREPA_SOURCE_DIR");
  assert_non_null(root);
  char path[512];
  snprintf(path, sizeof path, "%s/docs/cli.md", root);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  static char doc[1 << 20];
  size_t n = fread(doc, 1, sizeof doc - 1, f);
  doc[n] = '\0';
  fclose(f);
  for (int i = 0; i < TC_NOPTS; i++) {
    char flag[80];
    snprintf(flag, sizeof flag, "`--%s", tc_options[i].name);
    assert_contains(doc, flag);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_are_the_reference),
      cmocka_unit_test(table_is_consistent),
      cmocka_unit_test(kebab_and_snake),
      cmocka_unit_test(equals_and_space_forms),
      cmocka_unit_test(bool_forms),
      cmocka_unit_test(bad_numbers_and_values),
      cmocka_unit_test(unknown_flags_get_suggestions),
      cmocka_unit_test(yaml_beats_the_command_line),
      cmocka_unit_test(yaml_scalars_keep_their_types),
      cmocka_unit_test(yaml_errors_say_where),
      cmocka_unit_test(write_load_round_trip),
      cmocka_unit_test(shipped_configs_load),
      cmocka_unit_test(validate_checks_fields_set_by_code),
      cmocka_unit_test(warnings_and_help),
      cmocka_unit_test(jit_aliases),
      cmocka_unit_test(jit_defaults_fill_what_was_not_set),
      cmocka_unit_test(documented),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
