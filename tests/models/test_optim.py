"""Masked optimizers: MaskedAdam's per-entry step counts against an independent numpy Adam (the
unsampled op's weights and every slot bit-identical), and the supernet refusing stock optimizers.
The masked updates on a real supernet through fit (MaskedSGD and MaskedAdam, also under
MirroredStrategy) are tests/models/test_supernet.py::test_unsampled_choices_unchanged."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import spos_tf
from spos_tf import spaces
from spos_tf.models.optim import Owner
from spos_tf.spaces.space import GENE_KINDS

OP, CHANNEL = GENE_KINDS.index("op"), GENE_KINDS.index("channel")
LR, B1, B2, EPS = 0.01, 0.9, 0.999, 1e-7


class _Owned:
    """The two things a masked optimizer reads from a supernet: ``arch_var`` and
    ``variable_owners()``; here one block with two ops and two channel widths."""

    def __init__(self):
        self.arch_var = tf.Variable(np.zeros((len(GENE_KINDS), 1), np.int32))
        self.op0 = tf.Variable(np.linspace(-1, 1, 6, dtype=np.float32), name="op0/kernel")
        self.op1 = tf.Variable(np.linspace(2, 3, 6, dtype=np.float32), name="op1/kernel")
        # op 0's second tensor: the first 2 entries at channel choice 0, all 4 at choice 1
        self.sliced = tf.Variable(np.arange(4, dtype=np.float32), name="op0/sliced_kernel")
        self.free = tf.Variable(np.ones(3, np.float32), name="head/kernel")  # no owner
        self.vars = [self.op0, self.op1, self.sliced, self.free]

    def variable_owners(self):
        return [
            (self.op0, Owner(0, ((OP, 0),))),
            (self.op1, Owner(0, ((OP, 1),))),
            (self.sliced, Owner(0, ((OP, 0),), shapes=((2,), (4,)))),
        ]


def _numpy_adam(x0, grads):
    """Plain Adam (tf_keras' epsilon form) over the given gradients, in float64."""
    x, m, v = x0.astype(np.float64), 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        x = x - LR * np.sqrt(1 - B2**t) / (1 - B1**t) * m / (np.sqrt(v) + EPS)
    return x


def test_masked_adam_counts_steps_per_entry():
    model = _Owned()
    opt = spos_tf.MaskedAdam(LR, beta_1=B1, beta_2=B2, epsilon=EPS)
    opt.bind(model)
    opt.build(model.vars)
    initial = [v.numpy().copy() for v in model.vars]
    # (op, channel) per step: op 0 in 3 of 7 steps, the sliced tail only in 2 of those
    path = [(1, 0), (1, 1), (0, 1), (1, 0), (0, 0), (1, 1), (0, 1)]
    rng = np.random.default_rng(0)
    grads = [[rng.normal(size=v.shape).astype(np.float32) for v in model.vars] for _ in path]
    for step, ((op, ch), g) in enumerate(zip(path, grads)):
        arch = np.zeros((len(GENE_KINDS), 1), np.int32)
        arch[OP, 0], arch[CHANNEL, 0] = op, ch
        model.arch_var.assign(arch)
        inactive = model.op1 if op == 0 else model.op0
        key = opt._var_key(inactive)
        before = [inactive.numpy().copy()] + [
            opt._slots[n][opt._index_dict[key]].numpy().copy() for n in opt.slot_names
        ]
        opt.apply_gradients(zip([tf.constant(x) for x in g], model.vars))
        after = [inactive.numpy()] + [
            opt._slots[n][opt._index_dict[key]].numpy() for n in opt.slot_names
        ]
        for b, a in zip(before, after):  # the unsampled op: weights and every slot bit-identical
            assert np.array_equal(b, a), f"step {step}: unsampled variable or slot moved"

    def used(which, pred):
        return [g[which] for (op, ch), g in zip(path, grads) if pred(op, ch)]

    close = dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        model.op0.numpy(), _numpy_adam(initial[0], used(0, lambda o, c: o == 0)), **close
    )
    np.testing.assert_allclose(
        model.op1.numpy(), _numpy_adam(initial[1], used(1, lambda o, c: o == 1)), **close
    )
    head = _numpy_adam(initial[2][:2], [g[:2] for g in used(2, lambda o, c: o == 0)])
    tail = _numpy_adam(initial[2][2:], [g[2:] for g in used(2, lambda o, c: o == 0 and c == 1)])
    np.testing.assert_allclose(model.sliced.numpy(), np.concatenate([head, tail]), **close)
    np.testing.assert_allclose(
        model.free.numpy(), _numpy_adam(initial[3], [g[3] for g in grads]), **close
    )
    t = opt._slots["t"]
    assert t[opt._index_dict[opt._var_key(model.op0)]].numpy().tolist() == [3] * 6
    assert t[opt._index_dict[opt._var_key(model.sliced)]].numpy().tolist() == [3, 3, 2, 2]
    # the global-step correction the optimizer used before would end elsewhere for op 0
    global_t = _numpy_adam(initial[0], used(0, lambda o, c: o == 0))
    assert not np.allclose(global_t, _wrong_global_step(initial[0], path, grads), rtol=1e-4)


