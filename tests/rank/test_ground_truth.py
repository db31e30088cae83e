"""spos_tf.rank.ground_truth: a NAS-Bench-201 accuracy table, on hand-made fixture tables (the published
table is only used, when present, for the load time and its counts)."""

import os
from pathlib import Path

import pytest

from spos_tf.rank import ground_truth
from spos_tf.spaces import nasbench201

from _ground_truth import CELLS, COLUMNS, write_table

PUBLISHED = Path("/work/shared/data/nasbench201/nats_tss_test_accuracy.csv")


@pytest.fixture
def table(tmp_path):
    return ground_truth.load(write_table(tmp_path / "table.csv"))


def test_lookups_by_op_indices_names_and_benchmark_string(table):
    assert len(table) == 8 and table.num_distinct == 6
    assert table.column == "CIFAR10TestAccuracy200Epochs" and table.columns == COLUMNS
    for ops, accuracy, key in CELLS:
        assert table.accuracy(ops) == accuracy
        assert table.accuracy(nasbench201.to_string(ops)) == accuracy
        assert table.accuracy([nasbench201.OPS[o] for o in ops]) == accuracy
        assert table.accuracy(",".join(map(str, ops))) == accuracy
        assert table.key(ops) == key
    assert table.file_name == "table.csv"


def test_distinct_keeps_the_first_cell_of_each_unique_string_in_file_order(table):
    reps = table.distinct()
    assert [c.ops for c in reps] == [CELLS[i][0] for i in (0, 1, 3, 4, 6, 7)]
    assert len({c.key for c in reps}) == len(reps)
    assert table.representative(CELLS[5][0]).ops == CELLS[1][0]
    assert table.representative(CELLS[3][0]).ops == CELLS[3][0]
    # a cell's own accuracy stays its own, not its representative's
    assert (
        table.accuracy(CELLS[2][0]) == 81.0 and table.representative(CELLS[2][0]).accuracy == 80.0
    )


def test_percentile_is_the_share_of_distinct_cells_at_or_below(table):
    # distinct cells (representatives) hold 80, 85, 70, 85, 60, 90; rows 2 and 5 (81, 86) do not
    # count. By hand: <= 85 are 80, 85, 70, 85, 60 (ties count as at-or-below).
    assert table.percentile(85.0) == pytest.approx(5 / 6)
    assert table.percentile(84.9) == pytest.approx(3 / 6)
    assert table.percentile(86.0) == pytest.approx(5 / 6)  # row 5's 86 is not a distinct cell
    assert table.percentile(90.0) == 1.0 and table.percentile(95.0) == 1.0
    assert table.percentile(59.9) == 0.0 and table.percentile(60.0) == pytest.approx(1 / 6)


def test_a_missing_cell_is_named_in_both_text_forms(table):
    ops = (1, 1, 1, 1, 1, 1)
    for error in (KeyError, ValueError):
        with pytest.raises(error) as info:
            table.accuracy(ops)
        message = str(info.value)
        assert "'1,1,1,1,1,1'" in message and nasbench201.to_string(ops) in message
        assert "table.csv" in message
    assert ops not in table and CELLS[0][0] in table
    with pytest.raises(ValueError, match="op indices lie in 0..4"):
        table.accuracy((5, 0, 0, 0, 0, 0))
    with pytest.raises(ValueError, match="6 edges"):
        table.accuracy((0, 0, 0))


def test_columns_are_chosen_after_a_colon_and_errors_name_the_fix(tmp_path):
    path = write_table(tmp_path / "table.csv")
    other = ground_truth.load(f"{path}:CIFAR100TestAccuracy200Epochs")
    assert other.column == "CIFAR100TestAccuracy200Epochs"
    assert other.accuracy(CELLS[0][0]) == 60.0 and other.num_distinct == 6
    with pytest.raises(ValueError, match="no accuracy column 'Nope'") as info:
        ground_truth.load(f"{path}:Nope")
    assert all(c in str(info.value) for c in COLUMNS)
    with pytest.raises(ValueError, match="no accuracy column 'UniqueString'"):
        ground_truth.load(f"{path}:UniqueString")
    with pytest.raises(FileNotFoundError, match="--ground_truth"):
        ground_truth.load(str(tmp_path / "absent.csv:CIFAR10TestAccuracy200Epochs"))
    with pytest.raises(FileNotFoundError, match="--ground_truth"):
        ground_truth.load(str(tmp_path / "absent.csv"))
    # a path holding a colon is all path when that file exists
    colon = write_table(tmp_path / "a:b.csv")
    assert ground_truth.load(colon).column == "CIFAR10TestAccuracy200Epochs"
    assert ground_truth.load(f"{colon}:CIFAR100TestAccuracy200Epochs").accuracy(CELLS[1][0]) == 65.0


def test_malformed_tables_are_refused_with_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    write_table(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3] + ["80.0,60.0,|nor_conv_3x3~0|,K9"] + lines[3:]) + "\n")
    with pytest.raises(ValueError, match=r"bad.csv:4: malformed row"):
        ground_truth.load(str(path))
    path.write_text("CIFAR10TestAccuracy200Epochs,ArchitectureString\n")
    with pytest.raises(ValueError, match=r"no column\(s\) \['UniqueString'\]"):
        ground_truth.load(str(path))
    twice = write_table(tmp_path / "twice.csv", CELLS + [CELLS[0]])
    with pytest.raises(ValueError, match="appears twice"):
        ground_truth.load(twice)


def test_merge_isomorphic_keeps_the_first_of_each_unique_string(table):
    given = [CELLS[i][0] for i in (5, 0, 1, 2, 7)]
    kept, merged = table.merge_isomorphic(given)
    assert kept == [CELLS[5][0], CELLS[0][0], CELLS[7][0]]
    assert merged == [(CELLS[1][0], CELLS[5][0]), (CELLS[2][0], CELLS[0][0])]


@pytest.mark.skipif(not PUBLISHED.exists(), reason="the published table is not on this machine")
def test_the_published_table_loads_with_its_counts_and_best_cell():
    # (no wall-clock bound: it failed at 1.1 s on a loaded machine; speed belongs in benchmarks/)
    table = ground_truth.load(os.fspath(PUBLISHED))
    assert len(table) == 5**6 and table.num_distinct == 6466
    assert table.accuracy((3, 3, 4, 1, 3, 1)) == pytest.approx(93.66)
    best = max(c.accuracy for c in table.distinct())
    assert best == pytest.approx(94.37, abs=0.01) and table.percentile(best) == 1.0
