#!/usr/bin/env bash
# Issue 15 item 5: INT4 weights in TFLite on the mixed-precision quick start (embedded digits, CPU).
# QAT-retrains the quick start's searched network (flags/quant_quickstart_retrain.cfg; default arch:
# the searched 2,2,2,1|3,0,2,2|3,2,1,1 of RESULTS "Mixed-precision quick start", or pass a
# best.json) twice, as today (BN after the fake-quantized conv) and with --fold_bn (BN folded
# before the weight fake quantization), exports both, and prints per format the file size, the
# per-layer weight storage and the agreement with the Keras network.
# Usage: bash benchmarks/int4_export.sh [workdir (default runs/int4_export)] [arch]
# Run time: about 3-4 minutes on 2 CPU cores (two ~50 s retrainings, two exports).
source "$(dirname "${BASH_SOURCE[0]}")/../tools/env.sh"
WD="${1:-runs/int4_export}"
ARCH="${2:-2,2,2,1|3,0,2,2|3,2,1,1}"
start=$SECONDS
for mode in unfolded folded; do
  extra=()
  [ "$mode" = folded ] && extra=(--fold_bn)
  echo "== [$((SECONDS - start)) s] retrain $mode -> $WD/$mode"
  python -m spos_tf.train --flagfile=flags/quant_quickstart_retrain.cfg --arch="$ARCH" \
    --workdir="$WD/$mode" --overwrite --progress=false "${extra[@]}"
  echo "== [$((SECONDS - start)) s] export $mode -> $WD/${mode}_export"
  rm -rf "$WD/${mode}_export"
  python -m spos_tf.export --checkpoint="$WD/$mode" --out="$WD/${mode}_export"
done
echo "== [$((SECONDS - start)) s] done"
python - "$WD" <<'PY'
import json, sys
wd = sys.argv[1]
for mode in ("unfolded", "folded"):
    r = json.load(open(f"{wd}/{mode}_export/export_report.json"))
    print(f"{mode}: {r['arch']}, Keras test top-1 {r['eval']['keras_accuracy']:.4f} "
          f"({r['eval']['images']} images)")
    for fmt, f in r["formats"].items():
        print(f"  {fmt:12s} {f['size_bytes']:>9d} B  top-1 {f['accuracy']:.4f}  agreement "
              f"{f['top1_agreement']:.4f}  max|diff| {f['max_abs_diff']:.3g}  "
              f"{f.get('storage_summary', '')} {f.get('size_vs_int8', '')}")
        for w in f.get("weights", []):
            if fmt == "tflite_int4" or (mode == "unfolded" and fmt == "tflite_int8"):
                print(f"      {w['layer']:24s} searched {w['searched_bits']} bits -> "
                      f"{w['storage']} ({w['scales']} scale(s))")
PY
