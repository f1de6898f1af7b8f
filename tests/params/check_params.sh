#!/usr/bin/env bash
# check_params.sh IREPAC MODEL.irg EXPECTED.params
# Compares `irepac params` (name, shape, element count, in order, and the
# total) with a list produced by tools/gen_params_golden.py from the PyTorch
# implementation of the spec (tools/sit_ref.py).
set -euo pipefail
irepac=$1 model=$2 expected=$3
actual=$("$irepac" params "$model" | awk '$1 == "total" { print "total", $2; next }
                                          /^#/ { next }
                                          { print $1, $2, $NF }')
if ! diff -u <(grep -v '^#' "$expected") <(printf '%s\n' "$actual"); then
  echo "FAIL: $model parameters differ from $expected (PyTorch reference)" >&2
  exit 1
fi
echo "OK: $model matches $expected: $(grep -c . <<<"$actual") lines, $(tail -n 1 <<<"$actual")"
