"""Supernet: single-path masked training, one trace for all paths, stand-alone equality."""

import numpy as np
import pytest
import tensorflow as tf

import spos_tf
from spos_tf import spaces
from spos_tf.models.sampling import (
    ArchSampler,
    InfeasibleConstraintError,
    SequenceSampler,
    macs_range,
)

from _masked import compile_masked as _compile
from _masked import optimizer_snapshot as _snapshot
from _masked import random_batch as _data


def tiny(name="shufflenet_oneshot", **kw):
    """A 4-block space; channel spaces get 3 scales (narrower, 1.0, wider) to keep tracing short:
    a supernet's trace time grows with the square of the choices per block."""
    base = dict(image_size=16, num_classes=10, width=0.25, repeats=(1, 1, 1, 1))
    if "channels" in name:
        base["channel_scales"] = (0.4, 1.0, 1.6)
    return spaces.get(name, **dict(base, **kw))


def _used_slice(net, block, op, key, width):
    pname, wname = key.split("#")[0].split("/")
    shape = block.units[op].prim_specs(width)[pname].weight_shapes(False)[wname]
    return tuple(slice(0, d) for d in shape)


@pytest.mark.slow
@pytest.mark.parametrize(
    "space_name, distributed, optimizer",
    [
        ("shufflenet_oneshot", False, "sgd"),
        ("shufflenet_oneshot", True, "sgd"),
        ("shufflenet_oneshot_blocks_channels", False, "sgd"),
        ("shufflenet_oneshot_blocks_channels", True, "sgd"),
        ("shufflenet_oneshot_blocks_channels", False, "adam"),
    ],
)
def test_unsampled_choices_unchanged(space_name, distributed, optimizer, request):
    """fit (spos_tf.models.step) with a masked optimizer: the weights, BN statistics and every
    optimizer slot of unsampled choices, and the unused slices of sampled ones, stay bit-identical;
    the sampled slices move."""
    space = tiny(space_name)
    rng = np.random.default_rng(3)
    a, b = space.sample(rng), space.sample(rng)
    strategy = request.getfixturevalue("mirrored") if distributed else tf.distribute.get_strategy()
    with strategy.scope():
        net = spos_tf.build_supernet(space, seed=1)
        _compile(net, optimizer=optimizer)
    if distributed:
        assert strategy.num_replicas_in_sync == 2
    net.set_sampler(SequenceSampler(space, [a, b, b]))
    x, y = _data(space, 24)
    net.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0, shuffle=False)  # path a: momentum
    before = _snapshot(net)
    net.fit(x[8:], y[8:], batch_size=8, epochs=1, verbose=0, shuffle=False)  # path b, 2 steps
    after = _snapshot(net)
    chosen = space.decode(b)
    n_changed = 0
    for (blk_idx, op, key), old in before.items():
        new = after[(blk_idx, op, key)]
        block = net.choice_blocks[blk_idx]
        if op != chosen[blk_idx]["op"]:
            assert np.array_equal(old, new), f"unsampled {blk_idx}/{op}/{key} changed"
            continue
        width = spos_tf.spaces.space.mid_channels(
            space, block.units[op].cout, chosen[blk_idx]["channel"]
        )
        sl = _used_slice(net, block, op, key, width)
        assert not np.array_equal(old[sl], new[sl]), f"sampled {blk_idx}/{op}/{key} did not change"
        rest_old, rest_new = old.copy(), new.copy()
        rest_old[sl] = 0
        rest_new[sl] = 0
        assert np.array_equal(rest_old, rest_new), f"unused slice of {blk_idx}/{op}/{key} changed"
        n_changed += 1
    assert n_changed > 20


@pytest.mark.slow
def test_one_trace_serves_20_architectures():
    space = tiny()
    net = spos_tf.build_supernet(space)
    _compile(net)
    rng = np.random.default_rng(0)
    sampled = set()
    while len(sampled) < 20:
        sampled.add(space.sample(rng))
    net.set_sampler(SequenceSampler(space, sorted(sampled)))
    x, y = _data(space, 20 * 4)
    net.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert net.optimizer.iterations.numpy() == 20
    assert net.train_function.experimental_get_tracing_count() == 1

    @tf.function
    def forward(images, arch):
        return net(images, training=False, arch=arch)

    outs = [forward(x[:2], space.indices(a)).numpy() for a in sorted(sampled)]
    assert forward.experimental_get_tracing_count() == 1
    assert len({o.tobytes() for o in outs}) == 20  # every path computes something different


