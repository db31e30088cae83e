"""The NAS-Bench-201 cell space: text forms, costs against published numbers, the supernet path
against the stand-alone network, masked updates, export."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import spos_tf
from spos_tf import costs
from spos_tf.spaces import nasbench201
from spos_tf.runs import run_dir
from spos_tf import spaces

# A cell from NAS-Bench-201's README (its test accuracy on CIFAR-10 is 93.66% in the table).
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def tiny(**kw):
    return spaces.get(
        "nasbench201", **dict(dict(image_size=8, width=0.25, repeats=(1, 1, 1)), **kw)
    )


def test_text_forms_round_trip():
    space = spaces.get("nasbench201")
    arch = space.parse(EXAMPLE)
    assert str(arch) == "3,3,4,1,3,1"
    assert space.benchmark_string(arch) == EXAMPLE
    assert space.parse(str(arch)) == arch
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = space.sample(rng)
        assert space.parse(space.benchmark_string(a)) == a
        assert nasbench201.from_string(nasbench201.to_string(a.genes[0])) == a.genes[0]
    assert space.size == 5**6
    record = json.loads(arch.to_json(space))
    assert record["benchmark_string"] == EXAMPLE and record["arch"] == "3,3,4,1,3,1"
    assert space.parse(arch.to_json(space)) == arch
    assert costs.report(space, arch)["benchmark_string"] == EXAMPLE


@pytest.mark.parametrize(
    "text, message",
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|", "node groups"),
        ("|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|", "expected input ~0"),
        ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown NAS-Bench-201 op"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "needs 2 edges"),
    ],
)
def test_bad_benchmark_strings_name_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        spaces.get("nasbench201").parse(text)


def _hand_count(convs):
    """MACs and params of the published C=16, N=5 network at 32x32, 10 classes, counted by hand
    from the benchmark's description. ``convs``: {kernel: number of edges with that conv}."""
    macs = 32 * 32 * 27 * 16  # stem conv
    params = 27 * 16 + 2 * 16  # stem conv + affine BN
    for cin, cout, hw_out in ((16, 32, 16), (32, 64, 8)):  # the two reduction blocks
        macs += hw_out**2 * (9 * cin * cout + 9 * cout * cout + cin * cout)
        params += 9 * cin * cout + 2 * cout + 9 * cout * cout + 2 * cout + cin * cout
    macs += 64 * 10  # FC
    params += 2 * 64 + 64 * 10 + 10  # last BN + FC with bias
    for c, hw in ((16, 32), (32, 16), (64, 8)):
        for k, n in convs.items():
            macs += 5 * n * hw * hw * k * k * c * c
            params += 5 * n * (k * k * c * c + 2 * c)
    return macs, params


@pytest.mark.parametrize(
    "ops, convs",
    [
        ("0,0,0,0,0,0", {}),  # no weights in the cells: the published minimum
        ("1,4,1,4,1,4", {}),
        ("3,3,3,3,3,3", {3: 6}),  # the published maximum
        ("3,3,4,1,3,1", {3: 3}),  # EXAMPLE
        ("2,2,0,3,1,2", {1: 3, 3: 1}),
    ],
)
def test_costs_match_a_hand_count(ops, convs):
    space = spaces.get("nasbench201")
    arch = space.parse(ops)
    assert (costs.macs(space, arch), costs.params(space, arch)) == _hand_count(convs)


def test_costs_span_the_published_range():
    """NAS-Bench-201 on CIFAR-10: 7.78-220.12 MFLOPs, 0.073306-1.531546 M params (Dong & Yang,
    2020, and the benchmark's API)."""
    space = spaces.get("nasbench201")
    table = costs.table(space)
    all_archs = np.array(np.meshgrid(*[range(5)] * 6, indexing="ij")).reshape(6, -1).T
    macs = table.macs_many(all_archs[:, None, :])
    assert round(macs.min() / 1e6, 2) == 7.78 and round(macs.max() / 1e6, 2) == 220.12
    params = [table.params(space.make(op=list(a))) for a in all_archs[::97]]
    params += [table.params(space.make(op=[3] * 6)), table.params(space.make(op=[0] * 6))]
    assert min(params) == 73_306 and max(params) == 1_531_546


def test_cell_layout_and_overrides():
    space = spaces.get("nasbench201", width=0.5, repeats=(2, 1, 3))
    layout = space.cell_layout()
    assert [p[0] for p in layout] == ["cell"] * 2 + ["reduction", "cell", "reduction"] + [
        "cell"
    ] * 3
    assert layout[2] == ("reduction", 8, 16, 32) and layout[-1] == ("cell", 32, 8)
    assert space.num_blocks == 6 and space.final_hw == 8
    assert len(space.gene_sites(0)) == 6
    with pytest.raises(ValueError, match="3 stages"):
        spaces.get("nasbench201", repeats=(1, 1))
    with pytest.raises(ValueError, match="bad override"):
        spaces.get("nasbench201", strides=(1, 2, 2))


