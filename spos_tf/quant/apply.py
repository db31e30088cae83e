"""The one factory that turns the float model of a quantized space into the quantized model.

"Quantization wraps, it does not fork": the supernet and the stand-alone networks are built from the
float layer code (:mod:`spos_tf.models.blocks`) and this module then replaces, inside each primitive holder
(``Stem``, ``OpUnit``, ``Head``), every primitive whose :class:`~spos_tf.spaces.ops.Prim` is marked
``quantized`` by a TF-MOT wrapper (:class:`SlicedQuantizeWrapper`). Model code never imports this
module: the composition point :mod:`spos_tf.build` (:func:`spos_tf.build_supernet`,
:func:`spos_tf.build_standalone`) passes :func:`quantize_supernet` / :func:`quantize_standalone` to
the float builders when ``space.quantized`` and sets :func:`reset_quant_ranges` as the model's
``recalibration_reset`` hook.

What is quantized, at which bits (``space.weight_bits``, ``space.act_bits``, ``space.fixed_bits``):

- Choice-block primitives (ResNet basic block: ``conv1``, ``conv2``, ``down``): weights at the
  block's weight bits, the primitive's *input* at the block's activation bits. In the supernet one
  pair of `BitSelector`s per block is shared by every quantized primitive of every candidate op of
  that block; :class:`~spos_tf.models.supernet.ChoiceBlock` sets them to ``arch[wbits row, b]`` /
  ``arch[abits row, b]`` (tensors) around its call, so one trace serves every bit combination. In a
  stand-alone network the bits are fixed (no ``switch_case``: TFLite-convertible).
- Stem conv: weights and input at ``fixed_bits``; the input is the normalised image
  (``(x - mean) / std``, signed), so its quantizer is *signed* (symmetric narrow range).
- Classifier: weights and input (the pooled post-ReLU features, unsigned) at ``fixed_bits``,
  per-tensor (a per-axis Dense kernel breaks TFLite conversion).
- Everything else (BN, ReLU, pooling, the residual addition, the classifier bias) stays float.
  ``fixed_bits == 32`` leaves stem and classifier float; ``act_bits == (32,)`` leaves all inputs
  float. A 32 mixed with integer widths is rejected.

Weight ranges are per tensor and are computed from the *used leading slice* of the shared kernel
(the slice a channel choice reads, see :mod:`spos_tf.models.layers`), not from the whole max-width kernel:
the quantized weights of a path then do not depend on channels the path does not have, and the
stand-alone network, whose kernel *is* that slice, quantizes identically (its output equals the
supernet path's). Activation quantizers keep running range statistics (``input_range_max``,
``input_range_sigma``, ``input_range_count``: non-trainable scalars of the wrapper), updated in
training mode only when their branch runs, like BN statistics. :func:`reset_quant_ranges` resets
them for BN-style recalibration.

Costs: one ``switch_case`` over the weight bits and one over the activation bits per quantized
primitive and channel branch of the supernet; the weight range is two reductions over the used
kernel slice per call; in training, three reductions over the input per activation quantizer.
"""

from __future__ import annotations

import numpy as np
import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow / TF-MOT load)
import tensorflow as tf

from spos_tf.models.blocks import PrimHolder
from spos_tf.models.layers import layer_weights
from spos_tf.quant.quantizers import BitSelector
from spos_tf.quant.wrap import (
    InputQuantizeWrapper,
    custom_objects as _wrap_custom_objects,
    kernel_variable,
    quantize_layer,
)
from spos_tf.spaces.space import GENE_KINDS, Architecture, SearchSpace

WBITS_ROW = GENE_KINDS.index("wbits")
ABITS_ROW = GENE_KINDS.index("abits")
OP_ROW = GENE_KINDS.index("op")
FLOAT_BITS = 32
RANGE_NAMES = ("max", "sigma", "count")


