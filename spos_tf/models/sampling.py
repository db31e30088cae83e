"""Architecture sampling for supernet training: a pure function of (seed, step).

``ArchSampler(space, seed)(step)`` draws uniformly, optionally rejecting architectures that fail a
constraint (e.g. MACs in a range), with a bounded number of tries. ``CostBinSampler`` draws as the
reference's supernet training does (a MACs bin first, then paths inside it). ``GeneSampler``
draws uniformly among the architectures with one gene fixed (a few-shot sub-supernet's part of
the space, :mod:`spos_tf.train.few_shot`); ``ListSampler`` uniformly among listed architectures
(``--sample_from``); ``DistinctSampler`` uniformly among the distinct networks of a cell space
(``--sampling=distinct``). Because the draw depends only on ``(seed, step)``, a resumed run
replays exactly the same architectures, and every replica and worker of a distributed run draws
the same architecture for a global step without communicating.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from spos_tf.spaces.space import Architecture, SearchSpace


class InfeasibleConstraintError(ValueError):
    """No architecture satisfying the constraint was found within the allowed number of tries."""


class ArchSampler:
    """Uniform (optionally constrained) architecture sampler.

    Args:
      space: the search space.
      seed: integer seed; draws are ``f(seed, step)``.
      constraint: ``constraint(arch) -> bool``; None accepts everything.
      max_tries: rejection-sampling budget per step.
      description: human-readable constraint text used in error messages.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Callable[[Architecture], bool] | None = None,
        max_tries: int = 1000,
        description: str = "",
    ):
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries}")
        self.space, self.seed, self.constraint = space, int(seed), constraint
        self.max_tries, self.description = int(max_tries), description

    def rng(self, step: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(step)])

    def __call__(self, step: int) -> Architecture:
        return self.accepted(self.rng(step), step)

    def accepted(self, rng: np.random.Generator, step: int) -> Architecture:
        """The first of up to ``max_tries`` draws from ``rng`` that meets the constraint
        (``step`` only names the step in the error)."""
        for _ in range(self.max_tries):
            arch = self._draw(rng)
            if self.constraint is None or self.constraint(arch):
                return arch
        raise InfeasibleConstraintError(
            f"no architecture of space {self.space.name!r} met the sampling constraint "
            f"{self.description or self.constraint} in {self.max_tries} tries (step {step}); "
            f"relax the constraint (e.g. the MACs range) or raise max_tries"
        )

    def _draw(self, rng: np.random.Generator) -> Architecture:
        """One unconstrained draw (uniform over the space; subclasses restrict it)."""
        return self.space.sample(rng)

    def indices(self, step) -> np.ndarray:
        """int32 ``[4, num_blocks]`` choice indices of the architecture of ``step``."""
        return self.space.indices(self(int(step)))


def split_kind(space: SearchSpace) -> str:
    """The gene kind a few-shot split fixes: the space's first searched kind (``"op"`` wherever
    ops are searched, e.g. NAS-Bench-201's edges and the ShuffleNet blocks)."""
    if not space.searched_genes:
        raise ValueError(f"space {space.name!r} searches no gene: nothing to split on")
    return space.searched_genes[0]


def split_choices(space: SearchSpace, block: int, flag: str = "--few_shot_split") -> tuple:
    """The choices of block ``block``'s :func:`split_kind` gene (its legal ops for ``"op"``):
    one sub-supernet each in a few-shot split (one slot group each under ``--momentum_split``).

    Raises:
      ValueError: ``block`` is not a block (edge) of ``space``, naming ``flag`` and the valid range.
    """
    if isinstance(block, bool) or not isinstance(block, int) or not 0 <= block < space.num_blocks:
        raise ValueError(
            f"{flag}={block!r} is not a choice block (edge) of space {space.name!r}: "
            f"pass one of 0..{space.num_blocks - 1}"
        )
    kind = split_kind(space)
    if kind == "op":
        return tuple(space.allowed_ops(block))
    return tuple(range(len(space.choices[kind])))


def gene_of(space: SearchSpace, arch: Architecture, block: int) -> int:
    """The :func:`split_kind` gene of ``arch`` in block ``block``: which sub-supernet owns it."""
    return arch.genes[space.searched_genes.index(split_kind(space))][block]


