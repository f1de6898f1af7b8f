/* Tests of runtime/latents.c: the fixture tests/e2e/data/latents_tiny
 * (tools/gen_latents_fixture.py: 6 items in shards of 4 and 2, labels
 * i % 3, constants given to convert_latents.py) reads back; the posterior
 * sample is (mean + std * n - bias) * scale with n from (seed,
 * "sample_posterior", pos); and shard sets written here with each fault
 * are refused with the file and the reason. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "latents.h"
#include "rng.h"

#define TMPDIR_TEMPLATE "/tmp/irepa-lat-XXXXXX"
#include "tmpdir.h"

static const char *fixture(void) {
  static char buf[4096];
  const char *root = getenv("IREPA_SOURCE_DIR");
  snprintf(buf, sizeof buf, "%s/tests/e2e/data/latents_tiny", root ? root : "../..");
  return buf;
}

static void reads_the_fixture(void **state) {
  (void)state;
  LatentSet s;
  RtError err;
  assert_true(lat_open(fixture(), &s, &err));
  assert_int_equal(s.n, 6);
  assert_int_equal(s.nshards, 2);
  assert_int_equal(s.channels, 4);
  assert_int_equal(s.side, 32);
  assert_int_equal(s.max_label, 2);
  const float scale[4] = {0.18215f, 0.2f, 0.17f, 0.19f}, bias[4] = {0.1f, -0.2f, 0.0f, 0.05f};
  for (int c = 0; c < 4; c++) assert_true(s.scale[c] == scale[c] && s.bias[c] == bias[c]);
  float m[8 * 32 * 32];
  for (int64_t i = 0; i < 6; i++) {
    int64_t y;
    lat_read(&s, i, m, &y);
    assert_int_equal(y, i % 3);
    for (int k = 4 * 1024; k < 8 * 1024; k++) assert_true(m[k] >= 0.05f && m[k] < 0.5f); /* std */
  }
  lat_close(&s);
}

static void samples_the_posterior(void **state) {
  (void)state;
  LatentSet s;
  RtError err;
  assert_true(lat_open(fixture(), &s, &err));
  float m[8 * 1024], x[4 * 1024], again[4 * 1024], other[4 * 1024];
  int64_t y;
  lat_read(&s, 4, m, &y);
  lat_sample_posterior(&s, m, 9, 13, x);
  for (int c = 0; c < 4; c++)
    for (int k = c * 1024; k < (c + 1) * 1024; k++) {
      float n = rng_normal_f32(9, rng_fnv1a64("sample_posterior"), 13 * 4096 + (uint64_t)k);
      float z = m[k] + m[4096 + k] * n;
      assert_true(x[k] == (z - s.bias[c]) * s.scale[c]);
    }
  lat_sample_posterior(&s, m, 9, 13, again);
  assert_memory_equal(x, again, sizeof x);
  lat_sample_posterior(&s, m, 9, 14, other);
  assert_memory_not_equal(x, other, sizeof x);
  lat_close(&s);
}

/* ---- refused shard sets ------------------------------------------------- */

typedef struct {
  const char *format;
  DType moments_dtype;
  int64_t n, channels2, side, nlabels;
  float scale;
  int64_t label;
} Shard;

static const Shard GOOD = {"irepa-latents-1", DT_F32, 2, 8, 4, 2, 0.5f, 1};

static void write_shard(const char *dir, int index, const Shard *s) {
  RtError err;
  const int64_t ms[4] = {s->n, s->channels2, s->side, s->side}, c = s->channels2 / 2;
  Tensor *t[4] = {tensor_new("moments", s->moments_dtype, 4, ms, &err), tensor_new("labels", DT_I64, 1, &s->nlabels, &err),
                  tensor_new("latents_scale", DT_F32, 1, &c, &err), tensor_new("latents_bias", DT_F32, 1, &c, &err)};
  for (int64_t i = 0; i < s->nlabels; i++) tensor_set(t[1], i, (double)s->label);
  for (int64_t i = 0; i < c; i++) tensor_set(t[2], i, s->scale);
  char path[512];
  snprintf(path, sizeof path, "%s/latents-%05d.safetensors", dir, index);
  const char *meta[] = {"format", s->format, NULL};
  assert_true(st_write(path, t, 4, meta, &err));
  for (int i = 0; i < 4; i++) tensor_free(t[i]);
}

/* A fresh folder with shards a (and b, unless NULL) as 00000 and 00001. */
static const char *folder(const char *name, const Shard *a, const Shard *b) {
  static char dir[512];
  snprintf(dir, sizeof dir, "%s", tmp_path(name));
  mkdir(dir, 0777);
  if (a) write_shard(dir, 0, a);
  if (b) write_shard(dir, 1, b);
  return dir;
}

static void refused(const char *dir, const char *expect) {
  LatentSet s;
  RtError err;
  bool ok = lat_open(dir, &s, &err);
  lat_close(&s);
  assert_false(ok);
  if (!strstr(err.msg, expect)) fail_msg("'%s' does not say '%s'", err.msg, expect);
}

static void refuses_faults(void **state) {
  (void)state;
  LatentSet s;
  RtError err;
  assert_true(lat_open(folder("good", &GOOD, &GOOD), &s, &err));
  assert_int_equal(s.n, 4);
  lat_close(&s);
  refused(tmp_path("nowhere"), "nowhere: No such file or directory");
  refused(folder("empty", NULL, NULL), "has no latents-00000.safetensors");
  Shard f = GOOD;
  f.format = "something-else";
  refused(folder("format", &f, NULL), "format/latents-00000.safetensors: not a latent shard");
  f = GOOD, f.moments_dtype = DT_F64;
  refused(folder("dtype", &f, NULL), "tensor 'moments' is f64[2,8,4,4]; expected f32 of rank 4");
  f = GOOD, f.nlabels = 3;
  refused(folder("count", &f, NULL), "3 labels for 2 moments");
  f = GOOD, f.channels2 = 7;
  refused(folder("odd", &f, NULL), "expected [n >= 1, 2C, L, L]");
  f = GOOD, f.scale = 0.25f;
  refused(folder("consts", &GOOD, &f), "consts/latents-00001.safetensors: latents_scale/latents_bias differ");
  f = GOOD, f.side = 8;
  refused(folder("side", &GOOD, &f), "side/latents-00001.safetensors: moments of 8 channels of side 8");
  f = GOOD, f.label = -1;
  refused(folder("label", &f, NULL), "label -1 of item 0 is negative");
  const char *gap = folder("gap", &GOOD, NULL);
  write_shard(gap, 2, &GOOD);
  refused(gap, "shards numbered up to 00002 but only 2 present");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reads_the_fixture),
      cmocka_unit_test(samples_the_posterior),
      cmocka_unit_test(refuses_faults),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
