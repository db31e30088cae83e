"""spos_tf.search.results: the history rows of an oracle's trials, the best record, and the files
written from them (history.csv, best.json, search.png), on rows made by hand."""

import csv
import json
from types import SimpleNamespace

import pytest
from keras_tuner.engine.trial import TrialStatus

from spos_tf import costs
from spos_tf.search import results as search_results
from spos_tf.search.config import SearchConfig
from spos_tf.spaces.space import arch_from_any

from _supernet_workdir import OVERRIDES, tiny_space

ARCHS = ("0,1,2,3", "3,3,3,3", "1,0,1,0", "2,2,0,0")


def _oracle(space, accuracies, seconds=0.5, running=()):
    """A stand-in for a (reloaded) oracle: completed trials ``"00", "01", ...`` of ``ARCHS``."""
    trials = {}
    for i, (arch, acc) in enumerate(zip(ARCHS, accuracies)):
        metrics = SimpleNamespace(
            exists=lambda name: name == "seconds", get_last_value=lambda name: seconds
        )
        trials[f"{i:02d}"] = SimpleNamespace(
            status=TrialStatus.RUNNING if i in running else TrialStatus.COMPLETED,
            score=acc,
            hyperparameters=SimpleNamespace(values=space.to_values(space.parse(arch))),
            metrics=metrics,
        )
    return SimpleNamespace(trials=trials, generation_of=lambda trial_id: int(trial_id) // 2)


def test_history_rows_are_the_completed_trials_with_their_costs():
    space = tiny_space()
    rows = search_results.history_rows(
        _oracle(space, (0.5, 0.7, 0.6, 0.1), running=(3,)), "random", space
    )
    assert [r["arch"] for r in rows] == list(ARCHS[:3])  # the running trial is not a result
    for row in rows:
        arch = space.parse(row["arch"])
        assert (row["macs"], row["params"]) == (costs.macs(space, arch), costs.params(space, arch))
    assert [(r["trial_id"], r["generation"], r["accuracy"], r["seconds"]) for r in rows] == [
        ("00", 0, 0.5, 0.5),
        ("01", 0, 0.7, 0.5),
        ("02", 1, 0.6, 0.5),
    ]
    assert list(rows[0]) == search_results.history_columns(space)


def test_files_hold_what_write_outputs_returns(tmp_path):
    space = tiny_space()
    config = SearchConfig(
        supernet_dir="/sn",
        workdir=str(tmp_path),
        max_macs=2.5e6,
        calib_images=100,
        calib_batch_size=32,
        holdout_images=200,
    )
    rows = search_results.history_rows(
        _oracle(space, (0.5, 0.8, 0.8, 0.2)), "evolution", space
    ) + search_results.history_rows(_oracle(space, (0.3, 0.8)), "random", space)
    run_config = {"space": space.name, "space_overrides": OVERRIDES}
    record = search_results.write_outputs(str(tmp_path), rows, space, run_config, config)

    # the best: highest accuracy, ties go to the first evaluated (evolution's trial 01)
    assert (record["arch"], record["algorithm"], record["trial_id"]) == (
        "3,3,3,3",
        "evolution",
        "01",
    )
    assert record["accuracy"] == 0.8 and record["evaluated"] == 6
    arch = space.parse("3,3,3,3")
    assert record["costs"] == {"macs": costs.macs(space, arch), "params": costs.params(space, arch)}
    assert record["constraints"] == {"macs": 2.5e6} and record["space_overrides"] == OVERRIDES
    assert record["calib_images"] == 128  # 4 whole batches of 32
    assert (record["calib_stream"], record["holdout_images_per_candidate"]) == ("fixed", 0)
    assert record["score"] == "supernet"  # what picked it, so a combination is never mistaken
    assert json.loads((tmp_path / search_results.BEST_FILE).read_text()) == record
    assert str(arch_from_any(space, str(tmp_path / search_results.BEST_FILE))) == "3,3,3,3"
    with open(tmp_path / search_results.HISTORY_FILE) as f:
        written = list(csv.DictReader(f))
    assert [{k: str(v) for k, v in r.items()} for r in rows] == written
    assert (tmp_path / search_results.PLOT_FILE).read_bytes()[:4] == b"\x89PNG"


def test_nothing_evaluated_yet_writes_an_empty_history_and_no_best(tmp_path):
    space = tiny_space()
    config = SearchConfig(supernet_dir="/sn", workdir=str(tmp_path))
    assert search_results.write_outputs(str(tmp_path), [], space, {}, config) is None
    assert (tmp_path / search_results.HISTORY_FILE).read_text().splitlines() == [
        ",".join(search_results.history_columns(space))
    ]
    assert not (tmp_path / search_results.BEST_FILE).exists()


@pytest.mark.parametrize(
    "rows, best",
    [
        ([{"accuracy": 0.2}, {"accuracy": 0.5}, {"accuracy": 0.5}], 1),
        ([{"accuracy": 0.9}], 0),
        ([], None),
    ],
)
def test_best_row_is_the_first_of_the_highest_accuracy(rows, best):
    got = search_results.best_row(rows)
    assert got is (None if best is None else rows[best])


def test_supernet_plus_macs_picks_the_best_mean_rank_by_accuracy_and_macs():
    # accuracy ranks 2, 3, 1; MACs ranks 3, 1, 2 -> means 2.5, 2.0, 1.5: the first row, where
    # accuracy alone picks the second
    rows = [
        {"accuracy": 0.60, "macs": 300},
        {"accuracy": 0.61, "macs": 100},
        {"accuracy": 0.40, "macs": 200},
    ]
    assert search_results.best_row(rows) is rows[1]
    assert search_results.best_row(rows, "supernet+macs") is rows[0]
    # ties of the mean rank go to the first evaluated: ranks (1, 2) and (2, 1) -> 1.5 each
    tied = [{"accuracy": 0.1, "macs": 20}, {"accuracy": 0.2, "macs": 10}]
    assert search_results.best_row(tied, "supernet+macs") is tied[0]
    with pytest.raises(ValueError, match="score must be one of supernet, supernet\\+macs"):
        search_results.best_index([0.5], [1], "supernet+params")


def test_pick_values_are_the_accuracies_or_the_mean_ranks():
    # the same three candidates as above: accuracy alone is its own value; with MACs the value
    # is the mean of the ranks (1 = lowest): accuracy 2, 3, 1 and MACs 3, 1, 2
    accuracies, macs = [0.60, 0.61, 0.40], [300, 100, 200]
    assert search_results.pick_values(accuracies).tolist() == accuracies
    assert search_results.pick_values(accuracies, macs, "supernet+macs").tolist() == [2.5, 2.0, 1.5]
    with pytest.raises(ValueError, match="no candidates"):
        search_results.pick_values([], [], "supernet+macs")


def test_supernet_plus_synflow_picks_by_the_synflow_column():
    # accuracy ranks 3, 2, 1; SynFlow ranks 1, 3, 2 -> means 2, 2.5, 1.5: the second row, where
    # accuracy alone picks the first and MACs (ranks 3, 2, 1 -> means 3, 2, 1) the first too
    rows = [
        {"accuracy": 0.70, "macs": 300, "synflow": 1e3},
        {"accuracy": 0.65, "macs": 200, "synflow": 1e9},
        {"accuracy": 0.40, "macs": 100, "synflow": 1e6},
    ]
    assert search_results.best_row(rows) is rows[0]
    assert search_results.best_row(rows, "supernet+macs") is rows[0]
    assert search_results.best_row(rows, "supernet+synflow") is rows[1]
    with pytest.raises(KeyError):  # a combination never falls back to accuracy alone
        search_results.best_row([{"accuracy": 0.5, "macs": 1}], "supernet+synflow")


def test_a_seeds_search_picks_over_all_seeds_candidates_pooled():
    """--seeds: best.json ranks all seeds' candidates together.

    Seed 0 holds a (0.60, 500 MACs) and b (0.50, 100); seed 1 holds c (0.62, 50) and d (0.55,
    400). Pooled, accuracy ranks a 3, b 1, c 4, d 2 and MACs ranks a 4, b 2, c 1, d 3: means
    3.5, 1.5, 2.5, 2.5, so supernet+macs picks a. Comparing the seeds' own picks by accuracy (a
    for seed 0; c for seed 1, a tie of 1.5 and 1.5 going to the first) would give c."""

    def row(alg, trial, acc, macs):
        return {"algorithm": alg, "trial_id": trial, "accuracy": acc, "macs": macs}

    a, b = row("evolution", "0", 0.60, 500), row("random", "0", 0.50, 100)
    c, d = row("evolution", "0", 0.62, 50), row("evolution", "1", 0.55, 400)
    per_seed = {0: [b, a], 1: [d, c]}  # rows in any order: sorted by algorithm, then trial
    assert search_results.best_row([a, b], "supernet+macs") is a
    assert search_results.best_row([c, d], "supernet+macs") is c
    assert search_results.best_over_seeds(per_seed, "supernet+macs") == (0, a)
    assert search_results.best_over_seeds(per_seed) == (1, c)
    # a tie goes to the earlier seed: the same accuracy in both seeds
    assert search_results.best_over_seeds({3: [dict(c)], 1: [c]}) == (3, c)
    assert search_results.best_over_seeds({0: [], 1: []}) is None


def test_history_rows_gain_the_synflow_column_once_per_candidate():
    space = tiny_space()
    calls = []

    def synflow(arch):
        calls.append(str(arch))
        return float(len(calls))

    cache = {}
    oracle = _oracle(space, (0.5, 0.7, 0.6, 0.1))
    plain = search_results.history_rows(oracle, "random", space, cache)
    assert "synflow" not in plain[0]
    rows = search_results.history_rows(oracle, "random", space, cache, priors={"synflow": synflow})
    assert calls == list(ARCHS)  # every cached row gains it, in trial order
    assert [r["synflow"] for r in rows] == [1.0, 2.0, 3.0, 4.0]
    assert list(rows[0]) == search_results.history_columns(space, priors=("synflow",))
    assert list(rows[0])[-3:] == ["synflow", "accuracy", "seconds"]
    search_results.history_rows(oracle, "random", space, cache, priors={"synflow": synflow})
    assert len(calls) == 4  # not computed again
