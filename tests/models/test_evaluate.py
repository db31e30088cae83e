"""BN recalibration and path scoring (spos_tf.models.evaluate) on a trained tiny supernet."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import spos_tf
from spos_tf.runs import run_dir
from spos_tf import spaces
from spos_tf.data import DataConfig, build_dataset
from spos_tf.models.evaluate import PathEvaluator, evaluate_path, evaluator_for, recalibrate_bn

from _supernet_workdir import trained_supernet_dir

CALIB_BATCHES, CALIB_BATCH = 4, 32


def _calib(data):
    ds = build_dataset(
        data, "calib", CALIB_BATCH, training=False, seed=0, repeat=True, drop_remainder=True
    )
    return ds.take(CALIB_BATCHES).cache()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(space, supernet restored from the run directory, data config, its PathEvaluator)."""
    space, net, config = run_dir.restore_model(trained_supernet_dir(tmp_path_factory))
    data = DataConfig(**config["data"])
    evaluator = evaluator_for(net)  # the instance evaluate_path() uses too
    evaluator.calib_ds = _calib(data)
    evaluator.holdout_ds = build_dataset(data, "holdout", 100, training=False, seed=0).cache()
    evaluator.num_calib_batches = CALIB_BATCHES
    trained_values = [v.numpy() for v in net.variables]
    yield space, net, data, evaluator
    for var, value in zip(net.variables, trained_values):
        var.assign(value)


def _restore(net, values):
    for var, value in zip(net.variables, values):
        var.assign(value)


def _bn_stats(net):
    """{(block or "stem"/"head", op, "prim/moving_x"): array} of every BN moving statistic."""
    holders = [("stem", None, net.stem), ("head", None, net.head)]
    holders += [(b.block, op, u) for b in net.choice_blocks for op, u in b.units.items()]
    return {
        (block, op, key): var.numpy().copy()
        for block, op, holder in holders
        for key, var in holder.weight_dict().items()
        if "moving" in key
    }


def _on_path(space, arch, block, op):
    return block in ("stem", "head") or space.decode(arch)[block]["op"] == op


def _used(net, space, arch, block, op, key):
    """Index of the entries of a statistic that the path uses (its leading slice)."""
    if block in ("stem", "head"):
        return slice(None)
    width = net.choice_blocks[block].widths[space.indices(arch)[1, block]]
    pname, wname = key.split("/")
    (c,) = net.choice_blocks[block].units[op].prim_specs(width)[pname].weight_shapes(False)[wname]
    return slice(0, c)


def _capture_inputs(net, layer, batches):
    """Inputs of ``layer`` when ``net`` runs eagerly in training mode on ``batches``."""
    seen, original = [], layer.call

    def recording(x, *args, **kwargs):
        seen.append(x.numpy().astype(np.float64))
        return original(x, *args, **kwargs)

    object.__setattr__(layer, "call", recording)
    try:
        for images, _ in batches:
            net(images, training=True)
    finally:
        object.__delattr__(layer, "call")
    return seen


def _exact_stats(inputs):
    """Mean of the per-batch means and of the per-batch unbiased variances (numpy, float64)."""
    means = [x.mean(axis=(0, 1, 2)) for x in inputs]
    variances = [x.reshape(-1, x.shape[-1]).var(axis=0, ddof=1) for x in inputs]
    return np.mean(means, axis=0), np.mean(variances, axis=0)


@pytest.mark.slow
def test_recalibration_changes_only_the_path_and_equals_exact_statistics(trained):
    space, net, data, ev = trained
    arch = space.parse("1,3,0,2")
    net.set_arch(arch)
    last = space.decode(arch)[-1]["op"]
    deep = net.choice_blocks[-1].units[last].prims["bn1"]  # after 3 choice blocks
    targets = {"stem_bn": net.stem.prims["stem_bn"], f"last_block/{last}/bn1": deep}
    snapshot = [v.numpy() for v in net.variables]
    inputs = {name: _capture_inputs(net, layer, ev.calib_ds) for name, layer in targets.items()}
    _restore(net, snapshot)  # the eager capture pass moved the path's statistics

    before = _bn_stats(net)
    assert ev.recalibrate() == CALIB_BATCHES
    after = _bn_stats(net)
    assert float(net.bn_control.momentum.numpy()) == pytest.approx(net.bn_control.default)

    changed = 0
    for (block, op, key), old in before.items():
        new = after[(block, op, key)]
        if _on_path(space, arch, block, op):
            assert not np.array_equal(old, new), f"{block}/{op}/{key} was not recalibrated"
            changed += 1
        else:
            assert np.array_equal(old, new), f"{block}/{op}/{key} is off the path but changed"
    assert changed > 10

    for name, layer in targets.items():
        mean, var = _exact_stats(inputs[name])
        np.testing.assert_allclose(
            layer.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-6, err_msg=name
        )
        np.testing.assert_allclose(
            layer.moving_variance.numpy(), var, rtol=1e-4, atol=1e-6, err_msg=name
        )

    # The first batch overwrites: recalibrating another path in between changes nothing here.
    ev(space.parse("0,0,0,0"))
    net.set_arch(arch)
    ev.recalibrate()
    again = _bn_stats(net)
    for key, value in after.items():
        if _on_path(space, arch, key[0], key[1]):
            np.testing.assert_array_equal(again[key], value)