class GeneSampler(ArchSampler):
    """Uniform over the architectures whose :func:`split_kind` gene in block ``block`` is
    ``choice`` (a few-shot sub-supernet's part of the space), optionally constrained; a pure
    function of ``(seed, step)``.

    Each step draws as :class:`ArchSampler` does (same generator, same draws of the other
    blocks) and then sets the fixed gene, so the draw is uniform over the sub-space (blocks are
    drawn independently) and the sub-supernets of one split sample the same other genes at the
    same step. Cost: that of :class:`ArchSampler` (no rejection for the fixed gene).

    Raises:
      ValueError: ``block`` out of range or ``choice`` not among :func:`split_choices`.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        block: int,
        choice: int,
        constraint: Callable[[Architecture], bool] | None = None,
        description: str = "",
    ):
        choices = split_choices(space, block)
        if choice not in choices:
            raise ValueError(
                f"choice {choice!r} is not one of block {block}'s {split_kind(space)} choices "
                f"{list(choices)} in space {space.name!r}"
            )
        fixed = f"{split_kind(space)} {choice} in block {block}"
        super().__init__(
            space,
            seed,
            constraint,
            description=fixed + (f" and {description}" if description else ""),
        )
        self.block, self.choice = int(block), int(choice)
        self._kind = space.searched_genes.index(split_kind(space))

    def _draw(self, rng: np.random.Generator) -> Architecture:
        """A uniform draw with this sub-supernet's gene set to its choice."""
        genes = [list(g) for g in self.space.sample(rng).genes]
        genes[self._kind][self.block] = self.choice
        return Architecture(tuple(map(tuple, genes)))


class ListSampler(ArchSampler):
    """Uniform over given architectures (``spos_tf.train --sample_from``): step ``s`` trains
    ``archs[i]`` with ``i`` drawn uniformly from ``(seed, s)``, e.g. a search's finalists while a
    supernet is fine-tuned on that shrunk space before they are scored again. Repeats count once.

    Raises:
      ValueError: no architectures, or one not of ``space``.
    """

    def __init__(self, space: SearchSpace, seed: int, archs):
        super().__init__(space, seed, description="the listed architectures")
        self.archs = list(dict.fromkeys(space.validate(a) for a in archs))
        if not self.archs:
            raise ValueError("ListSampler needs at least one architecture")

    def _draw(self, rng: np.random.Generator) -> Architecture:
        return self.archs[int(rng.integers(len(self.archs)))]


class SequenceSampler(ArchSampler):
    """Trains on given architectures: step ``s`` gets ``archs[s]`` (the last one after the end),
    or ``archs[s % len(archs)]`` with ``cycle=True``. For tests, benchmarks and replaying the
    paths of another run."""

    def __init__(self, space: SearchSpace, archs, cycle: bool = False):
        super().__init__(space, 0)
        self.archs = [space.validate(a) for a in archs]
        if not self.archs:
            raise ValueError("SequenceSampler needs at least one architecture")
        self.cycle = bool(cycle)

    def __call__(self, step: int) -> Architecture:
        step = int(step)
        if self.cycle:
            return self.archs[step % len(self.archs)]
        return self.archs[min(step, len(self.archs) - 1)]


class FairSampler(ArchSampler):
    """FairNAS's strict fairness (Chu et al., ICCV 2021; ``--sampling=fair``): every step trains
    ``paths_per_step`` paths that, per block and searched gene kind, use every choice exactly
    once (an independent random permutation per block), a pure function of ``(seed, step)``.

    ``paths_per_step`` is the largest number of choices of any block and gene kind (5 for
    NAS-Bench-201, 4 for the ShuffleNet block search); a block or gene kind with fewer choices
    (ProxylessNAS blocks without the zero op, the channel genes of a block + channel space) fills
    the remaining paths with uniform draws among its choices, so there every choice is trained at
    least once per step. The training step (:func:`spos_tf.models.step.train_step`) runs the
    paths on the same batch, sums their gradients and applies one update to every choice.

    Cost: ``paths_per_step`` forward and backward passes per step (5x a uniform step on
    NAS-Bench-201), one update.
    """

    def __init__(self, space: SearchSpace, seed: int = 0):
        super().__init__(space, seed)
        self.paths_per_step = max(
            len(self._choices(kind, b))
            for kind in space.searched_genes
            for b in range(space.num_blocks)
        )

    def _choices(self, kind: str, block: int) -> list:
        if kind == "op":
            return list(self.space.allowed_ops(block))
        return list(range(len(self.space.choices[kind])))

    def paths(self, step: int) -> list:
        """The ``paths_per_step`` architectures of ``step``."""
        rng, k = self.rng(step), self.paths_per_step
        genes = []  # [kind][block] -> k choices
        for kind in self.space.searched_genes:
            rows = []
            for b in range(self.space.num_blocks):
                choices = self._choices(kind, b)
                order = rng.permutation(choices).tolist()
                if len(order) < k:
                    order += rng.choice(choices, k - len(order)).tolist()
                rows.append(order)
            genes.append(rows)
        return [
            Architecture(tuple(tuple(row[j] for row in rows) for rows in genes)) for j in range(k)
        ]

    def __call__(self, step: int) -> Architecture:
        return self.paths(step)[0]


