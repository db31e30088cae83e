r"""Trains a SPOS supernet (no ``--arch``) or retrains one architecture from scratch (``--arch``).

    python -m spos_tf.train --flagfile=flags/quickstart.cfg --workdir=/tmp/qs
    python -m spos_tf.train --flagfile=flags/supernet.cfg --data_dir=$TFDS --workdir=/ckpt/supernet
    python -m spos_tf.train --flagfile=flags/retrain.cfg --arch=/ckpt/search/best.json \
        --data_dir=$TFDS --workdir=/ckpt/retrain

The flags only build a :class:`spos_tf.train_lib.TrainConfig`; all logic lives in
:mod:`spos_tf.train_lib`. Exit status: 0 done, 2 bad input (the message names the fix; nothing was
written or lost), 3 the loss diverged (the last good checkpoint is kept).
"""
from __future__ import annotations

import dataclasses
import sys
import time

from absl import app, flags

from spos_tf import app_common, spaces

FLAG_NAMES = (
    "workdir", "overwrite", "space", "ops", "arch", "uniform_bits", "seed", "dataset", "data_dir",
    "manual_dir", "augment", "preprocessing", "train_split", "holdout_split", "test_split",
    "shuffle_buffer",
    "steps", "batch_size", "optimizer", "learning_rate", "lr_schedule", "momentum", "weight_decay",
    "label_smoothing", "min_macs", "max_macs", "sampling", "cost_bins", "bin_tries",
    "latency_table", "min_latency_ms", "max_latency_ms", "bn_momentum", "strategy",
    "checkpoint_every", "keep_checkpoints", "log_every", "eval_every", "eval_paths", "eval_split",
    "eval_batch_size", "eval_batches", "calib_batches", "final_bn_batches", "final_bn_augment",
    "progress", "precision") + spaces.OVERRIDE_FLAGS
# Data flags -> DataConfig fields.
DATA_FLAGS = {"dataset": "name", "data_dir": "data_dir", "manual_dir": "manual_dir",
              "augment": "augment", "preprocessing": "preprocessing",
              "train_split": "train_split",
              "holdout_split": "holdout_split", "test_split": "test_split",
              "shuffle_buffer": "shuffle_buffer"}


