#!/usr/bin/env bash
# train_jit.sh IREPA_RUN INIT_ENCODER SOURCE_DIR: `irepa-run train --model
# JiT-T/4` (models/jit.irg's Denoiser, docs/jit.md) on the first 40
# Fashion-MNIST images with iREPA (configs/jit/irepa.yaml, a 3x3 conv
# projector, z-score alpha 0.8) against an untrained encoder, flags in the
# jit side's snake case, batch 8 (5 steps an epoch), lr warm-up over 1 epoch.
# Checks: the parameters are the Denoiser's (net.*); the lr rises from 0 by
# 1/5 of 1e-4 a step; 2 steps then --resume
# to 4 log the same losses bit for bit as 4 steps straight, which also
# writes sample grids with JiT's sampler (so sampling does not move
# training); a vanilla JiT (no alignment) trains too; `irepa-run sample`
# samples the checkpoint with JiT's Heun and guidance and refuses the SDE;
# --online_eval logs FID and IS after each epoch and --evaluate_gen repeats
# the last; the flip is on by default; what cannot work is refused upfront.
set -euo pipefail
run=$(realpath "$1")
init=$(realpath "$2")
src=$(realpath "$3")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$src/tests/e2e/fmnist_subset.sh"
fmnist_subset "$tmp/fmnist" 40
export IREPA_FMNIST_DIR=$tmp/fmnist
mkdir -p "$tmp/encoders"
"$init" "$tmp/encoders/fmnist-vit.safetensors" 1
base=(--model JiT-T/4 --num_classes 10 --resolution 32 --batch_size 8 --checkpointing_steps 2 --backend c
      --threads 2 --output_dir "$tmp" --sampling_steps 0 --enc_type fmnist-vit --encoder_depth 2
      --warmup_epochs 1 --learning_rate 1e-4)
args=("${base[@]}" --config "$src/configs/jit/irepa.yaml")
losses() { cut -d, -f1-5 "$tmp/$1/log.jsonl"; }
fail() { echo "FAIL: $*"; exit 1; }

"$run" train "${args[@]}" --exp_name straight --max_train_steps 4 --sample_every 4 --n_samples 4 2>"$tmp/err" ||
  { cat "$tmp/err"; exit 1; }
grep -q "JiT-T/4, .* parameters, c backend, with alignment" "$tmp/err" || { cat "$tmp/err"; fail "no JiT banner"; }
# the jit trainer's defaults, for what neither the flags nor the YAML set
for kv in "proj_kwargs_kernel_size: 3" "zscore_alpha: 0.8" "adam_beta2: 0.95" "max_grad_norm: 0.0" "epochs: 200"; do
  grep -qx "$kv" "$tmp/err" || { cat "$tmp/err"; fail "the JiT default $kv was not applied"; }
done
grep -qx "warmup_epochs: 1.0" "$tmp/err" || fail "--warmup_epochs 1 was overridden"
ckpt=$tmp/straight/checkpoints/0000004.safetensors
[ -f "$ckpt" ] || fail "no checkpoint"
head -c 65536 "$ckpt" | grep -q '"net.blocks.0.attn.q_norm.weight"' || fail "checkpoint lacks net.* names"
head -c 65536 "$ckpt" | grep -q '"net.projectors.0.projection_layer.weight"' || fail "checkpoint lacks the projector"
"$run" train "${args[@]}" --exp_name resumed --max_train_steps 2 2>/dev/null
"$run" train "${args[@]}" --exp_name resumed --max_train_steps 4 --resume 2>/dev/null
[ "$(losses straight | wc -l)" -eq 4 ] || fail "expected 4 log lines"
grep -q '"step": 1,.*"lr": 0,' "$tmp/straight/log.jsonl" || fail "the warm-up does not start at 0"
grep -q '"step": 4,.*"lr": 6e-05,' "$tmp/straight/log.jsonl" || fail "step 4's lr is not 3/5 of 1e-4"
diff <(losses straight) <(losses resumed) || fail "resumed run differs"
for s in 0000001 0000004; do
  [ -s "$tmp/straight/samples/$s.png" ] || fail "no sample grid $s"
done
"$run" train "${base[@]}" --exp_name vanilla --max_train_steps 2 --P_mean -0.6 --P_std 1.0 --t_eps 0.1 \
  --noise_scale 0.5 --blr 1e-4 2>"$tmp/err" ||
  { cat "$tmp/err"; exit 1; }
grep -q "no alignment (vanilla JiT)" "$tmp/err" || fail "vanilla run not announced"
grep -qx "noise_scale: 0.5" "$tmp/err" || fail "--noise_scale not taken"
# without --max_train_steps a JiT trains --epochs of floor(40 / 8) steps;
# --online_eval samples the EMA (here = the weights) after every epoch
evalargs=(--eval_freq 1 --num_images 20 --gen_bsz 10 --num_sampling_steps 2 --eval_reference fashion-mnist:train)
"$run" train "${base[@]}" --exp_name epochs --epochs 2 --warmup_epochs 0 --lr 1e-3 --ema_decay1 0 --online_eval \
  "${evalargs[@]}" 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
