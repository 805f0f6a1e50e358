#!/usr/bin/env bash
# One call on a lent accelerator (issue 20 item 5), at most BUDGET seconds (default 450, under
# the device tool's 8-minute call): the environment, the bench against its bounds, then
# `scbjax reproduce --full` for the studies whose estimate (calibrated on this device) fits the
# time left, then the figures and claims of every finished study and the small results, all
# under $OUT. A second call resumes: copy $OUT/reproduce-full back to results/reproduce-full
# here and carry it (`run` with carry=["results/reproduce-full"]; under 64 MiB); finished specs
# are reused by hash and interrupted ones resume from their checkpoints.
# Run from the repository root: OUT=... bash benchmarks/device_full.sh
set -u
OUT=${OUT:-device_out}
BUDGET=${BUDGET:-450}
MODE=${MODE:-full}    # tiny: a test of this script on a CPU
FULL=${FULL:-results/reproduce-$MODE}
PY=${PY:-python3}
T0=$(date +%s)
left() { echo $((BUDGET - $(date +%s) + T0)); }
mkdir -p "$OUT" "$(dirname "$FULL")"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{
  date -u
  nvidia-smi -L 2>/dev/null || true
  git rev-parse --short HEAD 2>/dev/null || true
  $PY -c "import jax, jaxlib, optax, numpy, platform; print('python', platform.python_version(), \
'jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'optax', optax.__version__, 'numpy', \
numpy.__version__); print(jax.devices())"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
# 1. the bench (bounds, seeds 256 and 16384); skipped with BENCH=0 (a resuming call)
if [ "${BENCH:-1}" = 1 ]; then
  timeout "${T_BENCH:-110}" $PY -m scbjax bench --json --seeds "${SEEDS:-256,16384}" --steps 300 \
    --loop-seeds 1 --loop-steps 20 --repeats 3 > "$OUT/bench.json" 2> "$OUT/bench.err"
  echo "bench rc=$? ($(left) s left)"
  $PY -c "import json, sys; from scbjax.app.bench import format_bench; \
print(format_bench(json.load(open(sys.argv[1]))))" "$OUT/bench.json" || tail -3 "$OUT/bench.err"
fi
# 2. the studies that fit (at least one: an interrupted study resumes next call)
ONLY=$($PY benchmarks/choose_studies.py --mode "$MODE" --out "$FULL" --budget $(($(left) - 90)) \
  --plan-file "$OUT/plan_full.txt" 2> "$OUT/choose.txt")
cat "$OUT/choose.txt"; tail -1 "$OUT/plan_full.txt"
if [ -n "$ONLY" ] && [ "$(left)" -gt 60 ]; then
  # SIGINT at the end of the time: exit 130, every checkpoint intact
  timeout -s INT $(($(left) - 45)) $PY -m scbjax reproduce --$MODE --out "$FULL" $ONLY \
    > "$OUT/full.log" 2>&1
  echo "reproduce rc=$? ($(left) s left)"; tail -4 "$OUT/full.log"
fi
# 3. figures and claims of every finished study
DONE=$($PY benchmarks/choose_studies.py --mode "$MODE" --out "$FULL" --finished)
if [ -n "$DONE" ]; then
  timeout 40 $PY -m scbjax plot "$FULL" $DONE --figures "$OUT/figures_full" > "$OUT/claims_full.txt" 2>&1
  echo "plot rc=$?"; tail -25 "$OUT/claims_full.txt"
fi
# 4. the results back (results.npz, run.json, checkpoints, job.json; no figures)
mkdir -p "$OUT/reproduce-full"
tar -C "$FULL" --exclude=./figures -cf - . | tar -C "$OUT/reproduce-full" -xf -
du -sh "$OUT/reproduce-full"
MB=$(du -sm "$OUT/reproduce-full" | cut -f1)
[ "$MB" -gt 60 ] && echo "WARNING: $MB MB of results: over the 64 MiB a later call can carry" \
  "back in; carry only some studies' folders (results/reproduce-full/STUDY) next time"
exit 0
