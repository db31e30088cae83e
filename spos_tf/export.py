r"""Exports one architecture's stand-alone network as SavedModel, float TFLite and int8 TFLite.

    python -m spos_tf.export --checkpoint=/tmp/qs_retrain --out=/tmp/qs_export
    python -m spos_tf.export --checkpoint=/tmp/qs --arch=/tmp/qs_search/best.json \
        --out=/tmp/qs_export_inherited --formats=saved_model,tflite_int8

``--checkpoint`` is a ``spos_tf.train`` run directory: a retrained stand-alone network (its own
architecture), or a supernet (then ``--arch`` picks the architecture and its weights are inherited,
with BN recalibrated). The exported signature takes ``uint8 [batch, S, S, 3]`` RGB images at the
model's resolution and normalises them inside; see :mod:`spos_tf.export_lib` for the contract and
``export_report.json`` (sizes, max |difference| to Keras, top-1 accuracy, per-layer weight storage).

The flags only build a :class:`spos_tf.export_lib.ExportConfig`. Exit status: 0 done, 2 bad input
(the message names the fix; nothing was written).
"""
from __future__ import annotations

import sys

from absl import app, flags

from spos_tf import app_common, spaces


def define_flags(fv=None) -> None:
    """Defines the app's flags on ``fv`` (default ``absl.flags.FLAGS``); defaults are
    ``ExportConfig``'s."""
    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    flags.DEFINE_string("checkpoint", None, "A spos_tf.train run directory: a retrained "
                        "stand-alone network, or a supernet (needs --arch).", **d)
    flags.DEFINE_string("out", None, "Output folder (saved_model/, *.tflite, export_report.json).",
                        **d)
    flags.DEFINE_string("space", None, f"Search space ({', '.join(spaces.names())}); default: the "
                        "run's (must match when given).", **d)
    flags.DEFINE_string("arch", None, "Architecture text or a JSON file with an 'arch' field "
                        "(best.json); required for a supernet run.", **d)
    flags.DEFINE_list("formats", None, "Comma-separated subset of saved_model,tflite,tflite_int8 "
                      "(default: all; no float tflite for a quantized space).", **d)
    flags.DEFINE_string("data_dir", None, "TFDS data directory (default: the run's).", **d)
    flags.DEFINE_integer("calib_images", 512, "Training images for int8 calibration and, with "
                         "inherited weights, BN recalibration.", **d)
    flags.DEFINE_integer("calib_batch_size", 64, "Calibration batch size.", **d)
    flags.DEFINE_enum("eval_split", "test", ["holdout", "test"],
                      "Images of the report's accuracy and differences (default test: data the "
                      "search never saw).", **d)
    flags.DEFINE_integer("eval_images", None, "Use the first this many images of --eval_split "
                         "(default: all).", **d)
    flags.DEFINE_integer("eval_batch_size", 100, "Evaluation batch size.", **d)


def config_from_flags(fv=None):
    """The :class:`~spos_tf.export_lib.ExportConfig` of parsed flags (not yet validated)."""
    import dataclasses

    from spos_tf.export_lib import ExportConfig

    fv = flags.FLAGS if fv is None else fv
    values = {f.name: fv[f.name].value for f in dataclasses.fields(ExportConfig)}
    if values["formats"] is not None:
        values["formats"] = tuple(values["formats"])
    return ExportConfig(**values)


def main(argv):
    app_common.start(argv)
    from spos_tf import export_lib

    try:
        export_lib.run(config_from_flags())
    except (ValueError, FileNotFoundError) as e:  # ExportError, RunDirError, CheckpointError
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def run_main():
    define_flags()
    flags.mark_flags_as_required(["checkpoint", "out"])
    app.run(main)


if __name__ == "__main__":
    run_main()