# ---------------------------------------------------------------------------- the wrapper
class _LeadingSlice:
    """Stands in for a weight quantizer inside the wrapper: quantizes the leading slice
    ``shape`` of the weight (set by :class:`SlicedQuantizeWrapper` for one call) or the whole
    weight when ``shape`` is None."""

    def __init__(self, quantizer):
        self.quantizer = quantizer
        self.shape = None

    def __call__(self, weight, training, weights, **kwargs):
        if self.shape is not None:
            weight = weight[tuple(slice(0, d) for d in self.shape)]
        return self.quantizer(weight, training, weights=weights, **kwargs)


class SlicedQuantizeWrapper(InputQuantizeWrapper):
    """`InputQuantizeWrapper` for the weight-sharing primitives of :mod:`spos_tf.models.layers`.

    A primitive reads the leading slice of its kernel: ``[..., :cin, :cout]`` with ``cin`` the
    input's channels and ``cout`` the ``out_channels`` call argument (default: all). This wrapper
    quantizes exactly that slice (per-tensor ranges of the used weights) and hands the layer the
    quantized slice, which the layer's own slicing then leaves unchanged. Keyword arguments reach
    the layer's ``call`` (TF-MOT forwards ``**kwargs``).

    Also exposes what the model code reads from a primitive: ``prim`` (its
    :class:`~spos_tf.spaces.ops.Prim`) and :meth:`named_weights` (the kernel *variable*, which
    ``layer.kernel`` no longer is after a call, plus the input-range variables).
    """

    def build(self, input_shape):
        super().build(input_shape)
        if len(self._weight_vars) != 1:
            raise ValueError(
                f"{self.name}: expected one quantized weight, got {len(self._weight_vars)}"
            )
        weight, quantizer, quantizer_vars = self._weight_vars[0]
        self._slicer = _LeadingSlice(quantizer)
        # A fresh list, not an item assignment: Keras tracks the list for checkpointing and
        # refuses to save one whose items were replaced after it was tracked.
        self._weight_vars = [(weight, self._slicer, quantizer_vars)]

    def add_weight(
        self, name=None, shape=None, dtype=None, initializer=None, trainable=None, **kwargs
    ):
        # Range statistics behave like BN moving statistics: each replica updates its own copy
        # in replica context, reads aggregate by mean (an ON_WRITE variable cannot be assigned
        # there without an aggregation).
        if not trainable and name is not None and "_range_" in name:
            kwargs.setdefault("synchronization", tf.VariableSynchronization.ON_READ)
            kwargs.setdefault("aggregation", tf.VariableAggregation.MEAN)
        return super().add_weight(
            name=name,
            shape=shape,
            dtype=dtype,
            initializer=initializer,
            trainable=trainable,
            **kwargs,
        )

    def call(self, inputs, training=None, **kwargs):
        full = tuple(kernel_variable(self).shape)
        used = list(full)
        used[-2] = int(inputs.shape[-1])
        if kwargs.get("out_channels"):
            used[-1] = int(kwargs["out_channels"])
        if any(u > f for u, f in zip(used, full)):
            raise ValueError(
                f"{self.name}: call needs kernel slice {tuple(used)} but the kernel is {full}"
            )
        self._slicer.shape = None if tuple(used) == full else tuple(used)
        try:
            return super().call(inputs, training=training, **kwargs)
        finally:
            self._slicer.shape = None

    @property
    def prim(self):
        return self.layer.prim

    def named_weights(self) -> dict:
        """``{short name: variable}`` as :func:`spos_tf.models.layers.layer_weights` names them, plus
        ``input_range_{max,sigma,count}`` when the input is quantized (after build)."""
        out = layer_weights(self.layer)
        out[self.quantize_config.kernel_attr] = kernel_variable(self)
        for name, var in getattr(self, "_input_quantizer_vars", {}).items():
            out[f"input_range_{name}"] = var
        return out

    def range_variables(self) -> list:
        return list(getattr(self, "_input_quantizer_vars", {}).values())


