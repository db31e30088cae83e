r"""Trains a SPOS supernet (no ``--arch``) or retrains one architecture from scratch (``--arch``).

    python -m spos_tf.train --flagfile=flags/quickstart.cfg --workdir=/tmp/qs
    python -m spos_tf.train --flagfile=flags/supernet.cfg --data_dir=$TFDS --workdir=/ckpt/supernet
    python -m spos_tf.train --flagfile=flags/retrain.cfg --arch=/ckpt/search/best.json \
        --data_dir=$TFDS --workdir=/ckpt/retrain
    python -m spos_tf.train --flagfile=flags/nb201_few_shot.cfg --few_shot_from=/ckpt/nb201 \
        --dataset=folder:$CIFAR10 --workdir=/ckpt/nb201_few_shot     # Few-shot NAS

The flags are the fields of :class:`spos_tf.train.config.TrainConfig` and of its
:class:`spos_tf.data.DataConfig` (defined there once) plus the space overrides
(:func:`spos_tf.train.config.define_flags`); they only build the config, all logic lives in
:mod:`spos_tf.train`. Exit status: 0 done, 2 bad input (the
message names the fix; nothing was written or lost), 3 the loss diverged (the last good checkpoint
is kept).
"""

from __future__ import annotations

import sys
import time

from absl import app, flags

from spos_tf.runs import app as app_common

# The app's flags and the config they build are the library's (spos_tf.train.config), which
# ranking and the pipeline parse flag files with too; tests and benchmarks reach them from here.
from spos_tf.train.config import (  # noqa: F401
    config_from_flags,
    define_flags,
    flag_names,
    flags_text,
)


def main(argv):
    app_common.start(argv)
    from spos_tf.runs import run_dir
    from spos_tf import train as train_lib

    start = time.monotonic()
    try:
        record = train_lib.run(config_from_flags(flags.FLAGS), flags_text=flags_text(flags.FLAGS))
    except train_lib.DivergenceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (train_lib.ConfigError, run_dir.RunDirError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if record:
        few_shot = "sub_val_accuracy" in record  # a few-shot split: one run per sub-supernet
        print(
            f"Done in {time.monotonic() - start:.0f} s: val_accuracy "
            f"{record['val_accuracy']:.4f}{' (mean of the sub-supernets)' if few_shot else ''}; "
            f"metrics in {flags.FLAGS.workdir}/{'sub_*/' if few_shot else ''}metrics.jsonl"
        )
    return 0


def run_main():
    define_flags(flags.FLAGS)
    flags.mark_flag_as_required("workdir")
    app.run(main)


if __name__ == "__main__":
    run_main()
