#!/usr/bin/env bash
# nvrtc_compile.sh IREPAC FILE.irg [irepac compile options...]
# Compiles every CUDA kernel of FILE.irg with NVRTC to CUBIN for sm_80 and
# sm_90 (irepac compile --arch), as CI does on machines without a GPU, and
# checks that the program carries both CUBINs. Where NVRTC is not
# installed it skips (exit 77), unless IREPA_REQUIRE_NVRTC=1.
set -euo pipefail
irepac=$1 src=$2
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "$irepac" compile "$src" --backend cuda --arch sm_80,sm_90 -o "$tmp/p.irx" "$@" 2>"$tmp/err"; then
  cat "$tmp/err" >&2
  if grep -q "NVRTC not found" "$tmp/err" && [ "${IREPA_REQUIRE_NVRTC:-0}" != 1 ]; then
    echo "skipped: no NVRTC on this machine" >&2
    exit 77
  fi
  exit 1
fi
for arch in sm_80 sm_90; do
  grep -aqF "\"cubin_$arch\"" "$tmp/p.irx" || { echo "FAIL: no CUBIN for $arch in the program" >&2; exit 1; }
done
echo "ok: $src $*: CUDA kernels compiled for sm_80 and sm_90"
