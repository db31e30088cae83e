"""benchmarks/rank_ablation.py on hand-made ranking workdirs: the table's numbers against scipy and
NumPy computed here, row matching by architecture, and its errors."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import import_benchmark
from scipy import stats

from spos_tf.spaces.nasbench201 import to_string


@pytest.fixture(scope="module")
def ablation():
    return import_benchmark("rank_ablation")


def write_ranking(folder: Path, archs, supernet, truth, macs, seconds=2.0):
    (folder / "archs").mkdir(parents=True)
    with open(folder / "ranking.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "arch", "macs", "supernet_accuracy", "ground_truth_C10"])
        for i, row in enumerate(zip(archs, macs, supernet, truth)):
            writer.writerow([i, *row])
    for i, arch in enumerate(archs):
        (folder / "archs" / f"{i:03d}").mkdir()
        (folder / "archs" / f"{i:03d}" / "supernet.json").write_text(
            json.dumps({"arch": arch, "seconds": seconds})
        )


def test_rows_match_by_arch_and_numbers_are_independent(tmp_path, ablation):
    rng = np.random.default_rng(0)
    n = 40
    archs = [f"{i},{i % 5}" for i in range(n)]
    truth = rng.normal(90, 2, n)
    macs = truth * 3 + rng.normal(0, 6, n)
    good = truth + rng.normal(0, 0.5, n)
    bad = rng.normal(0, 1, n)
    write_ranking(tmp_path / "a", archs, bad, truth, macs)
    # the second run lists the same cells in reverse order plus one it alone has
    write_ranking(
        tmp_path / "b",
        ["9,9"] + archs[::-1],
        [1.0, *good[::-1]],
        [99, *truth[::-1]],
        [1, *macs[::-1]],
        seconds=3.0,
    )
    out = tmp_path / "out"
    result = ablation.main(
        [
            f"--row=base={tmp_path / 'a'}",
            f"--row=good={tmp_path / 'b'}",
            f"--row=good+macs={tmp_path / 'b'}:+macs",
            "--train=base=100",
            f"--out={out}",
        ]
    )
    assert result["num_archs"] == n
    base, row, combo = result["rows"]
    assert row["kendall_tau"]["value"] == pytest.approx(stats.kendalltau(truth, good)[0])
    assert base["kendall_tau"]["value"] == pytest.approx(stats.kendalltau(truth, bad)[0])
    assert row["delta_tau_vs_baseline"]["value"] == pytest.approx(
        stats.kendalltau(truth, good)[0] - stats.kendalltau(truth, bad)[0]
    )
    assert row["delta_tau_vs_baseline"]["ci_low"] > 0  # a clear gain is resolved
    assert result["macs"]["kendall_tau"]["value"] == pytest.approx(stats.kendalltau(truth, macs)[0])
    # the combination: mean of the two ranks, computed here with argsort (no ties in floats)
    ranks = lambda v: np.argsort(np.argsort(v)) + 1  # noqa: E731
    combined = (ranks(good) + ranks(macs)) / 2
    assert combo["kendall_tau"]["value"] == pytest.approx(stats.kendalltau(truth, combined)[0])
    top = int(np.argmax(good))
    assert row["top1_ground_truth"] == pytest.approx(truth[top])
    assert row["top1_percentile_compared"] == pytest.approx(np.mean(truth <= truth[top]))
    best10 = set(np.argsort(-truth)[:10])
    assert row["top_k_overlap"] == pytest.approx(len(best10 & set(np.argsort(-good)[:10])) / 10)
    assert result["top_k_chance"] == pytest.approx(10 / n)
    # the better half: the 20 best by the truth (no ties in floats), ranked alone
    half = np.argsort(-truth)[: n // 2]
    assert result["better_half"] == n // 2
    assert row["kendall_tau_better_half"]["value"] == pytest.approx(
        stats.kendalltau(truth[half], good[half])[0]
    )
    assert row["delta_tau_better_half_vs_baseline"]["value"] == pytest.approx(
        stats.kendalltau(truth[half], good[half])[0] - stats.kendalltau(truth[half], bad[half])[0]
    )
    assert result["macs_better_half"]["value"] == pytest.approx(
        stats.kendalltau(truth[half], macs[half])[0]
    )
    assert base["scoring_seconds"] == pytest.approx(2.0 * n)
    assert row["scoring_seconds"] == pytest.approx(3.0 * n)  # "9,9" is not compared
    assert base["train_seconds"] == 100 and row["train_seconds"] is None
    assert json.loads((out / "ablation.json").read_text())["num_archs"] == n
    table = (out / "ablation.md").read_text().splitlines()
    assert sum(line.startswith("| good") for line in table) == 2
    header = next(line for line in table if line.startswith("| row"))
    assert "tau, better half" in header
    # every row has as many cells as the header
    assert {line.count("|") for line in table if line.startswith("|")} == {header.count("|")}


def test_a_missing_ranking_names_the_fix(tmp_path, ablation):
    with pytest.raises(SystemExit, match="run spos_tf.rank"):
        ablation.main([f"--row=x={tmp_path / 'nothing'}", f"--out={tmp_path / 'o'}"])


def test_tau_vs_epochs_keeps_every_nth_checkpoint_counted_from_the_last():
    every_nth = import_benchmark("tau_vs_epochs").every_nth
    paths = [f"ckpt-{1950 * k}" for k in range(1, 11)]
    assert every_nth(paths, 1) == paths
    assert every_nth(paths, 2) == [f"ckpt-{1950 * k}" for k in (2, 4, 6, 8, 10)]
    assert every_nth(paths, 4) == ["ckpt-3900", "ckpt-11700", "ckpt-19500"]
    assert every_nth(paths, 20) == ["ckpt-19500"]
    with pytest.raises(ValueError, match="--every must be >= 1"):
        every_nth(paths, 0)


def test_trained_ground_truth_adds_the_seed_ceiling(tmp_path, ablation):
    rng = np.random.default_rng(1)
    n = 12
    true = rng.normal(0.8, 0.05, n)
    seeds = true[:, None] + rng.normal(0, 0.03, (n, 3))
    supernet = true + rng.normal(0, 0.03, n)
    folder = tmp_path / "run"
    (folder / "archs").mkdir(parents=True)
    with open(folder / "ranking.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["index", "arch", "macs", "supernet_accuracy"]
            + [f"standalone_seed_{k}" for k in range(3)]
            + ["standalone_mean"]
        )
        for i in range(n):
            writer.writerow([i, f"a{i}", i, supernet[i], *seeds[i], seeds[i].mean()])
    result = ablation.main([f"--row=base={folder}", f"--out={tmp_path / 'out'}"])
    pairwise = [stats.kendalltau(seeds[:, a], seeds[:, b])[0] for a, b in ((0, 1), (0, 2), (1, 2))]
    assert result["seed_vs_seed_tau"]["value"] == pytest.approx(np.mean(pairwise))
    tau = stats.kendalltau(seeds.mean(1), supernet)[0]
    assert result["rows"][0]["tau_over_ceiling"] == pytest.approx(tau / np.mean(pairwise))
    text = (tmp_path / "out" / "ablation.md").read_text()
    assert "Noise ceiling: seed-vs-seed tau" in text and "/ceiling |" in text


def test_a_row_of_several_seeds_reports_means_and_their_paired_difference(tmp_path, ablation):
    rng = np.random.default_rng(2)
    n = 30
    archs = [f"a{i}" for i in range(n)]
    truth = rng.normal(90, 2, n)
    macs = rng.normal(0, 1, n)
    runs = {
        name: truth + rng.normal(0, noise, n)
        for name, noise in (("b0", 3.0), ("b1", 3.0), ("l0", 0.5), ("l1", 1.0))
    }
    for name, scores in runs.items():
        write_ranking(tmp_path / name, archs, scores, truth, macs, seconds=1.0 + (name == "l1"))
    result = ablation.main(
        [
            f"--row=base={tmp_path / 'b0'},{tmp_path / 'b1'}",
            f"--row=lever={tmp_path / 'l0'},{tmp_path / 'l1'}",
            f"--out={tmp_path / 'out'}",
        ]
    )
    tau = {name: stats.kendalltau(truth, v)[0] for name, v in runs.items()}
    lever = result["rows"][1]
    assert lever["seeds"] == 2
    assert lever["kendall_tau"]["value"] == pytest.approx((tau["l0"] + tau["l1"]) / 2)
    assert lever["delta_tau_vs_baseline"]["value"] == pytest.approx(
        (tau["l0"] + tau["l1"]) / 2 - (tau["b0"] + tau["b1"]) / 2
    )
    assert lever["delta_tau_vs_baseline"]["ci_low"] > 0  # 0.5-1 vs 3 points of noise: resolved
    macs_tau = stats.kendalltau(truth, macs)[0]
    assert lever["delta_tau_vs_macs"]["value"] == pytest.approx(
        (tau["l0"] + tau["l1"]) / 2 - macs_tau
    )
    assert lever["scoring_seconds"] == pytest.approx(1.5 * n)  # mean of 1 s and 2 s per arch
    assert "| lever | 2 |" in (tmp_path / "out" / "ablation.md").read_text()


def test_size_bias_and_a_seed_ensemble_row(tmp_path, ablation):
    """The size bias is Spearman rho between MACs and (rank by score - rank by truth) / n,
    computed here by hand ranks; an ensemble row ranks by the members' mean accuracy."""
    rng = np.random.default_rng(3)
    n = 40
    archs = [f"a{i}" for i in range(n)]
    macs = rng.permutation(n).astype(float) + 1
    truth = 90 + macs / 10 + rng.normal(0, 1, n)
    # a supernet that under-rates large cells, and two noisy members
    biased = truth - macs / 5 + rng.normal(0, 0.5, n)
    members = [truth + rng.normal(0, 2, n) for _ in range(2)]
    write_ranking(tmp_path / "biased", archs, biased, truth, macs)
    for i, m in enumerate(members):
        write_ranking(tmp_path / f"m{i}", archs, m, truth, macs, seconds=1.0 + i)
    result = ablation.main(
        [
            f"--row=biased={tmp_path / 'biased'}",
            f"--row=ens={tmp_path / 'm0'},{tmp_path / 'm1'}:ensemble",
            f"--out={tmp_path / 'out'}",
        ]
    )
    ranks = lambda v: np.argsort(np.argsort(v)) + 1  # noqa: E731  (no ties in floats)
    error = (ranks(biased) - ranks(truth)) / n
    biased_row, ens = result["rows"]
    assert biased_row["size_bias"]["value"] == pytest.approx(stats.spearmanr(macs, error)[0])
    assert biased_row["size_bias"]["ci_high"] < 0  # under-rates large cells, resolved
    mean = (members[0] + members[1]) / 2
    assert ens["kendall_tau"]["value"] == pytest.approx(stats.kendalltau(truth, mean)[0])
    assert ens["top1_ground_truth"] == pytest.approx(truth[int(np.argmax(mean))])
    assert ens["seeds"] == 2 and ens["scoring_seconds"] == pytest.approx(3.0 * n)  # 1 s + 2 s
    assert "| ens | 2 | ensemble |" in (tmp_path / "out" / "ablation.md").read_text()
    with pytest.raises(SystemExit, match="give 2 or more"):
        ablation.main([f"--row=one={tmp_path / 'm0'}:ensemble", f"--out={tmp_path / 'o2'}"])


