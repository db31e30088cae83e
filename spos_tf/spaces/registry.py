"""Registry of search spaces: ``spos_tf.spaces.get(name, **overrides)``.

Registered spaces (overrides in brackets apply to all):

- ``shufflenet_oneshot``: Table 2 of the paper: 224x224, 1000 classes, stem 3x3/2 16, stages
  repeats [4, 4, 8, 4], channels [64, 160, 320, 640], all stride 2, head 1x1 1024, dropout 0.1,
  4 choices per block (Shuffle3x3, Shuffle5x5, Shuffle7x7, Xception): 4^20 architectures.
- ``shufflenet_oneshot_channels``: the same skeleton, every block a Shuffle3x3, channel scale searched
  among 0.2, 0.4, ..., 1.6 (the paper's "choice_3 + channel search").
- ``shufflenet_oneshot_blocks_channels``: block and channel choices together.
- ``resnet18_mixed_precision`` / ``resnet34_mixed_precision``: ResNet basic-block backbones whose
  blocks choose channel scale (default 0.5, 0.75, 1.0 of the block's mid channels), weight bits and
  input-activation bits (default {1, 2, 3, 4} each); first conv and last FC fixed at 8 bits.

- ``fbnet``, ``proxyless_mobile``, ``proxyless_gpu``: the hardware-aware spaces of the paper's
  Table 5 (MobileNetV2 inverted residuals, see ``spos_tf.spaces.ops``), with the published networks as
  named architectures (:data:`NAMED_ARCHS`: ``fbnet_a``, ``fbnet_b``, ``fbnet_c``,
  ``proxyless_mobile``, ``proxyless_gpu``; ``--arch=fbnet_b``). ``strides`` has one entry per
  stage after the stem stride (7 stages for FBNet, 6 for ProxylessNAS), ``repeats`` one per stage,
  ``ops`` a subset of the candidate ops (shrunken quick-start spaces).

Overrides: ``image_size``, ``num_classes``, ``width`` (multiplies every channel count),
``strides`` (stem stride followed by one stride per stage), ``repeats`` (blocks per stage),
``channel_scales``, ``weight_bits``, ``act_bits``, ``padding`` (``"same"``, TF's default, or
``"reference"``: symmetric ``k // 2`` like the authors' PyTorch release, for imported weights; see
:class:`~spos_tf.spaces.space.SearchSpace`). For images smaller than the ImageNet layout wants,
the strides default to keeping the final feature map at >= 4x4: the stride-2 positions are the last
``floor(log2(image_size / 4))`` of (stem, stage 1, ..., stage 4), at most all five.

Why one module of this size: every registered space is a few lines of data; the registry keeps them
side by side so they can be compared at a glance.
"""

from __future__ import annotations

import math
from typing import Callable

from spos_tf.spaces.space import SearchSpace, Stage

SHUFFLE_OPS = ("shuffle3x3", "shuffle5x5", "shuffle7x7", "xception")
CHANNEL_SCALES = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6)
BITS = (1, 2, 3, 4)

_REGISTRY: dict = {}


def register(name: str):
    """Decorator registering ``factory(**overrides) -> SearchSpace`` under ``name``."""

    def wrap(factory: Callable[..., SearchSpace]):
        _REGISTRY[name] = factory
        return factory

    return wrap


def names() -> list:
    return sorted(_REGISTRY)


