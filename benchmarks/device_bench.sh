#!/usr/bin/env bash
# scbjax bench on a lent accelerator, as one prepared script (issue 11): environment, the bench
# JSON at seeds up to 65536 (the default form, then the dense form), the breakdown, and
# (unless QUICK=1) the grid. Results go to $OUT
# (default ./device_out). Run from the repository root; needs jax, optax, numpy, matplotlib.
set -u
OUT=${OUT:-device_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PY:-python3}
{
  date -u
  nvidia-smi -L 2>/dev/null || true
  $PY -c "import jax, jaxlib, optax, numpy, platform; print('python', platform.python_version(), \
'jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'optax', optax.__version__, 'numpy', \
numpy.__version__); print(jax.devices())"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
show() {  # a bench JSON as the bench's table
  $PY -c "import json, sys; from scbjax.app.bench import format_bench; \
print(format_bench(json.load(open(sys.argv[1]))))" "$1" || true
}
SEEDS=${SEEDS:-1,8,64,256,1024,4096,16384,65536}
timeout "${T_BENCH:-200}" $PY -m scbjax bench --json --seeds "$SEEDS" --steps 300 \
  --loop-seeds 1 --loop-steps 50 --repeats 5 > "$OUT/bench.json" 2> "$OUT/bench.err"
echo "bench rc=$?"; show "$OUT/bench.json"
# the paired bits (TrainConfig.bits) and the batch grid (issue 20)
timeout "${T_PAIRED:-90}" $PY -m scbjax bench --json --bits paired --seeds 256,16384 --steps 300 \
  --loop-seeds 1 --loop-steps 20 --repeats 5 > "$OUT/bench_paired.json" 2> "$OUT/bench_paired.err"
echo "bench paired rc=$?"; show "$OUT/bench_paired.json"
timeout "${T_BGRID:-120}" $PY -m scbjax bench --batch-grid --steps 50 --repeats 3 \
  > "$OUT/batch_grid.txt" 2> "$OUT/batch_grid.err"
echo "batch grid rc=$?"; cat "$OUT/batch_grid.txt"
# the other form of the sums over tokens (dense one-hot sums; the default is scatter-adds)
timeout "${T_FORM:-90}" $PY -m scbjax bench --json --grad closed_dense --seeds "${FORM_SEEDS:-1024,16384,65536}" \
  --steps 300 --loop-seeds 1 --loop-steps 20 --repeats 5 > "$OUT/bench_dense.json" 2> "$OUT/bench_dense.err"
echo "bench dense rc=$?"; show "$OUT/bench_dense.json"
timeout "${T_BREAKDOWN:-90}" $PY -m scbjax bench --breakdown --seeds "${BREAKDOWN_SEEDS:-16384}" \
  --steps 300 --loop-seeds 1 --loop-steps 20 --repeats 5 > "$OUT/breakdown.txt" 2>&1
echo "breakdown rc=$?"; tail -9 "$OUT/breakdown.txt"
[ "${QUICK:-0}" = 1 ] && exit 0
timeout "${T_GRID:-300}" $PY -m scbjax bench --grid --grid-seeds "${GRID_SEEDS:-1,256,16384}" \
  --grid-steps 20 --repeats 3 --grid-md "$OUT/grid.md" --grid-figure "$OUT/grid.png" --json \
  > "$OUT/grid.json" 2> "$OUT/grid.err"
echo "grid rc=$?"; tail -3 "$OUT/grid.err"
