#!/usr/bin/env bash
# fmnist_spatial_metrics.sh: does the spatial structure of an encoder's
# patch tokens predict how much REPA alignment to it helps, on
# Fashion-MNIST (issue 9, docs/spatial_metrics.md)? For a few encoders:
# the spatial metrics of their tokens on 1,000 test images, a short REPA
# run of SiT-T/4 aligned to each, the domain FID of its samples, and the
# correlation table and figure (irepa-run spatial-corr).
#
# The encoders are the Fashion-MNIST ViT (models/encoders/fmnist_vit.irg)
# with different weights: trained for 1 epoch (ENC1), for 5 epochs (ENC5,
# optional), untrained (the init rules, seed 0), and the 1-epoch encoder
# cut after block K: its blocks after K are made identities by zeroing
# their residual branches' output layers (attn.proj and mlp.fc2, weights
# and biases), so that its entry `features` returns exactly what
# `spatial-metrics --layer K` measures and `irepa-run train` aligns to it.
#
# Every FID is evaluated with the same 1-epoch classifier (ENC1), whatever
# encoder the run aligned to.
#
#   RUN=build/runtime/irepa-run INIT=build/tests/e2e/init_encoder OUT=exps/spatial \
#   STEPS=400 ENC1=exps/encoders/fmnist-vit.safetensors ENC5=... bash examples/fmnist_spatial_metrics.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-build/runtime/irepa-run} INIT=${INIT:-build/tests/e2e/init_encoder} OUT=${OUT:-exps/spatial}
STEPS=${STEPS:-400} ENC1=${ENC1:-exps/encoders/fmnist-vit.safetensors} ENC5=${ENC5:-}
NSAMPLES=${NSAMPLES:-500} ENCODERS=${ENCODERS:-final1 random layer1 final5 layer2}
mkdir -p "$OUT/encoders" "$OUT/metrics" "$OUT/eval"

# ---- the encoders' weights --------------------------------------------------
cut_after() { # K SRC DST: blocks after K become identities
  python3 - "$1" "$2" "$3" <<'PY'
import re, sys
from safetensors.numpy import load_file, save_file
k, src, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
w = load_file(src)
for name in w:
    m = re.match(r"blocks\.(\d+)\.(attn\.proj|mlp\.fc2)\.", name)
    if m and int(m.group(1)) >= k:
        w[name] = w[name] * 0
save_file(w, dst, metadata={"format": "irepa-encoder-1", "model": "models/encoders/fmnist_vit.irg",
                            "note": f"{src} cut after block {k}"})
PY
}
weights_of() { echo "$OUT/encoders/$1.safetensors"; }
[ -f "$(weights_of final1)" ] || cp "$ENC1" "$(weights_of final1)"
[ -f "$(weights_of random)" ] || "$INIT" "$(weights_of random)" 0
[ -f "$(weights_of layer1)" ] || cut_after 1 "$ENC1" "$(weights_of layer1)"
[ -f "$(weights_of layer2)" ] || cut_after 2 "$ENC1" "$(weights_of layer2)"
[ -z "$ENC5" ] || [ -f "$(weights_of final5)" ] || cp "$ENC5" "$(weights_of final5)"

cat >"$OUT/repa.yaml" <<EOF
# SiT-T/4 with REPA (MLP projector, no spatial normalisation) on Fashion-MNIST,
# as exps/rvi-small's fmnist_repa.yaml, $STEPS steps.
dataset: fashion-mnist
model: SiT-T/4
num_classes: 10
resolution: 32
encoder_depth: 2
batch_size: 64
max_train_steps: $STEPS
checkpointing_steps: 100
learning_rate: 1.0e-4
enc_type: fmnist-vit
projector_dim: 256
projection_layer_type: mlp
spnorm_method: none
proj_coeff: "0.5"
repa_loss: true
sampling_steps: 100000
EOF

# ---- per encoder: metrics, training, samples, FID ------------------------------
fid_of() { # ENC STEP
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["fid_fmnist-vit"])' "$OUT/eval/$1-$2.json"
}
for enc in $ENCODERS; do
  w=$(weights_of "$enc")
  [ -f "$w" ] || { echo "skip $enc: no $w"; continue; }
  "$RUN" spatial-metrics --encoder fmnist-vit --weights "$w" --num-images 1000 --name "$enc" \
    --out "$OUT/metrics/$enc.json" | tee -a "$OUT/metrics.log"
  ckpt=$OUT/runs/repa-$enc/checkpoints/$(printf '%07d' "$STEPS").safetensors
  [ -f "$ckpt" ] || "$RUN" train --config "$OUT/repa.yaml" --exp-name "repa-$enc" --output-dir "$OUT/runs" --seed 0 \
    --encoder-weights "$w" --threads 0 --log-every 50 --overwrite
  for step in $((STEPS - 100)) "$STEPS"; do
    [ -f "$OUT/eval/$enc-$step.json" ] && continue
    "$RUN" sample --ckpt "$OUT/runs/repa-$enc/checkpoints/$(printf '%07d' "$step").safetensors" \
      --sample-dir "$OUT/samples/$enc-$step" --num-fid-samples "$NSAMPLES" --per-proc-batch-size 100 --mode ode \
      --num-steps 25 --cfg-scale 1.0 --global-seed 0 --threads 0 --no-ema
    "$RUN" eval "$OUT/samples/$enc-$step"/*.npz fashion-mnist:test --encoder-weights "$ENC1" --threads 0 \
      --out "$OUT/eval/$enc-$step.json"
  done
done

# ---- the table and the figure ------------------------------------------------
{
  printf 'encoder\tfid\tfid_a\tfid_b\tlds\tcds\tsrss\trmsc\n'
  for enc in $ENCODERS; do
    [ -f "$OUT/eval/$enc-$STEPS.json" ] || continue
    a=$(fid_of "$enc" $((STEPS - 100))) b=$(fid_of "$enc" "$STEPS")
    python3 - "$OUT/metrics/$enc.json" "$enc" "$a" "$b" <<'PY'
import json, sys
path, enc, a, b = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
m = json.load(open(path))[enc]
v = [m[k]["mean"] for k in ("lds", "cds", "srss", "rmsc")]
print("\t".join([enc, "%.3f" % ((a + b) / 2), "%.3f" % a, "%.3f" % b] + ["%.6f" % x for x in v]))
PY
  done
} >"$OUT/table.tsv"
cat "$OUT/table.tsv"
"$RUN" spatial-corr "$OUT/table.tsv" --out "$OUT/spatial_corr.png" --title-suffix " (Fashion-MNIST)" | tee "$OUT/corr.txt"
