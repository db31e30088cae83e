"""TF-MOT quantizers whose bit width is chosen at run time from a tuple of choices.

Each quantizer holds a static tuple of bit widths, e.g. ``bits=(1, 2, 3, 4)``, and a `BitSelector`
whose ``index`` (an int32 scalar) picks one of them. With more than one choice the quantizer emits
``tf.switch_case(index, [fake_quant_at(b) for b in bits])``: the graph is traced once and changing
the bit width is a change of a tensor value, never a retrace. With a single choice (fixed-bit layers,
stand-alone networks) no ``switch_case`` is emitted and the selector is ignored, so those graphs stay
convertible to TFLite (``tf.Case`` is not).

Where the index comes from (the selector contract)
--------------------------------------------------
TF-MOT's ``QuantizeWrapper`` calls ``quantizer(x, training, weights=...)`` and passes nothing else,
so the index cannot travel through the call. A `BitSelector` is a plain Python holder shared by the
quantizer and its owner (the supernet); the quantizer reads ``selector.index`` when it is *called*:

* Inside a ``tf.function``, set ``selector.index = arch[i]`` (a tensor computed from the function's
  inputs) before calling the wrapped layer in the same trace, or use ``with selector.selecting(t):``
  to restore the previous value afterwards (avoids a graph tensor leaking out of the trace).
* Or set ``selector.index = tf.Variable(0, dtype=tf.int32)`` once and ``.assign()`` it between calls;
  the variable is read at run time (the variable is owned by the caller, not by any layer).
* A Python int is converted to a constant *at trace time*: inside a ``tf.function`` it is baked into
  the graph, and changing it later has no effect on that trace. Use it only eagerly or for constants.
* An index outside ``[0, len(bits))`` selects the last choice (``tf.switch_case`` semantics).

Range estimation (no learned clip, no [-6, 6] start, nothing for an optimizer to own)
-------------------------------------------------------------------------------------
A uniform quantizer with ``n`` positive levels clips at ``c = min(K[n] * sigma, max)`` where ``K[n]``
is the MSE-optimal clip of a unit Gaussian for that level count (`GAUSS_CLIP`) and ``sigma`` is
estimated from the tensor (``range_mode="mse"``, default); ``range_mode="max"`` uses ``c = max``.
At 2 bits the max-clip wastes the ternary levels on outliers (nearly every weight rounds to 0); the
MSE clip reduces the squared error by about 3x on Gaussian weights (tested).

* Weights: ``sigma = sqrt(mean(w**2))`` and ``max = max|w|``, recomputed from the float weights at
  every call (per tensor, or per output channel with ``per_axis=True``). Stateless: inheriting
  weights into a stand-alone network carries the ranges with them.
* Activations: ``sigma`` is the RMS of the positive entries (the half-normal scale of a post-ReLU
  map; for ``signed=True`` the RMS of all entries) and ``max`` the batch maximum, both kept in
  non-trainable running averages that are updated only in training and only when the quantizer
  runs. The update rate is ``max(1 - momentum, 1 / (count + 1))``: the first step takes the batch
  values, the first ``1 / (1 - momentum)`` steps are an exact cumulative average, then an EMA.
  Resetting ``count`` to 0 and running training-mode batches recalibrates the ranges exactly.
  Before the first training step (``count == 0``) inference uses the batch's own statistics.
  The statistics do not depend on the bit width, so one set per quantizer serves every choice.

Level sets and gradients
------------------------
* Weights, b >= 2: symmetric narrow range, ``2**b - 1`` levels ``c * k / (2**(b-1) - 1)``
  (zero exact, TFLite's symmetric int layout), via ``tf.quantization.fake_quant_with_min_max_vars``.
* Weights, 1 bit: ``alpha * sign(w)`` with ``alpha = mean|w|`` (``sign(0) = +1``): exactly two
  values. Gradient: straight through where ``|w| <= clip_value`` (default 1.0, the BinaryConnect
  hard-tanh STE), 0 elsewhere; ``alpha`` is a constant for the gradient.
* Activations, b >= 2: unsigned, ``2**b`` levels ``c * k / (2**b - 1)`` on ``[0, c]`` (zero point 0)
  via ``fake_quant_with_min_max_vars``; ``signed=True`` gives the symmetric narrow-range layout.
* Activations, 1 bit: binary ``{0, c}`` (threshold ``c / 2``) by the same rounding rule, written by
  hand (`round_ste`) because fake_quant only accepts 2..16 bits.
* All clip-style quantizers pass the gradient straight through (1) inside ``[lo, c]`` and give 0
  outside; ranges are ``stop_gradient``-ed (no gradient flows into the statistics).
"""

