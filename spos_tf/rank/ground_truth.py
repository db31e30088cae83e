"""Published accuracies of NAS-Bench-201 cells: the ground truth a supernet's ranking is measured
against (``spos_tf.rank --ground_truth=<csv>[:column]``).

Plain Python and NumPy, no TensorFlow. The table is a CSV with one row per cell (the layout of
``nats_tss_test_accuracy.csv``, see the README that ships with the NAS-Bench-201 data): accuracy columns
(e.g. ``CIFAR10TestAccuracy200Epochs``, in percent), ``ArchitectureString`` (the benchmark's string
of the cell, :func:`spos_tf.spaces.nasbench201.to_string`) and ``UniqueString`` (a canonical form of the
computation: cells with equal strings compute the same function, "isomorphic" cells).

Example::

    table = load("/data/nats_tss_test_accuracy.csv:CIFAR100TestAccuracy200Epochs")
    table.accuracy((3, 3, 4, 1, 3, 1))     # op indices in nasbench201.EDGES order -> percent
    table.percentile(93.0)                  # share of distinct cells at or below 93.0
    reps = table.distinct()                 # one Cell per UniqueString, first in file order

Conventions:

- **Distinct cells.** Each UniqueString counts once. Its representative is the first row of that
  UniqueString in file order, and the accuracy of a distinct cell is its representative's (the
  benchmark trained isomorphic cells separately, so their accuracies differ slightly; we do not
  average them).
- **Percentile.** ``percentile(a)`` is the fraction (0..1, not percent) of distinct cells whose
  accuracy is ``<= a``: the best distinct cell has 1.0, a value below every cell 0.0, and ties
  count as at-or-below.

Costs: :func:`load` parses the 15,625-row table in about 0.1 s (the csv module plus one
:func:`~spos_tf.spaces.nasbench201.from_string` per row); every lookup is a dict access, a percentile a
binary search.
"""

from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np

from spos_tf.spaces import nasbench201

DEFAULT_COLUMN = "CIFAR10TestAccuracy200Epochs"
STRING_COLUMN = "ArchitectureString"
KEY_COLUMN = "UniqueString"
FLAG = "--ground_truth"


class MissingCellError(KeyError, ValueError):
    """A cell that the table does not hold (a ``KeyError`` and a ``ValueError``, so callers that
    catch either see it); the message names the cell in both text forms."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclasses.dataclass(frozen=True)
class Cell:
    """One row of the table: the cell's op indices (into ``nasbench201.OPS``, in ``EDGES`` order),
    its benchmark string, its accuracy (the chosen column, table units) and its UniqueString."""

    ops: tuple
    string: str
    accuracy: float
    key: str

    @property
    def text(self) -> str:
        """Our text form of the cell (``"3,3,4,1,3,1"``)."""
        return ",".join(str(o) for o in self.ops)


def _describe(ops) -> str:
    return f"{','.join(str(o) for o in ops)!r} ({nasbench201.to_string(ops)})"


class GroundTruth:
    """The accuracies of one column of a benchmark table, by cell. Build it with :func:`load`."""

    def __init__(self, cells, path: str, column: str, columns: tuple):
        self.path = os.fspath(path)
        self.column = column
        self.columns = tuple(columns)  # the accuracy columns the file offers
        self._by_ops = {}
        for cell in cells:
            if cell.ops in self._by_ops:
                raise ValueError(
                    f"{FLAG}={self.path!r}: the cell {cell.string} appears twice; a table holds "
                    f"each cell once"
                )
            self._by_ops[cell.ops] = cell
        reps = {}
        for cell in self._by_ops.values():  # dicts keep file order
            reps.setdefault(cell.key, cell)
        self._distinct = tuple(reps.values())
        self._rep = reps
        self._sorted = np.sort(np.array([c.accuracy for c in self._distinct], float))

    @property
    def file_name(self) -> str:
        """The table's file name without its folder (what ``ranking.json`` records)."""
        return os.path.basename(self.path)

    def __len__(self) -> int:
        return len(self._by_ops)

    @property
    def num_distinct(self) -> int:
        return len(self._distinct)

    def __contains__(self, cell) -> bool:
        try:
            return _ops_of(cell) in self._by_ops
        except ValueError:
            return False

    def cell(self, cell) -> Cell:
        """The :class:`Cell` of ``cell`` (op indices or names, or a benchmark string).

        Raises:
          MissingCellError: the table lacks it (the message names both text forms and the file).
          ValueError: ``cell`` is no NAS-Bench-201 cell.
        """
        ops = _ops_of(cell)
        try:
            return self._by_ops[ops]
        except KeyError:
            raise MissingCellError(
                f"the cell {_describe(ops)} is not in the ground-truth table "
                f"{FLAG}={self.path!r} ({len(self)} cells); use the complete table, or rank "
                f"only cells it holds"
            ) from None

    def accuracy(self, cell) -> float:
        """The table's accuracy (column :attr:`column`, table units) of ``cell`` itself (op
        indices in ``nasbench201.EDGES`` order, op names, or a benchmark string). Raises as
        :meth:`cell`."""
        return self.cell(cell).accuracy

    def key(self, cell) -> str:
        """The UniqueString of ``cell``: equal keys, same function. Raises as :meth:`cell`."""
        return self.cell(cell).key

    def representative(self, cell) -> Cell:
        """The distinct cell (first in file order) computing the same function as ``cell``."""
        return self._rep[self.key(cell)]

    def distinct(self) -> tuple:
        """One :class:`Cell` per UniqueString, the first of each in file order, in file order."""
        return self._distinct

    def percentile(self, accuracy: float) -> float:
        """The fraction (0..1) of the table's distinct cells (their representatives' accuracies)
        whose accuracy is ``<= accuracy``; see the module docstring."""
        count = np.searchsorted(self._sorted, float(accuracy), side="right")
        return float(count) / len(self._sorted)

    def merge_isomorphic(self, cells) -> tuple:
        """``(kept, merged)``: ``cells`` (any form :meth:`cell` takes) with each UniqueString kept
        once (its first occurrence in ``cells``), and ``(dropped, kept)`` pairs of the others, as
        they were given. Raises as :meth:`cell`."""
        first, kept, merged = {}, [], []
        for cell in cells:
            key = self.key(cell)
            if key in first:
                merged.append((cell, first[key]))
            else:
                first[key] = cell
                kept.append(cell)
        return kept, merged


