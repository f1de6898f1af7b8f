#!/usr/bin/env bash
# quickstart.sh: the README's first command. Installs what is missing,
# builds irepa, and runs the main job on the built-in default: check the
# SiT-B/2 models with REPA and with iREPA, list the iREPA model's
# parameters, compile its training objective to a program, and run a tiny
# SiT's training step on the generated C kernels against the interpreter.
# (Training on Fashion-MNIST arrives with irepa-run train.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

echo "== irepac check: both recipes elaborate and shape-check"
build/irepac check models/sit_b2_repa.irg
build/irepac check models/sit_b2_irepa.irg

echo
echo "== REPA -> iREPA is a two-line change"
diff models/sit_b2_repa.irg models/sit_b2_irepa.irg || true

echo
echo "== irepac params models/sit_b2_irepa.irg (first and last lines)"
build/irepac params models/sit_b2_irepa.irg > build/sit_b2_irepa.params
head -n 6 build/sit_b2_irepa.params
echo "..."
tail -n 4 build/sit_b2_irepa.params
echo "(full list: build/sit_b2_irepa.params)"

echo
echo "== irepac compile: the SiT-B/2 iREPA training objective (forward and backward)"
build/irepac compile models/sit_b2_irepa.irg --entry loss --grad -o build/sit_b2_irepa.irx

echo
echo "== a tiny SiT's training step on the generated C kernels, against the interpreter"
golden=tests/numeric/golden/tiny_sit_irepa.safetensors
build/irepac compile tests/golden/sit_tiny.irg --entry loss --grad --backend c -o build/sit_tiny.irx
build/runtime/irepa-run run build/sit_tiny.irx --entry loss --backend c --params "$golden" --inputs "$golden" \
  --out build/sit_tiny_c.safetensors --force
build/runtime/irepa-run run tests/golden/sit_tiny.irg --entry loss --grad --params "$golden" --inputs "$golden" \
  --out build/sit_tiny_interp.safetensors --force
build/tests/e2e/cmp_outputs build/sit_tiny_interp.safetensors build/sit_tiny_c.safetensors 1e-5