grep -qx "max_train_steps: 10" "$tmp/err" || { cat "$tmp/err"; fail "max_train_steps is not 2 epochs"; }
[ "$(grep -c '"loss"' "$tmp/epochs/log.jsonl")" -eq 10 ] || fail "the epochs run did not take 10 steps"
fids() { grep -o '"step": [0-9]*, "fid_cfg1.0_res32_fmnist-vit": [0-9.e+-]*' "$tmp/epochs/log.jsonl"; }
[ "$(fids | cut -d, -f1 | tr '\n' ' ')" = '"step": 5 "step": 10 ' ] || { cat "$tmp/epochs/log.jsonl"; fail "no FID after each epoch"; }
grep -q "is_cfg1.0_res32_fmnist-vit" "$tmp/epochs/log.jsonl" || fail "no Inception Score logged"
# --evaluate_gen: the latest checkpoint again, the same FID, nothing trained or lost
"$run" train "${base[@]}" --exp_name epochs --resume --evaluate_gen --ema_decay1 0 "${evalargs[@]}" 2>"$tmp/err" ||
  { cat "$tmp/err"; fail "--evaluate_gen"; }
[ "$(grep -c '"loss"' "$tmp/epochs/log.jsonl")" -eq 10 ] || fail "--evaluate_gen changed the training log"
[ "$(fids | tail -n 1)" = "$(fids | sed -n 2p)" ] || { fids; fail "--evaluate_gen gave another FID"; }
# the flip (the jit default) changes what a step sees; --hflip false turns it off
for f in true false; do
  "$run" train "${base[@]}" --exp_name "flip_$f" --max_train_steps 1 --hflip "$f" 2>/dev/null
done
[ "$(losses flip_true)" != "$(losses flip_false)" ] || fail "--hflip made no difference"
expect_error() { # expect_error MESSAGE ARGS...: train fails with MESSAGE and writes no run
  local msg=$1
  shift
  if "$run" train "$@" 2>"$tmp/err"; then fail "accepted: $*"; fi
  grep -qF -- "$msg" "$tmp/err" || { cat "$tmp/err"; fail "no message '$msg'"; }
}
expect_error "the cache holds the features of the images as stored" "${args[@]}" --exp_name e1 --cache_features
expect_error "--online-eval is the jit trainer's" --model SiT-T/4 --num-classes 10 --resolution 32 --exp-name e2 \
  --output-dir "$tmp" --online-eval
expect_error "--evaluate-gen evaluates a checkpoint of the run" "${base[@]}" --exp_name e3 --evaluate_gen
expect_error "--online-eval: $tmp/fmnist/t10k" "${base[@]}" --exp_name e4 --online_eval
expect_error "the fmnist-vit weights $tmp/none.safetensors" "${base[@]}" --exp_name e5 --online_eval \
  --eval_reference fashion-mnist:train --encoder_weights "$tmp/none.safetensors"
# a model that does not compile leaves no run that would refuse the next try
expect_error "encoder_depth must be in 0..depth" "${args[@]}" --exp_name e6 --encoder_depth 9
[ ! -e "$tmp/e6/config.yaml" ] || fail "a run that did not start wrote its config.yaml"
"$run" train "${args[@]}" --exp_name e6 --max_train_steps 1 2>/dev/null || fail "the run after a failed start"
for e in e1 e2 e3 e4 e5; do [ ! -e "$tmp/$e" ] || fail "a refused run left $tmp/$e"; done
"$run" sample --ckpt "$ckpt" --mode ode --heun --num-steps 3 --cfg-scale 2.0 --num-fid-samples 4 \
  --per-proc-batch-size 4 --backend c --sample-dir "$tmp/samples" 2>"$tmp/err" || { cat "$tmp/err"; fail "sample"; }
ls "$tmp/samples/"*.npz >/dev/null 2>&1 || fail "sample wrote no .npz"
"$run" sample --ckpt "$ckpt" --mode ode --num-steps 2 --num-fid-samples 2 --backend c --ema2 \
  --sample-dir "$tmp/ema2" 2>"$tmp/err" || { cat "$tmp/err"; fail "sample --ema2"; }
grep -q "second EMA weights" "$tmp/err" || { cat "$tmp/err"; fail "--ema2 not announced"; }
if "$run" sample --ckpt "$ckpt" --no-ema --ema2 --sample-dir "$tmp/x" 2>"$tmp/err"; then fail "--no-ema --ema2 accepted"; fi
if "$run" sample --ckpt "$ckpt" --mode sde --num-steps 3 --num-fid-samples 1 --backend c \
  --sample-dir "$tmp/sde" 2>"$tmp/err"; then
  fail "JiT sampled with the SDE"
fi
grep -q "whose sampler is an ODE" "$tmp/err" || { cat "$tmp/err"; fail "no message for --mode sde"; }
echo "ok: JiT-T/4 trains with iREPA, resumes bit for bit, writes grids and samples"
losses straight
