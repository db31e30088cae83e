"""Tests for the training app (``python -m spos_tf.train``): its flags (derived from the configs),
the flag files, and the binary's exit status and output.

The loop itself is tested in tests/train/test_train_loop.py, the config in tests/train/test_train_config.py.
"""

import os
from pathlib import Path

import pytest
from absl import flags

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from spos_tf.runs import run_dir
from spos_tf.train import __main__ as train
from spos_tf.data import DataConfig
from spos_tf.train.config import TrainConfig

from _kill import start_app
from _train_checks import FLAGS_DIR, parse_flagfile

REPO = Path(__file__).resolve().parents[2]
# (The other flags/quant_*.cfg need --arch / --uniform_bits or are search files: parsed and run
# by tests/quant/test_quant_apps.py.)
FLAG_FILES = (
    "supernet.cfg",
    "retrain.cfg",
    "quickstart.cfg",
    "tiny_supernet.cfg",
    "tiny_retrain.cfg",
    "supernet_channels.cfg",
    "quickstart_channels.cfg",
    "quant_supernet.cfg",
    "quant_quickstart.cfg",
)
RECIPE = (
    "optimizer",
    "learning_rate",
    "lr_schedule",
    "momentum",
    "weight_decay",
    "label_smoothing",
)
# The flags users know (the app's flags before they were derived from the configs).
FLAG_NAMES = {
    "workdir",
    "overwrite",
    "space",
    "ops",
    "arch",
    "uniform_bits",
    "seed",
    "dataset",
    "data_dir",
    "manual_dir",
    "augment",
    "preprocessing",
    "eval_resize",
    "train_split",
    "holdout_split",
    "test_split",
    "shuffle_buffer",
    "steps",
    "batch_size",
    "optimizer",
    "learning_rate",
    "lr_schedule",
    "lr_schedule_steps",
    "lr_schedule_start",
    "calr_gamma_max",
    "momentum",
    "weight_decay",
    "label_smoothing",
    "min_macs",
    "max_macs",
    "sampling",
    "rank_loss_weight",
    "rank_loss_margin",
    "cost_bins",
    "bin_tries",
    "latency_table",
    "min_latency_ms",
    "max_latency_ms",
    "few_shot_split",
    "few_shot_from",
    "init_from",
    "sample_from",
    "momentum_split",
    "bn_momentum",
    "strategy",
    "deterministic",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
    "eval_every",
    "eval_paths",
    "eval_split",
    "eval_batch_size",
    "eval_batches",
    "calib_images",
    "final_bn_batches",
    "final_bn_augment",
    "progress",
    "image_size",
    "num_classes",
    "width",
    "strides",
    "repeats",
    "channel_scales",
    "weight_bits",
    "act_bits",
    "padding",
    "fold_bn",
    "data_service",
    "precision",
}


