#!/usr/bin/env bash
# spatial_cmd.sh IREPA_RUN SOURCE_DIR: the spatial commands end to end.
# spatial-metrics on a golden's features (tests/runtime/golden/spatial, from
# tools/gen_spatial_golden.py) writes the runner's JSON with the golden's
# means, null for the NaN images of SRSS with a note; on the Fashion-MNIST
# encoder (untrained weights, init:0) with automatic masks and --layer;
# spatial-corr prints r and draws the figure; viz-spatialnorm draws its PNG;
# bad inputs (wrong rank, mismatched masks, missing file, unknown flag, a
# grid too small for --far-dist) are clear errors with non-zero exits.
set -uo pipefail
run=$(realpath "$1") src=$(realpath "$2")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
source "$src/tests/e2e/expect.sh"
g=$src/tests/runtime/golden/spatial

# features from a file: the means of the golden (mean_lds, ...), to the printed 6 decimals
expect 0 "lds 0.000647 cds -0.001384 srss 0.016575 (4 NaN) rmsc 0.989564" -- "$run" spatial-metrics --features "$g/metrics_masks.safetensors" --tensor features \
  --masks "$g/metrics_masks.safetensors" --out "$tmp/m.json" --name golden
grep -q '"per_image"' "$tmp/m.json" && grep -q '"_meta"' "$tmp/m.json" && grep -q '"golden"' "$tmp/m.json" ||
  { echo "FAIL: $tmp/m.json lacks per_image, _meta or the name"; failures=$((failures + 1)); }
# SRSS of the all-background image is NaN: null in the JSON, with a note
grep -q '"nan_count": 4' "$tmp/m.json" && grep -q 'fewer than 2 foreground' "$tmp/m.json" && grep -q 'null' "$tmp/m.json" ||
  { echo "FAIL: $tmp/m.json: SRSS of the 4 NaN images not null with a note"; failures=$((failures + 1)); }
expect 0 "rmsc" -- "$run" spatial-metrics --features "$g/metrics_random.safetensors" --tensor features --metrics rmsc,cds
expect 0 "srss skipped" -- "$run" spatial-metrics --features "$g/metrics_random.safetensors" --tensor features \
  --out "$tmp/nomask.json"
grep -q 'skipped: no foreground masks' "$tmp/nomask.json" ||
  { echo "FAIL: no note on the skipped SRSS"; failures=$((failures + 1)); }
expect 0 "6x7 tokens" -- "$run" spatial-metrics --features "$g/metrics_smooth.safetensors" --tensor features --grid 6x7

# features from the encoder (untrained), automatic masks, a layer
expect 0 "fmnist-vit-layer2: 6 images, 8x8 tokens of 64" -- "$run" spatial-metrics --encoder fmnist-vit \
  --weights init:0 --num-images 6 --batch-size 4 --layer 2 --backend c --out "$tmp/enc.json"
grep -q '"masks": "auto"' "$tmp/enc.json" || { echo "FAIL: enc.json: masks not auto"; failures=$((failures + 1)); }

# the correlation table and figure
printf 'encoder\tfid\tlp_acc\tlds\tcds\tsrss\trmsc\n' >"$tmp/t.tsv"
printf 'a\t10\t0.8\t0.1\t0.01\t0.2\t0.5\nb\t8\t0.7\t0.2\t0.02\t0.3\t0.6\nc\t6\t-\t0.3\t0.025\t0.5\t0.55\nd\t5\t0.9\t0.35\t0.03\tnan\t0.7\n' >>"$tmp/t.tsv"
expect 0 "lds    vs fid: n 4  pearson r" -- "$run" spatial-corr "$tmp/t.tsv" --out "$tmp/corr.png"
[ -s "$tmp/corr.png" ] || { echo "FAIL: no corr.png"; failures=$((failures + 1)); }
expect 0 "viz-spatialnorm: image 3, 2 encoders, 4 queries" -- "$run" viz-spatialnorm --weights init:0 \
  --weights other=init:1 --image-index 3 --backend c --out "$tmp/viz.png"
[ -s "$tmp/viz.png" ] || { echo "FAIL: no viz.png"; failures=$((failures + 1)); }

# bad inputs
expect 1 "features must be a float tensor [N, H, W, D] or [N, T, D], found f64[8]" -- \
  "$run" spatial-metrics --features "$g/stats.safetensors" --tensor x
expect 1 "holds 11 tensors: name the features with --tensor" -- "$run" spatial-metrics --features "$g/metrics_random.safetensors"
expect 1 "do not fit 4 images of 8x8 tokens" -- "$run" spatial-metrics --features "$g/metrics_random.safetensors" \
  --tensor features --masks "$g/metrics_params.safetensors"
expect 1 "No such file" -- "$run" spatial-metrics --features "$tmp/nothing.safetensors"
expect 2 "unknown option '--frobnicate'" -- "$run" spatial-metrics --frobnicate
expect 2 "give --features FILE or --encoder E" -- "$run" spatial-metrics
expect 1 "lower --far-dist" -- "$run" spatial-metrics --features "$g/metrics_random.safetensors" --tensor features \
  --far-dist 20
expect 1 "42 tokens are not a square grid: give --grid HxW" -- "$run" spatial-metrics \
  --features "$g/metrics_smooth.safetensors" --tensor features
expect 1 "--grid 5x5 is 25 tokens" -- "$run" spatial-metrics --features "$g/metrics_random.safetensors" \
  --tensor features --grid 5x5
expect 1 "has no column 'srss'" -- "$run" spatial-corr <(printf 'encoder fid lds cds rmsc\na 1 2 3 4\n')
expect 1 "No such file" -- "$run" spatial-corr "$tmp/none.tsv"
expect 2 "unknown option '--nope'" -- "$run" viz-spatialnorm --nope
expect 1 "No such file" -- "$run" viz-spatialnorm --weights "$tmp/none.safetensors" --backend c --out "$tmp/v.png"

[ "$failures" -eq 0 ] || { echo "$failures failures"; exit 1; }
echo "ok: spatial-metrics, spatial-corr and viz-spatialnorm, and their bad inputs"
