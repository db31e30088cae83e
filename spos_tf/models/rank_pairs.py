"""Ranking distillation from a cost prior (``--sampling=rank_pairs``): pairs of paths per step.

RD-NAS (Dong et al., ICASSP 2023) trains the supernet on two paths per step and adds a margin
ranking loss that asks the path a zero-cost "teacher" prefers to have the lower loss, by a margin
that grows with how far apart the teacher puts the two ("group distance"); its margin subnet
sampler draws the two paths from different teacher groups. Here the teacher is MACs (free, known
for every path of every space): the path with more MACs should have the lower training loss.

:class:`RankPairSampler` draws the pair, a pure function of ``(seed, step)``, and states the
margin; :func:`spos_tf.models.step.ranking_hinge` is the loss and
:func:`spos_tf.models.step.train_step` the step (both paths forward and backward on the same
batch, one masked update of the union of their weights).

Not RD-NAS's exact recipe: its teachers are zero-cost proxies (and its released code's margins
and weights are not reproduced here); MACs is the teacher, groups are MACs quantiles and the
margin per group step and the loss weight are this library's defaults (``--rank_loss_margin``,
``--rank_loss_weight``), to be measured (``benchmarks/RESULTS.md``).

Cost: two forward and backward passes per step (about 2x a uniform step) and activations of both
paths held at once; host side, one group lookup per draw.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from spos_tf.models.sampling import ENUMERATE_LIMIT, ArchSampler, all_genes
from spos_tf.spaces.space import Architecture, SearchSpace

RANK_GROUPS = 8  # MACs quantile groups of the margin sampler
GROUP_SAMPLE = 4096  # paths drawn (seed 0) to place the group edges in spaces too big to list
PAIR_TRIES = 100  # draws of the second path looking for another group than the first's


def group_edges(space: SearchSpace, groups: int = RANK_GROUPS) -> np.ndarray:
    """The ``groups - 1`` inner MACs edges of ``groups`` equal-count groups of the space's paths
    (quantiles; every path of spaces up to ``ENUMERATE_LIMIT`` without restricted ops, else
    ``GROUP_SAMPLE`` uniform draws of a fixed generator): a function of the space alone. Paths of
    equal MACs always share a group; tied quantiles leave some groups empty."""
    from spos_tf import costs

    if groups < 2:
        raise ValueError(f"rank_pairs needs at least 2 MACs groups, got {groups}")
    table = costs.table(space)
    if space.size <= ENUMERATE_LIMIT and not space.restricted_ops:
        macs = table.macs_many(all_genes(space))
    else:
        rng = np.random.default_rng(0)
        macs = np.array([table.macs(space.sample(rng)) for _ in range(GROUP_SAMPLE)])
    return np.quantile(np.asarray(macs, np.float64), np.arange(1, groups) / groups)


class RankPairSampler(ArchSampler):
    """RD-NAS's margin subnet sampler with MACs as the teacher: two paths per step.

    Per step: path ``a`` uniformly (meeting the constraint, if any); then paths ``b`` until one
    falls in another MACs group than ``a`` (at most :data:`PAIR_TRIES`; when every try shares
    ``a``'s group, as under a MACs range inside one group, the last one is kept, with margin 0).
    The step's ranking margin is ``margin * |group(a) - group(b)|``. All from
    ``np.random.default_rng([seed, step])``.

    Args:
      space, seed, constraint, max_tries, description: as :class:`ArchSampler`.
      margin: ranking margin per group step (in units of the training loss).
      weight: the ranking loss's weight in the step's objective.
      groups: MACs quantile groups (:func:`group_edges`).

    ``paths_per_step`` is 2 and ``pairs`` is True: :func:`spos_tf.models.step.train_step` then runs
    the pair step, and the masked optimizer moves the union of the two paths.
    """

    pairs = True
    paths_per_step = 2

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Callable[[Architecture], bool] | None = None,
        margin: float = 0.02,
        weight: float = 1.0,
        groups: int = RANK_GROUPS,
        max_tries: int = 1000,
        description: str = "",
    ):
        super().__init__(space, seed, constraint, max_tries, description)
        if not (np.isfinite(margin) and margin >= 0 and np.isfinite(weight) and weight >= 0):
            raise ValueError(
                f"rank_pairs needs a finite margin >= 0 and weight >= 0, got margin {margin!r} "
                f"and weight {weight!r} (--rank_loss_margin, --rank_loss_weight)"
            )
        from spos_tf import costs

        self.margin, self.weight = float(margin), float(weight)
        self.edges = group_edges(space, groups)
        self._table = costs.table(space)

    def group(self, arch: Architecture) -> int:
        """The MACs group of ``arch`` (0 = fewest MACs)."""
        return int(np.searchsorted(self.edges, self._table.macs(arch), side="right"))

    def pair(self, step: int) -> tuple:
        """``(a, b, margin)`` of ``step``."""
        rng = self.rng(step)
        a = self.accepted(rng, step)
        group_a = self.group(a)
        for _ in range(PAIR_TRIES):
            b = self.accepted(rng, step)
            group_b = self.group(b)
            if group_b != group_a:
                break
        return a, b, self.margin * abs(group_b - group_a)

    def paths(self, step: int) -> list:
        """The two architectures of ``step``."""
        return list(self.pair(step)[:2])

    def __call__(self, step: int) -> Architecture:
        return self.pair(step)[0]
