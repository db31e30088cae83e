"""Tests for spos_tf.quant: level counts, straight-through gradients, no-retrace bit switching,
agreement with an independent numpy computation, and range variables that move only when run."""

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from spos_tf import quant
from spos_tf.quant import (
    GAUSS_CLIP,
    ActivationQuantizer,
    BitSelector,
    WeightQuantizer,
    quantize_layer,
    quantize_layer_fixed,
)

BITS = (1, 2, 3, 4)


class TinyDense(keras.layers.Layer):
    """Stand-in for the lead's layers: float weight in ``self.kernel``, read in ``call``."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(
            "kernel", shape=(int(input_shape[-1]), self.units), initializer="glorot_uniform"
        )
        super().build(input_shape)

    def call(self, inputs):
        return tf.matmul(inputs, self.kernel)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.units])

    def get_config(self):
        return {**super().get_config(), "units": self.units}


# ---------------------------------------------------------------- numpy reference (float64)
def np_fake_quant(x, lo, hi, bits, narrow):
    """TensorFlow's FakeQuantWithMinMaxVars rule (nudged range, round half up)."""
    qmin, qmax = (1 if narrow else 0), 2**bits - 1
    scale = (hi - lo) / (qmax - qmin)
    zero_point = np.clip(np.round(qmin - lo / scale), qmin, qmax)
    nmin, nmax = (qmin - zero_point) * scale, (qmax - zero_point) * scale
    return np.floor((np.clip(x, nmin, nmax) - nmin) / scale + 0.5) * scale + nmin


def np_quant_weight(w, bits, axes=None):
    w = w.astype(np.float64)
    if bits == 1:
        return np.mean(np.abs(w), axis=axes, keepdims=True) * np.where(w >= 0, 1.0, -1.0)
    sigma = np.sqrt(np.mean(w**2, axis=axes, keepdims=True))
    c = np.minimum(
        GAUSS_CLIP[2 ** (bits - 1) - 1] * sigma, np.max(np.abs(w), axis=axes, keepdims=True)
    )
    return np_fake_quant(w, -c, c, bits, narrow=True)


def np_act_clip(x, bits):
    """Unsigned clip from one batch (what the first training step uses)."""
    pos = np.maximum(x.astype(np.float64), 0.0)
    sigma = np.sqrt(np.sum(pos**2) / max(np.count_nonzero(pos), 1))
    return min(GAUSS_CLIP[2**bits - 1] * sigma, pos.max())


def np_quant_act(x, bits):
    x = x.astype(np.float64)
    c = np_act_clip(x, bits)
    if bits == 1:
        return np.floor(np.clip(x, 0.0, c) / c + 0.5) * c
    return np_fake_quant(x, 0.0, c, bits, narrow=False)


def built_act_quantizer(bits, **kwargs):
    q = ActivationQuantizer(bits, BitSelector(0), **kwargs)
    holder = keras.layers.Layer()
    return q, q.build(tf.TensorShape([None]), "act", holder)


def n_distinct(t):
    return len(np.unique(np.asarray(t)))


# ---------------------------------------------------------------- level counts
@pytest.mark.parametrize("per_axis", [False, True])
def test_weight_quantizer_levels(per_axis):
    rng = np.random.default_rng(0)
    w = tf.constant(rng.normal(0.0, 0.05, (3, 3, 16, 8)), tf.float32)
    q = WeightQuantizer(BITS + (8,), BitSelector(), per_axis=per_axis)
    for i, b in enumerate(q.bits):
        with q.selector.selecting(i):
            out = q(w, training=True, weights={}).numpy()
        slices = [out[..., k] for k in range(8)] if per_axis else [out]
        for s in slices:
            if b <= 2:  # sign: exactly 2; ternary: all 3 levels used
                assert n_distinct(s) == 2**b - (b == 2)
            else:  # symmetric narrow range: at most 2**b - 1 levels
                assert 3 < n_distinct(s) <= 2**b - 1
        if per_axis and b > 1:  # per-channel ranges differ, so the union has more values
            assert n_distinct(out) > 2**b - 1


def test_depthwise_per_axis_uses_axis_minus_2():
    rng = np.random.default_rng(1)
    w = rng.normal(0.0, 1.0, (3, 3, 6, 1)) * np.arange(1, 7)[None, None, :, None]
    w = tf.constant(w, tf.float32)
    q = WeightQuantizer((3,), per_axis=True, axis=-2)
    out = q(w, training=False, weights={}).numpy()
    np.testing.assert_allclose(out, np_quant_weight(w.numpy(), 3, axes=(0, 1, 3)), atol=1e-5)
    for k in range(6):
        assert n_distinct(out[:, :, k, :]) <= 7


