#!/usr/bin/env bash
# Hardware-aware quick start on the embedded digits (no download): build a TFLite latency table of a
# shrunken FBNet space, train its supernet, search under a latency limit (the median predicted
# latency of 20 random networks of the space).
# Command:  bash tools/latency_quickstart.sh [WORKDIR=/tmp/spos_latency_quickstart]
# Run time: target under 10 minutes on 2 CPU cores (not measured end to end in this session).
# Expected: WORKDIR/search/best.json with latency_ms <= the printed limit.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/spos_latency_quickstart}
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH=.
SPACE_FLAGS="--space=fbnet --ops=fb_k3_e1_g2,fb_k5_e6,fb_skip --image_size=32 --num_classes=10 --width=0.5 --repeats=1,2,1,1,1,1,1"
mkdir -p "$W"
"$PY" -m spos_tf.latency build $SPACE_FLAGS --out="$W/lut.json" --runs=10 --fit_archs=3 2>/dev/null | tail -1
LIMIT=$("$PY" - "$W/lut.json" <<'PY'
import sys, numpy as np
from spos_tf import latency
t = latency.LatencyTable(sys.argv[1])
print(round(float(np.median([t.predict_ms(a) for a in latency.random_archs(t.space, 20, 0)])), 4))
PY
)
echo "latency limit: $LIMIT ms"
"$PY" -m spos_tf.train --flagfile=flags/latency_quickstart.cfg --data_dir="$W/tfds" --workdir="$W/supernet" --noprogress
"$PY" -m spos_tf.search --flagfile=flags/latency_quickstart_search.cfg --supernet_dir="$W/supernet" \
  --workdir="$W/search" --latency_table="$W/lut.json" --max_latency_ms="$LIMIT"
