#!/usr/bin/env bash
# sample_cmd.sh IREPA_RUN SOURCE_DIR: `irepa-run sample` on a checkpoint of
# `irepa-run train` (a vanilla SiT-T/4 on Fashion-MNIST, 2 steps): 8 samples
# with guidance on [0.3, 0.8], ODE (Heun) and SDE; the PNG folder, the grid
# and the .npz are there and the .npz holds 8 uint8 32x32x1 images; the
# same run split in two shards, and a run of the first 5 samples, write the
# same PNG bytes, and the shards the same .npz; bad inputs are clear errors:
# a foreign checkpoint, a missing one, a wrong --model, --cfg-scale < 1.
set -euo pipefail
run=$(realpath "$1") src=$(realpath "$2")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$run" train --model SiT-T/4 --num-classes 10 --resolution 32 --proj-coeff 0 --encoder-depth 2 --batch-size 8 \
  --checkpointing-steps 2 --max-train-steps 2 --backend c --threads 2 --output-dir "$tmp" --exp-name tiny --sampling-steps 0 \
  2>"$tmp/err" || { cat "$tmp/err"; fail "train"; }
ckpt=$tmp/tiny/checkpoints/0000002.safetensors
common=(--ckpt "$ckpt" --num-fid-samples 8 --per-proc-batch-size 4 --num-steps 4 --cfg-scale 2.0
        --guidance-low 0.3 --guidance-high 0.8 --backend c --threads 2)

# name of the outputs, as generate.py makes it: {exp}_{hparams}
sample() { "$run" sample "${common[@]}" "$@" 2>"$tmp/err" || { cat "$tmp/err"; fail "sample $*"; }; }
check_outputs() { # DIR NAME
  local out=$1/$2
  [ "$(ls "$out" | wc -l)" -eq 8 ] || fail "$out: expected 8 PNGs"
  for i in 0 1 2 3 4 5 6 7; do [ -s "$out/00000$i.png" ] || fail "$out/00000$i.png missing"; done
  [ -s "$out-grid.png" ] || fail "$out-grid.png missing"
  [ -s "$out.npz" ] || fail "$out.npz missing"
  # a stored zip: the .npy header names the shape, and the data is 8 * 1024 bytes
  grep -aq "'shape': (8, 32, 32, 1)" "$out.npz" || fail "$out.npz: no arr_0 of shape (8, 32, 32, 1)"
  grep -aq "'descr': '|u1'" "$out.npz" || fail "$out.npz: not uint8"
}

ode=tiny_cfg2.0_0.3_0.8-seed0-modeode-heun-steps4_0000002
sde=tiny_cfg2.0_0.3_0.8-seed0-modesde-steps4_0000002
sample --sample-dir "$tmp/full" --mode ode --heun
check_outputs "$tmp/full" "$ode"
sample --sample-dir "$tmp/full" --mode sde
check_outputs "$tmp/full" "$sde"
cmp -s "$tmp/full/$ode.npz" "$tmp/full/$sde.npz" && fail "ODE and SDE samples are the same"

# the same run in two shards: the same PNGs, and the last shard writes the same .npz and grid
sample --sample-dir "$tmp/shards" --mode sde --shard 0/2
[ -e "$tmp/shards/$sde.npz" ] && fail "shard 0 of 2 wrote the .npz alone"
sample --sample-dir "$tmp/shards" --mode sde --shard 1/2
for f in "$tmp/full/$sde"/*.png "$tmp/full/$sde.npz" "$tmp/full/$sde-grid.png"; do
  cmp "$f" "$tmp/shards/${f#"$tmp/full/"}" || fail "shards: ${f#"$tmp/full/"} differs"
done
# a subset: the first 5 samples, regenerated alone, are the same bytes
"$run" sample "${common[@]}" --num-fid-samples 5 --sample-dir "$tmp/subset" --mode sde 2>"$tmp/err" ||
  { cat "$tmp/err"; fail "subset"; }
[ "$(ls "$tmp/subset/$sde" | wc -l)" -eq 5 ] || fail "subset: expected 5 PNGs"
for i in 0 1 2 3 4; do
  cmp "$tmp/full/$sde/00000$i.png" "$tmp/subset/$sde/00000$i.png" || fail "subset: sample $i differs"
done

# bad inputs
expect_error() { # STATUS PATTERN ARGS...
  local want=$1 pattern=$2 rc=0
  shift 2
  "$run" sample "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ "$rc" -eq "$want" ] || { cat "$tmp/err"; fail "sample $*: exit $rc, expected $want"; }
  grep -q -- "$pattern" "$tmp/err" || { cat "$tmp/err"; fail "sample $*: no '$pattern' in the message"; }
}
expect_error 1 "not a checkpoint of irepa-run train" --ckpt "$src/tests/numeric/golden/tiny_sit_repa.safetensors"
expect_error 1 "No such file" --ckpt "$tmp/nothing.safetensors"
expect_error 1 "is a checkpoint of SiT-T/4" --ckpt "$ckpt" --model SiT-B/2
expect_error 1 "was trained with 10" --ckpt "$ckpt" --num-classes 1000
expect_error 2 "cfg-scale 0.5: must be" --ckpt "$ckpt" --cfg-scale 0.5
expect_error 2 "heun applies to --mode ode" --ckpt "$ckpt" --mode sde --heun
expect_error 2 "unknown option '--cfg'" --ckpt "$ckpt" --cfg 2
expect_error 2 "--shard '2/2'" --ckpt "$ckpt" --shard 2/2
# the alias and snake case
"$run" generate --ckpt="$ckpt" --num_fid_samples 1 --per_proc_batch_size 1 --num-steps 1 --mode ode --backend c \
  --sample-dir "$tmp/alias" 2>"$tmp/err" || { cat "$tmp/err"; fail "generate"; }
[ -s "$tmp/alias/tiny_cfg1.0-seed0-modeode-steps1_0000002/000000.png" ] || fail "generate wrote no sample"
echo "ok: sample writes PNGs, a grid and an .npz; shards and subsets regenerate the same bytes; bad inputs fail clearly"