import contextlib
import functools

import numpy as np
import tensorflow as tf
from tensorflow_model_optimization.quantization.keras import quantizers as tfmot_quantizers
from tf_keras import initializers

# MSE-optimal clip, in units of the Gaussian's sigma, of a uniform quantizer with n levels above zero
# (levels c*k/n, k in -n..n for symmetric, 0..n for a one-sided half-normal). Found by minimising the
# integrated squared error numerically (trapezoid over [-12, 12], 4e5 points; bounded scalar search).
GAUSS_CLIP = {
    1: 1.2240,
    3: 1.9523,
    7: 2.4739,
    15: 2.8987,
    31: 3.2701,
    63: 3.6074,
    127: 3.9205,
    255: 4.2147,
}
MAX_BITS = 8
_EPS = 1e-8
_RANGE_MODES = ("mse", "max")


class BitSelector:
    """Holds the run-time index into a quantizer's ``bits`` tuple (see the module docstring).

    Args:
      index: None (unset: calling a multi-choice quantizer raises), a Python int, an int32 scalar
        tensor, or an int ``tf.Variable``.
      name: label used in error messages.
    """

    def __init__(self, index=None, name="bit_selector"):
        self.index = index
        self.name = name

    def read(self):
        """Returns the index as an int32 scalar tensor (a variable is read at run time)."""
        if self.index is None:
            raise ValueError(
                f"BitSelector {self.name!r} has no index: set `selector.index` to an int32 scalar "
                "(inside the tf.function that calls the quantized layer) before calling it."
            )
        index = self.index
        if isinstance(index, tf.Variable):
            index = index.read_value()
        index = tf.convert_to_tensor(index)
        if index.dtype != tf.int32:
            index = tf.cast(index, tf.int32)
        return index

    @contextlib.contextmanager
    def selecting(self, index):
        """Context manager: use ``index`` inside the block, restore the previous index after."""
        previous = self.index
        self.index = index
        try:
            yield self
        finally:
            self.index = previous

    def __repr__(self):
        return f"BitSelector(name={self.name!r}, index={self.index!r})"


def _check_bits(bits, low, what):
    if isinstance(bits, (int, np.integer)):
        bits = (int(bits),)
    bits = tuple(int(b) for b in bits)
    if not bits or len(set(bits)) != len(bits) or any(b < low or b > MAX_BITS for b in bits):
        raise ValueError(
            f"{what} bits must be a non-empty tuple of distinct ints in [{low}, {MAX_BITS}], "
            f"got {bits!r}"
        )
    return bits


def _check_range_mode(range_mode):
    if range_mode not in _RANGE_MODES:
        raise ValueError(f"range_mode must be one of {_RANGE_MODES}, got {range_mode!r}")
    return range_mode


def _clip(sigma, maximum, levels, range_mode):
    """Clip value c for a quantizer with ``levels`` steps above zero (see `GAUSS_CLIP`)."""
    c = maximum if range_mode == "max" else tf.minimum(GAUSS_CLIP[levels] * sigma, maximum)
    return tf.stop_gradient(tf.maximum(c, _EPS))


def _select(selector, bits, branch_fn):
    """``branch_fn(b)`` for the selected b: a switch_case over ``bits``, or a direct call for one."""
    if len(bits) == 1:
        return branch_fn(bits[0])
    return tf.switch_case(selector.read(), [functools.partial(branch_fn, b) for b in bits])


def _fake_quant(x, lo, hi, bits, narrow_range, axis=None):
    """fake_quant_with_min_max_vars (per tensor) or its per-channel form along ``axis``."""
    if axis is None:
        return tf.quantization.fake_quant_with_min_max_vars(
            x, lo, hi, num_bits=bits, narrow_range=narrow_range
        )
    rank = x.shape.rank
    axis %= rank
    perm = [i for i in range(rank) if i != axis] + [axis]
    moved = x if axis == rank - 1 else tf.transpose(x, perm)
    q = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        moved, tf.reshape(lo, [-1]), tf.reshape(hi, [-1]), num_bits=bits, narrow_range=narrow_range
    )
    return q if axis == rank - 1 else tf.transpose(q, np.argsort(perm).tolist())