# ------------------------------------------------------------------------------- flag files
@pytest.mark.parametrize("name", FLAG_FILES)
def test_flag_file_header_and_parse(name, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # nested --flagfile= paths are relative to the repository root
    lines = (FLAGS_DIR / name).read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    text = "\n".join(header)
    for key in ("Command:", "Run time:", "Expected:"):
        assert key in text, f"{name}: header lacks {key!r}"
    assert f"--flagfile=flags/{name}" in text
    config = parse_flagfile(name, f"--workdir={tmp_path}").validate()
    assert config.workdir == str(tmp_path)
    if "channels" in name:
        assert config.space in ("shufflenet_oneshot_channels", "shufflenet_oneshot_blocks_channels")


def test_supernet_and_retrain_flags_are_the_paper_recipe():
    sup = parse_flagfile("supernet.cfg", "--workdir=/x")
    assert (sup.data.name, sup.data.augment, sup.space_overrides["image_size"]) == (
        "imagenet2012",
        "imagenet",
        224,
    )
    assert (sup.batch_size, sup.steps, sup.optimizer, sup.learning_rate, sup.momentum) == (
        1024,
        150_000,
        "sgd",
        0.5,
        0.9,
    )
    assert (sup.lr_schedule, sup.weight_decay, sup.label_smoothing) == ("linear", 4e-5, 0.1)
    assert sup.arch is None and sup.final_bn_batches == 0
    ret = parse_flagfile("retrain.cfg", "--workdir=/x")
    assert ret.steps == 300_000 and ret.final_bn_batches > 0
    # the paper retrains on the whole training set; the reference's final BN pass reads about
    # 1,250 x 1,024 augmented training images (issue 12, item 2)
    assert ret.data.train_split == "train" and ret.eval_split == "test"
    assert ret.final_bn_augment and ret.final_bn_batches * ret.eval_batch_size == 1_280_000
    assert [getattr(ret, k) for k in RECIPE + ("batch_size",)] == [
        getattr(sup, k) for k in RECIPE + ("batch_size",)
    ]


@pytest.mark.parametrize(
    "twin, full", [("tiny_supernet.cfg", "supernet.cfg"), ("tiny_retrain.cfg", "retrain.cfg")]
)
def test_tiny_twins_keep_the_recipe(twin, full):
    small, big = parse_flagfile(twin, "--workdir=/x"), parse_flagfile(full, "--workdir=/x")
    assert [getattr(small, k) for k in RECIPE] == [getattr(big, k) for k in RECIPE]
    assert small.data.name == "spos_digits"
    assert bool(small.final_bn_batches) == bool(big.final_bn_batches)
    assert small.final_bn_augment == big.final_bn_augment


def test_quickstart_flags():
    config = parse_flagfile("quickstart.cfg", "--workdir=/x").validate()
    assert config.data.name == "spos_digits" and config.arch is None
    assert config.eval_paths >= 10


# ------------------------------------------------------------------------------- derived flags
def _flags():
    fv = flags.FlagValues()
    train.define_flags(fv)
    return fv


def test_retired_calib_batches_is_refused_with_the_image_count_to_pass():
    fv = _flags()
    fv(["train", "--workdir=/tmp/w", "--calib_batches=20", "--eval_batch_size=1000"])
    with pytest.raises(ValueError, match=r"pass --calib_images=20000 \(the batches x"):
        train.config_from_flags(fv)
    fv = _flags()
    fv(["train", "--workdir=/tmp/w", "--eval_batch_size=1000"])
    assert train.config_from_flags(fv).calib_images == 5120  # not given: not refused


def test_the_flags_are_those_users_know_with_the_config_defaults():
    fv = _flags()
    # plus the retired --calib_batches, defined only to be refused with its replacement
    assert set(fv) == FLAG_NAMES | {"calib_batches"}
    assert sorted(train.flag_names()) == sorted(FLAG_NAMES)  # flags.txt writes each once
    # defaults: the paper's recipe (the flag of TrainConfig.workdir has none: it is required)
    assert [
        fv[n].default
        for n in (
            "workdir",
            "steps",
            "batch_size",
            "learning_rate",
            "momentum",
            "weight_decay",
            "dataset",
            "shuffle_buffer",
        )
    ] == [None, 150_000, 1024, 0.5, 0.9, 4e-5, "spos_digits", 10_000]
    assert fv["optimizer"].parser.enum_values == ["sgd", "adam"]
    assert fv["augment"].parser.enum_values == ["imagenet", "light", "cifar", "none"]
    assert "Evaluation split (default: holdout for the supernet" in fv["eval_split"].help
    assert fv["dataset"].help == "TFDS name or folder:<root>."
    with pytest.raises(flags.IllegalFlagValueError):
        fv(["train", "--optimizer=rmsprop"])


def test_parsed_flags_build_the_config_and_flags_text_reproduces_it(tmp_path):
    config = parse_flagfile(
        "tiny_supernet.cfg",
        "--workdir=/x",
        "--dataset=cifar10",
        "--data_dir=/d",
        "--ops=shuffle3x3,xception",
        "--cost_bins=380e3,440e3",
        "--eval_split=test",
    )
    assert config == TrainConfig(
        workdir="/x",
        space="shufflenet_oneshot",
        seed=0,
        steps=12,
        batch_size=32,
        space_overrides={
            "image_size": 8,
            "width": 0.125,
            "repeats": (1, 1, 1, 1),
            "ops": ("shuffle3x3", "xception"),
        },
        data=DataConfig(name="cifar10", data_dir="/d"),
        optimizer="sgd",
        learning_rate=0.5,
        lr_schedule="linear",
        momentum=0.9,
        weight_decay=4e-5,
        label_smoothing=0.1,
        cost_bins=(380e3, 440e3),
        checkpoint_every=3,
        keep_checkpoints=10,
        log_every=3,
        eval_paths=10,
        eval_split="test",
        eval_batch_size=150,
        eval_batches=1,
        calib_images=150,
    )
    # (--image_size is a space override: the data's image_size is left to resolve())
    fv = _flags()
    fv(
        [
            "train",
            f"--flagfile={FLAGS_DIR / 'tiny_supernet.cfg'}",
            "--workdir=/x",
            "--dataset=cifar10",
            "--data_dir=/d",
            "--ops=shuffle3x3,xception",
            "--cost_bins=380e3,440e3",
            "--eval_split=test",
        ]
    )
    path = tmp_path / "flags.txt"
    path.write_text(train.flags_text(fv))
    again = _flags()
    again(["train", f"--flagfile={path}"])
    assert train.config_from_flags(again) == config


# ------------------------------------------------------------------------------- the app
def _app(args):
    return start_app("spos_tf.train", args)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SPOS_SLOW_TESTS"), reason="2-3 min: set SPOS_SLOW_TESTS=1")
def test_quickstart_end_to_end(tmp_path, data_dir):
    proc = _app(
        [
            "--flagfile=flags/quickstart.cfg",
            f"--workdir={tmp_path / 'qs'}",
            f"--data_dir={data_dir}",
            "--noprogress",
        ]
    )
    out, _ = proc.communicate(timeout=600)  # a hang guard, not a speed bound
    assert proc.returncode == 0, out
    assert "held-out accuracy of 10 random paths" in out
    record = run_dir.MetricsLog(str(tmp_path / "qs")).read()[-1]
    assert record["final"] and record["val_accuracy"] >= 0.90 and len(record["val_paths"]) >= 10


@pytest.mark.slow
def test_app_reports_bad_input_with_exit_status_2(tmp_path, data_dir):
    proc = _app(
        [
            "--flagfile=flags/tiny_supernet.cfg",
            f"--workdir={tmp_path / 'wd'}",
            f"--data_dir={data_dir}",
            "--arch=0,1",
        ]
    )
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert "error: bad --arch='0,1'" in out and "Traceback" not in out
    assert not (tmp_path / "wd").exists()