def get(name: str, **overrides) -> SearchSpace:
    """Returns the registered space ``name`` with ``overrides`` applied (None values ignored)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown search space {name!r}; registered: {names()}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        return _REGISTRY[name](**overrides)
    except TypeError as e:
        raise ValueError(f"bad override for space {name!r}: {e}") from None


def auto_strides(image_size: int, num_stages: int = 4, max_stride2: int = 5) -> tuple:
    """(stem stride, stage strides...) keeping the last feature map >= 4x4 (see module doc)."""
    k = max(0, min(max_stride2, int(math.floor(math.log2(max(image_size, 4) / 4)))))
    positions = num_stages + 1
    return tuple(2 if i >= positions - k else 1 for i in range(positions))


def _scaled(c: int, width: float, even: bool = True) -> int:
    v = max(2, int(round(c * width)))
    return v + (v % 2) if even else v


def _strides(image_size, strides, default_large):
    if strides is None:
        strides = default_large if image_size >= 160 else auto_strides(image_size)
    strides = tuple(int(s) for s in strides)
    if len(strides) != 5 or any(s not in (1, 2) for s in strides):
        raise ValueError(f"strides must be 5 values in {{1, 2}} (stem, 4 stages), got {strides}")
    return strides


def _shufflenet(
    name,
    image_size=224,
    num_classes=1000,
    width=1.0,
    strides=None,
    repeats=None,
    channel_scales=CHANNEL_SCALES,
    ops=SHUFFLE_OPS,
    head_channels=1024,
    dropout=0.1,
    padding="same",
):
    strides = _strides(image_size, strides, (2, 2, 2, 2, 2))
    repeats = tuple(repeats) if repeats is not None else (4, 4, 8, 4)
    if len(repeats) != 4:
        raise ValueError(f"repeats must list 4 stages, got {repeats}")
    channels = [_scaled(c, width) for c in (64, 160, 320, 640)]
    return SearchSpace(
        name=name,
        family="shufflenet",
        image_size=int(image_size),
        num_classes=int(num_classes),
        stem_channels=_scaled(16, width),
        stem_stride=strides[0],
        stages=tuple(Stage(r, c, s) for r, c, s in zip(repeats, channels, strides[1:])),
        head_channels=_scaled(head_channels, width) if head_channels else 0,
        dropout=dropout,
        ops=tuple(ops),
        channel_scales=tuple(channel_scales),
        padding=padding,
    )


@register("shufflenet_oneshot")
def shufflenet_oneshot(channel_scales=(1.0,), **kw) -> SearchSpace:
    return _shufflenet("shufflenet_oneshot", channel_scales=channel_scales, **kw)


@register("shufflenet_oneshot_channels")
def shufflenet_oneshot_channels(op="shuffle3x3", **kw) -> SearchSpace:
    return _shufflenet("shufflenet_oneshot_channels", ops=(op,), **kw)


@register("shufflenet_oneshot_blocks_channels")
def shufflenet_oneshot_blocks_channels(**kw) -> SearchSpace:
    return _shufflenet("shufflenet_oneshot_blocks_channels", **kw)


def _resnet(
    name,
    default_repeats,
    image_size=224,
    num_classes=1000,
    width=1.0,
    strides=None,
    repeats=None,
    channel_scales=(0.5, 0.75, 1.0),
    weight_bits=BITS,
    act_bits=BITS,
    fixed_bits=8,
    padding="same",
    fold_bn=False,
):
    large = image_size >= 160
    strides = _strides(image_size, strides, (2, 1, 2, 2, 2))
    repeats = tuple(repeats) if repeats is not None else default_repeats
    if len(repeats) != 4:
        raise ValueError(f"repeats must list 4 stages, got {repeats}")
    channels = [_scaled(c, width, even=False) for c in (64, 128, 256, 512)]
    return SearchSpace(
        name=name,
        family="resnet",
        image_size=int(image_size),
        num_classes=int(num_classes),
        stem_channels=_scaled(64, width, even=False),
        stem_stride=strides[0],
        stages=tuple(Stage(r, c, s) for r, c, s in zip(repeats, channels, strides[1:])),
        head_channels=0,
        dropout=0.0,
        ops=("basic",),
        channel_scales=tuple(channel_scales),
        weight_bits=tuple(weight_bits),
        act_bits=tuple(act_bits),
        fixed_bits=fixed_bits,
        stem_kernel=7 if large else 3,
        stem_pool=large,
        fc_bias=True,
        padding=padding,
        fold_bn=bool(fold_bn),
    )


@register("resnet18_mixed_precision")
def resnet18_mixed_precision(**kw) -> SearchSpace:
    return _resnet("resnet18_mixed_precision", (2, 2, 2, 2), **kw)


@register("resnet34_mixed_precision")
def resnet34_mixed_precision(**kw) -> SearchSpace:
    return _resnet("resnet34_mixed_precision", (3, 4, 6, 3), **kw)


# ---------------------------------------------------------------- hardware-aware spaces (Table 5)
FBNET_OPS = (
    "fb_k3_e1",
    "fb_k3_e1_g2",
    "fb_k3_e3",
    "fb_k3_e6",
    "fb_k5_e1",
    "fb_k5_e1_g2",
    "fb_k5_e3",
    "fb_k5_e6",
    "fb_skip",
)
PROXYLESS_OPS = ("px_k3_e3", "px_k3_e6", "px_k5_e3", "px_k5_e6", "px_k7_e3", "px_k7_e6", "px_zero")


def _mobile(
    name,
    family,
    ops,
    stem,
    stem_blocks,
    stages,
    head,
    default_strides,
    dropout,
    image_size=224,
    num_classes=1000,
    width=1.0,
    strides=None,
    repeats=None,
    ops_override=None,
):
    """A MobileNetV2-like skeleton; ``strides``: stem stride then one per stage (default for
    images below 160 px: :func:`auto_strides`); ``repeats``: blocks per stage."""
    n = len(stages)
    if strides is None:
        strides = default_strides if image_size >= 160 else auto_strides(image_size, n, n + 1)
    strides = tuple(int(v) for v in strides)
    if len(strides) != n + 1 or any(v not in (1, 2) for v in strides):
        raise ValueError(
            f"strides must be {n + 1} values in {{1, 2}} (stem, {n} stages), got {strides}"
        )
    repeats = tuple(int(r) for r in repeats) if repeats is not None else tuple(r for _, r in stages)
    if len(repeats) != n:
        raise ValueError(f"repeats must list {n} stages, got {repeats}")
    even = family == "fbnet"  # grouped ops need even channel counts
    return SearchSpace(
        name=name,
        family=family,
        image_size=int(image_size),
        num_classes=int(num_classes),
        stem_channels=_scaled(stem, width, even),
        stem_stride=strides[0],
        stem_blocks=tuple((op, _scaled(c, width, even)) for op, c in stem_blocks),
        stages=tuple(
            Stage(r, _scaled(c, width, even), st)
            for r, (c, _), st in zip(repeats, stages, strides[1:])
        ),
        head_channels=_scaled(head, width, even),
        dropout=dropout,
        ops=tuple(ops_override) if ops_override else ops,
        fc_bias=True,
    )


@register("fbnet")
def fbnet(ops=None, **kw) -> SearchSpace:
    """FBNet (Wu et al. 2019): 22 searched layers x 9 ops, stem 3x3/2 16, head 1x1 1984, ReLU."""
    return _mobile(
        "fbnet",
        "fbnet",
        FBNET_OPS,
        16,
        (),
        ((16, 1), (24, 4), (32, 4), (64, 4), (112, 4), (184, 4), (352, 1)),
        1984,
        (2, 1, 2, 2, 2, 1, 2, 1),
        0.2,
        ops_override=ops,
        **kw,
    )


@register("proxyless_mobile")
def proxyless_mobile(ops=None, **kw) -> SearchSpace:
    """ProxylessNAS mobile: stem 3x3/2 32 + fixed MBConv e1 k3 to 16, 21 choice layers of
    MBConv k{3,5,7} x e{3,6} (+ zero where the block keeps its shape), head 1x1 1280, ReLU6."""
    return _mobile(
        "proxyless_mobile",
        "proxyless",
        PROXYLESS_OPS,
        32,
        (("px_k3_e1", 16),),
        ((32, 4), (40, 4), (80, 4), (96, 4), (192, 4), (320, 1)),
        1280,
        (2, 2, 2, 2, 1, 2, 1),
        0.1,
        ops_override=ops,
        **kw,
    )


@register("proxyless_gpu")
def proxyless_gpu(ops=None, **kw) -> SearchSpace:
    """ProxylessNAS GPU: the released GPU network's widths (stem 40, first block 24, stages 32, 56,
    112, 128, 256, 432, head 1728) with the mobile space's choices."""
    return _mobile(
        "proxyless_gpu",
        "proxyless",
        PROXYLESS_OPS,
        40,
        (("px_k3_e1", 24),),
        ((32, 4), (56, 4), (112, 4), (128, 4), (256, 4), (432, 1)),
        1728,
        (2, 2, 2, 2, 1, 2, 1),
        0.1,
        ops_override=ops,
        **kw,
    )


