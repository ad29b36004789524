#!/usr/bin/env bash
# The accelerator check: one command that runs on a GPU/TPU machine and writes one report.
#
#   bash scripts/device_check.sh [OUT_DIR]      # OUT_DIR, else $OUT, else workdirs/device_check
#
# On a GPU machine (only the repository travels; nothing is downloaded by this script):
#
#   pip install -e '.[cuda12]' && bash scripts/device_check.sh "$OUT"
#
# Stages, each under its own `timeout` and all under one overall budget (DEVICE_CHECK_BUDGET_S,
# default 450 s on an accelerator, so the whole check stays under 8 minutes on one H200):
#   1. scripts/device_probe.py: jax.devices(), versions, float32/bfloat16 matmul TFLOP/s against
#      the device's spec-sheet peak;
#   2. every method's quick config (TRAIN_CONFIGS below) through scripts/train.py, once with
#      --config.parallel.mode=pmap and once with =mesh: wall time, steps/s, test metrics;
#   3. scripts/bench_heterrec.py --skip_recbole (size ladder s,m,l on the synthetic data),
#      scripts/bench_envs.py (1 to 65,536 envs) and scripts/bench_cord.py (CORD's MAPPO training
#      env-steps/s at 64 and 1,024 envs, and 16 vmapped seeds against 16 sequential runs: the GPU
#      target is >= 8x). Its JaxMARL columns need JaxMARL (the `bench` extra) and a checkout of
#      its repository named by JAXMARL_REPO; without them they say why they are empty.
# On CPU (no accelerator found) the same stages run at CPU sizes (HeterRec :runlocal, bench
# size xs for 5 steps, bench_envs --quick, bench_cord at 16 envs): a few minutes on one core.
#
# The report: OUT_DIR/device_check.md and OUT_DIR/device_check.json (scripts/device_report.py),
# stage logs under OUT_DIR/logs/. A failing stage is reported as failed with the tail of its log
# and the check goes on; the exit status is 1 if any stage failed or was cut by the budget.
# Set DEVICE_CHECK_BACKEND=cpu|gpu|tpu to force the stage sizes, PYTHON to pick the interpreter.

set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
OUT_DIR=${1:-${OUT:-workdirs/device_check}}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
PY=${PYTHON:-python}
export PYTHONUNBUFFERED=1

# One line per method's quick config: name, accelerator config, CPU config. A config whose file
# does not exist is skipped and the report says so, so a method's line can land before its config.
TRAIN_CONFIGS=(
  "example   configs/example/mlp.py                      configs/example/mlp.py"
  "example_rl configs/example/chain.py                   configs/example/chain.py:runlocal"
  "heterrec  configs/heterrec/synthetic.py:quick         configs/heterrec/synthetic.py:runlocal"
  "esans     configs/esans/synthetic.py:quick            configs/esans/synthetic.py:runlocal"
  "cord      configs/cord/resource_collection.py:quick   configs/cord/resource_collection.py:runlocal"
)
MODES=(pmap mesh)

# A fresh report: train.py resumes from an existing workdir, so old runs must go.
rm -rf "$OUT_DIR/logs" "$OUT_DIR/runs" "$OUT_DIR/bench_heterrec" "$OUT_DIR/stages.tsv" \
  "$OUT_DIR/probe.json" "$OUT_DIR/bench_envs.json" "$OUT_DIR/bench_envs.md" \
  "$OUT_DIR/bench_cord" \
  "$OUT_DIR/device_check.md" "$OUT_DIR/device_check.json"
mkdir -p "$OUT_DIR/logs" "$OUT_DIR/runs"
STAGES="$OUT_DIR/stages.tsv"
STARTED=$(date +%s.%N)
FAILED=0
BUDGET=0     # set once the backend is known
RESERVE=15   # seconds kept for the report

# record NAME KIND STATUS RC START END LIMIT ARTIFACT CONFIG COMMAND-OR-REASON
record() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$STAGES"
}

# run_stage NAME KIND LIMIT_S ARTIFACT CONFIG -- COMMAND...
run_stage() {
  local name=$1 kind=$2 limit=$3 artifact=$4 config=$5
  shift 6
  local now left
  now=$(date +%s)
  left=$(( BUDGET > 0 ? BUDGET - (now - ${STARTED%.*}) - RESERVE : limit ))
  if (( left < 20 )); then
    echo "== $name: not run, the overall budget of ${BUDGET}s is spent"
    record "$name" "$kind" budget "" "" "" "$limit" "$artifact" "$config" \
      "not run: the overall budget of ${BUDGET}s (DEVICE_CHECK_BUDGET_S) was spent"
    FAILED=1
    return
  fi
  (( limit > left )) && limit=$left
  local log="$OUT_DIR/logs/${name//\//_}.log" t0 t1 rc status
  echo "== $name (limit ${limit}s): $*"
  t0=$(date +%s.%N)
  timeout -k 10 "$limit" "$@" > "$log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  case $rc in
    0) status=ok ;;
    124|137) status=timeout ;;
    *) status=failed ;;
  esac
  record "$name" "$kind" "$status" "$rc" "$t0" "$t1" "$limit" "$artifact" "$config" "$*"
  if (( rc != 0 )); then
    FAILED=1
    echo "   $status (exit $rc); last lines of $log:"
    tail -n 5 "$log" | sed 's/^/   | /'
  else
    echo "   ok in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b - a}') s"
  fi
}

