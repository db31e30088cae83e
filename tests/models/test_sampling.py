"""Supernet path samplers: the reference's FLOPs-binned rule (issue 12, item 4)."""

import numpy as np
import pytest

from spos_tf import costs
from spos_tf import spaces
from spos_tf.models.sampling import (
    REFERENCE_BINS,
    ArchSampler,
    CostBinSampler,
    bin_index,
    macs_bounds,
)

PAPER_SPACE = spaces.get("shufflenet_oneshot")


def reference_rule(space, seed, step, edges, tries):
    """The reference's get_uniform_sample_cand, one draw at a time, on our (seed, step) RNG:
    a bin uniformly, up to ``tries`` uniform paths until one has l <= MACs <= r, else one more."""
    rng = np.random.default_rng([seed, step])
    idx = rng.integers(len(edges) - 1)
    low, high = edges[idx], edges[idx + 1]
    for _ in range(tries):
        arch = space.sample(rng)
        if low <= costs.macs(space, arch) <= high:
            return arch
    return space.sample(rng)


def test_reference_bins_are_the_reference_ones():
    assert REFERENCE_BINS == tuple(m * 1e6 for m in (290, 300, 310, 320, 330, 340, 350, 360))


def test_cost_bins_follow_the_reference_rule_and_replay():
    sampler = CostBinSampler(PAPER_SPACE, seed=3)
    for step in range(150):
        assert sampler(step) == reference_rule(PAPER_SPACE, 3, step, REFERENCE_BINS, 500)
    assert [sampler(s) for s in range(5)] == [CostBinSampler(PAPER_SPACE, 3)(s) for s in range(5)]
    assert [sampler(s) for s in range(5)] != [CostBinSampler(PAPER_SPACE, 4)(s) for s in range(5)]


def test_cost_bins_fill_bins_evenly_where_uniform_does_not():
    edges = REFERENCE_BINS
    counts = {"uniform": np.zeros(8, int), "bins": np.zeros(8, int)}
    bins, uniform = CostBinSampler(PAPER_SPACE, 0), ArchSampler(PAPER_SPACE, 0)
    for step in range(1400):
        counts["bins"][bin_index(edges, costs.macs(PAPER_SPACE, bins(step)))] += 1
        counts["uniform"][bin_index(edges, costs.macs(PAPER_SPACE, uniform(step)))] += 1
    share = {k: v[:7] / 1400 for k, v in counts.items()}
    assert np.all((share["bins"] > 0.10) & (share["bins"] < 0.19)), share["bins"]  # ~1/7 each
    assert share["uniform"][0] < 0.04 and share["uniform"][3] > 0.25, share["uniform"]


def test_fallback_after_failed_tries_is_an_unconstrained_draw():
    low, high = macs_bounds(PAPER_SPACE)
    # a bin 1 MAC wide just above the cheapest path: no path lands in it (tries == -1)
    narrow = (low + 1.0, low + 2.0)
    sampler = CostBinSampler(PAPER_SPACE, 0, narrow, max_tries=100)
    arch, target, tries = sampler.draw(7)
    assert (target, tries) == (0, -1)
    assert arch == reference_rule(PAPER_SPACE, 0, 7, narrow, 100)
    # channel search: genes of two kinds, every sampled path lies in its bin
    space = spaces.get("shufflenet_oneshot_blocks_channels")
    lo, hi = macs_bounds(space)
    edges = tuple(np.linspace(lo + 0.3 * (hi - lo), lo + 0.5 * (hi - lo), 5))
    sampler = CostBinSampler(space, 1, edges)
    for step in range(40):
        arch, target, tries = sampler.draw(step)
        assert tries > 0 and edges[target] <= costs.macs(space, arch) <= edges[target + 1]


def test_bin_index():
    edges = (10.0, 20.0, 30.0)
    assert [bin_index(edges, c) for c in (9, 10, 19.9, 20, 30, 30.1)] == [-1, 0, 0, 1, 1, -1]