ENUMERATE_LIMIT = 200_000  # spaces up to this size are enumerated by BalancedSampler


class BalancedSampler(ArchSampler):
    """``--sampling=balanced``: a MACs bin uniformly among the non-empty bins of ``edges``
    (default :func:`balanced_bins`: 8 equal bins spanning the whole space), then an architecture
    uniformly inside it; a pure function of ``(seed, step)``.

    Spaces of at most :data:`ENUMERATE_LIMIT` architectures (NAS-Bench-201: 15,625) are
    enumerated once, so the draw inside a bin is exact even for bins that hold a single
    architecture (NAS-Bench-201's top bin holds only the all-``nor_conv_3x3`` cell, which then
    gets 1/8 of the steps: equal-width bins over-train the extremes by design). Larger spaces use
    :class:`CostBinSampler`'s rejection draw with these edges.

    Cost: enumeration ``O(space.size)`` once (about 0.1 s for NAS-Bench-201); per step a table
    lookup.
    """

    def __init__(self, space: SearchSpace, seed: int = 0, edges=None, max_tries: int = 500):
        super().__init__(space, seed, max_tries=max_tries)
        self.edges = check_bins(edges) if edges is not None else balanced_bins(space)
        self.description = f"{len(self.edges) - 1} MACs bins spanning the space"
        self._fallback = None
        if space.size > ENUMERATE_LIMIT or space.restricted_ops:
            self._fallback = CostBinSampler(space, seed, self.edges, max_tries)
            return
        from spos_tf import costs

        self._genes = all_genes(space)
        macs = costs.table(space).macs_many(self._genes)
        bins = np.array([bin_index(self.edges, m) for m in macs])
        self._members = [np.flatnonzero(bins == i) for i in range(len(self.edges) - 1)]
        self._members = [m for m in self._members if m.size]

    def __call__(self, step: int) -> Architecture:
        if self._fallback is not None:
            return self._fallback(step)
        rng = self.rng(step)
        members = self._members[int(rng.integers(len(self._members)))]
        genes = self._genes[members[int(rng.integers(members.size))]]
        return Architecture(tuple(map(tuple, genes.tolist())))


class DistinctSampler(ArchSampler):
    """``--sampling=distinct``: uniform over the distinct networks a space computes, not over its
    encodings (de-isomorphic sampling, after Ning et al., NeurIPS 2021). A pure function of
    ``(seed, step)``.

    In a cell space with a ``none`` op many encodings compute the same network: an op on an
    edge that leaves a zero-valued node, or enters a node that reaches the output through no
    live edge, changes nothing (:meth:`SearchSpace.canonical`). Uniform sampling over
    NAS-Bench-201's 15,625 encodings spends about 41% of the steps on cells with at most 3 live
    edges, which make up about 2% of its 9,445 distinct networks; this sampler draws each
    distinct network equally often and trains it in its canonical form (``none`` on the dead
    edges), so no step decays, moves or recalibrates an op that cannot reach the output (its
    weights, slots and BN statistics stay; tests/models/test_supernet.py checks it). The
    constraint (MACs or latency range) is checked on the canonical form, by rejection as in
    :class:`ArchSampler`. In spaces where every encoding is its own network (chains of blocks,
    cells without ``none``) this is uniform sampling, and the draw is
    :meth:`SearchSpace.sample`'s.

    Raises:
      ValueError: a cell space with ``none`` too large to enumerate (over
        :data:`ENUMERATE_LIMIT` architectures), or one with restricted ops.

    Cost: enumeration and one :meth:`SearchSpace.canonical` per architecture once (about 0.25 s
    for NAS-Bench-201); per step a table lookup.
    """

    def __init__(self, space: SearchSpace, *args, **kwargs):  # ArchSampler's arguments
        super().__init__(space, *args, **kwargs)
        self.networks = None  # distinct canonical forms, in enumeration order; None: uniform
        if not space.cell_nodes or "none" not in space.ops:
            return
        if space.size > ENUMERATE_LIMIT or space.restricted_ops:
            raise ValueError(
                f"--sampling=distinct lists the distinct networks of space {space.name!r} by "
                f"enumeration, which needs at most {ENUMERATE_LIMIT:,} architectures and no "
                f"restricted ops (it has {space.size:,}); use --sampling=uniform"
            )
        self.networks = list(
            dict.fromkeys(
                space.canonical(Architecture(tuple(map(tuple, genes.tolist()))))
                for genes in all_genes(space)
            )
        )

    def _draw(self, rng: np.random.Generator) -> Architecture:
        if self.networks is None:
            return self.space.sample(rng)
        return self.networks[int(rng.integers(len(self.networks)))]