@pytest.mark.slow
def test_recalibration_improves_held_out_accuracy(trained):
    space, net, data, ev = trained
    snapshot = [v.numpy() for v in net.variables]
    rng = np.random.default_rng(7)
    archs = list({space.sample(rng) for _ in range(6)})[:4]
    stale, recalibrated = [], []
    for arch in archs:
        _restore(net, snapshot)  # the statistics the supernet was trained with
        net.set_arch(arch)
        stale.append(ev.evaluate())
        recalibrated.append(ev(arch))
    print("stale", np.round(stale, 3), "recalibrated", np.round(recalibrated, 3))
    assert np.mean(recalibrated) > np.mean(stale) + 0.05
    assert min(r - s for r, s in zip(recalibrated, stale)) > -0.03
    assert np.mean(recalibrated) > 0.3  # well above chance (0.1): the supernet learned


@pytest.mark.slow
def test_fifty_candidates_trace_once(trained):
    space, net, data, ev = trained
    ev(space.parse("2,2,2,2"))  # traced at most once by earlier tests or here
    calib0, eval0 = ev.calib_traces, ev.eval_traces
    rng = np.random.default_rng(0)
    archs = []
    while len(archs) < 50:
        arch = space.sample(rng)
        if arch not in archs:
            archs.append(arch)
    scores = [ev(arch) for arch in archs]
    assert (ev.calib_traces, ev.eval_traces) == (calib0, eval0) == (1, 1)
    assert len(set(scores)) > 5 and all(0.0 <= s <= 1.0 for s in scores)
    # The function API reuses the model's cached evaluator: still no new trace.
    acc = evaluate_path(net, archs[0], ev.calib_ds, ev.holdout_ds, CALIB_BATCHES)
    assert acc == scores[0]
    assert (ev.calib_traces, ev.eval_traces) == (1, 1)


@pytest.mark.slow
def test_standalone_recalibration_matches_the_supernet_path(trained):
    space, net, data, ev = trained
    arch = space.parse("3,1,2,0")
    supernet_acc = ev(arch)
    model = spos_tf.build_standalone(space, arch, supernet=net)
    for var in model.variables:
        if "moving" in var.name:
            var.assign(tf.fill(var.shape, 0.5))  # forget the inherited statistics
    assert recalibrate_bn(model, ev.calib_ds, CALIB_BATCHES) == CALIB_BATCHES
    assert recalibrate_bn(model, ev.calib_ds, CALIB_BATCHES) == CALIB_BATCHES
    assert evaluator_for(model).calib_traces == 1
    reference = spos_tf.build_standalone(space, arch, supernet=net)  # the supernet's statistics
    pairs = [(a, b) for a, b in zip(model.variables, reference.variables) if "moving" in a.name]
    assert len(pairs) > 10
    for var, ref in pairs:
        np.testing.assert_allclose(var.numpy(), ref.numpy(), rtol=1e-5, atol=1e-7, err_msg=var.name)
    standalone_acc = evaluator_for(model).evaluate(ev.holdout_ds)
    assert abs(standalone_acc - supernet_acc) <= 1 / 300