@pytest.mark.parametrize(
    "edges, message",
    [
        ((300e6,), "at least 2"),
        ((300e6, 290e6), "strictly increasing"),
        (("a", "b"), "must be numbers"),
        ((1e6, 2e6), "no --cost_bins bin overlaps"),
    ],
)
def test_bad_bins_are_refused(edges, message):
    with pytest.raises(ValueError, match=message):
        CostBinSampler(PAPER_SPACE, 0, edges)


def test_macs_bounds_are_the_extreme_paths():
    ops = PAPER_SPACE.ops
    table = costs.table(PAPER_SPACE)
    per_op = [table.macs(PAPER_SPACE.make(op=[o] * 20)) for o in range(len(ops))]
    low, high = macs_bounds(PAPER_SPACE)
    assert low <= min(per_op) and high >= max(per_op)
    rng = np.random.default_rng(0)
    assert all(low <= table.macs(PAPER_SPACE.sample(rng)) <= high for _ in range(200))


# ------------------------------------------------------------------ FairNAS and balanced bins
def test_fair_paths_use_every_choice_of_every_block_once():
    from spos_tf.models.sampling import FairSampler

    space = spaces.get("nasbench201", image_size=8, width=0.25, repeats=(1, 1, 1))
    sampler = FairSampler(space, seed=3)
    assert sampler.paths_per_step == 5
    for step in range(20):
        paths = sampler.paths(step)
        genes = np.array([p.genes[0] for p in paths])  # [K, edges]
        for edge in range(space.num_blocks):
            assert sorted(genes[:, edge]) == list(range(5))
        assert paths == FairSampler(space, seed=3).paths(step)  # a function of (seed, step)
    assert sampler.paths(0) != FairSampler(space, seed=4).paths(0)


def test_fair_paths_cover_restricted_blocks_and_short_gene_kinds():
    """ProxylessNAS: the zero op is illegal in some blocks (6 ops there, 7 elsewhere); a block +
    channel space has 4 ops and 8 channel scales: every choice at least once, nothing illegal."""
    from spos_tf.models.sampling import FairSampler

    for space in (
        spaces.get("proxyless_mobile", image_size=32, width=0.25, repeats=(1, 1, 1, 1, 1, 1)),
        spaces.get("shufflenet_oneshot_blocks_channels", image_size=16, width=0.25,
                   repeats=(1, 1, 1, 1)),
    ):  # fmt: skip
        sampler = FairSampler(space, seed=0)
        paths = sampler.paths(7)
        assert len(paths) == sampler.paths_per_step
        for p in paths:
            space.validate(p)
        for g, kind in enumerate(space.searched_genes):
            for b in range(space.num_blocks):
                used = {p.genes[g][b] for p in paths}
                allowed = (
                    set(space.allowed_ops(b))
                    if kind == "op"
                    else set(range(len(space.choices[kind])))
                )
                assert used == allowed


def test_balanced_bins_span_the_space():
    from spos_tf.models.sampling import balanced_bins

    space = spaces.get("nasbench201")
    edges = balanced_bins(space, 8)
    low, high = macs_bounds(space)
    assert len(edges) == 9 and edges[0] == low and edges[-1] == high
    assert (low, high) == (7_783_040, 220_119_680)
    from spos_tf.models.sampling import BalancedSampler

    sampler = BalancedSampler(space, 0)
    archs = [sampler(s) for s in range(800)]
    counts = np.bincount([bin_index(edges, costs.macs(space, a)) for a in archs], minlength=8)
    # all 8 bins hold cells here; each gets about 1/8 of the steps (100 +- 3 sigma), also the top
    # bin, whose only cell is all nor_conv_3x3 (1 in 15,625 under uniform sampling)
    assert counts.min() > 70 and counts.max() < 130, counts
    assert archs == [BalancedSampler(space, 0)(s) for s in range(800)]


