#!/usr/bin/env bash
# bench_cmd.sh IREPA_RUN IREPAC REPO: `irepa-run bench` end to end on the
# tiny SiT: a training step, a sampler run with guidance, another entry, a
# program compiled by irepac, the JSON form; then bad input, each a clear
# error with the right exit status. The report's fields are checked, never
# its timings.
set -uo pipefail
run=$1 irepac=$2 repo=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export IREPA_CACHE_DIR=${IREPA_CACHE_DIR:-$tmp/cache}
model=$repo/tests/golden/sit_tiny.irg
failures=0

source "$(dirname "$0")/expect.sh"

# has PATTERN...: every fragment is in the last command's stdout.
has() {
  for p in "$@"; do
    grep -qF -- "$p" "$tmp/stdout" || { echo "FAIL: no '$p' in:" >&2; cat "$tmp/stdout" >&2; failures=$((failures + 1)); }
  done
}

quick=(--batch 2 --steps 2 --warmup 1 --backend c --threads 1)
expect 0 "entry train_step (loss train_loss), batch 2, c backend" -- "$run" bench "$model" "${quick[@]}"
has "time per run median" "(2 runs after 1 warm-up)" "img/s" "FLOP per run;" "FLOP/s achieved" \
  "MFU          n/a (a CPU backend" "optimiser state" "peak RSS"
expect 0 "entry euler_step_cfg (3 steps, cfg 4)" -- "$run" bench "$model" "${quick[@]}" --entry euler_step_cfg \
  --sample-steps 3
has "FLOP per run;" "optimiser state 0.0 MiB"
expect 0 "entry forward, batch 2" -- "$run" bench "$model" "${quick[@]}" --entry forward
expect 0 '"mode": "train"' -- "$run" bench "$model" "${quick[@]}" --json
has '"img_per_s": ' '"gflop_per_s": ' '"mfu": null' '"run_s": {"median": ' '"peak_rss_bytes": ' \
  '"arena_bytes": ' '"compile_s": '

# A program compiled with its training step runs, with the FLOP count the
# compiler stored in it: the same as from the .irg.
expect 0 "entry train_step: forward" -- "$irepac" compile "$model" --entry train_loss --train train_loss --backend c \
  -o "$tmp/t.irx"
"$run" bench "$model" "${quick[@]}" | grep "FLOP per run" | sed 's/ per run.*//' >"$tmp/flops_irg"
expect 0 "FLOP per run;" -- "$run" bench "$tmp/t.irx" "${quick[@]}"
has "load         " "throughput" "$(cat "$tmp/flops_irg")"

# Bad usage and bad input.
expect 2 "--batch: '0' is not an integer" -- "$run" bench "$model" --batch 0
expect 2 "--batch N is required" -- "$run" bench "$model"
expect 2 "unknown option '--bogus'" -- "$run" bench "$model" --batch 2 --bogus
expect 2 "unknown backend 'gpu'" -- "$run" bench "$model" --batch 2 --backend gpu
expect 2 "cannot read '$tmp/none.irg'" -- "$run" bench "$tmp/none.irg" --batch 2
expect 2 "--steps: 'x' is not an integer" -- "$run" bench "$model" --batch 2 --steps x
expect 2 "bench needs one PROGRAM.irx or FILE.irg" -- "$run" bench --batch 2
expect 1 "the model has no entry 'nope'" -- "$run" bench "$model" --batch 2 --entry nope --backend c
expect 1 "does not compile" -- "$run" bench "$model" --batch 2 --loss nope --backend c
"$irepac" compile "$model" --entry forward --backend c -o "$tmp/f.irx" >/dev/null
expect 1 "has no entry 'train_step' (compile one in with irepac compile --train LOSS)" -- \
  "$run" bench "$tmp/f.irx" --batch 2 --backend c

echo "$((failures == 0 ? 1 : 0)) passed, $failures failed"
exit $((failures > 0))
