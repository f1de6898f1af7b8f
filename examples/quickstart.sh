#!/usr/bin/env bash
# quickstart.sh: the README's first command. Installs what is missing,
# builds irepa, and runs the main job on the built-in default: compile the
# SiT-B/2 models with REPA and with iREPA, check them, and list the iREPA
# model's parameters. (Training on Fashion-MNIST arrives with irepa-run.)
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
