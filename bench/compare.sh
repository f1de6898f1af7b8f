#!/usr/bin/env bash
# compare.sh [BUILD_DIR]: irepa against PyTorch eager on this machine's CPU,
# in one invocation, as one table (docs/performance.md, "The benchmark").
# Each configuration runs `irepa-run bench --json` and tools/bench_torch.py
# --json with the same model, objective, batch, runs and threads, one after
# the other; the table gives images per second and peak resident memory of
# each side and their ratios (irepa / PyTorch), then the compile time of
# models/sit_xl2_irepa.irg and irepa-run's start-up with a cold and a warm
# kernel cache.
#
# BUILD_DIR (default build-bench) is configured and built first where it
# holds no irepa-run, so the script runs from a clean checkout.
#
# Environment:
#   QUICK=1        STEPS=2 WARMUP=1, and only the batch-8 latent configurations
#   CONFIGS="..."  the rows to run, of: fmnist s2_b8 s2_b32 b2_b8 b2_b32 sample compile startup
#                  (default all; QUICK: fmnist s2_b8 b2_b8 sample compile startup)
#   STEPS, WARMUP  timed and warm-up runs per configuration (default 5 and 2)
#   THREADS        threads of both sides (default: nproc)
#   BACKEND        irepa's backend (default c)
#   PYTHON         a Python with torch (default python3)
#   OUT            keep each run's JSON and log in this directory
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$repo/build-bench}
python=${PYTHON:-python3}
threads=${THREADS:-$(nproc)}
backend=${BACKEND:-c}
if [[ ${QUICK:-0} == 1 ]]; then
  steps=${STEPS:-2} warmup=${WARMUP:-1} configs=${CONFIGS:-"fmnist s2_b8 b2_b8 sample compile startup"}
else
  steps=${STEPS:-5} warmup=${WARMUP:-2} configs=${CONFIGS:-"fmnist s2_b8 s2_b32 b2_b8 b2_b32 sample compile startup"}
fi
out=${OUT:-$(mktemp -d)}
[[ -n ${OUT:-} ]] || trap 'rm -rf "$out"' EXIT
mkdir -p "$out"

if [[ ! -x $build/runtime/irepa-run || ! -x $build/irepac ]]; then
  echo "compare: building $build" >&2
  cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
  cmake --build "$build" -j"$(nproc)" --target irepa-run irepac >&2
fi
run=$build/runtime/irepa-run irepac=$build/irepac
"$python" -c 'import torch' 2>/dev/null || { echo "compare: $python has no torch (pip install torch)" >&2; exit 2; }
export OMP_NUM_THREADS=$threads
# The kernel cache of the runs: warm after the first, except where a row wants it cold.
export IREPA_CACHE_DIR=$out/cache

# Model arguments of tools/bench_torch.py matching each .irg.
fmnist_irg=$repo/bench/sit_t4_fmnist_irepa.irg
fmnist_py=(--model SiT-T/4 --in-channels 1 --num-classes 10 --encoder-depth 2 --z-dim 64 --projector-dim 256)
s2_irg=$repo/bench/sit_s2_irepa.irg
s2_py=(--model SiT-S/2 --in-channels 4 --num-classes 1000 --encoder-depth 4 --z-dim 768 --projector-dim 2048)
b2_irg=$repo/models/sit_b2_irepa.irg
b2_py=(--model SiT-B/2 --in-channels 4 --num-classes 1000 --encoder-depth 4 --z-dim 768 --projector-dim 2048)

# pair NAME LABEL IRG BATCH ENTRY -- TORCH_ARGS...: one row, both sides.
pair() {
  local name=$1 label=$2 irg=$3 batch=$4 entry=$5
  shift 6
  local mode=train
  [[ $entry == train_step ]] || mode=sample
  echo "compare: $label: irepa" >&2
  "$run" bench "$irg" --entry "$entry" --batch "$batch" --steps "$steps" --warmup "$warmup" --threads "$threads" \
    --backend "$backend" --json >"$out/$name.irepa.json" 2>"$out/$name.irepa.log" ||
    { cat "$out/$name.irepa.log" >&2; echo '{}' >"$out/$name.irepa.json"; }
  echo "compare: $label: PyTorch" >&2
  "$python" "$repo/tools/bench_torch.py" "$@" --mode "$mode" --batch "$batch" --steps "$steps" --warmup "$warmup" \
    --threads "$threads" --json >"$out/$name.torch.json" 2>"$out/$name.torch.log" ||
    { cat "$out/$name.torch.log" >&2; echo '{}' >"$out/$name.torch.json"; }
  echo "$name	$label" >>"$out/rows"
}

# The compile time of the largest model: .irg to a program with its
# training step (elaboration, autodiff, fusion, planning, C and CUDA code).
compile_row() {
  echo "compare: compile SiT-XL/2" >&2
  local t0 t1
  t0=$(date +%s%N)
  "$irepac" compile "$repo/models/sit_xl2_irepa.irg" --entry train_loss --train train_loss -o "$out/xl2.irx" \
    >"$out/compile.log" || cat "$out/compile.log" >&2
  t1=$(date +%s%N)
  awk -v ns=$((t1 - t0)) 'BEGIN { printf "{\"seconds\": %.3f}\n", ns / 1e9 }' >"$out/compile.json"
  echo "compile	compile SiT-XL/2 train step, irepac (s)" >>"$out/rows"
}

