"""Warm start (spos_tf.train.init, ``--init_from``): a supernet run that starts from another
supernet run's weights and BN statistics with a fresh optimizer, the equal-budget control of a
few-shot split. The slow tests start from the session's tiny NAS-Bench-201 supernet (conftest.py's
``nb201``: flags/tiny_nb201_supernet.cfg, checkpoints at steps 6 and 12), only read here."""

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from spos_tf.runs import run_dir
from spos_tf.train import loop as train_loop
from spos_tf.train.config import ConfigError, TrainConfig

from _files import snapshot
from _train_checks import checkpoint_values, parse_flagfile, restored_optimizer

REPO = Path(__file__).resolve().parents[2]


def _parse(*extra):
    with contextlib.chdir(REPO):
        return parse_flagfile("tiny_nb201_supernet.cfg", *extra)


def _config(workdir, source, data_dir, *extra):
    return _parse(
        f"--workdir={workdir}",
        f"--init_from={source}",
        f"--data_dir={data_dir}",
        "--steps=4",
        "--lr_schedule_steps=4",
        "--checkpoint_every=2",
        "--log_every=2",
        "--eval_paths=2",
        "--noprogress",
        *extra,
    )


def _model_kernels(path):
    """The supernet's kernels in the checkpoint ``path`` (``{key: array}``)."""
    return {
        k: v
        for k, v in checkpoint_values(path).items()
        if k.startswith("model/") and "kernel" in k and "OPTIMIZER_SLOT" not in k
    }


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"arch": "0,0,0,0,0,0"}, "drop it when retraining one architecture"),
        ({"few_shot_split": 3, "few_shot_from": "/x"}, "drop --init_from"),
    ],
)
def test_bad_combinations_are_refused_with_the_fix(tmp_path, fields, message):
    config = TrainConfig(workdir=str(tmp_path / "w"), init_from="/somewhere", **fields)
    with pytest.raises(ValueError, match=message):
        config.validate()


@pytest.mark.parametrize("inside", ["", "checkpoints", "checkpoints/ckpt-4"])
def test_its_own_workdir_is_refused(tmp_path, inside):
    config = TrainConfig(workdir=str(tmp_path / "w"), init_from=str(tmp_path / "w" / inside))
    with pytest.raises(ValueError, match="this run's own --workdir"):
        config.validate()
    TrainConfig(workdir=str(tmp_path / "w2"), init_from=str(tmp_path / "w" / inside)).validate()


@pytest.mark.slow
def test_a_warm_start_reads_the_source_weights_and_a_fresh_optimizer(nb201, tmp_path):
    """With --learning_rate=1e-30 no update changes a float32 kernel (each is below half an
    ulp), so a warm-started run's kernels after 4 steps equal the source's latest checkpoint bit
    for bit, and a cold run's do not (the test can fail); its step counter starts at 0, not at
    the source's 12."""
    source, _, data_dir = nb201
    latest = run_dir.latest_checkpoint(run_dir.checkpoint_dir(str(source)))
    assert latest.endswith("ckpt-12")
    warm = tmp_path / "warm"
    record = train_loop.run(
        _config(warm, source, data_dir, "--learning_rate=1e-30"), stream=io.StringIO()
    )
    assert record["final"] and record["step"] == 4
    assert json.loads((warm / "init_from.json").read_text()) == {"checkpoint": latest, "step": 12}
    ours = _model_kernels(os.path.join(run_dir.checkpoint_dir(str(warm)), "ckpt-4"))
    theirs = _model_kernels(latest)
    assert ours.keys() == theirs.keys() and len(ours) > 20
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)
    _, model, _ = run_dir.restore_model(str(warm))
    assert int(restored_optimizer(str(warm), model).iterations.numpy()) == 4  # not 12 + 4

    cold = tmp_path / "cold"
    train_loop.run(
        _parse(
            f"--workdir={cold}",
            f"--data_dir={data_dir}",
            "--learning_rate=1e-30",
            "--steps=2",
            "--checkpoint_every=2",
            "--eval_paths=1",
            "--noprogress",
        ),
        stream=io.StringIO(),
    )
    fresh = _model_kernels(os.path.join(run_dir.checkpoint_dir(str(cold)), "ckpt-2"))
    assert sum(not np.array_equal(fresh[k], theirs[k]) for k in fresh) > 20


@pytest.mark.slow
def test_a_named_checkpoint_is_used(nb201, tmp_path):
    """``--init_from=<run>/checkpoints/ckpt-6`` starts from step 6's weights, not the latest."""
    source, _, data_dir = nb201
    early = os.path.join(run_dir.checkpoint_dir(str(source)), "ckpt-6")
    work = tmp_path / "named"
    train_loop.run(_config(work, early, data_dir, "--learning_rate=1e-30"), stream=io.StringIO())
    assert json.loads((work / "init_from.json").read_text()) == {"checkpoint": early, "step": 6}
    ours = _model_kernels(os.path.join(run_dir.checkpoint_dir(str(work)), "ckpt-4"))
    theirs = _model_kernels(early)
    assert ours.keys() == theirs.keys()
    assert all(np.array_equal(v, theirs[k]) for k, v in ours.items())
    assert any(not np.array_equal(v, _model_kernels(_latest(source))[k]) for k, v in ours.items())


