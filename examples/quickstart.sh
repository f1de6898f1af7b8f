#!/usr/bin/env bash
# quickstart.sh: the README's first command. Installs what is missing,
# builds irepa, and runs the main job on the built-in default, Fashion-MNIST
# (Debian's dataset-fashion-mnist), on the CPU:
#   1. trains the Fashion-MNIST ViT encoder whose patch tokens are iREPA's
#      targets (once: kept in exps/encoders/),
#   2. trains SiT-T/4 with iREPA for 300 steps (configs/fmnist_quickstart.yaml),
#   3. samples 1,000 garments from the checkpoint (ODE Euler, 50 steps) to
#      PNGs, a grid and an ADM-style .npz,
#   4. measures their domain FID, IS, precision and recall against the
#      10,000 test images, with the encoder as the feature network.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
run=build/runtime/irepa-run
out=exps
start=$SECONDS
phase() { printf '\n== %s (%ds so far)\n' "$*" $((SECONDS - start)); }

phase "1. the encoder: irepa-run train-encoder (skipped when $out/encoders/fmnist-vit.safetensors exists)"
[ -f "$out/encoders/fmnist-vit.safetensors" ] || "$run" train-encoder --output-dir "$out" --epochs 1

phase "2. iREPA training: irepa-run train --config configs/fmnist_quickstart.yaml"
"$run" train --config configs/fmnist_quickstart.yaml --output-dir "$out" --exp-name quickstart --overwrite

phase "3. sampling: irepa-run sample"
rm -rf "$out/quickstart/samples"
"$run" sample --ckpt "$out/quickstart/checkpoints/0000300.safetensors" --no-ema --mode ode --num-steps 50 \
  --num-fid-samples 1000 --per-proc-batch-size 250 --sample-dir "$out/quickstart/samples"
npz=$(ls "$out"/quickstart/samples/*.npz)
grid=$(ls "$out"/quickstart/samples/*grid*.png 2>/dev/null | head -n 1 || true)

phase "4. evaluation: irepa-run eval (domain metrics: the encoder's features, not Inception-v3)"
"$run" eval "$npz" fashion-mnist:test --output-dir "$out" --out "$out/quickstart/eval.json"

phase "done"
echo "samples: $npz"
[ -z "$grid" ] || echo "grid:    $grid"
echo "metrics: $out/quickstart/eval.json"
