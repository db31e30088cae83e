"""Architecture sampling for supernet training: a pure function of (seed, step).

``ArchSampler(space, seed)(step)`` draws uniformly, optionally rejecting architectures that fail a
constraint (e.g. MACs in a range), with a bounded number of tries. Because the draw depends only on
``(seed, step)``, a resumed run replays exactly the same architectures, and every replica and worker
of a distributed run draws the same architecture for a global step without communicating.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from spos_tf.space import Architecture, SearchSpace


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

    def __init__(self, space: SearchSpace, seed: int = 0,
                 constraint: Callable[[Architecture], bool] | None = None, max_tries: int = 1000,
                 description: str = ""):
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries}")
        self.space, self.seed, self.constraint = space, int(seed), constraint
        self.max_tries, self.description = int(max_tries), description

    def rng(self, step: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(step)])

    def __call__(self, step: int) -> Architecture:
        rng = self.rng(step)
        for _ in range(self.max_tries):
            arch = self.space.sample(rng)
            if self.constraint is None or self.constraint(arch):
                return arch
        raise InfeasibleConstraintError(
            f"no architecture of space {self.space.name!r} met the sampling constraint "
            f"{self.description or self.constraint} in {self.max_tries} tries (step {step}); "
            f"relax the constraint (e.g. the MACs range) or raise max_tries")

    def indices(self, step) -> np.ndarray:
        """int32 ``[4, num_blocks]`` choice indices of the architecture of ``step``."""
        return self.space.indices(self(int(step)))


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


def macs_range(space: SearchSpace, low: float | None = None, high: float | None = None):
    """A constraint ``low <= MACs(arch) <= high`` (either bound optional)."""
    from spos_tf import costs

    table = costs.CostTable(space)

    def ok(arch):
        m = table.macs(arch)
        return (low is None or m >= low) and (high is None or m <= high)

    return ok


def latency_range(space: SearchSpace, latency_table: str, low: float | None = None,
                  high: float | None = None):
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
