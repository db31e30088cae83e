"""Cost model: analytic MACs/params against independent counts on the built networks."""

import json

import numpy as np
import pytest
import tensorflow as tf

import spos_tf
from spos_tf import costs
from spos_tf import spaces

from _apps import run_app

PAPER = "2,1,0,1,2,0,2,0,2,0,2,3,0,0,0,0,3,2,3,3"


def graph_macs(model, image_size):
    """MACs counted from the traced TF graph: Conv2D, DepthwiseConv2dNative and MatMul ops, using
    their own static input/output shapes (independent of spos_tf.spaces.ops)."""
    fn = tf.function(lambda t: model(t, training=False)).get_concrete_function(
        tf.TensorSpec([1, image_size, image_size, 3])
    )
    total = 0
    for op in fn.graph.get_operations():
        if op.type == "Conv2D":
            kh, kw, cin, cout = op.inputs[1].shape
            total += int(np.prod(op.outputs[0].shape[1:3])) * kh * kw * cin * cout
        elif op.type == "DepthwiseConv2dNative":
            kh, kw, cin, mult = op.inputs[1].shape
            total += int(np.prod(op.outputs[0].shape[1:3])) * kh * kw * cin * mult
        elif op.type == "MatMul":
            total += op.inputs[1].shape[0] * op.inputs[1].shape[1]
    return total


def n_trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


@pytest.mark.parametrize(
    "name,kw",
    [
        pytest.param(
            "shufflenet_oneshot",
            dict(image_size=32, num_classes=10, width=0.5),
            marks=pytest.mark.slow,
        ),  # 20 blocks at 32x32: the slow one
        (
            "shufflenet_oneshot_blocks_channels",
            dict(image_size=16, num_classes=10, width=0.25, repeats=(1, 2, 1, 1)),
        ),
        ("shufflenet_oneshot_channels", dict(image_size=8, num_classes=7, repeats=(1, 1, 2, 1))),
    ],
)
def test_macs_and_params_match_built_network(name, kw):
    space = spaces.get(name, **kw)
    for seed in range(3):
        arch = space.sample(np.random.default_rng(seed))
        model = spos_tf.build_standalone(space, arch)
        assert costs.macs(space, arch) == graph_macs(model, space.image_size)
        assert costs.params(space, arch) == n_trainable(model)


@pytest.mark.slow
def test_full_size_paper_architecture():
    space = spaces.get("shufflenet_oneshot")
    arch = space.parse(PAPER)
    model = spos_tf.build_standalone(space, arch)
    m, p = costs.macs(space, arch), costs.params(space, arch)
    assert m == graph_macs(model, 224) and p == n_trainable(model)
    # the paper reports ~323M FLOPs (multiply-adds) and 3.5M parameters for this architecture
    assert abs(m / 323e6 - 1) < 0.01 and abs(p / 3.5e6 - 1) < 0.03
    net = spos_tf.build_supernet(space)
    assert costs.supernet_params(space) == n_trainable(net)


def test_cli_prints_costs():
    out = run_app("costs", "--space=shufflenet_oneshot", f"--arch={PAPER}")
    record = json.loads(out.stdout.strip().splitlines()[-1])
    # the authors' figures (reference release: 322.9M FLOPs, 3.56M parameters for this path,
    # 8,388,176 supernet parameters), not the library's own functions
    assert record["macs"] == 322_918_720
    assert record["params"] == 3_558_464
    assert record["supernet_params"] == 8_388_176
    bad = run_app("costs", "--space=shufflenet_oneshot", "--arch=0,1,5", check=False)
    assert bad.returncode != 0 and "20 choice blocks" in bad.stderr + bad.stdout


def test_table_agrees_with_vectorised_sum():
    space = spaces.get("shufflenet_oneshot_blocks_channels")
    t = costs.CostTable(space)
    arch = space.sample(np.random.default_rng(0))
    dec = space.decode(arch)
    expected = t.fixed_macs + sum(
        sum(
            p.macs
            for p in spos_tf.spaces.ops.get_op(d["op"])
            .prims(cin, cout, spos_tf.spaces.space.mid_channels(space, cout, d["channel"]), s, hw)
            .values()
        )
        for d, (cin, cout, s, hw) in zip(dec, space.block_layout())
    )
    assert t.macs(arch) == expected


# The released block + channel architecture of the reference (megvii-model/ShuffleNet-Series,
# OneShot/network.py): op per block and channel-scale index per block.
RELEASED_OPS = [0, 0, 3, 1, 1, 1, 0, 0, 2, 0, 2, 1, 1, 0, 2, 0, 2, 1, 3, 2]
RELEASED_SCALES = [6, 5, 3, 5, 2, 6, 3, 4, 2, 5, 7, 5, 4, 6, 7, 4, 4, 5, 4, 3]


