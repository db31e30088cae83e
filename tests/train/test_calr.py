"""--lr_schedule=complexity_aware (DYNAS's CaLR): the per-path decay exponent and weight against
hand computations, and a train step whose update is the plain step's update scaled by that
weight on the sampled path only."""

import math
import types

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import spos_tf
from spos_tf import costs, spaces
from spos_tf.models import step as step_lib
from spos_tf.models.sampling import macs_bounds
from spos_tf.train.recipe import calr_exponent, complexity_aware_weight


def _space():
    return spaces.get("nasbench201", image_size=8, width=0.25, repeats=(1, 1, 1))


def test_exponent_runs_from_4_at_the_fewest_macs_to_a_quarter_at_the_most():
    lo, hi = 1e6, 16e6
    assert calr_exponent(lo, lo, hi) == pytest.approx(4.0)
    assert calr_exponent(hi, lo, hi) == pytest.approx(0.25)
    # linear in log MACs: the geometric midpoint gets the mean exponent (4 + 1/4) / 2
    assert calr_exponent(4e6, lo, hi) == pytest.approx(2.125)
    assert calr_exponent(2e6, lo, hi) == pytest.approx(4.0 - 3.75 / 4)
    # tensors give the same numbers
    assert float(calr_exponent(tf.constant(2e6), lo, hi)) == pytest.approx(3.0625, rel=1e-6)
    assert calr_exponent(5.0, 3.0, 3.0) == 1.0  # one cost only: plain linear decay


def test_weight_is_the_remaining_fraction_to_the_paths_exponent():
    space = _space()
    lo, hi = macs_bounds(space)
    config = types.SimpleNamespace(
        steps=60, lr_schedule_steps=100, lr_schedule_start=0, calr_gamma_max=4.0
    )
    weight = complexity_aware_weight(config, space)
    assert float(weight(0, lo)) == pytest.approx(1.0)
    assert float(weight(50, lo)) == pytest.approx(0.5**4, rel=1e-5)
    assert float(weight(50, hi)) == pytest.approx(0.5**0.25, rel=1e-5)
    mid = math.sqrt(lo * hi)
    assert float(weight(80, mid)) == pytest.approx(0.2**2.125, rel=1e-5)
    assert float(weight(100, hi)) == 0.0
    # --calr_gamma_max=8: the exponent runs from 8 to 1/8 instead
    config = types.SimpleNamespace(
        steps=60, lr_schedule_steps=100, lr_schedule_start=0, calr_gamma_max=8.0
    )
    weight = complexity_aware_weight(config, space)
    assert float(weight(50, lo)) == pytest.approx(0.5**8, rel=1e-5)
    assert float(weight(50, hi)) == pytest.approx(0.5**0.125, rel=1e-5)
    assert float(weight(80, mid)) == pytest.approx(0.2 ** ((8 + 1 / 8) / 2), rel=1e-5)


def test_a_run_started_part_way_reads_the_schedule_from_its_start():
    """--lr_schedule_start=50 of a 100-step schedule: the run's step t has the weight of step
    50 + t, by the formula."""
    space = _space()
    lo, hi = macs_bounds(space)
    config = types.SimpleNamespace(
        steps=30, lr_schedule_steps=100, lr_schedule_start=50, calr_gamma_max=4.0
    )
    weight = complexity_aware_weight(config, space)
    assert float(weight(0, lo)) == pytest.approx(0.5**4, rel=1e-5)
    assert float(weight(30, hi)) == pytest.approx(0.2**0.25, rel=1e-5)
    assert float(weight(50, hi)) == 0.0


def test_step_scales_the_sampled_paths_update_by_the_weight_and_leaves_the_rest():
    """Two twin supernets take the same step (plain SGD, no momentum or L2) at step 40 of a
    100-step schedule, one with the CaLR weight: every variable's change must be the plain
    change times (1 - 40/100) ** gamma, gamma computed here from the sampled path's MACs (cost
    table) by the formula, and the unsampled variables must stay bit-identical in both."""
    space = _space()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, 8)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    config = types.SimpleNamespace(
        steps=100, lr_schedule_steps=None, lr_schedule_start=0, calr_gamma_max=4.0
    )

    deltas, befores, archs = [], [], []
    for weighted in (False, True):
        net = spos_tf.build_supernet(space, seed=3)
        net.compile(optimizer=spos_tf.MaskedSGD(0.1, momentum=0.0, weight_decay=0.0), loss=loss)
        net.optimizer.iterations.assign(40)
        before = [v.numpy().copy() for v in net.trainable_variables]
        out = step_lib.train_step(
            net,
            net.optimizer,
            lambda labels, logits: loss(labels, logits),
            tf.constant(x),
            tf.constant(y),
            loss_weight=complexity_aware_weight(config, space) if weighted else None,
        )
        archs.append(net.sampler(40))
        befores.append(before)
        deltas.append([v.numpy() - b for v, b in zip(net.trainable_variables, before)])
        assert np.isfinite(float(out.loss))
    assert archs[0] == archs[1]
    lo, hi = macs_bounds(space)
    macs = costs.CostTable(space).macs(archs[0])
    gamma = 4.0 + (0.25 - 4.0) * (math.log(macs) - math.log(lo)) / (math.log(hi) - math.log(lo))
    factor = 0.6**gamma
    assert 0.0 < factor < 1.0
    moved = 0
    for plain, scaled, b0, b1 in zip(*deltas, *befores):
        np.testing.assert_array_equal(b0, b1)
        np.testing.assert_allclose(scaled, factor * plain, rtol=2e-3, atol=1e-7)
        if np.any(plain != 0):
            moved += 1
        else:
            np.testing.assert_array_equal(scaled, 0.0)
    assert moved > 0
