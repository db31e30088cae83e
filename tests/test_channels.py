"""Channel search: one variable per layer at the widest width, narrower choices read leading slices."""
import numpy as np
import tensorflow as tf

import spos_tf
from spos_tf import spaces
from spos_tf.blocks import OpUnit
from spos_tf.layers import BNControl

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
    for var in big.weight_dict().values():          # non-trivial statistics
        if "moving" in var.name:
            var.assign(tf.random.uniform(var.shape, 0.5, 1.5, seed=2))
    for w in (4, 8, 16):
        small = OpUnit("shuffle5x5", 12, 24, 1, 8, (w,), control, affine=False, seed=9)
        src = big.weight_dict()
        for key, var in small.weight_dict().items():
            var.assign(src[key][tuple(slice(0, d) for d in var.shape)])
        np.testing.assert_allclose(big(x, training=False, width=w).numpy(),
                                   small(x, training=False).numpy(), atol=1e-6)
    # training mode updates only the used slice of the BN statistics
    stats = big.prims["bn1"].moving_mean
    before = stats.numpy().copy()
    big(x, training=True, width=8)
    after = stats.numpy()
    assert not np.array_equal(before[:8], after[:8]) and np.array_equal(before[8:], after[8:])
