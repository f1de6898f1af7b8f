#!/usr/bin/env bash
# train_imagefolder.sh IREPA_RUN INIT_ENCODER SOURCE_DIR: --dataset
# imagefolder on folders made of the decoder tests' images
# (tests/runtime/golden/imagefolder). A colour folder trains without
# alignment (SiT-T/4 at 32x32, 3 channels, batch 2, 3 steps), the same
# losses resumed and with 1 or 4 loader threads; alignment on it is refused
# with the reason. A greyscale folder trains with the Fashion-MNIST encoder
# (untrained here), with and without --cache-features alike. A missing or
# empty folder, a corrupt image, a colour image in the greyscale folder and
# too many classes are errors naming the path.
set -euo pipefail
run=$(realpath "$1")
init=$(realpath "$2")
src=$(realpath "$3")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
img=$src/tests/runtime/golden/imagefolder
d=$tmp/data
mkdir -p "$d/colour/cats" "$d/colour/dogs" "$d/grey/coats" "$d/grey/shoes" "$d/empty" "$tmp/out/encoders"
cp "$img"/{rgb_70x50.png,rgb_90x60.jpg,rgba_64x48.png} "$d/colour/cats/"
cp "$img"/{pal_20x28.png,rgb_517x301.png,rgb_70x300.png} "$d/colour/dogs/"
cp "$img"/{bits_33x31.png,grey16_36x30.png} "$d/grey/coats/"
cp "$img"/{grey_45x80.png,la_40x36.png} "$d/grey/shoes/"
"$init" "$tmp/out/encoders/fmnist-vit.safetensors" 3
args=(--model SiT-T/4 --num-classes 2 --resolution 32 --encoder-depth 2 --batch-size 2 --checkpointing-steps 2
      --max-train-steps 3 --backend c --threads 2 --output-dir "$tmp/out" --dataset imagefolder --sampling-steps 0)
colour=("${args[@]}" --data-dir "$d/colour" --proj-coeff 0)
grey=("${args[@]}" --data-dir "$d/grey" --repa-loss --proj-coeff 0.5 --enc-type fmnist-vit --projector-dim 64)
losses() { cut -d, -f1-5 "$tmp/out/$1/log.jsonl"; }
fail() { echo "FAIL: $*"; exit 1; }
same() { diff <(losses "$1") <(losses "$2") || fail "$3"; }
# refused STATUS PATTERN ARGS...: a one-step run fails with STATUS, saying
# PATTERN (a batch of every image reaches the bad one whatever the order)
refused() {
  local status=$1 pattern=$2 rc=0
  shift 2
  "$run" train "$@" --max-train-steps 1 --overwrite --exp-name refused 2>"$tmp/err" || rc=$?
  [ "$rc" -eq "$status" ] || { cat "$tmp/err"; fail "exit $rc, expected $status: $pattern"; }
  grep -q -- "$pattern" "$tmp/err" || { cat "$tmp/err"; fail "no '$pattern'"; }
}

"$run" train "${colour[@]}" --exp-name colour --num-workers 4 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
grep -q "imagefolder: 6 items of \[3, 32, 32\]" "$tmp/err" || { cat "$tmp/err"; fail "data summary"; }
[ "$(losses colour | wc -l)" -eq 3 ] || fail "expected 3 log lines"
"$run" train "${colour[@]}" --exp-name one_worker --num-workers 1 2>/dev/null
same colour one_worker "1 and 4 loader threads differ"
"$run" train "${colour[@]}" --exp-name resumed --max-train-steps 2 2>/dev/null
"$run" train "${colour[@]}" --exp-name resumed --resume 2>/dev/null
same colour resumed "the resumed run differs"

"$run" train "${grey[@]}" --exp-name grey 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
"$run" train "${grey[@]}" --exp-name grey_cached --cache-features 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
ls "$tmp"/out/encoders/features-imagefolder-*.bin >/dev/null || fail "no feature cache"
same grey grey_cached "--cache-features changed the losses on the greyscale folder"
[ -f "$tmp/out/grey/log.jsonl" ] && ! grep -q '"proj_loss": 0,' "$tmp/out/grey/log.jsonl" ||
  fail "no alignment loss on the greyscale folder"

refused 2 "colour images need an ImageNet encoder" "${colour[@]}" --repa-loss --proj-coeff 0.5 --enc-type fmnist-vit \
  --resolution 64
cp "$img/rgb_70x50.png" "$d/grey/shoes/zz_colour.png"
refused 1 "zz_colour.png: a colour image" "${grey[@]}" --batch-size 5
rm "$d/grey/shoes/zz_colour.png"
refused 1 "$d/nowhere" "${colour[@]}" --data-dir "$d/nowhere"
refused 1 "$d/empty" "${colour[@]}" --data-dir "$d/empty"
head -c 300 "$img/rgb_70x50.png" >"$d/colour/dogs/truncated.png"
refused 1 "truncated.png" "${colour[@]}" --batch-size 7
rm "$d/colour/dogs/truncated.png"
mkdir -p "$d/colour/zebras" && cp "$img/rgb_70x50.png" "$d/colour/zebras/"
refused 1 "--num-classes 2, but the imagefolder data set has 3 classes" "${colour[@]}"
echo "ok: image folders train, resume and cache alike"
losses colour
