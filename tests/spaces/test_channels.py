"""Channel search: one variable per layer at the widest width, narrower choices read leading slices."""

import numpy as np
import tensorflow as tf
import tf_keras as keras

import spos_tf
from spos_tf import spaces
from spos_tf.models.blocks import OpUnit
from spos_tf.models.layers import BNControl

KW = dict(image_size=16, num_classes=10, width=0.25, repeats=(1, 1, 1, 1))


def test_widths_share_variables_no_copies():
    many = spaces.get("shufflenet_oneshot_channels", channel_scales=(0.4, 1.0, 1.6), **KW)
    widest = spaces.get("shufflenet_oneshot_channels", channel_scales=(1.6,), **KW)
    a, b = spos_tf.build_supernet(many), spos_tf.build_supernet(widest)
    assert [v.shape for v in a.trainable_variables] == [v.shape for v in b.trainable_variables]
    assert spos_tf.costs.supernet_params(many) == spos_tf.costs.supernet_params(widest)


def test_narrow_width_reads_leading_slice():
    """A unit at width w equals a separately allocated width-w unit holding the leading slices."""
    control = BNControl()
    x = tf.random.normal((2, 8, 8, 12), seed=1)
    big = OpUnit("shuffle5x5", 12, 24, 1, 8, (4, 8, 16), control, affine=False, seed=3)
    for var in big.weight_dict().values():  # non-trivial statistics
        if "moving" in var.name:
            var.assign(tf.random.uniform(var.shape, 0.5, 1.5, seed=2))
    for w in (4, 8, 16):
        small = OpUnit("shuffle5x5", 12, 24, 1, 8, (w,), control, affine=False, seed=9)
        src = big.weight_dict()
        for key, var in small.weight_dict().items():
            var.assign(src[key][tuple(slice(0, d) for d in var.shape)])
        np.testing.assert_allclose(
            big(x, training=False, width=w).numpy(), small(x, training=False).numpy(), atol=1e-6
        )
    # training mode updates only the used slice of the BN statistics
    stats = big.prims["bn1"].moving_mean
    before = stats.numpy().copy()
    big(x, training=True, width=8)
    after = stats.numpy()
    assert not np.array_equal(before[:8], after[:8]) and np.array_equal(before[8:], after[8:])


def test_tensor_width_equals_static_width():
    """One traced call with the width as a tensor (the channel supernet's single branch per op)
    equals the static-width call at every width, and in training mode updates only the used
    slice of the BN statistics, with the same values as the static call."""
    control = BNControl()
    x = tf.random.normal((2, 8, 8, 12), seed=1)
    for op, stride in (("shuffle3x3", 1), ("xception", 2)):
        unit = OpUnit(op, 12, 24, stride, 8, (4, 8, 16), control, affine=False, seed=3)
        dynamic = tf.function(lambda t, w, training, unit=unit: unit(t, training=training, width=w))
        stats = unit.prims["bn2"].moving_variance
        for w in (4, 8, 16):
            np.testing.assert_allclose(
                dynamic(x, tf.constant(w), False).numpy(),
                unit(x, training=False, width=w).numpy(),
                atol=1e-6,
            )
            before = stats.numpy().copy()
            y_dyn = dynamic(x, tf.constant(w), True).numpy()
            after_dyn = stats.numpy().copy()
            stats.assign(before)
            y_static = unit(x, training=True, width=w).numpy()
            np.testing.assert_allclose(y_dyn, y_static, atol=1e-6)
            np.testing.assert_allclose(after_dyn, stats.numpy(), rtol=1e-6)
            assert np.array_equal(after_dyn[w:], before[w:])
            assert not np.array_equal(after_dyn[:w], before[:w])
        assert dynamic.experimental_get_tracing_count() == 2  # training False / True


def test_tensor_width_keeps_the_static_output_channels():
    """With the width a tensor the unit's output still has its static channel count (``cout``),
    so the next stride-1 unit's ``shuffle_split`` can use its fast form instead of falling back
    to strided slices (a 1.435 supernet / stand-alone step ratio at 32x32 before the fix)."""
    control = BNControl()
    for op, stride in (("shuffle3x3", 1), ("xception", 1), ("shuffle7x7", 2)):
        unit = OpUnit(op, 12, 24, stride, 8, (4, 8, 16), control, affine=False, seed=3)
        fn = tf.function(lambda t, w, unit=unit: unit(t, training=True, width=w))
        out = fn.get_concrete_function(
            tf.TensorSpec((2, 8, 8, 12)), tf.TensorSpec((), tf.int32)
        ).structured_outputs
        assert out.shape.as_list() == [2, 8 // stride, 8 // stride, 24], op


def test_channel_supernet_path_equals_standalone_at_every_width():
    """After a few masked training steps, the channel supernet's path equals the stand-alone
    network with inherited weights, for every channel scale (all blocks at that scale, each op),
    through one switch_case branch per op."""
    space = spaces.get("shufflenet_oneshot_blocks_channels", channel_scales=(0.4, 1.0, 1.6), **KW)
    net = spos_tf.build_supernet(space, seed=2)
    assert all(b.dynamic_width for b in net.choice_blocks)
    net.compile(
        optimizer=spos_tf.MaskedSGD(0.05, momentum=0.9, weight_decay=4e-5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 16, 16, 3)).astype("float32")
    net.fit(x, rng.integers(0, 10, 32), batch_size=8, epochs=1, verbose=0)
    n = space.num_blocks
    for c in range(len(space.channel_scales)):
        arch = space.make(op=[(b + c) % len(space.ops) for b in range(n)], channel=[c] * n)
        model = spos_tf.build_standalone(space, arch, supernet=net)
        net.set_arch(arch)
        expected = net(x[:8], training=False).numpy()
        np.testing.assert_allclose(model(x[:8], training=False).numpy(), expected, atol=1e-5)
        assert np.abs(expected).max() > 1e-3
