#!/usr/bin/env bash
# GPU check of issue 15: supernet img/s at batch 256, 224x224, 1000 classes (shufflenet_oneshot,
# masked SGD) for float32 and mixed_float16 under MirroredStrategy on all local GPUs, the
# stand-alone img/s of the same path, trace time and peak GPU memory (benchmarks/precision_step.py).
# Command:  bash benchmarks/gpu_check.sh            (on a GPU machine; no downloads, no data)
#           bash benchmarks/gpu_check.sh --tiny     (CI: 32x32, tiny space, batch 8, CPU is fine;
#                                                     also GPU_CHECK_TINY=1)
# Run time: full: about 3-6 min on one H100/H200-class GPU (4 traces of ~30-60 s, then 2 rounds of
#           5 steps per model); stopped at 8 min (GPU_CHECK_TIMEOUT, seconds). Tiny: ~1-2 min on
#           2 CPU cores (tracing).
# Expected: JSON lines: the devices, then per (precision, model) img_per_s, step_s, trace_s,
#           peak_gpu_mib, then a summary with supernet_mixed_float16_speedup and the supernet /
#           stand-alone ratios. Goal on one H100/H200: supernet mixed_float16 >= 4,000 img/s.
#           Exit status 0; 124 when it ran past the time limit.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[[ -x "$PY" ]] || PY=python3
ARGS=(--precisions=float32,mixed_float16 --strategy=mirrored --standalone)
if [[ "${1:-}" == "--tiny" || "${GPU_CHECK_TINY:-0}" == "1" ]]; then
  ARGS+=(--tiny)
else
  ARGS+=(--size=224 --batch=256 --archs=2 --rounds=2 --steps=5)
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
PYTHONPATH=. TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} \
  exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$PY" benchmarks/precision_step.py "${ARGS[@]}"
