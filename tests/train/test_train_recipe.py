"""spos_tf.train.recipe: the loss, the learning-rate schedules, the optimizer and the
deterministic dropout, each against an independent computation."""

import dataclasses
import math

import numpy as np
import pytest

import spos_tf
import tensorflow as tf
from spos_tf.train.config import TrainConfig
from spos_tf.train.recipe import SmoothedSparseCE, StepDropout, lr_at, make_optimizer, make_schedule


def test_smoothed_sparse_ce_matches_keras():
    import tf_keras as keras

    logits = tf.constant([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    labels = tf.constant([0, 2])
    ours = SmoothedSparseCE(3, 0.1)(labels, logits)
    ref = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(
        tf.one_hot(labels, 3), logits
    )
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-6)


def test_step_dropout_is_a_function_of_seed_and_step():
    step = tf.Variable(5, dtype=tf.int64)
    layer = StepDropout(0.5, 7, lambda: step)
    x = tf.ones((4, 64))
    a, b = layer(x, training=True).numpy(), layer(x, training=True).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(StepDropout(0.5, 7, lambda: step)(x, training=True), a)
    step.assign(6)
    assert not np.array_equal(layer(x, training=True).numpy(), a)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("linear", lambda t: 0.5 * (1 - t / 10)),
        ("cosine", lambda t: 0.5 * 0.5 * (1 + math.cos(math.pi * t / 10))),
        ("constant", lambda t: 0.5),
    ],
)
def test_schedules_follow_their_formula_to_the_last_step(schedule, expected):
    sched = make_schedule(TrainConfig(steps=10, learning_rate=0.5, lr_schedule=schedule))
    for step in (0, 3, 9, 10):
        assert lr_at(sched, step) == pytest.approx(expected(step), rel=1e-6, abs=1e-7)


# a 25-step schedule from 0.5, by its formula
OVER_25_STEPS = [
    ("linear", lambda t: 0.5 * (1 - t / 25)),
    ("cosine", lambda t: 0.5 * 0.5 * (1 + math.cos(math.pi * t / 25))),
]


@pytest.mark.parametrize("schedule, expected", OVER_25_STEPS)
def test_a_longer_schedule_stops_part_way_down_it(schedule, expected):
    config = TrainConfig(
        workdir="unused", steps=15, lr_schedule_steps=25, learning_rate=0.5, lr_schedule=schedule
    )
    sched = make_schedule(config.validate())
    for step in (0, 7, 14, 15):
        assert lr_at(sched, step) == pytest.approx(expected(step), rel=1e-6, abs=1e-7)
    assert lr_at(sched, 15) > 0.1  # 60% of the way: far from 0
    with pytest.raises(ValueError, match="--lr_schedule_steps=10 is shorter than --steps=15"):
        dataclasses.replace(config, lr_schedule_steps=10).validate()


@pytest.mark.parametrize("schedule, expected", OVER_25_STEPS)
def test_a_run_can_start_part_way_down_a_schedule(schedule, expected):
    """--lr_schedule_start=10: the run's step t has the rate of the schedule's step 10 + t."""
    config = TrainConfig(
        workdir="unused",
        steps=15,
        lr_schedule_steps=25,
        lr_schedule_start=10,
        learning_rate=0.5,
        lr_schedule=schedule,
    )
    sched = make_schedule(config.validate())
    for step in (0, 7, 14, 15):
        assert lr_at(sched, step) == pytest.approx(expected(10 + step), rel=1e-6, abs=1e-7)
    # a saved optimizer's config rebuilds the same shifted schedule
    rebuilt = type(sched).from_config(sched.get_config())
    assert lr_at(rebuilt, 7) == pytest.approx(expected(17), rel=1e-6)
    with pytest.raises(ValueError, match="--lr_schedule_start=11 with --steps=15 runs past"):
        dataclasses.replace(config, lr_schedule_start=11).validate()
    with pytest.raises(ValueError, match="pass --lr_schedule_steps >= 25"):
        dataclasses.replace(config, lr_schedule_steps=None).validate()


@pytest.mark.parametrize("name, cls", [("sgd", spos_tf.MaskedSGD), ("adam", spos_tf.MaskedAdam)])
def test_make_optimizer_carries_the_recipe(name, cls):
    config = TrainConfig(
        optimizer=name, steps=10, learning_rate=0.5, momentum=0.8, weight_decay=1e-3
    )
    optimizer = make_optimizer(config)
    assert type(optimizer) is cls
    assert float(optimizer.learning_rate) == pytest.approx(0.5)  # schedule at step 0
    assert optimizer.l2 == pytest.approx(1e-3)  # L2 on kernels
    if name == "sgd":
        assert optimizer.momentum == pytest.approx(0.8)
