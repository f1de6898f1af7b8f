#!/usr/bin/env python3
"""convert_latents.py: the reference's SD-VAE latent cache to irepa's latent
shards, which `irepa-run train --dataset latents --data-dir OUT_DIR` reads
(runtime/latents.c; the format is in docs/formats.md, "Latent shards").

    python3 tools/convert_latents.py SOURCE OUT_DIR
        (--latents-stats sdvae-ft-mse-f8d4-latents-stats.pt | --scale S --bias B)
        [--labels imagenet_train_labels.txt] [--shard-size 10000]
        [--max-images N] [--overwrite]

SOURCE is one of
  - a folder written by REPA's `preprocessing/dataset_tools.py encode`
    (`vae-sd/`): NNNNN/img-mean-std-NNNNNNNN.npy, each float32 [8, 32, 32] =
    concat(mean, std), and dataset.json {"labels": [[name, label], ...]};
    items are taken in the order of REPA's CustomDataset (sorted relative
    paths of the .npy files), labels looked up by name;
  - a .zip archive of the same (dataset_tools.py --dest=x.zip);
  - a Hugging Face `datasets` folder (save_to_disk), as the iREPA reference
    stores `imagenet-latents-sdvae-ft-mse-f8d4/`: field `data` per item, the
    label from a `label` field, else from --labels (one integer per line,
    the reference's imagenet_train_labels.txt). Needs `datasets`.

The stored moments are the posterior's mean (channels 0..C-1) and standard
deviation (C..2C-1), not a log-variance (spec/training.md §6). Training
standardises z = mean + std * n as (z - bias) * scale per channel, with the
constants written into every shard: from the reference's
`sdvae-ft-mse-f8d4-latents-stats.pt` (keys latents_scale, latents_bias;
needs torch), or given with --scale/--bias (one value, or one per channel;
REPA itself uses --scale 0.18215 --bias 0). There is no default, so that
no run silently trains on the wrong constants.

Output: OUT_DIR/latents-00000.safetensors, latents-00001..., each with
`moments` f32[n, 2C, L, L], `labels` i64[n], `latents_scale` and
`latents_bias` f32[C], metadata format = irepa-latents-1. Each shard is
written to a temporary file and renamed into place. Only numpy is needed
(the safetensors files are written directly).
"""
import argparse
import io
import json
import os
import struct
import sys
import zipfile

import numpy as np

FORMAT = "irepa-latents-1"


def fail(msg):
    sys.exit(f"convert_latents.py: error: {msg}")


# ---- reading the sources ---------------------------------------------------

def as_moments(arr, name):
    """One item's moments as float32 [2C, L, L] (a leading 1 is squeezed, as the reference does)."""
    arr = np.asarray(arr)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or arr.shape[0] % 2 or arr.shape[1] != arr.shape[2]:
        fail(f"{name}: moments of shape {list(arr.shape)}; expected [2C, L, L]")
    if not np.issubdtype(arr.dtype, np.floating):
        fail(f"{name}: moments of dtype {arr.dtype}; expected floats")
    return np.ascontiguousarray(arr, dtype=np.float32)


def repa_labels(text, where):
    labels = json.loads(text).get("labels")
    if labels is None:
        return None
    return {str(k).replace("\\", "/"): v for k, v in labels}


def read_repa_folder(root, max_images):
    names = sorted(
        os.path.relpath(os.path.join(d, f), root).replace("\\", "/")
        for d, _, files in os.walk(root) for f in files if f.lower().endswith(".npy"))
    meta = os.path.join(root, "dataset.json")
    labels = repa_labels(open(meta).read(), meta) if os.path.isfile(meta) else None
    names = names[:max_images] if max_images else names
    return names, labels, lambda name: np.load(os.path.join(root, name), allow_pickle=False)


def read_repa_zip(path, max_images):
    z = zipfile.ZipFile(path)
    names = sorted(n for n in z.namelist() if n.lower().endswith(".npy"))
    labels = repa_labels(z.read("dataset.json").decode(), path) if "dataset.json" in z.namelist() else None
    names = names[:max_images] if max_images else names
    return names, labels, lambda name: np.load(io.BytesIO(z.read(name)), allow_pickle=False)


def iter_repa(source, label_file, max_images):
    names, labels, load = (read_repa_zip if zipfile.is_zipfile(source) else read_repa_folder)(source, max_images)
    if not names:
        fail(f"{source}: no .npy files (expected REPA's dataset_tools.py encode output)")
    if labels is None:
        if label_file is None:
            fail(f"{source}: dataset.json has no labels; give --labels FILE")
        labels = dict(zip(names, label_file))
    for name in names:
        if name not in labels:
            fail(f"{source}: no label for {name} in dataset.json")
        yield as_moments(load(name), f"{source}/{name}"), labels[name]


def iter_hf(source, label_file, max_images):
    try:
        import datasets
    except ImportError:
        fail(f"{source} is a Hugging Face datasets folder; reading it needs `pip install datasets`")
    ds = datasets.load_from_disk(source)
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["train"]
    if "data" not in ds.column_names:
        fail(f"{source}: no field 'data' (columns: {ds.column_names})")
    has_label = "label" in ds.column_names
    if not has_label and label_file is None:
        fail(f"{source}: no field 'label'; give --labels FILE (imagenet_train_labels.txt)")
    n = min(len(ds), max_images) if max_images else len(ds)
    for i in range(n):
        row = ds[i]
        label = row["label"] if has_label else label_file[i]
        yield as_moments(row["data"], f"{source}[{i}]"), label


def read_label_file(path):
    if path is None:
        return None
    with open(path) as f:
        return [int(line) for line in f if line.strip()]


