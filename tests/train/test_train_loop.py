"""Tests for the training loop (``spos_tf.train.loop.run``): the workdir contract, resume after
SIGKILL, divergence, the mirrored strategy, bins in the metrics, retraining, bad inputs.

Runs the real loop on the tiny twins (flags/tiny_*.cfg) on the embedded digits; every data_dir and
workdir is under tmp_path. About 2-3 minutes on 2 CPU cores, mostly tracing the tiny supernet.
"""

import dataclasses
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import tensorflow as tf
from spos_tf.runs import run_dir
from spos_tf import spaces
from spos_tf.train import loop as train_loop
from spos_tf.models import step as train_step
from spos_tf.data import DataConfig
from spos_tf.models.sampling import ArchSampler, CostBinSampler
from spos_tf.train.config import ConfigError
from spos_tf.train.eval import EVAL_STEP_OFFSET
from spos_tf.train.loop import DivergenceError, run

from _files import snapshot
from _kill import kill_at_marker, start_app, start_app_that_stops_after_checkpoint
from _train_checks import (
    assert_only_sampled_choices_moved,
    checkpoint_values,
    parse_flagfile,
    standalone_accuracy,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir):
    """The tiny supernet twin, trained once in-process: (workdir, final record, config)."""
    workdir = str(tmp_path_factory.mktemp("tiny") / "run")
    config = parse_flagfile("tiny_supernet.cfg", f"--workdir={workdir}", f"--data_dir={data_dir}")
    record = run(dataclasses.replace(config, progress=False), stream=io.StringIO())
    return workdir, record, config


# ------------------------------------------------------------------------------- the run
@pytest.mark.slow
def test_tiny_supernet_writes_the_workdir_contract(tiny_run):
    workdir, record, config = tiny_run
    saved = run_dir.load_run_config(workdir)
    assert saved["space"] == "shufflenet_oneshot" and saved["arch"] is None
    assert saved["seed"] == 0
    space = spaces.get(saved["space"], **saved["space_overrides"])
    assert (space.image_size, space.num_classes, space.num_blocks) == (8, 10, 4)
    data = DataConfig(**saved["data"])
    assert data.name == "spos_digits" and data.image_size == 8

    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert records[-1] == record and record["final"] and record["step"] == config.steps
    assert len(record["val_paths"]) == 10 and record["bn_recalibrated"]
    assert record["calib_batches"] == config.num_calib_batches == 1  # --calib_images=150 of 150
    sampler = ArchSampler(space, 0)  # fixed evaluation paths: (seed, 2**40 + i)
    assert [p["arch"] for p in record["val_paths"]] == [
        str(sampler(EVAL_STEP_OFFSET + i)) for i in range(10)
    ]
    assert record["val_accuracy"] == pytest.approx(
        np.mean([p["accuracy"] for p in record["val_paths"]])
    )
    logs = [r for r in records if "loss" in r and "val_accuracy" not in r]
    assert [r["step"] for r in logs] == [3, 6, 9, 12]
    for r in logs:  # linear decay per step to 0; the record holds the rate of its last update
        assert r["learning_rate"] == pytest.approx(0.5 * (1 - (r["step"] - 1) / 12), rel=1e-5)
        assert r["arch_macs"] > 0 and 0 <= r["accuracy"] <= 1 and np.isfinite(r["loss"])

    events = list(Path(workdir, "tb").glob("events.out.tfevents.*"))
    assert events
    scalars = {
        (v.tag, e.step): float(tf.make_ndarray(v.tensor))
        for e in tf.compat.v1.train.summary_iterator(str(events[0]))
        for v in e.summary.value
    }
    assert {"loss", "accuracy", "learning_rate", "arch_macs", "val_accuracy"} <= {
        tag for tag, _ in scalars
    }
    for r in logs:  # TensorBoard shows the values of metrics.jsonl
        assert scalars[("loss", r["step"])] == pytest.approx(r["loss"], rel=1e-6)
        assert scalars[("arch_macs", r["step"])] == pytest.approx(r["arch_macs"], rel=1e-6)
    assert scalars[("val_accuracy", 12)] == pytest.approx(record["val_accuracy"], rel=1e-6)
    assert not Path(workdir, "flags.txt").exists()  # written by the app (see test_app_*)

    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    assert latest.endswith("ckpt-12")
    space2, model, cfg = run_dir.restore_model(workdir)
    assert space2 == space and cfg == saved
    values = checkpoint_values(latest)
    kernel = model.stem.prims["stem_conv"].kernel
    key = [
        k
        for k in values
        if "stem" in k and "kernel" in k and "optimizer" not in k and "OPTIMIZER_SLOT" not in k
    ]
    assert any(np.array_equal(values[k], kernel.numpy()) for k in key)


