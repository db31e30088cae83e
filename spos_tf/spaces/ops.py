"""Candidate ops as data: each op lists its primitive layers with their shapes.

This module is plain Python (no TensorFlow). The TF layer code in :mod:`spos_tf.models.blocks` allocates
exactly the primitives listed here, and the cost model in :mod:`spos_tf.costs` counts them, so the two
cannot drift apart. A primitive is one of:

- ``conv``: a k x k convolution ``cin -> cout`` without bias (``groups`` > 1: a grouped
  convolution, each group ``cin/groups -> cout/groups``),
- ``dw``: a k x k depthwise convolution over ``cin`` channels (``cout == cin``),
- ``bn``: batch normalisation over ``cin`` channels,
- ``fc``: a fully-connected layer ``cin -> cout`` (``bias`` optional).

MACs follow the paper's convention: conv and FC only; ``out_hw^2 * k^2 * cin/groups * cout``.

Op families: ``shufflenet`` (ShuffleNetV2 units), ``resnet`` (basic blocks), ``fbnet`` and
``proxyless`` (MobileNetV2 inverted residuals, "MBConv": 1x1 expansion by ``e`` (optionally grouped,
followed by a channel shuffle), k x k depthwise (carries the stride), linear 1x1 projection, identity
residual where stride is 1 and the shapes match; FBNet's ``skip`` and ProxylessNAS's ``zero``).
:data:`FAMILY_ACT` names the activation of every ReLU of a family (ProxylessNAS: ReLU6).
"""

