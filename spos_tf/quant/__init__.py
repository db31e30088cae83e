"""Selectable-bit fake quantization on TF-MOT (mixed-precision search, paper Sec. 4 / Table 6).

Usage in a supernet (inside the traced training step)::

    w_sel, a_sel = quant.BitSelector(name="b3_w"), quant.BitSelector(name="b3_a")
    conv = quant.quantize_layer(MyConv(64), w_sel, a_sel, weight_bits=(1, 2, 3, 4),
                                act_bits=(1, 2, 3, 4))
    ...
    @tf.function
    def step(x, arch):                      # arch: int32 tensor of bit indices
        w_sel.index, a_sel.index = arch[6], arch[7]
        y = conv(x, training=True)

See `spos_tf.quant.quantizers` for the selector contract, ranges, level sets and gradients, and
`spos_tf.quant.wrap` for where activation quantization sits.
"""

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow / TF-MOT are imported)
from spos_tf.quant.config import KernelQuantizeConfig
from spos_tf.quant.quantizers import (
    GAUSS_CLIP,
    ActivationQuantizer,
    BitSelector,
    WeightQuantizer,
    round_ste,
    sign_ste,
)
from spos_tf.quant.wrap import (
    InputQuantizeWrapper,
    custom_objects,
    kernel_variable,
    quantize_layer,
    quantize_layer_fixed,
    quantize_scope,
    selecting,
)

__all__ = [
    "GAUSS_CLIP",
    "ActivationQuantizer",
    "BitSelector",
    "InputQuantizeWrapper",
    "KernelQuantizeConfig",
    "WeightQuantizer",
    "custom_objects",
    "kernel_variable",
    "quantize_layer",
    "quantize_layer_fixed",
    "quantize_scope",
    "round_ste",
    "selecting",
    "sign_ste",
]
