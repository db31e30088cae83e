"""A latency lookup table of a search space: its keys, and predictions from a built table.

Plain Python and NumPy (no TensorFlow, no TFLite): the search, the cost model and the supernet's
sampler load tables through :class:`LatencyTable`; :mod:`spos_tf.latency` builds and validates
them (timing small models). Prediction of an architecture = ``constant_ms`` + the sum of the
entries of its stem, blocks and head; cost: one vectorised lookup per architecture.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

from spos_tf.spaces import ops as ops_lib
from spos_tf.spaces.space import GENE_KINDS, Architecture, SearchSpace, mid_channels

FORMAT = 1


# ------------------------------------------------------------------------------- keys
def block_key(op: str, cin: int, cout: int, mid: int, stride: int, hw: int) -> str:
    return f"{op}|{cin}|{cout}|{mid}|{stride}|{hw}"


def _free(op: str, cin: int, cout: int, mid: int, stride: int, hw: int) -> bool:
    """An op without primitives (identity skip, zero op) costs nothing."""
    return not ops_lib.get_op(op).prims(cin, cout, mid, stride, hw)


def configurations(space: SearchSpace) -> dict:
    """``{key: ("stem" | "head" | "block", (op, cin, cout, mid, stride, hw) or None)}``: every
    distinct configuration a network of ``space`` can use, stem first, then blocks in order."""
    _check_space(space)
    out = {"stem": ("stem", None)}
    for b, (cin, cout, stride, hw) in enumerate(space.block_layout()):
        for o in space.allowed_ops(b):
            for scale in space.channel_scales:
                cfg = (space.ops[o], cin, cout, mid_channels(space, cout, scale), stride, hw)
                out.setdefault(block_key(*cfg), ("block", cfg))
    out["head"] = ("head", None)
    return out


def arch_keys(space: SearchSpace, arch: Architecture) -> list:
    """The table keys whose entries sum to ``arch``'s latency (stem, blocks, head)."""
    keys = ["stem"]
    for choice, (cin, cout, stride, hw) in zip(space.decode(arch), space.block_layout()):
        keys.append(
            block_key(
                choice["op"], cin, cout, mid_channels(space, cout, choice["channel"]), stride, hw
            )
        )
    return keys + ["head"]


def _check_space(space: SearchSpace) -> None:
    if space.quantized:
        raise ValueError(
            f"latency tables cover float spaces; {space.name!r} searches bit widths "
            f"(time its int8 TFLite export with --dtype=int8 on a float space)"
        )


# ------------------------------------------------------------------------------- the table
class LatencyTable:
    """A loaded lookup table: ``predict_ms(arch)`` = ``constant_ms`` + sum of entries.

    Args:
      path: the JSON written by ``build``.
      space: the space to predict for (default: the one the table was built for); every
        configuration of it must be in the table.
    Raises:
      ValueError: not a table, an unfinished table, or one that lacks configurations of ``space``
        (the message names the build command).
    """

    def __init__(self, path: str, space: Optional[SearchSpace] = None):
        self.path = os.fspath(path)
        try:
            with open(self.path) as f:
                record = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"latency table {self.path!r} does not exist; build it with "
                f"python -m spos_tf.latency build --space=... "
                f"--out={self.path}"
            ) from None
        except json.JSONDecodeError as e:
            raise ValueError(f"latency table {self.path!r} is not JSON ({e})") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError(f"{self.path!r} is not a spos_tf latency table (format {FORMAT})")
        self.header, self.entries = record["header"], record["entries"]
        if record.get("constant_ms") is None:
            raise ValueError(
                f"latency table {self.path!r} is unfinished (no fitted constant); "
                f"rerun its build command to continue it: {self.header['command']}"
            )
        self.constant_ms = float(record["constant_ms"])
        self.space = space if space is not None else space_of(self.header)
        missing = [k for k in configurations(self.space) if k not in self.entries]
        if missing:
            raise ValueError(
                f"latency table {self.path!r} (space {self.header['space']!r}, "
                f"overrides {self.header['space_overrides']}) lacks {len(missing)} "
                f"configuration(s) of space {self.space.name!r}, e.g. {missing[:3]}; "
                f"build a table with that space's flags"
            )
        # Host-side lookup array [block, op, channel] in ms, plus the fixed part.
        s = self.space
        self._blocks = np.zeros((s.num_blocks, len(s.ops), len(s.channel_scales)))
        for b, (cin, cout, stride, hw) in enumerate(s.block_layout()):
            for o in s.allowed_ops(b):
                for c, scale in enumerate(s.channel_scales):
                    key = block_key(s.ops[o], cin, cout, mid_channels(s, cout, scale), stride, hw)
                    self._blocks[b, o, c] = self.entries[key]["ms"]
        self._fixed = self.constant_ms + self.entries["stem"]["ms"] + self.entries["head"]["ms"]
        self._rows = [GENE_KINDS.index(k) for k in s.searched_genes]

    def predict_ms(self, arch: Architecture) -> float:
        """Predicted latency of ``arch`` in milliseconds."""
        idx = np.zeros((len(GENE_KINDS), self.space.num_blocks), np.int64)
        idx[self._rows] = arch.genes
        return float(
            self._fixed + self._blocks[np.arange(self.space.num_blocks), idx[0], idx[1]].sum()
        )

    def describe(self) -> str:
        h = self.header
        return (
            f"{h['backend']} {h['dtype']} batch {h['batch']} threads {h['threads']} on "
            f"{h['device']}"
        )


def space_of(header: dict) -> SearchSpace:
    from spos_tf import spaces

    overrides = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in header.get("space_overrides", {}).items()
    }
    return spaces.get(header["space"], **overrides)


def sum_ms(space: SearchSpace, entries: dict, arch: Architecture) -> float:
    return float(sum(entries[k]["ms"] for k in arch_keys(space, arch)))


def random_archs(space: SearchSpace, n: int, seed: int) -> list:
    rng = np.random.default_rng([seed, n])
    archs = []
    while len(archs) < n:
        arch = space.sample(rng)
        if arch not in archs or space.size < 2 * n:
            archs.append(arch)
    return archs
