"""The one factory that turns a float layer into a quantized one.

Where activation quantization sits: on each quantized layer's *input*. The paper's choice block
quantizes its weights and its input feature maps; doing it per conv also quantizes the inputs of
the second conv of a block and of the shortcut conv, as quantized ResNets do. TF-MOT's wrapper only
quantizes weights, activation attributes and outputs, so `InputQuantizeWrapper` (a
`QuantizeWrapperV2` subclass) adds one step in front of it: it quantizes the input with the
config's ``get_input_quantizers`` before the stock wrapper quantizes the kernel and calls the layer.
Everything else (weight replacement, output quantizers, trainable-weight bookkeeping) is TF-MOT's.

Cost per call: the weight range is two reductions over the kernel; the activation range, in
training, three reductions over the input; one ``switch_case`` per quantizer with several choices.
"""

import contextlib

import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.keras import utils as tfmot_utils
from tensorflow_model_optimization.quantization.keras import QuantizeWrapperV2
from tf_keras import backend

from spos_tf.quant.config import KernelQuantizeConfig
from spos_tf.quant.quantizers import ActivationQuantizer, BitSelector, WeightQuantizer


class InputQuantizeWrapper(QuantizeWrapperV2):
    """`QuantizeWrapperV2` that also quantizes the wrapped layer's (single) input.

    The input quantizer comes from ``quantize_config.get_input_quantizers(layer)`` when the config
    has that method (`KernelQuantizeConfig` does); otherwise this behaves like `QuantizeWrapperV2`.
    Its variables are built on this wrapper under the name prefix ``input``.
    """

    def build(self, input_shape):
        super().build(input_shape)
        get = getattr(self.quantize_config, "get_input_quantizers", None)
        self._input_quantizers = list(get(self.layer)) if get is not None else []
        if len(self._input_quantizers) > 1:
            raise ValueError("InputQuantizeWrapper supports at most one input quantizer")
        self._input_quantizer_vars = (
            self._input_quantizers[0].build(input_shape, "input", self)
            if self._input_quantizers
            else {}
        )

    def call(self, inputs, training=None, **kwargs):
        if training is None:
            training = backend.learning_phase()
        if self._input_quantizers:
            quantizer = self._input_quantizers[0]
            qvars = self._input_quantizer_vars
            inputs = tfmot_utils.smart_cond(
                training,
                lambda: quantizer(inputs, True, weights=qvars),
                lambda: quantizer(inputs, False, weights=qvars),
            )
        return super().call(inputs, training=training, **kwargs)


def custom_objects():
    """Classes needed to deserialize wrappers made by this module."""
    return {
        "InputQuantizeWrapper": InputQuantizeWrapper,
        "KernelQuantizeConfig": KernelQuantizeConfig,
        "WeightQuantizer": WeightQuantizer,
        "ActivationQuantizer": ActivationQuantizer,
    }


def quantize_scope():
    """TF-MOT ``quantize_scope`` with this module's classes (for ``from_config`` / model loading)."""
    return tfmot.quantization.keras.quantize_scope(custom_objects())


def quantize_layer(
    layer,
    weight_selector,
    act_selector,
    weight_bits=(1, 2, 3, 4),
    act_bits=(1, 2, 3, 4),
    *,
    kernel_attr="kernel",
    per_axis=False,
    axis=-1,
    act_signed=False,
    momentum=0.9,
    range_mode="mse",
    name_prefix="quant_",
):
    """Wraps ``layer`` so that its kernel and its input are fake-quantized at selectable widths.

    Args:
      layer: tf_keras layer storing its float weight as ``self.<kernel_attr>`` and reading it in
        ``call`` (see `spos_tf.quant.config`). Built or not.
      weight_selector, act_selector: `BitSelector`s indexing ``weight_bits`` / ``act_bits``; share
        one selector among the layers of a choice block. Ignored for a single-choice tuple.
      weight_bits: weight bit-width choices (1..8). act_bits: input bit-width choices (1..8), or
        None to leave the input in float.
      kernel_attr: "kernel", or "depthwise_kernel" for tf_keras DepthwiseConv2D.
      per_axis, axis: per-output-channel weight ranges (axis -1 for conv/dense, -2 for depthwise).
      act_signed: signed input range (e.g. normalised images into the first conv).
      momentum, range_mode: see `ActivationQuantizer` / `WeightQuantizer`.

    Returns:
      An `InputQuantizeWrapper` (a `QuantizeWrapperV2`). Its non-trainable variables are
      ``optimizer_step`` and, with input quantization, ``input_range_{max,sigma,count}``; they do
      not depend on the bit choices, so a fixed-bit wrapper of the same layer has the same
      variables in the same order (weights transfer one-to-one).
    """
    weight_q = WeightQuantizer(
        weight_bits, weight_selector, per_axis=per_axis, axis=axis, range_mode=range_mode
    )
    input_q = None
    if act_bits is not None:
        input_q = ActivationQuantizer(
            act_bits, act_selector, signed=act_signed, momentum=momentum, range_mode=range_mode
        )
    config = KernelQuantizeConfig(weight_q, input_quantizer=input_q, kernel_attr=kernel_attr)
    return InputQuantizeWrapper(layer, config, name_prefix=name_prefix)


def quantize_layer_fixed(layer, weight_bits=8, act_bits=8, **kwargs):
    """`quantize_layer` with one bit width each (no selector, no ``switch_case``).

    For the 8-bit first conv / last FC of the supernet and for every layer of a stand-alone
    network (TFLite-convertible: only FakeQuant ops). ``act_bits=None`` leaves the input float.
    """
    return quantize_layer(
        layer,
        None,
        None,
        weight_bits=(weight_bits,),
        act_bits=None if act_bits is None else (act_bits,),
        **kwargs,
    )


def kernel_variable(wrapper):
    """The float weight variable quantized by ``wrapper`` (``wrapper.layer.kernel`` is a tensor
    after the first call)."""
    if not wrapper.built:
        return getattr(wrapper.layer, wrapper.quantize_config.kernel_attr)
    return wrapper._weight_vars[0][0]  # pylint: disable=protected-access


@contextlib.contextmanager
def selecting(pairs):
    """Sets several selectors at once: ``with selecting([(sel, idx), ...]):``."""
    with contextlib.ExitStack() as stack:
        for selector, index in pairs:
            stack.enter_context(selector.selecting(index))
        yield


__all__ = [
    "BitSelector",
    "InputQuantizeWrapper",
    "custom_objects",
    "kernel_variable",
    "quantize_layer",
    "quantize_layer_fixed",
    "quantize_scope",
    "selecting",
]
