"""The contract every registered search space keeps (``spos_tf.spaces.names()``), each at a tiny
size: its supernet and a stand-alone network run forward and backward to finite values, the space
and an architecture round-trip through what a run directory stores, and the cost model's MACs and
parameters of one fixed architecture equal a count made here from the built network's graph and
variables, and the pinned numbers below."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import spos_tf
from spos_tf import costs
from spos_tf import spaces
from spos_tf.runs import run_dir
from spos_tf.spaces.space import Architecture

# the smallest sensible size of each space: 8x8 images, 10 classes, narrow, one block per stage
TINY = {"image_size": 8, "num_classes": 10, "width": 0.125}
WIDTH = {"nasbench201": 0.25, "fbnet": 0.25, "proxyless_mobile": 0.25, "proxyless_gpu": 0.25}

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TF-MOT's distutils

# MACs and parameters of fixed_arch(tiny(name)): the cost model and the graph count below agree
# on these (a new space fails here until its numbers are added)
PINNED = {
    "fbnet": (1_683_584, 78_046),
    "nasbench201": (66_464, 8_366),
    "proxyless_gpu": (5_421_792, 173_634),
    "proxyless_mobile": (3_204_608, 103_636),
    "resnet18_mixed_precision": (1_618_048, 48_834),
    "resnet34_mixed_precision": (1_618_048, 48_834),  # one block per stage: resnet18's twin
    "shufflenet_oneshot": (441_088, 22_854),
    "shufflenet_oneshot_blocks_channels": (353_216, 20_329),
    "shufflenet_oneshot_channels": (353_088, 17_905),
}


def tiny(name):
    stages = len(spaces.get(name).stages)
    return spaces.get(name, **dict(TINY, width=WIDTH.get(name, 0.125), repeats=(1,) * stages))


def fixed_arch(space):
    """Block b takes its (b mod n)-th allowed op and (b mod n)-th choice of every other searched
    gene: every op and choice appears for a few blocks, without a random draw."""
    genes = []
    for kind in space.searched_genes:
        if kind == "op":
            allowed = [space.allowed_ops(b) for b in range(space.num_blocks)]
            genes.append(tuple(ops[b % len(ops)] for b, ops in enumerate(allowed)))
        else:
            n = len(space.choices[kind])
            genes.append(tuple(b % n for b in range(space.num_blocks)))
    return space.validate(Architecture(tuple(genes)))


def graph_macs(model, image_size) -> int:
    """Multiply-accumulates of one image through ``model``, counted from its traced graph:
    output elements x filter taps (x input channels per group) of every convolution, m x k x n
    of every matrix product."""
    spec = tf.TensorSpec([1, image_size, image_size, 3])
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    total = 0
    for op in graph.get_operations():
        if op.type in ("Conv2D", "DepthwiseConv2dNative"):
            out = int(np.prod(op.outputs[0].shape.as_list()))
            kh, kw, cin, _ = op.inputs[1].shape.as_list()
            total += out * kh * kw * (cin if op.type == "Conv2D" else 1)
        elif op.type == "MatMul":
            (m, k), (_, n) = op.inputs[0].shape.as_list(), op.inputs[1].shape.as_list()
            total += m * k * n
    return total


def forward_backward(model, space):
    """Loss and gradients of one random training batch of 4."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(4, space.image_size, space.image_size, 3)), tf.float32)
    y = tf.constant(rng.integers(0, space.num_classes, 4))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = loss_fn(y, logits)
    grads = tape.gradient(loss, model.trainable_variables)
    return logits, loss, grads


def check_finite(model, space):
    logits, loss, grads = forward_backward(model, space)
    assert logits.shape == (4, space.num_classes)
    assert np.isfinite(logits.numpy()).all() and np.isfinite(float(loss))
    used = [g for g in grads if g is not None]
    assert used and all(np.isfinite(tf.convert_to_tensor(g).numpy()).all() for g in used)
    assert any(float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(g)))) > 0 for g in used)


# the supernets that take longest to build and trace on 2 cores (9 ops per block; TF-MOT's
# quantizers) run in the slow subset only
SLOW_SUPERNETS = {"fbnet", "resnet18_mixed_precision", "resnet34_mixed_precision"}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_SUPERNETS else n for n in spaces.names()],
)
def test_supernet_and_standalone_forward_backward_are_finite(name):
    space = tiny(name)
    arch = fixed_arch(space)
    net = spos_tf.build_supernet(space, seed=0)
    net.set_arch(arch)
    check_finite(net, space)
    check_finite(spos_tf.build_standalone(space, space.sample(np.random.default_rng(1))), space)


@pytest.mark.parametrize("name", spaces.names())
def test_space_and_architecture_round_trip_through_a_run_config(name):
    space = tiny(name)
    overrides = dict(TINY) | {
        "width": WIDTH.get(name, 0.125),
        "repeats": [1] * len(space.stages),
    }
    config = json.loads(json.dumps({"space": name, "space_overrides": overrides}))
    assert run_dir.space_from_config(config) == space
    arch = fixed_arch(space)
    assert Architecture.from_json(arch.to_json(space)) == arch
    assert space.parse(arch.to_json(space)) == arch and space.parse(str(arch)) == arch


@pytest.mark.parametrize("name", spaces.names())
def test_costs_of_a_fixed_architecture_are_the_networks_and_pinned(name):
    space = tiny(name)
    arch = fixed_arch(space)
    model = spos_tf.build_standalone(space, arch)
    model(tf.zeros([1, space.image_size, space.image_size, 3]))
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    macs, params = costs.macs(space, arch), costs.params(space, arch)
    assert macs == graph_macs(model, space.image_size)
    assert params == trainable
    assert (macs, params) == PINNED[name]