def _data(space, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, space.image_size, space.image_size, 3)).astype("float32")
    return x, rng.integers(0, space.num_classes, n)


def test_supernet_path_equals_the_standalone_network():
    space = tiny()
    net = spos_tf.build_supernet(space, seed=2)
    net.compile(optimizer=spos_tf.MaskedSGD(0.05, momentum=0.9),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    x, y = _data(space, 32)
    net.fit(x, y, batch_size=8, epochs=1, verbose=0)  # non-trivial weights and BN statistics
    params = sum(int(np.prod(v.shape)) for v in net.trainable_variables)
    assert params == costs.supernet_params(space)
    for text in ("3,3,4,1,3,1", "0,0,0,0,0,0", "2,1,0,4,0,3", "0,0,3,0,0,0"):
        arch = space.parse(text)
        model = spos_tf.build_standalone(space, arch, supernet=net)
        net.set_arch(arch)
        expected = net(x[:8], training=False).numpy()
        np.testing.assert_allclose(model(x[:8], training=False).numpy(), expected, atol=1e-5)
        trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
        assert trainable == costs.params(space, arch)


def test_masked_update_leaves_unsampled_edges_bit_identical():
    """Gene e picks the op of edge e in every cell: after steps on one path, every unit of an
    unsampled op (weights, BN statistics, momentum) is unchanged in every cell, and the sampled
    conv units moved."""
    from spos_tf.models.sampling import SequenceSampler

    space = tiny()
    net = spos_tf.build_supernet(space, seed=1)
    net.compile(optimizer=spos_tf.MaskedSGD(0.1, momentum=0.9, weight_decay=5e-4),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    a, b = space.parse("3,2,3,2,3,2"), space.parse("2,3,1,3,4,3")
    net.set_sampler(SequenceSampler(space, [a, b, b]))
    x, y = _data(space, 24)
    net.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0, shuffle=False)  # momentum on a

    def snapshot():
        opt, state = net.optimizer, {}
        for block in net.choice_blocks:
            for op, unit in block.units.items():
                for key, var in unit.weight_dict().items():
                    state[(block.name, block.block, op, key)] = var.numpy().copy()
                    if var.trainable:
                        slot = opt._slots["momentum"][opt._index_dict[opt._var_key(var)]]
                        state[(block.name, block.block, op, key + "#m")] = slot.numpy().copy()
        return state

    before = snapshot()
    net.fit(x[8:], y[8:], batch_size=8, epochs=1, verbose=0, shuffle=False)  # path b
    after = snapshot()
    chosen = [space.ops[i] for i in b.genes[0]]
    moved = 0
    for key, old in before.items():
        _, edge, op, _ = key
        if op != chosen[edge]:
            assert np.array_equal(old, after[key]), f"unsampled {key} changed"
        elif not np.array_equal(old, after[key]):
            moved += 1
    cells = sum(1 for p in space.cell_layout() if p[0] == "cell")
    conv_edges = sum(op.startswith("nor_conv") for op in chosen)
    # per sampled conv unit: kernel, its momentum slot, BN moving mean and moving variance
    assert moved == cells * conv_edges * 4


@pytest.mark.slow
def test_export_of_a_cell_network(tmp_path, data_dir):
    from spos_tf.export import run as export_lib

    space = tiny(num_classes=10)
    supernet = spos_tf.build_supernet(space, seed=0)
    workdir = str(tmp_path / "supernet")
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=supernet), run_dir.checkpoint_dir(workdir), max_to_keep=1
    ).save(1)
    run_dir.write_config(
        workdir,
        {
            "space": "nasbench201",
            "space_overrides": {"image_size": 8, "width": 0.25, "repeats": [1, 1, 1]},
            "seed": 0,
            "arch": None,
            "data": {"name": "spos_digits", "data_dir": data_dir},
        },
    )
    report = export_lib.run(
        export_lib.ExportConfig(
            checkpoint=workdir,
            out=str(tmp_path / "out"),
            arch=EXAMPLE,
            formats=("saved_model", "tflite", "tflite_int8"),
            calib_images=64,
            eval_images=50,
        ),
        stream=open(os.devnull, "w"),
    )
    assert report["arch"] == "3,3,4,1,3,1"
    assert report["formats"]["saved_model"]["max_abs_diff"] <= 1e-5
    assert report["formats"]["tflite"]["max_abs_diff"] <= 1e-4
    assert os.path.getsize(tmp_path / "out" / "model_int8.tflite") > 0
