/* tbevents.c: see tbevents.h. Events are encoded by hand into a small
 * buffer (protobuf wire format: a key (field << 3 | wire type), then a
 * varint, 8 or 4 little-endian bytes, or a length-prefixed payload), framed
 * as TFRecords and written through stdio. */
#include "tbevents.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };
enum { MAX_EVENT = 64 + 2 * TB_MAX_TAG, MAX_SUFFIX = 100 };

struct TbWriter {
  FILE *f;
  char path[4096];
};

/* CRC32C: Castagnoli's CRC-32 (RFC 3720), reflected polynomial 0x82F63B78,
 * initial value and final xor 0xFFFFFFFF, one bit at a time (events are a
 * few dozen bytes). zlib's crc32 is the other CRC-32 (0xEDB88320). */
uint32_t tb_crc32c(const void *data, size_t n) {
  const unsigned char *p = data;
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return crc ^ 0xFFFFFFFFu;
}

/* The TFRecord checksum: the CRC rotated right by 15 bits plus a constant. */
static uint32_t masked_crc(const void *data, size_t n) {
  uint32_t crc = tb_crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

/* An encoded message under construction; MAX_EVENT bounds every event
 * that tb_scalar accepts. */
typedef struct {
  unsigned char b[MAX_EVENT];
  size_t n;
} Buf;

static void put_le(Buf *m, uint64_t v, int nbytes) {
  for (int i = 0; i < nbytes; i++) m->b[m->n++] = (unsigned char)(v >> (8 * i));
}

/* Base-128 varint, low groups first; an int64 is taken as its uint64. */
static void put_varint(Buf *m, uint64_t v) {
  while (v >= 0x80) {
    m->b[m->n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  m->b[m->n++] = (unsigned char)v;
}

static void put_key(Buf *m, int field, int wire) { put_varint(m, (uint64_t)(field << 3 | wire)); }

static void put_double(Buf *m, int field, double x) {
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  put_key(m, field, WIRE_FIXED64);
  put_le(m, bits, 8);
}

static void put_float(Buf *m, int field, float x) {
  uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  put_key(m, field, WIRE_FIXED32);
  put_le(m, bits, 4);
}

static void put_bytes(Buf *m, int field, const void *data, size_t n) {
  put_key(m, field, WIRE_LEN);
  put_varint(m, n);
  memcpy(m->b + m->n, data, n);
  m->n += n;
}

static double wall_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One TFRecord: length, its masked CRC, the data, its masked CRC. */
static bool write_record(TbWriter *w, const Buf *m, RtError *err) {
  Buf head = {.n = 0}, tail = {.n = 0};
  put_le(&head, m->n, 8);
  put_le(&head, masked_crc(head.b, 8), 4);
  put_le(&tail, masked_crc(m->b, m->n), 4);
  if (fwrite(head.b, 1, head.n, w->f) != head.n || fwrite(m->b, 1, m->n, w->f) != m->n ||
      fwrite(tail.b, 1, tail.n, w->f) != tail.n)
    return rt_fail(err, "%s: cannot write an event: %s", w->path, strerror(errno));
  return true;
}

/* The host name as a file name component: '/' would name a directory. */
static void host_name(char *out, size_t size) {
  if (gethostname(out, size) != 0 || !out[0]) snprintf(out, size, "localhost");
  out[size - 1] = '\0';
  for (char *c = out; *c; c++)
    if (*c == '/') *c = '_';
}

/* Creates the first free name among base, base.1, base.2, ...; the
 * descriptor, or -1 with a message. */
static int create_new(TbWriter *w, const char *base, RtError *err) {
  for (int k = 0; k < MAX_SUFFIX; k++) {
    int len = k ? snprintf(w->path, sizeof w->path, "%s.%d", base, k) : snprintf(w->path, sizeof w->path, "%s", base);
    if (len < 0 || (size_t)len >= sizeof w->path) {
      rt_fail(err, "%s: event file path too long", base);
      return -1;
    }
    int fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    if (errno != EEXIST) {
      rt_fail(err, "%s: cannot create the event file: %s", w->path, strerror(errno));
      return -1;
    }
  }
  rt_fail(err, "%s: %d event files of that name exist already", base, MAX_SUFFIX);
  return -1;
}

TbWriter *tb_open(const char *dir, RtError *err) {
  TbWriter *w = calloc(1, sizeof *w);
  if (!w) {
    rt_fail(err, "%s: out of memory for an event writer", dir);
    return NULL;
  }
  char host[256], base[sizeof w->path];
  host_name(host, sizeof host);
  double now = wall_time();
  int len = snprintf(base, sizeof base, "%s/events.out.tfevents.%lld.%s", dir, (long long)now, host);
  int fd = -1;
  if (len < 0 || (size_t)len >= sizeof base)
    rt_fail(err, "%s: event file path too long", dir);
  else
    fd = create_new(w, base, err);
  if (fd < 0) {
    free(w);
    return NULL;
  }
  if (!(w->f = fdopen(fd, "wb"))) {
    rt_fail(err, "%s: cannot open the event file: %s", w->path, strerror(errno));
    close(fd);
    free(w);
    return NULL;
  }
  static const char version[] = "brain.Event:2";
  Buf m = {.n = 0};
  put_double(&m, 1, now);
  put_bytes(&m, 3, version, strlen(version));
  if (!write_record(w, &m, err) || !tb_flush(w, err)) {
    tb_close(w);
    return NULL;
  }
  return w;
}

const char *tb_path(const TbWriter *w) { return w->path; }

bool tb_scalar(TbWriter *w, const char *tag, int64_t step, double value, RtError *err) {
  size_t tag_len = strlen(tag);
  if (tag_len == 0 || tag_len > TB_MAX_TAG)
    return rt_fail(err, "%s: scalar tag of %zu bytes; expected 1 to %d", w->path, tag_len, (int)TB_MAX_TAG);
  Buf val = {.n = 0}, sum = {.n = 0}, ev = {.n = 0};
  put_bytes(&val, 1, tag, tag_len);
  put_float(&val, 2, (float)value);
  put_bytes(&sum, 1, val.b, val.n);
  put_double(&ev, 1, wall_time());
  put_key(&ev, 2, WIRE_VARINT);
  put_varint(&ev, (uint64_t)step);
  put_bytes(&ev, 5, sum.b, sum.n);
  return write_record(w, &ev, err);
}

bool tb_flush(TbWriter *w, RtError *err) {
  if (fflush(w->f) != 0) return rt_fail(err, "%s: cannot write events: %s", w->path, strerror(errno));
  return true;
}

void tb_close(TbWriter *w) {
  if (!w) return;
  if (fflush(w->f) == 0) fsync(fileno(w->f));
  fclose(w->f);
  free(w);
}
