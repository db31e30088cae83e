"""Search spaces as data, and architectures as plain hashable values.

A :class:`SearchSpace` is the single place where candidate ops, channel scales and bit widths are
listed. The supernet, the stand-alone builder, the sampler, the cost model and the oracle's
hyperparameters all read it. Nothing here imports TensorFlow.

An :class:`Architecture` holds one index per choice block for every *searched* gene kind. Gene
kinds, in this fixed order: ``op`` (candidate op), ``channel`` (channel-scale index), ``wbits``
(weight bit-width index), ``abits`` (input-activation bit-width index). A gene kind is searched when
the space lists more than one choice for it. Text form: the searched gene kinds joined by ``|``, each a
comma-separated list of indices, e.g. ``"2,1,0,1,2,0,2,0,2,0,2,3,0,0,0,0,3,2,3,3"`` (block search) or
``"0,0,3,...|6,5,3,..."`` (block + channel search).

Why one module of this size: the search space and the architecture are one data type and its
encoding (genes, text, JSON, validation, sampling); splitting them would split one contract.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import zlib
from typing import Iterable, Mapping, Sequence

import numpy as np

GENE_KINDS = ("op", "channel", "wbits", "abits")
PADDINGS = ("same", "reference")


@dataclasses.dataclass(frozen=True)
class Stage:
    """A run of ``repeats`` choice blocks with ``channels`` outputs; the first block has ``stride``."""

    repeats: int
    channels: int
    stride: int


@dataclasses.dataclass(frozen=True, order=True)
class Architecture:
    """One architecture: ``genes[k][b]`` is the choice index of searched gene kind ``k`` in block ``b``.

    Immutable and hashable; equal architectures compare and hash equal, so sets and dicts dedupe by
    value. Use :meth:`SearchSpace.parse` / :meth:`SearchSpace.validate` to check it against a space.
    """

    genes: tuple

    def __post_init__(self):
        object.__setattr__(self, "genes", tuple(tuple(int(c) for c in g) for g in self.genes))

    def __str__(self) -> str:
        return "|".join(",".join(str(c) for c in g) for g in self.genes)

    @property
    def text(self) -> str:
        return str(self)

    @classmethod
    def from_text(cls, text: str) -> "Architecture":
        """Parses the text form without validating it against a space."""
        text = text.strip()
        if not text:
            raise ValueError("empty architecture text; expected e.g. '2,1,0,1' or '0,1|3,4'")
        groups = []
        for group in text.split("|"):
            try:
                groups.append(tuple(int(tok) for tok in group.split(",")))
            except ValueError:
                raise ValueError(
                    f"architecture text {text!r} is not comma-separated integers (groups split by '|')"
                ) from None
        return cls(tuple(groups))

    def to_json(self, space: "SearchSpace | None" = None, **extra) -> str:
        record = {"arch": str(self)}
        if space is not None:
            record["space"] = space.name
            record["genes"] = dict(zip(space.searched_genes, [list(g) for g in self.genes]))
            if space.cell_nodes:  # the benchmark's own text form beside ours (NAS-Bench-201)
                record["benchmark_string"] = space.benchmark_string(self)
        record.update(extra)
        return json.dumps(record, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Architecture":
        record = json.loads(text)
        if "arch" not in record:
            raise ValueError("architecture JSON needs an 'arch' field holding the text form")
        return cls.from_text(record["arch"])


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """A one-shot search space: a fixed macro skeleton plus per-block choices.

    Attributes:
      name: registry name (``spos_tf.spaces.get(name)``).
      family: ``"shufflenet"``, ``"resnet"``, ``"fbnet"`` or ``"proxyless"``; selects the block
        code (``spos_tf.spaces.ops.OPS``). An op may be illegal in some blocks (``OpSpec.is_legal``:
        ProxylessNAS's zero op only where the block keeps its shape); such blocks offer the other
        ops only (:meth:`allowed_ops`), in sampling, validation and the oracle's choices.
      image_size, num_classes: input resolution and number of classes.
      stem_channels, stem_stride: the first 3x3 conv.
      stages: the choice-block stages.
      head_channels: 1x1 conv before pooling (0: none).
      dropout: dropout rate before the classifier.
      ops: candidate op names of every choice block (``spos_tf.models.blocks.OPS``).
      channel_scales: scales of the block's base mid channels (one entry: not searched).
      weight_bits, act_bits: bit-width choices (one entry: not searched; 32 means float).
      fixed_bits: bit width of the first conv and the last FC in quantized spaces.
      stem_kernel, stem_pool: stem conv kernel size; a 3x3/2 max-pool after the stem (ResNet).
      fc_bias: whether the classifier has a bias.
      padding: ``"same"`` (TF's SAME: a stride-2 conv on an even input pads one pixel less at the
        top/left than at the bottom/right) or ``"reference"`` (symmetric ``k // 2`` on every side,
        as PyTorch's ``padding=k//2`` in the authors' release; explicit pad + VALID for strided
        convs, depthwise convs and the ResNet stem pool). Output sizes are the same either way;
        only weights imported from the reference (``spos_tf.import_reference``) need it.
      fold_bn: quantized spaces: stand-alone networks fold each conv's BN into its weights
        before the weight fake quantization (``spos_tf.quant.fold``: QAT retraining whose
        <= 4-bit weights export as INT4); the supernet is never folded.
      stem_blocks: fixed (not searched) blocks after the stem conv, ``((op, out_channels), ...)``
        at stride 1 (ProxylessNAS: one MBConv e1 k3 to 16 channels).
      cell_nodes: 0 for a chain of choice blocks (every space but one); ``n > 0`` for a cell
        space (NAS-Bench-201, ``spos_tf.spaces.nasbench201``): the network repeats one searched DAG cell
        of ``n`` nodes, ``stages`` give the cells per stage (``repeats``), their channels and, with
        ``stride=2``, a fixed residual reduction block before the stage. A gene ("block") is then
        one *edge* of the cell, ``n * (n - 1) / 2`` of them, and its choice is used at the same
        edge of every cell (:meth:`gene_sites`).
    """

    name: str
    family: str
    image_size: int
    num_classes: int
    stem_channels: int
    stem_stride: int
    stages: tuple
    head_channels: int
    dropout: float
    ops: tuple
    channel_scales: tuple = (1.0,)
    weight_bits: tuple = (32,)
    act_bits: tuple = (32,)
    fixed_bits: int = 8
    stem_kernel: int = 3
    stem_pool: bool = False
    fc_bias: bool = False
    padding: str = "same"
    stem_blocks: tuple = ()
    fold_bn: bool = False
    cell_nodes: int = 0

    def __post_init__(self):
        object.__setattr__(
            self, "stages", tuple(Stage(*s) if not isinstance(s, Stage) else s for s in self.stages)
        )
        object.__setattr__(
            self, "stem_blocks", tuple((str(op), int(c)) for op, c in self.stem_blocks)
        )
        for field in ("ops", "channel_scales", "weight_bits", "act_bits"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        self.check()

    # ---------------------------------------------------------------- structure
    def check(self) -> None:
        """Raises ValueError on an inconsistent space."""
        if self.image_size < 4:
            raise ValueError(f"image_size={self.image_size} is too small (>= 4)")
        if self.num_classes < 2:
            raise ValueError(f"num_classes={self.num_classes} must be >= 2")
        if not self.stages or any(
            s.repeats < 1 or s.channels < 2 or s.stride not in (1, 2) for s in self.stages
        ):
            raise ValueError(
                f"bad stages {self.stages}: repeats >= 1, channels >= 2, stride 1 or 2"
            )
        if not self.ops:
            raise ValueError("a space needs at least one candidate op")
        from spos_tf.spaces import ops as _ops  # the op registry is plain Python

        for op in self.ops:
            if _ops.get_op(op).family != self.family:
                raise ValueError(
                    f"op {op!r} belongs to family {_ops.get_op(op).family!r}, not {self.family!r}"
                )
        if any(s <= 0 for s in self.channel_scales):
            raise ValueError(f"channel scales must be > 0, got {self.channel_scales}")
        for field in ("weight_bits", "act_bits"):
            bits = getattr(self, field)
            if any(b not in (32,) and not 1 <= b <= 16 for b in bits):
                raise ValueError(f"{field} must be in 1..16 (or 32 = float), got {bits}")
        if self.fold_bn and not self.quantized:
            raise ValueError(
                f"fold_bn folds BN into fake-quantized weights: it needs a quantized "
                f"space (weight_bits / act_bits), not {self.name!r}; drop --fold_bn"
            )
        if self.padding not in PADDINGS:
            raise ValueError(
                f"padding={self.padding!r} is not one of {PADDINGS} ('same': TF's "
                f"SAME; 'reference': symmetric k//2 like the PyTorch release)"
            )
        if self.family == "shufflenet" and any(s.channels % 2 for s in self.stages):
            raise ValueError("ShuffleNet stage channels must be even")
        for op, _ in self.stem_blocks:
            if _ops.get_op(op).family != self.family:
                raise ValueError(f"stem block op {op!r} is not of family {self.family!r}")
        if self.family in ("fbnet", "proxyless"):
            if self.channel_scales != (1.0,):
                raise ValueError(
                    f"{self.family} ops fix their width by their expansion; channel "
                    f"scales {self.channel_scales} are not supported (use (1.0,))"
                )
            groups = max(_ops.get_op(op).groups for op in self.ops)
            if any(
                c % groups for c in [self.stem_out_channels] + [s.channels for s in self.stages]
            ):
                raise ValueError(
                    f"grouped ops (groups={groups}) need channel counts divisible by "
                    f"{groups}; got stem {self.stem_out_channels}, stages "
                    f"{[s.channels for s in self.stages]} (use an even --width)"
                )
        if self.cell_nodes:
            if self.cell_nodes < 2:
                raise ValueError(f"a cell needs >= 2 nodes, got cell_nodes={self.cell_nodes}")
            if self.stem_stride != 1 or self.stem_pool or self.head_channels or self.quantized:
                raise ValueError(
                    "cell spaces have a stride-1 stem, no stem pool, no head conv and no "
                    "quantization"
                )
            if self.stages[0].stride != 1:
                raise ValueError("the first stage of a cell space has stride 1 (no reduction)")
        for b in range(self.num_blocks):
            if not self.allowed_ops(b):
                raise ValueError(
                    f"block {b} {self.block_layout()[b]}: none of the ops {self.ops} is legal there"
                )

    @property
    def num_blocks(self) -> int:
        """Gene positions: choice blocks of a chain space, cell edges of a cell space."""
        if self.cell_nodes:
            return self.cell_nodes * (self.cell_nodes - 1) // 2
        return sum(s.repeats for s in self.stages)

    def cell_layout(self) -> list:
        """Cell spaces: per position of the network, ``("cell", channels, hw)`` or
        ``("reduction", in_channels, out_channels, in_hw)``, in order."""
        if not self.cell_nodes:
            raise ValueError(f"space {self.name!r} is a chain of choice blocks, not cells")
        out, hw, channels = [], self.stem_out_hw, self.stem_channels
        for stage in self.stages:
            if stage.stride == 2:
                out.append(("reduction", channels, stage.channels, hw))
                hw = _conv_out(hw, 2)
            elif channels != stage.channels:
                raise ValueError(
                    f"a stride-1 stage keeps the channels ({channels}), got {stage.channels}"
                )
            channels = stage.channels
            out.extend(("cell", channels, hw) for _ in range(stage.repeats))
        return out

    def gene_sites(self, block: int) -> list:
        """Every place where gene position ``block``'s choice is instantiated, as
        ``(in_channels, out_channels, stride, in_hw)``: the block itself in a chain space; that
        edge in every cell of a cell space (the cost model sums over them)."""
        if not self.cell_nodes:
            return [self.block_layout()[block]]
        return [(c, c, 1, hw) for kind, c, hw in (p for p in self.cell_layout() if p[0] == "cell")]

    @property
    def stem_out_hw(self) -> int:
        hw = _conv_out(self.image_size, self.stem_stride)
        return _conv_out(hw, 2) if self.stem_pool else hw

    @property
    def stem_out_channels(self) -> int:
        """Channels after the stem (and its fixed ``stem_blocks``)."""
        return self.stem_blocks[-1][1] if self.stem_blocks else self.stem_channels

    def allowed_ops(self, block: int) -> tuple:
        """Indices into ``ops`` of the ops legal in ``block`` (all of them unless an op declares
        a legality rule, see ``spos_tf.spaces.ops.OpSpec.is_legal``)."""
        return _allowed_ops(self)[block]

    @property
    def restricted_ops(self) -> bool:
        """True when some block does not offer every op."""
        return any(len(a) != len(self.ops) for a in _allowed_ops(self))

    @property
    def final_hw(self) -> int:
        if self.cell_nodes:
            return self.cell_layout()[-1][2]
        in_c, out_c, stride, hw = self.block_layout()[-1]
        return _conv_out(hw, stride)

    @property
    def choices(self) -> dict:
        """Gene kind -> its tuple of choices (all four kinds, searched or not)."""
        return {
            "op": self.ops,
            "channel": self.channel_scales,
            "wbits": self.weight_bits,
            "abits": self.act_bits,
        }

    @property
    def searched_genes(self) -> tuple:
        """Gene kinds with more than one choice, in the canonical order."""
        return tuple(k for k in GENE_KINDS if len(self.choices[k]) > 1)

    @property
    def quantized(self) -> bool:
        return self.weight_bits != (32,) or self.act_bits != (32,)

    def block_layout(self) -> list:
        """Per block: ``(in_channels, out_channels, stride, in_hw)`` (hw = square feature side).
        Cell spaces: per edge, its first site (:meth:`gene_sites`)."""
        if self.cell_nodes:
            return [self.gene_sites(b)[0] for b in range(self.num_blocks)]
        hw = self.stem_out_hw
        channels = self.stem_out_channels
        layout = []
        for stage in self.stages:
            for i in range(stage.repeats):
                stride = stage.stride if i == 0 else 1
                layout.append((channels, stage.channels, stride, hw))
                hw = _conv_out(hw, stride)
                channels = stage.channels
        return layout

    @property
    def size(self) -> int:
        """Number of architectures in the space."""
        other = math.prod(len(self.choices[k]) for k in self.searched_genes if k != "op")
        ops = (
            math.prod(len(self.allowed_ops(b)) for b in range(self.num_blocks))
            if "op" in self.searched_genes
            else 1
        )
        return ops * other**self.num_blocks

    # ---------------------------------------------------------------- architectures
    def validate(self, arch: Architecture) -> Architecture:
        """Returns ``arch`` if it belongs to this space, else raises ValueError naming the problem."""
        genes = self.searched_genes
        if len(arch.genes) != len(genes):
            raise ValueError(
                f"space {self.name!r} searches {len(genes)} gene kind(s) {genes} "
                f"(text groups separated by '|'), got {len(arch.genes)} group(s) in {str(arch)!r}"
            )
        for kind, values in zip(genes, arch.genes):
            if len(values) != self.num_blocks:
                raise ValueError(
                    f"space {self.name!r} has {self.num_blocks} choice blocks, but the {kind!r} genes "
                    f"of {str(arch)!r} have {len(values)} entries"
                )
            n = len(self.choices[kind])
            for block, value in enumerate(values):
                if not 0 <= value < n:
                    raise ValueError(
                        f"block {block}: {kind} choice {value} is out of range; allowed 0..{n - 1} "
                        f"({self.choices[kind]})"
                    )
                if kind == "op" and value not in self.allowed_ops(block):
                    raise ValueError(
                        f"block {block}: op {self.ops[value]!r} is not legal in a block of shape "
                        f"(cin, cout, stride, hw) = {self.block_layout()[block]}; allowed: "
                        f"{[self.ops[i] for i in self.allowed_ops(block)]}"
                    )
        return arch

    def parse(self, text_or_json: str) -> Architecture:
        """Parses and validates the text form (or a JSON object with an ``arch`` field)."""
        text = text_or_json.strip()
        if self.cell_nodes and "~" in text and not text.startswith("{"):
            from spos_tf.spaces import nasbench201  # the benchmark's own string form

            names = [nasbench201.OPS[i] for i in nasbench201.from_string(text)]
            missing = sorted(set(names) - set(self.ops))
            if missing:
                raise ValueError(f"{text!r} uses ops {missing} that space {self.name!r} lacks")
            return self.validate(Architecture((tuple(self.ops.index(n) for n in names),)))
        arch = (
            Architecture.from_json(text) if text.startswith("{") else Architecture.from_text(text)
        )
        if text.startswith("{"):
            space_name = json.loads(text).get("space")
            if space_name is not None and space_name != self.name:
                raise ValueError(
                    f"architecture was searched in space {space_name!r}, not {self.name!r}"
                )
        return self.validate(arch)

    def make(self, **genes: Sequence[int]) -> Architecture:
        """Builds an architecture from per-kind index lists, e.g. ``space.make(op=[0] * 20)``."""
        unknown = set(genes) - set(self.searched_genes)
        if unknown:
            raise ValueError(
                f"space {self.name!r} does not search {sorted(unknown)}; "
                f"it searches {self.searched_genes}"
            )
        return self.validate(Architecture(tuple(tuple(genes[k]) for k in self.searched_genes)))

    def sample(self, rng: np.random.Generator) -> Architecture:
        """Draws one architecture uniformly at random with the given numpy Generator (each
        block's op among its :meth:`allowed_ops`)."""
        genes = [
            rng.integers(0, len(self.choices[k]), self.num_blocks).tolist()
            for k in self.searched_genes
        ]
        if "op" in self.searched_genes and self.restricted_ops:
            # One draw per block among its legal ops; spaces without restrictions keep the
            # plain draw above (same architectures for the same seed as before).
            genes[0] = [
                self.allowed_ops(b)[int(rng.integers(0, len(self.allowed_ops(b))))]
                for b in range(self.num_blocks)
            ]
        return Architecture(tuple(tuple(g) for g in genes))

    def indices(self, arch: Architecture) -> np.ndarray:
        """int32 array ``[len(GENE_KINDS), num_blocks]``: choice index of every gene kind (0 where
        not searched). This is the tensor the supernet switches on."""
        out = np.zeros((len(GENE_KINDS), self.num_blocks), np.int32)
        for kind, values in zip(self.searched_genes, arch.genes):
            out[GENE_KINDS.index(kind)] = values
        return out

    def from_indices(self, indices) -> Architecture:
        indices = np.asarray(indices)
        return Architecture(
            tuple(tuple(indices[GENE_KINDS.index(k)].tolist()) for k in self.searched_genes)
        )

    def decode(self, arch: Architecture) -> list:
        """Per block, a dict of chosen values: ``{"op": name, "channel": scale, "wbits", "abits"}``."""
        idx = self.indices(self.validate(arch))
        return [
            {k: self.choices[k][idx[g, b]] for g, k in enumerate(GENE_KINDS)}
            for b in range(self.num_blocks)
        ]

    # ---------------------------------------------------------------- oracle bridge
    def hp_names(self) -> list:
        """KerasTuner hyperparameter names, one per (searched gene kind, block): ``op_00`` ..."""
        return [f"{k}_{b:02d}" for k in self.searched_genes for b in range(self.num_blocks)]

    def to_values(self, arch: Architecture) -> dict:
        return dict(zip(self.hp_names(), [c for g in arch.genes for c in g]))

    def from_values(self, values: Mapping[str, int]) -> Architecture:
        n = self.num_blocks
        flat = [int(values[name]) for name in self.hp_names()]
        return self.validate(
            Architecture(
                tuple(tuple(flat[i * n : (i + 1) * n]) for i in range(len(self.searched_genes)))
            )
        )

    def hyperparameters(self):
        """A ``keras_tuner.HyperParameters`` with one ``Choice`` per searched gene and block."""
        import keras_tuner  # imported lazily: the space itself stays framework-free

        hps = keras_tuner.HyperParameters()
        for name in self.hp_names():
            kind, block = name.rsplit("_", 1)
            values = (
                list(self.allowed_ops(int(block)))
                if kind == "op"
                else list(range(len(self.choices[kind])))
            )
            hps.Choice(name, values, ordered=False)
        return hps

    def benchmark_string(self, arch: Architecture) -> str | None:
        """The NAS-Bench-201 string of ``arch`` in a cell space (None in other spaces)."""
        if not self.cell_nodes:
            return None
        from spos_tf.spaces import nasbench201

        return nasbench201.to_string([self.ops[i] for i in self.validate(arch).genes[0]])

    def canonical(self, arch: Architecture) -> Architecture:
        """``arch`` with every op that cannot change the network's output set to ``none``.

        In a cell space with a ``none`` op, node 0 carries the cell's input and node ``j`` the sum
        of its incoming edges. A node whose incoming edges are all ``none`` or leave zero-valued
        nodes carries zeros, and every op here maps zeros to zeros (ReLU, conv, BN without affine
        parameters with statistics recalibrated on the path, pooling, skip), so its outgoing edges
        add nothing; a node that reaches the last node through no non-``none`` edge feeds nothing,
        so its incoming edges do not matter either. Both kinds of edge become ``none``. Two
        architectures with equal canonical forms score identically on the supernet (same logits;
        tests/spaces/test_canonical.py checks it on a supernet); the benchmark's own trained
        networks of them differ only by training noise. Other spaces (chains of blocks) and
        validated cells without such edges are returned unchanged. Cost: O(edges) per call.
        """
        arch = self.validate(arch)
        if not self.cell_nodes or "none" not in self.ops:
            return arch
        n, none, ops = self.cell_nodes, self.ops.index("none"), list(arch.genes[0])
        edges = [(j, i) for j in range(1, n) for i in range(j)]  # (to, from), the genes' order
        carries = [True] + [False] * (n - 1)  # a node whose value can be non-zero
        for j in range(1, n):
            carries[j] = any(
                carries[i] and ops[e] != none for e, (t, i) in enumerate(edges) if t == j
            )
        feeds = [False] * (n - 1) + [True]  # a node that reaches the output
        for i in reversed(range(n - 1)):
            feeds[i] = any(feeds[t] and ops[e] != none for e, (t, f) in enumerate(edges) if f == i)
        live = [ops[e] if carries[i] and feeds[t] else none for e, (t, i) in enumerate(edges)]
        return Architecture((tuple(live),) + arch.genes[1:])

    def replace(self, **changes) -> "SearchSpace":
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict:
        d = dataclasses.asdict(self)
        d["num_blocks"] = self.num_blocks
        d["searched_genes"] = list(self.searched_genes)
        return d


@functools.lru_cache(maxsize=64)
def _allowed_ops(space: SearchSpace) -> tuple:
    from spos_tf.spaces import ops as _ops

    return tuple(
        tuple(i for i, op in enumerate(space.ops) if _ops.get_op(op).is_legal(cin, cout, stride))
        for cin, cout, stride, _ in space.block_layout()
    )


def _conv_out(hw: int, stride: int) -> int:
    """Output side of a SAME-padded conv (TF and the reference's k//2 padding agree on this)."""
    return -(-hw // stride)


def mid_channels(space: SearchSpace, out_channels: int, scale: float) -> int:
    """Mid channels of a choice block: ``int((out // 2) * scale)`` for ShuffleNet, ``int(out *
    scale)`` for ResNet, at least 1.

    ``int`` truncates, as the reference's ``ShuffleNetV2_OneShot`` does (``int(base_mid_channels *
    scale)``, the same float product): with 64 output channels the scales 0.4 / 0.8 / 1.4 give 12 /
    25 / 44 mid channels. Widths are not rounded to even numbers (neither are the reference's)."""
    base = out_channels // 2 if space.family == "shufflenet" else out_channels
    return max(1, int(base * scale))


def all_widths(space: SearchSpace, out_channels: int) -> tuple:
    return tuple(mid_channels(space, out_channels, s) for s in space.channel_scales)


def arch_from_any(space: SearchSpace, value: "str | Architecture | Iterable[int]") -> Architecture:
    """Accepts an Architecture, its text/JSON form, a path to a JSON/text file, a named
    architecture of the space (``spos_tf.spaces.NAMED_ARCHS``, e.g. ``"fbnet_b"``), or a flat int
    list."""
    import os

    if isinstance(value, Architecture):
        return space.validate(value)
    if isinstance(value, str):
        from spos_tf import spaces as _spaces  # the registry of named architectures

        if value.strip() in _spaces.NAMED_ARCHS:
            return _spaces.named_arch(space, value.strip())
        if os.path.exists(value) and not value.replace(",", "").replace("|", "").isdigit():
            with open(value) as f:
                return space.parse(f.read())
        if value.endswith(".json"):
            raise FileNotFoundError(f"architecture file {value!r} does not exist")
        return space.parse(value)
    return space.validate(Architecture((tuple(value),)))


def arch_index(arch) -> int:
    """An architecture's own index, ``zlib.crc32(str(arch))`` (0 <= index < 2**32). It is the
    fallback candidate index of a caller of the evaluator (:mod:`spos_tf.models.evaluate`) that
    passes none, and the seed of that candidate's images (:mod:`spos_tf.search.data`). It is the same in every process and
    every run, and does not depend on the order in which architectures are scored."""
    return zlib.crc32(str(arch).encode())


def check_index(index) -> int:
    """``index`` as an int; raises ValueError unless it is an integer >= 0 (bools refused)."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"the candidate index must be an integer >= 0, got {index!r}")
    return int(index)