def test_list_sampler_draws_only_the_listed_paths_evenly_and_replays():
    from spos_tf.models.sampling import ListSampler

    space = spaces.get("nasbench201")
    listed = [space.parse(t) for t in ("3,3,3,1,3,3", "3,1,2,3,3,3", "0,0,0,0,0,0")]
    sampler = ListSampler(space, 7, listed + listed[:1])  # a repeat counts once
    assert sampler.archs == listed
    draws = [sampler(s) for s in range(900)]
    counts = np.array([draws.count(a) for a in listed])
    # each path about 1/3 of the steps: 300 +- 3 sigma (sigma = sqrt(900 * 1/3 * 2/3) = 14)
    assert counts.sum() == 900 and counts.min() > 255 and counts.max() < 345, counts
    # a pure function of (seed, step): the same draws in any order, other ones under another seed
    assert [sampler(s) for s in reversed(range(900))] == draws[::-1]
    assert [ListSampler(space, 8, listed)(s) for s in range(900)] != draws
    with pytest.raises(ValueError, match="at least one"):
        ListSampler(space, 0, [])


def live_by_paths(ops, none=0):
    """An independent canonical form of a NAS-Bench-201 cell (genes ordered (1,0), (2,0), (2,1),
    (3,0), (3,1), (3,2)): an edge stays live iff it lies on one of the four input-to-output paths
    whose edges are all non-``none``; every other edge becomes ``none``."""
    index = {(1, 0): 0, (2, 0): 1, (2, 1): 2, (3, 0): 3, (3, 1): 4, (3, 2): 5}
    paths = ([0, 3], [0, 1, 3], [0, 2, 3], [0, 1, 2, 3])
    live = set()
    for path in paths:
        edges = [index[(b, a)] for a, b in zip(path, path[1:])]
        if all(ops[e] != none for e in edges):
            live.update(edges)
    return tuple(op if e in live else none for e, op in enumerate(ops))


def test_distinct_sampler_draws_the_distinct_cells_evenly_in_canonical_form():
    import itertools

    from spos_tf.models.sampling import DistinctSampler

    space = spaces.get("nasbench201")
    none = space.ops.index("none")
    classes = {live_by_paths(ops, none) for ops in itertools.product(range(5), repeat=6)}
    sampler = DistinctSampler(space, 3)
    assert len(classes) == 9445
    assert {a.genes[0] for a in sampler.networks} == classes
    draws = [sampler(s) for s in range(4000)]
    assert all(live_by_paths(a.genes[0], none) == a.genes[0] for a in draws)  # canonical form
    # cells with at most 3 live edges: 229 of the 9,445 networks (97 +- 4 sigma = 39 of 4,000
    # draws), but 41% of the 15,625 encodings (uniform sampling would draw about 1,640)
    sparse = [c for c in classes if sum(o != none for o in c) <= 3]
    drawn = sum(sum(o != none for o in a.genes[0]) <= 3 for a in draws)
    expected = 4000 * len(sparse) / len(classes)
    assert abs(drawn - expected) < 4 * np.sqrt(expected), (drawn, expected, len(sparse))
    # a pure function of (seed, step)
    assert [sampler(s) for s in reversed(range(4000))] == draws[::-1]
    assert [DistinctSampler(space, 4)(s) for s in range(50)] != draws[:50]


def test_distinct_sampler_keeps_the_constraint_and_is_uniform_in_chain_spaces():
    from spos_tf.models.sampling import DistinctSampler, macs_range

    space = spaces.get("nasbench201")
    low, high = 60e6, 120e6
    sampler = DistinctSampler(space, 0, macs_range(space, low, high))
    for step in range(200):
        assert low <= costs.macs(space, sampler(step)) <= high
    # a chain of blocks computes a distinct network per encoding: the uniform draw itself
    chain = DistinctSampler(PAPER_SPACE, 5)
    assert chain.networks is None
    assert [chain(s) for s in range(20)] == [ArchSampler(PAPER_SPACE, 5)(s) for s in range(20)]