@pytest.mark.parametrize("signed", [False, True])
def test_activation_quantizer_levels(signed):
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 1.0, (4, 8, 8, 16))
    x = tf.constant(x if signed else np.maximum(x, 0.0), tf.float32)
    bits = (2, 3, 4, 8) if signed else BITS + (8,)
    q, qvars = built_act_quantizer(bits, signed=signed)
    for i, b in enumerate(bits):
        with q.selector.selecting(i):
            out = q(x, training=True, weights=qvars).numpy()
        limit = 2**b - 1 if signed else 2**b
        if b == 1:
            assert sorted(np.unique(out))[0] == 0.0 and n_distinct(out) == 2
        else:
            assert 2 < n_distinct(out) <= limit
        if not signed:
            assert out.min() == 0.0


# ---------------------------------------------------------------- gradients
def grad_of_sum(fn, x):
    x = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(fn(x))
    return tape.gradient(y, x).numpy()


@pytest.mark.parametrize("bits", [2, 4])
def test_weight_gradient_is_straight_through_inside_clip(bits):
    rng = np.random.default_rng(3)
    w = np.concatenate([rng.normal(0.0, 0.1, 200), [3.0, -4.0]]).astype(np.float32)
    q = WeightQuantizer((bits,))
    g = grad_of_sum(lambda t: q.quantize(t, bits), w)
    sigma = np.sqrt(np.mean(w.astype(np.float64) ** 2))
    c = min(GAUSS_CLIP[2 ** (bits - 1) - 1] * sigma, np.abs(w).max())
    inside = np.abs(w) <= c
    assert inside.sum() > 100 and (~inside).sum() >= 2  # both regions are exercised
    np.testing.assert_array_equal(g, inside.astype(np.float32))


def test_one_bit_weight_ste_is_hardtanh():
    w = np.array([0.5, -0.3, 0.99, 1.5, -2.0, 0.0], np.float32)
    q = WeightQuantizer((1,))
    g = grad_of_sum(lambda t: q.quantize(t, 1), w)
    np.testing.assert_array_equal(g, [1, 1, 1, 0, 0, 1])
    out = q.quantize(tf.constant(w), 1).numpy()
    alpha = np.abs(w).mean()
    np.testing.assert_allclose(out, alpha * np.array([1, -1, 1, 1, -1, 1]), rtol=1e-6)


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_activation_gradient_is_straight_through_inside_clip(bits):
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(0.01, 1.0, 300), [-0.5, -2.0, 50.0]]).astype(np.float32)
    q, qvars = built_act_quantizer((bits,))
    g = grad_of_sum(lambda t: q(t, training=True, weights=qvars), x)
    c = np_act_clip(x, bits)
    inside = (x >= 0) & (x <= c)
    assert inside.sum() > 100 and (~inside).sum() >= 3
    np.testing.assert_array_equal(g, inside.astype(np.float32))


# ---------------------------------------------------------------- switching without retrace
def test_switching_bits_in_tf_function_needs_no_retrace():
    w_sel, a_sel = BitSelector(name="w"), BitSelector(name="a")
    layer = quantize_layer(TinyDense(8), w_sel, a_sel, BITS, BITS)
    x = tf.nn.relu(tf.random.stateless_normal([16, 32], seed=[1, 2]))
    with quant.selecting([(w_sel, 0), (a_sel, 0)]):
        layer(x, training=True)  # build outside the trace (creating variables forces a retrace)
    traces = []

    @tf.function
    def forward(w_idx, a_idx, x):
        traces.append(1)
        with quant.selecting([(w_sel, w_idx), (a_sel, a_idx)]):
            return layer(x, training=False)

    outs = [forward(tf.constant(i), tf.constant(i), x).numpy() for i in range(len(BITS))]
    outs.append(forward(tf.constant(3), tf.constant(0), x).numpy())
    assert len(traces) == 1
    for i in range(len(outs)):
        for j in range(i + 1, len(outs)):
            assert not np.allclose(outs[i], outs[j]), (i, j)
    assert w_sel.index is None and a_sel.index is None  # restored: no leaked graph tensor


def test_variable_index_is_read_at_run_time():
    index = tf.Variable(0, dtype=tf.int32)
    q = WeightQuantizer(BITS, BitSelector(index))
    w = tf.random.stateless_normal([64, 16], seed=[3, 4])
    traces = []

    @tf.function
    def f():
        traces.append(1)
        return q(w, training=False, weights={})

    counts = []
    for i in range(len(BITS)):
        index.assign(i)
        counts.append(n_distinct(f()))
    assert len(traces) == 1
    assert counts[0] == 2 and counts == sorted(counts) and len(set(counts)) == len(BITS)


def test_unset_selector_raises_clear_error():
    q = WeightQuantizer(BITS)
    with pytest.raises(ValueError, match="no index"):
        q(tf.ones([2, 2]), training=False, weights={})


