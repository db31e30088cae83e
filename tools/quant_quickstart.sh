#!/usr/bin/env bash
# Quick start of mixed-precision quantization search (README "Mixed-precision search") on the
# embedded digits, CPU only: trains the tiny ResNet-18 mixed-precision supernet, searches under the
# BitOps of the uniform 3W3A network, retrains the searched network and the uniform 3W3A baseline
# with QAT, then prints both accuracies and BitOps side by side. Measured 213 s in all on 2 CPU cores
# shared with other test jobs (load average 2-3.8); the headers of flags/quant_quickstart*.cfg give
# each step's time and result.
# Usage: tools/quant_quickstart.sh [workdir (default runs/quant_quickstart)] [extra train flags...]
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
WD="${1:-runs/quant_quickstart}"
shift || true
start=$SECONDS
stage() { echo; echo "== [$((SECONDS - start)) s] $*"; }
stage "1/4 supernet -> $WD/supernet"
python -m spos_tf.train --flagfile=flags/quant_quickstart.cfg --workdir="$WD/supernet" "$@"
stage "2/4 search (BitOps <= uniform 3W3A) -> $WD/search"
python -m spos_tf.search --flagfile=flags/quant_quickstart_search.cfg \
  --supernet_dir="$WD/supernet" --workdir="$WD/search"
stage "3/4 QAT retraining of the searched network -> $WD/retrain_searched"
python -m spos_tf.train --flagfile=flags/quant_quickstart_retrain.cfg \
  --arch="$WD/search/best.json" --workdir="$WD/retrain_searched" "$@"
stage "4/4 QAT retraining of the uniform 3W3A baseline -> $WD/retrain_3w3a"
python -m spos_tf.train --flagfile=flags/quant_quickstart_retrain.cfg \
  --uniform_bits=3 --workdir="$WD/retrain_3w3a" "$@"
stage "done"
python -m spos_tf.report_quant "$WD"
