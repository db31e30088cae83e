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

from spos_tf.spaces import ops as ops_lib
from spos_tf.models.layers import BNControl, layer_weights, make_primitive, pad_for


def layer_seed(seed: int, name: str) -> int:
    """A deterministic initializer seed for the layer named ``name`` in a model seeded ``seed``."""
    return (zlib.crc32(name.encode()) + 7919 * int(seed)) % (2**31 - 1)


class PrimHolder(keras.layers.Layer):
    """A layer made of named primitives (``self.prims``): the base of :class:`OpUnit`,
    :class:`Stem` and :class:`Head`.

    Public because other modules address a network through it: weight inheritance
    (``spos_tf.models.standalone``), quantization wrapping (``spos_tf.quant.apply``), export inspection
    (``spos_tf.export.run``) and the reference import walk a model's ``PrimHolder`` layers and
    their :meth:`weight_dict`."""

    def _make_prims(
        self,
        prims: dict,
        *,
        seed: int,
        control: BNControl,
        affine: bool,
        first: bool = False,
        padding: str = "same",
    ):
        self.prims = {}
        for pname, prim in prims.items():
            self.prims[pname] = make_primitive(
                pname,
                prim,
                seed=layer_seed(seed, f"{self.name}/{pname}"),
                control=control,
                affine=affine,
                first=first and not pname.startswith("sb"),
                padding=padding,
            )

    def weight_dict(self) -> dict:
        """``{"prim/weight": variable}`` for every variable (moving statistics included).

        A primitive replaced by a wrapper (``spos_tf.quant.apply``) names its variables itself
        through ``named_weights()``: its float kernel is no longer the layer's ``kernel``
        attribute, and it adds variables of its own (quantizer ranges)."""
        return {
            f"{p}/{w}": v
            for p, layer in self.prims.items()
            for w, v in (
                layer.named_weights() if hasattr(layer, "named_weights") else layer_weights(layer)
            ).items()
        }

    def quantizable(self) -> list:
        """Names of primitives whose weights count towards BitOps (see ``Prim.quantized``)."""
        return [p for p, layer in self.prims.items() if layer.prim.quantized]