def _straight_through(value, surrogate):
    """``value`` in the forward pass, ``d surrogate / d x`` in the backward pass.

    ``surrogate - stop_gradient(surrogate)`` is exactly 0.0, so the output equals ``value`` bit for
    bit. (Not ``tf.custom_gradient``: a version built on it raised an AssertionError in
    ``GradientTape.gradient`` under ``tf.function`` once the quantizer's ``switch_case`` sat inside
    another ``switch_case``, which is exactly the supernet's layout.)
    """
    return tf.stop_gradient(value) + (surrogate - tf.stop_gradient(surrogate))


def round_ste(x, lo, hi, levels):
    """``floor((clip(x, lo, hi) - lo) / s + 0.5) * s + lo`` with ``s = (hi - lo) / levels``.

    Gradient with respect to ``x``: 1 where ``lo <= x <= hi``, 0 elsewhere; none for ``lo``/``hi``.
    """
    lo, hi = tf.stop_gradient(lo), tf.stop_gradient(hi)
    clipped = tf.clip_by_value(x, lo, hi)
    scale = (hi - lo) / levels
    return _straight_through(tf.floor((clipped - lo) / scale + 0.5) * scale + lo, clipped)


def sign_ste(x, alpha, clip_value):
    """``alpha * (x >= 0 ? 1 : -1)``; gradient 1 where ``|x| <= clip_value``, else 0."""
    alpha = tf.stop_gradient(alpha)
    value = alpha * tf.where(x >= 0, tf.ones_like(x), -tf.ones_like(x))
    return _straight_through(value, tf.clip_by_value(x, -clip_value, clip_value))


class WeightQuantizer(tfmot_quantizers.Quantizer):
    """Symmetric weight fake quantizer with a run-time selectable bit width (1..8 bits).

    Args:
      bits: bit-width choices; ``selector.index`` indexes this tuple.
      selector: `BitSelector` (a fresh unset one if None; ignored when ``len(bits) == 1``).
      per_axis: one range per slice along ``axis`` (per output channel) instead of per tensor.
        Per-axis Dense kernels break TFLite conversion; keep Dense per tensor.
      axis: channel axis for ``per_axis`` (-1 for Conv2D/Dense kernels, -2 for depthwise kernels).
      range_mode: "mse" (default) or "max", see the module docstring.
      clip_value: 1-bit STE passes the gradient where ``|w| <= clip_value``.

    Creates no variables; the range is recomputed from the float weights at every call.
    """

    def __init__(
        self,
        bits=(1, 2, 3, 4),
        selector=None,
        per_axis=False,
        axis=-1,
        range_mode="mse",
        clip_value=1.0,
    ):
        self.bits = _check_bits(bits, 1, "weight")
        self.selector = selector if selector is not None else BitSelector()
        self.per_axis = bool(per_axis)
        self.axis = int(axis)
        self.range_mode = _check_range_mode(range_mode)
        self.clip_value = float(clip_value)

    def build(self, tensor_shape, name, layer):
        return {}

    def _reduce_axes(self, x):
        if not self.per_axis:
            return None
        axis = self.axis % x.shape.rank
        return [i for i in range(x.shape.rank) if i != axis]

    def quantize(self, w, bits):
        """Fake-quantizes ``w`` at a fixed ``bits`` (a Python int from ``self.bits``).

        Computed in float32 and returned in the dtype ``w`` reads as (float16 for an
        AutoCastVariable read inside a mixed_float16 layer, so the layer gets its compute dtype).
        """
        w = tf.convert_to_tensor(w)
        dtype = w.dtype
        w = tf.cast(w, tf.float32)
        axes = self._reduce_axes(w)
        keep = axes is not None
        if bits == 1:
            alpha = tf.reduce_mean(tf.abs(w), axis=axes, keepdims=keep)
            return tf.cast(sign_ste(w, alpha, self.clip_value), dtype)
        sigma = tf.sqrt(tf.reduce_mean(tf.square(w), axis=axes, keepdims=keep))
        maximum = tf.reduce_max(tf.abs(w), axis=axes, keepdims=keep)
        c = _clip(sigma, maximum, 2 ** (bits - 1) - 1, self.range_mode)
        q = _fake_quant(
            w, -c, c, bits, narrow_range=True, axis=self.axis if self.per_axis else None
        )
        return tf.cast(q, dtype)

    def __call__(self, inputs, training, weights, **kwargs):
        return _select(self.selector, self.bits, functools.partial(self.quantize, inputs))

    def get_config(self):
        return {
            "bits": list(self.bits),
            "per_axis": self.per_axis,
            "axis": self.axis,
            "range_mode": self.range_mode,
            "clip_value": self.clip_value,
        }

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __ne__(self, other):
        return not self == other

    __hash__ = None


