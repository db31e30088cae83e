"""benchmarks/search_ground_truth.py on a hand-made table and search histories: the picks, their
table accuracies and the per-algorithm means, computed here by hand."""

import csv
import json

import pytest
from conftest import import_benchmark
from _ground_truth import write_history, write_table


@pytest.fixture(scope="module")
def tool():
    return import_benchmark("search_ground_truth")


def test_picks_and_means_by_hand(tmp_path, tool):
    table = write_table(tmp_path / "table.csv")  # 90.0 for 3,2,4,1,3,2; 85.0 for 1,3,1,3,1,3
    search = tmp_path / "search"
    write_history(
        search / "seed_0" / "history.csv",
        [
            ("evolution", "3,2,4,1,3,2", 0.70),
            ("evolution", "4,4,4,4,4,4", 0.70),  # a tie comes later: the first row stays the pick
            ("random", "1,3,1,3,1,3", 0.60),
            ("random", "0,0,0,0,0,0", 0.55),
        ],
    )
    write_history(
        search / "seed_1" / "history.csv",
        [("evolution", "2,2,2,2,2,2", 0.71), ("random", "3,3,3,3,3,3", 0.65)],
    )
    out = tmp_path / "picks.json"
    result = tool.main([f"--search={search}", f"--ground_truth={table}", f"--out={out}"])
    picks = {(p["seed"], p["algorithm"]): p for p in result["picks"]}
    assert picks[(0, "evolution")]["ground_truth"] == 90.0
    assert picks[(0, "random")]["ground_truth"] == 85.0
    assert picks[(1, "evolution")]["ground_truth"] == 85.0
    assert picks[(1, "random")]["ground_truth"] == 80.0
    # distinct cells' accuracies: 80, 85, 70, 85, 60, 90 -> 90 is the top (1.0), 85 is 5/6
    assert picks[(0, "evolution")]["percentile"] == pytest.approx(1.0)
    assert picks[(0, "random")]["percentile"] == pytest.approx(5 / 6)
    assert result["algorithms"]["evolution"]["mean"] == pytest.approx(87.5)
    assert result["algorithms"]["evolution"]["std"] == pytest.approx(2.5 * 2**0.5)
    assert result["algorithms"]["random"]["mean"] == pytest.approx(82.5)
    assert result["table_best"]["ground_truth"] == 90.0
    assert json.loads(out.read_text())["algorithms"]["random"]["seeds"] == 2


def test_best_evaluated_is_the_best_table_accuracy_a_search_visited(tmp_path, tool):
    table = write_table(tmp_path / "table.csv")
    search = tmp_path / "search"
    # the supernet prefers the 60% cell; the 90% cell was evaluated but ranked last
    write_history(
        search / "seed_0" / "history.csv",
        [
            ("evolution", "0,0,0,0,0,0", 0.9),
            ("evolution", "3,2,4,1,3,2", 0.5),
            ("evolution", "4,4,4,4,4,4", 0.6),
        ],
    )
    write_history(
        search / "seed_1" / "history.csv",
        [("evolution", "4,4,4,4,4,4", 0.7), ("evolution", "1,3,1,3,1,3", 0.6)],
    )
    result = tool.main([f"--search={search}", f"--ground_truth={table}"])
    picks = {p["seed"]: p for p in result["picks"]}
    assert (picks[0]["ground_truth"], picks[0]["best_evaluated"]) == (60.0, 90.0)
    assert (picks[1]["ground_truth"], picks[1]["best_evaluated"]) == (70.0, 85.0)
    assert result["algorithms"]["evolution"]["best_evaluated_mean"] == pytest.approx(87.5)
    # where the best cell stood: seed 0's by accuracy 0.9, 0.6, 0.5 -> third; seed 1's second
    assert [picks[s]["best_evaluated_place"] for s in (0, 1)] == [3, 2]
    assert [picks[s]["best_evaluated_place_supernet"] for s in (0, 1)] == [3, 2]