# ---------------------------------------------------------------- NAS-Bench-201 (cell space)
@register("nasbench201")
def nasbench201(image_size=32, num_classes=10, width=1.0, repeats=None) -> SearchSpace:
    """NAS-Bench-201 / NATS-Bench topology space (Dong & Yang 2020; ``spos_tf.spaces.nasbench201``):
    stem 3x3 conv (C) + BN; three stages of N cells at C, 2C, 4C channels with a residual
    reduction block before the second and third; BN + ReLU, global pool, FC with bias. The
    published network is C=16 (``width=1``), N=5 (``repeats=5,5,5``), 10 classes, 32x32:
    5^6 = 15,625 cells. Overrides give proxies: ``width`` scales C (C = round(16 * width)),
    ``repeats`` sets N per stage."""
    from spos_tf.spaces import nasbench201 as nb

    c = max(1, int(round(16 * width)))
    repeats = tuple(int(r) for r in repeats) if repeats is not None else (5, 5, 5)
    if len(repeats) != 3:
        raise ValueError(f"repeats must list 3 stages (N cells each), got {repeats}")
    return SearchSpace(
        name="nasbench201",
        family="nb201",
        image_size=int(image_size),
        num_classes=int(num_classes),
        stem_channels=c,
        stem_stride=1,
        stages=(Stage(repeats[0], c, 1), Stage(repeats[1], 2 * c, 2), Stage(repeats[2], 4 * c, 2)),
        head_channels=0,
        dropout=0.0,
        ops=nb.OPS,
        fc_bias=True,
        cell_nodes=nb.NUM_NODES,
    )


