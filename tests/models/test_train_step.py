"""The one training step (spos_tf.models.step): Keras fit and the app both run it; what it returns.

The masked-update tests (tests/models/test_supernet.py, tests/quant/test_quant_supernet.py, the app runs of
tests/train/test_train.py and tests/train/test_multiworker.py) exercise it through ``fit`` and the app.
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import spos_tf
from spos_tf import costs
from spos_tf import spaces
from spos_tf.models import step as step_lib
from spos_tf.models.sampling import ArchSampler


def _space():
    return spaces.get(
        "shufflenet_oneshot",
        image_size=8,
        num_classes=10,
        width=0.125,
        repeats=(1, 1, 1, 1),
        ops=("shuffle3x3", "xception"),
        dropout=0.0,
    )


def _batch(space, n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, space.image_size, space.image_size, 3)).astype("float32")
    return x, rng.integers(0, space.num_classes, n)


@pytest.fixture
def recorded(monkeypatch):
    """Replaces ``spos_tf.models.step.train_step`` by a wrapper that records each call's model."""
    calls = []
    real = step_lib.train_step

    def recording(model, *args, **kwargs):
        calls.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(step_lib, "train_step", recording)
    return calls


def test_fit_runs_the_shared_step_on_the_path_of_each_step(recorded):
    space = _space()
    net = spos_tf.build_supernet(space, seed=3)
    net.compile(
        optimizer=spos_tf.MaskedSGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = _batch(space, 12)
    sampler = ArchSampler(space, 3)
    history = net.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert recorded == [net]  # traced once, through the shared step
    assert net.optimizer.iterations.numpy() == 3
    # the last step trained sampler(2): it is in arch_var, and fit logged that path's MACs
    np.testing.assert_array_equal(net.arch_var.numpy(), space.indices(sampler(2)))
    assert len({costs.macs(space, sampler(t)) for t in range(3)}) > 1  # the paths differ
    np.testing.assert_allclose(
        history.history["arch_macs"][0], costs.macs(space, sampler(2)), rtol=1e-6
    )


def test_stand_alone_step_reports_fixed_macs_and_plain_sgd():
    space = _space()
    arch = space.sample(np.random.default_rng(1))
    model = spos_tf.build_standalone(space, arch, seed=0)
    optimizer = spos_tf.MaskedSGD(0.1, momentum=0.0, weight_decay=0.0)
    optimizer.build(model.trainable_variables)
    x, y = _batch(space)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    before = [v.numpy().copy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:  # the gradient at the start, computed here independently
        loss0 = ce(y, model(x, training=True))
    grads = tape.gradient(loss0, model.trainable_variables)
    # (that pass moved the BN moving statistics; the step's gradients use batch statistics only)
    out = step_lib.train_step(model, optimizer, ce, x, y, fixed_macs=1234.0)
    assert float(out.macs) == 1234.0 and bool(out.finite)
    np.testing.assert_allclose(float(out.loss), float(loss0), rtol=1e-6)
    for b, g, v in zip(before, grads, model.trainable_variables):
        np.testing.assert_allclose(v.numpy(), b - 0.1 * g.numpy(), rtol=1e-5, atol=1e-7)


def test_a_nan_loss_is_reported_as_not_finite():
    space = _space()
    net = spos_tf.build_supernet(space)
    optimizer = spos_tf.MaskedSGD(0.1)
    optimizer.bind(net)
    optimizer.build(net.trainable_variables)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x, y = _batch(space)
    assert bool(step_lib.train_step(net, optimizer, ce, x, y).finite)
    x[0, 0, 0, 0] = np.nan
    assert not bool(step_lib.train_step(net, optimizer, ce, x, y).finite)
