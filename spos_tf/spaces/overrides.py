"""The flags that override a registered space's factory defaults, each defined once.

:class:`SpaceOverrides` is the typed config of ``--ops --image_size --num_classes --width --strides
--repeats --channel_scales --weight_bits --act_bits --padding --fold_bn`` (every default ``None``:
the space's own). The apps that build a space from flags (``spos_tf.train``, ``spos_tf.costs``,
``spos_tf.latency``) define them with :func:`define` and read them with :func:`from_flags`, whose
dict goes to ``spos_tf.spaces.get(name, **overrides)``.

Plain data, no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from spos_tf.runs import config_flags
from spos_tf.runs.config_flags import field


@dataclasses.dataclass(frozen=True)
class SpaceOverrides:
    """Keyword arguments of a space factory given as flags; ``None`` keeps the factory's default.
    The factories check the values (``spos_tf.spaces.get`` names a bad one)."""

    ops: Optional[tuple[str, ...]] = field(
        None, "Candidate ops override, e.g. shuffle3x3,xception."
    )
    image_size: Optional[int] = field(None, "input resolution override")
    num_classes: Optional[int] = field(None, "number of classes override")
    width: Optional[float] = field(None, "channel width multiplier")
    strides: Optional[tuple[int, ...]] = field(
        None, "stem stride then 4 stage strides, e.g. 1,1,2,2,2"
    )
    repeats: Optional[tuple[int, ...]] = field(None, "blocks per stage, e.g. 1,1,2,1")
    channel_scales: Optional[tuple[float, ...]] = field(None, "channel scale choices")
    weight_bits: Optional[tuple[int, ...]] = field(None, "weight bit-width choices")
    act_bits: Optional[tuple[int, ...]] = field(None, "activation bit-width choices")
    padding: Optional[str] = field(
        None,
        "conv padding: same (TF SAME) or reference (symmetric k//2 like the authors' PyTorch "
        "release, for imported weights)",
        choices=("same", "reference"),
    )
    fold_bn: Optional[bool] = field(
        None,
        "quantized spaces: retrain with BN folded into the conv weights before their fake "
        "quantization (export tflite_int4)",
    )

    def kwargs(self) -> dict:
        """The overrides given: ``None`` and a false ``fold_bn`` (the default of the quantized
        spaces, the only ones that take it) are left out."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None and getattr(self, f.name) is not False
        }


FLAGS = config_flags.flag_names(SpaceOverrides)


def define(fv) -> None:
    """Defines the override flags (:data:`FLAGS`) on the ``absl.flags.FlagValues`` ``fv``."""
    config_flags.define_flags(SpaceOverrides, fv)


def from_flags(fv) -> dict:
    """The overrides given on the parsed flags ``fv``, as ``spos_tf.spaces.get`` keyword
    arguments (typed: tuples of ints or floats where the factory takes numbers)."""
    return config_flags.from_flags(SpaceOverrides, fv).kwargs()
