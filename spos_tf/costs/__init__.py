"""Analytic cost model: MACs ("FLOPs" in the paper), parameters and BitOps of any architecture.

Counts come from the same primitive lists (:mod:`spos_tf.spaces.ops`) that the layer code allocates, so the
model and its cost cannot drift apart. Conventions (paper and reference code):

- MACs: convolution and fully-connected layers only: ``out_hw^2 * k^2 * cin/groups * cout`` per
  conv, ``cin * cout`` per FC (BN, ReLU, pooling, shuffle and additions are free).
- params: trainable parameters: conv/FC weights (and FC bias), BN gamma/beta where BN is affine
  (the stand-alone network); BN moving statistics are not parameters. ``supernet_params`` counts
  every choice at its largest width with non-affine BN, as the supernet allocates them.
- BitOps (quantized spaces): sum over quantized layers of ``MACs * weight_bits * act_bits``; inside a
  choice block every conv uses the block's weight bits and its activations the block's activation
  bits; the first conv and the last FC are fixed at ``space.fixed_bits`` for both.

Two BitOps conventions (``convention=``, ``--bitops_convention``):

- ``"ours"`` (default): every layer of the network we build, the 8-bit first conv and last FC
  included: the honest cost of the network. ResNet-18 at 224x224: ``k^2 * 1.696e9 + 7.59e9`` for
  the uniform kWkA network (14.37G / 22.85G / 34.71G for k = 2 / 3 / 4).
- ``"paper"``: what reproduces Table 6's uniform baselines exactly: the convs of the choice blocks
  only (3x3 convs and the 1x1 downsample shortcuts), first conv and FC not counted, and the paper's
  "G" is 2^30, not 10^9. ResNet-18: ``k^2 * 1,695,547,392`` = 6.32 / 14.21 / 25.27 x 2^30 for k =
  2 / 3 / 4 (Table 6: 6.32G / 14.21G / 25.27G); ResNet-34: ``k^2 * 3,545,235,456`` = 13.21 /
  29.72 / 52.83 x 2^30 (Table 6: 13.21G / 29.72G / 52.83G). Tried and rejected (none gives all
  six figures in decimal G): block convs without the shortcuts (1.676e9 / 3.526e9 per k^2: 6.71G
  for ResNet-18 2W2A); the block convs minus the first 3x3 conv (ResNet-18 1.580e9 per k^2:
  14.22G, not 14.21G, for 3W3A; ResNet-34 3.430e9: 13.72G for 2W2A); the block convs with or
  without the 8-bit first conv and FC at any input size from 160 to 256. Only the 2^30 unit fits
  both networks at all three widths. :func:`paper_giga` converts a count to the paper's G.

Per-block costs are tabulated once per space (:class:`CostTable`); an architecture's cost is then a
table lookup and a sum (well over 10,000 architectures per second).

Command line::

    python -m spos_tf.costs --space=shufflenet_oneshot --arch=2,1,0,...
    python -m spos_tf.costs --space=fbnet --arch=fbnet_b --latency_table=lut.json   # + latency_ms
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from spos_tf.spaces import ops as ops_lib
from spos_tf.spaces.space import GENE_KINDS, Architecture, SearchSpace, mid_channels


class CostTable:
    """Per-block cost tables of one space; all methods take an :class:`Architecture`.

    ``latency``: an optional :class:`spos_tf.latency.table.LatencyTable` of the space; with it
    :meth:`latency_ms` predicts latency and :meth:`all` reports ``latency_ms``.
    """

    def __init__(self, space: SearchSpace, latency=None):
        self.space = space
        self.latency = latency
        n_op, n_ch = len(space.ops), len(space.channel_scales)
        B = space.num_blocks
        self.block_macs = np.zeros((B, n_op, n_ch), np.int64)
        self.block_params = np.zeros((B, n_op, n_ch), np.int64)
        self.block_qmacs = np.zeros((B, n_op, n_ch), np.int64)  # MACs of quantized prims
        supernet = 0
        # A gene's cost is the sum over its sites: one block of a chain space, the same edge of
        # every cell of a cell space.
        for b in range(B):
            for cin, cout, stride, hw in space.gene_sites(b):
                for (o, op), (c, scale) in itertools.product(
                    enumerate(space.ops), enumerate(space.channel_scales)
                ):
                    prims = ops_lib.get_op(op).prims(
                        cin, cout, mid_channels(space, cout, scale), stride, hw
                    )
                    self.block_macs[b, o, c] += sum(p.macs for p in prims.values())
                    self.block_params[b, o, c] += sum(p.params(True) for p in prims.values())
                    self.block_qmacs[b, o, c] += sum(p.macs for p in prims.values() if p.quantized)
                widest = max(mid_channels(space, cout, s) for s in space.channel_scales)
                supernet += sum(
                    p.params(False)
                    for op in space.ops
                    for p in ops_lib.get_op(op).prims(cin, cout, widest, stride, hw).values()
                )
        fixed = ops_lib.fixed_prims(space)
        self.fixed_macs = sum(p.macs for p in fixed.values())
        self.fixed_params = sum(p.params(True) for p in fixed.values())
        self.fixed_qmacs = sum(p.macs for p in fixed.values() if p.quantized)
        self.supernet_params = supernet + sum(p.params(False) for p in fixed.values())
        self._rows = [GENE_KINDS.index(k) for k in space.searched_genes]
        self._blocks = np.arange(B)
        self._wbits = np.asarray(space.weight_bits, np.int64)
        self._abits = np.asarray(space.act_bits, np.int64)

    def _idx(self, arch: Architecture) -> np.ndarray:
        idx = np.zeros((len(GENE_KINDS), self.space.num_blocks), np.int64)
        idx[self._rows] = arch.genes
        return idx

    def macs(self, arch: Architecture) -> int:
        idx = self._idx(arch)
        return int(self.fixed_macs + self.block_macs[self._blocks, idx[0], idx[1]].sum())

    def macs_many(self, genes: np.ndarray) -> np.ndarray:
        """MACs of many architectures at once: ``genes`` int ``[N, searched gene kinds, blocks]``
        (each row an ``Architecture.genes``) -> int64 ``[N]``."""
        genes = np.asarray(genes)
        idx = np.zeros((genes.shape[0], len(GENE_KINDS), self.space.num_blocks), np.int64)
        idx[:, self._rows] = genes
        return self.fixed_macs + self.block_macs[self._blocks, idx[:, 0], idx[:, 1]].sum(axis=-1)

    def params(self, arch: Architecture) -> int:
        idx = self._idx(arch)
        return int(self.fixed_params + self.block_params[self._blocks, idx[0], idx[1]].sum())

    def bitops(self, arch: Architecture, include_fixed: bool = True) -> int:
        idx = self._idx(arch)
        q = self.block_qmacs[self._blocks, idx[0], idx[1]]
        total = int((q * self._wbits[idx[2]] * self._abits[idx[3]]).sum())
        if include_fixed:
            total += self.fixed_bitops()
        return total

    def fixed_bitops(self) -> int:
        """BitOps of the first conv and the last FC (kept at ``space.fixed_bits``)."""
        return int(self.fixed_qmacs * self.space.fixed_bits**2)

    def latency_ms(self, arch: Architecture) -> float:
        """Predicted latency (ms) from the latency lookup table.

        Raises:
          ValueError: the table was built without one (``--latency_table``)."""
        if self.latency is None:
            raise ValueError(
                "latency needs a lookup table: pass --latency_table=lut.json (built "
                "by python -m spos_tf.latency build)"
            )
        return round(self.latency.predict_ms(arch), 4)

    def all(self, arch: Architecture) -> dict:
        out = {"macs": self.macs(arch), "params": self.params(arch)}
        if self.space.quantized:
            out["bitops"] = self.bitops(arch)
        if self.latency is not None:
            out["latency_ms"] = self.latency_ms(arch)
        return out


def table(space: SearchSpace, latency_table: str | None = None) -> CostTable:
    """The (cached) cost table of ``space``; with ``latency_table`` (a path to a table built by
    ``spos_tf.latency``) it predicts latency too. Raises ValueError/FileNotFoundError for a bad
    table (see :class:`spos_tf.latency.table.LatencyTable`)."""
    if latency_table is None:
        return _table(space, None, None)
    import os

    path = os.path.abspath(os.fspath(latency_table))
    mtime = os.path.getmtime(path) if os.path.exists(path) else None
    return _table(space, path, mtime)


BITOPS_CONVENTIONS = ("ours", "paper")
PAPER_GIGA = 2**30  # the paper's "G" of BitOps (see the module docstring)


def check_convention(convention: str) -> str:
    if convention not in BITOPS_CONVENTIONS:
        raise ValueError(
            f"--bitops_convention must be one of {', '.join(BITOPS_CONVENTIONS)}, "
            f"got {convention!r}"
        )
    return convention


def paper_giga(bitops: float) -> float:
    """A BitOps count in the paper's units (G = 2^30), e.g. 14.21 for ResNet-18 3W3A."""
    return bitops / PAPER_GIGA