@pytest.mark.slow
def test_rerunning_a_finished_run_trains_nothing(tiny_run):
    workdir, record, config = tiny_run
    before = snapshot(workdir, mtimes=False)  # a resume rewrites metrics.jsonl with the same lines
    out = io.StringIO()
    again = run(dataclasses.replace(config, log_every=6), stream=out)  # neutral change
    assert again == record and "already trained" in out.getvalue()
    after = snapshot(workdir, mtimes=False)
    assert after.pop("config.json") != before.pop("config.json")  # holds the new log_every
    assert after == before
    assert run_dir.load_run_config(workdir)["log_every"] == 6


@pytest.mark.slow
def test_a_different_config_is_refused_and_changes_nothing(tiny_run):
    workdir, _, config = tiny_run
    before = snapshot(workdir)
    with pytest.raises(run_dir.RunDirError, match=r"learning_rate: 0\.5 -> 0\.1.*--overwrite"):
        run(dataclasses.replace(config, learning_rate=0.1))
    with pytest.raises(run_dir.RunDirError, match="space_overrides"):
        run(dataclasses.replace(config, space_overrides={**config.space_overrides, "width": 0.25}))
    assert snapshot(workdir) == before


def _copy(tiny_run, tmp_path):
    workdir, _, config = tiny_run
    copy = str(tmp_path / "copy")
    shutil.copytree(workdir, copy)
    return copy, dataclasses.replace(config, workdir=copy)


@pytest.mark.slow
def test_a_damaged_checkpoint_is_reported_and_kept(tiny_run, tmp_path):
    workdir, config = _copy(tiny_run, tmp_path)
    data = Path(workdir, "checkpoints", "ckpt-12.data-00000-of-00001")
    data.write_bytes(data.read_bytes()[:100])
    before = snapshot(workdir)
    with pytest.raises(run_dir.CheckpointError, match=r"ckpt-12 cannot be restored.*--overwrite"):
        run(config)
    with pytest.raises(run_dir.CheckpointError, match="ckpt-12"):
        run_dir.restore_model(workdir)
    assert snapshot(workdir) == before


@pytest.mark.slow
def test_a_damaged_checkpoint_index_is_reported(tiny_run, tmp_path):
    workdir, config = _copy(tiny_run, tmp_path)
    Path(workdir, "checkpoints", "checkpoint").write_text("model_checkpoint_path: {{{")
    with pytest.raises(run_dir.CheckpointError, match="checkpoint index"):
        run(config)
    Path(workdir, "checkpoints", "checkpoint").write_text('model_checkpoint_path: "ckpt-99"\n')
    with pytest.raises(run_dir.CheckpointError, match="missing"):
        run_dir.restore_model(workdir)