def test_op_bias_counts_the_edges_of_each_op_in_the_benchmark_strings(tmp_path, ablation):
    rng = np.random.default_rng(4)
    n = 30
    convs = rng.integers(0, 7, n)  # edges holding nor_conv_3x3 (of 6), the rest skip_connect
    cells = [to_string(["nor_conv_3x3"] * c + ["skip_connect"] * (6 - c)) for c in convs]
    truth = 90 + convs + rng.normal(0, 0.3, n)
    score = truth - 2 * convs + rng.normal(0, 0.3, n)  # under-rates convolutions
    folder = tmp_path / "r"
    folder.mkdir()
    with open(folder / "ranking.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["index", "arch", "benchmark", "macs", "supernet_accuracy", "ground_truth_C"]
        )
        for i in range(n):
            writer.writerow([i, f"a{i}", cells[i], float(convs[i]) + i / 100, score[i], truth[i]])
    result = ablation.main([f"--row=r={folder}", f"--out={tmp_path / 'o'}"])
    ranks = lambda v: stats.rankdata(v)  # noqa: E731
    error = (ranks(score) - ranks(truth)) / n
    bias = result["rows"][0]["op_bias"]
    assert set(bias) == {"nor_conv_3x3", "skip_connect"}
    assert bias["nor_conv_3x3"] == pytest.approx(stats.spearmanr(convs, error)[0])
    assert bias["skip_connect"] == pytest.approx(stats.spearmanr(6 - convs, error)[0])
    assert bias["nor_conv_3x3"] < -0.5
    assert "- r: nor_conv_3x3 " in (tmp_path / "o" / "ablation.md").read_text()


