"""BN folded into the quantized conv before the weight fake quantization (``space.fold_bn``).

Why: TFLite runs a conv followed by BN as one conv with weights ``w * gamma / sqrt(var + eps)``
and a bias. When the BN stays a separate layer after fake-quantized weights (the default), the
converter folds it into the already quantized weights, the result is off the QAT grid, and the
weights are re-quantized to INT8 per channel, whatever bits the search chose. Folding first, as
TF-MOT's conv-BN folding does for 8 bits (Jacob et al. 2018, Krishnamoorthi 2018 Sec. 3.2), puts
the weights the conv uses on the searched grid, which the converter stores as packed INT4 when
they have <= 4 bits and the conv's output is fake-quantized too (see
:mod:`spos_tf.export.convert`).

What runs, per folded pair ``conv -> bn`` of a stand-alone quantized network (stem and choice
blocks; the classifier has no BN), with ``s = gamma / sqrt(var + eps)``::

    y = conv(q_in(x), q_w(w * s)) + (beta - mean * s)          then   q_out(y)  (8 bits, signed)

- training: ``mean``/``var`` are the batch statistics of the float conv ``conv(q_in(x), w)``
  (one extra conv per call; gradients flow through them, as through BN), and the BN's moving
  statistics are updated from them exactly as :class:`spos_tf.models.layers.BatchNorm` does (unbiased
  variance, the model's shared ``BNControl`` momentum), so BN recalibration works unchanged;
- inference: the moving statistics. With ``q_w`` the identity the output equals
  ``bn(conv(x))`` up to float rounding (tested).
- ``q_out`` is an 8-bit signed activation quantizer with running range statistics (variables
  ``output_range_{max,sigma,count}``, reset by :func:`spos_tf.quant.apply.reset_quant_ranges`):
  TFLite computes these tensors in int8 anyway; in the QAT graph it gives the converter the
  output range it needs to keep the weight grid.
- :func:`set_int8_storage` (the export's int8 twin) re-expresses the <= 4-bit weights exactly
  on an 8-bit grid, so that the converter stores the same values as INT8 (for the size
  comparison int4 vs int8).
- 1-bit weights (``alpha * sign``, no FakeQuant op) pass through a 2-bit narrow-range FakeQuant
  over ``[-alpha, alpha]``, which leaves their values unchanged and lets the converter store
  them as INT4 too.

Which pairs: a ``conv`` primitive followed, in its holder's ``prims`` order, by a ``bn``
primitive (the order :mod:`spos_tf.spaces.ops` declares them in: every BN normalises the output of
the primitive before it). The BN's slot in ``holder.prims`` becomes a :class:`FoldedBatchNorm`
pass-through that still owns and names the BN's variables, so checkpoints, weight inheritance
(:func:`spos_tf.inherit`) and ``PrimHolder.weight_dict`` keep their names; the model code in
:mod:`spos_tf.models.blocks` is unchanged.

The supernet is never folded: search scores unfolded paths; ``fold_bn`` changes what
quantization-aware *retraining* trains and what the export stores. Cost per folded conv in
training: one more conv and two reductions over its output; in inference: a per-channel scale
of the kernel (constant-folded by the converter).
"""

from __future__ import annotations

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow / TF-MOT load)
import tensorflow as tf
import tf_keras as keras
from tf_keras import backend

from spos_tf.models.layers import layer_weights
from spos_tf.quant.apply import SlicedQuantizeWrapper
from spos_tf.quant.quantizers import ActivationQuantizer, _clip

OUTPUT_BITS = 8


class FoldedBatchNorm(keras.layers.Layer):
    """Takes a folded BN's slot in ``holder.prims``: passes its input through unchanged and owns
    (for checkpoints and :meth:`named_weights`) the BN layer whose statistics the conv before it
    folds."""

    def __init__(self, bn, **kwargs):
        super().__init__(name=bn.name, **kwargs)
        self.bn = bn
        self.prim = bn.prim

    def call(self, x, training=None):
        return x

    def named_weights(self) -> dict:
        return layer_weights(self.bn)