@functools.lru_cache(maxsize=32)
def _table(space: SearchSpace, latency_path, mtime) -> CostTable:
    if latency_path is None:
        return CostTable(space)
    from spos_tf.latency.table import LatencyTable

    return CostTable(space, LatencyTable(latency_path, space))


def macs(space: SearchSpace, arch: Architecture) -> int:
    """Multiply-accumulates of the stand-alone network of ``arch`` (conv and FC only)."""
    return table(space).macs(arch)


def params(space: SearchSpace, arch: Architecture) -> int:
    """Trainable parameters of the stand-alone network of ``arch`` (affine BN)."""
    return table(space).params(arch)


def bitops(
    space: SearchSpace, arch: Architecture, include_fixed: bool = True, convention: str = "ours"
) -> int:
    """BitOps of ``arch`` in a quantized space (see module docstring); ``convention="paper"``
    counts the choice blocks only (as ``include_fixed=False``)."""
    include_fixed = include_fixed and check_convention(convention) == "ours"
    return table(space).bitops(arch, include_fixed)


def supernet_params(space: SearchSpace) -> int:
    """Trainable parameters of the supernet (every choice at its widest, BN without affine)."""
    return table(space).supernet_params


def uniform_arch(
    space: SearchSpace, bits: int | None = None, scale: float | None = None, op: int = 0
) -> Architecture:
    """The architecture using choice ``op``, channel scale ``scale`` (default: 1.0 if listed, else
    the largest) and ``bits`` for weights and activations in every block."""
    genes = {}
    if "op" in space.searched_genes:
        genes["op"] = [op] * space.num_blocks
    if "channel" in space.searched_genes:
        genes["channel"] = [_default_scale_index(space, scale)] * space.num_blocks
    for kind, choices in (("wbits", space.weight_bits), ("abits", space.act_bits)):
        if kind in space.searched_genes:
            if bits is None or bits not in choices:
                raise ValueError(
                    f"{kind}: {bits} bits is not a choice of {space.name!r}: {choices}"
                )
            genes[kind] = [choices.index(bits)] * space.num_blocks
    return space.make(**genes)