@pytest.mark.slow
def test_a_relative_workdir_finds_its_checkpoints(tiny_run, monkeypatch):
    # The quick start's default workdir is relative (runs/quickstart); the checkpoint index names
    # "ckpt-N" relative to its folder, which must be joined once, not twice.
    workdir = tiny_run[0]
    absolute = run_dir.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    monkeypatch.chdir(os.path.dirname(workdir))
    relative = os.path.join(os.path.basename(workdir), "checkpoints")
    assert not os.path.isabs(relative)
    assert run_dir.latest_checkpoint(relative) == absolute
    assert os.path.exists(absolute + ".index")
    _, from_relative, _ = run_dir.restore_model(os.path.basename(workdir))
    _, from_absolute, _ = run_dir.restore_model(workdir)
    for a, b in zip(from_relative.weights, from_absolute.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ------------------------------------------------------------------------------- bad input
def _tiny(tmp_path, data_dir, *flags_, **changes):
    config = parse_flagfile(
        "tiny_supernet.cfg", f"--workdir={tmp_path / 'wd'}", f"--data_dir={data_dir}", *flags_
    )
    return dataclasses.replace(config, progress=False, **changes)


TWO_OPS = "--ops=shuffle3x3,xception"  # half the branches: half the tracing time


BAD = [
    (dict(space="nope"), ValueError, "unknown search space"),
    (dict(space_overrides={"ops": ("shuffle3x3", "conv9x9")}), ValueError, "unknown op"),
    (dict(space_overrides={"repeats": (1, 1)}), ValueError, "repeats must list 4 stages"),
    (dict(space_overrides={"depth": 3}), ValueError, "bad override"),
    (dict(arch="1,2"), ValueError, "4 choice blocks"),
    (dict(arch="0,0,0,9"), ValueError, "out of range"),
    (dict(arch="a,b,c,d"), ValueError, "not comma-separated"),
    (dict(arch="/no/such/arch.json"), ValueError, "does not exist"),
    (dict(data=DataConfig(name="no_such_data")), ValueError, "Unknown data set"),
    (dict(steps=0), ValueError, "--steps"),
    (dict(batch_size=-4), ValueError, "--batch_size"),
    (dict(learning_rate=float("nan")), ValueError, "--learning_rate"),
    (dict(optimizer="rmsprop"), ValueError, "--optimizer"),
    (dict(lr_schedule="step"), ValueError, "--lr_schedule"),
    (dict(strategy="tpu"), ValueError, "--strategy"),
    (dict(label_smoothing=1.0), ValueError, "--label_smoothing"),
    (dict(eval_split="train"), ValueError, "--eval_split"),
    (dict(min_macs=2e6, max_macs=1e6), ValueError, "above --max_macs"),
    (dict(max_macs=10.0), ValueError, "met the sampling constraint"),
    (dict(final_bn_batches=5), ValueError, "applies to retraining"),
    (dict(arch="0,0,0,0", min_macs=1.0), ValueError, "drop them"),
    (dict(sampling="bins"), ValueError, "--sampling"),
    (dict(sampling="cost_bins", max_macs=5e5), ValueError, "cannot be combined"),
    (dict(sampling="cost_bins"), ValueError, "no --cost_bins bin overlaps"),  # 290M..360M
    (dict(sampling="cost_bins", cost_bins=(5e5, 4e5)), ValueError, "strictly increasing"),
    (dict(arch="0,0,0,0", sampling="cost_bins"), ValueError, "drop them"),
    (dict(space_overrides={"num_classes": 5}), ValueError, "below the 10 classes"),
    (dict(workdir=""), ValueError, "--workdir is required"),
]


@pytest.mark.parametrize("changes, error, message", BAD, ids=[str(b[0])[:40] for b in BAD])
def test_bad_input_is_refused_before_anything_is_written(
    changes, error, message, tmp_path, data_dir
):
    if "data" in changes:
        changes["data"] = dataclasses.replace(changes["data"], data_dir=data_dir)
    with pytest.raises(error, match=message):
        run(_tiny(tmp_path, data_dir, **changes))
    assert not (tmp_path / "wd").exists()


def test_missing_imagenet_names_the_manual_download(tmp_path):
    config = _tiny(
        tmp_path,
        str(tmp_path / "tfds"),
        data=DataConfig(name="imagenet2012", data_dir=str(tmp_path / "tfds")),
    )
    with pytest.raises(FileNotFoundError, match="ILSVRC2012_img_train.tar"):
        run(config)
    assert not (tmp_path / "wd").exists()


def test_multi_worker_without_tf_config_is_refused(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        run(_tiny(tmp_path, data_dir, strategy="multi_worker"))


def test_workdir_that_is_a_file_or_a_damaged_run_is_refused(tmp_path, data_dir):
    (tmp_path / "wd").write_text("x")
    with pytest.raises(run_dir.RunDirError, match="is a file"):
        run(_tiny(tmp_path, data_dir))
    (tmp_path / "wd").unlink()
    (tmp_path / "wd" / "checkpoints").mkdir(parents=True)
    with pytest.raises(run_dir.RunDirError, match="no config.json.*--overwrite"):
        run(_tiny(tmp_path, data_dir))


@pytest.mark.slow
def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(
    tmp_path, data_dir, monkeypatch
):
    real = train_loop.build_dataset

    def poisoned(config, role, *args, **kwargs):  # batch 7 (step 8) and later carry NaN images
        ds = real(config, role, *args, **kwargs)
        if role != "train":
            return ds
        return ds.enumerate().map(lambda i, batch: (tf.where(i >= 7, np.nan, batch[0]), batch[1]))

    monkeypatch.setattr(train_loop, "build_dataset", poisoned)
    config = _tiny(tmp_path, data_dir, TWO_OPS)
    with pytest.raises(
        DivergenceError,
        match=r"diverged at step 8: the (loss is nan|gradients contain NaN)"
        r".*ckpt-6 is kept",
    ):
        run(config)
    ckpt_dir = str(tmp_path / "wd" / "checkpoints")
    assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-6")
    assert sorted(p.name for p in Path(ckpt_dir).glob("*.index")) == [
        "ckpt-3.index",
        "ckpt-6.index",
    ]
    records = run_dir.MetricsLog(str(tmp_path / "wd")).read()
    assert [r["step"] for r in records] == [3, 6] and "val_accuracy" not in records[-1]
    _, model, _ = run_dir.restore_model(str(tmp_path / "wd"))
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


@pytest.mark.slow
def test_mirrored_strategy_splits_the_batch_and_keeps_updates_masked(
    tmp_path, data_dir, monkeypatch
):
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs 2 logical CPU devices (tests/conftest.py)")
    with pytest.raises(ConfigError, match="not divisible by the 2 replicas"):
        run(_tiny(tmp_path, data_dir, strategy="mirrored", batch_size=31))
    replicas = []  # the app's step is the one of spos_tf.models.step, run on each replica
    real_step = train_step.train_step

    def recording(model, *args, **kwargs):
        replicas.append(
            int(tf.get_static_value(tf.distribute.get_replica_context().replica_id_in_sync_group))
        )
        return real_step(model, *args, **kwargs)

    monkeypatch.setattr(train_step, "train_step", recording)
    config = _tiny(tmp_path, data_dir, TWO_OPS, strategy="mirrored", steps=3, eval_paths=1)
    out = io.StringIO()
    record = run(config, stream=out)
    assert "on 2 replica(s)" in out.getvalue() and record["final"]
    assert sorted(replicas) == [0, 1]  # traced once per replica
    assert assert_only_sampled_choices_moved(tmp_path / "wd", 3) > 0


@pytest.mark.slow
def test_cost_bins_sampling_reports_the_bins_in_metrics(tmp_path, data_dir):
    """Issue 12, item 4: --sampling=cost_bins trains the paths of CostBinSampler and every
    metrics record counts the sampled paths per MACs bin since the previous record."""
    edges = (380e3, 440e3, 500e3, 560e3)  # the tiny space spans 379,648 .. 557,568 MACs
    config = _tiny(
        tmp_path,
        data_dir,
        "--sampling=cost_bins",
        "--cost_bins=" + ",".join(f"{e:g}" for e in edges),
        steps=6,
        eval_paths=2,
    )
    assert config.cost_bins == edges
    run(config, stream=io.StringIO())
    records = [json.loads(line) for line in open(tmp_path / "wd" / "metrics.jsonl")]
    logged = [r for r in records if "path_bins" in r]
    assert [r["step"] for r in logged] == [3, 6]
    space = spaces.get("shufflenet_oneshot", **config.space_overrides, num_classes=10)
    sampler = CostBinSampler(space, 0, edges)
    macs = [spos_tf.costs.macs(space, sampler(step)) for step in range(6)]
    for record, window in zip(logged, (macs[:3], macs[3:])):
        expected = [
            sum(lo <= m < hi or (hi == edges[-1] and m == hi) for m in window)
            for lo, hi in zip(edges, edges[1:])
        ]
        assert record["path_bins"] == expected
        assert record["path_bins_outside"] == 3 - sum(expected)
        assert record["arch_macs"] == pytest.approx(np.mean(window), rel=1e-6)
    saved = run_dir.load_run_config(str(tmp_path / "wd"))
    assert (saved["sampling"], saved["cost_bins"], saved["bin_tries"]) == (
        "cost_bins",
        list(edges),
        500,
    )


# ------------------------------------------------------------------------------- retraining
@pytest.mark.slow
def test_tiny_retrain_runs_the_final_bn_pass(tmp_path, data_dir):
    workdir = str(tmp_path / "rt")
    run_dir.write_config(workdir, {"space": "shufflenet_oneshot", "steps": 7})  # another run
    os.makedirs(os.path.join(workdir, "checkpoints"))
    Path(workdir, "notes.txt").write_text("not the run's")
    config = parse_flagfile(
        "tiny_retrain.cfg", f"--workdir={workdir}", f"--data_dir={data_dir}", "--overwrite"
    )
    out = io.StringIO()
    record = run(dataclasses.replace(config, progress=False), stream=out)
    assert Path(workdir, "notes.txt").read_text() == "not the run's"
    assert "Training the stand-alone network 2,1,0,3" in out.getvalue()
    assert "Recomputed exact BN statistics on 2 batches" in out.getvalue()
    assert record["final"] and record["eval_split"] == "test"
    assert record["val_accuracy"] == pytest.approx(standalone_accuracy(workdir), abs=1e-9)
    saved = run_dir.load_run_config(workdir)
    assert saved["arch"] == "2,1,0,3"
    values = checkpoint_values(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")))
    assert [v for k, v in values.items() if k.startswith("final_bn")] == [1]
    space, model, _ = run_dir.restore_model(workdir)
    assert model.name == "standalone" and str(model.arch) == "2,1,0,3"


@pytest.mark.slow
def test_sigkill_and_restart_ends_with_the_weights_of_an_uninterrupted_run(
    tiny_run, tmp_path, data_dir
):
    ref_dir = Path(tiny_run[0])  # the same flags, trained uninterrupted (in-process)
    work = tmp_path / "killed"
    common = [
        "--flagfile=flags/tiny_supernet.cfg",
        f"--data_dir={data_dir}",
        "--noprogress",
        f"--workdir={work}",
    ]
    # killed right after its first checkpoint (step 3), whatever the machine's speed
    marker = tmp_path / "checkpointed"
    killed = start_app_that_stops_after_checkpoint("spos_tf.train", common, marker)
    path = kill_at_marker(killed, marker, timeout_s=150)
    state = tf.train.get_checkpoint_state(str(work / "checkpoints"))
    assert state.model_checkpoint_path == path and path.endswith("ckpt-3")
    killed_at = 3

    resumed = start_app("spos_tf.train", common)
    out, _ = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, out
    assert "Resuming the supernet" in out and f"at step {killed_at}/12" in out
    assert "Final (step 12) held-out accuracy of 10 random paths" in out and "Done in" in out

    a = checkpoint_values(str(ref_dir / "checkpoints" / "ckpt-12"))
    b = checkpoint_values(str(work / "checkpoints" / "ckpt-12"))
    assert a.keys() == b.keys()
    assert len([k for k in a if k.startswith("model/")]) > 100
    different = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"

    def history(folder):  # same sampled paths (MACs), same losses, same evaluation
        return [
            (r["step"], r.get("loss"), r.get("arch_macs"), r.get("val_accuracy"))
            for r in run_dir.MetricsLog(str(folder)).read()
        ]

    assert history(ref_dir) == history(work)
    flags_txt = (work / "flags.txt").read_text()
    assert "--steps=12" in flags_txt and f"--workdir={work}" in flags_txt
