#!/usr/bin/env bash
# run_compile.sh IREPAC IREPA_RUN REPO: `irepac compile` and running the
# .irx it writes with `irepa-run run`, end to end: the program's outputs on
# the C backend and on the emulated CUDA kernels agree with the interpreter
# (through cmp_outputs), and every bad program file or flag is a
# clear error with the right exit status and nothing written.
set -uo pipefail
irepac=$1 run=$2 cmp=$3 repo=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export IREPA_CACHE_DIR=${IREPA_CACHE_DIR:-$tmp/cache}
model=$repo/tests/golden/sit_tiny.irg
golden=$repo/tests/numeric/golden/tiny_sit_irepa.safetensors
failures=0

source "$(dirname "$0")/expect.sh"

expect 0 "entry loss: " -- "$irepac" compile "$model" --entry loss --grad -o "$tmp/tiny.irx"
expect 0 "36 outputs written" -- "$run" run "$tmp/tiny.irx" --entry loss --params "$golden" --inputs "$golden" \
  --backend c --out "$tmp/c.safetensors"
expect 0 "36 outputs written" -- "$run" run "$tmp/tiny.irx" --entry loss --params "$golden" --inputs "$golden" \
  --backend cuda-emu --out "$tmp/emu.safetensors"
expect 0 "36 outputs written" -- "$run" run "$model" --entry loss --params "$golden" --inputs "$golden" --grad \
  --out "$tmp/interp.safetensors"
expect 0 "36 outputs written" -- "$run" run "$model" --entry loss --params "$golden" --inputs "$golden" --grad \
  --backend c --out "$tmp/c2.safetensors"
expect 0 "36 tensors agree" -- "$cmp" "$tmp/interp.safetensors" "$tmp/c.safetensors" 1e-5
expect 0 "36 tensors agree" -- "$cmp" "$tmp/interp.safetensors" "$tmp/emu.safetensors" 1e-5
expect 0 "36 tensors agree" -- "$cmp" "$tmp/c.safetensors" "$tmp/c2.safetensors" 0

# Bad usage: exit 2.
expect 2 "compile needs -o" -- "$irepac" compile "$model"
expect 2 "unknown backend 'gpu'" -- "$irepac" compile "$model" -o "$tmp/x.irx" --backend gpu
expect 2 "does not go with --backend c" -- "$irepac" compile "$model" -o "$tmp/x.irx" --backend c --arch sm_80
expect 2 "needs --entry" -- "$irepac" compile "$model" -o "$tmp/x.irx" --grad
expect 2 "unknown backend 'gpu'" -- "$run" run "$model" --entry loss --backend gpu --out "$tmp/x"
expect 2 "--grad, --wrt, -I and --precision apply to .irg" -- "$run" run "$tmp/tiny.irx" --entry loss --grad \
  --init --inputs "$golden" --out "$tmp/x"
expect 2 "the interpreter runs .irg sources" -- "$run" run "$tmp/tiny.irx" --entry loss --backend interp --init \
  --inputs "$golden" --out "$tmp/x"

# Bad programs: exit 1 naming the file and the fault, nothing written.
expect 1 "no entry named 'nope'" -- "$run" run "$tmp/tiny.irx" --entry nope --init --out "$tmp/x"
head -c 1000 "$tmp/tiny.irx" > "$tmp/truncated.irx"
expect 1 "truncated.irx: truncated or padded" -- "$run" run "$tmp/truncated.irx" --entry loss --init --out "$tmp/x"
cp "$tmp/tiny.irx" "$tmp/damaged.irx"
printf 'X' | dd of="$tmp/damaged.irx" bs=1 seek=5000 conv=notrunc status=none
expect 1 "damaged.irx: damaged: checksum mismatch" -- "$run" run "$tmp/damaged.irx" --entry loss --init --out "$tmp/x"
cp "$tmp/tiny.irx" "$tmp/v9.irx"
printf '\x09' | dd of="$tmp/v9.irx" bs=1 seek=8 conv=notrunc status=none
expect 1 "v9.irx: program format version 9; this build reads version 1" -- "$run" run "$tmp/v9.irx" --entry loss --init --out "$tmp/x"
expect 1 "missing input 'x0' (expected f32[B,4,8,8])" -- "$run" run "$tmp/tiny.irx" --entry loss --init \
  --backend c --out "$tmp/x"
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then
  expect 1 "no CUDA driver" -- "$run" run "$tmp/tiny.irx" --entry loss --init --inputs "$golden" --backend cuda \
    --out "$tmp/x"
fi
"$irepac" compile "$model" --entry loss --backend c -o "$tmp/c_only.irx" >/dev/null
expect 1 "has no CUDA kernels" -- "$run" run "$tmp/c_only.irx" --entry loss --init --inputs "$golden" \
  --backend cuda-emu --out "$tmp/x"
[[ -e $tmp/x ]] && { echo "FAIL: an output was written after an error" >&2; failures=$((failures + 1)); }

# A failed compile leaves an existing program as it was.
cp "$tmp/tiny.irx" "$tmp/keep.irx"
printf 'model = Nope();\n' > "$tmp/bad.irg"
expect 1 "Nope" -- "$irepac" compile "$tmp/bad.irg" -o "$tmp/keep.irx"
printf 'module M() { }\n' > "$tmp/lib.irg"
expect 1 "declares no model" -- "$irepac" compile "$tmp/lib.irg" -o "$tmp/keep.irx"
cmp -s "$tmp/tiny.irx" "$tmp/keep.irx" || { echo "FAIL: a failed compile changed the program" >&2; failures=$((failures + 1)); }

echo "$((failures == 0 ? 1 : 0)) passed, $failures failed"
exit $((failures > 0))
