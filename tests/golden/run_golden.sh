#!/usr/bin/env bash
# run_golden.sh IREPAC SRC STAGE EXPECTED
# Runs one compiler stage on a good program and compares stdout with the
# committed EXPECTED file. STAGE: ast | ir (irepac dump --stage=STAGE),
# params (irepac params), grad (irepac dump --stage=grad --entry loss) or
# fused or plan (the kernels and the buffer plan of entry loss with its
# backward graph). The compiler runs in SRC's directory on SRC's
# base name, so file names in the output do not depend on the checkout.
# A good program must exit 0 and print nothing on stderr.
# With UPDATE_GOLDEN=1 in the environment, EXPECTED is rewritten instead.
set -euo pipefail
if [ $# -ne 4 ]; then
  echo "usage: $0 IREPAC SRC STAGE EXPECTED" >&2
  exit 2
fi
irepac=$(realpath "$1") src=$2 stage=$3 expected=$(realpath -m "$4")
case $stage in
  ast | ir) cmd=(dump "--stage=$stage") ;;
  params) cmd=(params) ;;
  grad) cmd=(dump --stage=grad --entry loss) ;;
  fused | plan) cmd=(dump "--stage=$stage" --entry loss --grad) ;;
  *) echo "$0: unknown stage '$stage' (ast, ir, params, grad, fused, plan)" >&2; exit 2 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0
(cd "$(dirname "$src")" && "$irepac" "${cmd[@]}" "$(basename "$src")") \
  >"$tmp/out" 2>"$tmp/err" || rc=$?
if [ "$rc" -ne 0 ] || [ -s "$tmp/err" ]; then
  echo "FAIL: irepac ${cmd[*]} $src exited $rc (expected 0 and no diagnostics):" >&2
  cat "$tmp/err" >&2
  exit 1
fi
if [ "${UPDATE_GOLDEN:-0}" = 1 ]; then
  cp "$tmp/out" "$expected"
  echo "rewrote $expected"
  exit 0
fi
if ! diff -u "$expected" "$tmp/out"; then
  echo "FAIL: irepac ${cmd[*]} $src differs from $expected" >&2
  echo "(if the change is intended: UPDATE_GOLDEN=1 ctest -L golden, then review the diff)" >&2
  exit 1
fi
echo "OK: $src $stage matches $(basename "$expected") ($(wc -l <"$tmp/out") lines)"