# 1. Devices and the matmul probe; its backend picks the sizes of everything after it.
BUDGET=${DEVICE_CHECK_BUDGET_S:-450}
run_stage probe probe 150 probe.json "" -- "$PY" scripts/device_probe.py --out "$OUT_DIR/probe.json"
BACKEND=${DEVICE_CHECK_BACKEND:-$("$PY" scripts/device_report.py backend "$OUT_DIR" 2>/dev/null)}
BACKEND=${BACKEND:-unknown}
if [[ $BACKEND == gpu || $BACKEND == tpu || $BACKEND == cuda || $BACKEND == rocm ]]; then
  ACCEL=1
  TRAIN_LIMIT=180
  BENCH_HR=(--config=configs/heterrec/synthetic.py --sizes=s,m,l --steps=50 --peak_n=8192)
  BENCH_ENVS=(--batches=1,1024,16384,65536)
  HR_LIMIT=240
  ENVS_LIMIT=180
  BENCH_CORD=(--num_envs=64,1024 --updates=4 --seeds=16 --seeds_num_envs=64 --seeds_updates=2)
  CORD_LIMIT=240
else  # cpu, or unknown (the probe failed): CPU sizes; the accelerator budget unless on CPU
  ACCEL=0
  [[ $BACKEND == cpu ]] && BUDGET=${DEVICE_CHECK_BUDGET_S:-1500}
  TRAIN_LIMIT=300
  BENCH_HR=(--config=configs/heterrec/synthetic.py:runlocal --sizes=xs --steps=5 --warmup=1
            --peak_n=1024)
  BENCH_ENVS=(--quick)
  HR_LIMIT=300
  ENVS_LIMIT=300
  BENCH_CORD=(--num_envs=16 --updates=1 --rollout_len=32 --models=ff
              --envs=jaxmarl_mpe,resource_collection --seeds=4 --seeds_num_envs=16)
  CORD_LIMIT=300
fi
# JaxMARL's baselines are scripts in its repository, not in its pip package.
[[ -n ${JAXMARL_REPO:-} ]] && BENCH_CORD+=(--jaxmarl_repo="$JAXMARL_REPO")
echo "== backend: $BACKEND (accelerator sizes: $ACCEL), overall budget ${BUDGET}s"

# 2. Each method's quick config, in both parallel modes.
for line in "${TRAIN_CONFIGS[@]}"; do
  read -r method accel_config cpu_config <<< "$line"
  config=$([[ $ACCEL == 1 ]] && echo "$accel_config" || echo "$cpu_config")
  for mode in "${MODES[@]}"; do
    if [[ ! -f ${config%%:*} ]]; then
      echo "== $method/$mode: skipped, ${config%%:*} does not exist"
      record "$method/$mode" train skipped "" "" "" "" "" "$config" \
        "skipped: config file ${config%%:*} does not exist (not built yet)"
      continue
    fi
    workdir="$OUT_DIR/runs/${method}_$mode"
    run_stage "$method/$mode" train "$TRAIN_LIMIT" "runs/${method}_$mode" "$config" -- \
      "$PY" scripts/train.py --config="$config" --workdir="$workdir" \
      --config.parallel.mode="$mode" --config.train.progress_bar=False
    # The report needs results.json and metrics.jsonl only; checkpoints would bloat OUT_DIR.
    rm -rf "$workdir/checkpoints" "$workdir/best"
  done
done

# 3. The speed benchmarks.
run_stage bench_heterrec bench_heterrec "$HR_LIMIT" bench_heterrec/bench.json "" -- \
  "$PY" scripts/bench_heterrec.py --skip_recbole --models=sasrec,heterrec "${BENCH_HR[@]}" \
  --out="$OUT_DIR/bench_heterrec"
run_stage bench_envs bench_envs "$ENVS_LIMIT" bench_envs.json "" -- \
  "$PY" scripts/bench_envs.py "${BENCH_ENVS[@]}" --json "$OUT_DIR/bench_envs.json" \
  --markdown "$OUT_DIR/bench_envs.md"
run_stage bench_cord bench_cord "$CORD_LIMIT" bench_cord/bench.json "" -- \
  "$PY" scripts/bench_cord.py "${BENCH_CORD[@]}" --out="$OUT_DIR/bench_cord"

# The report.
if ! "$PY" scripts/device_report.py collect "$OUT_DIR" --started "$STARTED" \
    --command "bash scripts/device_check.sh $*" --budget_s "$BUDGET"; then
  echo "== the report could not be written (see above)"
  exit 2
fi
exit "$FAILED"
