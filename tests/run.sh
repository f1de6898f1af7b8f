#!/usr/bin/env bash
# run.sh: builds irepa and runs the whole test suite, as CI does:
#   1. a normal build:            unit, golden (and every label but fuzz, slow, gpu)
#   2. an ASan+UBSan build:       the same tests, so memory errors, leaks and
#                                 undefined behaviour fail them
#   3. a clang libFuzzer build:   the parser+elaborator fuzzer for a bounded time
# Set IREPA_FUZZ_SECONDS to change the fuzzing time (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
bash tools/install_deps.sh

step() { printf '\n== %s\n' "$*"; }
# Both builds generate the same kernel sources: one JIT cache serves both.
cache="-DIREPA_TEST_CACHE_DIR=$PWD/build/jit-cache"

step "normal build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo "$cache" >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs" -LE 'fuzz|slow|gpu'

step "ASan+UBSan build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DIREPA_SANITIZE=ON "$cache" >/dev/null
cmake --build build-asan -j "$jobs"
ctest --test-dir build-asan --output-on-failure -j "$jobs" -LE 'fuzz|slow|gpu'

step "libFuzzer build"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DIREPA_FUZZ=ON \
  -DIREPA_FUZZ_SECONDS="${IREPA_FUZZ_SECONDS:-60}" >/dev/null
cmake --build build-fuzz -j "$jobs"
ctest --test-dir build-fuzz --output-on-failure -L fuzz