@pytest.mark.slow
def test_recalibration_with_channel_search_keeps_unused_slices():
    space = spaces.get(
        "shufflenet_oneshot_blocks_channels",
        image_size=16,
        num_classes=10,
        width=0.25,
        repeats=(1, 1, 1, 1),
        channel_scales=(0.4, 1.0),
        ops=("shuffle3x3", "xception"),
    )
    net = spos_tf.build_supernet(space, seed=3)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(3, 8, 16, 16, 3)).astype("float32"))
    ev = PathEvaluator(net, tf.data.Dataset.from_tensor_slices(images), num_calib_batches=3)
    arch = space.make(op=[0, 1, 1, 0], channel=[0, 0, 1, 0])
    net.set_arch(arch)
    before = _bn_stats(net)
    ev.recalibrate()
    after = _bn_stats(net)
    narrow_changed = 0
    for (block, op, key), old in before.items():
        new = after[(block, op, key)]
        if not _on_path(space, arch, block, op):
            assert np.array_equal(old, new), (block, op, key)
            continue
        used = _used(net, space, arch, block, op, key)
        assert not np.array_equal(old[used], new[used]), (block, op, key)
        if used.stop is not None and used.stop < len(old):
            np.testing.assert_array_equal(old[used.stop :], new[used.stop :])
            narrow_changed += 1
    assert narrow_changed > 0  # some statistics were used only in part, the rest untouched


@pytest.mark.slow
def test_bad_inputs_fail_clearly(trained):
    space, net, data, ev = trained
    with pytest.raises(TypeError, match="bn_control"):
        PathEvaluator(tf.keras.Sequential())
    with pytest.raises(ValueError, match="calibration batches"):
        ev.recalibrate(num_batches=0)
    with pytest.raises(ValueError, match="yielded no batch"):
        ev.recalibrate(ev.calib_ds.take(0))
    assert float(net.bn_control.momentum.numpy()) == pytest.approx(net.bn_control.default)


def test_ema_mode_resets_and_averages_like_the_reference():
    """calib_mode="ema" (issue 12, item 3): every BN statistic reset to 0 / 1, then the path's
    statistics are the exponential average (Keras momentum 0.9) of the batch statistics."""
    space = spaces.get(
        "shufflenet_oneshot",
        image_size=16,
        num_classes=10,
        width=0.25,
        repeats=(1, 1, 1, 1),
        ops=("shuffle3x3", "xception"),
    )
    net = spos_tf.build_supernet(space, seed=3)
    rng = np.random.default_rng(1)
    images = tf.constant((2.0 + 3.0 * rng.normal(size=(5, 8, 16, 16, 3))).astype("float32"))
    calib = tf.data.Dataset.from_tensor_slices(images)
    arch = space.parse("1,0,1,0")
    net.set_arch(arch)
    layer = net.stem.prims["stem_bn"]
    snapshot = [v.numpy() for v in net.variables]
    inputs = _capture_inputs(net, layer, [(x, None) for x in images])
    _restore(net, snapshot)
    for var in net.variables:  # statistics that the reset must discard
        if "moving" in var.name:
            var.assign(tf.fill(var.shape, 0.7))
    ev = PathEvaluator(net, calib, num_calib_batches=5, calib_mode="ema")
    assert ev.recalibrate() == 5
    mean, var = np.zeros(layer.moving_mean.shape), np.ones(layer.moving_mean.shape)
    for x in inputs:
        flat = x.reshape(-1, x.shape[-1])
        mean = 0.9 * mean + 0.1 * flat.mean(axis=0)
        var = 0.9 * var + 0.1 * flat.var(axis=0, ddof=1)
    np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), var, rtol=1e-4, atol=1e-6)
    exact = _exact_stats(inputs)
    assert not np.allclose(layer.moving_variance.numpy(), exact[1], rtol=0.05)  # not exact
    for (block, op, key), value in _bn_stats(net).items():
        if not _on_path(space, arch, block, op):  # off the path: reset values
            np.testing.assert_array_equal(value, 0.0 if "mean" in key else 1.0)
    assert float(net.bn_control.momentum.numpy()) == pytest.approx(net.bn_control.default)
    with pytest.raises(ValueError, match="--calib_mode"):
        PathEvaluator(net, calib, calib_mode="running")


@pytest.mark.slow
def test_augmented_calibration_is_the_same_for_every_candidate(data_dir):
    """--calib_augment: augmented training images, identical on every pass (every candidate)."""
    from spos_tf.search import SearchConfig, build_eval_data

    data = DataConfig(data_dir=data_dir, image_size=8)
    config = SearchConfig(
        supernet_dir="s", workdir="w", calib_images=96, calib_batch_size=32, cache_mb=0
    )
    plain, _, _ = build_eval_data(data, config, 8)
    augmented, _, _ = build_eval_data(data, dataclasses.replace(config, calib_augment=True), 8)
    first = [x.numpy() for x, _ in augmented]
    second = [x.numpy() for x, _ in augmented]
    assert len(first) == 3 and all(np.array_equal(a, b) for a, b in zip(first, second))
    labels = [y.numpy() for _, y in augmented]
    assert all(np.array_equal(a, b) for a, b in zip(labels, [y.numpy() for _, y in plain]))
    assert not any(np.array_equal(a, x.numpy()) for a, (x, _) in zip(first, plain))


