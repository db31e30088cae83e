"""spos_tf.models.layers against NumPy: leading-slice weight sharing, padding, BatchNorm statistics."""

import numpy as np
import pytest
import tensorflow as tf

from spos_tf.models import layers
from spos_tf.spaces.ops import Prim


def np_conv(x, w, stride, pad):
    """Direct NCHW-free convolution: x [N,H,W,C], w [k,k,C,O], symmetric zero padding ``pad``."""
    k = w.shape[0]
    x = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    n, h, wd, _ = x.shape
    oh, ow = (h - k) // stride + 1, (wd - k) // stride + 1
    out = np.zeros((n, oh, ow, w.shape[3]))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride : i * stride + k, j * stride : j * stride + k, :]
            out[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))
    return out


def np_depthwise(x, w, stride, pad):
    return np.concatenate(
        [
            np_conv(x[..., c : c + 1], w[:, :, c : c + 1, :], stride, pad)
            for c in range(x.shape[-1])
        ],
        axis=-1,
    )


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_a_narrow_conv_uses_the_leading_slice_of_the_wide_kernel(rng):
    conv = layers.Conv(Prim("conv", cin=6, cout=8, k=3), seed=1, padding="reference")
    x = rng.normal(size=(2, 5, 5, 4)).astype(np.float32)
    y = conv(tf.constant(x), out_channels=5).numpy()
    w = conv.kernel.numpy()[:, :, :4, :5]
    np.testing.assert_allclose(y, np_conv(x, w, 1, 1), atol=1e-4)


def test_reference_padding_is_symmetric_at_stride_two(rng):
    x = rng.normal(size=(1, 6, 6, 3)).astype(np.float32)
    ref = layers.Conv(Prim("conv", cin=3, cout=2, k=3, stride=2), seed=2, padding="reference")
    same = layers.Conv(Prim("conv", cin=3, cout=2, k=3, stride=2), seed=2, padding="same")
    w = ref.kernel.numpy()
    np.testing.assert_allclose(ref(tf.constant(x)).numpy(), np_conv(x, w, 2, 1), atol=1e-4)
    # TF's SAME pads 0 before / 1 after on an even input: a different (shifted) result.
    assert not np.allclose(same(tf.constant(x)).numpy(), np_conv(x, w, 2, 1), atol=1e-3)


def test_depthwise_conv_over_the_leading_channels(rng):
    dw = layers.DepthwiseConv(Prim("dw", cin=5, cout=5, k=5, stride=2), seed=3, padding="reference")
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    w = dw.depthwise_kernel.numpy()[:, :, :3, :]
    np.testing.assert_allclose(dw(tf.constant(x)).numpy(), np_depthwise(x, w, 2, 2), atol=1e-4)


def test_grouped_conv_equals_one_conv_per_group(rng):
    conv = layers.Conv(Prim("conv", cin=4, cout=6, k=1, groups=2), seed=4)
    x = rng.normal(size=(1, 3, 3, 4)).astype(np.float32)
    w = conv.kernel.numpy()  # [1, 1, 2, 6]: group g maps input 2g:2g+2 to outputs 3g:3g+3
    expected = np.concatenate(
        [np_conv(x[..., 2 * g : 2 * g + 2], w[..., 3 * g : 3 * g + 3], 1, 0) for g in range(2)],
        axis=-1,
    )
    np.testing.assert_allclose(conv(tf.constant(x)).numpy(), expected, atol=1e-5)


def test_batchnorm_trains_on_batch_statistics_and_updates_only_the_used_slice(rng):
    control = layers.BNControl(momentum=0.9)
    bn = layers.BatchNorm(Prim("bn", cin=6, cout=6), control, affine=True)
    x = rng.normal(2.0, 3.0, size=(4, 3, 3, 4)).astype(np.float32)
    gamma, beta = np.linspace(0.5, 2.0, 6), np.linspace(-1, 1, 6)
    bn.gamma.assign(gamma.astype(np.float32))
    bn.beta.assign(beta.astype(np.float32))
    bn.moving_mean.assign(np.arange(6, dtype=np.float32))
    y = bn(tf.constant(x), training=True).numpy()
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    expected = (x - mean) / np.sqrt(var + bn.epsilon) * gamma[:4] + beta[:4]
    np.testing.assert_allclose(y, expected, atol=1e-4)
    n = x.size // 4
    np.testing.assert_allclose(
        bn.moving_mean.numpy()[:4], 0.9 * np.arange(4) + 0.1 * mean, atol=1e-5
    )
    np.testing.assert_allclose(
        bn.moving_variance.numpy()[:4], 0.9 + 0.1 * var * n / (n - 1), atol=1e-5
    )  # unbiased batch variance, as the reference
    np.testing.assert_array_equal(bn.moving_mean.numpy()[4:], [4.0, 5.0])
    np.testing.assert_array_equal(bn.moving_variance.numpy()[4:], [1.0, 1.0])


def test_batchnorm_inference_uses_the_moving_statistics(rng):
    bn = layers.BatchNorm(Prim("bn", cin=3, cout=3), layers.BNControl(), affine=False)
    bn.moving_mean.assign([1.0, -1.0, 0.5])
    bn.moving_variance.assign([4.0, 1.0, 0.25])
    x = rng.normal(size=(2, 2, 2, 3)).astype(np.float32)
    expected = (x - [1.0, -1.0, 0.5]) / np.sqrt(np.array([4.0, 1.0, 0.25]) + bn.epsilon)
    np.testing.assert_allclose(bn(tf.constant(x), training=False).numpy(), expected, atol=1e-5)


def test_dense_reads_the_leading_input_features(rng):
    fc = layers.Dense(Prim("fc", cin=8, cout=3, bias=True), seed=5)
    fc.bias.assign([0.1, 0.2, 0.3])
    x = rng.normal(size=(2, 5)).astype(np.float32)
    expected = x @ fc.kernel.numpy()[:5] + [0.1, 0.2, 0.3]
    np.testing.assert_allclose(fc(tf.constant(x)).numpy(), expected, atol=1e-5)


def test_same_seed_same_weights_and_unknown_kinds_are_rejected():
    a = layers.Conv(Prim("conv", cin=3, cout=4, k=3), seed=7)
    b = layers.Conv(Prim("conv", cin=3, cout=4, k=3), seed=7)
    c = layers.Conv(Prim("conv", cin=3, cout=4, k=3), seed=8)
    np.testing.assert_array_equal(a.kernel.numpy(), b.kernel.numpy())
    assert not np.array_equal(a.kernel.numpy(), c.kernel.numpy())
    with pytest.raises(ValueError, match="unknown primitive kind"):
        layers.make_primitive(
            "x", Prim("pool", 1, 1), seed=0, control=layers.BNControl(), affine=False
        )
