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

Overrides: ``image_size``, ``num_classes``, ``width`` (multiplies every channel count),
``strides`` (stem stride followed by one stride per stage), ``repeats`` (blocks per stage),
``channel_scales``, ``weight_bits``, ``act_bits``, ``padding`` (``"same"``, TF's default, or
``"reference"``: symmetric ``k // 2`` like the authors' PyTorch release, for imported weights; see
:class:`~spos_tf.space.SearchSpace`). For images smaller than the ImageNet layout wants,
the strides default to keeping the final feature map at >= 4x4: the stride-2 positions are the last
``floor(log2(image_size / 4))`` of (stem, stage 1, ..., stage 4), at most all five.
"""
from __future__ import annotations

import math
from typing import Callable

from spos_tf.space import SearchSpace, Stage

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


def _shufflenet(name, image_size=224, num_classes=1000, width=1.0, strides=None, repeats=None,
                channel_scales=CHANNEL_SCALES, ops=SHUFFLE_OPS, head_channels=1024, dropout=0.1,
                padding="same"):
    strides = _strides(image_size, strides, (2, 2, 2, 2, 2))
    repeats = tuple(repeats) if repeats is not None else (4, 4, 8, 4)
    if len(repeats) != 4:
        raise ValueError(f"repeats must list 4 stages, got {repeats}")
    channels = [_scaled(c, width) for c in (64, 160, 320, 640)]
    return SearchSpace(
        name=name, family="shufflenet", image_size=int(image_size), num_classes=int(num_classes),
        stem_channels=_scaled(16, width), stem_stride=strides[0],
        stages=tuple(Stage(r, c, s) for r, c, s in zip(repeats, channels, strides[1:])),
        head_channels=_scaled(head_channels, width) if head_channels else 0, dropout=dropout,
        ops=tuple(ops), channel_scales=tuple(channel_scales), padding=padding)


@register("shufflenet_oneshot")
def shufflenet_oneshot(channel_scales=(1.0,), **kw) -> SearchSpace:
    return _shufflenet("shufflenet_oneshot", channel_scales=channel_scales, **kw)


@register("shufflenet_oneshot_channels")
def shufflenet_oneshot_channels(op="shuffle3x3", **kw) -> SearchSpace:
    return _shufflenet("shufflenet_oneshot_channels", ops=(op,), **kw)


@register("shufflenet_oneshot_blocks_channels")
def shufflenet_oneshot_blocks_channels(**kw) -> SearchSpace:
    return _shufflenet("shufflenet_oneshot_blocks_channels", **kw)


def _resnet(name, default_repeats, image_size=224, num_classes=1000, width=1.0, strides=None,
            repeats=None, channel_scales=(0.5, 0.75, 1.0), weight_bits=BITS, act_bits=BITS,
            fixed_bits=8, padding="same"):
    large = image_size >= 160
    strides = _strides(image_size, strides, (2, 1, 2, 2, 2))
    repeats = tuple(repeats) if repeats is not None else default_repeats
    if len(repeats) != 4:
        raise ValueError(f"repeats must list 4 stages, got {repeats}")
    channels = [_scaled(c, width, even=False) for c in (64, 128, 256, 512)]
    return SearchSpace(
        name=name, family="resnet", image_size=int(image_size), num_classes=int(num_classes),
        stem_channels=_scaled(64, width, even=False), stem_stride=strides[0],
        stages=tuple(Stage(r, c, s) for r, c, s in zip(repeats, channels, strides[1:])),
        head_channels=0, dropout=0.0, ops=("basic",), channel_scales=tuple(channel_scales),
        weight_bits=tuple(weight_bits), act_bits=tuple(act_bits), fixed_bits=fixed_bits,
        stem_kernel=7 if large else 3, stem_pool=large, fc_bias=True, padding=padding)


@register("resnet18_mixed_precision")
def resnet18_mixed_precision(**kw) -> SearchSpace:
    return _resnet("resnet18_mixed_precision", (2, 2, 2, 2), **kw)


@register("resnet34_mixed_precision")
def resnet34_mixed_precision(**kw) -> SearchSpace:
    return _resnet("resnet34_mixed_precision", (3, 4, 6, 3), **kw)


# ---------------------------------------------------------------- flags (for the absl apps)
OVERRIDE_FLAGS = ("image_size", "num_classes", "width", "strides", "repeats", "channel_scales",
                  "weight_bits", "act_bits", "padding")


def define_override_flags(flag_values=None) -> None:
    """Defines ``--image_size --num_classes --width --strides --repeats --channel_scales
    --weight_bits --act_bits --padding`` (all default None = the space's own default)."""
    from absl import flags

    fv = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_integer("image_size", None, "input resolution override", flag_values=fv)
    flags.DEFINE_integer("num_classes", None, "number of classes override", flag_values=fv)
    flags.DEFINE_float("width", None, "channel width multiplier", flag_values=fv)
    flags.DEFINE_list("strides", None, "stem stride then 4 stage strides, e.g. 1,1,2,2,2",
                      flag_values=fv)
    flags.DEFINE_list("repeats", None, "blocks per stage, e.g. 1,1,2,1", flag_values=fv)
    flags.DEFINE_list("channel_scales", None, "channel scale choices", flag_values=fv)
    flags.DEFINE_list("weight_bits", None, "weight bit-width choices", flag_values=fv)
    flags.DEFINE_list("act_bits", None, "activation bit-width choices", flag_values=fv)
    flags.DEFINE_enum("padding", None, ["same", "reference"],
                      "conv padding: same (TF SAME) or reference (symmetric k//2 like the "
                      "authors' PyTorch release, for imported weights)", flag_values=fv)


def overrides_from_flags(flag_values) -> dict:
    out = {}
    for name in OVERRIDE_FLAGS:
        if name not in flag_values:
            continue
        value = flag_values[name].value
        if value is None:
            continue
        if name in ("strides", "repeats", "weight_bits", "act_bits"):
            value = tuple(int(v) for v in value)
        elif name == "channel_scales":
            value = tuple(float(v) for v in value)
        out[name] = value
    return out