def test_favourites_count_the_top_of_each_seed_against_the_evaluated(tmp_path, tool, capsys):
    table = write_table(tmp_path / "table.csv")
    search = tmp_path / "search"
    write_history(  # table accuracies 90, 70, 85, 60
        search / "seed_0" / "history.csv",
        [
            ("evolution", "3,2,4,1,3,2", 0.70),
            ("evolution", "4,4,4,4,4,4", 0.70),  # tied: the first evaluated is the top 1
            ("random", "1,3,1,3,1,3", 0.60),
            ("random", "0,0,0,0,0,0", 0.55),
        ],
    )
    write_history(  # table accuracies 85, 80
        search / "seed_1" / "history.csv",
        [("evolution", "2,2,2,2,2,2", 0.71), ("random", "3,3,3,3,3,3", 0.65)],
    )
    fav = tool.main([f"--search={search}", f"--ground_truth={table}", "--top=1"])["favourites"]
    assert fav["k"] == 1 and fav["evaluated"] == 6
    assert fav["ground_truth_mean_top"] == pytest.approx((90 + 85) / 2)
    assert fav["ground_truth_mean_evaluated"] == pytest.approx((90 + 70 + 85 + 60 + 85 + 80) / 6)
    by = {(e["edge"], e["op"]): e for e in fav["edges"]}
    assert len(by) == 6 * 5
    # the first edge (node 0 -> node 1) holds a 3x3 conv in 3,2,4,1,3,2 and 3,3,3,3,3,3
    first = by[("0->1", "nor_conv_3x3")]
    assert (first["share_evaluated"], first["share_top"]) == pytest.approx((2 / 6, 1 / 2))
    assert first["ground_truth_mean"] == pytest.approx((90 + 80) / 2)
    # the last edge (node 2 -> node 3) holds a 1x1 conv in both tops: printed as a favourite
    last = by[("2->3", "nor_conv_1x1")]
    assert (last["share_evaluated"], last["share_top"]) == pytest.approx((2 / 6, 1.0))
    assert by[("0->1", "skip_connect")]["share_evaluated"] == pytest.approx(1 / 6)
    assert by[("1->2", "none")]["share_top"] == 0.0
    printed = capsys.readouterr().out
    assert "edge 2->3 nor_conv_1x1: 100% of the top, 33% of the evaluated" in printed
    assert "edge 0->1 nor_conv_3x3" not in printed  # 50% vs 33%: under the 0.2 margin
    with pytest.raises(SystemExit, match="positive number"):
        tool.main([f"--search={search}", f"--ground_truth={table}", "--top=0"])


def test_an_empty_search_names_the_fix(tmp_path, tool):
    table = write_table(tmp_path / "table.csv")
    (tmp_path / "search").mkdir()
    with pytest.raises(SystemExit, match="run spos_tf.search"):
        tool.main([f"--search={tmp_path / 'search'}", f"--ground_truth={table}"])


def test_supernet_plus_macs_repicks_by_mean_rank(tmp_path, tool):
    rows = [
        # accuracy ranks 3, 2, 1 and MACs ranks 1, 3, 2: mean ranks 2, 2.5, 1.5 -> the second row
        ("evolution", "3,3,3,3,3,3", 0.70, 10),
        ("evolution", "3,2,4,1,3,2", 0.69, 30),
        ("evolution", "0,0,0,0,0,0", 0.68, 20),
    ]
    path = tmp_path / "history.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["algorithm", "trial_id", "generation", "arch", "macs", "params", "accuracy"]
        )
        for i, (algorithm, arch, accuracy, macs) in enumerate(rows):
            writer.writerow([algorithm, i, 0, arch, macs, 1, accuracy])
    table = write_table(tmp_path / "table.csv")
    plain = tool.main([f"--search={tmp_path}", f"--ground_truth={table}"])
    combined = tool.main(
        [f"--search={tmp_path}", f"--ground_truth={table}", "--score=supernet+macs"]
    )
    assert plain["picks"][0]["arch"] == "3,3,3,3,3,3"
    assert combined["picks"][0]["arch"] == "3,2,4,1,3,2" and combined["score"] == "supernet+macs"


