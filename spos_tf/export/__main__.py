r"""Exports one architecture's stand-alone network as SavedModel, float, int8 and int4 TFLite.

    python -m spos_tf.export --checkpoint=/tmp/qs_retrain --out=/tmp/qs_export
    python -m spos_tf.export --checkpoint=/tmp/qs --arch=/tmp/qs_search/best.json \
        --out=/tmp/qs_export_inherited --formats=saved_model,tflite_int8

``--checkpoint`` is a ``spos_tf.train`` run directory: a retrained stand-alone network (its own
architecture), or a supernet (then ``--arch`` picks the architecture and its weights are inherited,
with BN recalibrated). The exported signature takes ``uint8 [batch, S, S, 3]`` RGB images at the
model's resolution and normalises them inside; see :mod:`spos_tf.export.run` for the contract and
``export_report.json`` (sizes, max |difference| to Keras, top-1 accuracy, per-layer weight storage).

The flags are the fields of :class:`spos_tf.export.config.ExportConfig` (defined there once).
Exit status: 0 done, 2 bad input (the message names the fix; nothing was written).
"""

from __future__ import annotations

import sys

from absl import app, flags

from spos_tf.runs import app as app_common
from spos_tf.runs import config_flags


def define_flags(fv=None) -> None:
    """Defines the app's flags on ``fv`` (default ``absl.flags.FLAGS``): one per field of
    :class:`spos_tf.export.config.ExportConfig` (defaults and help come from there)."""
    from spos_tf.export.config import ExportConfig

    config_flags.define_flags(ExportConfig, fv)


def config_from_flags(fv=None):
    """The :class:`~spos_tf.export.config.ExportConfig` of parsed flags (not yet validated)."""
    from spos_tf.export.config import ExportConfig

    return config_flags.from_flags(ExportConfig, fv)


def main(argv):
    app_common.start(argv)
    from spos_tf.export import run as export_lib

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