def test_a_row_without_a_workdir_is_refused(ablation):
    with pytest.raises(SystemExit, match="no rank workdir"):
        ablation.parse_row("base=,")


def test_a_stored_ranking_without_records_and_a_label_quoting_a_flag(tmp_path, ablation):
    """A ranking.csv kept alone (benchmarks/nb201/rankings/) compares like a workdir, with no
    scoring time; a label may contain '=' (the last one ends it)."""
    rng = np.random.default_rng(1)
    archs = [f"{i},0" for i in range(12)]
    truth = rng.normal(90, 2, 12)
    write_ranking(tmp_path / "a", archs, truth + rng.normal(0, 1, 12), truth, truth * 2)
    for sub in (tmp_path / "a" / "archs").iterdir():
        (sub / "supernet.json").unlink()
        sub.rmdir()
    (tmp_path / "a" / "archs").rmdir()
    assert ablation.parse_row(f"x (--lr_schedule=cosine)={tmp_path / 'a'}:+macs") == (
        "x (--lr_schedule=cosine)",
        [str(tmp_path / "a")],
        "+macs",
    )
    result = ablation.main([f"--row=x (--a=b)={tmp_path / 'a'}", f"--out={tmp_path / 'o'}"])
    (row,) = result["rows"]
    assert row["label"] == "x (--a=b)" and row["scoring_seconds"] is None