class FoldedQuantizeWrapper(SlicedQuantizeWrapper):
    """A quantized conv with the following BN folded in before its weight fake quantization
    (module docstring). Stand-alone networks only: the kernel is used whole and the weight
    quantizer has one bit width.

    Args:
      layer, quantize_config: as for :class:`~spos_tf.quant.apply.SlicedQuantizeWrapper` (the
        conv and the config :func:`spos_tf.quant.quantize_layer` made for it).
      bn: the :class:`spos_tf.models.layers.BatchNorm` that followed the conv.
    """

    def __init__(self, layer, quantize_config, bn=None, **kwargs):
        super().__init__(layer, quantize_config, **kwargs)
        self.bn = bn
        self.int8_storage = False
        self._output_quantizer = ActivationQuantizer((OUTPUT_BITS,), signed=True)

    def build(self, input_shape):
        super().build(input_shape)
        self._output_vars = self._output_quantizer.build(None, "output", self)

    def _conv(self, x, kernel):
        setattr(self.layer, self.quantize_config.kernel_attr, kernel)
        return self.layer.call(x)

    def _quantized_kernel(self, kernel):
        quantizer = self._slicer.quantizer
        (bits,) = quantizer.bits
        if bits == 1:  # alpha * sign(w): the same values through a FakeQuant op (INT4 storage)
            levels = 1
            clip = tf.stop_gradient(tf.reduce_mean(tf.abs(kernel)))
        else:
            levels = 2 ** (bits - 1) - 1
            clip = _clip(
                tf.sqrt(tf.reduce_mean(tf.square(kernel))),
                tf.reduce_max(tf.abs(kernel)),
                levels,
                quantizer.range_mode,
            )
        if self.int8_storage and bits < 8:
            # The b-bit grid {k * clip / levels} lies on the 8-bit narrow grid of step
            # clip / (levels * m), m = 127 // levels: computed without a FakeQuant op, then
            # one 8-bit FakeQuant over [-127 step, 127 step] that reproduces it.
            if bits == 1:
                q = clip * tf.where(kernel >= 0, tf.ones_like(kernel), -tf.ones_like(kernel))
            else:
                step = clip / levels
                q = tf.clip_by_value(tf.floor(kernel / step + 0.5), -levels, levels) * step
            wide = clip * 127.0 / (levels * (127 // levels))
            return tf.quantization.fake_quant_with_min_max_vars(
                q, -wide, wide, num_bits=8, narrow_range=True
            )
        q = quantizer.quantize(kernel, bits)
        if bits == 1:
            q = tf.quantization.fake_quant_with_min_max_vars(
                q, -clip, clip, num_bits=2, narrow_range=True
            )
        return q

    def call(self, inputs, training=None, **kwargs):
        if kwargs.get("out_channels") not in (None, self.layer.prim.cout):
            raise ValueError(
                f"{self.name}: a BN-folded conv is used whole (stand-alone "
                f"networks); got out_channels={kwargs['out_channels']}"
            )
        if training is None:
            training = backend.learning_phase()
        training = bool(training)
        x = inputs
        if self._input_quantizers:
            x = self._input_quantizers[0](x, training, weights=self._input_quantizer_vars)
        kernel = self._weight_vars[0][0]
        bn = self.bn
        c = kernel.shape[-1]
        gamma = bn.gamma if bn.affine else tf.ones([c], kernel.dtype)
        beta = bn.beta if bn.affine else tf.zeros([c], kernel.dtype)
        if training:
            y_float = self._conv(x, kernel)
            mean, var = tf.nn.moments(y_float, axes=[0, 1, 2])
            n = tf.cast(tf.size(y_float) // c, var.dtype)
            unbiased = var * n / tf.maximum(n - 1.0, 1.0)  # as FusedBatchNormV3 reports it
            m = tf.convert_to_tensor(bn._control.momentum)  # pylint: disable=protected-access
            bn.moving_mean.assign(m * bn.moving_mean + (1.0 - m) * mean)
            bn.moving_variance.assign(m * bn.moving_variance + (1.0 - m) * unbiased)
        else:
            mean, var = bn.moving_mean, bn.moving_variance
        scale = gamma * tf.math.rsqrt(var + bn.epsilon)
        y = self._conv(x, self._quantized_kernel(kernel * scale)) + (beta - mean * scale)
        return self._output_quantizer(y, training, weights=self._output_vars)

    def named_weights(self) -> dict:
        out = super().named_weights()
        for name, var in getattr(self, "_output_vars", {}).items():
            out[f"output_range_{name}"] = var
        return out

    def range_variables(self) -> list:
        return super().range_variables() + list(getattr(self, "_output_vars", {}).values())


def fold_holder(holder) -> list:
    """Folds, in place, every quantized conv of ``holder`` (already wrapped by
    :func:`spos_tf.quant.apply.quantize_holder`, not yet built) with the BN that follows it.

    Returns:
      The names of the folded convs.
    """
    names = list(holder.prims)
    folded = []
    for name, after in zip(names, names[1:]):
        conv, bn = holder.prims[name], holder.prims[after]
        if not (
            type(conv) is SlicedQuantizeWrapper
            and conv.prim.kind == "conv"
            and bn.prim.kind == "bn"
        ):
            continue
        if conv.built:
            raise ValueError(f"{holder.name}/{name} is built already: fold before the first call")
        holder.prims[name] = FoldedQuantizeWrapper(
            conv.layer, conv.quantize_config, bn=bn, name=conv.name
        )
        holder.prims[after] = FoldedBatchNorm(bn)
        folded.append(name)
    return folded


def folded_convs(model) -> list:
    """The :class:`FoldedQuantizeWrapper` layers of a stand-alone network."""
    from spos_tf.models.blocks import PrimHolder

    return [
        p
        for layer in model.layers
        if isinstance(layer, PrimHolder)
        for p in layer.prims.values()
        if isinstance(p, FoldedQuantizeWrapper)
    ]


def set_int8_storage(model, enabled: bool) -> int:
    """Makes the folded convs of ``model`` express their <= 4-bit weights on an 8-bit grid
    (the same values up to float rounding: the b-bit grid is a subset of it), so that the
    converter stores them as INT8: the int8 twin of the export. Read when the model is traced:
    set it before the first call of a ``tf.function``. Returns the number of folded convs."""
    convs = folded_convs(model)
    for conv in convs:
        conv.int8_storage = bool(enabled)
    return len(convs)


__all__ = [
    "FoldedBatchNorm",
    "FoldedQuantizeWrapper",
    "fold_holder",
    "folded_convs",
    "set_int8_storage",
]
