"""--sampling=rank_pairs through the train app on a tiny NAS-Bench-201 run: exactly the choices
of the paths the pairs used have moved (weights, BN statistics, slots), the run directory reads
back for search and ranking, and a run killed after its first checkpoint resumes to the weights
of an uninterrupted one. The step's arithmetic is tests/models/test_rank_pairs.py's."""

import functools
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from spos_tf.models.rank_pairs import RankPairSampler
from spos_tf.runs import run_dir

from _apps import run_app
from _kill import kill_at_marker, start_app, start_app_that_stops_after_checkpoint
from _train_checks import assert_only_sampled_choices_moved, checkpoint_values

REPO = Path(__file__).resolve().parents[2]
STEPS, MARGIN = 6, 0.5


def _args(workdir, data_dir):
    return [
        f"--flagfile={REPO / 'flags' / 'tiny_nb201_supernet.cfg'}",
        f"--workdir={workdir}",
        f"--data_dir={data_dir}",
        f"--steps={STEPS}",
        "--checkpoint_every=3",
        "--log_every=3",
        "--noprogress",
        "--sampling=rank_pairs",
        f"--rank_loss_margin={MARGIN}",
    ]


@pytest.mark.slow
def test_only_the_pairs_choices_move_and_a_killed_run_resumes_to_the_same_weights(
    tmp_path, data_dir
):
    whole = tmp_path / "whole"
    run_app("train", *_args(whole, data_dir), timeout=600)
    sampler = functools.partial(RankPairSampler, margin=MARGIN)
    assert assert_only_sampled_choices_moved(whole, STEPS, sampler) > 0
    _, _, config = run_dir.restore_model(str(whole))  # what search and rank read
    assert (config["sampling"], config["rank_loss_margin"]) == ("rank_pairs", MARGIN)

    killed = tmp_path / "killed"
    marker = tmp_path / "marker"
    proc = start_app_that_stops_after_checkpoint("spos_tf.train", _args(killed, data_dir), marker)
    assert kill_at_marker(proc, marker, timeout_s=300).endswith("ckpt-3")
    resumed = start_app("spos_tf.train", _args(killed, data_dir))
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0 and "at step 3/6" in out, out
    a, b = (
        checkpoint_values(tf.train.latest_checkpoint(str(w / "checkpoints")))
        for w in (whole, killed)
    )
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
