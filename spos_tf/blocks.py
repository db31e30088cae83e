"""The layer code shared by the supernet and the stand-alone networks.

:class:`OpUnit` is one candidate op of one choice block, allocated at its largest mid width; a call
with ``width=w`` runs the op at mid width ``w`` on leading slices of the same variables. The supernet
holds one unit per candidate op and block and picks among them with ``tf.switch_case``; a stand-alone
network holds only the chosen unit of each block, allocated at the chosen width. :class:`Stem` and
:class:`Head` are shared the same way.
"""
from __future__ import annotations

import zlib

import spos_tf  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from spos_tf import ops as ops_lib
from spos_tf.layers import BNControl, layer_weights, make_primitive, pad_for


def layer_seed(seed: int, name: str) -> int:
    """A deterministic initializer seed for the layer named ``name`` in a model seeded ``seed``."""
    return (zlib.crc32(name.encode()) + 7919 * int(seed)) % (2 ** 31 - 1)


class PrimHolder(keras.layers.Layer):
    """A layer made of named primitives (``self.prims``): the base of :class:`OpUnit`,
    :class:`Stem` and :class:`Head`.

    Public because other modules address a network through it: weight inheritance
    (``spos_tf.standalone``), quantization wrapping (``spos_tf.quant.apply``), export inspection
    (``spos_tf.export_lib``) and the reference import walk a model's ``PrimHolder`` layers and
    their :meth:`weight_dict`."""

    def _make_prims(self, prims: dict, *, seed: int, control: BNControl, affine: bool,
                    first: bool = False, padding: str = "same"):
        self.prims = {}
        for pname, prim in prims.items():
            self.prims[pname] = make_primitive(
                pname, prim, seed=layer_seed(seed, f"{self.name}/{pname}"), control=control,
                affine=affine, first=first, padding=padding)

    def weight_dict(self) -> dict:
        """``{"prim/weight": variable}`` for every variable (moving statistics included).

        A primitive replaced by a wrapper (``spos_tf.quant.apply``) names its variables itself
        through ``named_weights()``: its float kernel is no longer the layer's ``kernel``
        attribute, and it adds variables of its own (quantizer ranges)."""
        return {f"{p}/{w}": v for p, layer in self.prims.items()
                for w, v in (layer.named_weights() if hasattr(layer, "named_weights")
                             else layer_weights(layer)).items()}

    def quantizable(self) -> list:
        """Names of primitives whose weights count towards BitOps (see ``Prim.quantized``)."""
        return [p for p, layer in self.prims.items() if layer.prim.quantized]


class OpUnit(PrimHolder):
    """One candidate op of one block.

    Args:
      op: op name (``spos_tf.ops.OPS``).
      cin, cout, stride, in_hw: the block's shape.
      widths: the mid widths this unit must serve; variables are allocated at ``max(widths)``.
      control: the model's shared BN control; affine: BN with gamma/beta (stand-alone) or not.
      padding: the space's ``padding`` (``spos_tf.layers.pad_for``).
    Call: ``unit(x, training=..., width=w)`` with a static ``w`` in ``widths`` (default: the max).
    """

    def __init__(self, op: str, cin: int, cout: int, stride: int, in_hw: int, widths: tuple,
                 control: BNControl, affine: bool, seed: int = 0, padding: str = "same",
                 **kwargs):
        super().__init__(**kwargs)
        self.spec = ops_lib.get_op(op)
        self.cin, self.cout, self.stride, self.in_hw = cin, cout, stride, in_hw
        self.widths = tuple(widths)
        self.max_width = max(self.widths)
        self._make_prims(self.spec.prims(cin, cout, self.max_width, stride, in_hw), seed=seed,
                         control=control, affine=affine, padding=padding)

    def prim_specs(self, width: int) -> dict:
        return self.spec.prims(self.cin, self.cout, width, self.stride, self.in_hw)

    def call(self, x, training=None, width=None):
        width = width or self.max_width
        p = self.prims
        kind = self.spec.kind
        if kind == "basic":
            h = tf.nn.relu(p["bn1"](p["conv1"](x, out_channels=width), training=training))
            h = p["bn2"](p["conv2"](h), training=training)
            shortcut = p["down_bn"](p["down"](x), training=training) if "down" in p else x
            return tf.nn.relu(h + shortcut)
        if self.stride == 1:
            proj, main = x[..., 0::2], x[..., 1::2]     # the reference's channel shuffle + split
        else:
            proj = main = x
        if kind == "shuffle":
            h = tf.nn.relu(p["bn1"](p["conv1"](main, out_channels=width), training=training))
            h = p["bn2"](p["dw"](h), training=training)
            h = tf.nn.relu(p["bn3"](p["conv2"](h), training=training))
        elif kind == "xception":
            h = p["bn1"](p["dw1"](main), training=training)
            h = tf.nn.relu(p["bn2"](p["conv1"](h, out_channels=width), training=training))
            h = p["bn3"](p["dw2"](h), training=training)
            h = tf.nn.relu(p["bn4"](p["conv2"](h, out_channels=width), training=training))
            h = p["bn5"](p["dw3"](h), training=training)
            h = tf.nn.relu(p["bn6"](p["conv3"](h), training=training))
        else:
            raise ValueError(f"unknown op kind {kind!r}")
        if self.stride == 2:
            proj = p["proj_bn1"](p["proj_dw"](proj), training=training)
            proj = tf.nn.relu(p["proj_bn2"](p["proj_conv"](proj), training=training))
        return tf.concat([proj, h], axis=-1)


class Stem(PrimHolder):
    """First conv + BN + ReLU (+ 3x3/2 max-pool when ``space.stem_pool``), padded as
    ``space.padding`` says."""

    def __init__(self, space, control: BNControl, affine: bool, seed: int = 0, **kwargs):
        super().__init__(name="stem", **kwargs)
        self.pool = space.stem_pool
        self.padding = space.padding
        self._make_prims(ops_lib.stem_prims(space), seed=seed, control=control, affine=affine,
                         first=True, padding=space.padding)

    def call(self, x, training=None):
        x = tf.nn.relu(self.prims["stem_bn"](self.prims["stem_conv"](x), training=training))
        if self.pool:
            x, mode = pad_for(x, 3, 2, self.padding, value=float("-inf"))
            x = tf.nn.max_pool2d(x, 3, 2, mode)
        return x


class Head(PrimHolder):
    """Optional 1x1 conv + BN + ReLU, global average pool, dropout, classifier (logits)."""

    def __init__(self, space, control: BNControl, affine: bool, seed: int = 0, **kwargs):
        super().__init__(name="head", **kwargs)
        last = space.stages[-1].channels
        self._make_prims(ops_lib.head_prims(space, last, space.final_hw), seed=seed,
                         control=control, affine=affine, padding=space.padding)
        self.dropout = keras.layers.Dropout(space.dropout, seed=layer_seed(seed, "dropout"))

    def call(self, x, training=None):
        if "head_conv" in self.prims:
            x = tf.nn.relu(self.prims["head_bn"](self.prims["head_conv"](x), training=training))
        x = tf.reduce_mean(x, axis=[1, 2])
        x = self.dropout(x, training=training)
        return self.prims["classifier"](x)


def unit_name(block: int, op: str) -> str:
    return f"block{block:02d}_{op}"
