#!/usr/bin/env bash
# train_latents.sh IREPA_RUN INIT_ENCODER SOURCE_DIR: --dataset latents on
# tests/e2e/data/latents_tiny (6 items of SD-VAE-shaped moments in two
# shards, written by tools/gen_latents_fixture.py through
# tools/convert_latents.py): SiT-T/4 on 4x32x32 latents (resolution 256),
# batch 2, 3 steps; the same losses resumed and with 1 or 3 loader threads
# (the posterior's noise is a function of the seed and the sample's place
# in the run). Alignment, a resolution of other latents, a missing or
# truncated shard are errors naming the reason.
set -euo pipefail
run=$(realpath "$1")
src=$(realpath "$3")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
data=$src/tests/e2e/data/latents_tiny
args=(--model SiT-T/4 --num-classes 3 --resolution 256 --encoder-depth 2 --batch-size 2 --checkpointing-steps 2
      --max-train-steps 3 --backend c --threads 2 --output-dir "$tmp/out" --dataset latents --data-dir "$data"
      --proj-coeff 0)
losses() { cut -d, -f1-5 "$tmp/out/$1/log.jsonl"; }
fail() { echo "FAIL: $*"; exit 1; }
same() { diff <(losses "$1") <(losses "$2") || fail "$3"; }
refused() { # refused STATUS PATTERN ARGS...
  local status=$1 pattern=$2 rc=0
  shift 2
  "$run" train "${args[@]}" "$@" --max-train-steps 1 --overwrite --exp-name refused 2>"$tmp/err" || rc=$?
  [ "$rc" -eq "$status" ] || { cat "$tmp/err"; fail "exit $rc, expected $status: $pattern"; }
  grep -q -- "$pattern" "$tmp/err" || { cat "$tmp/err"; fail "no '$pattern'"; }
}

"$run" train "${args[@]}" --exp-name straight --num-workers 3 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
grep -q "latents: 6 items of \[4, 32, 32\]" "$tmp/err" || { cat "$tmp/err"; fail "data summary"; }
[ "$(losses straight | wc -l)" -eq 3 ] || fail "expected 3 log lines"
"$run" train "${args[@]}" --exp-name one_worker --num-workers 1 2>/dev/null
same straight one_worker "1 and 3 loader threads differ"
"$run" train "${args[@]}" --exp-name resumed --max-train-steps 2 2>/dev/null
"$run" train "${args[@]}" --exp-name resumed --resume 2>/dev/null
same straight resumed "the resumed run differs"
"$run" train "${args[@]}" --exp-name seed1 --seed 1 2>/dev/null
cmp -s <(losses straight) <(losses seed1) && fail "another seed gave the same losses"

refused 2 "latents with alignment" --repa-loss --proj-coeff 0.5
refused 1 "holds latents of side 32, which is resolution 256" --resolution 128
mkdir -p "$tmp/part" "$tmp/cut"
cp "$data/latents-00001.safetensors" "$tmp/part/"
refused 1 "$tmp/part: shards numbered up to 00001 but only 1 present" --data-dir "$tmp/part"
cp "$data/latents-00000.safetensors" "$tmp/cut/"
head -c 50000 "$data/latents-00001.safetensors" >"$tmp/cut/latents-00001.safetensors"
refused 1 "$tmp/cut/latents-00001.safetensors" --data-dir "$tmp/cut"
refused 1 "$tmp/nowhere" --data-dir "$tmp/nowhere"
refused 1 "--num-classes 2, but the latents data set has 3 classes" --num-classes 2
echo "ok: latent shards train and resume alike"
losses straight