def all_genes(space: SearchSpace) -> np.ndarray:
    """Every architecture of ``space`` as choice indices, ``[space.size, kinds, num_blocks]`` int
    (``kinds``: its searched gene kinds), for spaces small enough to list (callers check
    :data:`ENUMERATE_LIMIT`). Cost: ``O(space.size)`` memory and time."""
    kinds = space.searched_genes
    sizes = [len(space.choices[k]) for k in kinds for _ in range(space.num_blocks)]
    flat = np.stack(np.unravel_index(np.arange(space.size), sizes), axis=1)
    return flat.reshape(space.size, len(kinds), space.num_blocks)


def balanced_bins(space: SearchSpace, num_bins: int = 8) -> tuple:
    """``num_bins`` + 1 equally spaced MACs bin edges spanning the whole space (its fewest to its
    most MACs): the bins of ``--sampling=balanced``, which draws every bin equally often
    (:class:`CostBinSampler`); the reference's 290M..360M bins are a special case of the rule
    with other edges."""
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    low, high = macs_bounds(space)
    return tuple(float(v) for v in np.linspace(low, high, num_bins + 1))


# The reference's bins (megvii-model/SinglePathOneShot, Supernet/train.py): 7 bins of 10M FLOPs
# (multiply-adds) between 290M and 360M, 500 tries per step.
REFERENCE_BINS = tuple(float(e) * 1e6 for e in range(290, 361, 10))
REFERENCE_BIN_TRIES = 500
DRAW_CHUNK = 64  # CostBinSampler draws this many candidate paths per vectorised cost lookup


def check_bins(edges) -> tuple:
    """``edges`` as a tuple of floats if they are >= 2 strictly increasing non-negative numbers.

    Raises:
      ValueError: naming ``--cost_bins`` and quoting the bad value.
    """
    try:
        values = tuple(float(e) for e in edges)
    except (TypeError, ValueError):
        raise ValueError(
            f"--cost_bins must be numbers (MACs bin edges, e.g. 290e6,300e6,310e6), got {edges!r}"
        ) from None
    if (
        len(values) < 2
        or any(not np.isfinite(v) or v < 0 for v in values)
        or any(b <= a for a, b in zip(values, values[1:]))
    ):
        raise ValueError(
            f"--cost_bins must be at least 2 strictly increasing MACs values "
            f"(bin edges, e.g. 290e6,300e6,310e6), got {edges!r}"
        )
    return values


def bin_index(edges, cost: float) -> int:
    """Index ``i`` of the bin ``[edges[i], edges[i + 1])`` holding ``cost`` (the last bin includes
    its upper edge); -1 when ``cost`` lies outside all bins. For histograms: a cost on an inner
    edge counts towards the upper bin (the reference's acceptance test admits it to both)."""
    if cost < edges[0] or cost > edges[-1]:
        return -1
    return min(int(np.searchsorted(edges, cost, side="right")) - 1, len(edges) - 2)


