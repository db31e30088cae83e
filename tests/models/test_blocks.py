"""spos_tf.models.blocks: channel shuffle, per-layer seeds, the mobile ops' dataflow."""

import numpy as np
import pytest
import tensorflow as tf

from spos_tf.models import blocks
from spos_tf.spaces import ops


def test_grouped_op_shuffles_channels():
    x = tf.reshape(tf.range(6, dtype=tf.float32), [1, 1, 1, 6])
    np.testing.assert_array_equal(blocks.channel_shuffle(x, 2).numpy().ravel(), [0, 3, 1, 4, 2, 5])


def test_channel_shuffle_matches_the_reference_reshape_transpose():
    # The authors' ShuffleNetV2: x.reshape(n, g, c // g, h, w).transpose(1, 2) in NCHW.
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 12)).astype(np.float32)
    nchw = x.transpose(0, 3, 1, 2).reshape(2, 3, 4, 3, 3).transpose(0, 2, 1, 3, 4)
    expected = nchw.reshape(2, 12, 3, 3).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(blocks.channel_shuffle(tf.constant(x), 3).numpy(), expected)


@pytest.mark.parametrize("dynamic", [False, True])
def test_shuffle_split_takes_even_then_odd_channels_with_the_right_gradient(dynamic):
    # The reference (Supernet/blocks.py channel_shuffle): x.reshape(b * c // 2, 2, h * w), then
    # x[0] (even channels) is the projection half and x[1] (odd) the main half.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 5, 8)).astype(np.float32)
    nchw = x.transpose(0, 3, 1, 2).reshape(2 * 8 // 2, 2, 3 * 5).transpose(1, 0, 2)
    expected = [v.reshape(2, 4, 3, 5).transpose(0, 2, 3, 1) for v in (nchw[0], nchw[1])]
    g_even, g_odd = rng.normal(size=(2, 2, 3, 5, 4)).astype(np.float32)
    spec = tf.TensorSpec([None, None, None, 8] if dynamic else x.shape)

    @tf.function(input_signature=[spec])
    def run(t):
        with tf.GradientTape() as tape:
            tape.watch(t)
            even, odd = blocks.shuffle_split(t)
            loss = tf.reduce_sum(even * g_even) + tf.reduce_sum(odd * g_odd)
        return even, odd, tape.gradient(loss, t)

    even, odd, grad = run(tf.constant(x))
    np.testing.assert_array_equal(even.numpy(), expected[0])
    np.testing.assert_array_equal(odd.numpy(), expected[1])
    interleaved = np.stack([g_even, g_odd], axis=-1).reshape(2, 3, 5, 8)  # d loss / d x
    np.testing.assert_array_equal(grad.numpy(), interleaved)


def test_layer_seeds_are_stable_and_differ_between_layers_and_seeds():
    assert blocks.layer_seed(0, "block00_shuffle3x3") == blocks.layer_seed(0, "block00_shuffle3x3")
    seeds = {blocks.layer_seed(s, f"block{b:02d}_x") for s in range(3) for b in range(20)}
    assert len(seeds) == 60 and all(0 <= v < 2**31 - 1 for v in seeds)


def test_activation_of_each_family():
    x = tf.constant([-1.0, 3.0, 9.0])
    np.testing.assert_array_equal(blocks.activation("fbnet")(x).numpy(), [0.0, 3.0, 9.0])
    np.testing.assert_array_equal(blocks.activation("proxyless")(x).numpy(), [0.0, 3.0, 6.0])


@pytest.mark.parametrize("op", ["fb_skip", "px_zero"])
def test_identity_ops_pass_the_input_through_where_the_shape_is_kept(op):
    spec = ops.get_op(op)
    x = tf.random.stateless_normal([1, 4, 4, 8], seed=[1, 2])
    y = blocks.mobile_op(spec, {}, x, False, cin=8, cout=8, stride=1)
    np.testing.assert_array_equal(y.numpy(), x.numpy())


def test_shuffle_split_benchmark_forms_agree_on_values_and_gradients():
    # benchmarks/shuffle_split.py checks every form against the strided slices before timing
    # (assert_array_equal inside bench): a tiny shape keeps the script from rotting.
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "shuffle_split.py"
    spec = importlib.util.spec_from_file_location("shuffle_split_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.bench((2, 3, 5, 8), rounds=1)
    assert set(out["ms"]) == {
        "strided",
        "plain",
        "unstack",
        "transpose_unstack",
        "split",
        "gather",
        "floor",
    }
    assert out["over_strided"]["strided"] == 1.0
