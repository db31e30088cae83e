"""spos_tf.rank_select: which architectures a ranking compares, and which ones a shard does."""

import csv

import numpy as np
import pytest

from spos_tf import costs, rank_select

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