def define_flags(fv=None) -> None:
    """Defines the app's flags on ``fv`` (default ``absl.flags.FLAGS``). Defaults mirror
    ``TrainConfig``'s (the paper's ImageNet supernet recipe) and ``DataConfig``'s."""
    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    flags.DEFINE_string("workdir", None,
                        "Run directory: config, checkpoints, metrics, TensorBoard.", **d)
    flags.DEFINE_bool("overwrite", False, "Delete a previous run of another config in --workdir.",
                      **d)
    flags.DEFINE_string("space", "shufflenet_oneshot",
                        f"Search space: {', '.join(spaces.names())}.", **d)
    flags.DEFINE_list("ops", None, "Candidate ops override, e.g. shuffle3x3,xception.", **d)
    flags.DEFINE_string("arch", None, "Retrain this architecture (text form or a JSON file) "
                        "instead of training the supernet.", **d)
    flags.DEFINE_integer("uniform_bits", None, "Quantized spaces: retrain the uniform kWkA "
                         "baseline (channel scale 1.0, k bits everywhere) instead of --arch.", **d)
    flags.DEFINE_integer("seed", 0, "Seeds weights, sampled paths, data order, augmentation.", **d)
    flags.DEFINE_string("dataset", "spos_digits", "TFDS name or folder:<root>.", **d)
    flags.DEFINE_string("data_dir", None, "TFDS data directory (default ~/tensorflow_datasets).",
                        **d)
    flags.DEFINE_string("manual_dir", None, "Manually downloaded archives (imagenet2012 tars); "
                        "default <data_dir>/downloads/manual.", **d)
    flags.DEFINE_enum("augment", None, ["imagenet", "light", "none"],
                      "Training augmentation (default: the data set's).", **d)
    flags.DEFINE_enum("preprocessing", "standard", ["standard", "reference"],
                      "Network input: standard (RGB, mean/std normalised) or reference (BGR "
                      "0..255, as the authors' release; for imported weights).", **d)
    flags.DEFINE_string("train_split", None, "Training split spec (default: the data set's).", **d)
    flags.DEFINE_string("holdout_split", None, "Held-out split for evaluation and search.", **d)
    flags.DEFINE_string("test_split", None, "Test split.", **d)
    flags.DEFINE_integer("shuffle_buffer", 10_000, "Shuffle buffer (examples).", **d)
    flags.DEFINE_integer("steps", 150_000, "Training steps.", **d)
    flags.DEFINE_integer("batch_size", 1024, "Global batch size (split across replicas).", **d)
    flags.DEFINE_enum("optimizer", "sgd", ["sgd", "adam"], "Optimizer (masked for the supernet).",
                      **d)
    flags.DEFINE_float("learning_rate", 0.5, "Peak learning rate.", **d)
    flags.DEFINE_enum("lr_schedule", "linear", ["linear", "cosine", "constant"],
                      "linear: decay per step to 0 (the paper).", **d)
    flags.DEFINE_float("momentum", 0.9, "SGD momentum.", **d)
    flags.DEFINE_float("weight_decay", 4e-5, "L2 on conv/FC kernels only.", **d)
    flags.DEFINE_float("label_smoothing", 0.1, "Label smoothing.", **d)
    flags.DEFINE_float("min_macs", None, "Supernet: sample only paths with at least these MACs.",
                       **d)
    flags.DEFINE_float("max_macs", None, "Supernet: sample only paths with at most these MACs.",
                       **d)
    flags.DEFINE_enum("sampling", "uniform", ["uniform", "cost_bins"],
                      "Supernet path sampling: uniform (the paper) or cost_bins (the reference "
                      "release: a MACs bin of --cost_bins uniformly, then up to --bin_tries "
                      "uniform draws inside it, else one unconstrained draw).", **d)
    flags.DEFINE_list("cost_bins", None, "MACs bin edges, e.g. 290e6,300e6,...,360e6 (default "
                      "for --sampling=cost_bins: the reference's 290M..360M by 10M); when set, "
                      "metrics.jsonl counts sampled paths per bin (path_bins).", **d)
    flags.DEFINE_integer("bin_tries", 500, "--sampling=cost_bins: uniform draws per step inside "
                         "the chosen bin before the fallback draw (the reference: 500).", **d)
    flags.DEFINE_string("latency_table", None, "Supernet: latency lookup table for "
                        "--min_latency_ms/--max_latency_ms (python -m spos_tf.latency build).", **d)
    flags.DEFINE_float("min_latency_ms", None, "Supernet: sample only paths predicted at least "
                       "this slow.", **d)
    flags.DEFINE_float("max_latency_ms", None, "Supernet: sample only paths predicted at most "
                       "this slow.", **d)
    flags.DEFINE_float("bn_momentum", 0.9, "BatchNorm moving-average momentum (Keras form).", **d)
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                      "tf.distribute strategy; multi_worker reads TF_CONFIG.", **d)
    flags.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints.", **d)
    flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.", **d)
    flags.DEFINE_integer("log_every", 100, "Steps per metrics record.", **d)
    flags.DEFINE_integer("eval_every", 0, "Steps between evaluations (0: final only).", **d)
    flags.DEFINE_integer("eval_paths", 10, "Supernet: random paths per evaluation.", **d)
    flags.DEFINE_enum("eval_split", None, ["holdout", "test"], "Evaluation split (default: "
                      "holdout for the supernet, test for retraining: final numbers on data the "
                      "search never saw).", **d)
    flags.DEFINE_integer("eval_batch_size", 256, "Evaluation batch size.", **d)
    flags.DEFINE_integer("eval_batches", 0, "Evaluation batches (0: the whole split).", **d)
    flags.DEFINE_integer("calib_batches", 20, "Supernet: BN recalibration batches per path.", **d)
    flags.DEFINE_integer("final_bn_batches", 0, "Retraining: exact BN statistics on this many "
                         "batches after the last step, learning rate 0 (0: skip).", **d)
    flags.DEFINE_bool("final_bn_augment", False, "Retraining: the final BN pass reads training "
                      "images with the training augmentation (the reference's pass); default "
                      "un-augmented.", **d)
    flags.DEFINE_bool("progress", True, "Show a progress bar.", **d)
    flags.DEFINE_enum("precision", "float32", ["float32", "mixed_float16", "mixed_bfloat16"],
                      "Compute dtype: mixed_float16 (GPUs; loss scaling) or mixed_bfloat16 "
                      "(TPUs, CPUs with bfloat16 units); variables stay float32.", **d)
    spaces.define_override_flags(fv)


def config_from_flags(fv=None):
    """The :class:`~spos_tf.train_lib.TrainConfig` of parsed flags (not yet validated)."""
    from spos_tf.data import DataConfig
    from spos_tf.train_lib import TrainConfig

    fv = flags.FLAGS if fv is None else fv
    overrides = spaces.overrides_from_flags(fv)
    if fv["ops"].value:
        overrides["ops"] = tuple(fv["ops"].value)
    data = DataConfig(**{field: fv[name].value for name, field in DATA_FLAGS.items()})
    plain = {f.name for f in dataclasses.fields(TrainConfig)} - {"data", "space_overrides"}
    values = {name: fv[name].value for name in plain}
    if values["cost_bins"] is not None:  # numbers where they parse; validate() names the rest
        values["cost_bins"] = tuple(_number(v) for v in values["cost_bins"])
    return TrainConfig(space_overrides=overrides, data=data, **values)


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def flags_text(fv=None) -> str:
    """The effective flags, one ``--name=value`` a line (usable as ``--flagfile``)."""
    fv = flags.FLAGS if fv is None else fv
    lines = [fv[name].serialize() for name in FLAG_NAMES if fv[name].value is not None]
    return "\n".join(line for line in lines if line) + "\n"


def main(argv):
    app_common.start(argv)
    from spos_tf import run_dir, train_lib

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
        print(f"Done in {time.monotonic() - start:.0f} s: val_accuracy "
              f"{record['val_accuracy']:.4f}; metrics in "
              f"{flags.FLAGS.workdir}/metrics.jsonl")
    return 0


def run_main():
    define_flags()
    flags.mark_flag_as_required("workdir")
    app.run(main)


if __name__ == "__main__":
    run_main()