from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Prim:
    kind: str  # "conv" | "dw" | "bn" | "fc"
    cin: int
    cout: int
    k: int = 1
    stride: int = 1
    in_hw: int = 1
    bias: bool = False
    quantized: bool = False  # counts towards BitOps (weights at the block's bit width)
    groups: int = 1  # conv only: grouped convolution

    @property
    def out_hw(self) -> int:
        return -(-self.in_hw // self.stride)

    @property
    def macs(self) -> int:
        if self.kind == "conv":
            return self.out_hw**2 * self.k * self.k * self.cin // self.groups * self.cout
        if self.kind == "dw":
            return self.out_hw**2 * self.k * self.k * self.cin
        if self.kind == "fc":
            return self.cin * self.cout
        return 0

    def params(self, affine: bool = True) -> int:
        if self.kind == "conv":
            return self.k * self.k * self.cin // self.groups * self.cout
        if self.kind == "dw":
            return self.k * self.k * self.cin
        if self.kind == "fc":
            return self.cin * self.cout + (self.cout if self.bias else 0)
        if self.kind == "bn":
            return 2 * self.cin if affine else 0
        raise ValueError(self.kind)

    def weight_shapes(self, affine: bool = True) -> dict:
        """Name -> shape of every variable this primitive owns (moving statistics included)."""
        if self.kind == "conv":
            return {"kernel": (self.k, self.k, self.cin // self.groups, self.cout)}
        if self.kind == "dw":
            return {"depthwise_kernel": (self.k, self.k, self.cin, 1)}
        if self.kind == "fc":
            shapes = {"kernel": (self.cin, self.cout)}
            if self.bias:
                shapes["bias"] = (self.cout,)
            return shapes
        shapes = {"moving_mean": (self.cin,), "moving_variance": (self.cin,)}
        if affine:
            shapes.update(gamma=(self.cin,), beta=(self.cin,))
        return shapes


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """A candidate op: ``prims(cin, cout, mid, stride, in_hw)`` -> ordered ``{name: Prim}``."""

    name: str
    family: str
    kind: str  # "shuffle" | "xception" | "basic" | "mbconv" | "skip" | "zero": the
    # dataflow in spos_tf.models.blocks
    kernel: int
    prims: Callable
    expansion: int = 0  # mbconv: mid channels = cin * expansion
    groups: int = 1  # mbconv: groups of both 1x1 convs (then a channel shuffle before the 2nd)
    legal: Callable | None = None  # legal(cin, cout, stride) -> bool; None: legal in every block

    def is_legal(self, cin: int, cout: int, stride: int) -> bool:
        """Whether this op may be chosen in a block of this shape (ProxylessNAS's zero op only
        where the block keeps its shape)."""
        return self.legal is None or bool(self.legal(cin, cout, stride))

    @property
    def residual_only(self) -> bool:
        return self.kind == "zero"


def _shuffle_prims(k):
    def prims(cin, cout, mid, stride, in_hw):
        main_in = cin if stride == 2 else cin // 2
        outputs = cout - main_in if stride == 1 else cout - cin
        out_hw = -(-in_hw // stride)
        p = {
            "conv1": Prim("conv", main_in, mid, 1, 1, in_hw),
            "bn1": Prim("bn", mid, mid),
            "dw": Prim("dw", mid, mid, k, stride, in_hw),
            "bn2": Prim("bn", mid, mid),
            "conv2": Prim("conv", mid, outputs, 1, 1, out_hw),
            "bn3": Prim("bn", outputs, outputs),
        }
        if stride == 2:
            p.update(_proj_prims(cin, k, in_hw))
        return p

    return prims


def _proj_prims(cin, k, in_hw):
    out_hw = -(-in_hw // 2)
    return {
        "proj_dw": Prim("dw", cin, cin, k, 2, in_hw),
        "proj_bn1": Prim("bn", cin, cin),
        "proj_conv": Prim("conv", cin, cin, 1, 1, out_hw),
        "proj_bn2": Prim("bn", cin, cin),
    }


def _xception_prims(cin, cout, mid, stride, in_hw):
    main_in = cin if stride == 2 else cin // 2
    outputs = cout - main_in if stride == 1 else cout - cin
    hw = -(-in_hw // stride)
    p = {
        "dw1": Prim("dw", main_in, main_in, 3, stride, in_hw),
        "bn1": Prim("bn", main_in, main_in),
        "conv1": Prim("conv", main_in, mid, 1, 1, hw),
        "bn2": Prim("bn", mid, mid),
        "dw2": Prim("dw", mid, mid, 3, 1, hw),
        "bn3": Prim("bn", mid, mid),
        "conv2": Prim("conv", mid, mid, 1, 1, hw),
        "bn4": Prim("bn", mid, mid),
        "dw3": Prim("dw", mid, mid, 3, 1, hw),
        "bn5": Prim("bn", mid, mid),
        "conv3": Prim("conv", mid, outputs, 1, 1, hw),
        "bn6": Prim("bn", outputs, outputs),
    }
    if stride == 2:
        p.update(_proj_prims(cin, 3, in_hw))
    return p


def _basic_prims(cin, cout, mid, stride, in_hw):
    """ResNet basic block: 3x3 conv (cin->mid, stride), 3x3 conv (mid->cout), 1x1 shortcut if needed."""
    hw = -(-in_hw // stride)
    p = {
        "conv1": Prim("conv", cin, mid, 3, stride, in_hw, quantized=True),
        "bn1": Prim("bn", mid, mid),
        "conv2": Prim("conv", mid, cout, 3, 1, hw, quantized=True),
        "bn2": Prim("bn", cout, cout),
    }
    if stride != 1 or cin != cout:
        p["down"] = Prim("conv", cin, cout, 1, stride, in_hw, quantized=True)
        p["down_bn"] = Prim("bn", cout, cout)
    return p


def _mbconv_prims(k, e, groups=1, pw_at_e1=True):
    """Inverted residual: [1x1 cin->cin*e +BN] (kept at e=1 when ``pw_at_e1``), kxk depthwise +BN
    (stride), 1x1 cin*e->cout +BN (linear). The block's ``mid`` argument is not used: the op's
    expansion fixes the width (these spaces search no channel scale)."""

    def prims(cin, cout, mid, stride, in_hw):
        m = cin * e
        out_hw = -(-in_hw // stride)
        p = {}
        if e != 1 or pw_at_e1:
            p["pw"] = Prim("conv", cin, m, 1, 1, in_hw, groups=groups)
            p["pw_bn"] = Prim("bn", m, m)
        p["dw"] = Prim("dw", m, m, k, stride, in_hw)
        p["dw_bn"] = Prim("bn", m, m)
        p["pwl"] = Prim("conv", m, cout, 1, 1, out_hw, groups=groups)
        p["pwl_bn"] = Prim("bn", cout, cout)
        return p

    return prims


def _skip_prims(cin, cout, mid, stride, in_hw):
    """FBNet's skip: identity, or 1x1 conv (stride) + BN + ReLU where the shape changes."""
    if stride == 1 and cin == cout:
        return {}
    return {"conv": Prim("conv", cin, cout, 1, stride, in_hw), "bn": Prim("bn", cout, cout)}


def _zero_prims(cin, cout, mid, stride, in_hw):
    """ProxylessNAS's zero op: the block is its identity shortcut (no weights, no MACs)."""
    return {}


def _keeps_shape(cin, cout, stride):
    return stride == 1 and cin == cout


def _fbnet_ops() -> dict:
    out = {}
    for k in (3, 5):
        for e, g in ((1, 1), (1, 2), (3, 1), (6, 1)):
            name = f"fb_k{k}_e{e}" + (f"_g{g}" if g > 1 else "")
            out[name] = OpSpec(name, "fbnet", "mbconv", k, _mbconv_prims(k, e, g), e, g)
    out["fb_skip"] = OpSpec("fb_skip", "fbnet", "skip", 1, _skip_prims)
    return out


def _proxyless_ops() -> dict:
    out = {}
    for k in (3, 5, 7):
        for e in (1, 3, 6):
            name = f"px_k{k}_e{e}"
            out[name] = OpSpec(
                name, "proxyless", "mbconv", k, _mbconv_prims(k, e, pw_at_e1=False), e
            )
    out["px_zero"] = OpSpec("px_zero", "proxyless", "zero", 1, _zero_prims, legal=_keeps_shape)
    return out


def _nb201_conv_prims(k):
    """NAS-Bench-201's ``nor_conv_kxk`` on a cell edge: ReLU, k x k conv (C -> C), affine BN."""

    def prims(cin, cout, mid, stride, in_hw):
        return {
            "conv": Prim("conv", cin, cout, k, stride, in_hw),
            "bn": Prim("bn", cout, cout),
        }

    return prims


def _nb201_ops() -> dict:
    """The NAS-Bench-201 edge ops (``spos_tf.spaces.nasbench201.OPS``, the benchmark's names): ``none``
    (zero), ``skip_connect`` (identity), ``nor_conv_1x1`` / ``nor_conv_3x3`` (ReLU-conv-BN) and
    ``avg_pool_3x3`` (stride 1, padding excluded from the average). Cells keep their shape, so
    skip and pool need no projection."""
    return {
        "none": OpSpec("none", "nb201", "nb_none", 1, _zero_prims),
        "skip_connect": OpSpec("skip_connect", "nb201", "nb_skip", 1, _zero_prims),
        "nor_conv_1x1": OpSpec("nor_conv_1x1", "nb201", "nb_conv", 1, _nb201_conv_prims(1)),
        "nor_conv_3x3": OpSpec("nor_conv_3x3", "nb201", "nb_conv", 3, _nb201_conv_prims(3)),
        "avg_pool_3x3": OpSpec("avg_pool_3x3", "nb201", "nb_pool", 3, _zero_prims),
    }


def reduction_prims(cin: int, cout: int, in_hw: int) -> dict:
    """NAS-Bench-201's residual reduction block: ``a``: ReLU-conv3x3/2-BN (cin -> cout), ``b``:
    ReLU-conv3x3-BN (cout -> cout), shortcut: 2x2/2 average pool then a 1x1 conv (cin -> cout,
    no BN); the output is their sum."""
    out_hw = -(-in_hw // 2)
    return {
        "a_conv": Prim("conv", cin, cout, 3, 2, in_hw),
        "a_bn": Prim("bn", cout, cout),
        "b_conv": Prim("conv", cout, cout, 3, 1, out_hw),
        "b_bn": Prim("bn", cout, cout),
        "down": Prim("conv", cin, cout, 1, 1, out_hw),
    }


def reduction_name(position: int) -> str:
    return f"reduction{position:02d}"


def fixed_prims(space) -> dict:
    """Every primitive outside the choice blocks: stem, the reduction blocks of a cell space
    (named ``<reduction_name>/<prim>``) and head."""
    p = dict(stem_prims(space))
    if space.cell_nodes:
        for pos, item in enumerate(space.cell_layout()):
            if item[0] == "reduction":
                for name, prim in reduction_prims(*item[1:]).items():
                    p[f"{reduction_name(pos)}/{name}"] = prim
    p.update(head_prims(space, space.stages[-1].channels, space.final_hw))
    return p


# Activation of every ReLU of a family (stem, blocks, head).
FAMILY_ACT = {"proxyless": "relu6"}

OPS = {
    "shuffle3x3": OpSpec("shuffle3x3", "shufflenet", "shuffle", 3, _shuffle_prims(3)),
    "shuffle5x5": OpSpec("shuffle5x5", "shufflenet", "shuffle", 5, _shuffle_prims(5)),
    "shuffle7x7": OpSpec("shuffle7x7", "shufflenet", "shuffle", 7, _shuffle_prims(7)),
    "xception": OpSpec("xception", "shufflenet", "xception", 3, _xception_prims),
    "basic": OpSpec("basic", "resnet", "basic", 3, _basic_prims),
    **_fbnet_ops(),
    **_proxyless_ops(),
    **_nb201_ops(),
}


def get_op(name: str) -> OpSpec:
    if name not in OPS:
        raise ValueError(f"unknown op {name!r}; known ops: {sorted(OPS)}")
    return OPS[name]


def stem_prims(space) -> dict:
    """The stem (first conv + BN, then the fixed ``space.stem_blocks``, their primitives named
    ``sb<i>_<prim>``) of a space: ``{name: Prim}``."""
    quant = space.quantized
    p = {
        "stem_conv": Prim(
            "conv",
            3,
            space.stem_channels,
            space.stem_kernel,
            space.stem_stride,
            space.image_size,
            quantized=quant,
        ),
        "stem_bn": Prim("bn", space.stem_channels, space.stem_channels),
    }
    cin = space.stem_channels
    for i, (op, cout) in enumerate(space.stem_blocks):
        for name, prim in get_op(op).prims(cin, cout, cout, 1, space.stem_out_hw).items():
            p[f"sb{i}_{name}"] = prim
        cin = cout
    return p


def head_prims(space, in_channels: int, in_hw: int) -> dict:
    """The head (optional 1x1 conv + BN, then the classifier) of a space."""
    p = {}
    if space.head_channels:
        p["head_conv"] = Prim("conv", in_channels, space.head_channels, 1, 1, in_hw)
        p["head_bn"] = Prim("bn", space.head_channels, space.head_channels)
        in_channels = space.head_channels
    elif space.cell_nodes:  # NAS-Bench-201's "lastact": BN + ReLU before the pool
        p["head_bn"] = Prim("bn", in_channels, in_channels)
    p["classifier"] = Prim(
        "fc", in_channels, space.num_classes, bias=space.fc_bias, quantized=space.quantized
    )
    return p
