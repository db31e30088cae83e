#!/usr/bin/env bash
# Builds and validates the 224 px latency lookup tables of benchmarks/RESULTS.md (issue 14):
# FBNet and ProxylessNAS mobile, TFLite float32 and int8, batch 1, 1 thread, on this CPU.
# Command:  bash benchmarks/latency_tables.sh [OUT_DIR=benchmarks/latency] [NUM_ARCHS=50] [RUNS=15] \
#             [STATISTIC=median|min] [SPACES="fbnet proxyless_mobile"] [DTYPES="float32 int8"]
# (STATISTIC=min estimates the unloaded latency on a machine shared with other jobs.)
# The validate step's MAPE is the check of measured latency against the table: a wall-clock figure
# that depends on the machine's load, so it is measured here (RESULTS.md), not bounded by a test
# (tests/latency/test_latency.py checks the tables' arithmetic with a deterministic timer).
# Run time: about 10-20 min per table on 2 busy cores (build + 50 whole networks). Resumable:
# rerunning continues a partly built table.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/latency}
N=${2:-50}
RUNS=${3:-15}
STATISTIC=${4:-median}
SPACES=${5:-fbnet proxyless_mobile}
DTYPES=${6:-float32 int8}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
for space in $SPACES; do
  for dtype in $DTYPES; do
    lut="$OUT/${space}_tflite_${dtype}.json"
    PYTHONPATH=. "$PY" -m spos_tf.latency build --space=$space --out="$lut" --backend=tflite \
      --batch=1 --threads=1 --dtype=$dtype --runs=$RUNS --statistic=$STATISTIC --fit_archs=5 2>/dev/null | tail -1
    PYTHONPATH=. "$PY" -m spos_tf.latency validate --lut="$lut" --num_archs=$N 2>/dev/null | tail -1
  done
done