@pytest.mark.slow
@pytest.mark.parametrize("space_name", ["shufflenet_oneshot", "shufflenet_oneshot_blocks_channels"])
def test_standalone_equals_supernet_path(space_name):
    space = tiny(space_name)
    net = spos_tf.build_supernet(space, seed=2)
    _compile(net, lr=0.05)
    x, y = _data(space, 64)
    net.fit(x, y, batch_size=8, epochs=1, verbose=0)  # non-trivial weights and BN stats
    for seed in range(3):
        arch = space.sample(np.random.default_rng(100 + seed))
        model = spos_tf.build_standalone(space, arch, supernet=net)
        assert not any("switch_case" in n or "Case" in n for n in _op_types(model, space))
        net.set_arch(arch)
        expected = net(x[:8], training=False).numpy()
        got = model(x[:8], training=False).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
        assert np.abs(expected).max() > 1e-3


def _op_types(model, space):
    fn = tf.function(lambda t: model(t, training=False)).get_concrete_function(
        tf.TensorSpec([1, space.image_size, space.image_size, 3])
    )
    return {op.type for op in fn.graph.get_operations()}


def test_constrained_sampling():
    space = tiny()
    table = spos_tf.costs.CostTable(space)
    all_macs = [table.macs(space.sample(np.random.default_rng(i))) for i in range(200)]
    lo, hi = np.percentile(all_macs, [40, 60])
    sampler = ArchSampler(space, seed=5, constraint=macs_range(space, lo, hi))
    for step in range(50):
        assert lo <= table.macs(sampler(step)) <= hi
    assert sampler(7) == ArchSampler(space, 5, constraint=macs_range(space, lo, hi))(7)
    bad = ArchSampler(
        space, 0, constraint=macs_range(space, high=1), max_tries=50, description="MACs <= 1"
    )
    with pytest.raises(InfeasibleConstraintError, match="MACs <= 1"):
        bad(0)
    net = spos_tf.build_supernet(space)
    with pytest.raises(InfeasibleConstraintError):
        net.set_sampler(bad)


@pytest.mark.slow
def test_distinct_sampling_leaves_dead_edges_alone_and_trains_live_ones_alike():
    """--sampling=distinct trains the canonical form of a cell (DistinctSampler): the ops on edges
    that cannot reach the output keep their weights and BN statistics, which steps on the
    encoding itself move (weight decay and momentum on the sampled path), while the live edge and the rest of the
    network get the same update from both, and both compute the same logits."""
    space = spaces.get("nasbench201", image_size=8, width=0.25, repeats=(1, 1, 1))
    encoding = space.parse("3,3,3,3,0,0")  # nodes 1 and 2 feed nothing: only edge 0->3 is live
    canonical = space.canonical(encoding)
    assert str(canonical) == "0,0,0,3,0,0"
    x, y = _data(space, 16)

    def weights(net):  # every choice unit's weights, keyed by (cell edge unit, its edge, op, key)
        return {
            (i, block.block, op, key): var.numpy().copy()
            for i, block in enumerate(net.choice_blocks)
            for op, unit in block.units.items()
            for key, var in unit.weight_dict().items()
        }

    initial, trained, outputs = None, [], []
    for arch in (encoding, canonical):
        net = spos_tf.build_supernet(space, seed=1)
        _compile(net)
        initial = weights(net)  # the same seed: the same initial weights for both
        net.set_sampler(SequenceSampler(space, [arch, arch]))
        net.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        trained.append(weights(net))
        outputs.append(net(x[:4], training=False, arch=space.indices(canonical)).numpy())
    dead = 0
    for (i, edge, op, key), start in initial.items():
        on_encoding, on_canonical = trained[0][(i, edge, op, key)], trained[1][(i, edge, op, key)]
        if edge in (0, 1, 2) and op == "nor_conv_3x3":  # dead: weights and BN statistics
            assert np.array_equal(on_canonical, start), (i, edge, key)
            if "kernel" in key:
                dead += 1
                assert not np.array_equal(on_encoding, start), (i, edge, key)
        else:
            np.testing.assert_allclose(on_encoding, on_canonical, rtol=1e-5, atol=1e-6)
    assert dead == 3 * 3  # three dead edges in each of the three cells
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)