def reference_network_costs(ops, scale_ids, scale_list=(0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6)):
    """MACs and parameters of the reference's ShuffleNetV2_OneShot at 224x224 / 1000 classes,
    counted by hand from its layer list (PyTorch conv weights, BN weight + bias, FC without bias);
    independent of spos_tf.spaces.ops / spos_tf.costs."""
    macs = params = 0

    def conv(hw_out, k, cin, cout, groups=1):
        nonlocal macs, params
        macs += hw_out * hw_out * k * k * (cin // groups) * cout
        params += k * k * (cin // groups) * cout

    def bn(c):
        nonlocal params
        params += 2 * c

    hw = 112  # first_conv: 3x3 stride 2, 3 -> 16
    conv(112, 3, 3, 16), bn(16)
    channels, b = 16, 0
    for repeats, out in zip((4, 4, 8, 4), (64, 160, 320, 640)):
        for i in range(repeats):
            stride = 2 if i == 0 else 1
            inp = channels if stride == 2 else channels // 2
            mid = int((out // 2) * scale_list[scale_ids[b]])  # the reference's truncation
            outputs = out - inp
            hw_out = hw // stride
            op = ops[b]
            if op < 3:  # Shufflenet k x k
                k = 3 + 2 * op
                conv(hw, 1, inp, mid), bn(mid)
                conv(hw_out, k, mid, mid, groups=mid), bn(mid)
                conv(hw_out, 1, mid, outputs), bn(outputs)
            else:  # Shuffle_Xception
                k = 3
                conv(hw_out, 3, inp, inp, groups=inp), bn(inp)
                conv(hw_out, 1, inp, mid), bn(mid)
                conv(hw_out, 3, mid, mid, groups=mid), bn(mid)
                conv(hw_out, 1, mid, mid), bn(mid)
                conv(hw_out, 3, mid, mid, groups=mid), bn(mid)
                conv(hw_out, 1, mid, outputs), bn(outputs)
            if stride == 2:  # branch_proj
                conv(hw_out, k, inp, inp, groups=inp), bn(inp)
                conv(hw_out, 1, inp, inp), bn(inp)
            channels, hw, b = out, hw_out, b + 1
    conv(7, 1, 640, 1024), bn(1024)  # conv_last
    macs += 1024 * 1000  # classifier, no bias
    params += 1024 * 1000
    return macs, params


def test_released_block_channel_architecture_matches_reference_network():
    """Issue 12, item 1: the block + channel result costs what the reference network of that
    architecture has (mid channels truncated by int(), e.g. 12/25/44 with 64 outputs)."""
    space = spaces.get("shufflenet_oneshot_blocks_channels")
    arch = space.make(op=RELEASED_OPS, channel=RELEASED_SCALES)
    ref_macs, ref_params = reference_network_costs(RELEASED_OPS, RELEASED_SCALES)
    assert (ref_macs, ref_params) == (327_857_920, 3_432_579)  # the paper: 328M / 3.4M
    assert costs.macs(space, arch) == ref_macs
    assert costs.params(space, arch) == ref_params
    # block search (every scale 1.0): the paper architecture, also against the hand count
    blocks = spaces.get("shufflenet_oneshot")
    paper = blocks.parse(PAPER)
    assert reference_network_costs(list(paper.genes[0]), [4] * 20) == (
        costs.macs(blocks, paper),
        costs.params(blocks, paper),
    )
    widths = [spos_tf.spaces.space.mid_channels(space, 64, s) for s in space.channel_scales]
    assert widths == [6, 12, 19, 25, 32, 38, 44, 51]


def _resnet_block_conv_macs(repeats):
    """Conv MACs of a ResNet-18/34's basic blocks at 224x224 (3x3 convs and 1x1 downsample
    shortcuts), counted by hand: stages at 56, 28, 14, 7 with 64, 128, 256, 512 channels."""
    total, cin = 0, 64
    for n, (hw, c) in zip(repeats, ((56, 64), (28, 128), (14, 256), (7, 512))):
        for _ in range(n):
            total += hw * hw * 9 * cin * c + hw * hw * 9 * c * c
            if cin != c:
                total += hw * hw * cin * c  # the 1x1 shortcut (stride on its input)
            cin = c
    return total


@pytest.mark.parametrize(
    "name, repeats, table6",
    [
        ("resnet18_mixed_precision", (2, 2, 2, 2), (6.32, 14.21, 25.27)),
        ("resnet34_mixed_precision", (3, 4, 6, 3), (13.21, 29.72, 52.83)),
    ],
)
def test_paper_bitops_convention_reproduces_table6(name, repeats, table6):
    """Issue 12, item 6: Table 6's uniform kWkA BitOps are the choice blocks' conv MACs x k^2 in
    units of 2^30; our default also counts the 8-bit first conv and FC."""
    space = spaces.get(name)
    per_k2 = _resnet_block_conv_macs(repeats)
    assert (
        per_k2
        == {"resnet18_mixed_precision": 1_695_547_392, "resnet34_mixed_precision": 3_545_235_456}[
            name
        ]
    )
    for k, figure in zip((2, 3, 4), table6):
        paper = costs.uniform_bitops(space, k, convention="paper")
        assert paper == per_k2 * k * k
        assert round(costs.paper_giga(paper), 2) == figure
        assert round(paper / 1e9, 2) != figure  # decimal G does not reproduce it
        ours = costs.uniform_bitops(space, k)
        stem = 112 * 112 * 49 * 3 * 64  # 7x7/2 stem conv, 8 bits
        assert ours == paper + (stem + 512 * 1000) * 64  # + FC 512 -> 1000, 8 bits
        arch = costs.uniform_arch(space, bits=k)
        assert costs.bitops(space, arch, convention="paper") == paper
    with pytest.raises(ValueError, match="--bitops_convention"):
        costs.uniform_bitops(space, 2, convention="table6")
