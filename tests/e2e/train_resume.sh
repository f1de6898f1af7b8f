#!/usr/bin/env bash
# train_resume.sh IREPA_RUN: `irepa-run train` on Fashion-MNIST (a vanilla
# SiT-T/4, batch 8): 2 steps, then --resume to 4, logs the same losses bit
# for bit as 4 steps straight; 1 and 2 threads give the same losses; an
# existing run folder is refused without --resume or --overwrite.
set -euo pipefail
run=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=(--model SiT-T/4 --num-classes 10 --resolution 32 --proj-coeff 0 --encoder-depth 2 --batch-size 8
      --checkpointing-steps 2 --backend c --output-dir "$tmp" --sampling-steps 0)
losses() { cut -d, -f1-5 "$tmp/$1/log.jsonl"; }

# grids (steps 1, 2 and 4) in the straight run only: sampling must not move training
"$run" train "${args[@]}" --exp-name straight --max-train-steps 4 --threads 2 --sampling-steps 2 --n-samples 4 \
  2>"$tmp/err" ||
  { cat "$tmp/err"; exit 1; }
"$run" train "${args[@]}" --exp-name resumed --max-train-steps 2 --threads 2 2>/dev/null
"$run" train "${args[@]}" --exp-name resumed --max-train-steps 4 --threads 2 --resume 2>/dev/null
"$run" train "${args[@]}" --exp-name one_thread --max-train-steps 4 --threads 1 2>/dev/null
[ "$(losses straight | wc -l)" -eq 4 ] || { echo "FAIL: expected 4 log lines"; exit 1; }
diff <(losses straight) <(losses resumed) || { echo "FAIL: resumed run differs"; exit 1; }
diff <(losses straight) <(losses one_thread) || { echo "FAIL: 1 thread differs from 2"; exit 1; }
[ -f "$tmp/straight/checkpoints/0000004.safetensors" ] && [ -f "$tmp/straight/config.yaml" ] ||
  { echo "FAIL: run folder incomplete"; exit 1; }
for s in 0000001 0000002 0000004; do
  [ -s "$tmp/straight/samples/$s.png" ] || { echo "FAIL: no sample grid $s"; exit 1; }
done
[ ! -e "$tmp/resumed/samples" ] || { echo "FAIL: --sampling-steps 0 wrote grids"; exit 1; }
if "$run" train "${args[@]}" --exp-name straight --max-train-steps 4 2>"$tmp/err"; then
  echo "FAIL: an existing run was overwritten"; exit 1
fi
grep -q "holds an earlier run" "$tmp/err" || { cat "$tmp/err"; exit 1; }
echo "ok: resume and thread count give identical losses"
losses straight
