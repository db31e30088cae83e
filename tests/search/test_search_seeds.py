"""spos_tf.search.seeds (and search_run.run_seeds): evolution vs random search over seeds, by hand
and on a trained tiny supernet."""

import json

import numpy as np
import pytest

from spos_tf.runs import run_dir
from spos_tf.search import config as search_config
from spos_tf.search import results as search_results
from spos_tf.search import run as search_run
from spos_tf.search import seeds as search_seeds

from _search import read_history, share_evaluator, tiny_config
from _supernet_workdir import trained_supernet_dir

pytestmark = pytest.mark.filterwarnings("ignore:currentThread|getName:DeprecationWarning")


@pytest.fixture(scope="module")
def supernet_dir(tmp_path_factory):
    return trained_supernet_dir(tmp_path_factory)


def _rows(evo, rnd):
    return [{"algorithm": "evolution", "accuracy": a} for a in evo] + [
        {"algorithm": "random", "accuracy": a} for a in rnd
    ]


def test_compare_seeds_by_hand():
    per_seed = {0: _rows([0.5, 0.9, 0.7], [0.6, 0.6, 0.8]), 1: _rows([0.8, 0.85], [0.7, 0.75, 0.9])}
    out = search_seeds.compare_seeds(per_seed)
    # equal evaluations across both algorithms: 2 (evolution of seed 1), random cut to 2 as well
    assert out["algorithms"]["evolution"]["final_best"] == [0.9, 0.85]
    assert out["algorithms"]["random"]["final_best"] == [0.6, 0.75]
    assert out["evaluations"] == 2
    assert out["algorithms"]["random"]["evaluations"] == 2
    assert out["difference"] == pytest.approx(0.875 - 0.675)
    spread = np.std([0.9, 0.85], ddof=1) + np.std([0.6, 0.75], ddof=1)  # 0.0354 + 0.1061
    assert out["seed_spread"] == pytest.approx(spread)
    assert out["exceeds_seed_spread"] is True  # 0.2 > 0.1414


def test_the_stored_seed_spread_is_the_one_the_verdict_compares():
    # evolution 0.9, 0.7 (std 0.1414); random 0.7, 0.6 (std 0.0707); difference 0.15: above the
    # larger std (0.1414) but within their sum (0.2121)
    out = search_seeds.compare_seeds({0: _rows([0.9], [0.7]), 1: _rows([0.7], [0.6])})
    assert out["difference"] == pytest.approx(0.15)
    assert out["seed_spread"] == pytest.approx(np.sqrt(0.02) + np.sqrt(0.005))
    assert out["exceeds_seed_spread"] is False
    assert out["exceeds_seed_spread"] == (abs(out["difference"]) > out["seed_spread"])


def test_plot_cuts_both_algorithms_to_the_common_length(tmp_path, monkeypatch):
    import matplotlib.pyplot

    drawn = {}

    def fake_save(fig, path):
        for line in fig.axes[0].get_lines():
            drawn[line.get_label().split(":")[0]] = len(line.get_xdata())
        matplotlib.pyplot.close(fig)

    monkeypatch.setattr(search_seeds.run_dir, "save_figure", fake_save)
    per_seed = {0: _rows([0.5, 0.9, 0.7], [0.6, 0.6, 0.8, 0.9]), 1: _rows([0.8] * 3, [0.7] * 5)}
    search_seeds.write_seeds_plot(str(tmp_path / "plot.png"), per_seed)
    assert drawn == {"evolution": 3, "random": 3}
    assert search_seeds.common_evaluations({0: _rows([0.5], [])}) == 1  # random absent: evolution
    assert search_seeds.common_evaluations({}) is None


def test_best_so_far_and_the_summary_lines():
    rows = _rows([0.5, 0.9, 0.7], [0.6])
    assert search_seeds.best_so_far(rows, "evolution") == [0.5, 0.9, 0.9]
    assert search_seeds.best_so_far(rows, "random") == [0.6]
    text = search_seeds.describe_seeds(
        search_seeds.compare_seeds(
            {0: _rows([0.5, 0.9], [0.6, 0.6]), 1: _rows([0.8, 0.7], [0.7, 0.75])}
        )
    )
    # evolution 0.9, 0.8 (mean 0.85, std 0.0707); random 0.6, 0.75 (mean 0.675, std 0.1061)
    assert "evolution: final best over seeds 0.9000, 0.8000 (mean 0.8500, std 0.0707" in text
    assert "evolution - random: +0.1750; within the seed spread" in text


@pytest.mark.slow
def test_seeds_compare_evolution_and_random_over_seeds(supernet_dir, tmp_path, monkeypatch):
    share_evaluator(monkeypatch)
    workdir = tmp_path / "seeds"
    # two seeds first, then a third added: the stored seeds' searches are kept, only seed 2 runs
    first = search_run.run(tiny_config(supernet_dir, workdir, "--seeds=0,1", "--max_trials=8"))
    assert first["evaluated"] == 32 and sorted(first["rows"]) == [0, 1]
    kept = {s: (workdir / f"seed_{s}" / "history.csv").read_bytes() for s in (0, 1)}
    config = tiny_config(supernet_dir, workdir, "--seeds=0,1,2", "--max_trials=8")
    summary = search_run.run(config)
    assert summary["evaluated"] == 16  # seed 2's 8 evolution + 8 random candidates
    assert {s: (workdir / f"seed_{s}" / "history.csv").read_bytes() for s in (0, 1)} == kept
    with pytest.raises(run_dir.RunDirError, match=r"seeds: \[0, 1, 2\] -> \[0, 2\]"):
        search_run.run(tiny_config(supernet_dir, workdir, "--seeds=0,2", "--max_trials=8"))
    finals = {}
    every = []
    for seed in (0, 1, 2):
        rows = read_history(workdir / f"seed_{seed}")
        every += rows
        for algorithm in search_config.ALGORITHMS:
            mine = [float(r["accuracy"]) for r in rows if r["algorithm"] == algorithm]
            assert len(mine) == 8
            finals.setdefault(algorithm, []).append(max(mine))
        # one TensorBoard HParams session per evaluated candidate
        sessions = [p for p in (workdir / f"seed_{seed}" / "hparams").iterdir() if p.is_dir()]
        assert len(sessions) == len(rows) == 16
    assert (
        len({tuple(r["arch"] for r in read_history(workdir / f"seed_{s}")) for s in (0, 1, 2)}) == 3
    )  # the seeds searched differently
    comparison = json.loads((workdir / search_results.SEEDS_FILE).read_text())
    assert comparison == summary["comparison"]
    for algorithm, values in finals.items():
        got = comparison["algorithms"][algorithm]
        assert got["final_best"] == values and got["evaluations"] == 8
        assert got["mean"] == pytest.approx(np.mean(values))
        assert got["std"] == pytest.approx(np.std(values, ddof=1))
    difference = np.mean(finals["evolution"]) - np.mean(finals["random"])
    assert comparison["difference"] == pytest.approx(difference)
    spread = np.std(finals["evolution"], ddof=1) + np.std(finals["random"], ddof=1)
    assert comparison["exceeds_seed_spread"] == bool(abs(difference) > spread)
    best = json.loads((workdir / search_results.BEST_FILE).read_text())
    assert best["accuracy"] == max(float(r["accuracy"]) for r in every)
    assert best["seeds"] == comparison
    assert (workdir / search_results.PLOT_FILE).read_bytes()[:4] == b"\x89PNG"
    # rerun: every seed's search is finished, nothing is evaluated again
    assert search_run.run(config)["evaluated"] == 0