def test_batch_stats_bn_normalises_with_the_batch_and_keeps_its_statistics():
    """A BN layer under ``BNControl.batch_stats`` in inference mode: (x - batch mean) /
    sqrt(biased batch variance + eps), computed here in numpy; moving statistics untouched."""
    from spos_tf.models.layers import BatchNorm, BNControl
    from spos_tf.spaces.ops import Prim

    control = BNControl(0.9)
    bn = BatchNorm(Prim("bn", 3, 3), control, affine=False)
    bn.moving_mean.assign([0.5, -1.0, 2.0])
    bn.moving_variance.assign([2.0, 3.0, 4.0])
    x = np.random.default_rng(0).normal(size=(4, 2, 2, 3)).astype("float32") * 3 + 1
    control.batch_stats = True
    got = tf.function(lambda t: bn(t, training=False))(x).numpy()
    control.batch_stats = False
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(got, (x - mean) / np.sqrt(var + bn.epsilon), atol=1e-5)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), np.float32([0.5, -1.0, 2.0]))
    np.testing.assert_array_equal(bn.moving_variance.numpy(), np.float32([2.0, 3.0, 4.0]))
    plain = tf.function(lambda t: bn(t, training=False))(x).numpy()  # a trace of its own
    np.testing.assert_allclose(plain, (x - [0.5, -1, 2]) / np.sqrt(np.float32([2, 3, 4]) + 1e-3),
                               atol=1e-2)  # fmt: skip


def _tiny_nb201_holdout(n: int, seed: int):
    """A tiny NAS-Bench-201 supernet and ``n`` random labelled 8x8 images in batches of 20:
    ``(space, supernet, rng, images, labels, dataset)``."""
    space = spaces.get("nasbench201", image_size=8, width=0.25, repeats=(1, 1, 1))
    net = spos_tf.build_supernet(space, seed=3)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, n)
    return space, net, rng, x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(20)


def test_batch_stats_scoring_equals_a_hand_computation():
    """calib_mode="batch_stats": the score is the accuracy of the path run with every BN on the
    statistics of the scored batch (training-mode normalisation, no dropout in this space),
    batch by batch; no recalibration; every BN statistic of the model stays bit-identical."""
    space, net, rng, x, y, holdout = _tiny_nb201_holdout(60, seed=1)
    arch = space.parse("3,2,3,1,4,3")
    moving = [v for v in net.non_trainable_variables if "moving" in v.name]
    for v in moving:  # statistics that a scoring by them would visibly use
        v.assign(rng.uniform(0.5, 2.0, v.shape).astype("float32"))
    stats = [v.numpy().copy() for v in moving]
    evaluator = PathEvaluator(net, None, holdout, calib_mode="batch_stats")
    net.set_arch(arch)
    assert evaluator.recalibrate() == 0  # nothing to recompute, no calibration data needed
    score = evaluator.evaluate()
    for v, old in zip(moving, stats):
        np.testing.assert_array_equal(v.numpy(), old)
    # by hand: a stand-alone twin in training mode per batch of 20 (its BN updates do not matter)
    model = spos_tf.build_standalone(space, arch, supernet=net)
    hits = sum(
        int((np.argmax(model(x[i : i + 20], training=True).numpy(), -1) == y[i : i + 20]).sum())
        for i in range(0, 60, 20)
    )
    assert score == hits / 60
    assert evaluator.eval_traces == 1


def test_log_likelihood_is_the_mean_log_probability_of_the_true_class():
    """evaluate()'s by-product ``last_log_likelihood``: mean over the scored images of
    log softmax(logits)[label], computed here in numpy from the model's own logits over 3
    batches of 20 (a partial last batch of 10 included)."""
    space, net, _, x, y, holdout = _tiny_nb201_holdout(50, seed=2)
    net.set_arch(space.parse("3,2,3,1,4,3"))
    evaluator = PathEvaluator(net, None, holdout)
    assert evaluator.last_log_likelihood is None
    accuracy = evaluator.evaluate()
    logits = net(x, training=False).numpy().astype("float64")
    log_p = logits - logits.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    expected = log_p[np.arange(50), y].mean()
    assert evaluator.last_log_likelihood == pytest.approx(expected, rel=1e-5)
    assert expected < np.log(0.5)  # an untrained net: far from a perfect 0
    assert accuracy == (logits.argmax(-1) == y).mean()
