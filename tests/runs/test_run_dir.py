"""The run directory contract (spos_tf.runs.run_dir): workdir states, metrics log, atomic writes,
errors that name the fix."""

import os
from pathlib import Path

import pytest

from spos_tf.runs import run_dir


def test_check_workdir_states(tmp_path):
    config = {"space": "s", "learning_rate": 0.5, "workdir": "a", "data": {"data_dir": "x"}}
    wd = str(tmp_path / "wd")
    assert run_dir.check_workdir(wd, config, overwrite=False) == "new"
    os.makedirs(wd)
    (Path(wd) / "notes.txt").write_text("mine")
    assert run_dir.check_workdir(wd, config, overwrite=False) == "new"
    run_dir.write_config(wd, config)
    neutral = ("workdir", "data.data_dir")
    moved = {**config, "workdir": "b", "data": {"data_dir": "y"}}
    assert run_dir.check_workdir(wd, moved, overwrite=False, neutral=neutral) == "resume"
    with pytest.raises(run_dir.RunDirError, match="learning_rate: 0.5 -> 0.1"):
        run_dir.check_workdir(wd, {**config, "learning_rate": 0.1}, overwrite=False)
    other = {**config, "learning_rate": 0.1}
    assert run_dir.check_workdir(wd, other, overwrite=True) == "overwrite"
    run_dir.clear(wd)
    assert os.listdir(wd) == ["notes.txt"]


def test_metrics_log_truncates_after_a_resumed_step_and_drops_a_cut_line(tmp_path):
    log = run_dir.MetricsLog(str(tmp_path))
    for step in (3, 6, 9):
        log.append({"step": step})
    with open(log.path, "a") as f:
        f.write('{"step": 1')
    assert [r["step"] for r in log.read()] == [3, 6, 9]
    log.truncate_after(6)
    assert [r["step"] for r in log.read()] == [3, 6]


def test_restore_model_errors_name_the_fix(tmp_path):
    with pytest.raises(run_dir.RunDirError, match="does not exist"):
        run_dir.restore_model(str(tmp_path / "nope"))
    with pytest.raises(run_dir.RunDirError, match="config.json is missing"):
        run_dir.restore_model(str(tmp_path))
    run_dir.write_config(str(tmp_path), {"space": "shufflenet_oneshot", "space_overrides": {}})
    with pytest.raises(run_dir.CheckpointError, match="no checkpoint"):
        run_dir.restore_model(str(tmp_path))


@pytest.mark.parametrize(
    "write",
    [
        lambda path: run_dir.atomic_write_text(path, "new"),
        lambda path: run_dir.atomic_write_bytes(path, b"new"),
    ],
    ids=["text", "bytes"],
)
def test_atomic_writes_replace_the_file_and_leave_no_temporary(tmp_path, write):
    path = tmp_path / "sub" / "out.txt"
    write(str(path))
    assert path.read_bytes() == b"new" and os.listdir(path.parent) == ["out.txt"]


def _write(path: Path, text: str, folder: bool) -> None:
    """``text`` as the file ``path``, or as ``path/a.txt`` and ``path/sub/b.txt``."""
    if folder:
        (path / "sub").mkdir(parents=True, exist_ok=True)
        (path / "a.txt").write_text(text)
        (path / "sub" / "b.txt").write_text(text)
    else:
        path.write_text(text)


def _written(text: str, folder: bool) -> dict:
    """What :func:`_read` returns after ``_write(path, text, folder)``."""
    return {"a.txt": text, os.path.join("sub", "b.txt"): text} if folder else {".": text}


