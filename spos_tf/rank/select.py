"""Which architectures a ranking compares (``spos_tf.rank --select``), and which of them one
process works on (``--shard=i/n``).

Plain Python and NumPy over a :class:`~spos_tf.spaces.space.SearchSpace`: no TensorFlow. Every selection is
deterministic in its inputs (the seed for ``stratified``/``random``, the file for
``file``/``history``). With a ground-truth table (``--ground_truth``, NAS-Bench-201) selections
rank distinct cells: cells of one UniqueString compute the same function and count once.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from spos_tf import costs as costs_lib
from spos_tf.spaces.archs_file import read_archs_file
from spos_tf.spaces.space import Architecture, SearchSpace

SELECTIONS = ("stratified", "random", "file", "history")


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


def _stratify(macs: np.ndarray, num: int, rng: np.random.Generator) -> list:
    """Indices of ``num`` distinct pool members spread over the range of ``macs`` (one per pool
    member): the range is split into ``num`` equal-width strata and each gives one random unused
    member (an empty stratum: the unused member closest to its centre, lowest index on ties)."""
    low, high = macs.min(), macs.max()
    edges = np.linspace(low, high, num + 1)
    used = np.zeros(len(macs), bool)
    chosen = []
    for s in range(num):
        inside = (edges[s] <= macs) & (macs < edges[s + 1])
        if s == num - 1:
            inside |= macs == high
        inside = np.flatnonzero(inside & ~used)
        if len(inside):
            j = int(inside[int(rng.integers(len(inside)))])
        else:
            centre = (edges[s] + edges[s + 1]) / 2
            free = np.flatnonzero(~used)
            j = int(free[np.argmin(np.abs(macs[free] - centre))])
        used[j] = True
        chosen.append(j)
    return chosen


def select_stratified(space: SearchSpace, num: int, seed: int, pool_size: int = 5000) -> list:
    """``num`` distinct architectures spread evenly over the MACs range of the space.

    Draws ``pool_size`` random architectures (``numpy.random.default_rng([seed, 0])``), splits
    their MACs range into ``num`` equal-width strata and takes one random member of each (for an
    empty stratum the unused pool member closest to its centre), so the cheapest and the most
    expensive ends of the space are represented. Deterministic in ``(space, num, seed,
    pool_size)``. Sorted by (MACs, text).

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
    chosen = [pool[j] for j in _stratify(macs, num, rng)]
    return sorted(chosen, key=lambda a: (table.macs(a), str(a)))


def select_random(space: SearchSpace, num: int, seed: int, pool_size: int = 5000) -> list:
    """``num`` distinct architectures drawn uniformly from the space
    (``numpy.random.default_rng([seed, 1])``, repeats redrawn, at most ``max(pool_size, num)``
    draws), sorted by (MACs, text). Deterministic in its arguments.

    Raises:
      ValueError: fewer than ``num`` distinct architectures in those draws.
    """
    rng = np.random.default_rng([seed, 1])
    table = costs_lib.table(space)
    chosen: dict = {}
    for _ in range(max(pool_size, num)):
        chosen.setdefault(space.sample(rng), None)
        if len(chosen) == num:
            break
    if len(chosen) < num:
        raise ValueError(
            f"space {space.name!r} gave only {len(chosen)} distinct architectures in "
            f"{max(pool_size, num)} draws; lower --num_archs below that"
        )
    return sorted(chosen, key=lambda a: (table.macs(a), str(a)))


# ------------------------------------------------------------- with a ground-truth table
def _arch_of(space: SearchSpace, cell) -> Architecture:
    return space.validate(Architecture((tuple(cell.ops),)))


def _cell_ops(arch: Architecture) -> tuple:
    return tuple(arch.genes[0])


def select_distinct(space: SearchSpace, truth, how: str, num: int, seed: int, pool_size: int):
    """``num`` distinct cells of the ground-truth table ``truth``
    (:class:`spos_tf.rank.ground_truth.GroundTruth`) as architectures of ``space``, each UniqueString
    at most once (its representative: first row in file order), sorted by (MACs, text).

    ``how="stratified"``: :func:`select_stratified` over a pool of ``min(pool_size, distinct
    cells)`` representatives drawn without replacement (``default_rng([seed, 0])``);
    ``how="random"``: uniform among all representatives (``default_rng([seed, 1])``, without
    replacement). Deterministic in ``(truth, num, seed, pool_size)``; costs about 0.1 s for the
    6,466 distinct cells of NAS-Bench-201.

    Raises:
      ValueError: the table has fewer than ``num`` distinct cells.
    """
    reps = truth.distinct()
    if len(reps) < num:
        raise ValueError(
            f"the ground-truth table {truth.file_name} holds {len(reps)} distinct cells, fewer "
            f"than --num_archs={num}"
        )
    table = costs_lib.table(space)
    if how == "stratified":
        rng = np.random.default_rng([seed, 0])
        take = rng.choice(len(reps), min(pool_size, len(reps)), replace=False)
        pool = [_arch_of(space, reps[j]) for j in np.sort(take)]
        macs = np.array([table.macs(a) for a in pool], float)
        chosen = [pool[j] for j in _stratify(macs, num, rng)]
    elif how == "random":
        rng = np.random.default_rng([seed, 1])
        chosen = [_arch_of(space, reps[j]) for j in rng.choice(len(reps), num, replace=False)]
    else:
        raise ValueError(f"select_distinct draws 'stratified' or 'random', not {how!r}")
    return sorted(chosen, key=lambda a: (table.macs(a), str(a)))


