#!/usr/bin/env bash
# check_jit_sizes.sh IREPAC MODELS_DIR EXPECTED.totals
# Every JiT size of the spec elaborates at 256 px (forward entry, shape-checked)
# and has the parameter total (the Denoiser's net.*, without projectors) that
# tools/gen_jit_golden.py computed in PyTorch.
set -euo pipefail
irepac=$1 models=$(cd "$2" && pwd) expected=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
while read -r name want; do
  [[ $name == \#* ]] && continue
  src=$tmp/model.irg
  printf 'import "%s/jit.irg";\nmodel = JiTDenoiser(model = "%s", img_size = 256, z_dims = [], encoder_depth = 0);\n' \
    "$models" "$name" > "$src"
  "$irepac" check --entry forward "$src" > /dev/null
  got=$("$irepac" params "$src" | awk '$1 == "total" { print $2 }')
  if [[ $got != "$want" ]]; then
    echo "FAIL: $name has $got parameters, PyTorch reference $want" >&2
    status=1
  else
    echo "OK: $name $got"
  fi
done < "$expected"
exit $status