def custom_objects() -> dict:
    """Classes needed to deserialize models made by this module."""
    return {**_wrap_custom_objects(), "SlicedQuantizeWrapper": SlicedQuantizeWrapper}


# ---------------------------------------------------------------------------- the factory
def _act_bits(bits: tuple):
    """Activation bit choices, or None (float inputs) for ``(32,)``."""
    if tuple(bits) == (FLOAT_BITS,):
        return None
    if FLOAT_BITS in bits:
        raise ValueError(f"activation bits {bits}: 32 (float) cannot be mixed with integer widths")
    return tuple(bits)


def _weight_bits(bits: tuple):
    if FLOAT_BITS in bits:
        raise ValueError(
            f"weight bits {bits}: float (32-bit) weights are not supported in a "
            f"quantized space; use integer widths 1..8"
        )
    return tuple(bits)


def quantize_holder(
    holder: PrimHolder,
    weight_bits,
    act_bits,
    weight_selector=None,
    act_selector=None,
    *,
    signed_input=False,
    build=False,
) -> list:
    """Wraps, in place, every primitive of ``holder`` whose ``Prim.quantized`` is set.

    Args:
      holder: a ``Stem``, ``OpUnit`` or ``Head`` (anything with a ``prims`` dict), not yet
        wrapped.
      weight_bits, act_bits: bit-width choices (tuples; one entry = fixed). ``act_bits`` ``(32,)``
        leaves inputs float.
      weight_selector, act_selector: `BitSelector`s indexing the tuples (ignored when fixed).
      signed_input: symmetric signed input range (the stem's normalised images).
      build: build each wrapper now from its Prim's input shape (the supernet needs this: eagerly
        only one ``switch_case`` branch runs, so unbuilt wrappers would miss their variables).

    Returns:
      The names of the wrapped primitives.

    Raises:
      ValueError: a primitive is already wrapped, or a bit tuple mixes 32 with integer widths.
    """
    wrapped = []
    for name, layer in list(holder.prims.items()):
        if isinstance(layer, InputQuantizeWrapper):
            raise ValueError(f"{holder.name}/{name} is already quantized")
        if not layer.prim.quantized:
            continue
        # quantize_layer picks the quantizers and their settings; its wrapper is only re-issued
        # as the slicing subclass (same layer, same config).
        plain = quantize_layer(
            layer,
            weight_selector,
            act_selector,
            _weight_bits(weight_bits),
            _act_bits(act_bits),
            act_signed=signed_input,
        )
        wrapper = SlicedQuantizeWrapper(layer, plain.quantize_config, name=plain.name)
        if build:
            p = layer.prim
            shape = [None, p.in_hw, p.in_hw, p.cin] if p.kind in ("conv", "dw") else [None, p.cin]
            with tf.name_scope(wrapper.name):
                wrapper.build(tf.TensorShape(shape))
        holder.prims[name] = wrapper
        wrapped.append(name)
    return wrapped


def _fixed(space: SearchSpace):
    return None if space.fixed_bits >= FLOAT_BITS else (space.fixed_bits,)


def _quantize_ends(space, stem, head, build) -> None:
    fixed = _fixed(space)
    if fixed is not None:
        quantize_holder(stem, fixed, fixed, signed_input=True, build=build)
        quantize_holder(head, fixed, fixed, build=build)


def quantize_supernet(model):
    """Quantizes a freshly constructed (not yet called) :class:`~spos_tf.models.supernet.Supernet` in
    place and returns it. Called by :func:`spos_tf.build_supernet` for quantized spaces.

    Each choice block gets a weight-bit and an activation-bit `BitSelector`, registered in
    ``block.gene_selectors`` so that the block feeds them ``arch[row, block]`` before it runs.
    """
    space = model.space
    _quantize_ends(space, model.stem, model.head, build=True)
    searched = space.searched_genes
    for block in model.choice_blocks:
        w_sel = BitSelector(name=f"block{block.block:02d}_wbits")
        a_sel = BitSelector(name=f"block{block.block:02d}_abits")
        for unit in block.units.values():
            quantize_holder(unit, space.weight_bits, space.act_bits, w_sel, a_sel, build=True)
        block.gene_selectors = tuple(
            (row, sel)
            for row, sel, kind in ((WBITS_ROW, w_sel, "wbits"), (ABITS_ROW, a_sel, "abits"))
            if kind in searched
        )
    return model


