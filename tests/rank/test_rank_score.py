"""spos_tf.rank --score: the combined score (supernet accuracy rank-averaged with MACs or SynFlow),
its report, and that switching it on a finished ranking reuses the supernet scores."""

import csv
import functools
import io
import json
import types

import numpy as np
import pytest
from absl import flags
from scipy import stats

from spos_tf import costs
from spos_tf.rank import __main__ as rank
from spos_tf.rank import run as rank_lib
from spos_tf.rank import report as rank_report
from spos_tf.rank import stats as rank_stats
from spos_tf import spaces

from _files import snapshot
from _ground_truth import write_table
from _nb201 import gt_args, gt_config, nb201_cells

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def ranks_by_hand(values) -> np.ndarray:
    """Ranks 1..n of ``values`` (1 = lowest), ties averaged: a stable argsort gives each position
    its place, then every group of equal values gets the mean place of the group."""
    values = np.asarray(values, float)
    places = np.empty(len(values))
    places[np.argsort(values, kind="stable")] = np.arange(1, len(values) + 1)
    return np.array([places[values == v].mean() for v in values])


def test_ranks_by_hand_average_ties():
    np.testing.assert_array_equal(ranks_by_hand([0.3, 0.1, 0.3, 0.2]), [3.5, 1, 3.5, 2])


def nb201_space():
    return spaces.get("nasbench201", image_size=8, width=0.25, repeats=(1, 1, 1))


def make_rows(
    space, supernet, standalone, synflow=None, truth=None, complete=None, naswot=None
) -> list:
    """Rows as :func:`spos_tf.rank.report.collect` returns them, for the cells of the fixture
    table, without files."""
    table = costs.table(space)
    rows = []
    for i, (ops, _, _) in enumerate(nb201_cells()[: len(supernet)]):
        arch = space.parse(",".join(map(str, ops)))
        per_seed = [truth.accuracy(ops)] if truth is not None else list(standalone[i])
        row = {
            "index": i,
            "arch": str(arch),
            **table.all(arch),
            "supernet_accuracy": supernet[i],
            "standalone": per_seed,
            "standalone_mean": float(np.mean(per_seed)),
            "standalone_std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None,
            "complete": True if complete is None else complete[i],
        }
        if truth is not None:
            row.update(
                benchmark=space.benchmark_string(arch),
                ground_truth=per_seed[0],
                ground_truth_percentile=truth.percentile(per_seed[0]),
            )
        if synflow is not None:
            row["synflow"] = synflow[i]
        if naswot is not None:
            row["naswot"] = naswot[i]
        rows.append(row)
    return rows


def test_combined_score_is_the_mean_of_the_ranks_by_hand():
    space = nb201_space()
    supernet = [0.30, 0.10, 0.30, 0.25, 0.20, 0.05, 0.40]  # a tie
    complete = [True, True, True, True, True, True, False]  # the last is not ranked
    rows = make_rows(space, supernet, [[0.5]] * 7, complete=complete)
    macs = np.array([r["macs"] for r in rows[:6]], float)
    assert len(set(macs)) < 6  # the fixture cells tie in MACs too
    ranked = rank_report.combined_scores(rows, "supernet+macs")
    assert [r["index"] for r in ranked] == list(range(6))
    expected = (ranks_by_hand(supernet[:6]) + ranks_by_hand(macs)) / 2
    np.testing.assert_allclose([r["combined_score"] for r in rows[:6]], expected, rtol=0, atol=0)
    assert rows[6]["combined_score"] is None
    np.testing.assert_array_equal(rank_stats.rank_average(supernet[:6], macs), expected)
    # synflow: a row whose score is not computed yet is left out, the ranks are among the others
    synflow = [5.0, 1e20, None, 7.0, 7.0, 2.0, 3.0]
    rows = make_rows(space, supernet, [[0.5]] * 7, synflow=synflow, complete=complete)
    ranked = rank_report.combined_scores(rows, "supernet+synflow")
    keep = [0, 1, 3, 4, 5]
    assert [r["index"] for r in ranked] == keep
    expected = (
        ranks_by_hand([supernet[i] for i in keep]) + ranks_by_hand([synflow[i] for i in keep])
    ) / 2
    np.testing.assert_allclose([rows[i]["combined_score"] for i in keep], expected, atol=0)
    assert rows[2]["combined_score"] is None and rows[6]["combined_score"] is None
    # two zero-cost priors: the mean of three ranks, over the rows that have both
    naswot = [900.0, 950.0, 990.0, None, 910.0, 905.0, 1.0]
    rows = make_rows(space, supernet, [[0.5]] * 7, synflow, complete=complete, naswot=naswot)
    ranked = rank_report.combined_scores(rows, "supernet+synflow+naswot")
    keep = [0, 1, 4, 5]
    assert [r["index"] for r in ranked] == keep
    expected = sum(ranks_by_hand([v[i] for i in keep]) for v in (supernet, synflow, naswot)) / 3
    np.testing.assert_allclose([rows[i]["combined_score"] for i in keep], expected, atol=1e-12)


