/* Tests of runtime/tbevents.c: the CRC32C check value; event files read
 * back by a small reader here that checks every record's length and data
 * CRCs and decodes the Event protobuf (version, tag, step, value); a
 * second writer in the same second gets a new file and leaves the first
 * alone; a directory that cannot take the file and bad tags are errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tbevents.h"

#define TMPDIR_TEMPLATE "/tmp/irepa-tbevents-XXXXXX"
#include "tmpdir.h"

enum { MAX_EVENTS = 16 };

/* The fields of one decoded Event (the ones tbevents.c writes). */
typedef struct {
  double wall_time;
  int64_t step;
  char version[32];
  bool has_value;
  char tag[TB_MAX_TAG + 1];
  float value;
} Event;

static uint32_t masked(const unsigned char *p, size_t n) {
  uint32_t c = tb_crc32c(p, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static uint64_t get_le(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static uint64_t get_varint(const unsigned char **p, const unsigned char *end) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    assert_true(*p < end && shift < 64);
    unsigned char b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
}

/* Walks the fields of one message, calling on_field for each; the payload
 * of a length-delimited field is [data, data + len). */
typedef void (*OnField)(Event *e, int field, int wire, uint64_t v, const unsigned char *data);

static void walk(const unsigned char *p, const unsigned char *end, Event *e, OnField on_field) {
  while (p < end) {
    uint64_t key = get_varint(&p, end), v = 0;
    int wire = (int)(key & 7), field = (int)(key >> 3);
    const unsigned char *data = p;
    if (wire == 0) {
      v = get_varint(&p, end);
    } else if (wire == 1 || wire == 5) {
      int n = wire == 1 ? 8 : 4;
      assert_true(end - p >= n);
      v = get_le(p, n);
      p += n;
    } else {
      assert_int_equal(wire, 2);
      v = get_varint(&p, end);
      assert_true(v <= (uint64_t)(end - p));
      data = p;
      p += v;
    }
    on_field(e, field, wire, v, data);
  }
}

static void value_field(Event *e, int field, int wire, uint64_t v, const unsigned char *data) {
  e->has_value = true;
  if (field == 1 && wire == 2) {
    assert_true(v <= TB_MAX_TAG);
    memcpy(e->tag, data, v);
    e->tag[v] = '\0';
  } else if (field == 2 && wire == 5) {
    uint32_t bits = (uint32_t)v;
    memcpy(&e->value, &bits, 4);
  } else {
    fail_msg("unexpected Value field %d (wire type %d)", field, wire);
  }
}

static void summary_field(Event *e, int field, int wire, uint64_t v, const unsigned char *data) {
  assert_int_equal(field, 1);
  assert_int_equal(wire, 2);
  assert_false(e->has_value); /* one value per summary */
  walk(data, data + v, e, value_field);
}

static void event_field(Event *e, int field, int wire, uint64_t v, const unsigned char *data) {
  if (field == 1 && wire == 1) {
    memcpy(&e->wall_time, &v, 8);
  } else if (field == 2 && wire == 0) {
    e->step = (int64_t)v;
  } else if (field == 3 && wire == 2) {
    assert_true(v < sizeof e->version);
    memcpy(e->version, data, v);
    e->version[v] = '\0';
  } else if (field == 5 && wire == 2) {
    walk(data, data + v, e, summary_field);
  } else {
    fail_msg("unexpected Event field %d (wire type %d)", field, wire);
  }
}

/* Reads every record of the file at path into ev[]; returns their count.
 * Each length and data CRC must match, and the file must end on a record. */
static int read_events(const char *path, Event *ev) {
  static unsigned char buf[1 << 16];
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  size_t size = fread(buf, 1, sizeof buf, f);
  fclose(f);
  assert_true(size < sizeof buf);
  int count = 0;
  for (size_t at = 0; at < size; count++) {
    assert_true(count < MAX_EVENTS && size - at >= 12);
    const unsigned char *head = buf + at;
    uint64_t len = get_le(head, 8);
    assert_int_equal(get_le(head + 8, 4), masked(head, 8));
    assert_true(len <= size - at - 16);
    const unsigned char *data = head + 12;
    assert_int_equal(get_le(data + len, 4), masked(data, len));
    memset(&ev[count], 0, sizeof ev[count]);
    walk(data, data + len, &ev[count], event_field);
    at += 16 + len;
  }
  return count;
}

static void crc32c_check_value(void **state) {
  (void)state;
  assert_int_equal(tb_crc32c("123456789", 9), 0xE3069283u);
  assert_int_equal(tb_crc32c("", 0), 0);
}

static void writes_scalars_that_read_back(void **state) {
  (void)state;
  RtError err;
  TbWriter *w = tb_open(tmpdir, &err);
  assert_non_null(w);
  char path[512], host[256] = "", prefix[512];
  snprintf(path, sizeof path, "%s", tb_path(w));
  gethostname(host, sizeof host);
  snprintf(prefix, sizeof prefix, "%s/events.out.tfevents.", tmpdir);
  assert_memory_equal(path, prefix, strlen(prefix));
  assert_non_null(strstr(path + strlen(prefix), host));

  char long_tag[201];
  memset(long_tag, 'a', 200);
  long_tag[200] = '\0';
  const struct { const char *tag; int64_t step; double value; } want[] = {
      {"loss/flow", 0, 1.5}, {"loss/align", (int64_t)1 << 40, 0.1}, {"lr", -3, -2.5e-4}, {long_tag, 7, 1e30}};
  const int n = (int)(sizeof want / sizeof want[0]);
  for (int i = 0; i < n; i++) assert_true(tb_scalar(w, want[i].tag, want[i].step, want[i].value, &err));
  assert_true(tb_flush(w, &err));

  Event ev[MAX_EVENTS];
  assert_int_equal(read_events(path, ev), n + 1);
  tb_close(w);
  assert_int_equal(read_events(path, ev), n + 1);
  assert_string_equal(ev[0].version, "brain.Event:2");
  assert_false(ev[0].has_value);
  assert_true(ev[0].wall_time > (double)time(NULL) - 60 && ev[0].wall_time <= (double)time(NULL) + 1);
  for (int i = 0; i < n; i++) {
    const Event *e = &ev[i + 1];
    assert_true(e->has_value);
    assert_string_equal(e->tag, want[i].tag);
    assert_int_equal(e->step, want[i].step);
    assert_true(e->value == (float)want[i].value);
    assert_string_equal(e->version, "");
    assert_true(e->wall_time >= ev[0].wall_time);
  }
}

/* Two writers in one second: the second file is the first's name plus
 * ".1", and each file holds its own events only. */
static void never_clobbers_a_file(void **state) {
  (void)state;
  char dir[512];
  snprintf(dir, sizeof dir, "%s", tmp_path("twice"));
  assert_int_equal(mkdir(dir, 0777), 0);
  RtError err;
  TbWriter *a = NULL, *b = NULL;
  for (int tries = 0; tries < 5; tries++) {
    time_t t0 = time(NULL);
    a = tb_open(dir, &err);
    assert_non_null(a);
    assert_true(tb_scalar(a, "a", 1, 1.0, &err) && tb_flush(a, &err));
    b = tb_open(dir, &err);
    assert_non_null(b);
    if (time(NULL) == t0) break;
    tb_close(a);
    tb_close(b);
    a = b = NULL;
  }
  assert_non_null(b);
  char want[600];
  snprintf(want, sizeof want, "%s.1", tb_path(a));
  assert_string_equal(tb_path(b), want);
  assert_true(tb_scalar(b, "b", 2, 2.0, &err));
  tb_close(b);
  Event ev[MAX_EVENTS];
  assert_int_equal(read_events(tb_path(a), ev), 2);
  assert_string_equal(ev[1].tag, "a");
  assert_int_equal(read_events(want, ev), 2);
  assert_string_equal(ev[1].tag, "b");
  tb_close(a);
}

static void expect_open_error(const char *dir, const char *reason) {
  RtError err = {.msg = ""};
  assert_null(tb_open(dir, &err));
  assert_non_null(strstr(err.msg, dir));
  assert_non_null(strstr(err.msg, "cannot create the event file"));
  if (!strstr(err.msg, reason)) fail_msg("'%s' does not say '%s'", err.msg, reason);
}

static void refuses_what_it_cannot_write(void **state) {
  (void)state;
  char dir[512];
  snprintf(dir, sizeof dir, "%s", tmp_path("missing"));
  expect_open_error(dir, "No such file or directory");

  snprintf(dir, sizeof dir, "%s", tmp_path("plain"));
  FILE *f = fopen(dir, "w");
  assert_non_null(f);
  fclose(f);
  expect_open_error(dir, "Not a directory");

  if (geteuid() != 0) { /* root writes into read-only directories */
    snprintf(dir, sizeof dir, "%s", tmp_path("readonly"));
    assert_int_equal(mkdir(dir, 0500), 0);
    expect_open_error(dir, "Permission denied");
  }

  RtError err = {.msg = ""};
  TbWriter *w = tb_open(tmpdir, &err);
  assert_non_null(w);
  char long_tag[TB_MAX_TAG + 2];
  memset(long_tag, 'x', TB_MAX_TAG + 1);
  long_tag[TB_MAX_TAG + 1] = '\0';
  assert_false(tb_scalar(w, long_tag, 0, 0.0, &err));
  assert_non_null(strstr(err.msg, "tag of 256 bytes"));
  assert_false(tb_scalar(w, "", 0, 0.0, &err));
  assert_non_null(strstr(err.msg, "tag of 0 bytes"));
  tb_close(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(crc32c_check_value),
      cmocka_unit_test(writes_scalars_that_read_back),
      cmocka_unit_test(never_clobbers_a_file),
      cmocka_unit_test(refuses_what_it_cannot_write),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
