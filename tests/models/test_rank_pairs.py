"""Ranking distillation from MACs (--sampling=rank_pairs): the pair sampler, the margin ranking
loss and the pair step's one masked update of two paths."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import spos_tf
from spos_tf import costs, spaces
from spos_tf.models.rank_pairs import RankPairSampler
from spos_tf.models.sampling import macs_range
from spos_tf.models.step import ranking_hinge
from spos_tf.spaces.space import Architecture

from _masked import compile_masked, random_batch


def _space():
    return spaces.get("nasbench201", image_size=8, width=0.25, repeats=(1, 1, 1))


def _groups_by_hand(space, groups=8):
    """Every cell's MACs by costs.macs, one at a time, and their quantiles: the group edges."""
    macs = [
        costs.macs(space, Architecture((genes,)))
        for genes in itertools.product(range(len(space.ops)), repeat=space.num_blocks)
    ]
    edges = np.quantile(macs, np.arange(1, groups) / groups)
    return lambda arch: int(np.sum(costs.macs(space, arch) >= edges))


def test_pairs_replay_come_from_two_groups_and_carry_the_group_distance_as_margin():
    space = _space()
    group = _groups_by_hand(space)
    sampler = RankPairSampler(space, seed=3, margin=0.05)
    distances = []
    for step in range(60):
        a, b, margin = sampler.pair(step)
        assert (a, b, margin) == RankPairSampler(space, seed=3, margin=0.05).pair(step)
        assert group(a) != group(b), (step, a, b)
        distances.append(abs(group(a) - group(b)))
        assert margin == pytest.approx(0.05 * distances[-1])
        assert sampler.paths(step) == [a, b] and sampler(step) == a
    assert len(set(distances)) >= 3  # near and far pairs both occur
    assert [sampler.pair(s)[0] for s in range(5)] != [
        RankPairSampler(space, seed=4).pair(s)[0] for s in range(5)
    ]


def test_pairs_meet_the_sampling_constraint_and_bad_settings_are_refused():
    space = _space()
    low, high = 40_000, 70_000
    sampler = RankPairSampler(space, 0, macs_range(space, low, high))
    for step in range(30):
        for arch in sampler.paths(step):
            assert low <= costs.macs(space, arch) <= high
    with pytest.raises(ValueError, match="--rank_loss_margin"):
        RankPairSampler(space, 0, margin=-0.1)
    with pytest.raises(ValueError, match="--rank_loss_weight"):
        RankPairSampler(space, 0, weight=float("nan"))


def test_ranking_hinge_equals_a_hand_computation():
    def hinge(la, lb, macs, margin, replicas=1):
        return float(
            ranking_hinge(tf.constant(la), tf.constant(lb), tf.constant(macs), margin, replicas)
        )

    # a has more MACs but the higher loss: max(0, 0.1 - (1.0 - 1.3)) = 0.4
    assert hinge(1.3, 1.0, [9.0, 5.0], 0.1) == pytest.approx(0.4)
    # b has more MACs and a loss 0.3 lower than a's: the margin 0.1 is met
    assert hinge(1.3, 1.0, [5.0, 9.0], 0.1) == 0.0
    # b has more MACs, a's loss is only 0.05 higher: 0.1 - 0.05
    assert hinge(1.05, 1.0, [5.0, 9.0], 0.1) == pytest.approx(0.05)
    assert hinge(1.3, 1.0, [7.0, 7.0], 0.1) == 0.0  # equal MACs: no teacher order
    # two replicas, each holding half of the global-batch loss: the hinge of the replica's mean
    # loss (1.3 vs 1.0), halved so that the two replicas' hinges sum to the mean
    assert hinge(0.65, 0.5, [9.0, 5.0], 0.1, replicas=2) == pytest.approx(0.2)


def _units(net):
    """``[(edge, op, unit)]`` of every choice unit of every cell."""
    return [
        (block.block, op, unit) for block in net.choice_blocks for op, unit in block.units.items()
    ]