def config_of(score, seeds=1):
    return types.SimpleNamespace(score=score, retrain_seeds=seeds, seed=0, supernet_dir="/s")


@pytest.fixture
def fewer_resamples(monkeypatch):
    """The bootstrap intervals with 200 resamples instead of 2000 (the values are unaffected):
    three reports' intervals take seconds instead of most of a minute on 2 cores."""
    for name in ("correlation", "paired_delta"):
        function = getattr(rank_stats, name)
        monkeypatch.setattr(rank_stats, name, functools.partial(function, resamples=200))


@pytest.mark.parametrize("with_truth", [True, False], ids=["ground_truth", "trained"])
def test_report_labels_the_combination_and_keeps_the_supernets_statistics(
    tmp_path, with_truth, fewer_resamples
):
    from spos_tf.rank import ground_truth

    space = nb201_space()
    rng = np.random.default_rng(1)
    n = 8
    supernet = rng.uniform(0.1, 0.4, n).round(3).tolist()
    standalone = rng.uniform(0.5, 0.9, (n, 2)).tolist()
    synflow = rng.lognormal(10, 3, n).tolist()
    naswot = rng.normal(1000, 30, n).tolist()
    truth = (
        ground_truth.load(write_table(tmp_path / "t.csv", nb201_cells())) if with_truth else None
    )
    seeds = 1 if with_truth else 2

    def report(score):
        workdir = tmp_path / score.replace("+", "_")
        workdir.mkdir()
        rows = make_rows(space, supernet, standalone, synflow, truth, naswot=naswot)
        result = rank_report.write_outputs(
            str(workdir), rows, space, config_of(score, seeds), truth
        )
        record = json.loads((workdir / "ranking.json").read_text())
        with open(workdir / "ranking.csv") as f:
            table = list(csv.DictReader(f))
        return result, record, table

    base, base_record, base_csv = report("supernet")
    assert "combined" not in base["stats"] and "score" not in base_record and "score" not in base
    assert "combined_score" not in base_csv[0] and "synflow" not in base_csv[0]
    assert "combined" not in rank_report.describe(base)
    truth_values = np.array([r["standalone_mean"] for r in base["rows"]])
    for score in ("supernet+macs", "supernet+synflow", "supernet+synflow+naswot"):
        result, record, table = report(score)
        assert record["score"] == score
        block = record["stats"].pop("combined")
        # the supernet's own statistics are those of --score=supernet, to the bit
        assert json.dumps(record["stats"], sort_keys=True) == json.dumps(
            base_record["stats"], sort_keys=True
        )
        names = score.split("+")[1:]
        priors = {name: np.array([float(r[name]) for r in table]) for name in names}
        combined = np.array([float(r["combined_score"]) for r in table])
        sup = np.array([float(r["supernet_accuracy"]) for r in table])
        by_hand = (ranks_by_hand(sup) + sum(ranks_by_hand(v) for v in priors.values())) / (
            1 + len(names)
        )
        np.testing.assert_allclose(combined, by_hand)
        assert block["score"] == score and block["prior"] == "+".join(names)
        assert block["num_archs"] == n
        tau = stats.kendalltau(truth_values, combined)[0]
        assert block["kendall_tau"]["value"] == pytest.approx(tau, abs=1e-12)
        assert block["spearman_rho"]["value"] == pytest.approx(
            stats.spearmanr(truth_values, combined)[0], abs=1e-12
        )
        others = {"supernet": sup, "macs": np.array([float(r["macs"]) for r in table])}
        for name in set(names) & {"synflow", "naswot"}:
            others[name] = priors[name]
            assert block[f"{name}_kendall_tau"]["value"] == pytest.approx(
                stats.kendalltau(truth_values, priors[name])[0], abs=1e-12
            )
        assert {f"combined_minus_{k}" for k in others} <= set(block)
        for other, values in others.items():
            delta = block[f"combined_minus_{other}"]["kendall_tau"]
            expected = tau - stats.kendalltau(truth_values, values)[0]
            assert delta["value"] == pytest.approx(expected, abs=1e-12)
            assert delta["ci_low"] <= delta["value"] <= delta["ci_high"]
        if with_truth:
            top = min(range(n), key=lambda i: (-combined[i], i))
            assert block["picks"]["top1"]["index"] == top
            assert block["picks"]["top1"]["combined_score"] == combined[top]
        else:
            assert "picks" not in block
        text = rank_report.describe(result)
        assert f"combined score {score} (mean rank of supernet accuracy and " in text
        assert f"tau({score}) - tau(supernet): " in text
        # the supernet's own lines come first, as they were; the combination's follow
        assert text.startswith(rank_report.describe(base) + "\n")