def _wrong_global_step(x0, path, grads):
    """op 0's weights under bias correction by the global step (the old rule), for contrast."""
    x, m, v = x0.astype(np.float64), 0.0, 0.0
    for t, ((op, _), g) in enumerate(zip(path, grads), start=1):
        if op != 0:
            continue
        m = B1 * m + (1 - B1) * g[0]
        v = B2 * v + (1 - B2) * g[0] * g[0]
        x = x - LR * np.sqrt(1 - B2**t) / (1 - B1**t) * m / (np.sqrt(v) + EPS)
    return x


def test_stock_optimizer_is_refused():
    space = spaces.get(
        "shufflenet_oneshot", image_size=8, num_classes=10, width=0.125, repeats=(1, 1, 1, 1)
    )
    net = spos_tf.build_supernet(space)
    with pytest.raises(TypeError, match="MaskedSGD"):
        net.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")


# ------------------------------------------------------------------ momentum separation
NB201 = dict(image_size=8, width=0.25, repeats=(1, 1, 1))  # 6 edges, 5 ops
MU, EDGE = 0.9, 2


class _OwnedOnEdges(_Owned):
    """:class:`_Owned` on the 6 edges of NAS-Bench-201's space: its two ops sit on edge 0, and
    the slots are split on edge ``EDGE``."""

    def __init__(self):
        super().__init__()
        self.space = spaces.get("nasbench201", **NB201)
        self.arch_var = tf.Variable(np.zeros((len(GENE_KINDS), 6), np.int32))
        self.vars = [self.op0, self.op1, self.free]


def _numpy_split_sgd(x0, steps, groups=5):
    """SGD (PyTorch form, float64) with one momentum per group: ``steps`` = [(group, grad or
    None when the variable is not on the path)]; returns (weights, [momentum per group])."""
    x, m = x0.astype(np.float64), [np.zeros_like(x0, np.float64) for _ in range(groups)]
    for group, g in steps:
        if g is None:
            continue
        m[group] = MU * m[group] + g
        x = x - LR * m[group]
    return x, m


def test_momentum_split_keeps_one_momentum_per_op_of_the_edge():
    model = _OwnedOnEdges()
    opt = spos_tf.MaskedSGD(LR, momentum=MU, weight_decay=0.0, momentum_split=EDGE)
    opt.bind(model)
    opt.build(model.vars)
    initial = [v.numpy().copy() for v in model.vars]
    slot = {v.name: opt._slots["momentum"][opt._index_dict[opt._var_key(v)]] for v in model.vars}
    assert all(s.shape == (5, *v.shape) for v, s in zip(model.vars, slot.values()))
    # (op on edge 0, op on edge EDGE) per step; edge EDGE's ops 1 and 4 never drawn
    path = [(1, 0), (0, 3), (1, 0), (0, 2), (0, 3), (1, 2), (0, 0)]
    rng = np.random.default_rng(1)
    grads = [[rng.normal(size=v.shape).astype(np.float32) for v in model.vars] for _ in path]
    for step, ((op, group), g) in enumerate(zip(path, grads)):
        arch = np.zeros((len(GENE_KINDS), 6), np.int32)
        arch[OP, 0], arch[OP, EDGE] = op, group
        model.arch_var.assign(arch)
        before = {k: s.numpy().copy() for k, s in slot.items()}
        opt.apply_gradients(zip([tf.constant(x) for x in g], model.vars))
        for k, s in slot.items():  # every other op's momentum bit-identical
            others = [c for c in range(5) if c != group]
            assert np.array_equal(s.numpy()[others], before[k][others]), f"step {step}: {k}"

    close = dict(rtol=1e-5, atol=1e-6)
    for i, (var, on_path) in enumerate(
        [(model.op0, lambda o: o == 0), (model.op1, lambda o: o == 1), (model.free, lambda o: 1)]
    ):
        steps = [(grp, g[i] if on_path(op) else None) for (op, grp), g in zip(path, grads)]
        x, m = _numpy_split_sgd(initial[i], steps)
        np.testing.assert_allclose(var.numpy(), x, **close)
        np.testing.assert_allclose(slot[var.name].numpy(), np.stack(m), **close)
        assert not slot[var.name].numpy()[[1, 4]].any()  # never sampled on edge EDGE: still 0
    # one shared momentum (the plain optimizer) ends elsewhere for the head
    shared, _ = _numpy_split_sgd(initial[2], [(0, g[2]) for g in grads])
    assert not np.allclose(model.free.numpy(), shared, rtol=1e-3)


def test_momentum_split_needs_a_space_and_one_of_its_blocks():
    model = _OwnedOnEdges()
    opt = spos_tf.MaskedSGD(LR, momentum_split=6)
    opt.bind(model)
    with pytest.raises(ValueError, match=r"momentum_split=6 is not a choice block .* 0\.\.5"):
        opt.build(model.vars)
    plain = _Owned()  # no space: a stand-alone network's stand-in
    opt = spos_tf.MaskedAdam(LR, momentum_split=0)
    opt.bind(plain)
    with pytest.raises(ValueError, match="drop momentum_split for a stand-alone network"):
        opt.build(plain.vars)