@pytest.mark.parametrize("bad", [(), (0, 2), (2, 2), (9,)])
def test_bad_bit_choices_fail_fast(bad):
    with pytest.raises(ValueError, match="bits"):
        WeightQuantizer(bad)


def test_signed_one_bit_activation_rejected():
    with pytest.raises(ValueError, match="signed activation bits"):
        ActivationQuantizer((1, 2), signed=True)


# ---------------------------------------------------------------- wrapped layers vs numpy
@pytest.mark.parametrize("w_bits,a_bits", [(2, 3), (1, 1), (4, 2)])
def test_wrapped_tiny_dense_matches_numpy(w_bits, a_bits):
    w_sel, a_sel = BitSelector(BITS.index(w_bits)), BitSelector(BITS.index(a_bits))
    layer = quantize_layer(TinyDense(6), w_sel, a_sel, BITS, BITS)
    rng = np.random.default_rng(5)
    x = np.maximum(rng.normal(0.0, 1.0, (10, 20)), 0.0).astype(np.float32)
    y = layer(tf.constant(x), training=True).numpy()  # first training step: batch ranges
    kernel = quant.kernel_variable(layer).numpy()
    expected = np_quant_act(x, a_bits) @ np_quant_weight(kernel, w_bits)
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_wrapped_keras_conv_per_channel_matches_numpy():
    conv = keras.layers.Conv2D(5, 1, bias_initializer="random_normal")
    layer = quantize_layer_fixed(conv, weight_bits=3, act_bits=4, per_axis=True)
    rng = np.random.default_rng(6)
    x = np.maximum(rng.normal(0.0, 1.0, (2, 4, 4, 7)), 0.0).astype(np.float32)
    y = layer(tf.constant(x), training=True).numpy()
    kernel = quant.kernel_variable(layer).numpy()
    wq = np_quant_weight(kernel, 3, axes=(0, 1, 2))[0, 0]  # (7, 5)
    expected = np.einsum("nhwc,co->nhwo", np_quant_act(x, 4), wq) + conv.bias.numpy()
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_kernel_attribute_is_tensor_after_call_variable_via_wrapper():
    layer = quantize_layer_fixed(TinyDense(3), 4, 4)
    layer(tf.ones([2, 5]), training=False)
    var = quant.kernel_variable(layer)
    assert isinstance(var, tf.Variable) and var.shape == (5, 3)
    assert not isinstance(layer.layer.kernel, tf.Variable)
    assert any(v is var for v in layer.trainable_weights)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(tf.ones([2, 5]), training=True))
    assert tape.gradient(y, var) is not None


def test_depthwise_kernel_attr():
    dw = keras.layers.DepthwiseConv2D(3, padding="same")
    layer = quantize_layer_fixed(dw, 2, 2, kernel_attr="depthwise_kernel", per_axis=True, axis=-2)
    y = layer(tf.nn.relu(tf.random.stateless_normal([1, 5, 5, 4], seed=[5, 6])), training=True)
    assert y.shape == (1, 5, 5, 4)
    kernel = quant.kernel_variable(layer)
    assert kernel.shape == (3, 3, 4, 1) and isinstance(kernel, tf.Variable)


# ---------------------------------------------------------------- range variables
def range_values(wrapper):
    return {
        v.name.split("/")[-1]: v.numpy().copy()
        for v in wrapper.non_trainable_weights
        if "input_range" in v.name
    }


def test_range_variables_change_only_in_selected_branch():
    sel = BitSelector(1)
    a = quantize_layer(TinyDense(4), sel, sel, BITS, BITS)
    b = quantize_layer(TinyDense(4), sel, sel, BITS, BITS)
    x1 = tf.nn.relu(tf.random.stateless_normal([8, 12], seed=[7, 8]))
    x2 = 3.0 * tf.nn.relu(tf.random.stateless_normal([8, 12], seed=[9, 10]))
    a(x1, training=False)  # build both; inference does not move ranges
    b(x1, training=False)
    for w in (a, b):
        assert all(np.all(v == 0) for v in range_values(w).values())

    @tf.function
    def step(choice, x):
        return tf.switch_case(choice, [lambda: a(x, training=True), lambda: b(x, training=True)])

    step(tf.constant(0), x1)
    ra, rb = range_values(a), range_values(b)
    assert ra["input_range_count:0"] == 1 and ra["input_range_max:0"] > 0
    assert all(np.all(v == 0) for v in rb.values())

    step(tf.constant(1), x2)
    for name, value in range_values(a).items():
        assert np.array_equal(value, ra[name]), name  # bit-identical: a did not run
    assert range_values(b)["input_range_count:0"] == 1
    np.testing.assert_allclose(range_values(b)["input_range_max:0"], x2.numpy().max(), rtol=1e-6)