def test_too_few_combined_rows_are_said_so(fewer_resamples):
    space = nb201_space()
    rows = make_rows(
        space, [0.1, 0.2, 0.3, 0.4], [[0.5], [0.6], [0.7], [0.9]], synflow=[1.0, None, None, 2.0]
    )
    stats_rows = rank_report.combined_scores(rows, "supernet+synflow")
    assert len(stats_rows) == 2
    summary = rank_stats.summarize([r["supernet_accuracy"] for r in rows], [[0.5]] * 4)
    text = rank_report.describe(
        {
            "rows": rows,
            "stats": {**summary, **rank_report.baseline_stats(rows, 0)},
            "complete": True,
            "score": "supernet+synflow",
        }
    )
    assert "statistics need 3 finished architectures with a synflow score (2)" in text


def test_score_flag_and_it_is_not_a_setting_that_refuses_a_resume(tmp_path):
    from spos_tf.search.config import SearchConfig

    fv = flags.FlagValues()
    rank.define_flags(fv)
    assert fv["score"].default == "supernet"
    fv(["rank", "--score=supernet+synflow"])
    assert fv.score == "supernet+synflow"
    base = dict(supernet_dir="/s", workdir=str(tmp_path), ground_truth="t.csv")
    with pytest.raises(ValueError, match="--score must be one of supernet, supernet\\+macs"):
        rank_lib.RankConfig(**base, score="macs").validate()
    config = rank_lib.RankConfig(**base).validate()
    scoring = SearchConfig().to_dict()
    settings = {"rank": config.to_dict(), "scoring": scoring}
    (tmp_path / rank_lib.CONFIG_FILE).write_text(json.dumps(settings))
    for score in rank_lib.SCORES:
        other = rank_lib.RankConfig(**base, score=score)
        assert rank_lib.check_workdir(other, {"rank": other.to_dict(), "scoring": scoring}) == (
            "resume"
        )
    other = rank_lib.RankConfig(**base, num_archs=21)  # a setting of the work itself still counts
    with pytest.raises(rank_lib.run_dir.RunDirError, match="num_archs"):
        rank_lib.check_workdir(other, {"rank": other.to_dict(), "scoring": scoring})


