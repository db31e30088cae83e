"""Which network a run config builds (spos_tf.build, via run_dir.build_model)."""

import numpy as np

from spos_tf import build as models
from spos_tf.runs import run_dir
from spos_tf import spaces
from spos_tf.models.supernet import Supernet

OVERRIDES = {"image_size": 8, "num_classes": 10, "width": 0.125, "repeats": [1, 1, 1, 1]}
CONFIG = {
    "space": "shufflenet_oneshot",
    "space_overrides": OVERRIDES,
    "seed": 3,
    "bn_momentum": 0.8,
    "arch": None,
}


def test_a_config_without_arch_builds_the_supernet():
    model = run_dir.build_model(CONFIG)
    assert isinstance(model, Supernet) and model.seed == 3
    assert model.space == spaces.get("shufflenet_oneshot", **dict(OVERRIDES, repeats=(1, 1, 1, 1)))
    assert float(model.bn_control.momentum.numpy()) == np.float32(0.8)


def test_a_config_with_arch_builds_that_stand_alone_network():
    model = run_dir.build_model(dict(CONFIG, arch="2,1,0,3"))
    assert model.name == "standalone" and str(model.arch) == "2,1,0,3"
    assert float(model.bn_control.momentum.numpy()) == np.float32(0.8)


def test_the_seed_sets_the_initial_weights():
    space = run_dir.space_from_config(CONFIG)
    arch = space.parse("0,1,2,3")
    a = models.build_model(space, arch, seed=1).get_weights()
    b = models.build_model(space, arch, seed=1).get_weights()
    c = models.build_model(space, arch, seed=2).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, z) for x, z in zip(a, c))