def test_an_archs_file_restricts_the_compared_architectures(tmp_path, ablation):
    rng = np.random.default_rng(2)
    n = 30
    archs = [f"{i},{i % 5}" for i in range(n)]
    truth = rng.normal(90, 2, n)
    supernet = truth + rng.normal(0, 1.5, n)
    write_ranking(tmp_path / "a", archs, supernet, truth, truth + rng.normal(0, 3, n))
    keep = list(range(0, n, 3))
    listed = tmp_path / "listed.txt"
    listed.write_text("# a shrunk space\n" + "\n".join(archs[i] for i in keep) + "\n9,9\n")
    result = ablation.main(
        [f"--row=a={tmp_path / 'a'}", f"--out={tmp_path / 'o'}", f"--archs_file={listed}"]
    )
    assert result["num_archs"] == len(keep)
    assert result["rows"][0]["kendall_tau"]["value"] == pytest.approx(
        stats.kendalltau(truth[keep], supernet[keep])[0]
    )
    with pytest.raises(ValueError, match="--archs_file=.* does not exist"):
        ablation.main(
            [
                f"--row=a={tmp_path / 'a'}",
                f"--out={tmp_path / 'o2'}",
                f"--archs_file={tmp_path / 'none.txt'}",
            ]
        )


def test_a_plus_row_rank_averages_the_supernet_with_any_columns(tmp_path, ablation):
    """``:+naswot`` and ``:+synflow+naswot``: the mean of the ranks by the supernet and by each
    column (ranks by argsort here, no ties); a missing column is named."""
    rng = np.random.default_rng(2)
    n = 30
    archs = [f"{i},{i % 3}" for i in range(n)]
    truth = rng.normal(90, 2, n)
    supernet, naswot, synflow = (truth + rng.normal(0, s, n) for s in (1.0, 2.0, 3.0))
    folder = tmp_path / "run"
    folder.mkdir()
    with open(folder / "ranking.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["index", "arch", "macs", "supernet_accuracy", "naswot", "synflow", "ground_truth_C10"]
        )
        for i, row in enumerate(zip(archs, truth * 2, supernet, naswot, synflow, truth)):
            writer.writerow([i, *row])
    result = ablation.main(
        [
            f"--row=supernet={folder}",
            f"--row=with naswot={folder}:+naswot",
            f"--row=with both={folder}:+synflow+naswot",
            f"--out={tmp_path / 'out'}",
        ]
    )
    ranks = lambda v: np.argsort(np.argsort(v)) + 1  # noqa: E731
    pair = (ranks(supernet) + ranks(naswot)) / 2
    three = (ranks(supernet) + ranks(synflow) + ranks(naswot)) / 3
    _, with_naswot, with_both = result["rows"]
    assert with_naswot["kendall_tau"]["value"] == pytest.approx(stats.kendalltau(truth, pair)[0])
    assert with_both["kendall_tau"]["value"] == pytest.approx(stats.kendalltau(truth, three)[0])
    with pytest.raises(SystemExit, match="no column .params."):
        ablation.main([f"--row=x={folder}:+naswot+params", f"--out={tmp_path / 'o2'}"])
