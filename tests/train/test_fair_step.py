"""FairNAS's step (--sampling=fair): K paths on one batch, summed gradients, one update."""

import numpy as np
import tensorflow as tf
import tf_keras as keras

import spos_tf
from spos_tf import spaces
from spos_tf.models.sampling import FairSampler


def _space():
    return spaces.get("nasbench201", image_size=8, width=0.25, repeats=(1, 1, 1))


def test_fair_step_equals_summed_gradients_of_every_path_and_one_update():
    """The fair step against an independent computation on a twin supernet: run the K paths of
    step 0 one by one on the same batch (each updates only its own BN statistics), sum their
    gradients by hand and apply one plain SGD update to every variable. Weights and BN
    statistics must agree, and every conv op of every edge must have run."""
    space = _space()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, 16)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    lr = 0.1

    net = spos_tf.build_supernet(space, seed=5)
    net.compile(optimizer=spos_tf.MaskedSGD(lr, momentum=0.0, weight_decay=0.0), loss=loss)
    net.set_sampler(FairSampler(space, seed=1))
    assert net.paths_per_step == 5
    before = [v.numpy().copy() for v in net.variables]
    net.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert net.optimizer.iterations.numpy() == 1

    twin = spos_tf.build_supernet(space, seed=5)
    for v, b in zip(twin.variables, before):
        np.testing.assert_array_equal(v.numpy(), b)
    total = [tf.zeros_like(v) for v in twin.trainable_variables]
    for arch in FairSampler(space, seed=1).paths(0):
        with tf.GradientTape() as tape:
            out = twin(x, training=True, arch=space.indices(arch))
            value = loss(y, out)
        grads = tape.gradient(value, twin.trainable_variables)
        total = [t if g is None else t + g for t, g in zip(total, grads)]
    for v, g in zip(twin.trainable_variables, total):
        v.assign_sub(lr * g)
    for a, b in zip(net.variables, twin.variables):
        if a.name.startswith("arch") or "bn_momentum" in a.name:
            continue
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-6, err_msg=a.name)

    # Every conv op of every edge ran in exactly one of the K paths: its BN moving variance left
    # its initial 1 (and equals the twin's, which ran each path once). Kernels may keep a zero
    # gradient where the path gave the op an all-zero input (a `none` edge before it).
    ran = {
        unit.name: not np.array_equal(unit.prims["bn"].moving_variance.numpy(), 1.0)
        for block in net.choice_blocks
        for unit in block.units.values()
        if "bn" in unit.prims
    }
    assert len(ran) == 3 * 6 * 2 and all(ran.values()), [k for k, v in ran.items() if not v]