def _latest(workdir):
    return run_dir.latest_checkpoint(run_dir.checkpoint_dir(str(workdir)))


@pytest.mark.slow
def test_a_resume_before_the_first_checkpoint_reads_the_recorded_checkpoint(nb201, tmp_path):
    """Killed before its own first checkpoint, a run resumes from the checkpoint recorded in
    init_from.json even when the source's latest has changed since (here: its index rewound to
    ckpt-6), and ends with the uninterrupted run's weights."""
    source, _, data_dir = nb201
    copy = tmp_path / "source"
    shutil.copytree(source, copy)
    work = tmp_path / "warm"
    train_loop.run(_config(work, copy, data_dir, "--learning_rate=0.05"), stream=io.StringIO())
    recorded = json.loads((work / "init_from.json").read_text())
    assert recorded == {"checkpoint": str(copy / "checkpoints" / "ckpt-12"), "step": 12}
    done = checkpoint_values(os.path.join(run_dir.checkpoint_dir(str(work)), "ckpt-4"))

    (copy / "checkpoints" / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-6"\nall_model_checkpoint_paths: "ckpt-6"\n'
    )
    run_dir.remove_path(run_dir.checkpoint_dir(str(work)))  # as if killed at step 1
    run_dir.remove_path(os.path.join(work, run_dir.METRICS_FILE))
    out = io.StringIO()
    train_loop.run(_config(work, copy, data_dir, "--learning_rate=0.05"), stream=out)
    assert json.loads((work / "init_from.json").read_text()) == recorded
    again = checkpoint_values(os.path.join(run_dir.checkpoint_dir(str(work)), "ckpt-4"))
    assert again.keys() == done.keys()
    assert all(np.array_equal(again[k], done[k]) for k in done)


@pytest.mark.slow
def test_a_source_of_another_space_or_without_checkpoint_is_refused(nb201, tmp_path):
    source, _, data_dir = nb201
    with pytest.raises(ConfigError, match=r"--init_from=.*another space \(width: 0\.25 there"):
        train_loop.run(
            _config(tmp_path / "a", source, data_dir, "--width=0.5"), stream=io.StringIO()
        )
    empty = tmp_path / "empty"
    empty.mkdir()
    run_dir.write_config(str(empty), run_dir.load_run_config(str(source)))
    before = snapshot(str(empty))
    with pytest.raises(run_dir.RunDirError, match="has no checkpoint yet: train that"):
        train_loop.run(_config(tmp_path / "b", empty, data_dir), stream=io.StringIO())
    assert snapshot(str(empty)) == before
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_a_fine_tune_on_listed_paths_changes_only_their_weights(nb201, tmp_path):
    """--init_from with --sample_from listing only the all-skip cell (``1,1,1,1,1,1``: no
    weights inside the searched cells) trains the stem, the fixed reduction blocks and the head
    and leaves every kernel of the searched cells' ops bit-identical to the source checkpoint;
    listing only the all-3x3-conv cell changes exactly the 3x3 conv kernels of the 18 searched
    edges (3 cells x 6), none of the 1x1 ones (the test can fail both ways). The run records the
    listed cells and refuses to resume once the file lists others."""
    source, _, data_dir = nb201
    theirs = _model_kernels(_latest(source))
    changed = {}
    for text in ("1,1,1,1,1,1", "3,3,3,3,3,3"):
        listed = tmp_path / f"{text}.txt"
        listed.write_text(text + "\n")
        work = tmp_path / text
        train_loop.run(
            _config(work, source, data_dir, f"--sample_from={listed}"), stream=io.StringIO()
        )
        ours = _model_kernels(os.path.join(run_dir.checkpoint_dir(str(work)), "ckpt-4"))
        assert ours.keys() == theirs.keys()
        changed[text] = {k for k in ours if not np.array_equal(ours[k], theirs[k])}
    # the run recorded what it trained; a resume whose file now lists another cell is refused
    assert json.loads((tmp_path / "1,1,1,1,1,1" / "sample_from.json").read_text())["archs"] == [
        "1,1,1,1,1,1"
    ]
    (tmp_path / "1,1,1,1,1,1.txt").write_text("3,3,3,3,3,3\n")
    with pytest.raises(ConfigError, match="restore the file to resume"):
        train_loop.run(
            _config(
                tmp_path / "1,1,1,1,1,1",
                source,
                data_dir,
                f"--sample_from={tmp_path / '1,1,1,1,1,1.txt'}",
            ),
            stream=io.StringIO(),
        )
    cells = {k for k in theirs if k.startswith("model/choice_blocks/")}
    assert len(cells) > 20
    assert changed["1,1,1,1,1,1"] and not changed["1,1,1,1,1,1"] & cells  # stem, body, head
    conv3 = {k for k in cells if "/units/nor_conv_3x3/" in k}
    assert changed["3,3,3,3,3,3"] & cells == conv3 and len(conv3) == 18  # 1x1 convs untouched