def test_supernet_plus_synflow_repicks_by_the_history_column(tmp_path, tool):
    table = write_table(tmp_path / "table.csv")
    columns = ["algorithm", "trial_id", "generation", "arch", "macs", "params", "synflow"]
    rows = [
        # accuracy ranks 3, 2, 1 and SynFlow ranks 1, 3, 2: mean ranks 2, 2.5, 1.5 -> the second
        ("evolution", "3,3,3,3,3,3", 0.70, 1e3),
        ("evolution", "3,2,4,1,3,2", 0.69, 1e9),
        ("evolution", "0,0,0,0,0,0", 0.68, 1e6),
    ]
    with open(tmp_path / "history.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*columns, "accuracy"])
        for i, (algorithm, arch, accuracy, synflow) in enumerate(rows):
            writer.writerow([algorithm, i, 0, arch, 1, 1, synflow, accuracy])
    got = tool.main([f"--search={tmp_path}", f"--ground_truth={table}", "--score=supernet+synflow"])
    assert got["picks"][0]["arch"] == "3,2,4,1,3,2" and got["picks"][0]["ground_truth"] == 90.0
    assert got["score"] == "supernet+synflow"
    # the 90% cell is picked by the combination (place 1) but second by accuracy alone
    assert got["picks"][0]["best_evaluated_place"] == 1
    assert got["picks"][0]["best_evaluated_place_supernet"] == 2
    # a history written without the score has no column: the fix is to rerun the search with it
    other = tmp_path / "other"
    write_history(other / "history.csv", [("evolution", "3,3,3,3,3,3", 0.7)])
    with pytest.raises(SystemExit, match="rerun the finished search.*--score=supernet\\+synflow"):
        tool.main([f"--search={other}", f"--ground_truth={table}", "--score=supernet+synflow"])


def test_paired_with_another_search_differences_the_picks_by_seed(tmp_path, tool, capsys):
    table = write_table(tmp_path / "table.csv")
    mine, other = tmp_path / "mine", tmp_path / "other"
    for seed, arch in enumerate(["3,2,4,1,3,2", "3,3,3,3,3,3", "2,2,2,2,2,2"]):  # 90, 80, 85
        write_history(mine / f"seed_{seed}" / "history.csv", [("evolution", arch, 0.7)])
    for seed, arch in enumerate(["1,3,1,3,1,3", "2,2,2,2,2,2", "4,4,4,4,4,4", "0,0,0,0,0,0"]):
        write_history(other / f"seed_{seed}" / "history.csv", [("evolution", arch, 0.7)])
    out = tmp_path / "paired.json"
    got = tool.main(
        [f"--search={mine}", f"--ground_truth={table}", f"--paired_with={other}", f"--out={out}"]
    )["paired"]
    # seeds 0-2 pair (other's seed 3 has no partner): 90-85, 80-85, 85-70 = +5, -5, +15
    assert [p["delta"] for p in got["pairs"]] == [5.0, -5.0, 15.0]
    assert got["mean"] == pytest.approx(5.0) and got["std"] == pytest.approx(10.0)
    half = 4.302652729911275 * 10.0 / 3**0.5  # t quantile 0.975 at 2 degrees of freedom (table)
    assert got["t95"] == pytest.approx([5.0 - half, 5.0 + half])
    assert got["positive"] == 2
    assert json.loads(out.read_text())["paired"]["other"] == str(other)
    assert "+5.00, -5.00, +15.00; mean +5.00" in capsys.readouterr().out
    # one pair: no interval; no common seed: the fix is named
    single = tmp_path / "single"
    write_history(single / "seed_0" / "history.csv", [("evolution", "3,2,4,1,3,2", 0.7)])
    one = tool.main([f"--search={single}", f"--ground_truth={table}", f"--paired_with={other}"])
    assert one["paired"]["t95"] is None and one["paired"]["mean"] == pytest.approx(5.0)
    lone = tmp_path / "lone"
    write_history(lone / "seed_7" / "history.csv", [("evolution", "3,2,4,1,3,2", 0.7)])
    with pytest.raises(SystemExit, match="same --seeds"):
        tool.main([f"--search={lone}", f"--ground_truth={table}", f"--paired_with={other}"])
    # a misspelt workdir is named, not a traceback
    missing = tmp_path / "no_such_search"
    with pytest.raises(SystemExit, match="no_such_search is not a directory"):
        tool.main([f"--search={mine}", f"--ground_truth={table}", f"--paired_with={missing}"])


def test_paired_picks_that_differ_alike_get_a_point_interval(tool):
    mine = {"picks": [{"seed": s, "algorithm": "evolution", "ground_truth": 90.0} for s in (0, 1)]}
    other = {"picks": [{"seed": s, "algorithm": "evolution", "ground_truth": 89.5} for s in (0, 1)]}
    result = tool.paired(mine, other)
    assert result["t95"] == [0.5, 0.5]
    assert result["positive"] == 2


def test_three_way_picks_and_a_pairing_judged_by_another_score(tmp_path, tool):
    """``--score=supernet+synflow+naswot`` picks by the mean of three ranks from the history's
    columns; ``--paired_score`` judges the ``--paired_with`` search by its own score."""
    table = write_table(tmp_path / "table.csv")  # 90.0 for 3,2,4,1,3,2; 85.0 for 1,3,1,3,1,3
    columns = ["algorithm", "trial_id", "generation", "arch", "macs", "params", "synflow", "naswot"]
    rows = [
        # ranks by accuracy 3, 2, 1; by SynFlow 1, 3, 2; by NASWOT 3, 1, 2. Three-way mean
        # ranks 7/3, 2, 5/3 -> the first; accuracy and SynFlow alone 2, 2.5, 1.5 -> the second
        ("evolution", "3,2,4,1,3,2", 0.70, 1e3, 3.0),
        ("evolution", "1,3,1,3,1,3", 0.69, 1e9, 1.0),
        ("evolution", "0,0,0,0,0,0", 0.68, 1e6, 2.0),
    ]
    for name in ("mine", "other"):  # the same history, judged by two scores
        folder = tmp_path / name / "seed_0"
        folder.mkdir(parents=True)
        with open(folder / "history.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([*columns, "accuracy"])
            for i, (algorithm, arch, accuracy, synflow, naswot) in enumerate(rows):
                writer.writerow([algorithm, i, 0, arch, 1, 1, synflow, naswot, accuracy])
    args = [f"--search={tmp_path / 'mine'}", f"--ground_truth={table}"]
    got = tool.main([*args, "--score=supernet+synflow+naswot"])
    assert got["picks"][0]["arch"] == "3,2,4,1,3,2" and got["picks"][0]["ground_truth"] == 90.0
    paired = tool.main(
        [
            *args,
            "--score=supernet+synflow+naswot",
            f"--paired_with={tmp_path / 'other'}",
            "--paired_score=supernet+synflow",
        ]
    )["paired"]
    assert paired["other_score"] == "supernet+synflow"
    assert paired["pairs"][0]["other"] == 85.0 and paired["pairs"][0]["delta"] == 5.0


def test_first_judges_a_search_at_a_smaller_budget_and_pairs_it_with_itself(tmp_path, tool):
    """``--first=N`` keeps each seed's first N candidates per algorithm (history order), so a
    search extended to more candidates is judged at its old budget; ``--paired_first`` pairs the
    same workdir at two budgets; a history shorter than N is refused with the fix."""
    table = write_table(tmp_path / "table.csv")  # 90.0 for 3,2,4,1,3,2; 85.0 for 1,3,1,3,1,3
    search = tmp_path / "search"
    write_history(  # evolution's table accuracies 80, 85, 90: better supernet accuracy later
        search / "seed_0" / "history.csv",
        [
            ("evolution", "3,3,3,3,3,3", 0.60),
            ("random", "0,0,0,0,0,0", 0.90),  # another algorithm's rows do not count for N
            ("evolution", "1,3,1,3,1,3", 0.65),
            ("random", "4,4,4,4,4,4", 0.10),
            ("evolution", "3,2,4,1,3,2", 0.70),
        ],
    )
    write_history(  # evolution's table accuracies 85, 70, 60
        search / "seed_1" / "history.csv",
        [
            ("evolution", "2,2,2,2,2,2", 0.50),
            ("evolution", "4,4,4,4,4,4", 0.80),
            ("random", "1,3,1,3,1,3", 0.60),
            ("evolution", "0,0,0,0,0,0", 0.90),
            ("random", "3,2,4,1,3,2", 0.70),
        ],
    )
    args = [f"--search={search}", f"--ground_truth={table}"]
    one = tool.main([*args, "--first=1"])
    assert one["first"] == 1 and one["favourites"]["evaluated"] == 4
    got = {(p["seed"], p["algorithm"]): p["ground_truth"] for p in one["picks"]}
    assert got == {
        (0, "evolution"): 80.0,
        (0, "random"): 60.0,
        (1, "evolution"): 85.0,
        (1, "random"): 85.0,
    }
    two = {(p["seed"], p["algorithm"]): p for p in tool.main([*args, "--first=2"])["picks"]}
    assert two[(0, "evolution")]["best_evaluated"] == 85.0
    assert two[(1, "random")]["ground_truth"] == 90.0 and two[(0, "random")]["evaluated"] == 2
    # the same workdir at 2 against 1 candidates: evolution +5 (85 - 80) and -15 (70 - 85)
    pair = tool.main([*args, "--first=2", f"--paired_with={search}", "--paired_first=1"])
    evo = [p["delta"] for p in pair["paired"]["pairs"] if p["algorithm"] == "evolution"]
    assert evo == [5.0, -15.0] and pair["paired"]["other_first"] == 1
    with pytest.raises(SystemExit, match="seed 0 has only 2 random candidates.*--max_trials=3"):
        tool.main([*args, "--first=3"])
    with pytest.raises(SystemExit, match="needs --paired_with"):
        tool.main([*args, "--paired_first=1"])
    with pytest.raises(SystemExit, match="positive number"):
        tool.main([*args, "--first=0"])
