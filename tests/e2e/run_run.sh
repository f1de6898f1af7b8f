#!/usr/bin/env bash
# run_run.sh IREPA_RUN REPO: end-to-end checks of `irepa-run run`: the tiny
# SiT objective with gradients from the PyTorch golden's parameters and
# inputs, determinism, and every bad input giving a clear error, the right
# exit status and no output file touched.
set -uo pipefail
run=$1 repo=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
golden=$repo/tests/numeric/golden/tiny_sit_irepa.safetensors
model=$repo/tests/golden/sit_tiny.irg
failures=0

source "$(dirname "$0")/expect.sh"

expect 0 "36 outputs written" -- "$run" run "$model" --entry loss --params "$golden" --inputs "$golden" --grad \
  --out "$tmp/a.safetensors"
expect 0 "outputs written" -- "$run" run "$model" --entry loss --params "$golden" --inputs "$golden" --grad \
  --out "$tmp/b.safetensors"
cmp -s "$tmp/a.safetensors" "$tmp/b.safetensors" || { echo "FAIL: two runs differ" >&2; failures=$((failures + 1)); }
expect 0 "outputs written" -- "$run" run "$model" --entry loss --init --seed 3 --inputs "$golden" \
  --precision f32 --out "$tmp/c.safetensors"
# A kernel reading more than 64 buffers (once the limit; a 12-block SiT's
# gradient-norm sum reads 131).
expect 0 "101 outputs written" -- "$run" run "$repo/tests/e2e/data/wide_params.irg" --entry loss --init --grad \
  --backend c --out "$tmp/wide.safetensors"

# Bad usage: exit 2, nothing written.
cp "$tmp/a.safetensors" "$tmp/keep.safetensors"
expect 2 "exists; pass --force" -- "$run" run "$model" --entry loss --init --inputs "$golden" --out "$tmp/keep.safetensors"
cmp -s "$tmp/a.safetensors" "$tmp/keep.safetensors" || { echo "FAIL: --out was modified" >&2; failures=$((failures + 1)); }
expect 2 "unknown option '--bogus'" -- "$run" run "$model" --entry loss --bogus --out "$tmp/x"
expect 2 "needs --entry" -- "$run" run "$model" --out "$tmp/x"
expect 2 "unknown backend 'gpu'" -- "$run" run "$model" --entry loss --backend gpu --out "$tmp/x"
expect 2 "--params or --init, not both" -- "$run" run "$model" --entry loss --init --params "$golden" --out "$tmp/x"
expect 2 "unknown command" -- "$run" fly
expect 2 "exp-name is required" -- "$run" train

# Bad data: exit 1 naming the thing, nothing written.
expect 1 "give --params FILE or --init" -- "$run" run "$model" --entry loss --inputs "$golden" --out "$tmp/x"
expect 1 "missing input 'x0' (expected f32[B,4,8,8])" -- "$run" run "$model" --entry loss --init --out "$tmp/x"
expect 1 "no entry named 'nope'" -- "$run" run "$model" --entry nope --init --out "$tmp/x"
expect 1 "cannot open" -- "$run" run "$model" --entry loss --params "$tmp/none.safetensors" --out "$tmp/x"
head -c 100 "$golden" > "$tmp/truncated.safetensors"
expect 1 "exceeds the file" -- "$run" run "$model" --entry loss --params "$tmp/truncated.safetensors" --out "$tmp/x"
printf 'module M() { entry f(x0: f32[B, 3]) -> f32[B, 3] { return x0 * 2.0; } }\nmodel = M();\n' > "$tmp/m.irg"
expect 1 "input 'x0': expected f32[B,3], found f64[2,4,8,8]" -- "$run" run "$tmp/m.irg" --entry f --inputs "$golden" \
  --out "$tmp/x"
[[ -e $tmp/x ]] && { echo "FAIL: an output was written after an error" >&2; failures=$((failures + 1)); }

echo "$((failures == 0 ? 1 : 0)) passed, $failures failed"
exit $((failures > 0))