def _default_scale_index(space: SearchSpace, scale: float | None) -> int:
    scales = space.channel_scales
    target = scale if scale is not None else (1.0 if 1.0 in scales else max(scales))
    if target not in scales:
        raise ValueError(f"channel scale {target} is not a choice of {space.name!r}: {scales}")
    return scales.index(target)


def uniform_bitops(
    space: SearchSpace, bits: int, scale: float | None = None, op: int = 0, convention: str = "ours"
) -> int:
    """BitOps of the uniform ``bits``W``bits``A network (channel scale ``scale``, default 1.0) with
    the first conv and last FC at ``space.fixed_bits`` (``convention="paper"``: not counted): the
    budgets Table 6 compares against for k in {2, 3, 4}. ``bits`` may be any width 1..32, also one
    that is not a searched choice."""
    if not 1 <= bits <= 32:
        raise ValueError(f"bits must be in 1..32, got {bits}")
    t = table(space)
    q = int(t.block_qmacs[:, op, _default_scale_index(space, scale)].sum())
    return q * bits * bits + (t.fixed_bitops() if check_convention(convention) == "ours" else 0)


def uniform_macs(space: SearchSpace, scale: float | None = None, op: int = 0) -> int:
    """MACs of the uniform network (the float network's MACs for a quantized space)."""
    t = table(space)
    return int(t.fixed_macs + t.block_macs[:, op, _default_scale_index(space, scale)].sum())


def report(space: SearchSpace, arch: Architecture | None, latency_table: str | None = None) -> dict:
    """The JSON object printed by ``python -m spos_tf.costs`` (``latency_ms`` with a table)."""
    out = {"space": space.name, "supernet_params": supernet_params(space)}
    if arch is not None:
        out.update(arch=str(arch), **table(space, latency_table).all(arch))
        if space.cell_nodes:
            out["benchmark_string"] = space.benchmark_string(arch)
    return out
