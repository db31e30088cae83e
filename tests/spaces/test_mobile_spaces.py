"""FBNet and ProxylessNAS spaces: published costs, op legality, supernet == stand-alone, masked updates,
forward/backward of every new op."""

import numpy as np
import pytest
import tensorflow as tf

import spos_tf
from spos_tf.models import blocks
from spos_tf import costs
from spos_tf.models import layers
from spos_tf.spaces import ops
from spos_tf import spaces
from spos_tf.models.sampling import SequenceSampler
from spos_tf.export.eval import interpreter
from spos_tf.spaces.space import arch_from_any

from _masked import compile_masked as _compile
from _masked import optimizer_snapshot as _snapshot
from _masked import random_batch as _data


def _bn_params(space, arch):
    """Affine BN parameters (gamma + beta) of the stand-alone network: counted independently of
    costs.params, from the primitive lists."""
    prims = list(ops.stem_prims(space).values())
    for choice, (cin, cout, stride, hw) in zip(space.decode(arch), space.block_layout()):
        prims += ops.get_op(choice["op"]).prims(cin, cout, cout, stride, hw).values()
    prims += ops.head_prims(space, space.stages[-1].channels, space.final_hw).values()
    return sum(2 * p.cin for p in prims if p.kind == "bn")


# name: (MACs, params) computed here, the published figures, and why they differ where they do.
PINNED = {
    # imgclsmob's ProxylessNAS port (which loads the released weights) asserts 4,080,512 trainable
    # parameters for the mobile net and 7,119,848 for the GPU net: both reproduced exactly. The
    # paper's 320M / 465M MACs are reproduced too.
    "proxyless_mobile": (320_427_584, 4_080_512),
    "proxyless_gpu": (465_260_160, 7_119_848),
    # FBNet (Wu et al. 2019, Table 2) reports A 249M / 4.3M, B 295M / 4.5M, C 375M / 5.5M. With the
    # released definitions (maskrcnn-benchmark fbnet_modeldef: pw 1x1 kept at e=1, skip = 1x1 conv
    # where the shape changes, head 1984, FC 1984 -> 1000 with bias) A and B come within 1% of the
    # paper's MACs and C within 3% (the paper's count of C is not reproducible from the released
    # definition); C's 5,572,200 parameters equal timm's fbnetc_100 (5.57M). The paper's 4.3M / 4.5M
    # parameters of A and B are not reproducible either (their FC alone has 1.98M); we pin our own.
    "fbnet_a": (247_748_792, 4_914_712),
    "fbnet_b": (296_614_728, 4_813_048),
    "fbnet_c": (384_960_160, 5_572_200),
}
PUBLISHED_MACS = {
    "proxyless_mobile": 320e6,
    "proxyless_gpu": 465e6,
    "fbnet_a": 249e6,
    "fbnet_b": 295e6,
    "fbnet_c": 375e6,
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_named_architecture_costs(name):
    space = spaces.get(spaces.NAMED_ARCHS[name][0])
    arch = arch_from_any(space, name)
    macs, params = PINNED[name]
    assert costs.macs(space, arch) == macs
    assert costs.params(space, arch) == params
    tolerance = 0.03 if name == "fbnet_c" else 0.01
    assert abs(macs / PUBLISHED_MACS[name] - 1) < tolerance
    if name == "proxyless_mobile":  # the paper's "4.05M" counts conv and FC weights, no BN
        assert round((params - _bn_params(space, arch)) / 1e6, 2) == 4.05


def test_named_architecture_needs_its_space():
    with pytest.raises(ValueError, match="belongs to space 'fbnet'"):
        arch_from_any(spaces.get("proxyless_mobile"), "fbnet_b")
    with pytest.raises(ValueError, match="22 blocks"):
        arch_from_any(spaces.get("fbnet", repeats=(1,) * 7), "fbnet_b")


def test_zero_op_only_where_the_block_keeps_its_shape():
    space = spaces.get("proxyless_mobile")
    zero = space.ops.index("px_zero")
    layout = space.block_layout()
    legal = [zero in space.allowed_ops(b) for b in range(space.num_blocks)]
    assert legal == [s == 1 and cin == cout for cin, cout, s, _ in layout]
    assert sum(legal) == 15  # 21 blocks, 6 of them change the shape
    rng = np.random.default_rng(0)
    for _ in range(200):
        genes = space.sample(rng).genes[0]
        assert all(g != zero for g, ok in zip(genes, legal) if not ok)
    first = space.make(op=[0] * space.num_blocks).genes[0]
    bad = [zero] + list(first[1:])
    with pytest.raises(ValueError, match="not legal"):
        space.make(op=bad)
    hps = space.hyperparameters()
    assert hps.space[0].values == list(range(6)) and hps.space[1].values == list(range(7))
    assert space.size == 6**6 * 7**15


# One op of every kind (grouped + shuffle, plain MBConv with expansion, skip / zero): a supernet's
# trace time grows with the square of the choices per block, and the full 9-op FBNet supernet
# takes minutes to trace on 2 busy cores.
TINY_OPS = {
    "fbnet": ("fb_k3_e1_g2", "fb_k5_e6", "fb_skip"),
    "proxyless_mobile": ("px_k3_e3", "px_k7_e6", "px_zero"),
}


def tiny_mobile(name, **kw):
    """A shrunken space at 16 px (one block per stage, two in the second so that a block keeps its
    shape and skip / zero are identities there), three ops."""
    n = 7 if name == "fbnet" else 6
    base = dict(
        image_size=16,
        num_classes=10,
        width=0.25,
        repeats=(1, 2) + (1,) * (n - 2),
        ops=TINY_OPS[name],
    )
    return spaces.get(name, **dict(base, **kw))


@pytest.mark.parametrize(
    "op", sorted(o for o in ops.OPS if ops.OPS[o].family in ("fbnet", "proxyless"))
)
def test_every_new_op_runs_forward_and_backward(op):
    spec = ops.get_op(op)
    for cin, cout, stride in ((8, 8, 1), (8, 16, 2)):
        if not spec.is_legal(cin, cout, stride):
            continue
        unit = blocks.OpUnit(
            op, cin, cout, stride, 8, (cout,), layers.BNControl(), affine=True, seed=0
        )
        x = tf.random.normal([2, 8, 8, cin], seed=1)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = unit(x, training=True)
            loss = tf.reduce_sum(y * y)
        grads = tape.gradient(loss, [x] + unit.trainable_variables)
        assert y.shape == (2, 8 // stride, 8 // stride, cout)
        assert all(np.isfinite(g.numpy()).all() for g in grads)
        assert float(tf.reduce_sum(tf.abs(grads[0]))) > 0
        # the primitive list is what the layer allocates (and what the cost model counts)
        allocated = sum(int(np.prod(v.shape)) for v in unit.trainable_variables)
        assert allocated == sum(
            p.params(True) for p in spec.prims(cin, cout, cout, stride, 8).values()
        )


@pytest.mark.parametrize("name", ["fbnet", "proxyless_mobile"])
def test_standalone_equals_supernet_path(name):
    space = tiny_mobile(name)
    net = spos_tf.build_supernet(space, seed=2)
    _compile(net, lr=0.05)
    x, y = _data(space, 64)
    net.fit(x, y, batch_size=8, epochs=1, verbose=0)  # non-trivial weights and BN stats
    rng = np.random.default_rng(7)
    archs = [space.sample(rng) for _ in range(3)]
    # every op of the space on some path: op o in the first block that allows it
    for o in range(len(space.ops)):
        genes = list(archs[0].genes[0])
        block = next(b for b in range(space.num_blocks) if o in space.allowed_ops(b))
        genes[block] = o
        archs.append(space.make(op=genes))
    for arch in archs:
        model = spos_tf.build_standalone(space, arch, supernet=net)
        net.set_arch(arch)
        expected = net(x[:8], training=False).numpy()
        got = model(x[:8], training=False).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
        assert np.abs(expected).max() > 1e-3
        assert model.count_params() - sum(
            int(np.prod(v.shape)) for v in model.non_trainable_variables
        ) == costs.params(space, arch)


@pytest.mark.parametrize("name", ["fbnet", "proxyless_mobile"])
def test_unsampled_ops_unchanged(name):
    space = tiny_mobile(name)
    rng = np.random.default_rng(3)
    a, b = space.sample(rng), space.sample(rng)
    net = spos_tf.build_supernet(space, seed=1)
    _compile(net)
    net.set_sampler(SequenceSampler(space, [a, b, b]))
    x, y = _data(space, 24)
    net.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0, shuffle=False)  # path a: momentum
    before = _snapshot(net)
    net.fit(x[8:], y[8:], batch_size=8, epochs=1, verbose=0, shuffle=False)  # path b, 2 steps
    after = _snapshot(net)
    chosen = space.decode(b)
    changed = unchanged = 0
    for (blk, op, key), old in before.items():
        new = after[(blk, op, key)]
        if op != chosen[blk]["op"]:
            assert np.array_equal(old, new), f"unsampled {blk}/{op}/{key} changed"
            unchanged += 1
        elif "moving" not in key:
            assert not np.array_equal(old, new), f"sampled {blk}/{op}/{key} did not change"
            changed += 1
    assert changed > 10 and unchanged > 50


def test_stem_block_is_trained_and_inherited():
    space = tiny_mobile("proxyless_mobile")
    net = spos_tf.build_supernet(space, seed=0)
    names = set(net.stem.weight_dict())
    assert {"sb0_dw/depthwise_kernel", "sb0_pwl/kernel"} <= names
    assert not any(n.startswith("sb0_pw/") for n in names)  # e=1: no expansion conv
    model = spos_tf.build_standalone(space, space.sample(np.random.default_rng(0)), supernet=net)
    stem = model.get_layer("stem").weight_dict()
    np.testing.assert_array_equal(
        stem["sb0_pwl/kernel"].numpy(), net.stem.weight_dict()["sb0_pwl/kernel"].numpy()
    )


def test_standalone_converts_to_tflite_with_grouped_convs():
    space = tiny_mobile("fbnet")
    arch = space.make(op=[space.ops.index("fb_k3_e1_g2")] * space.num_blocks)
    model = spos_tf.build_standalone(space, arch)
    fn = tf.function(lambda t: model(t, training=False)).get_concrete_function(
        tf.TensorSpec([1, 16, 16, 3])
    )
    content = tf.lite.TFLiteConverter.from_concrete_functions([fn], model).convert()
    interp = interpreter(content)
    interp.allocate_tensors()
    x = np.random.default_rng(0).normal(size=(1, 16, 16, 3)).astype("float32")
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    got = interp.get_tensor(interp.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, model(x, training=False).numpy(), atol=1e-4)