def test_running_range_is_exact_average_during_warmup():
    q, qvars = built_act_quantizer((4,), momentum=0.9)
    batches = [
        np.abs(np.random.default_rng(s).normal(0, 1 + s, (64,))).astype(np.float32)
        for s in range(3)
    ]
    for x in batches:
        q(tf.constant(x), training=True, weights=qvars)
    assert qvars["count"].numpy() == 3
    np.testing.assert_allclose(qvars["max"].numpy(), np.mean([x.max() for x in batches]), rtol=1e-5)
    stats = [q.batch_statistics(tf.constant(x))[1].numpy() for x in batches]
    np.testing.assert_allclose(qvars["sigma"].numpy(), np.mean(stats), rtol=1e-5)


def test_mse_clip_beats_max_clip_at_low_bits():
    w = tf.random.stateless_normal([20000], seed=[11, 12])
    errors = {
        mode: float(
            tf.reduce_mean(tf.square(WeightQuantizer((2,), range_mode=mode).quantize(w, 2) - w))
        )
        for mode in ("mse", "max")
    }
    assert errors["mse"] < 0.5 * errors["max"]


# ---------------------------------------------------------------- fixed vs switchable, configs
def test_fixed_wrapper_takes_switchable_weights_one_to_one():
    w_sel, a_sel = BitSelector(2), BitSelector(1)  # 3-bit weights, 2-bit activations
    x = tf.nn.relu(tf.random.stateless_normal([6, 10], seed=[13, 14]))
    sw = quantize_layer(TinyDense(5), w_sel, a_sel, BITS, BITS)
    sw(x, training=True)
    fx = quantize_layer_fixed(TinyDense(5), weight_bits=3, act_bits=2)
    fx(x, training=False)
    assert [v.shape for v in fx.weights] == [v.shape for v in sw.weights]
    fx.set_weights(sw.get_weights())
    x2 = tf.nn.relu(tf.random.stateless_normal([6, 10], seed=[15, 16]))
    np.testing.assert_array_equal(fx(x2, training=False).numpy(), sw(x2, training=False).numpy())


def test_configs_round_trip():
    wq = WeightQuantizer((2, 4), per_axis=True, axis=-2, range_mode="max", clip_value=0.5)
    aq = ActivationQuantizer((1, 3), signed=False, momentum=0.99)
    assert WeightQuantizer.from_config(wq.get_config()) == wq
    assert ActivationQuantizer.from_config(aq.get_config()) == aq
    assert WeightQuantizer.from_config(wq.get_config()) != WeightQuantizer((2, 4))

    layer = quantize_layer(TinyDense(3), BitSelector(0), BitSelector(0), (2, 4), (1, 3))
    layer(tf.ones([1, 4]))
    with quant.quantize_scope(), keras.utils.custom_object_scope({"TinyDense": TinyDense}):
        clone = quant.InputQuantizeWrapper.from_config(layer.get_config())
    assert clone.quantize_config.weight_quantizer == layer.quantize_config.weight_quantizer
    assert clone.quantize_config.input_quantizer == layer.quantize_config.input_quantizer
    assert clone.quantize_config.input_quantizer.selector.index is None


# ---------------------------------------------------------------- supernet layout, dtypes
def test_gradients_through_bit_switch_nested_in_block_switch():
    """The supernet layout: block switch_case around wrappers whose quantizers switch bits."""
    w_sel, a_sel = BitSelector(0), BitSelector(0)
    convs = [
        quantize_layer(keras.layers.Conv2D(4, k, padding="same"), w_sel, a_sel, BITS, BITS)
        for k in (1, 3)
    ]
    x = tf.nn.relu(tf.random.stateless_normal([2, 6, 6, 3], seed=[17, 18]))
    for conv in convs:
        conv(x)
    variables = [quant.kernel_variable(c) for c in convs]

    @tf.function
    def grads(choice, w_idx, a_idx):
        with quant.selecting([(w_sel, w_idx), (a_sel, a_idx)]):
            with tf.GradientTape() as tape:
                y = tf.switch_case(choice, [lambda c=c: c(x, training=True) for c in convs])
                loss = tf.reduce_mean(tf.square(y))
            return tape.gradient(loss, variables)

    for choice in range(2):
        for i in range(len(BITS)):
            g = grads(tf.constant(choice), tf.constant(i), tf.constant(i))
            assert np.abs(g[choice].numpy()).sum() > 0
            assert np.all(g[1 - choice].numpy() == 0)  # unselected block: exact zeros
    assert grads.experimental_get_tracing_count() == 1


def test_mixed_float16_layer_gets_its_compute_dtype():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = quantize_layer_fixed(keras.layers.Dense(3), 2, 2)
        y = layer(tf.nn.relu(tf.random.stateless_normal([4, 5], seed=[19, 20])), training=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert y.dtype == tf.float16 and np.all(np.isfinite(y.numpy()))
    assert quant.kernel_variable(layer).dtype == tf.float32
