"""BN folded into the quantized conv before the weight fake quantization (spos_tf.quant.fold)."""

import numpy as np
import pytest
import tensorflow as tf

import spos_tf
from spos_tf import spaces
from spos_tf.quant import fold

SPACE = dict(
    image_size=8,
    num_classes=10,
    width=0.25,
    repeats=(1, 1, 1, 1),
    weight_bits=(1, 2, 4, 8),
    act_bits=(4, 8),
)


def _folded_net(seed=0):
    space = spaces.get("resnet18_mixed_precision", fold_bn=True, **SPACE)
    arch = space.make(channel=[2] * 4, wbits=[0, 1, 2, 3], abits=[0, 1, 0, 1])
    return space, arch, spos_tf.build_standalone(space, arch, seed=seed)


def _identity(y, training, weights=None):
    return y


def _stubbed_stem(model):
    """The stem's folded conv with its quantizers replaced by the identity (float folding)."""
    stem = model.get_layer("stem")
    conv = stem.prims["stem_conv"]
    conv._input_quantizers = []
    conv._quantized_kernel = lambda kernel: kernel
    conv._output_quantizer = _identity
    return stem, conv


def test_folding_equals_bn_after_conv_in_float():
    """With the quantizers removed, the folded conv computes BN(conv(x)) exactly as a separate
    BN would (numpy reference): batch statistics in training (and the moving statistics updated
    with the unbiased variance), moving statistics in inference."""
    _, _, model = _folded_net()
    model(tf.zeros([2, 8, 8, 3]), training=False)  # build
    stem, conv = _stubbed_stem(model)
    bn = conv.bn
    rng = np.random.default_rng(0)
    c = bn.prim.cin
    gamma, beta = rng.uniform(0.5, 2, c), rng.normal(size=c)
    mean0, var0 = rng.normal(size=c), rng.uniform(0.5, 2, c)
    for var, value in (
        (bn.gamma, gamma),
        (bn.beta, beta),
        (bn.moving_mean, mean0),
        (bn.moving_variance, var0),
    ):
        var.assign(value.astype(np.float32))
    x = rng.normal(size=(6, 8, 8, 3)).astype(np.float32)
    kernel = fold.folded_convs(model)[0]._weight_vars[0][0].numpy()
    y = tf.nn.conv2d(x, kernel, conv.layer.prim.stride, "SAME").numpy().astype(np.float64)
    eps = bn.epsilon

    out = conv(tf.constant(x), training=False).numpy()
    np.testing.assert_allclose(
        out, (y - mean0) / np.sqrt(var0 + eps) * gamma + beta, rtol=1e-4, atol=1e-4
    )

    m = float(model.bn_control.momentum.numpy())
    out = conv(tf.constant(x), training=True).numpy()
    mu, sigma2 = y.mean(axis=(0, 1, 2)), y.var(axis=(0, 1, 2))
    np.testing.assert_allclose(
        out, (y - mu) / np.sqrt(sigma2 + eps) * gamma + beta, rtol=1e-4, atol=1e-4
    )
    n = y.size // c
    np.testing.assert_allclose(
        bn.moving_mean.numpy(), m * mean0 + (1 - m) * mu, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        bn.moving_variance.numpy(), m * var0 + (1 - m) * sigma2 * n / (n - 1), rtol=1e-5, atol=1e-5
    )
    # The BN's slot passes through; the holder still names the BN's variables.
    assert stem.prims["stem_bn"](tf.constant(1.5)).numpy() == 1.5
    assert {"stem_bn/gamma", "stem_bn/moving_mean", "stem_conv/output_range_max"} <= set(
        stem.weight_dict()
    )


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_folded_weights_lie_on_the_searched_grid(bits):
    """The kernel a folded conv uses is the folded kernel quantized at the searched bits: at
    most 2^b - 1 distinct values (2 for 1 bit), evenly spaced and symmetric around zero, which
    is what lets TFLite store it as INT4. The int8 twin's grid reproduces the same values."""
    _, _, model = _folded_net()
    model(tf.zeros([2, 8, 8, 3]), training=False)
    conv = {
        c.layer.prim.cout: c
        for c in fold.folded_convs(model)
        if c._slicer.quantizer.bits == (bits,)
    }
    conv = next(iter(conv.values()))
    kernel = conv._weight_vars[0][0]
    scale = tf.random.uniform([kernel.shape[-1]], 0.2, 3.0, seed=1)
    q = conv._quantized_kernel(kernel * scale).numpy()
    levels = np.unique(q)
    assert len(levels) <= (2 if bits == 1 else 2**bits - 1)
    step = levels.max() / (1 if bits == 1 else 2 ** (bits - 1) - 1)
    np.testing.assert_allclose(levels / step, np.round(levels / step), atol=1e-4)
    folded = (kernel * scale).numpy()  # q is the folded kernel rounded (sign for 1 bit)
    if bits == 1:
        assert np.all(np.sign(q) == np.where(folded >= 0, 1, -1))
    else:
        inside = np.abs(folded) <= levels.max()
        assert np.all(np.abs(q - folded)[inside] <= step / 2 + 1e-6)
    conv.int8_storage = True
    np.testing.assert_allclose(
        conv._quantized_kernel(kernel * scale).numpy(), q, atol=1e-6 * step, rtol=0
    )


def test_folded_network_trains_and_keeps_checkpoint_names():
    """Same variables as the unfolded network (plus the output ranges), gradients reach the
    kernels, BN gamma/beta; a training step moves the moving statistics."""
    space, arch, model = _folded_net()
    plain = spos_tf.build_standalone(space.replace(fold_bn=False), arch)
    x = tf.random.normal([8, 8, 8, 3], seed=0)
    plain(x, training=False)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
    names = lambda m: {
        f"{h.name}/{k}"
        for h in m.layers
        if hasattr(h, "weight_dict")  # noqa
        for k in h.weight_dict()
    }
    extra = names(model) - names(plain)
    assert names(plain) <= names(model)
    assert extra and all("/output_range_" in k for k in extra)
    assert len(fold.folded_convs(model)) == 12  # stem + 4 x (conv1, conv2) + 3 shortcuts
    bn = fold.folded_convs(model)[0].bn
    assert not np.allclose(bn.moving_mean.numpy(), 0.0)


def test_fold_bn_needs_a_quantized_space():
    with pytest.raises(ValueError, match="needs a quantized"):
        spaces.get("shufflenet_oneshot").replace(fold_bn=True)
