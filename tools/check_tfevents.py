#!/usr/bin/env python3
"""Checks TensorBoard event files (runtime/tbevents.c) and prints their scalars.

    python3 tools/check_tfevents.py RUN_DIR/events.out.tfevents.* ...

First, with no package, the TFRecord framing: every record's length and data
CRC32C (masked) must match, and the file must end on a record boundary.
TensorBoard itself stops silently at a bad record, so this is checked here.
Then the events are decoded by the `tensorboard` package (EventAccumulator)
if installed, else by `tensorflow` (summary_iterator), and each scalar is
printed as `tag step value`. Without either, it says it cannot decode them.

Exit status: 0 good, 1 a bad file, 2 neither package is installed.
Never needed by the tests.
"""
import struct
import sys


def crc32c(data):
    """Castagnoli CRC-32, reflected polynomial 0x82F63B78, bit by bit."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked_crc(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def check_framing(path):
    """The number of records; ValueError naming the offset of a bad one."""
    data = open(path, "rb").read()
    at, count = 0, 0
    while at < len(data):
        if len(data) - at < 12:
            raise ValueError(f"{path}: truncated record header at byte {at}")
        (length,) = struct.unpack_from("<Q", data, at)
        (length_crc,) = struct.unpack_from("<I", data, at + 8)
        if length_crc != masked_crc(data[at : at + 8]):
            raise ValueError(f"{path}: bad length CRC at byte {at}")
        end = at + 12 + length
        if end + 4 > len(data):
            raise ValueError(f"{path}: truncated record at byte {at}")
        (data_crc,) = struct.unpack_from("<I", data, end)
        if data_crc != masked_crc(data[at + 12 : end]):
            raise ValueError(f"{path}: bad data CRC at byte {at}")
        at, count = end + 4, count + 1
    return count


def scalars_tensorboard(path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(path, size_guidance={"scalars": 0})
    acc.Reload()
    rows = [(tag, e.step, e.value) for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)]
    return "tensorboard EventAccumulator", acc.file_version, rows


def scalars_tensorflow(path):
    import tensorflow as tf

    rows, version = [], None
    for event in tf.compat.v1.train.summary_iterator(path):
        if event.HasField("file_version"):
            version = event.file_version
        for v in event.summary.value:
            if v.HasField("simple_value"):
                rows.append((v.tag, event.step, v.simple_value))
    return "tensorflow summary_iterator", version, rows


def main(paths):
    if not paths:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    status = 0
    for path in paths:
        try:
            count = check_framing(path)
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            status = 1
            continue
        print(f"{path}: {count} record{'s' if count != 1 else ''}, every length and data CRC32C matches")
        for reader in (scalars_tensorboard, scalars_tensorflow):
            try:
                how, version, rows = reader(path)
                break
            except ImportError:
                continue
        else:
            print("cannot decode the events: neither tensorboard nor tensorflow is installed")
            return 2
        print(f"read with {how}: file version {version}, {len(rows)} scalars")
        for tag, step, value in rows:
            print(f"  {tag} {step} {value:.9g}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
