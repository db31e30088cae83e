"""Per-candidate fine-tuning before scoring (spos_tf.models.finetune, ``--finetune_steps``) on a
tiny NAS-Bench-201 supernet."""

import numpy as np
import pytest
import tensorflow as tf

import spos_tf
from spos_tf import spaces
from spos_tf.models.evaluate import PathEvaluator
from spos_tf.models.finetune import PathFinetuner

LR, MOMENTUM, STEPS, BATCH = 0.1, 0.9, 3, 16


def _setup(seed=0, n=STEPS * BATCH):
    space = spaces.get("nasbench201", image_size=8, width=0.25, repeats=(1, 1, 1))
    net = spos_tf.build_supernet(space, seed=3)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, n)
    return space, net, x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)


def _values(net):
    return [v.numpy().copy() for v in net.variables]


def test_fine_tuning_is_plain_sgd_on_the_path_and_restores_every_variable():
    """STEPS steps of the finetuner give the supernet the weights that plain momentum SGD (PyTorch
    form, written out here with a tape on a twin supernet of the same seed) gives it on the same
    batches; no weight off the path moves; restore() brings back every variable bit for bit."""
    space, net, x, y, data = _setup()
    _, twin, _, _, _ = _setup()  # the same weights (seed 3), trained by hand below
    arch = space.parse("3,2,3,1,4,3")
    path = tf.constant(space.indices(arch))
    before = _values(net)
    # by hand: m = mu*m + g; w -= lr*m on the mean cross-entropy, BN on batch statistics
    velocity = [tf.zeros_like(v) for v in twin.trainable_variables]
    for i in range(STEPS):
        with tf.GradientTape() as tape:
            logits = twin(x[i * BATCH : (i + 1) * BATCH], training=True, arch=path)
            loss = tf.reduce_mean(
                tf.keras.losses.sparse_categorical_crossentropy(
                    y[i * BATCH : (i + 1) * BATCH], logits, from_logits=True
                )
            )
        grads = tape.gradient(loss, twin.trainable_variables)
        for k, (g, v) in enumerate(zip(grads, twin.trainable_variables)):
            velocity[k] = MOMENTUM * velocity[k] + (0.0 if g is None else g)
            v.assign_sub(LR * velocity[k])
    finetuner = PathFinetuner(net, STEPS, LR, momentum=MOMENTUM)
    assert finetuner.train(arch, data) == STEPS
    for var, expected in zip(net.trainable_variables, twin.trainable_variables):
        np.testing.assert_allclose(var.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    saved = {id(v): old for v, old in zip(net.variables, before)}
    moved = [not np.array_equal(v.numpy(), saved[id(v)]) for v in net.trainable_variables]
    assert any(moved)
    off = [v for v, owner in net.variable_owners() if not bool(owner.active(path))]
    assert off
    for var in off:  # masked: the other ops' weights are untouched
        np.testing.assert_array_equal(var.numpy(), saved[id(var)])
    finetuner.restore()
    for old, var in zip(before, net.variables):
        np.testing.assert_array_equal(var.numpy(), old)


def test_every_candidate_starts_from_the_same_state():
    """Fine-tuning B, restoring, fine-tuning A, restoring and fine-tuning B again gives B the
    same weights bit for bit (zeroed momentum, restored weights and statistics); one trace."""
    space, net, _, _, data = _setup(seed=1)
    a, b = space.parse("3,3,3,3,3,3"), space.parse("2,3,1,3,0,3")
    finetuner = PathFinetuner(net, STEPS, LR)
    finetuner.train(b, data)
    first = _values(net)
    finetuner.restore()
    with finetuner.applied(a, data):
        assert not all(np.array_equal(u, v.numpy()) for u, v in zip(first, net.variables))
    finetuner.train(b, data)
    for old, var in zip(first, net.variables):
        np.testing.assert_array_equal(var.numpy(), old)
    finetuner.restore()
    assert finetuner.traces == 1


def test_scoring_with_fine_tuning_fits_the_fine_tuned_images_and_leaves_the_model_as_it_was():
    """Fine-tuned on the very images it is then scored on (lr 0.1, 30 steps), a path scores
    higher than without; the model is bit-identical after each scoring."""
    space, net, x, y, _ = _setup(seed=2, n=32)
    holdout = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    arch = space.parse("3,3,3,3,3,3")
    plain = PathEvaluator(net, holdout, holdout)
    base = plain(arch)
    before = _values(net)
    tuned = PathEvaluator(
        net, holdout, holdout, finetuner=PathFinetuner(net, 30, 0.1), finetune_ds=holdout.repeat()
    )
    after = tuned(arch)
    assert after > base + 0.2, (base, after)
    for old, var in zip(before, net.variables):
        np.testing.assert_array_equal(var.numpy(), old)
    assert tuned(arch) == after  # the same state again: the same score
    assert plain(arch) == base
    for old, var in zip(before, net.variables):
        np.testing.assert_array_equal(var.numpy(), old)


def test_bad_settings_are_refused():
    space, net, _, _, data = _setup()
    with pytest.raises(ValueError, match="finetune_steps"):
        PathFinetuner(net, 0, LR)
    with pytest.raises(ValueError, match="finetune_lr"):
        PathFinetuner(net, 2, 0.0)
    with pytest.raises(TypeError, match="not a supernet"):
        PathFinetuner(spos_tf.build_standalone(space, space.parse("3,3,3,3,3,3")), 2, LR)
    with pytest.raises(ValueError, match="finetune_ds"):
        PathEvaluator(net, data, data, finetuner=PathFinetuner(net, 2, LR))
    with pytest.raises(ValueError, match="no batch"):
        PathFinetuner(net, 2, LR).train(space.parse("3,3,3,3,3,3"), data.take(0))
