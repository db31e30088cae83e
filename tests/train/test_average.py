"""Checkpoint weight averaging (spos_tf.train.average): the averaged checkpoint against numpy means
of the source checkpoints' tensors, read straight from the files; bad arguments refused with
nothing written. Fast: the source checkpoints are written by ``_train_checks.checkpoint_run`` from a
tiny NAS-Bench-201 supernet with set weights, nothing is trained."""

import json
import os

import numpy as np
import pytest

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from spos_tf.runs import run_dir
from spos_tf.train import average

from _files import snapshot
from _train_checks import checkpoint_run, checkpoint_values


def _model_tensors(path):
    return {k: v for k, v in checkpoint_values(path).items() if k.startswith("model/")}


def test_the_averaged_checkpoint_is_the_mean_of_the_sources(tmp_path):
    source, out = tmp_path / "run", tmp_path / "avg"
    checkpoint_run(source, steps=(6, 12, 18))
    path = average.average_checkpoints(str(source), [12, 6], str(out))
    assert path == os.path.join(run_dir.checkpoint_dir(str(out)), "ckpt-12")
    a, b = (_model_tensors(source / "checkpoints" / f"ckpt-{s}") for s in (6, 12))
    got = _model_tensors(path)
    assert set(got) == set(a)
    floats = [k for k in a if a[k].dtype.kind == "f"]
    assert len(floats) > 50  # every kernel, BN parameter and BN statistic
    for k in floats:
        assert not np.allclose(a[k], b[k])  # the two sources differ, so a mean is a new value
        np.testing.assert_allclose(
            got[k], (a[k].astype(np.float64) + b[k]) / 2, rtol=1e-6, atol=1e-7
        )
    ints = [k for k in a if a[k].dtype.kind == "i"]
    assert ints and all((got[k] == 12).all() for k in ints)  # the last step's, not a mean
    assert average.read_averaged_from(str(out)) == {"source": str(source), "steps": [6, 12]}
    assert average.read_averaged_from(str(source)) is None
    # the other apps restore it like a trained run
    _, model, config = run_dir.restore_model(str(out))
    assert config["workdir"] == str(out) and config["space"] == "nasbench201"
    kernel = next(k for k in floats if "kernel" in k)
    assert any(np.array_equal(v.numpy(), got[kernel]) for v in model.variables)


def test_the_steps_saved_are_listed(tmp_path):
    checkpoint_run(tmp_path / "run", steps=(6, 12))
    saved = run_dir.saved_checkpoints(run_dir.checkpoint_dir(str(tmp_path / "run")))
    assert list(saved) == [6, 12]
    assert saved[12] == os.path.join(str(tmp_path / "run"), "checkpoints", "ckpt-12")
    assert run_dir.saved_checkpoints(str(tmp_path / "nothing")) == {}


@pytest.mark.parametrize(
    "steps, message",
    [
        ([6], r"at least 2 checkpoint steps \(got \[6\]\); .* holds steps \[6, 12\]"),
        ([6, 6], "at least 2"),
        ([6, 9], r"no checkpoint at step\(s\) \[9\]; it holds steps \[6, 12\]"),
    ],
)
def test_bad_steps_are_refused_with_the_fix(tmp_path, steps, message):
    checkpoint_run(tmp_path / "run")
    with pytest.raises(average.AverageError, match=message):
        average.average_checkpoints(str(tmp_path / "run"), steps, str(tmp_path / "avg"))
    assert not (tmp_path / "avg").exists()


def test_a_folder_holding_a_run_is_never_overwritten(tmp_path):
    checkpoint_run(tmp_path / "run")
    average.average_checkpoints(str(tmp_path / "run"), [6, 12], str(tmp_path / "avg"))
    before = snapshot(tmp_path / "avg")
    with pytest.raises(average.AverageError, match="already holds a run; choose a new folder"):
        average.average_checkpoints(str(tmp_path / "run"), [6, 12], str(tmp_path / "avg"))
    assert snapshot(tmp_path / "avg") == before
    with open(tmp_path / "avg" / "averaged_from.json") as f:
        assert json.load(f)["steps"] == [6, 12]


def test_the_command_line_writes_the_average_or_names_the_fix(tmp_path, capsys):
    from conftest import import_benchmark

    cli = import_benchmark("average_checkpoints")
    checkpoint_run(tmp_path / "run")
    run, out = str(tmp_path / "run"), str(tmp_path / "avg")
    assert cli.main([f"--workdir={run}", "--steps=6,7", f"--out={out}"]) == 2
    assert "no checkpoint at step(s) [7]; it holds steps [6, 12]" in capsys.readouterr().err
    assert not os.path.exists(out)
    assert cli.main([f"--workdir={run}", "--steps=6,12", f"--out={out}"]) == 0
    assert "the mean of steps [6, 12]" in capsys.readouterr().out
    assert average.read_averaged_from(out)["steps"] == [6, 12]
    with pytest.raises(SystemExit):
        cli.main([f"--workdir={run}", "--steps=6,x", f"--out={out}2"])
