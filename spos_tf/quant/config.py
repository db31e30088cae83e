"""QuantizeConfig for layers that keep their float weight in one attribute (``self.kernel``).

Contract for a quantizable layer: ``build`` creates the weight with
``self.<kernel_attr> = self.add_weight(...)`` and ``call`` reads ``self.<kernel_attr>`` (not a
captured local). TF-MOT's wrapper replaces that attribute with the quantized tensor before every
``layer.call``; tf_keras then drops the variable from ``layer.trainable_weights`` (it stays in the
wrapper's). So after the first call, ``layer.kernel`` is a tensor: reach the variable through
`spos_tf.quant.kernel_variable(wrapper)` or ``wrapper.trainable_weights``.
"""

from tensorflow_model_optimization.quantization.keras import QuantizeConfig

from spos_tf.quant.quantizers import ActivationQuantizer, WeightQuantizer


class KernelQuantizeConfig(QuantizeConfig):
    """Quantizes ``layer.<kernel_attr>`` and, optionally, the layer's input and output.

    Args:
      weight_quantizer: quantizer for the kernel (normally a `WeightQuantizer`).
      input_quantizer: quantizer for the layer's input, or None. Plain TF-MOT wrappers ignore it;
        `spos_tf.quant.InputQuantizeWrapper` applies it (see `get_input_quantizers`).
      output_quantizer: quantizer for the layer's output, or None.
      kernel_attr: attribute holding the float weight ("kernel"; "depthwise_kernel" for
        tf_keras DepthwiseConv2D).

    Biases, BN parameters and activation functions are left in float.
    """

    def __init__(
        self, weight_quantizer, input_quantizer=None, output_quantizer=None, kernel_attr="kernel"
    ):
        self.weight_quantizer = weight_quantizer
        self.input_quantizer = input_quantizer
        self.output_quantizer = output_quantizer
        self.kernel_attr = kernel_attr

    def get_weights_and_quantizers(self, layer):
        kernel = getattr(layer, self.kernel_attr, None)
        if kernel is None:
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}) has no weight attribute "
                f"{self.kernel_attr!r}; build it first or pass kernel_attr="
            )
        return [(kernel, self.weight_quantizer)]

    def set_quantize_weights(self, layer, quantize_weights):
        if len(quantize_weights) != 1:
            raise ValueError(f"expected 1 quantized weight, got {len(quantize_weights)}")
        setattr(layer, self.kernel_attr, quantize_weights[0])

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [self.output_quantizer] if self.output_quantizer is not None else []

    def get_input_quantizers(self, layer):
        """Extension read by `InputQuantizeWrapper`: quantizers for the layer's single input."""
        return [self.input_quantizer] if self.input_quantizer is not None else []

    def get_config(self):
        def ser(q):
            return None if q is None else {"class_name": type(q).__name__, "config": q.get_config()}

        return {
            "weight_quantizer": ser(self.weight_quantizer),
            "input_quantizer": ser(self.input_quantizer),
            "output_quantizer": ser(self.output_quantizer),
            "kernel_attr": self.kernel_attr,
        }

    @classmethod
    def from_config(cls, config):
        """Rebuilds the config; selectors are run-time objects and come back fresh (unset)."""
        known = {c.__name__: c for c in (WeightQuantizer, ActivationQuantizer)}

        def de(item):
            if item is None or not isinstance(item, dict):
                return item
            return known[item["class_name"]].from_config(item["config"])

        config = dict(config)
        for key in ("weight_quantizer", "input_quantizer", "output_quantizer"):
            config[key] = de(config.get(key))
        return cls(**config)
