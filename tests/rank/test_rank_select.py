"""spos_tf.rank.select: which architectures a ranking compares, and which ones a shard does."""

import csv

import numpy as np
import pytest

from spos_tf import costs
from spos_tf.rank import select as rank_select

from _supernet_workdir import tiny_space


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shards_cover_every_architecture_exactly_once(n):
    num = 20
    members = [rank_select.shard_members(num, f"{i}/{n}") for i in range(n)]
    flat = sorted(j for m in members for j in m)
    assert flat == list(range(num))


@pytest.mark.parametrize("bad", ["1/1", "2", "a/b", "-1/3", "0/0"])
def test_a_bad_shard_is_refused(bad):
    with pytest.raises(ValueError, match="--shard must be i/n"):
        rank_select.parse_shard(bad)


def test_stratified_selection_spans_the_cost_range_and_is_seeded():
    space = tiny_space()
    table = costs.table(space)
    archs = rank_select.select_stratified(space, 6, seed=3, pool_size=2000)
    assert archs == rank_select.select_stratified(space, 6, seed=3, pool_size=2000)
    assert archs != rank_select.select_stratified(space, 6, seed=4, pool_size=2000)
    assert len(set(archs)) == 6
    every = [
        space.from_indices(np.array([[*ops], [0] * 4, [0] * 4, [0] * 4]))
        for ops in np.ndindex(4, 4, 4, 4)
    ]
    lo, hi = min(table.macs(a) for a in every), max(table.macs(a) for a in every)
    macs = sorted(table.macs(a) for a in archs)
    # one per stratum: the cheapest pick lies in the lowest sixth of the range, the dearest in the
    # highest sixth (256 archs, 2000 draws: the pool holds the extremes)
    assert macs[0] <= lo + (hi - lo) / 6 and macs[-1] >= hi - (hi - lo) / 6


def test_history_selection_takes_the_best_and_the_worst(tmp_path):
    space = tiny_space()
    rng = np.random.default_rng(0)
    archs = list(dict.fromkeys(space.sample(rng) for _ in range(12)))[:8]
    path = tmp_path / "history.csv"
    with open(path, "w", newline="") as f:  # quoted as search_lib's csv.DictWriter quotes
        writer = csv.writer(f)  # the commas of an architecture's text
        writer.writerow(["algorithm", "trial_id", "arch", "accuracy"])
        for i, a in enumerate(archs):
            writer.writerow(["evolution", i, str(a), 0.5 + i / 100])
    chosen = rank_select.select_from_history(space, str(path), 5)
    assert chosen == [archs[7], archs[6], archs[5], archs[1], archs[0]]


# ------------------------------------------------------------- with a ground-truth table
def nb201_table(tmp_path, num=40, seed=0):
    """A fixture table of ``num`` distinct random NAS-Bench-201 cells, synthetic accuracies, and
    hand-made UniqueStrings: cells 2k and 2k+1 (k < 10) are isomorphic, the rest unique (30
    distinct cells for 40). Returns ``(GroundTruth, cells in file order)``."""
    from spos_tf.rank import ground_truth
    from _ground_truth import write_table

    rng = np.random.default_rng(seed)
    cells = list(dict.fromkeys(tuple(rng.integers(0, 5, 6).tolist()) for _ in range(4 * num)))
    cells = cells[:num]
    rows = [(ops, 50 + i / 2, f"K{i // 2}" if i < 20 else f"U{i}") for i, ops in enumerate(cells)]
    return ground_truth.load(write_table(tmp_path / "table.csv", rows)), cells


def nb201_space():
    from spos_tf import spaces

    return spaces.get("nasbench201", image_size=8, width=0.25, repeats=(1, 1, 1))


def choose(how, num, seed, **kw):
    from types import SimpleNamespace

    return SimpleNamespace(
        select=how, num_archs=num, seed=seed, pool_size=kw.pop("pool_size", 5000), **kw
    )