def _read(path: Path) -> dict:
    if path.is_file():
        return {".": path.read_text()}
    return {str(p.relative_to(path)): p.read_text() for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("folder", [False, True], ids=["file", "folder"])
def test_a_failed_write_keeps_the_old_content(tmp_path, folder):
    path = tmp_path / "out"
    _write(path, "old", folder)
    with pytest.raises(RuntimeError, match="boom"):
        with run_dir.replacing(str(path), folder=folder) as tmp:
            _write(Path(tmp), "half", folder)
            raise RuntimeError("boom")
    assert _read(path) == _written("old", folder)
    assert os.listdir(tmp_path) == ["out"]  # no temporary left


@pytest.mark.parametrize("old", ["file", "folder", None])
def test_a_folder_replaces_a_file_or_a_folder_and_leaves_no_copy(tmp_path, old):
    path = tmp_path / "out"
    if old is not None:
        _write(path, "old", old == "folder")
        (tmp_path / "out.old").mkdir()  # a crashed writer's old copy
    with run_dir.replacing(str(path), folder=True) as tmp:
        _write(Path(tmp), "new", True)
    assert _read(path) == _written("new", True)
    assert os.listdir(tmp_path) == ["out"]


@pytest.mark.parametrize("folder", [False, True], ids=["file", "folder"])
def test_a_failed_move_keeps_the_old_content(tmp_path, monkeypatch, folder):
    """The move itself fails (here: a permission error on the new entry): ``path`` holds the
    previous content again and the error is raised."""
    path = tmp_path / "out"
    _write(path, "old", folder)
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(src).startswith(".out."):  # the new entry, not the old copy
            raise PermissionError(13, "denied", src)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(PermissionError):
        with run_dir.replacing(str(path), folder=folder) as tmp:
            _write(Path(tmp), "new", folder)
    assert _read(path) == _written("old", folder)
    assert os.listdir(tmp_path) == ["out"]


def test_save_figure_writes_a_png_and_closes_the_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = tmp_path / "plot.png"
    run_dir.save_figure(fig, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number) and os.listdir(tmp_path) == ["plot.png"]


def test_check_workdir_of_an_app_decides_new_resume_overwrite_and_refuses_other_settings(tmp_path):
    import json as _json

    import pytest as _pytest

    from spos_tf.runs import run_dir as rd

    entries, settings = ("cfg.json", "out.csv"), {"seed": 0, "progress": True}
    check = lambda s, **kw: rd.check_workdir(
        tmp_path,
        s,
        entries=entries,  # noqa: E731
        config_file="cfg.json",
        neutral=("progress",),
        **kw,
    )
    assert check(settings, overwrite=False) == "new"
    (tmp_path / "out.csv").write_text("x")
    with _pytest.raises(rd.RunDirError, match="no cfg.json"):
        check(settings, overwrite=False)
    (tmp_path / "cfg.json").write_text(_json.dumps({"seed": 0, "progress": False}))
    assert check(settings, overwrite=False) == "resume"  # neutral key differs only
    with _pytest.raises(rd.RunDirError, match=r"holds a thing with other settings \(seed: 0 -> 1"):
        check({"seed": 1}, overwrite=False, what="a thing")
    assert check({"seed": 1}, overwrite=True) == "overwrite"
    assert check({"seed": 0, "new": 3}, overwrite=False, defaults={"new": 3}) == "resume"


def test_a_setting_added_after_a_run_was_written_is_its_default_on_resume():
    defaults = {"lr": 0.5, "new": "uniform", "data": {"name": "d", "extra": 1}}
    old = {"lr": 0.5, "data": {"name": "d"}}  # written before "new" and "data.extra" existed
    assert run_dir.config_diff(old, defaults, defaults=defaults) == []
    changed = {"lr": 0.5, "new": "cost_bins", "data": {"name": "d", "extra": 1}}
    assert run_dir.config_diff(old, changed, defaults=defaults) == ["new: '<unset>' -> 'cost_bins'"]
    assert run_dir.config_diff(old, defaults) == [  # without defaults: strict
        "data.extra: '<unset>' -> 1",
        "new: '<unset>' -> 'uniform'",
    ]


def test_restore_model_at_a_saved_step_loads_that_checkpoints_weights(tmp_path):
    """``restore_model(step=...)`` against the tensors read straight from each checkpoint file;
    a step the index does not list is refused, naming the steps it does."""
    import numpy as np

    from _train_checks import checkpoint_run, checkpoint_values

    workdir = tmp_path / "run"
    checkpoint_run(workdir, steps=(6, 12, 18))
    folder = workdir / "checkpoints"
    saved = {s: checkpoint_values(folder / f"ckpt-{s}") for s in (6, 12, 18)}
    kernels = [k for k in saved[6] if "kernel" in k and k.startswith("model/")]
    assert kernels
    for step, want in ((6, saved[6]), (12, saved[12]), (None, saved[18])):
        _, model, _ = run_dir.restore_model(str(workdir), step=step)
        values = [v.numpy() for v in model.variables]
        for k in kernels:  # each kernel of that checkpoint is a variable of the model
            assert any(v.shape == want[k].shape and np.array_equal(v, want[k]) for v in values)
        other = saved[18] if step != 18 and step is not None else saved[6]
        assert not any(np.array_equal(v, other[kernels[0]]) for v in values)
    for missing in (7, 24):
        with pytest.raises(
            run_dir.CheckpointError, match=r"no checkpoint of step \d+ .*saved steps: 6, 12, 18"
        ):
            run_dir.restore_model(str(workdir), step=missing)
    with pytest.raises(run_dir.CheckpointError, match="saved steps: none"):
        run_dir.checkpoint_of_step(str(tmp_path / "empty"), 6)
    for suffix in (".index", ".data-00000-of-00001"):
        os.remove(folder / f"ckpt-12{suffix}")
    with pytest.raises(run_dir.CheckpointError, match="files are missing: pass another saved step"):
        run_dir.restore_model(str(workdir), step=12)
