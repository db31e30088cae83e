"""Stand-alone networks (spos_tf.models.standalone): what is built, weight inheritance, bad input.

(The stand-alone output equals the supernet path's output: tests/models/test_supernet.py; its MACs and
parameters against graph counts: tests/spaces/test_costs.py.)"""

import numpy as np
import pytest

import spos_tf
from spos_tf import spaces
from spos_tf.models.blocks import PrimHolder, unit_name
from spos_tf.spaces.space import mid_channels


def _space(**kw):
    base = dict(
        image_size=8,
        num_classes=10,
        width=0.25,
        repeats=(1, 1, 1, 1),
        channel_scales=(0.4, 1.0, 1.6),
    )
    return spaces.get("shufflenet_oneshot_blocks_channels", **dict(base, **kw))


def test_holds_only_the_chosen_units_at_their_widths():
    space = _space()
    arch = space.sample(np.random.default_rng(4))
    model = spos_tf.build_standalone(space, arch)
    holders = [layer for layer in model.layers if isinstance(layer, PrimHolder)]
    decoded = space.decode(arch)
    assert [h.name for h in holders[1:-1]] == [unit_name(b, c["op"]) for b, c in enumerate(decoded)]
    for b, (unit, choice) in enumerate(zip(holders[1:-1], decoded)):
        cout = space.block_layout()[b][1]
        assert unit.widths == (mid_channels(space, cout, choice["channel"]),)
    assert model.arch == arch and model.space == space


def test_inherit_copies_leading_slices_and_affine_identity():
    space = _space()
    supernet = spos_tf.build_supernet(space, seed=7)
    for var in supernet.weights:  # non-trivial values everywhere, moving statistics included
        var.assign(
            np.random.default_rng(len(var.name)).normal(size=var.shape).astype(np.float32)
            if var.dtype == "float32"
            else var
        )
    arch = space.sample(np.random.default_rng(1))
    model = spos_tf.build_standalone(space, arch, supernet=supernet, seed=3)
    sources = {u.name: u for block in supernet.choice_blocks for u in block.units.values()}
    sources.update({supernet.stem.name: supernet.stem, supernet.head.name: supernet.head})
    checked = 0
    for layer in model.layers:
        if not isinstance(layer, PrimHolder):
            continue
        src = sources[layer.name].weight_dict()
        for key, var in layer.weight_dict().items():
            value = var.numpy()
            if key in src:
                full = src[key].numpy()
                np.testing.assert_array_equal(value, full[tuple(slice(0, d) for d in value.shape)])
                checked += 1
            elif key.endswith("gamma"):
                assert np.all(value == 1.0)
            else:
                assert key.endswith("beta") and np.all(value == 0.0)
    assert checked > 20


def test_bad_input_is_refused():
    space = _space()
    with pytest.raises(ValueError, match="4 choice blocks"):
        spos_tf.build_standalone(space, space.make(op=[0, 1], channel=[0, 1]))
    deeper = _space(repeats=(1, 1, 2, 1))  # block 4 does not exist in the 4-block supernet
    with pytest.raises(ValueError, match="no counterpart in the supernet"):
        spos_tf.build_standalone(
            deeper, deeper.sample(np.random.default_rng(0)), supernet=spos_tf.build_supernet(space)
        )
    wider = _space(width=0.5)
    with pytest.raises(ValueError, match="does not fit"):
        spos_tf.build_standalone(
            wider, wider.sample(np.random.default_rng(0)), supernet=spos_tf.build_supernet(space)
        )
