/* tbevents.h: TensorBoard event files, for the scalars of a training run
 * (losses, gradient norm, learning rate, images per second).
 *
 * File name: DIR/events.out.tfevents.<unix seconds>.<hostname>, the name
 * TensorBoard looks for; when that file exists already (a second writer in
 * the same second), a counter is appended (".1", ".2", ...). An existing
 * file is never opened for writing (O_EXCL).
 *
 * File layout: a sequence of TFRecords, each
 *   u64 length (little-endian) | u32 masked CRC32C of those 8 bytes |
 *   length bytes of data       | u32 masked CRC32C of the data,
 * where mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2^32) and
 * CRC32C is Castagnoli's CRC (reflected polynomial 0x82F63B78). The data
 * of each record is a serialized tensorflow.Event protobuf
 * (tensorflow/core/util/event.proto, framework/summary.proto):
 *   Event   { 1: wall_time double, 2: step int64,
 *             3: file_version string, 5: summary Summary }
 *   Summary { 1: value repeated Value }
 *   Value   { 1: tag string, 2: simple_value float }
 * The first record is Event{wall_time, file_version: "brain.Event:2"};
 * each scalar is Event{wall_time, step, summary{value{tag, simple_value}}}. */
#ifndef IREPA_TBEVENTS_H
#define IREPA_TBEVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

typedef struct TbWriter TbWriter;

/* Longest tag accepted by tb_scalar, in bytes. */
enum { TB_MAX_TAG = 255 };

/* Creates a new event file in the existing directory dir and writes its
 * first event. NULL with a message naming the file on any failure. */
TbWriter *tb_open(const char *dir, RtError *err);

/* The path of the file w writes. */
const char *tb_path(const TbWriter *w);

/* Appends one scalar event; value is stored as a float (simple_value).
 * The event is buffered: tb_flush or tb_close writes it out. */
bool tb_scalar(TbWriter *w, const char *tag, int64_t step, double value, RtError *err);

/* Writes the buffered events to the file (no fsync). */
bool tb_flush(TbWriter *w, RtError *err);

/* Flushes, fsyncs and closes; frees w. NULL is a no-op. */
void tb_close(TbWriter *w);

/* CRC32C (Castagnoli) of n bytes: the checksum of the record framing,
 * exported for the tests. crc32c("123456789") = 0xE3069283. */
uint32_t tb_crc32c(const void *data, size_t n);

#endif