def _kernels(net):
    """Copies of every choice unit's trainable weights and momentum, keyed by ``id`` of the
    variable (their names repeat across units)."""
    opt, state = net.optimizer, {}
    for _, _, unit in _units(net):
        for var in unit.weight_dict().values():
            if var.trainable:
                slot = opt._slots["momentum"][opt._index_dict[opt._var_key(var)]]
                state[id(var)] = (var.numpy().copy(), slot.numpy().copy())
    return state


def test_the_pair_step_moves_the_union_of_both_paths_and_nothing_else():
    """Momentum SGD with weight decay: every weight of either path moves (decay alone moves a
    kernel), every other unit's weights and momentum stay bit-identical; over three steps."""
    space = _space()
    net = spos_tf.build_supernet(space, seed=2)
    compile_masked(net)
    sampler = RankPairSampler(space, seed=7)
    net.set_sampler(sampler)
    x, y = random_batch(space, 16)
    for step in range(3):
        before = _kernels(net)
        net.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
        after = _kernels(net)
        a, b = sampler.paths(step)
        np.testing.assert_array_equal(
            net.step_paths_var.numpy(), [space.indices(a), space.indices(b)]
        )
        on, off = 0, 0
        for edge, op, unit in _units(net):
            on_path = op in (space.ops[a.genes[0][edge]], space.ops[b.genes[0][edge]])
            for var in unit.weight_dict().values():
                if not var.trainable:
                    continue
                (w0, m0), (w1, m1) = before[id(var)], after[id(var)]
                if on_path:
                    on += 1
                    assert not np.array_equal(w0, w1) and not np.array_equal(m0, m1), var.name
                else:
                    off += 1
                    np.testing.assert_array_equal(w0, w1, err_msg=var.name)
                    np.testing.assert_array_equal(m0, m1, err_msg=var.name)
        assert on > 0 and off > 0
    assert net.optimizer.iterations.numpy() == 3


def test_the_pair_step_equals_its_objective_differentiated_by_hand():
    """Plain SGD (no momentum, no decay) against a twin: the two paths' losses on the same batch
    plus weight x hinge of the hand-computed margin, differentiated by one tape, one update."""
    space = _space()
    x, y = random_batch(space, 16, seed=1)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    lr, weight, unit = 0.1, 3.0, 0.5  # a large margin, so the hinge is active
    sampler = RankPairSampler(space, seed=11, margin=unit, weight=weight)
    net = spos_tf.build_supernet(space, seed=5)
    net.compile(optimizer=spos_tf.MaskedSGD(lr, momentum=0.0, weight_decay=0.0), loss=loss)
    net.set_sampler(sampler)
    twin = spos_tf.build_supernet(space, seed=5)
    net.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)

    a, b, margin = sampler.pair(0)
    ma, mb = costs.macs(space, a), costs.macs(space, b)
    assert ma != mb and margin > 0
    with tf.GradientTape() as tape:
        la = loss(y, twin(x, training=True, arch=space.indices(a)))
        lb = loss(y, twin(x, training=True, arch=space.indices(b)))
        fewer, more = (lb, la) if ma > mb else (la, lb)
        hinge = tf.nn.relu(margin - (fewer - more))
        objective = la + lb + weight * hinge
    assert float(hinge) > 0
    grads = tape.gradient(objective, twin.trainable_variables)
    for v, g in zip(twin.trainable_variables, grads):
        if g is not None:
            v.assign_sub(lr * g)

    def state(model):  # weights and BN statistics; not the path variables
        return [v for v in model.variables if not v.name.startswith(("arch", "paths"))]

    assert len(state(net)) == len(state(twin))
    for p, q in zip(state(net), state(twin)):
        np.testing.assert_allclose(p.numpy(), q.numpy(), atol=2e-6, err_msg=p.name)
