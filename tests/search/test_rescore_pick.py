"""benchmarks/rescore_pick.py on a hand-made table, search histories and rescoring rankings: the
finalists, both re-picks and their paired differences, computed here by hand."""

import csv
import json
from pathlib import Path

import pytest
from conftest import import_benchmark
from _ground_truth import write_history, write_table


@pytest.fixture(scope="module")
def tool():
    return import_benchmark("rescore_pick")


def write_ranking(folder: Path, rows):
    folder.mkdir(parents=True)
    with open(folder / "ranking.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "arch", "supernet_accuracy"])
        for i, (arch, accuracy) in enumerate(rows):
            writer.writerow([i, arch, accuracy])


def run(tool, tmp_path, table, rescored, *extra):
    return tool.main(
        [
            f"--search={tmp_path / 'search'}",
            f"--rescored={rescored}",
            f"--ground_truth={table}",
            *extra,
        ]
    )


# the histories' MACs (any numbers: the tool reads the column, it does not count)
MACS = {
    "3,3,3,3,3,3": 20,
    "3,2,4,1,3,2": 30,
    "0,0,0,0,0,0": 1,
    "4,4,4,4,4,4": 5,
    "1,3,1,3,1,3": 10,
    "2,2,2,2,2,2": 12,
}


@pytest.fixture
def search(tmp_path):
    # table: 3,3,3,3,3,3 -> 80 (K0), 3,2,4,1,3,2 -> 90, 4,4,4,4,4,4 -> 70, 1,3,1,3,1,3 -> 85,
    # 2,2,2,2,2,2 -> 85, 0,0,0,0,0,0 -> 60
    table = write_table(tmp_path / "table.csv")
    # seed 0: ranks by accuracy A4 B3 D2 C1, by SynFlow B4 A3 D2 C1 -> A 3.5, B 3.5, D 2, C 1:
    # finalists (top 3) A, B, D; the search picks A (the first of the tie)
    write_history(
        tmp_path / "search" / "seed_0" / "history.csv",
        [
            ("evolution", "3,3,3,3,3,3", 0.70, 4.0),  # A, 80
            ("evolution", "3,2,4,1,3,2", 0.69, 5.0),  # B, 90
            ("evolution", "0,0,0,0,0,0", 0.50, 1.0),  # C, 60
            ("evolution", "4,4,4,4,4,4", 0.60, 3.0),  # D, 70
        ],
        macs=MACS,
    )
    # seed 1: by accuracy F3 E2 G1, by SynFlow E3 F2 G1 -> E 2.5, F 2.5, G 1: the search picks E
    write_history(
        tmp_path / "search" / "seed_1" / "history.csv",
        [
            ("evolution", "1,3,1,3,1,3", 0.60, 2.0),  # E, 85
            ("evolution", "2,2,2,2,2,2", 0.70, 1.0),  # F, 85
            ("evolution", "4,4,4,4,4,4", 0.40, 0.5),  # G, 70
        ],
        macs=MACS,
    )
    # rescored means: A .60, B .64, D and G (one cell) .66, E .60, F .60; A is ranked as its isomorphic
    # twin 3,3,3,3,3,0 (same UniqueString K0) in the second ranking
    write_ranking(
        tmp_path / "r1",
        [
            ("3,3,3,3,3,3", 0.58),
            ("3,2,4,1,3,2", 0.65),
            ("4,4,4,4,4,4", 0.66),
            ("1,3,1,3,1,3", 0.60),
            ("2,2,2,2,2,2", 0.60),
            ("0,0,0,0,0,0", 0.99),
        ],
    )
    write_ranking(
        tmp_path / "r2",
        [
            ("3,3,3,3,3,0", 0.62),
            ("3,2,4,1,3,2", 0.63),
            ("4,4,4,4,4,4", 0.66),
            ("1,3,1,3,1,3", 0.60),
            ("2,2,2,2,2,2", 0.60),
        ],
    )
    return tmp_path, table


def test_repicks_by_hand(search, tool):
    tmp_path, table = search
    out = tmp_path / "repick.json"
    result = run(
        tool, tmp_path, table, f"{tmp_path / 'r1'},{tmp_path / 'r2'}", "--top=3", f"--out={out}"
    )
    seeds = {e["seed"]: e for e in result["seeds"]}
    assert seeds[0]["finalists"] == ["3,3,3,3,3,3", "3,2,4,1,3,2", "4,4,4,4,4,4"]
    # seed 0 among A, B, D: rescored ranks A1 B2 D3, SynFlow ranks A2 B3 D1 -> B (90);
    # rescored accuracy alone -> D (70)
    assert seeds[0]["search"]["arch"] == "3,3,3,3,3,3"
    assert seeds[0]["combined"]["arch"] == "3,2,4,1,3,2"
    assert seeds[0]["alone"]["arch"] == "4,4,4,4,4,4"
    assert seeds[0]["search"]["supernet_accuracy_rescored"] == pytest.approx(0.60)
    # seed 1 among E, F, G: rescored ranks E1.5 F1.5 G3, SynFlow E3 F2 G1 -> E 2.25 (85);
    # alone -> G (70)
    assert seeds[1]["combined"]["ground_truth"] == 85.0
    assert seeds[1]["alone"]["ground_truth"] == 70.0
    assert result["search"]["mean"] == pytest.approx(82.5)
    combined = result["combined"]["paired_vs_search"]
    assert [p["delta"] for p in combined["pairs"]] == [10.0, 0.0]
    assert combined["positive"] == 1
    assert result["alone"]["paired_vs_search"]["mean"] == pytest.approx(-12.5)
    assert result["best_finalist_mean"] == pytest.approx(87.5)
    assert json.loads(out.read_text())["combined"]["mean"] == pytest.approx(87.5)


def test_the_macs_repick_and_no_rescoring(search, tool):
    tmp_path, table = search
    result = run(tool, tmp_path, table, "", "--top=3")
    seeds = {e["seed"]: e for e in result["seeds"]}
    # the highest MACs among the finalists: seed 0 B (30 MACs, 90) over A (20) and D (5); seed 1
    # F (12, 85) over E (10) and G (5)
    assert seeds[0]["macs"]["arch"] == "3,2,4,1,3,2"
    assert seeds[1]["macs"]["arch"] == "2,2,2,2,2,2"
    assert [p["delta"] for p in result["macs"]["paired_vs_search"]["pairs"]] == [10.0, 0.0]
    # without --rescored a finalist keeps its search accuracy: within the finalists the combined
    # ranks give the search's own picks here (seed 0 A, B 2.5 each -> A; seed 1 E, F 2.5 each ->
    # E), and alone is the highest search accuracy (seed 0 A at 0.70, seed 1 F at 0.70)
    assert [e["combined"]["arch"] for e in result["seeds"]] == ["3,3,3,3,3,3", "1,3,1,3,1,3"]
    assert [e["alone"]["arch"] for e in result["seeds"]] == ["3,3,3,3,3,3", "2,2,2,2,2,2"]
    assert seeds[0]["search"]["supernet_accuracy_rescored"] == 0.70
    finalists = result["finalists"]
    assert finalists["rescored_accuracy"]["value"] == finalists["search_accuracy"]["value"]
    # under --score=supernet+macs the prior is MACs: one re-pick by it, named "prior"
    by_macs = run(tool, tmp_path, table, "", "--top=3", "--score=supernet+macs")
    assert "macs" not in by_macs and "macs" not in by_macs["seeds"][0]
    assert by_macs["seeds"][0]["prior"]["arch"] == "3,2,4,1,3,2"


def test_searches_are_pooled_without_rescoring(search, tool):
    import shutil

    tmp_path, table = search
    shutil.copytree(tmp_path / "search", tmp_path / "again")
    searches = f"{tmp_path / 'search'},{tmp_path / 'again'}"
    result = tool.main([f"--search={searches}", f"--ground_truth={table}", "--top=3"])
    pairs = result["macs"]["paired_vs_search"]["pairs"]
    assert [p["seed"] for p in pairs] == ["search:0", "search:1", "again:0", "again:1"]
    assert [p["delta"] for p in pairs] == [10.0, 0.0, 10.0, 0.0]
    with pytest.raises(SystemExit, match="--rescored takes one --search"):
        tool.main(
            [f"--search={searches}", f"--ground_truth={table}", f"--rescored={tmp_path / 'r1'}"]
        )


def test_the_plot_shows_every_distinct_finalist(search, tool):
    import matplotlib.image

    tmp_path, table = search
    plot = tmp_path / "finalists.png"
    result = run(tool, tmp_path, table, f"{tmp_path / 'r1'}", "--top=3", f"--plot={plot}")
    # A, B, D, E, F with their table accuracy and MACs (G is D's cell)
    cells = result["finalists"]["cells"]
    assert [(c["ground_truth"], c["macs"]) for c in cells] == [
        (80, 20),
        (90, 30),
        (70, 5),
        (85, 10),
        (85, 12),
    ]
    height, width, _ = matplotlib.image.imread(plot).shape
    assert (height, width) == (320, 4 * 320)  # one panel per score: search, rescored, SynFlow, MACs
    with pytest.raises(SystemExit, match="exists"):
        run(tool, tmp_path, table, f"{tmp_path / 'r1'}", f"--plot={plot}")


def test_a_finalist_missing_from_a_ranking_names_the_fix(search, tool):
    tmp_path, table = search
    (tmp_path / "r3").mkdir()
    write_ranking(tmp_path / "r3" / "x", [("3,3,3,3,3,3", 0.5), ("3,2,4,1,3,2", 0.5)])
    with pytest.raises(SystemExit, match="--select=file"):
        run(tool, tmp_path, table, f"{tmp_path / 'r1'},{tmp_path / 'r3' / 'x'}", "--top=3")


def test_an_existing_out_is_not_overwritten(search, tool):
    tmp_path, table = search
    out = tmp_path / "kept.json"
    out.write_text("{}")
    with pytest.raises(SystemExit, match="exists"):
        run(tool, tmp_path, table, f"{tmp_path / 'r1'}", f"--out={out}")
    assert out.read_text() == "{}"


def test_finalists_are_ranked_against_the_table_by_scipy(search, tool):
    from scipy import stats

    tmp_path, table = search
    result = run(tool, tmp_path, table, f"{tmp_path / 'r1'},{tmp_path / 'r2'}", "--top=3")
    # distinct finalists A, B, D (seed 0), E, F (seed 1; G is D's cell): table, search accuracy,
    # rescored accuracy, SynFlow
    truth = [80, 90, 70, 85, 85]
    rescored = [0.60, 0.64, 0.66, 0.60, 0.60]
    synflow = [4.0, 5.0, 3.0, 2.0, 1.0]
    finalists = result["finalists"]
    assert finalists["count"] == 5
    assert finalists["rescored_accuracy"]["value"] == pytest.approx(
        stats.kendalltau(truth, rescored)[0]
    )
    assert finalists["synflow"]["value"] == pytest.approx(stats.kendalltau(truth, synflow)[0])
    # MACs of A, B, D, E, F
    assert finalists["macs"]["value"] == pytest.approx(
        stats.kendalltau(truth, [20, 30, 5, 10, 12])[0]
    )
    assert finalists["search_accuracy"]["value"] == pytest.approx(
        stats.kendalltau(truth, [0.70, 0.69, 0.60, 0.60, 0.70])[0]
    )


def test_the_prior_alone_repicks_among_the_finalists(search, tool):
    tmp_path, table = search
    result = run(tool, tmp_path, table, f"{tmp_path / 'r1'}", "--top=3")
    # the highest SynFlow among the finalists: B (5.0, 90) for seed 0, E (2.0, 85) for seed 1
    assert [e["prior"]["ground_truth"] for e in result["seeds"]] == [90.0, 85.0]
    assert result["prior"]["paired_vs_search"]["mean"] == pytest.approx(5.0)


def test_a_seed_placeholder_reads_each_seeds_own_rescoring(search, tool):
    tmp_path, table = search
    # seed 0's own ranking prefers D (70), seed 1's prefers F (85): alone picks those
    write_ranking(
        tmp_path / "own0", [("3,3,3,3,3,3", 0.1), ("3,2,4,1,3,2", 0.2), ("4,4,4,4,4,4", 0.9)]
    )
    write_ranking(
        tmp_path / "own1", [("1,3,1,3,1,3", 0.1), ("2,2,2,2,2,2", 0.9), ("4,4,4,4,4,4", 0.2)]
    )
    result = run(tool, tmp_path, table, f"{tmp_path / 'own{seed}'}", "--top=3")
    assert [e["alone"]["arch"] for e in result["seeds"]] == ["4,4,4,4,4,4", "2,2,2,2,2,2"]
