"""``--supernet_step`` of spos_tf.search and spos_tf.rank: scoring a supernet run at one of its
saved checkpoints instead of the latest. Fast: the run is written by
``_train_checks.checkpoint_run`` (set weights, nothing trained). What the ranking app scores at an
earlier step is checked end to end in tests/rank/test_tau_vs_epochs.py."""

import numpy as np
import pytest

from spos_tf.rank import run as rank_lib
from spos_tf.runs import run_dir
from spos_tf.search import tuner
from spos_tf.search.config import SearchConfig

from _files import snapshot
from _nb201 import gt_config
from _search import tiny_config
from _train_checks import checkpoint_run, checkpoint_values


@pytest.fixture(scope="module")
def run_with_steps(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("supernet_step") / "run"
    checkpoint_run(workdir, steps=(6, 12))
    return workdir


def test_the_search_restores_the_supernet_at_the_step_it_is_given(run_with_steps, tmp_path):
    want = checkpoint_values(run_with_steps / "checkpoints" / "ckpt-6")
    kernel = next(k for k in want if "kernel" in k and k.startswith("model/"))
    config = tiny_config(run_with_steps, tmp_path / "search", "--supernet_step=6")
    assert config.supernet_step == 6
    _, model, _, _ = tuner.load_supernet(config)
    assert any(np.array_equal(v.numpy(), want[kernel]) for v in model.variables)
    latest = tuner.load_supernet(tiny_config(run_with_steps, tmp_path / "search"))[1]
    assert not any(np.array_equal(v.numpy(), want[kernel]) for v in latest.variables)


def test_a_step_the_run_did_not_save_is_refused_before_anything_is_written(
    run_with_steps, tmp_path
):
    from spos_tf.search import run as search_run

    before = snapshot(run_with_steps, mtimes=True)
    config = tiny_config(run_with_steps, tmp_path / "search", "--supernet_step=9")
    with pytest.raises(
        run_dir.CheckpointError, match=r"no checkpoint of step 9 .*saved steps: 6, 12"
    ):
        search_run.run(config)
    assert not (tmp_path / "search").exists()
    table = tmp_path / "table.csv"
    table.write_text("unused\n")
    rank = gt_config(
        *[f"--supernet_dir={run_with_steps}", f"--workdir={tmp_path / 'rank'}"],
        f"--ground_truth={table}",
        "--supernet_step=9",
    )
    with pytest.raises(run_dir.CheckpointError, match="saved steps: 6, 12"):
        rank_lib.run(rank)
    assert not (tmp_path / "rank").exists()
    assert snapshot(run_with_steps, mtimes=True) == before


def test_the_ranking_passes_its_step_to_its_scoring_settings(tmp_path):
    rank = gt_config(
        f"--supernet_dir={tmp_path / 'run'}",
        f"--workdir={tmp_path / 'rank'}",
        f"--ground_truth={tmp_path / 'table.csv'}",
        "--supernet_step=6",
    )
    assert rank.supernet_step == 6
    assert rank_lib.scoring_config(rank).supernet_step == 6  # what the scoring restores
    assert SearchConfig().supernet_step is None  # the latest checkpoint by default
    with pytest.raises(ValueError, match="supernet_step"):
        SearchConfig(supernet_dir="a", workdir="b", supernet_step=0).validate()


def test_a_search_resumed_with_another_step_is_refused(run_with_steps, tmp_path):
    import json

    from spos_tf.search import run as search_run

    workdir = tmp_path / "search"
    at_6 = tiny_config(run_with_steps, workdir, "--supernet_step=6")
    workdir.mkdir()
    stored = at_6.to_dict()
    (workdir / search_run.CONFIG_FILE).write_text(json.dumps(stored))
    assert search_run.check_workdir(at_6) == "resume"
    with pytest.raises(run_dir.RunDirError, match="supernet_step: 6 -> 12"):
        search_run.check_workdir(tiny_config(run_with_steps, workdir, "--supernet_step=12"))
    with pytest.raises(run_dir.RunDirError, match="supernet_step: 6 -> None"):
        search_run.check_workdir(tiny_config(run_with_steps, workdir))
    # a search written before the flag existed resumes as one of the latest checkpoint
    del stored["supernet_step"]
    (workdir / search_run.CONFIG_FILE).write_text(json.dumps(stored))
    assert search_run.check_workdir(tiny_config(run_with_steps, workdir)) == "resume"


def test_an_unreadable_index_is_named(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "checkpoint").write_text("not { a proto")
    with pytest.raises(run_dir.CheckpointError, match="index .* is unreadable"):
        run_dir.checkpoint_of_step(str(tmp_path / "checkpoints"), 6)


def test_a_few_shot_split_refuses_a_step(tmp_path):
    from spos_tf.train import few_shot

    (tmp_path / "split").mkdir()
    (tmp_path / "split" / few_shot.FEW_SHOT_FILE).write_text("{}")
    with pytest.raises(run_dir.RunDirError, match="few-shot split.*drop --supernet_step"):
        tuner.load_supernet_config(str(tmp_path / "split"), 6)