# ------------------------------------------------------------------ end to end (ground truth)
@pytest.mark.slow
def test_switching_score_on_a_finished_ranking_reuses_the_supernet_scores(
    nb201,  # conftest.py: the session's tiny NAS-Bench-201 supernet
    tmp_path,
    fewer_resamples,
):
    """A --ground_truth ranking (flags of test_rank's end-to-end tests), then rerun with
    --score=supernet+synflow, again, with --score=supernet+macs --merge, and back with
    --score=supernet: nothing is scored again, SynFlow is computed once, and the last run's
    ranking.json and ranking.csv are the first's, byte for byte."""
    from spos_tf.rank import zero_cost

    supernet_dir, table, data_dir = nb201
    workdir = tmp_path / "rank"
    args = gt_args(supernet_dir, workdir, table, data_dir)
    first = rank_lib.run(gt_config(*args))
    assert first["scored"] == 8 and first["synflow"] == 0 and first["complete"]
    baseline = {name: (workdir / name).read_bytes() for name in ("ranking.json", "ranking.csv")}
    supernet_files = snapshot(workdir / "archs", mtimes=True)
    assert len(supernet_files) == 8 and all(p.endswith("supernet.json") for p in supernet_files)

    result = rank_lib.run(gt_config(*args, "--score=supernet+synflow"))
    assert (result["scored"], result["synflow"], result["score"]) == (0, 8, "supernet+synflow")
    after = snapshot(workdir / "archs", mtimes=True)
    assert {p: v for p, v in after.items() if p.endswith("supernet.json")} == supernet_files
    record = json.loads((workdir / "ranking.json").read_text())
    block = record["stats"].pop("combined")
    same = json.dumps(json.loads(baseline["ranking.json"])["stats"], sort_keys=True)
    assert json.dumps(record["stats"], sort_keys=True) == same  # the supernet's, unchanged
    assert block["score"] == "supernet+synflow" and block["num_archs"] == 8
    rows = list(csv.DictReader(io.StringIO((workdir / "ranking.csv").read_text())))
    synflow = np.array([float(r["synflow"]) for r in rows])
    sup = np.array([float(r["supernet_accuracy"]) for r in rows])
    np.testing.assert_allclose(
        [float(r["combined_score"]) for r in rows],
        (ranks_by_hand(sup) + ranks_by_hand(synflow)) / 2,
    )
    space = rank_lib.run_dir.space_from_config(rank_lib.run_dir.load_run_config(str(supernet_dir)))
    cached = json.loads((workdir / "archs" / "000" / rank_lib.SYNFLOW_FILE).read_text())
    assert cached["arch"] == rows[0]["arch"] and cached["seed"] == rank_lib.SYNFLOW_SEED
    recomputed = zero_cost.synflow_of(space, space.parse(rows[0]["arch"]), seed=0)
    assert cached["synflow"] == pytest.approx(recomputed, rel=1e-9)
    assert "combined score supernet+synflow" in rank_lib.describe(result)

    cache = snapshot(workdir / "archs", mtimes=True)  # a rerun computes nothing again
    again = rank_lib.run(gt_config(*args, "--score=supernet+synflow"))
    assert (again["scored"], again["synflow"]) == (0, 0)
    assert snapshot(workdir / "archs", mtimes=True) == cache

    macs = rank_lib.run(gt_config(*args, "--score=supernet+macs", "--merge"))
    assert (macs["scored"], macs["synflow"]) == (0, 0)
    assert macs["stats"]["combined"]["score"] == "supernet+macs"
    assert "combined_minus_synflow" not in macs["stats"]["combined"]
    assert "synflow" not in (workdir / "ranking.csv").read_text().splitlines()[0]

    back = rank_lib.run(gt_config(*args))  # --score=supernet: the first run's files exactly
    assert (back["scored"], back["synflow"]) == (0, 0)
    assert {name: (workdir / name).read_bytes() for name in baseline} == baseline
    assert snapshot(workdir / "archs", mtimes=True) == cache
