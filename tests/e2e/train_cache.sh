#!/usr/bin/env bash
# train_cache.sh IREPA_RUN INIT_ENCODER SOURCE_DIR: --cache-features on the
# first 40 Fashion-MNIST images with an untrained encoder (iREPA: conv
# projector, z-score; SiT-T/4, batch 8, 3 steps). Checks: the run that
# builds the cache, the run that reuses it, and a resumed run log the same
# losses bit for bit as the run that encodes every batch; a truncated or
# corrupted cache is rebuilt, saying why; another encoder gets another
# cache file.
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
args=(--model SiT-T/4 --num-classes 10 --resolution 32 --encoder-depth 2 --batch-size 8 --checkpointing-steps 2
      --max-train-steps 3 --backend c --threads 2 --output-dir "$tmp" --repa-loss --proj-coeff 1.0 --sampling-steps 0
      --enc-type fmnist-vit --projector-dim 64 --projection-layer-type conv --spnorm-method zscore)
losses() { cut -d, -f1-5 "$tmp/$1/log.jsonl"; }
fail() { echo "FAIL: $*"; exit 1; }
same() { diff <(losses encoded) <(losses "$1") >/dev/null || { diff <(losses encoded) <(losses "$1"); fail "$2"; }; }

"$run" train "${args[@]}" --exp-name encoded 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
"$run" train "${args[@]}" --exp-name built --cache-features 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
grep -q "building the feature cache" "$tmp/err" || fail "the cache was not built"
grep -q "caching encoder features: 40/40" "$tmp/err" || fail "no progress line"
same built "building the cache changed the losses"
cache=$(ls "$tmp"/encoders/features-fashion-mnist-*.bin)
[ "$(stat -c %s "$cache")" -eq $((4096 + 40 * 64 * 64 * 4)) ] || fail "cache size"

"$run" train "${args[@]}" --exp-name reused --cache-features 2>"$tmp/err"
grep -q "building\|rebuilding" "$tmp/err" && fail "a valid cache was rebuilt"
same reused "the reused cache changed the losses"

"$run" train "${args[@]}" --exp-name resumed --cache-features --max-train-steps 2 2>/dev/null
"$run" train "${args[@]}" --exp-name resumed --cache-features --resume 2>/dev/null
same resumed "a resumed run with the cache differs"

truncate -s 100000 "$cache"
"$run" train "${args[@]}" --exp-name truncated --cache-features 2>"$tmp/err"
grep -q "is unusable (truncated or overlong: 100000 bytes" "$tmp/err" || { cat "$tmp/err"; fail "truncation not reported"; }
same truncated "the rebuilt cache changed the losses"

printf '\x7f' | dd of="$cache" bs=1 seek=50000 conv=notrunc status=none
"$run" train "${args[@]}" --exp-name corrupt --cache-features 2>"$tmp/err"
grep -q "is unusable (corrupt: the checksum" "$tmp/err" || { cat "$tmp/err"; fail "corruption not reported"; }
same corrupt "the rebuilt cache changed the losses"

"$init" "$tmp/encoders/fmnist-vit.safetensors" 2
"$run" train "${args[@]}" --exp-name other_encoder --cache-features 2>"$tmp/err"
[ "$(ls "$tmp"/encoders/features-fashion-mnist-*.bin | wc -l)" -eq 2 ] || fail "another encoder reused the cache"
cmp -s <(losses encoded) <(losses other_encoder) && fail "another encoder gave the same losses"
ls "$tmp"/encoders/*.tmp* 2>/dev/null && fail "temporary files left behind"
echo "ok: the feature cache gives the losses of the encoder run every step"
losses built