def _ops_of(cell) -> tuple:
    """Op indices of a benchmark string or a sequence of op indices / names."""
    if isinstance(cell, str):
        if nasbench201.is_string(cell):
            return nasbench201.from_string(cell)
        cell = [int(v) for v in cell.split(",")]
    names = [o if isinstance(o, str) else int(o) for o in cell]
    if any(isinstance(o, int) and not 0 <= o < len(nasbench201.OPS) for o in names):
        raise ValueError(
            f"NAS-Bench-201 op indices lie in 0..{len(nasbench201.OPS) - 1}, got {tuple(cell)}"
        )
    nasbench201.to_string(names)  # raises ValueError naming a bad length or op name
    return tuple(nasbench201.OPS.index(o) if isinstance(o, str) else o for o in names)


def split_spec(spec: str) -> tuple:
    """``"<csv path>[:column]"`` -> ``(path, column or None)``. A spec naming an existing file is
    all path (so a path may contain ``:``)."""
    spec = os.fspath(spec)
    if os.path.exists(spec):
        return spec, None
    path, sep, column = spec.rpartition(":")
    if sep and path and column and os.sep not in column:
        return path, column
    return spec, None


def load(spec: str) -> GroundTruth:
    """The table of ``spec`` = ``"<csv path>[:column]"`` (default column
    :data:`DEFAULT_COLUMN`).

    Raises:
      FileNotFoundError: no such file (the message names ``--ground_truth``).
      ValueError: an unknown column (the message lists the file's accuracy columns), no
        ``ArchitectureString``/``UniqueString`` column, a malformed row (its line number), or a
        cell listed twice.
    """
    path, column = split_spec(spec)
    column = column or DEFAULT_COLUMN
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{FLAG}={spec!r}: no file {path!r}; pass the benchmark's CSV (e.g. "
            f"nats_tss_test_accuracy.csv), optionally followed by :<accuracy column>"
        )
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None) or []
        needed = [c for c in (STRING_COLUMN, KEY_COLUMN) if c not in header]
        if needed:
            raise ValueError(
                f"{FLAG}={spec!r}: {path} has no column(s) {needed} (columns: {header}); it is "
                f"not a NAS-Bench-201 table"
            )
        accuracy_columns = tuple(c for c in header if c not in (STRING_COLUMN, KEY_COLUMN))
        if column not in accuracy_columns:
            raise ValueError(
                f"{FLAG}={spec!r}: {path} has no accuracy column {column!r}; choose one of "
                f"{list(accuracy_columns)} (as {path}:<column>)"
            )
        a, s, k = header.index(column), header.index(STRING_COLUMN), header.index(KEY_COLUMN)
        cells = []
        for line, row in enumerate(reader, 2):
            if not row:
                continue
            try:
                cells.append(Cell(nasbench201.from_string(row[s]), row[s], float(row[a]), row[k]))
            except (ValueError, IndexError) as e:
                raise ValueError(f"{FLAG}: {path}:{line}: malformed row ({e})") from None
    if not cells:
        raise ValueError(f"{FLAG}={spec!r}: {path} holds no cells")
    return GroundTruth(cells, path, column, accuracy_columns)