class CostBinSampler(ArchSampler):
    """The reference's FLOPs-binned sampling (``--sampling=cost_bins``).

    Per step: pick one of the bins ``[edges[i], edges[i+1]]`` uniformly, then draw paths uniformly
    until one's MACs lie in it (both edges included, as in the reference) for at most ``max_tries``
    draws; when all fail, one more unconstrained uniform draw is used (the reference's fallback).
    All from ``np.random.default_rng([seed, step])``, so a pure function of ``(seed, step)``.
    Compared with uniform sampling this trains paths of rare (extreme) MACs more often: each bin gets
    about 1/number-of-bins of the steps.

    Args:
      space: the search space. seed: integer seed.
      edges: increasing MACs bin edges (default: the reference's 290M..360M in 10M steps).
      max_tries: draws per step inside the chosen bin (the reference: 500).

    Cost: host side, a vectorised draw and cost lookup per 64 tries (the reference's bins on the
    paper space: see ``benchmarks/sampling_bins.py`` for draws per second).

    Raises:
      ValueError: bad edges or ``max_tries``, or no bin overlaps the space's MACs range (every step
        would fall back to a uniform draw: the bins do not fit this space or resolution).
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        edges=REFERENCE_BINS,
        max_tries: int = REFERENCE_BIN_TRIES,
    ):
        super().__init__(space, seed, max_tries=max_tries)
        from spos_tf import costs

        self.edges = check_bins(edges)
        self.table = costs.table(space)
        low, high = macs_bounds(space)
        if self.edges[-1] < low or self.edges[0] > high:
            raise ValueError(
                f"no --cost_bins bin overlaps the MACs of space {space.name!r} "
                f"({low / 1e6:.4g}M .. {high / 1e6:.4g}M at {space.image_size}x"
                f"{space.image_size}); bins {self.edges[0] / 1e6:.4g}M .. {self.edges[-1] / 1e6:.4g}M"
                f" would make every step fall back to a uniform draw. Pass --cost_bins inside "
                f"that range"
            )
        self.description = (
            f"one of {len(self.edges) - 1} MACs bins between "
            f"{self.edges[0]:g} and {self.edges[-1]:g}"
        )

    def draw(self, step: int) -> tuple:
        """``(architecture, bin index targeted, tries used or -1 for the fallback draw)``.

        The uniform draws are made :data:`DRAW_CHUNK` at a time (one integer array, one
        vectorised cost lookup) and the first that lands in the bin is taken: the same rule as
        drawing one by one, at a fraction of the host time."""
        rng = self.rng(step)
        target = int(rng.integers(len(self.edges) - 1))
        low, high = self.edges[target], self.edges[target + 1]
        space = self.space
        for done in range(0, self.max_tries, DRAW_CHUNK):
            n = min(DRAW_CHUNK, self.max_tries - done)
            genes = np.stack(
                [
                    rng.integers(0, len(space.choices[k]), (n, space.num_blocks))
                    for k in space.searched_genes
                ],
                axis=1,
            )
            macs = self.table.macs_many(genes)
            hits = np.flatnonzero((macs >= low) & (macs <= high))
            if hits.size:
                arch = Architecture(tuple(map(tuple, genes[hits[0]].tolist())))
                return arch, target, done + int(hits[0]) + 1
        return space.sample(rng), target, -1

    def __call__(self, step: int) -> Architecture:
        return self.draw(step)[0]


def macs_bounds(space: SearchSpace) -> tuple:
    """``(fewest, most)`` MACs of any architecture of ``space`` (per-block minima and maxima)."""
    from spos_tf import costs

    table = costs.table(space)
    per_block = table.block_macs.reshape(space.num_blocks, -1)
    return (
        int(table.fixed_macs + per_block.min(axis=1).sum()),
        int(table.fixed_macs + per_block.max(axis=1).sum()),
    )


def macs_range(space: SearchSpace, low: float | None = None, high: float | None = None):
    """A constraint ``low <= MACs(arch) <= high`` (either bound optional)."""
    from spos_tf import costs

    table = costs.CostTable(space)

    def ok(arch):
        m = table.macs(arch)
        return (low is None or m >= low) and (high is None or m <= high)

    return ok


def latency_range(
    space: SearchSpace, latency_table: str, low: float | None = None, high: float | None = None
):
    """A constraint ``low <= predicted latency (ms) <= high`` from a latency lookup table."""
    from spos_tf import costs

    table = costs.table(space, latency_table)

    def ok(arch):
        ms = table.latency_ms(arch)
        return (low is None or ms >= low) and (high is None or ms <= high)

    return ok


def all_of(*constraints):
    """The conjunction of constraints (None entries ignored; None if none is left)."""
    kept = [c for c in constraints if c is not None]
    if not kept:
        return None
    return lambda arch: all(c(arch) for c in kept)
