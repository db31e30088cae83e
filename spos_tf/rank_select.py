"""Which architectures a ranking compares (``spos_tf.rank --select``), and which of them one
process works on (``--shard=i/n``).

Plain Python and NumPy over a :class:`~spos_tf.space.SearchSpace`: no TensorFlow. Every selection is
deterministic in its inputs (the seed for ``stratified``, the file for ``file``/``history``).
"""

from __future__ import annotations

import csv
import math
import os

import numpy as np

from spos_tf import costs as costs_lib
from spos_tf.space import SearchSpace

SELECTIONS = ("stratified", "file", "history")


def parse_shard(text: str) -> tuple:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``.

    Raises:
      ValueError: anything else.
    """
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise ValueError(f"--shard must be i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return i, n


def shard_members(num_archs: int, shard: str) -> list:
    """Indices of the architectures that ``shard`` ("i/n") works on: ``j % n == i``."""
    i, n = parse_shard(shard)
    return [j for j in range(num_archs) if j % n == i]


def select_stratified(space: SearchSpace, num: int, seed: int, pool_size: int = 5000) -> list:
    """``num`` distinct architectures spread evenly over the MACs range of the space.

    Draws ``pool_size`` random architectures (``numpy.random.default_rng([seed, 0])``), splits
    their MACs range into ``num`` equal-width strata and takes one random member of each (for an
    empty stratum the unused pool member closest to its centre), so the cheapest and the most
    expensive ends of the space are represented. Deterministic in ``(space, num, seed,
    pool_size)``.

    Raises:
      ValueError: the space has fewer than ``num`` distinct architectures in the pool.
    """
    rng = np.random.default_rng([seed, 0])
    table = costs_lib.table(space)
    pool = list(dict.fromkeys(space.sample(rng) for _ in range(max(pool_size, num))))
    if len(pool) < num:
        raise ValueError(
            f"space {space.name!r} gave only {len(pool)} distinct architectures in "
            f"{pool_size} draws; lower --num_archs below that"
        )
    macs = np.array([table.macs(a) for a in pool], float)
    low, high = macs.min(), macs.max()
    edges = np.linspace(low, high, num + 1)
    chosen: list = []
    used = set()
    for s in range(num):
        inside = [
            j
            for j in range(len(pool))
            if j not in used
            and (edges[s] <= macs[j] < edges[s + 1] or (s == num - 1 and macs[j] == high))
        ]
        if inside:
            j = inside[int(rng.integers(len(inside)))]
        else:
            centre = (edges[s] + edges[s + 1]) / 2
            free = [j for j in range(len(pool)) if j not in used]
            j = min(free, key=lambda k: (abs(macs[k] - centre), k))
        used.add(j)
        chosen.append(pool[j])
    return sorted(chosen, key=lambda a: (table.macs(a), str(a)))


def read_archs_file(space: SearchSpace, path: str) -> list:
    """Architectures of a text file, one per line in text form (``#`` comments, blank lines and
    repeats ignored).

    Raises:
      ValueError: missing file or a line that is not an architecture of ``space`` (its number).
    """
    if not os.path.isfile(path):
        raise ValueError(f"--archs_file={path!r} does not exist")
    archs = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.split("#")[0].strip()
            if not line:
                continue
            try:
                archs.append(space.parse(line))
            except ValueError as e:
                raise ValueError(f"{path}:{number}: {e}") from None
    return list(dict.fromkeys(archs))


def select_from_history(space: SearchSpace, path: str, num: int) -> list:
    """The ``ceil(num / 2)`` best and ``floor(num / 2)`` worst distinct architectures of a
    search's ``history.csv`` by held-out accuracy.

    Raises:
      ValueError: missing file, missing columns, or fewer than ``num`` distinct architectures.
    """
    if not os.path.isfile(path):
        raise ValueError(f"--archs_file={path!r} does not exist (a search's history.csv)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"arch", "accuracy"} <= set(rows[0]):
        raise ValueError(f"{path} has no 'arch' and 'accuracy' columns: not a history.csv")
    best = {}
    for row in rows:
        arch = space.parse(row["arch"])
        best[arch] = max(best.get(arch, -math.inf), float(row["accuracy"]))
    if len(best) < num:
        raise ValueError(
            f"{path} holds {len(best)} distinct architectures, fewer than --num_archs={num}"
        )
    ordered = sorted(best, key=lambda a: (-best[a], str(a)))
    top = -(-num // 2)
    return ordered[:top] + ordered[len(ordered) - (num - top) :]


def select(config, space: SearchSpace) -> list:
    """The architectures ``config`` (a :class:`~spos_tf.rank_lib.RankConfig`) asks for."""
    if config.select == "stratified":
        return select_stratified(space, config.num_archs, config.seed, config.pool_size)
    if config.select == "history":
        return select_from_history(space, config.archs_file, config.num_archs)
    archs = read_archs_file(space, config.archs_file)
    if len(archs) < 2:
        raise ValueError(
            f"--archs_file={config.archs_file!r} holds {len(archs)} architecture(s); "
            f"ranking needs at least 2"
        )
    return archs[: config.num_archs]