def quantize_standalone(space: SearchSpace, arch: Architecture, stem, units, head) -> None:
    """Quantizes the layers of a stand-alone network before they are wired (called by
    :func:`spos_tf.build_standalone` for quantized spaces): block ``b``'s primitives at the fixed
    bits ``arch`` chooses for it, stem and classifier at ``space.fixed_bits``; with
    ``space.fold_bn`` each quantized conv then absorbs the BN after it
    (:mod:`spos_tf.quant.fold`)."""
    _quantize_ends(space, stem, head, build=False)
    for unit, choice in zip(units, space.decode(arch)):
        quantize_holder(unit, (choice["wbits"],), (choice["abits"],))
    if space.fold_bn:  # BN folded before the weight fake quantization (spos_tf.quant.fold)
        from spos_tf.quant.fold import fold_holder

        for holder in (stem, *units):
            fold_holder(holder)


# ---------------------------------------------------------------------------- inspection
def quantized_layers(model, arch=None) -> list:
    """``[(holder name, prim name, wrapper)]`` of the quantized primitives of ``model`` (a
    supernet or a stand-alone network); for a supernet with ``arch`` (an Architecture or an int
    ``[4, num_blocks]`` index array) only those on that path."""
    return [
        (h.name, name, layer)
        for h in _holders(model, arch)
        for name, layer in h.prims.items()
        if isinstance(layer, InputQuantizeWrapper)
    ]


def _holders(model, arch) -> list:
    if not hasattr(model, "choice_blocks"):  # stand-alone: every holder is on the path
        return [layer for layer in model.layers if isinstance(layer, PrimHolder)]
    units = []
    if arch is None:
        units = [u for block in model.choice_blocks for u in block.units.values()]
    else:
        if isinstance(arch, Architecture):
            idx = model.space.indices(model.space.validate(arch))
        else:
            idx = np.asarray(arch)
        for block in model.choice_blocks:
            units.append(list(block.units.values())[int(idx[OP_ROW, block.block])])
    return [model.stem, *units, model.head]


def reset_quant_ranges(model, arch=None) -> int:
    """Resets the running input-range statistics of the activation quantizers (for BN-style
    recalibration); returns how many quantizers were reset.

    With ``count == 0`` the next training-mode batch sets the ranges to its own statistics, the
    following ones average them exactly (rate ``1 / (count + 1)``) up to ``1 / (1 - momentum)``
    batches (10 at the default momentum 0.9), later ones blend in as an EMA with rate 0.1. Call it
    where BN statistics are reset, then run the calibration batches in training mode: ranges and
    BN statistics are re-estimated by the same forward passes, no retrace (the state is in
    variables). Until a range has seen a batch, inference uses each batch's own statistics.

    Args:
      model: a quantized supernet or stand-alone network.
      arch: for a supernet, reset only the quantizers on this path (others keep their trained
        ranges); an Architecture or an int ``[4, num_blocks]`` index array. None: all.
    """
    n = 0
    for _, _, wrapper in quantized_layers(model, arch):
        variables = wrapper.range_variables()
        for var in variables:
            var.assign(tf.zeros_like(var))
        n += bool(variables)
    return n


__all__ = [
    "SlicedQuantizeWrapper",
    "custom_objects",
    "quantize_holder",
    "quantize_standalone",
    "quantize_supernet",
    "quantized_layers",
    "reset_quant_ranges",
]