# Published architectures as op names per choice block, and the space they belong to. Sources:
# facebookresearch/mobile-vision (maskrcnn-benchmark fbnet_modeldef: "ir_k5_s2" is k5 e1 with
# group-2 1x1 convs and a channel shuffle) and mit-han-lab/proxylessnas (released nets; a layer
# without its conv is the zero op).
_F = "fb_"
_P = "px_"
NAMED_ARCHS = {
    "fbnet_a": (
        "fbnet",
        [
            _F + o
            for o in (
                "skip",
                "k3_e3",
                "k3_e1",
                "skip",
                "skip",
                "k5_e6",
                "k3_e3",
                "k5_e1",
                "k3_e3",
                "k5_e6",
                "k5_e3",
                "k5_e1_g2",
                "k5_e6",
                "k3_e6",
                "k5_e1_g2",
                "k5_e1",
                "k3_e1_g2",
                "k5_e6",
                "k5_e6",
                "k5_e3",
                "k5_e6",
                "k5_e6",
            )
        ],
    ),
    "fbnet_b": (
        "fbnet",
        [
            _F + o
            for o in (
                "k3_e1",
                "k3_e6",
                "k5_e1",
                "k3_e1",
                "k3_e1",
                "k5_e6",
                "k5_e3",
                "k3_e6",
                "k5_e6",
                "k5_e6",
                "k5_e1",
                "skip",
                "k5_e3",
                "k5_e6",
                "k3_e1",
                "k5_e1",
                "k5_e3",
                "k5_e6",
                "k5_e1",
                "k5_e6",
                "k5_e6",
                "k3_e6",
            )
        ],
    ),
    "fbnet_c": (
        "fbnet",
        [
            _F + o
            for o in (
                "k3_e1",
                "k3_e6",
                "skip",
                "k3_e1",
                "k3_e1",
                "k5_e6",
                "k5_e3",
                "k5_e6",
                "k3_e6",
                "k5_e6",
                "k5_e3",
                "k5_e6",
                "k5_e6",
                "k5_e6",
                "k5_e6",
                "k5_e6",
                "k5_e3",
                "k5_e6",
                "k5_e6",
                "k5_e6",
                "k5_e6",
                "k3_e6",
            )
        ],
    ),
    "proxyless_mobile": (
        "proxyless_mobile",
        [
            _P + o
            for o in (
                "k5_e3",
                "k3_e3",
                "zero",
                "zero",
                "k7_e3",
                "k3_e3",
                "k5_e3",
                "k5_e3",
                "k7_e6",
                "k5_e3",
                "k5_e3",
                "k5_e3",
                "k5_e6",
                "k5_e3",
                "k5_e3",
                "k5_e3",
                "k7_e6",
                "k7_e6",
                "k7_e3",
                "k7_e3",
                "k7_e6",
            )
        ],
    ),
    "proxyless_gpu": (
        "proxyless_gpu",
        [
            _P + o
            for o in (
                "k5_e3",
                "zero",
                "zero",
                "zero",
                "k7_e3",
                "zero",
                "zero",
                "k3_e3",
                "k7_e6",
                "zero",
                "zero",
                "k5_e3",
                "k5_e6",
                "zero",
                "k3_e3",
                "k5_e3",
                "k7_e6",
                "k7_e6",
                "k7_e6",
                "k5_e6",
                "k7_e6",
            )
        ],
    ),
}


def named_arch(space: SearchSpace, name: str):
    """The published architecture ``name`` (:data:`NAMED_ARCHS`) as an Architecture of ``space``.

    Raises:
      ValueError: unknown name, or a space that cannot hold it (other ops or block count).
    """
    if name not in NAMED_ARCHS:
        raise ValueError(f"unknown named architecture {name!r}; known: {sorted(NAMED_ARCHS)}")
    home, ops = NAMED_ARCHS[name]
    missing = sorted(set(ops) - set(space.ops))
    if missing or len(ops) != space.num_blocks:
        raise ValueError(
            f"architecture {name!r} belongs to space {home!r} ({len(ops)} blocks); "
            f"space {space.name!r} has {space.num_blocks} blocks and ops "
            f"{space.ops}{f', lacking {missing}' if missing else ''}"
        )
    return space.make(op=[space.ops.index(op) for op in ops])