class ActivationQuantizer(tfmot_quantizers.Quantizer):
    """Activation fake quantizer with a run-time selectable bit width and running-average ranges.

    Args:
      bits: bit-width choices (1..8; 2..8 when ``signed``); ``selector.index`` indexes this tuple.
      selector: `BitSelector` (a fresh unset one if None; ignored when ``len(bits) == 1``).
      signed: False (default): unsigned ``[0, c]`` for post-ReLU maps, negatives clip to 0.
        True: symmetric ``[-c, c]`` narrow range (e.g. normalised images into the first conv).
      momentum: running-average momentum after the warm-up (see the module docstring).
      range_mode: "mse" (default) or "max".

    `build` creates three non-trainable float32 scalars on the layer: ``{name}_range_max``,
    ``{name}_range_sigma`` and ``{name}_range_count``. They are assigned only when ``training`` is
    True and only when this quantizer's op runs (inside an unselected ``switch_case`` branch it
    does not).
    """

    def __init__(
        self, bits=(1, 2, 3, 4), selector=None, signed=False, momentum=0.9, range_mode="mse"
    ):
        self.signed = bool(signed)
        self.bits = _check_bits(
            bits, 2 if self.signed else 1, "signed activation" if self.signed else "activation"
        )
        self.selector = selector if selector is not None else BitSelector()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.range_mode = _check_range_mode(range_mode)

    def build(self, tensor_shape, name, layer):
        def scalar(suffix):
            return layer.add_weight(
                f"{name}_range_{suffix}",
                shape=(),
                dtype=tf.float32,
                initializer=initializers.Zeros(),
                trainable=False,
                experimental_autocast=False,
            )  # float32 under mixed_float16

        return {"max": scalar("max"), "sigma": scalar("sigma"), "count": scalar("count")}

    def batch_statistics(self, x):
        """(max, sigma) of one batch: of ``|x|`` / all entries if signed, of ``relu(x)`` / its
        positive entries if unsigned."""
        x = tf.cast(x, tf.float32)
        if self.signed:
            return tf.reduce_max(tf.abs(x)), tf.sqrt(tf.reduce_mean(tf.square(x)))
        positive = tf.nn.relu(x)
        count = tf.reduce_sum(tf.cast(positive > 0, tf.float32))
        sigma = tf.sqrt(tf.reduce_sum(tf.square(positive)) / tf.maximum(count, 1.0))
        return tf.reduce_max(positive), sigma

    def _ranges(self, inputs, training, weights):
        if training:
            batch_max, batch_sigma = self.batch_statistics(inputs)
            count = weights["count"].read_value()
            rate = tf.maximum(1.0 - self.momentum, 1.0 / (count + 1.0))
            new_max = weights["max"] + (batch_max - weights["max"]) * rate
            new_sigma = weights["sigma"] + (batch_sigma - weights["sigma"]) * rate
            weights["max"].assign(new_max)
            weights["sigma"].assign(new_sigma)
            weights["count"].assign_add(1.0)
            return new_max, new_sigma
        return tf.cond(
            weights["count"] > 0,
            lambda: (weights["max"].read_value(), weights["sigma"].read_value()),
            lambda: self.batch_statistics(inputs),
        )

    def quantize(self, x, bits, maximum, sigma):
        """Fake-quantizes ``x`` at a fixed ``bits`` with the given range statistics (computed in
        float32, returned in ``x``'s dtype)."""
        dtype = x.dtype
        x = tf.cast(x, tf.float32)
        if self.signed:
            c = _clip(sigma, maximum, 2 ** (bits - 1) - 1, self.range_mode)
            q = _fake_quant(x, -c, c, bits, narrow_range=True)
        else:
            levels = 2**bits - 1
            c = _clip(sigma, maximum, levels, self.range_mode)
            if bits == 1:
                q = round_ste(x, tf.zeros_like(c), c, levels)
            else:
                q = _fake_quant(x, tf.zeros_like(c), c, bits, narrow_range=False)
        return tf.cast(q, dtype)

    def __call__(self, inputs, training, weights, **kwargs):
        maximum, sigma = self._ranges(inputs, training, weights)
        return _select(self.selector, self.bits, lambda b: self.quantize(inputs, b, maximum, sigma))

    def get_config(self):
        return {
            "bits": list(self.bits),
            "signed": self.signed,
            "momentum": self.momentum,
            "range_mode": self.range_mode,
        }

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __ne__(self, other):
        return not self == other

    __hash__ = None