# ---- the standardisation constants ------------------------------------------

def parse_values(text, flag):
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        fail(f"{flag}: '{text}' is not a comma-separated list of numbers")


def read_constants(args):
    """(scale, bias) lists as given; checked before anything is read or removed."""
    if args.latents_stats:
        if args.scale is not None or args.bias is not None:
            fail("give --latents-stats or --scale/--bias, not both")
        try:
            import torch
        except ImportError:
            fail(f"{args.latents_stats}: reading a .pt file needs torch; or give --scale/--bias")
        stats = torch.load(args.latents_stats, map_location="cpu", weights_only=False)
        return stats["latents_scale"].reshape(-1).tolist(), stats["latents_bias"].reshape(-1).tolist()
    if args.scale is not None and args.bias is not None:
        return parse_values(args.scale, "--scale"), parse_values(args.bias, "--bias")
    fail("no standardisation constants: give --latents-stats FILE.pt (the reference's "
         "sdvae-ft-mse-f8d4-latents-stats.pt) or --scale and --bias (REPA: --scale 0.18215 --bias 0)")


def fit_constants(values, channels):
    """One value per latent channel (a single value is repeated)."""
    out = []
    for name, v in zip(("scale", "bias"), values):
        v = v * channels if len(v) == 1 else v
        if len(v) != channels:
            fail(f"{len(v)} {name} values for {channels} latent channels")
        out.append(np.asarray(v, dtype=np.float32))
    return out


# ---- writing -----------------------------------------------------------------

def safetensors_bytes(tensors, metadata):
    """tensors: [(name, array)] in data order; little-endian, no gaps."""
    dtypes = {np.dtype(np.float32): ("F32", "<f4"), np.dtype(np.int64): ("I64", "<i8")}
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, arr in tensors:
        tag, le = dtypes[arr.dtype]
        blob = np.ascontiguousarray(arr, dtype=le).tobytes()
        header[name] = {"dtype": tag, "shape": list(arr.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # data starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write_shard(out_dir, index, moments, labels, scale, bias):
    path = os.path.join(out_dir, f"latents-{index:05d}.safetensors")
    meta = {"format": FORMAT, "count": str(len(labels))}
    data = safetensors_bytes([("moments", np.stack(moments)), ("labels", np.asarray(labels, dtype=np.int64)),
                              ("latents_scale", scale), ("latents_bias", bias)], meta)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def existing_shards(out_dir, overwrite):
    """Shards already in out_dir: refused without --overwrite, removed just before the first new one is written."""
    if not os.path.isdir(out_dir):
        return []
    old = sorted(f for f in os.listdir(out_dir) if f.startswith("latents-") and f.endswith(".safetensors"))
    if old and not overwrite:
        fail(f"{out_dir} already holds {len(old)} latent shards; pass --overwrite to replace them")
    return [os.path.join(out_dir, f) for f in old]


def clear(out_dir, old):
    os.makedirs(out_dir, exist_ok=True)
    for f in old:
        os.remove(f)


def convert(args):
    given = read_constants(args)
    labels_from_file = read_label_file(args.labels)
    is_hf = os.path.isdir(args.source) and any(
        os.path.exists(os.path.join(args.source, f)) for f in ("dataset_info.json", "state.json", "dataset_dict.json"))
    if not os.path.exists(args.source):
        fail(f"{args.source}: no such file or directory")
    items = (iter_hf if is_hf else iter_repa)(args.source, labels_from_file, args.max_images)
    old = existing_shards(args.out_dir, args.overwrite)
    shape, scale, bias = None, None, None
    moments, labels, shard, total = [], [], 0, 0
    for m, label in items:
        if shape is None:
            shape = m.shape
            scale, bias = fit_constants(given, shape[0] // 2)
        elif m.shape != shape:
            fail(f"item {total}: moments of shape {list(m.shape)}, the first item's are {list(shape)}")
        if int(label) < 0:
            fail(f"item {total}: negative label {label}")
        moments.append(m)
        labels.append(int(label))
        total += 1
        if len(labels) == args.shard_size:
            if shard == 0:
                clear(args.out_dir, old)
            print(write_shard(args.out_dir, shard, moments, labels, scale, bias), file=sys.stderr)
            moments, labels, shard = [], [], shard + 1
    if labels:
        if shard == 0:
            clear(args.out_dir, old)
        print(write_shard(args.out_dir, shard, moments, labels, scale, bias), file=sys.stderr)
        shard += 1
    if total == 0:
        fail(f"{args.source}: no items")
    print(f"{total} items of moments {list(shape)} in {shard} shards under {args.out_dir}; "
          f"scale {scale.tolist()}, bias {bias.tolist()}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source")
    p.add_argument("out_dir")
    p.add_argument("--latents-stats", help="the reference's sdvae-ft-mse-f8d4-latents-stats.pt (needs torch)")
    p.add_argument("--scale", help="latents_scale: one value or one per channel, comma-separated")
    p.add_argument("--bias", help="latents_bias: one value or one per channel, comma-separated")
    p.add_argument("--labels", help="one integer label per line, in item order (imagenet_train_labels.txt)")
    p.add_argument("--shard-size", type=int, default=10000, help="items per shard (default 10000: 328 MB at 8x32x32)")
    p.add_argument("--max-images", type=int, help="convert only the first N items")
    p.add_argument("--overwrite", action="store_true", help="replace shards already in OUT_DIR")
    args = p.parse_args()
    if args.shard_size < 1:
        fail("--shard-size must be at least 1")
    convert(args)


if __name__ == "__main__":
    main()