def merge_isomorphic(archs: list, truth, stream=None, source: str = "") -> list:
    """``archs`` with each UniqueString of ``truth`` kept once (its first occurrence); prints a
    note naming each dropped architecture and the one kept for it to ``stream``.

    Raises:
      spos_tf.rank.ground_truth.MissingCellError: a cell the table lacks (naming it).
    """
    kept, merged = truth.merge_isomorphic([_cell_ops(a) for a in archs])
    if merged and stream is not None:
        print(
            f"Note: {len(merged)} architecture(s){source} compute the same function as an earlier "
            f"one (same UniqueString in {truth.file_name}) and are ranked once: "
            + "; ".join(
                f"{','.join(map(str, d))} = {','.join(map(str, k))}" for d, k in merged[:10]
            )
            + (" ..." if len(merged) > 10 else ""),
            file=stream,
        )
    by_ops = {_cell_ops(a): a for a in reversed(archs)}
    return [by_ops[ops] for ops in kept]


def select_from_history(space: SearchSpace, path: str, num: int, key=None) -> list:
    """The ``ceil(num / 2)`` best and ``floor(num / 2)`` worst distinct architectures of a
    search's ``history.csv`` by held-out accuracy.

    Args:
      key: optional ``arch -> group``: architectures of one group count once (as the group's
        best-scored member), e.g. the UniqueString of a ground-truth table; default: each
        architecture is its own group.

    Raises:
      ValueError: missing file, missing columns, or fewer than ``num`` distinct groups.
    """
    if not os.path.isfile(path):
        raise ValueError(f"--archs_file={path!r} does not exist (a search's history.csv)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"arch", "accuracy"} <= set(rows[0]):
        raise ValueError(f"{path} has no 'arch' and 'accuracy' columns: not a history.csv")
    best: dict = {}  # group -> (best accuracy, its architecture)
    for row in rows:
        arch = space.parse(row["arch"])
        group = arch if key is None else key(arch)
        accuracy = float(row["accuracy"])
        if group not in best or accuracy > best[group][0]:
            best[group] = (accuracy, arch)
    if len(best) < num:
        what = "distinct architectures" if key is None else "distinct cells"
        raise ValueError(f"{path} holds {len(best)} {what}, fewer than --num_archs={num}")
    ordered = [a for _, a in sorted(best.values(), key=lambda t: (-t[0], str(t[1])))]
    top = -(-num // 2)
    return ordered[:top] + ordered[len(ordered) - (num - top) :]


def select(config, space: SearchSpace, truth=None, stream=None) -> list:
    """The architectures ``config`` (a :class:`~spos_tf.rank.run.RankConfig`) asks for.

    With ``truth`` (a :class:`spos_tf.rank.ground_truth.GroundTruth`) every selection ranks distinct
    cells only (each UniqueString once): ``stratified``/``random`` draw among the table's
    representatives (:func:`select_distinct`), ``history`` groups by UniqueString, ``file``
    merges isomorphic lines (:func:`merge_isomorphic`, with a note on ``stream``).

    Raises:
      ValueError: as the selection functions; ``MissingCellError`` (also a ValueError) for a
        ``file``/``history`` cell the table lacks.
    """
    if truth is not None and config.select in ("stratified", "random"):
        return select_distinct(
            space, truth, config.select, config.num_archs, config.seed, config.pool_size
        )
    if config.select == "stratified":
        return select_stratified(space, config.num_archs, config.seed, config.pool_size)
    if config.select == "random":
        return select_random(space, config.num_archs, config.seed, config.pool_size)
    if config.select == "history":
        key = None if truth is None else (lambda a: truth.key(_cell_ops(a)))
        return select_from_history(space, config.archs_file, config.num_archs, key=key)
    archs = read_archs_file(space, config.archs_file)
    if truth is not None:
        archs = merge_isomorphic(archs, truth, stream, f" of {config.archs_file}")
    if len(archs) < 2:
        raise ValueError(
            f"--archs_file={config.archs_file!r} holds {len(archs)} distinct architecture(s); "
            f"ranking needs at least 2"
        )
    return archs[: config.num_archs]