# irepa-run's start-up on the Fashion-MNIST model: compile in process,
# load (or build) the kernels, one step; in a fresh kernel cache, then again.
startup_row() {
  echo "compare: start-up" >&2
  local args=(bench "$fmnist_irg" --batch 64 --steps 1 --warmup 0 --threads "$threads" --backend "$backend" --json)
  IREPA_CACHE_DIR=$out/cold-cache "$run" "${args[@]}" >"$out/startup.cold.json" 2>"$out/startup.cold.log" || true
  IREPA_CACHE_DIR=$out/cold-cache "$run" "${args[@]}" >"$out/startup.irepa.json" 2>"$out/startup.irepa.log" || true
  "$python" "$repo/tools/bench_torch.py" "${fmnist_py[@]}" --batch 64 --steps 1 --warmup 0 --threads "$threads" \
    --json >"$out/startup.torch.json" 2>"$out/startup.torch.log" || true
  echo "startup	start-up to 1st step, SiT-T/4 b64 (s)" >>"$out/rows"
}

: >"$out/rows"
for c in $configs; do
  case $c in
    fmnist) pair fmnist "SiT-T/4 FMNIST iREPA train b64" "$fmnist_irg" 64 train_step -- "${fmnist_py[@]}" ;;
    s2_b8) pair s2_b8 "SiT-S/2 32x32x4 iREPA train b8" "$s2_irg" 8 train_step -- "${s2_py[@]}" ;;
    s2_b32) pair s2_b32 "SiT-S/2 32x32x4 iREPA train b32" "$s2_irg" 32 train_step -- "${s2_py[@]}" ;;
    b2_b8) pair b2_b8 "SiT-B/2 32x32x4 iREPA train b8" "$b2_irg" 8 train_step -- "${b2_py[@]}" ;;
    b2_b32) pair b2_b32 "SiT-B/2 32x32x4 iREPA train b32" "$b2_irg" 32 train_step -- "${b2_py[@]}" ;;
    sample) pair sample "SiT-T/4 FMNIST sample b64, 50 Euler cfg 4" "$fmnist_irg" 64 euler_step_cfg -- \
      "${fmnist_py[@]}" --sample-steps 50 --cfg-scale 4 ;;
    compile) compile_row ;;
    startup) startup_row ;;
    *) echo "compare: unknown configuration '$c'" >&2; exit 2 ;;
  esac
done

"$python" - "$out" "$threads" "$steps" "$warmup" "$backend" <<'EOF'
import json, os, platform, sys
out, threads, steps, warmup, backend = sys.argv[1:]

def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}

def num(v, fmt):
    return "—" if v is None else fmt % v

def ratio(a, b):
    return "—" if a is None or b is None or b == 0 else "%.2f" % (a / b)

mib = lambda j: j.get("peak_rss_bytes") and j["peak_rss_bytes"] / 2**20
with open(os.path.join(out, "rows")) as f:
    rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
torch_runs = [load(name + ".torch.json") for name, _ in rows] + [{}]
torch_run = next(j for j in torch_runs if j.get("torch") or j is torch_runs[-1])
print("irepa vs PyTorch %s (eager, CPU): %s threads, %s timed runs after %s warm-up, irepa backend %s, %s" % (
    torch_run.get("torch", ""), threads, steps, warmup, backend, platform.processor() or platform.machine()))
print()
print("| configuration | irepa img/s | PyTorch img/s | ratio | irepa peak RSS MiB | PyTorch peak RSS MiB | ratio |")
print("|---|---|---|---|---|---|---|")
for name, label in rows:
    if name == "compile":
        s = load("compile.json").get("seconds")
        print("| %s | %s | — | — | — | — | — |" % (label, num(s, "%.2f")))
        continue
    a, b = load(name + ".irepa.json"), load(name + ".torch.json")
    if name == "startup":
        cold = load("startup.cold.json").get("startup_s")
        ia, tb = a.get("startup_s"), b.get("startup_s")
        print("| %s | %s (cold cache %s) | %s | %s | — | — | — |" % (label, num(ia, "%.2f"), num(cold, "%.1f"),
                                                                    num(tb, "%.2f"), ratio(ia, tb)))
        continue
    ia, tb = a.get("img_per_s"), b.get("img_per_s")
    print("| %s | %s | %s | %s | %s | %s | %s |" % (label, num(ia, "%.4g"), num(tb, "%.4g"), ratio(ia, tb),
                                                   num(mib(a), "%.0f"), num(mib(b), "%.0f"), ratio(mib(a), mib(b))))
print()
print("img/s: batch / median time of a run (a training step, or a whole 50-step sampling of the batch).")
print("Peak RSS: the process's getrusage maximum; PyTorch's includes the interpreter and torch "
      "(%s MiB after import)." % num(mib({"peak_rss_bytes": torch_run.get("rss_after_import_bytes")}), "%.0f"))
EOF
