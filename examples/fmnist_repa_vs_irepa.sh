#!/usr/bin/env bash
# fmnist_repa_vs_irepa.sh: the paper's comparison at laptop scale. Trains
# vanilla SiT (no alignment loss), REPA (MLP projector, no spatial
# normalisation) and iREPA (conv projector, spatial z-score) on
# Fashion-MNIST with the same seed, model, batch and steps; samples every
# checkpoint; evaluates each sample set against the Fashion-MNIST test
# images with irepa's own classifier (domain FID, IS, precision, recall);
# and writes docs/results.md (between markers, so a rerun replaces its own
# part only) and docs/results_fid.png.
#
# Every phase skips work whose output is already there (a finished run, a
# sample .npz, an eval .json), so an interrupted run continues where it
# stopped; delete OUT to start afresh. Parameters (environment):
#   STEPS=2000 CKPT_EVERY=500 BATCH=64  training (the shipped configs' values)
#   NSAMPLES=2000 SAMPLE_STEPS=50 SAMPLE_BATCH=100  sampling (ODE Euler, cfg 1)
#   EMA=0        1: sample the EMA weights (see below why 0 is the default)
#   ENCODER_EPOCHS=2  the Fashion-MNIST ViT's training, when the script trains it
#   METHODS="vanilla repa irepa"  which runs (a subset, or more runs later:
#                the finished ones are kept and all appear in the report);
#                jit_vanilla jit_repa jit_irepa are the same three with JiT-T/4
#                (configs/fmnist_jit_*.yaml; sampled with JiT's sampler)
#   SECTION=fmnist_repa_vs_irepa.sh  the marker of the report's part that a
#                run rewrites (another name: another part, e.g. for the JiT rows)
#   SEED=0 THREADS=0 OUT=exps/repa_vs_irepa BUILD=build
#   RESULTS=docs/results.md  SCALE_NOTE="" (a line put above the table)
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-2000}
CKPT_EVERY=${CKPT_EVERY:-500}
BATCH=${BATCH:-64}
NSAMPLES=${NSAMPLES:-2000}
SAMPLE_STEPS=${SAMPLE_STEPS:-50}
SAMPLE_BATCH=${SAMPLE_BATCH:-100}
EMA=${EMA:-0}
SEED=${SEED:-0}
THREADS=${THREADS:-0}
OUT=${OUT:-exps/repa_vs_irepa}
BUILD=${BUILD:-build}
RESULTS=${RESULTS:-docs/results.md}
SECTION=${SECTION:-fmnist_repa_vs_irepa.sh}
CHART=${CHART:-${RESULTS%.md}_fid.png}
SCALE_NOTE=${SCALE_NOTE:-}
ENCODER_EPOCHS=${ENCODER_EPOCHS:-2}
read -r -a METHODS <<<"${METHODS:-vanilla repa irepa}"
RUN=$BUILD/runtime/irepa-run
ENCODER=$OUT/exps/encoders/fmnist-vit.safetensors
TIMES=$OUT/wallclock.tsv   # phase, method, step, seconds
CMDS=$OUT/commands.txt     # every command that did work, in order

# An incremental build: a stale irepa-run may lack `plot` or the fashion-mnist: reference.
bash tools/install_deps.sh
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" --target irepa-run >/dev/null
mkdir -p "$OUT/configs" "$OUT/samples" "$OUT/eval"
touch "$TIMES" "$CMDS"

# Runs a command, logs it to CMDS and its wall-clock to TIMES.
timed() {
  local phase=$1 method=$2 step=$3
  shift 3
  echo "$*" >>"$CMDS"
  echo "== [$phase $method $step] $*" >&2
  local t0 t1
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  printf '%s\t%s\t%s\t%.1f\n' "$phase" "$method" "$step" "$(awk -v a="$t0" -v b="$t1" "BEGIN { print b - a }")" >>"$TIMES"
}

# ---- the encoder whose patch tokens REPA/iREPA align to, and eval's features
if [ ! -f "$ENCODER" ]; then
  timed train-encoder - - "$RUN" train-encoder --output "$ENCODER" --epochs "$ENCODER_EPOCHS" \
    --threads "$THREADS"
fi

