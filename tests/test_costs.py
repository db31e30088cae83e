"""Cost model: analytic MACs/params against independent counts on the built networks."""
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import spos_tf
from spos_tf import costs, spaces

PAPER = "2,1,0,1,2,0,2,0,2,0,2,3,0,0,0,0,3,2,3,3"


def graph_macs(model, image_size):
    """MACs counted from the traced TF graph: Conv2D, DepthwiseConv2dNative and MatMul ops, using
    their own static input/output shapes (independent of spos_tf.ops)."""
    fn = tf.function(lambda t: model(t, training=False)).get_concrete_function(
        tf.TensorSpec([1, image_size, image_size, 3]))
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


@pytest.mark.parametrize("name,kw", [
    ("shufflenet_oneshot", dict(image_size=32, num_classes=10, width=0.5)),
    ("shufflenet_oneshot_blocks_channels", dict(image_size=16, num_classes=10, width=0.25,
                                                repeats=(1, 2, 1, 1))),
    ("shufflenet_oneshot_channels", dict(image_size=8, num_classes=7, repeats=(1, 1, 2, 1))),
])
def test_macs_and_params_match_built_network(name, kw):
    space = spaces.get(name, **kw)
    for seed in range(3):
        arch = space.sample(np.random.default_rng(seed))
        model = spos_tf.build_standalone(space, arch)
        assert costs.macs(space, arch) == graph_macs(model, space.image_size)
        assert costs.params(space, arch) == n_trainable(model)


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
    out = subprocess.run([sys.executable, "-m", "spos_tf.costs", "--space=shufflenet_oneshot",
                          f"--arch={PAPER}"], capture_output=True, text=True, check=True)
    record = json.loads(out.stdout.strip().splitlines()[-1])
    space = spaces.get("shufflenet_oneshot")
    arch = space.parse(PAPER)
    assert record["macs"] == costs.macs(space, arch)
    assert record["params"] == costs.params(space, arch)
    assert record["supernet_params"] == costs.supernet_params(space)
    bad = subprocess.run([sys.executable, "-m", "spos_tf.costs", "--space=shufflenet_oneshot",
                          "--arch=0,1,5"], capture_output=True, text=True)
    assert bad.returncode != 0 and "20 choice blocks" in bad.stderr + bad.stdout


def test_table_agrees_with_vectorised_sum():
    space = spaces.get("shufflenet_oneshot_blocks_channels")
    t = costs.CostTable(space)
    arch = space.sample(np.random.default_rng(0))
    dec = space.decode(arch)
    expected = t.fixed_macs + sum(
        sum(p.macs for p in spos_tf.ops.get_op(d["op"]).prims(
            cin, cout, spos_tf.space.mid_channels(space, cout, d["channel"]), s, hw).values())
        for d, (cin, cout, s, hw) in zip(dec, space.block_layout()))
    assert t.macs(arch) == expected
