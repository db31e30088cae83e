"""Analytic cost model: MACs ("FLOPs" in the paper), parameters and BitOps of any architecture.

Counts come from the same primitive lists (:mod:`spos_tf.ops`) that the layer code allocates, so the
model and its cost cannot drift apart. Conventions (paper and reference code):

- MACs: convolution and fully-connected layers only: ``out_hw^2 * k^2 * cin/groups * cout`` per
  conv, ``cin * cout`` per FC (BN, ReLU, pooling, shuffle and additions are free).
- params: trainable parameters: conv/FC weights (and FC bias), BN gamma/beta where BN is affine
  (the stand-alone network); BN moving statistics are not parameters. ``supernet_params`` counts
  every choice at its largest width with non-affine BN, as the supernet allocates them.
- BitOps (quantized spaces): sum over quantized layers of ``MACs * weight_bits * act_bits``; inside a
  choice block every conv uses the block's weight bits and its activations the block's activation
  bits; the first conv and the last FC are fixed at ``space.fixed_bits`` for both.

Per-block costs are tabulated once per space (:class:`CostTable`); an architecture's cost is then a
table lookup and a sum (well over 10,000 architectures per second).

Command line::

    python -m spos_tf.costs --space=shufflenet_oneshot --arch=2,1,0,...
"""
from __future__ import annotations

import functools
import itertools

import numpy as np

from spos_tf import ops as ops_lib
from spos_tf.space import GENE_KINDS, Architecture, SearchSpace, mid_channels


class CostTable:
    """Per-block cost tables of one space; all methods take an :class:`Architecture`."""

    def __init__(self, space: SearchSpace):
        self.space = space
        n_op, n_ch = len(space.ops), len(space.channel_scales)
        B = space.num_blocks
        self.block_macs = np.zeros((B, n_op, n_ch), np.int64)
        self.block_params = np.zeros((B, n_op, n_ch), np.int64)
        self.block_qmacs = np.zeros((B, n_op, n_ch), np.int64)   # MACs of quantized prims
        supernet = 0
        for b, (cin, cout, stride, hw) in enumerate(space.block_layout()):
            for (o, op), (c, scale) in itertools.product(enumerate(space.ops),
                                                         enumerate(space.channel_scales)):
                prims = ops_lib.get_op(op).prims(cin, cout, mid_channels(space, cout, scale),
                                                 stride, hw)
                self.block_macs[b, o, c] = sum(p.macs for p in prims.values())
                self.block_params[b, o, c] = sum(p.params(True) for p in prims.values())
                self.block_qmacs[b, o, c] = sum(p.macs for p in prims.values() if p.quantized)
            widest = max(mid_channels(space, cout, s) for s in space.channel_scales)
            supernet += sum(p.params(False) for op in space.ops
                            for p in ops_lib.get_op(op).prims(cin, cout, widest, stride,
                                                              hw).values())
        fixed = {**ops_lib.stem_prims(space),
                 **ops_lib.head_prims(space, space.stages[-1].channels, space.final_hw)}
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
        return int(self.fixed_qmacs * self.space.fixed_bits ** 2)

    def all(self, arch: Architecture) -> dict:
        out = {"macs": self.macs(arch), "params": self.params(arch)}
        if self.space.quantized:
            out["bitops"] = self.bitops(arch)
        return out


@functools.lru_cache(maxsize=32)
def table(space: SearchSpace) -> CostTable:
    return CostTable(space)


def macs(space: SearchSpace, arch: Architecture) -> int:
    """Multiply-accumulates of the stand-alone network of ``arch`` (conv and FC only)."""
    return table(space).macs(arch)


def params(space: SearchSpace, arch: Architecture) -> int:
    """Trainable parameters of the stand-alone network of ``arch`` (affine BN)."""
    return table(space).params(arch)


def bitops(space: SearchSpace, arch: Architecture, include_fixed: bool = True) -> int:
    """BitOps of ``arch`` in a quantized space (see module docstring)."""
    return table(space).bitops(arch, include_fixed)


def supernet_params(space: SearchSpace) -> int:
    """Trainable parameters of the supernet (every choice at its widest, BN without affine)."""
    return table(space).supernet_params


def uniform_arch(space: SearchSpace, bits: int | None = None, scale: float | None = None,
                 op: int = 0) -> Architecture:
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
                raise ValueError(f"{kind}: {bits} bits is not a choice of {space.name!r}: {choices}")
            genes[kind] = [choices.index(bits)] * space.num_blocks
    return space.make(**genes)


def _default_scale_index(space: SearchSpace, scale: float | None) -> int:
    scales = space.channel_scales
    target = scale if scale is not None else (1.0 if 1.0 in scales else max(scales))
    if target not in scales:
        raise ValueError(f"channel scale {target} is not a choice of {space.name!r}: {scales}")
    return scales.index(target)


def uniform_bitops(space: SearchSpace, bits: int, scale: float | None = None, op: int = 0) -> int:
    """BitOps of the uniform ``bits``W``bits``A network (channel scale ``scale``, default 1.0) with
    the first conv and last FC at ``space.fixed_bits``: the budgets Table 6 compares against for
    k in {2, 3, 4}. ``bits`` may be any width 1..32, also one that is not a searched choice."""
    if not 1 <= bits <= 32:
        raise ValueError(f"bits must be in 1..32, got {bits}")
    t = table(space)
    q = int(t.block_qmacs[:, op, _default_scale_index(space, scale)].sum())
    return q * bits * bits + t.fixed_bitops()


def uniform_macs(space: SearchSpace, scale: float | None = None, op: int = 0) -> int:
    """MACs of the uniform network (the float network's MACs for a quantized space)."""
    t = table(space)
    return int(t.fixed_macs + t.block_macs[:, op, _default_scale_index(space, scale)].sum())


def report(space: SearchSpace, arch: Architecture | None) -> dict:
    """The JSON object printed by ``python -m spos_tf.costs``."""
    out = {"space": space.name, "supernet_params": supernet_params(space)}
    if arch is not None:
        out.update(arch=str(arch), **table(space).all(arch))
    return out


def main(argv):  # pragma: no cover - exercised through the command line in tests
    import json

    from absl import flags

    from spos_tf import spaces
    from spos_tf.space import arch_from_any

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {argv[1:]}")
    space = spaces.get(FLAGS.space, **spaces.overrides_from_flags(FLAGS))
    if FLAGS.uniform_bits is not None:
        if not space.quantized:
            raise SystemExit(f"--uniform_bits needs a quantized space; {space.name!r} is float")
        out = {"space": space.name, "uniform_bits": FLAGS.uniform_bits,
               "macs": uniform_macs(space), "bitops": uniform_bitops(space, FLAGS.uniform_bits),
               "fixed_bitops": table(space).fixed_bitops(),
               "supernet_params": supernet_params(space)}
    else:
        arch = arch_from_any(space, FLAGS.arch) if FLAGS.arch else None
        out = report(space, arch)
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":  # pragma: no cover
    from absl import app, flags

    from spos_tf import spaces as _spaces

    flags.DEFINE_string("space", "shufflenet_oneshot", "search space name")
    flags.DEFINE_string("arch", None, "architecture text form or path to best.json")
    flags.DEFINE_integer("uniform_bits", None, "print MACs/BitOps of the uniform KwKa network")
    _spaces.define_override_flags()

    def _run(argv):
        try:
            main(argv)
        except ValueError as e:
            raise SystemExit(f"error: {e}") from None

    app.run(_run)
