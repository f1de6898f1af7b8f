#!/usr/bin/env bash
# train_mixed_precision.sh IREPA_RUN SOURCE_DIR: --mixed-precision bf16
# (compiler/autocast.c) on the CUDA kernels through cuda-emu, 3 steps of a
# vanilla SiT-T/4 on 40 Fashion-MNIST images against the same run in f32:
# the bf16 run is announced, its gradient norms differ from f32's (the
# matmuls are bf16) but by less than 1e-3, and so do its losses; on the C
# backend bf16 is announced as f32 and logs the f32 losses bit for bit;
# fp16's dynamic loss scale backs off on overflow and resumes bit for bit.
set -euo pipefail
run=$(realpath "$1")
src=$(realpath "$2")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$src/tests/e2e/fmnist_subset.sh"
fmnist_subset "$tmp/fmnist" 40
export IREPA_FMNIST_DIR=$tmp/fmnist
args=(--model SiT-T/4 --num-classes 10 --resolution 32 --proj-coeff 0 --encoder-depth 2 --batch-size 4
      --max-train-steps 3 --threads 2 --sampling-steps 0 --learning-rate 1e-3 --output-dir "$tmp")
fail() { echo "FAIL: $*"; exit 1; }
field() { sed -n "s/.*\"$2\": \\([^,]*\\),.*/\\1/p" "$tmp/$1/log.jsonl"; }

for mp in no bf16; do
  "$run" train "${args[@]}" --backend cuda-emu --mixed-precision $mp --exp-name emu_$mp 2>"$tmp/err" ||
    { cat "$tmp/err"; fail "cuda-emu $mp"; }
done
grep -q "matmuls in bf16 (f32 accumulation)" "$tmp/err" || { cat "$tmp/err"; fail "bf16 not announced"; }
paste <(field emu_no grad_norm) <(field emu_bf16 grad_norm) <(field emu_no loss) <(field emu_bf16 loss) >"$tmp/cmp"
cat "$tmp/cmp"
awk '{ dg = ($1 - $2) / $1; dl = ($3 - $4) / $3; if (dg < 0) dg = -dg; if (dl < 0) dl = -dl
       if (dg > 1e-3 || dl > 1e-3) bad = 1; if (dg > 0) moved = 1 }
     END { exit bad || !moved }' "$tmp/cmp" || fail "bf16 is not within 1e-3 of f32, or equal to it"

for mp in no bf16; do
  "$run" train "${args[@]}" --backend c --mixed-precision $mp --exp-name c_$mp 2>"$tmp/err" ||
    { cat "$tmp/err"; fail "c $mp"; }
done
grep -q "the C backend computes in f32" "$tmp/err" || { cat "$tmp/err"; fail "C bf16 not announced as f32"; }
diff <(cut -d, -f1-5 "$tmp/c_no/log.jsonl") <(cut -d, -f1-5 "$tmp/c_bf16/log.jsonl") || fail "C backend bf16 is not f32"

# fp16 with the dynamic loss scale: from 2^20 the first two steps overflow
# (skipped, the scale halves each time), the next two apply at 2^18; a run
# resumed after step 2 has the scale back from the checkpoint and logs
# the same, bit for bit.
fp16=(--backend cuda-emu --mixed-precision fp16 --loss-scale-init 1048576 --checkpointing-steps 2)
"$run" train "${args[@]}" "${fp16[@]}" --max-train-steps 4 --exp-name fp16 2>"$tmp/err" || { cat "$tmp/err"; fail "fp16"; }
grep -q "matmuls in f16 (f32 accumulation), the rest in f32, with a dynamic loss scale" "$tmp/err" ||
  { cat "$tmp/err"; fail "fp16 not announced"; }
cut -d, -f1,5,8,9 "$tmp/fp16/log.jsonl"
[ "$(grep -c '"skipped": true, "loss_scale": ' "$tmp/fp16/log.jsonl")" -eq 2 ] || fail "expected 2 overflows"
grep -q '"step": 4, .*"skipped": false, "loss_scale": 262144}' "$tmp/fp16/log.jsonl" || fail "step 4 not at 2^18"
grep -q '"grad_norm": null' "$tmp/fp16/log.jsonl" || fail "an overflow's norm is not null"
"$run" train "${args[@]}" "${fp16[@]}" --max-train-steps 2 --exp-name fp16_resumed 2>/dev/null
"$run" train "${args[@]}" "${fp16[@]}" --max-train-steps 4 --exp-name fp16_resumed --resume 2>/dev/null
diff <(cut -d, -f1-5,8,9 "$tmp/fp16/log.jsonl") <(cut -d, -f1-5,8,9 "$tmp/fp16_resumed/log.jsonl") ||
  fail "the resumed fp16 run differs"
echo "ok: bf16 and fp16 matmuls on the CUDA kernels (cuda-emu) near f32, fp16's loss scale; f32 on the C backend"