@pytest.mark.parametrize("how", ["stratified", "random"])
def test_ground_truth_selections_draw_distinct_cells_and_are_seeded(tmp_path, how):
    truth, cells = nb201_table(tmp_path)
    space = nb201_space()
    reps = {c.ops for c in truth.distinct()}
    archs = rank_select.select(choose(how, 12, 3), space, truth)
    assert archs == rank_select.select(choose(how, 12, 3), space, truth)
    assert archs != rank_select.select(choose(how, 12, 4), space, truth)
    keys = [truth.key(a.genes[0]) for a in archs]
    assert len(set(keys)) == 12  # never two cells of one UniqueString
    assert {a.genes[0] for a in archs} <= reps  # each is its UniqueString's representative
    table = costs.table(space)
    assert [table.macs(a) for a in archs] == sorted(table.macs(a) for a in archs)
    # every distinct cell, each once; one more is refused
    every = rank_select.select(choose(how, 30, 0), space, truth)
    assert {a.genes[0] for a in every} == reps
    with pytest.raises(ValueError, match="holds 30 distinct cells, fewer than --num_archs=31"):
        rank_select.select(choose(how, 31, 0), space, truth)


def test_stratified_ground_truth_selection_spans_the_cost_range(tmp_path):
    truth, _ = nb201_table(tmp_path)
    space = nb201_space()
    table = costs.table(space)
    macs = [table.macs(space.make(op=c.ops)) for c in truth.distinct()]
    lo, hi = min(macs), max(macs)
    chosen = sorted(
        table.macs(a) for a in rank_select.select(choose("stratified", 5, 0), space, truth)
    )
    assert chosen[0] <= lo + (hi - lo) / 5 and chosen[-1] >= hi - (hi - lo) / 5


def test_file_selection_merges_isomorphic_cells_with_a_note(tmp_path):
    import io

    truth, cells = nb201_table(tmp_path)
    space = nb201_space()
    path = tmp_path / "archs.txt"
    # cells 1 and 0 are isomorphic (one UniqueString); cell 1 comes first and stays
    lines = [",".join(map(str, cells[i])) for i in (1, 25, 0, 30)]
    path.write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    archs = rank_select.select(choose("file", 10, 0, archs_file=str(path)), space, truth, out)
    assert [a.genes[0] for a in archs] == [cells[1], cells[25], cells[30]]
    assert "1 architecture(s)" in out.getvalue() and lines[2] in out.getvalue()
    # without the table the file's four lines are four architectures
    assert len(rank_select.select(choose("file", 10, 0, archs_file=str(path)), space)) == 4
    # a cell the table lacks is named
    missing = next(ops for ops in np.ndindex(5, 5, 5, 5, 5, 5) if ops not in set(cells))
    path.write_text(",".join(map(str, missing)) + "\n" + lines[0] + "\n")
    with pytest.raises(KeyError, match=",".join(map(str, missing))):
        rank_select.select(choose("file", 10, 0, archs_file=str(path)), space, truth)


def test_history_selection_counts_a_unique_string_once(tmp_path):
    truth, cells = nb201_table(tmp_path)
    space = nb201_space()
    path = tmp_path / "history.csv"
    scored = [
        (cells[0], 0.9),
        (cells[1], 0.95),
        (cells[20], 0.5),
        (cells[21], 0.6),
        (cells[22], 0.1),
    ]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["algorithm", "trial_id", "arch", "accuracy"])
        for i, (ops, acc) in enumerate(scored):
            writer.writerow(["evolution", i, ",".join(map(str, ops)), acc])
    chosen = rank_select.select(choose("history", 2, 0, archs_file=str(path)), space, truth)
    # cells 0 and 1 are one function: its best-scored member stands for it
    assert [a.genes[0] for a in chosen] == [cells[1], cells[22]]
    with pytest.raises(ValueError, match="4 distinct cells, fewer than --num_archs=5"):
        rank_select.select(choose("history", 5, 0, archs_file=str(path)), space, truth)


def test_random_selection_without_a_table_is_uniform_distinct_and_seeded():
    space = tiny_space()
    archs = rank_select.select_random(space, 8, seed=1)
    assert archs == rank_select.select_random(space, 8, seed=1)
    assert archs != rank_select.select_random(space, 8, seed=2)
    assert len(set(archs)) == 8