class OpUnit(PrimHolder):
    """One candidate op of one block.

    Args:
      op: op name (``spos_tf.spaces.ops.OPS``).
      cin, cout, stride, in_hw: the block's shape.
      widths: the mid widths this unit must serve; variables are allocated at ``max(widths)``.
      control: the model's shared BN control; affine: BN with gamma/beta (stand-alone) or not.
      padding: the space's ``padding`` (``spos_tf.models.layers.pad_for``).
    Call: ``unit(x, training=..., width=w)`` with ``w`` in ``widths`` (default: the max), a Python
    int or a scalar int32 tensor (then the slices are dynamic: one trace serves every width).
    """

    def __init__(
        self,
        op: str,
        cin: int,
        cout: int,
        stride: int,
        in_hw: int,
        widths: tuple,
        control: BNControl,
        affine: bool,
        seed: int = 0,
        padding: str = "same",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.spec = ops_lib.get_op(op)
        self.cin, self.cout, self.stride, self.in_hw = cin, cout, stride, in_hw
        self.widths = tuple(widths)
        self.max_width = max(self.widths)
        self._make_prims(
            self.spec.prims(cin, cout, self.max_width, stride, in_hw),
            seed=seed,
            control=control,
            affine=affine,
            padding=padding,
        )

    def prim_specs(self, width: int) -> dict:
        return self.spec.prims(self.cin, self.cout, width, self.stride, self.in_hw)

    def call(self, x, training=None, width=None):
        width = self.max_width if width is None else width
        p = self.prims
        kind = self.spec.kind
        if kind in CELL_KINDS:
            return cell_op(kind, p, x, training)
        if kind in MOBILE_KINDS:
            return mobile_op(self.spec, p, x, training, self.cin, self.cout, self.stride)
        if kind == "basic":
            h = relu(p["bn1"](p["conv1"](x, out_channels=width), training=training))
            h = p["bn2"](p["conv2"](h), training=training)
            shortcut = p["down_bn"](p["down"](x), training=training) if "down" in p else x
            return relu(h + shortcut)
        if self.stride == 1:
            proj, main = shuffle_split(x)  # the reference's channel shuffle + split
        else:
            proj = main = x
        if kind == "shuffle":
            h = relu(p["bn1"](p["conv1"](main, out_channels=width), training=training))
            h = p["bn2"](p["dw"](h), training=training)
            h = relu(p["bn3"](p["conv2"](h), training=training))
        elif kind == "xception":
            h = p["bn1"](p["dw1"](main), training=training)
            h = relu(p["bn2"](p["conv1"](h, out_channels=width), training=training))
            h = p["bn3"](p["dw2"](h), training=training)
            h = relu(p["bn4"](p["conv2"](h, out_channels=width), training=training))
            h = p["bn5"](p["dw3"](h), training=training)
            h = relu(p["bn6"](p["conv3"](h), training=training))
        else:
            raise ValueError(f"unknown op kind {kind!r}")
        if self.stride == 2:
            proj = p["proj_bn1"](p["proj_dw"](proj), training=training)
            proj = relu(p["proj_bn2"](p["proj_conv"](proj), training=training))
        return tf.concat([proj, h], axis=-1)


MOBILE_KINDS = ("mbconv", "skip", "zero")
CELL_KINDS = ("nb_none", "nb_skip", "nb_conv", "nb_pool")


def cell_op(kind: str, p: dict, x, training):
    """Dataflow of the NAS-Bench-201 edge ops (shape-keeping): zero, identity, ReLU-conv-BN,
    3x3/1 average pool whose border windows average only the pixels inside (SAME padding, as
    PyTorch's ``count_include_pad=False``)."""
    if kind == "nb_none":
        return tf.zeros_like(x)
    if kind == "nb_skip":
        return tf.identity(x)
    if kind == "nb_pool":
        return tf.nn.avg_pool2d(x, 3, 1, "SAME")
    return p["bn"](p["conv"](relu(x)), training=training)


def shuffle_split(x):
    """The reference's channel shuffle + split of a stride-1 ShuffleNetV2 unit:
    ``(x[..., 0::2], x[..., 1::2])`` (even channels, odd channels).

    Computed as a reshape to ``[pixels, C/2, 2]``, a transpose to ``[2, pixels, C/2]`` and an
    unstack of the leading axis: the same values, but forward + backward run 6-7x faster on
    CPU with oneDNN (3-4x without) than the two strided slices, whose gradient (``StridedSliceGrad``)
    scatters element by element: on the 224 px supernet the strided form took about a third of a
    training step (``benchmarks/shuffle_split.py``; benchmarks/RESULTS.md "Issue 15: supernet step
    overhead"). Falls back to the slices when ``C`` is not static or odd.
    """
    c = x.shape[-1]
    if c is None or c % 2:
        return x[..., 0::2], x[..., 1::2]
    dims = [d if d is not None else -1 for d in x.shape[1:-1]]
    if -1 in dims:  # unknown spatial size: the batch dimension must stay the one -1
        dims = list(tf.unstack(tf.shape(x)[1:-1]))
    pairs = tf.transpose(tf.reshape(x, [-1, c // 2, 2]), [2, 0, 1])
    even, odd = tf.unstack(pairs)
    return tf.reshape(even, [-1, *dims, c // 2]), tf.reshape(odd, [-1, *dims, c // 2])


# Callables fed the input of every ReLU the model code runs (:func:`relu`, :func:`relu6`), e.g.
# the NASWOT proxy's binary codes (:func:`spos_tf.rank.zero_cost.relu_taps`). Empty outside it, so
# traced graphs (training, scoring) are unchanged.
RELU_TAPS: list = []


def relu(x):
    """``tf.nn.relu(x)``, after feeding ``x`` to every callable of :data:`RELU_TAPS`."""
    for tap in RELU_TAPS:
        tap(x)
    return tf.nn.relu(x)


def relu6(x):
    """``tf.nn.relu6(x)``, after feeding ``x`` to every callable of :data:`RELU_TAPS`."""
    for tap in RELU_TAPS:
        tap(x)
    return tf.nn.relu6(x)


def activation(family: str):
    """The ReLU of an op family (``spos_tf.spaces.ops.FAMILY_ACT``): :func:`relu` or
    :func:`relu6` (``tf.nn.relu`` / ``tf.nn.relu6`` with :data:`RELU_TAPS`)."""
    return {"relu": relu, "relu6": relu6}[ops_lib.FAMILY_ACT.get(family, "relu")]


def channel_shuffle(x, groups: int):
    """ShuffleNet's channel shuffle: ``[.., g * n] -> [.., n * g]`` (reshape, transpose)."""
    shape = tf.shape(x)
    c = x.shape[-1]
    y = tf.reshape(x, tf.concat([shape[:3], [groups, c // groups]], 0))
    y = tf.transpose(y, [0, 1, 2, 4, 3])
    return tf.reshape(y, tf.concat([shape[:3], [c]], 0))


def mobile_op(spec, p: dict, x, training, cin: int, cout: int, stride: int):
    """Dataflow of the MobileNetV2-like ops (``mbconv``, FBNet ``skip``, ProxylessNAS ``zero``)
    on the primitives ``p`` (named as in ``spos_tf.spaces.ops``)."""
    act = activation(spec.family)
    keeps = stride == 1 and cin == cout
    if spec.kind == "zero":
        if keeps:
            return x
        # Never chosen (illegal here, see OpSpec.is_legal); a switch_case branch still needs
        # an output of the block's shape.
        y = x[:, ::stride, ::stride, :1] * 0.0
        return tf.tile(y, [1, 1, 1, cout])
    if spec.kind == "skip":
        return x if not p else act(p["bn"](p["conv"](x), training=training))
    h = x
    if "pw" in p:
        h = act(p["pw_bn"](p["pw"](h), training=training))
    h = act(p["dw_bn"](p["dw"](h), training=training))
    if spec.groups > 1:
        h = channel_shuffle(h, spec.groups)
    h = p["pwl_bn"](p["pwl"](h), training=training)
    return h + x if keeps else h


class Stem(PrimHolder):
    """First conv + BN + ReLU (+ 3x3/2 max-pool when ``space.stem_pool``), then the fixed
    ``space.stem_blocks`` (primitives ``sb<i>_*``); padded as ``space.padding`` says."""

    def __init__(self, space, control: BNControl, affine: bool, seed: int = 0, **kwargs):
        super().__init__(name="stem", **kwargs)
        self.pool = space.stem_pool
        self.padding = space.padding
        self.act = activation(space.family)
        # NAS-Bench-201's stem is conv + BN only: every cell op starts with its own ReLU.
        self.stem_act = not space.cell_nodes
        self.blocks = []
        cin = space.stem_channels
        for i, (op, cout) in enumerate(space.stem_blocks):
            self.blocks.append((f"sb{i}_", ops_lib.get_op(op), cin, cout))
            cin = cout
        self._make_prims(
            ops_lib.stem_prims(space),
            seed=seed,
            control=control,
            affine=affine,
            first=True,
            padding=space.padding,
        )

    def call(self, x, training=None):
        x = self.prims["stem_bn"](self.prims["stem_conv"](x), training=training)
        if self.stem_act:
            x = self.act(x)
        if self.pool:
            x, mode = pad_for(x, 3, 2, self.padding, value=float("-inf"))
            x = tf.nn.max_pool2d(x, 3, 2, mode)
        for prefix, spec, cin, cout in self.blocks:
            p = {k[len(prefix) :]: v for k, v in self.prims.items() if k.startswith(prefix)}
            x = mobile_op(spec, p, x, training, cin, cout, 1)
        return x


class Head(PrimHolder):
    """Optional 1x1 conv + BN + ReLU, global average pool, dropout, classifier (logits).

    The logits are float32 under every precision policy (computed in the policy's compute dtype,
    then cast), so that losses, softmax and accuracy are computed in float32."""

    def __init__(self, space, control: BNControl, affine: bool, seed: int = 0, **kwargs):
        super().__init__(name="head", **kwargs)
        last = space.stages[-1].channels
        self._make_prims(
            ops_lib.head_prims(space, last, space.final_hw),
            seed=seed,
            control=control,
            affine=affine,
            padding=space.padding,
        )
        self.dropout = keras.layers.Dropout(space.dropout, seed=layer_seed(seed, "dropout"))
        self.act = activation(space.family)

    def call(self, x, training=None):
        if "head_conv" in self.prims:
            x = self.act(self.prims["head_bn"](self.prims["head_conv"](x), training=training))
        elif "head_bn" in self.prims:  # BN + ReLU without a conv (NAS-Bench-201's lastact)
            x = self.act(self.prims["head_bn"](x, training=training))
        x = tf.reduce_mean(x, axis=[1, 2])
        x = self.dropout(x, training=training)
        return tf.cast(self.prims["classifier"](x), tf.float32)  # no op under float32


def unit_name(block: int, op: str) -> str:
    return f"block{block:02d}_{op}"
