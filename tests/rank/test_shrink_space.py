"""benchmarks/shrink_space.py on a hand-made ranking and table: the ops dropped per edge, the
shrunk space's architectures and the judging figures, computed here by hand."""

import csv
import json

import pytest
from conftest import import_benchmark
from _ground_truth import write_table

# (arch, supernet accuracy). Edges 0, 2, 4: none 0.5 (0.1, 0.9), skip 0.5, conv1x1 0.6,
# conv3x3 0.7, avg_pool 0.3; edges 1, 3, 5: none 0.1, skip 0.5, conv1x1 0.6, conv3x3 0.7,
# avg_pool 0.6 (0.3, 0.9).
RANKED = [
    ("0,0,0,0,0,0", 0.1),
    ("1,1,1,1,1,1", 0.5),
    ("2,2,2,2,2,2", 0.6),
    ("3,3,3,3,3,3", 0.7),
    ("4,4,4,4,4,4", 0.3),
    ("0,4,0,4,0,4", 0.9),
]


@pytest.fixture(scope="module")
def tool():
    return import_benchmark("shrink_space")


def write_ranking(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "arch", "supernet_accuracy"])
        writer.writerows((i, arch, acc) for i, (arch, acc) in enumerate(rows))
    return str(path)


def listed(path):
    return [line.strip() for line in open(path) if line.strip() and not line.startswith("#")]


def test_drops_each_edges_lowest_marginal_and_lists_the_product(tool, tmp_path):
    ranking = write_ranking(tmp_path / "ranking.csv", RANKED)
    out, js = tmp_path / "shrunk.txt", tmp_path / "shrunk.json"
    tool.main([f"--ranking={ranking}", f"--out={out}", f"--json={js}"])
    record = json.load(open(js))
    odd = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3"]  # avg_pool (0.3) dropped
    even = ["skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]  # none (0.1) dropped
    assert record["kept"] == [odd, even, odd, even, odd, even]
    assert record["marginals"][0]["none"] == [pytest.approx(0.5), 2]
    assert record["marginals"][1]["avg_pool_3x3"] == [pytest.approx(0.6), 2]
    archs = listed(out)
    assert len(archs) == record["shrunk_size"] == 4**6 == len(set(archs))
    assert "0,1,1,1,3,4" in archs
    assert "4,1,1,1,3,4" not in archs and "0,0,1,1,3,4" not in archs
    # nothing written is overwritten
    with pytest.raises(SystemExit, match="exists"):
        tool.main([f"--ranking={ranking}", f"--out={out}"])


def test_two_drops_break_ties_by_dropping_the_later_op(tool, tmp_path):
    ranking = write_ranking(tmp_path / "ranking.csv", RANKED)
    out = tmp_path / "shrunk.txt"
    tool.main([f"--ranking={ranking}", f"--out={out}", "--drop=2"])
    archs = listed(out)
    # edges 0, 2, 4: avg_pool (0.3), then skip over none (both 0.5): none, conv1x1, conv3x3 left;
    # edges 1, 3, 5: none (0.1), then skip (0.5): conv1x1, conv3x3, avg_pool left
    assert len(archs) == 3**6
    assert {a.split(",")[0] for a in archs} == {"0", "2", "3"}
    assert {a.split(",")[1] for a in archs} == {"2", "3", "4"}


def test_an_op_no_ranked_cell_holds_is_refused(tool, tmp_path):
    ranking = write_ranking(tmp_path / "ranking.csv", RANKED[:4])
    with pytest.raises(ValueError, match="no ranked architecture holds op"):
        tool.main([f"--ranking={ranking}", f"--out={tmp_path / 'shrunk.txt'}"])
    assert not (tmp_path / "shrunk.txt").exists()


def test_judging_counts_the_table_cells_the_shrunk_space_holds(tool, tmp_path):
    """The hand table (tests/_ground_truth.py): with edges 0/2/4 losing avg_pool and 1/3/5 none,
    K0 (all conv3x3, 80), K1 (all conv1x1, 85) and K3 (1,3,1,3,1,3; 85) are held; K2 (all
    avg_pool), K4 (all none) and K5 (90; avg_pool on edge 2) are not."""
    ranking = write_ranking(tmp_path / "ranking.csv", RANKED)
    table = write_table(tmp_path / "table.csv")
    js = tmp_path / "shrunk.json"
    tool.main(
        [
            f"--ranking={ranking}",
            f"--out={tmp_path / 's.txt'}",
            f"--json={js}",
            f"--ground_truth={table}",
        ]
    )
    judged = json.load(open(js))["judged"]["none"]
    assert judged["best_whole"] == 90.0
    assert judged["best_shrunk"] == 85.0
    assert judged["distinct_cells"] == 6
    assert judged["distinct_cells_shrunk"] == 3
    assert judged["kept_of_top10"] == 3


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--drop=0"], "--drop=0: pass 1 to 4"),
        (["--drop=5"], "--drop=5: pass 1 to 4"),
    ],
)
def test_a_drop_outside_1_to_ops_minus_1_is_refused(tool, tmp_path, extra, message):
    ranking = write_ranking(tmp_path / "ranking.csv", RANKED)
    with pytest.raises(ValueError, match=message):
        tool.main([f"--ranking={ranking}", f"--out={tmp_path / 'shrunk.txt'}", *extra])
    assert not (tmp_path / "shrunk.txt").exists()


def test_bad_inputs_name_the_fix_and_write_nothing(tool, tmp_path):
    out = tmp_path / "shrunk.txt"
    with pytest.raises(SystemExit, match="does not exist: run spos_tf.rank first"):
        tool.main([f"--ranking={tmp_path / 'none.csv'}", f"--out={out}"])
    empty = write_ranking(tmp_path / "empty.csv", [])
    with pytest.raises(SystemExit, match="lists no architecture"):
        tool.main([f"--ranking={empty}", f"--out={out}"])
    ranking = write_ranking(tmp_path / "ranking.csv", RANKED)
    with pytest.raises(SystemExit, match="shrinking drops ops only"):
        tool.main(
            [f"--ranking={ranking}", f"--out={out}", "--space=shufflenet_oneshot_blocks_channels"]
        )
    assert not out.exists()