# ---- training. YAML keys overwrite command-line flags (docs/cli.md), so the
# run's length goes into a derived copy of each shipped config.
config_for() {
  local m=$1 f=$OUT/configs/fmnist_$1.yaml
  sed -e "s/^max_train_steps:.*/max_train_steps: $STEPS/" \
      -e "s/^checkpointing_steps:.*/checkpointing_steps: $CKPT_EVERY/" \
      -e "s/^batch_size:.*/batch_size: $BATCH/" "configs/fmnist_$m.yaml" >"$f"
  echo "$f"
}

ckpt_steps() {
  local s
  for ((s = CKPT_EVERY; s <= STEPS; s += CKPT_EVERY)); do echo "$s"; done
  [ $((STEPS % CKPT_EVERY)) -eq 0 ] || echo "$STEPS"
}

for m in "${METHODS[@]}"; do
  cfg=$(config_for "$m")
  last=$(printf '%s/exps/%s/checkpoints/%07d.safetensors' "$OUT" "$m" "$STEPS")
  [ -f "$last" ] && continue
  resume=()
  [ -d "$OUT/exps/$m/checkpoints" ] && ls "$OUT/exps/$m/checkpoints/"*.safetensors >/dev/null 2>&1 && resume=(--resume)
  [ -d "$OUT/exps/$m" ] && [ ${#resume[@]} -eq 0 ] && resume=(--overwrite)
  timed train "$m" "$STEPS" "$RUN" train --config "$cfg" --exp-name "$m" --output-dir "$OUT/exps" \
    --seed "$SEED" --encoder-weights "$ENCODER" --threads "$THREADS" --log-every 10 "${resume[@]}"
done

# ---- sampling: ODE Euler, no guidance (cfg 1), SAMPLE_STEPS steps, the
# same seed (so the same noise and labels) for every method and step. The
# shipped configs keep ema_decay 0.9999, whose average spans ~10,000 steps:
# after 2,000 steps the EMA is still ~82% the initial weights, so by default
# the online weights are sampled (EMA=1 to use the EMA).
ema_flag=(--no-ema)
[ "$EMA" = 1 ] && ema_flag=()
for m in "${METHODS[@]}"; do
  for s in $(ckpt_steps); do
    dir=$OUT/samples/$m-$s
    ls "$dir"/*.npz >/dev/null 2>&1 && continue
    rm -rf "$dir"
    timed sample "$m" "$s" "$RUN" sample --ckpt "$(printf '%s/exps/%s/checkpoints/%07d.safetensors' "$OUT" "$m" "$s")" \
      --sample-dir "$dir" --num-fid-samples "$NSAMPLES" --per-proc-batch-size "$SAMPLE_BATCH" --mode ode \
      --num-steps "$SAMPLE_STEPS" --cfg-scale 1.0 --global-seed "$SEED" --threads "$THREADS" --grid-size 64 \
      "${ema_flag[@]}"
  done
done

# ---- evaluation against the 10,000 Fashion-MNIST test images
for m in "${METHODS[@]}"; do
  for s in $(ckpt_steps); do
    json=$OUT/eval/$m-$s.json
    [ -f "$json" ] && continue
    npz=$(ls "$OUT/samples/$m-$s"/*.npz | head -n 1)
    timed eval "$m" "$s" "$RUN" eval "$npz" fashion-mnist:test --encoder-weights "$ENCODER" \
      --threads "$THREADS" --out "$json"
  done
done

# ---- the report
num() { sed -n "s/^ *\"$1\": \\([^,]*\\),\\{0,1\\}\$/\\1/p" "$2" | head -n 1; }
# a method's training, summed over its resumptions (a rerun with more STEPS resumes)
train_secs() { awk -F'\t' -v m="$1" '$1 == "train" && $2 == m { t += $4; s = $3 } END { print (s == "" ? "-" : sprintf("%.1f (to step %s)", t, s)) }' "$TIMES"; }
secs() { awk -F'\t' -v p="$1" -v m="$2" -v s="$3" '$1 == p && $2 == m && $3 == s { t = $4 } END { print (t == "" ? "-" : t) }' "$TIMES"; }
for m in "${METHODS[@]}"; do
  : >"$OUT/fid_$m.tsv"
  for s in $(ckpt_steps); do printf '%s\t%s\n' "$s" "$(num fid_fmnist-vit "$OUT/eval/$m-$s.json")" >>"$OUT/fid_$m.tsv"; done
done
labels=(vanilla "vanilla SiT (no alignment)" repa "REPA (mlp, no norm)" irepa "iREPA (conv, z-score)"
  jit_vanilla "vanilla JiT (no alignment)" jit_repa "JiT REPA (mlp, no norm)" jit_irepa "JiT iREPA (3x3 conv, z-score)")
models=$(for m in "${METHODS[@]}"; do [[ $m == jit_* ]] && echo JiT-T/4 || echo SiT-T/4; done | sort -ru | paste -sd, | sed 's/,/ and /')
plot_args=()
for m in "${METHODS[@]}"; do
  for ((k = 0; k < ${#labels[@]}; k += 2)); do [ "${labels[k]}" = "$m" ] && plot_args+=("${labels[k + 1]}=$OUT/fid_$m.tsv"); done
done
plot_cmd=("$RUN" plot --out "$CHART" --title "Fashion-MNIST, $models: domain FID vs training steps"
  --xlabel "training step" --ylabel "domain FID (fmnist-vit, lower is better)" "${plot_args[@]}")
"${plot_cmd[@]}"

section() {
  echo "<!-- BEGIN $SECTION (machine-written; rerun the script to replace) -->"
  echo "## $models: run of $(date -u +%Y-%m-%d)"
  echo
  [ -n "$SCALE_NOTE" ] && echo "$SCALE_NOTE" && echo
  echo "Scale: $STEPS steps, batch $BATCH, checkpoints every $CKPT_EVERY, seed $SEED;"
  echo "$NSAMPLES samples per checkpoint (ODE Euler, $SAMPLE_STEPS steps, cfg 1.0, $( [ "$EMA" = 1 ] && echo "EMA" || echo "online (not EMA)") weights, batch $SAMPLE_BATCH),"
  echo "evaluated against the 10,000 Fashion-MNIST test images (\`fashion-mnist:test\`)."
  echo "Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)."
  echo
  echo "Domain metrics: features of irepa's own Fashion-MNIST classifier (\`fmnist-vit\`),"
  echo "not Inception-v3; not comparable with published numbers."
  echo
  echo "| method | step | FID ↓ | IS ↑ | precision ↑ | recall ↑ | train s (whole run) | sample s | eval s |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for m in "${METHODS[@]}"; do
    for s in $(ckpt_steps); do
      j=$OUT/eval/$m-$s.json
      printf '| %s | %s | %.2f | %.3f | %.3f | %.3f | %s | %s | %s |\n' "$m" "$s" "$(num fid_fmnist-vit "$j")" \
        "$(num inception_score_fmnist-vit "$j")" "$(num precision_fmnist-vit "$j")" "$(num recall_fmnist-vit "$j")" \
        "$(train_secs "$m")" "$(secs sample "$m" "$s")" "$(secs eval "$m" "$s")"
    done
  done
  echo
  echo "![domain FID against training steps]($(basename "$CHART"))"
  echo
  echo "Wall-clock per phase (seconds, summed): $(awk -F'\t' '{ t[$1] += $4 } END { for (p in t) printf "%s %.0f; ", p, t[p] }' "$TIMES")"
  echo
  echo "Commands, in order (\`$0\` with METHODS=\"${METHODS[*]}\" STEPS=$STEPS CKPT_EVERY=$CKPT_EVERY BATCH=$BATCH NSAMPLES=$NSAMPLES SAMPLE_STEPS=$SAMPLE_STEPS SAMPLE_BATCH=$SAMPLE_BATCH EMA=$EMA SEED=$SEED OUT=$OUT):"
  echo
  echo '```'
  cat "$CMDS"
  printf '%q ' "${plot_cmd[@]}"
  echo
  echo '```'
  echo "<!-- END $SECTION -->"
}
begin="<!-- BEGIN $SECTION ("
end="<!-- END $SECTION -->"
[ -f "$RESULTS" ] || printf '# Results: REPA vs iREPA on Fashion-MNIST\n\nWritten by `examples/fmnist_repa_vs_irepa.sh`.\n\n' >"$RESULTS"
section >"$OUT/section.md"
if grep -q "^$begin" "$RESULTS"; then
  awk -v b="$begin" -v e="$end" -v f="$OUT/section.md" '
    index($0, b) == 1 { while ((getline l < f) > 0) print l; skip = 1; next }
    skip && index($0, e) == 1 { skip = 0; next }
    !skip' "$RESULTS" >"$RESULTS.tmp"
else
  cat "$RESULTS" "$OUT/section.md" >"$RESULTS.tmp"
fi
mv "$RESULTS.tmp" "$RESULTS"
echo "wrote $RESULTS and $CHART" >&2
