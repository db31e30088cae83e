"""Stand-alone networks: one architecture as a plain Functional tf_keras model.

Built from the same layer code as the supernet (:mod:`spos_tf.models.blocks`), with affine BN as in the
reference's retraining and every chosen op allocated at its chosen width; no ``switch_case``, so it
converts to TFLite. :func:`inherit` copies weights from a supernet by layer name, taking the leading
slice of every shared tensor; the stand-alone output then equals the supernet's output for that
path (inference mode).
"""

from __future__ import annotations

import numpy as np
import spos_tf  # noqa: F401
import tf_keras as keras

from spos_tf.models.blocks import Head, OpUnit, PrimHolder, Stem, unit_name
from spos_tf.models.layers import BNControl
from spos_tf.spaces.space import Architecture, SearchSpace, mid_channels


def build_standalone(
    space: SearchSpace,
    arch: Architecture,
    supernet=None,
    seed: int = 0,
    bn_momentum: float = 0.9,
    wrap_layers=None,
) -> keras.Model:
    """Builds the float stand-alone network of ``arch``; inherits ``supernet``'s weights if given.

    ``wrap_layers``: called as ``wrap_layers(space, arch, stem, units, head)`` with the layers
    before they are wired, to replace primitives by wrappers (e.g.
    :func:`spos_tf.quant.apply.quantize_standalone`, at the fixed bits ``arch`` chooses; then
    :func:`inherit` also copies the wrappers' variables such as the quantizers' input ranges).
    This module never wraps by itself: :func:`spos_tf.build_standalone` (:mod:`spos_tf.build`)
    passes the wrapper a quantized space needs.

    Raises:
      ValueError: ``arch`` does not belong to ``space`` (wrong length, out-of-range choice);
        ``space.quantized`` without ``wrap_layers``.
    """
    space.validate(arch)
    if space.quantized and wrap_layers is None:
        raise ValueError(
            f"space {space.name!r} is quantized: build it with spos_tf.build_standalone, which "
            f"applies the quantization wrappers"
        )
    if space.cell_nodes:
        from spos_tf.models.cells import build_cell_standalone

        return build_cell_standalone(space, arch, supernet, seed, bn_momentum)
    control = BNControl(bn_momentum)
    stem = Stem(space, control, affine=True, seed=seed)
    units = [
        OpUnit(
            choice["op"],
            cin,
            cout,
            stride,
            hw,
            (mid_channels(space, cout, choice["channel"]),),
            control,
            affine=True,
            seed=seed,
            padding=space.padding,
            name=unit_name(b, choice["op"]),
        )
        for b, (choice, (cin, cout, stride, hw)) in enumerate(
            zip(space.decode(arch), space.block_layout())
        )
    ]
    head = Head(space, control, affine=True, seed=seed)
    if wrap_layers is not None:
        wrap_layers(space, arch, stem, units, head)
    inputs = keras.Input((space.image_size, space.image_size, 3), name="images")
    x = stem(inputs)
    for unit in units:
        x = unit(x)
    logits = head(x)
    model = keras.Model(inputs, logits, name="standalone")
    model.bn_control = control
    model.space, model.arch = space, arch
    if supernet is not None:
        inherit(model, supernet)
    return model


def _sources(supernet) -> dict:
    layers = list(supernet.fixed_holders())
    layers += [u for block in supernet.choice_blocks for u in block.units.values()]
    return {layer.name: layer for layer in layers}


def inherit(model: keras.Model, supernet) -> keras.Model:
    """Copies ``supernet`` weights into ``model`` by layer name (leading slices; gamma=1, beta=0
    where the supernet's BN has no affine parameters). Returns ``model``.

    Raises:
      ValueError: a layer of ``model`` has no counterpart in ``supernet`` (different space), or a
        tensor does not fit into its source.
    """
    sources = _sources(supernet)
    for layer in model.layers:
        if not isinstance(layer, PrimHolder):
            continue
        if layer.name not in sources:
            raise ValueError(
                f"layer {layer.name!r} has no counterpart in the supernet; was the "
                f"supernet built for the same space?"
            )
        src = sources[layer.name].weight_dict()
        for key, var in layer.weight_dict().items():
            if key in src:
                value = src[key].numpy()
                if any(d > s for d, s in zip(var.shape, value.shape)):
                    raise ValueError(
                        f"{layer.name}/{key}: shape {var.shape} does not fit into "
                        f"the supernet's {value.shape}"
                    )
                value = value[tuple(slice(0, d) for d in var.shape)]
            elif key.endswith("gamma"):
                value = np.ones(var.shape, np.float32)
            elif key.endswith("beta") or "/output_range_" in key:
                # output_range_*: a BN-folded conv's output quantizer (spos_tf.quant.fold) has no
                # supernet counterpart; zeros = uncalibrated, as reset_quant_ranges leaves it.
                value = np.zeros(var.shape, np.float32)
            else:
                raise ValueError(f"{layer.name}/{key} missing from the supernet")
            var.assign(value)
    return model


def trace_count(fn) -> int:
    """Number of concrete traces of a ``tf.function`` (for tests and benchmarks)."""
    return fn.experimental_get_tracing_count()
