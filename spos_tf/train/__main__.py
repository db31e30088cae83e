r"""Trains a SPOS supernet (no ``--arch``) or retrains one architecture from scratch (``--arch``).

    python -m spos_tf.train --flagfile=flags/quickstart.cfg --workdir=/tmp/qs
    python -m spos_tf.train --flagfile=flags/supernet.cfg --data_dir=$TFDS --workdir=/ckpt/supernet
    python -m spos_tf.train --flagfile=flags/retrain.cfg --arch=/ckpt/search/best.json \
        --data_dir=$TFDS --workdir=/ckpt/retrain
    python -m spos_tf.train --flagfile=flags/nb201_few_shot.cfg --few_shot_from=/ckpt/nb201 \
        --dataset=folder:$CIFAR10 --workdir=/ckpt/nb201_few_shot     # Few-shot NAS

The flags are the fields of :class:`spos_tf.train.config.TrainConfig` and of its
:class:`spos_tf.data.DataConfig` (defined there once) plus the space overrides; they only build
the config, all logic lives in :mod:`spos_tf.train`. Exit status: 0 done, 2 bad input (the
message names the fix; nothing was written or lost), 3 the loss diverged (the last good checkpoint
is kept).
"""

from __future__ import annotations

import dataclasses
import sys
import time

from absl import app, flags

from spos_tf.runs import app as app_common
from spos_tf.runs import config_flags
from spos_tf.spaces import overrides as space_overrides


def define_flags(fv=None) -> None:
    """Defines the app's flags on ``fv`` (default ``absl.flags.FLAGS``): one per field of
    ``TrainConfig`` and of its ``DataConfig`` (names, defaults, help texts and choices are the
    fields'), ``--ops`` and the space override flags."""
    from spos_tf.data import DataConfig
    from spos_tf.train.config import TrainConfig

    fv = flags.FLAGS if fv is None else fv
    config_flags.define_flags(TrainConfig, fv)
    config_flags.define_flags(DataConfig, fv)
    space_overrides.define(fv)


def flag_names() -> tuple:
    """The app's flags in the order of the config's fields (``--ops`` in place of
    ``space_overrides``, the data flags in place of ``data``), then the space override flags."""
    from spos_tf.data import DataConfig
    from spos_tf.train.config import TrainConfig

    nested = {"space_overrides": (), "data": config_flags.flag_names(DataConfig)}
    return (
        tuple(
            name
            for f in dataclasses.fields(TrainConfig)
            for name in nested.get(f.name, (config_flags.flag_name(f),))
            if name is not None  # a setting filled in by code (few_shot_choice)
        )
        + space_overrides.FLAGS
    )


def config_from_flags(fv=None):
    """The :class:`~spos_tf.train.config.TrainConfig` of parsed flags (not yet validated)."""
    from spos_tf.data import DataConfig
    from spos_tf.train.config import TrainConfig

    fv = flags.FLAGS if fv is None else fv
    overrides = space_overrides.from_flags(fv)
    config = config_flags.from_flags(
        TrainConfig, fv, space_overrides=overrides, data=config_flags.from_flags(DataConfig, fv)
    )
    if config.cost_bins is not None:  # numbers where they parse; validate() names the rest
        config = dataclasses.replace(config, cost_bins=tuple(map(_number, config.cost_bins)))
    return config


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def flags_text(fv=None) -> str:
    """The effective flags, one ``--name=value`` a line (usable as ``--flagfile``)."""
    fv = flags.FLAGS if fv is None else fv
    lines = [fv[name].serialize() for name in flag_names() if fv[name].value is not None]
    return "\n".join(line for line in lines if line) + "\n"


def main(argv):
    app_common.start(argv)
    from spos_tf.runs import run_dir
    from spos_tf import train as train_lib

    start = time.monotonic()
    try:
        record = train_lib.run(config_from_flags(), flags_text=flags_text())
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
    define_flags()
    flags.mark_flag_as_required("workdir")
    app.run(main)


if __name__ == "__main__":
    run_main()
