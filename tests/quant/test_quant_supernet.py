"""Mixed-precision supernet (spos_tf.quant.apply): BitOps against the built layers, bit
switching without retrace, masked updates incl. quantizer ranges, stand-alone equality, range
recalibration."""

import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import spos_tf
from spos_tf import costs
from spos_tf.spaces import ops
from spos_tf import spaces
from spos_tf.quant import apply, kernel_variable
from spos_tf.quant.wrap import InputQuantizeWrapper
from spos_tf.models.sampling import SequenceSampler
from spos_tf.spaces.space import GENE_KINDS, mid_channels

import _apps
from _apps import run_app

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BITS = (1, 2, 3, 4)


def tiny(name="resnet18_mixed_precision", **kw):
    kw = dict(dict(image_size=16, num_classes=10, width=0.125, repeats=(1, 1, 1, 1)), **kw)
    return spaces.get(name, **kw)


def _data(space, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, space.image_size, space.image_size, 3)).astype("float32")
    return x, rng.integers(0, space.num_classes, n)


def _compile(net):
    net.compile(
        optimizer=spos_tf.MaskedSGD(0.1, 0.9, 4e-5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    # slots created up front: the train function is then traced once, not twice (a tf.function
    # whose first trace creates variables is traced again)
    net.optimizer.build(net.trainable_variables)


def _snapshot(net):
    """Every variable of every choice (kernels, BN statistics, quantizer ranges) and the
    momentum slot of every trainable one."""
    opt, state = net.optimizer, {}
    for block in net.choice_blocks:
        for op, unit in block.units.items():
            for key, var in unit.weight_dict().items():
                state[(block.block, op, key)] = np.array(var.numpy())
                if var.trainable:
                    slot = opt._slots["momentum"][opt._index_dict[opt._var_key(var)]]
                    state[(block.block, op, key + "#momentum")] = slot.numpy().copy()
    return state


def _check_only_path_changed(net, before, after, arch):
    """Unsampled ops and unused channel slices bit-identical; the used slice of every variable
    of the sampled op changed. Returns the set of changed weight kinds."""
    chosen = net.space.decode(arch)
    kinds = set()
    for (b, op, key), old in before.items():
        new = after[(b, op, key)]
        if op != chosen[b]["op"]:
            assert np.array_equal(old, new), f"unsampled {b}/{op}/{key} changed"
            continue
        unit = net.choice_blocks[b].units[op]
        pname, wname = key.split("#")[0].split("/")
        if wname.startswith("input_range"):
            sl = ()
        else:
            width = mid_channels(net.space, unit.cout, chosen[b]["channel"])
            shape = unit.prim_specs(width)[pname].weight_shapes(False)[wname]
            sl = tuple(slice(0, d) for d in shape)
        assert not np.array_equal(old[sl], new[sl]), f"sampled {b}/{op}/{key} did not change"
        rest_old, rest_new = old.copy(), new.copy()
        rest_old[sl] = 0
        rest_new[sl] = 0
        assert np.array_equal(rest_old, rest_new), f"unused slice of {b}/{op}/{key} changed"
        kinds.add(key.split("/")[1])
    return kinds


def _arch(space, seed, **genes):
    arch = space.sample(np.random.default_rng(seed))
    idx = space.indices(arch)
    for kind, value in genes.items():
        idx[GENE_KINDS.index(kind)] = value
    return space.from_indices(idx)


def _graph_op_types(model, space):
    fn = tf.function(lambda t: model(t, training=False)).get_concrete_function(
        tf.TensorSpec([1, space.image_size, space.image_size, 3])
    )
    return {op.type for op in fn.graph.get_operations()}


# ------------------------------------------------------------------ a trained tiny supernet
@pytest.fixture(scope="module")
def trained():
    """The registered ResNet-18 space, tiny: 3 masked steps on known paths (a, b, b), then 6 on
    paths that differ from each other in bits and channels; all in one traced train function."""
    space = tiny()
    a = _arch(space, 1, channel=[2, 2, 2, 2])
    b = _arch(space, 2, channel=[0, 1, 0, 1], wbits=[0, 1, 2, 3], abits=[3, 2, 1, 0])
    more = [_arch(space, 10 + i) for i in range(6)]
    net = spos_tf.build_supernet(space, seed=1)
    _compile(net)
    net.set_sampler(SequenceSampler(space, [a, b, b] + more))
    x, y = _data(space, 72)
    net.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0, shuffle=False)
    before = _snapshot(net)
    net.fit(x[8:24], y[8:24], batch_size=8, epochs=1, verbose=0, shuffle=False)
    after = _snapshot(net)
    traces = net.train_function.experimental_get_tracing_count()
    net.fit(x[24:], y[24:], batch_size=8, epochs=1, verbose=0, shuffle=False)
    return dict(
        space=space,
        net=net,
        a=a,
        b=b,
        before=before,
        after=after,
        x=x,
        traces=(traces, net.train_function.experimental_get_tracing_count()),
    )


@pytest.mark.slow
def test_supernet_is_wrapped_where_prims_say(trained):
    net, space = trained["net"], trained["space"]
    assert space.searched_genes == ("channel", "wbits", "abits")
    wrapped = {(h, p) for h, p, _ in apply.quantized_layers(net)}
    holders = [net.stem, net.head] + [u for blk in net.choice_blocks for u in blk.units.values()]
    expected = {
        (h.name, p) for h in holders for p, layer in h.prims.items() if layer.prim.quantized
    }
    assert wrapped == expected
    assert {p for _, p in wrapped} == {"stem_conv", "conv1", "conv2", "down", "classifier"}
    for h in holders:  # BN stays float
        assert not any(
            isinstance(layer, InputQuantizeWrapper)
            for p, layer in h.prims.items()
            if not layer.prim.quantized
        )
    for _, p, w in apply.quantized_layers(net):
        cfg = w.quantize_config
        fixed = p in ("stem_conv", "classifier")
        assert cfg.weight_quantizer.bits == ((8,) if fixed else BITS)
        assert cfg.input_quantizer.bits == ((8,) if fixed else BITS)
        assert cfg.input_quantizer.signed == (p == "stem_conv")
    for blk in net.choice_blocks:
        rows = [row for row, _ in blk.gene_selectors]
        assert rows == [GENE_KINDS.index("wbits"), GENE_KINDS.index("abits")]
        sels = [s for _, s in blk.gene_selectors]
        for unit in blk.units.values():
            for layer in unit.prims.values():
                if layer.prim.quantized:
                    assert layer.quantize_config.weight_quantizer.selector is sels[0]
                    assert layer.quantize_config.input_quantizer.selector is sels[1]
        assert all(s.index is None for s in sels)  # restored after every call


@pytest.mark.slow
def test_owners_cover_every_trainable_block_variable(trained):
    net = trained["net"]
    owned = {id(v) for v, _ in net.variable_owners()}
    for blk in net.choice_blocks:
        for unit in blk.units.values():
            assert unit.trainable_weights
            for var in unit.trainable_weights:
                assert id(var) in owned, var.name
    # the model trains each kernel exactly once (wrapping did not duplicate or drop variables)
    names = [v.name for v in net.trainable_variables]
    assert len({id(v) for v in net.trainable_variables}) == len(names)
    assert len(names) == sum(
        1
        for h in [net.stem, net.head] + [u for blk in net.choice_blocks for u in blk.units.values()]
        for k, v in h.weight_dict().items()
        if v.trainable
    )


@pytest.mark.slow
def test_masked_step_changes_only_the_sampled_slices(trained):
    """Channel search in the one-op ResNet space: unused kernel / BN / slot slices unchanged;
    the used ones and every block's input ranges (scalars, on every path) changed."""
    net, b = trained["net"], trained["b"]
    kinds = _check_only_path_changed(net, trained["before"], trained["after"], b)
    assert {
        "kernel",
        "kernel#momentum",
        "moving_mean",
        "moving_variance",
        "input_range_max",
        "input_range_sigma",
        "input_range_count",
    } <= kinds
    counts = [v for k, v in trained["after"].items() if k[2].endswith("input_range_count")]
    assert counts and all(c == 3 for c in counts)  # one update per step that ran the block


@pytest.mark.slow
def test_bit_switching_needs_no_retrace(trained):
    net, space, x = trained["net"], trained["space"], trained["x"]
    assert trained["traces"] == (1, 1)  # 9 training steps on paths differing in bits, widths

    @tf.function
    def forward(images, arch):
        return net(images, training=False, arch=arch)

    base = space.indices(trained["a"])
    variants = []
    for w, a in [(0, 0), (1, 1), (2, 2), (3, 3), (3, 0), (0, 3)]:
        idx = base.copy()
        idx[GENE_KINDS.index("wbits")] = w
        idx[GENE_KINDS.index("abits")] = a
        variants.append(idx)
    outs = [forward(x[:4], idx).numpy() for idx in variants]
    assert forward.experimental_get_tracing_count() == 1
    for i in range(len(outs)):
        for j in range(i + 1, len(outs)):
            assert not np.allclose(outs[i], outs[j]), (variants[i][2:, 0], variants[j][2:, 0])


@pytest.mark.slow
def test_standalone_equals_supernet_path(trained):
    net, space, x = trained["net"], trained["space"], trained["x"]
    for arch in [trained["a"], trained["b"], _arch(space, 33)]:
        model = spos_tf.build_standalone(space, arch, supernet=net)
        assert isinstance(model, keras.Model) and model.__class__.__name__ == "Functional"
        types = _graph_op_types(model, space)
        assert not any("Case" in t for t in types), types  # no switch_case: convertible
        assert "FakeQuantWithMinMaxVars" in types
        decoded = space.decode(arch)
        for h, _, w in apply.quantized_layers(model):
            if h.startswith("block"):
                blk = decoded[int(h[5:7])]
                assert w.quantize_config.weight_quantizer.bits == (blk["wbits"],)
                assert w.quantize_config.input_quantizer.bits == (blk["abits"],)
        net.set_arch(arch)
        expected = net(x[:8], training=False).numpy()
        got = model(x[:8], training=False).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
        assert np.abs(expected).max() > 1e-3


@pytest.mark.slow
def test_weight_range_is_taken_from_the_used_slice(trained):
    """A narrow channel choice quantizes its slice with the slice's own range: equal to a fixed
    quantizer applied to the slice, not to the slice of the quantized full kernel."""
    net = trained["net"]
    unit = net.choice_blocks[1].units["basic"]
    wrapper = unit.prims["conv2"]
    full = kernel_variable(wrapper)
    width = unit.widths[0]
    h = tf.nn.relu(tf.random.stateless_normal([2, unit.in_hw, unit.in_hw, width], seed=[1, 2]))
    with (
        wrapper.quantize_config.weight_quantizer.selector.selecting(1),
        wrapper.quantize_config.input_quantizer.selector.selecting(3),
    ):
        wrapper(h, training=False)
        used = wrapper.layer.kernel.numpy()  # what the layer computed with
    q = wrapper.quantize_config.weight_quantizer
    assert used.shape == (3, 3, width, unit.cout)
    np.testing.assert_array_equal(used, q.quantize(full[:, :, :width, :], 2).numpy())
    assert not np.array_equal(used, q.quantize(full, 2).numpy()[:, :, :width, :])


@pytest.mark.slow
def test_reset_quant_ranges_recalibrates_exactly(trained):
    net, space, x = trained["net"], trained["space"], trained["x"]
    model = spos_tf.build_standalone(space, trained["a"], supernet=net)
    stem = model.get_layer("stem").prims["stem_conv"]
    assert stem.named_weights()["input_range_count"].numpy() == 9  # inherited
    n = apply.reset_quant_ranges(model)
    assert n == len(apply.quantized_layers(model))
    assert all(
        np.all(v.numpy() == 0)
        for _, _, w in apply.quantized_layers(model)
        for v in w.range_variables()
    )
    batches = [x[i * 8 : (i + 1) * 8] for i in range(4)]
    for images in batches:
        model(images, training=True)
    ranges = stem.named_weights()
    assert ranges["input_range_count"].numpy() == 4
    np.testing.assert_allclose(
        ranges["input_range_max"].numpy(), np.mean([np.abs(b).max() for b in batches]), rtol=1e-6
    )
    np.testing.assert_allclose(
        ranges["input_range_sigma"].numpy(),
        np.mean([np.sqrt(np.mean(b.astype(np.float64) ** 2)) for b in batches]),
        rtol=1e-5,
    )


@pytest.mark.slow
def test_bn_recalibration_restarts_the_quantizer_ranges(trained):
    """spos_tf.build gives quantized models the range reset as their recalibration hook, so
    spos_tf.recalibrate_bn (models.evaluate, which never imports quant) re-estimates the
    activation ranges from the calibration batches alone."""
    net, space, x = trained["net"], trained["space"], trained["x"]
    assert net.recalibration_reset is apply.reset_quant_ranges
    model = spos_tf.build_standalone(space, trained["a"], supernet=net)
    assert model.recalibration_reset is apply.reset_quant_ranges
    stem = model.get_layer("stem").prims["stem_conv"]
    assert stem.named_weights()["input_range_count"].numpy() == 9  # inherited
    batches = [x[i * 8 : (i + 1) * 8] for i in range(3)]
    calib = tf.data.Dataset.from_tensor_slices(np.concatenate(batches)).batch(8)
    assert spos_tf.recalibrate_bn(model, calib, 3) == 3
    ranges = stem.named_weights()
    assert ranges["input_range_count"].numpy() == 3  # 12 without the reset
    np.testing.assert_allclose(
        ranges["input_range_max"].numpy(), np.mean([np.abs(b).max() for b in batches]), rtol=1e-6
    )


# ------------------------------------------------------------------ two candidate ops
@pytest.fixture
def twin_op_space(monkeypatch):
    """A quantized space with two (identical) basic-block ops, so that a block has an unsampled
    choice whose quantizer ranges must stay bit-identical."""
    monkeypatch.setitem(
        ops.OPS, "basic_twin", ops.OpSpec("basic_twin", "resnet", "basic", 3, ops._basic_prims)
    )
    return tiny(weight_bits=(2, 4), act_bits=(2, 4), channel_scales=(0.5, 1.0)).replace(
        name="twin", ops=("basic", "basic_twin")
    )


@pytest.mark.slow
def test_unsampled_op_keeps_kernels_stats_slots_and_ranges(twin_op_space):
    space = twin_op_space
    assert space.searched_genes == ("op", "channel", "wbits", "abits")
    a = _arch(space, 3, op=[0, 1, 0, 1])
    b = _arch(space, 4, op=[1, 0, 1, 0], channel=[0, 1, 1, 0])
    net = spos_tf.build_supernet(space, seed=2)
    _compile(net)
    net.set_sampler(SequenceSampler(space, [a, b, a]))
    x, y = _data(space, 24, seed=1)
    net.fit(x[:16], y[:16], batch_size=8, epochs=1, verbose=0, shuffle=False)  # a then b
    before = _snapshot(net)
    net.fit(x[16:], y[16:], batch_size=8, epochs=1, verbose=0, shuffle=False)  # a
    kinds = _check_only_path_changed(net, before, _snapshot(net), a)
    assert {"kernel", "kernel#momentum", "moving_mean", "input_range_max"} <= kinds
    for blk in net.choice_blocks:  # every unit ran once before the last step (path a or b)
        for unit in blk.units.values():
            counts = [v.numpy() for k, v in unit.weight_dict().items() if k.endswith("_count")]
            on_a = space.decode(a)[blk.block]["op"] == unit.name.split("_", 1)[1]
            assert counts and all(c == (2 if on_a else 1) for c in counts), unit.name
    reset = apply.reset_quant_ranges(net, a)
    assert reset == len(apply.quantized_layers(net, a)) < len(apply.quantized_layers(net))
    for blk in net.choice_blocks:
        for unit in blk.units.values():
            counts = [v.numpy() for k, v in unit.weight_dict().items() if k.endswith("_count")]
            on_path = space.decode(a)[blk.block]["op"] == unit.name.split("_", 1)[1]
            assert all((c == 0) == on_path for c in counts), unit.name


# ------------------------------------------------------------------ BitOps
def _recorded_calls(model, images, monkeypatch):
    calls = {}
    original = apply.SlicedQuantizeWrapper.call

    def recording(self, inputs, training=None, **kwargs):
        out = original(self, inputs, training=training, **kwargs)
        calls[id(self)] = (tuple(inputs.shape), tuple(out.shape))
        return out

    monkeypatch.setattr(apply.SlicedQuantizeWrapper, "call", recording)
    model(images, training=False)
    return calls


def _independent_bitops(wrapper, shapes):
    """MACs from the shapes the built layer saw x weight bits x input bits."""
    (in_shape, out_shape), kernel = shapes, kernel_variable(wrapper).shape
    if len(out_shape) == 4:  # conv: out_h * out_w * kh * kw * cin * cout
        macs = out_shape[1] * out_shape[2] * kernel[0] * kernel[1] * in_shape[-1] * out_shape[-1]
    else:  # fc
        macs = in_shape[-1] * out_shape[-1]
    cfg = wrapper.quantize_config
    (wb,), (ab,) = cfg.weight_quantizer.bits, cfg.input_quantizer.bits
    return macs * wb * ab


@pytest.mark.parametrize("seed", [5, 6])
def test_layer_bitops_equal_macs_times_bits(seed, monkeypatch):
    space = tiny(width=0.25, image_size=32, repeats=(1, 2, 1, 1))
    arch = _arch(space, seed)
    model = spos_tf.build_standalone(space, arch)
    calls = _recorded_calls(model, tf.zeros([1, 32, 32, 3]), monkeypatch)
    layers = apply.quantized_layers(model)
    assert len(calls) == len(layers)
    per_holder = {}
    for h, _, w in layers:
        per_holder[h] = per_holder.get(h, 0) + _independent_bitops(w, calls[id(w)])
    table = costs.table(space)
    idx = space.indices(arch)
    for b in range(space.num_blocks):
        wb, ab = space.weight_bits[idx[2, b]], space.act_bits[idx[3, b]]
        name = f"block{b:02d}_basic"
        assert per_holder[name] == table.block_qmacs[b, 0, idx[1, b]] * wb * ab, name
    assert per_holder["stem"] + per_holder["head"] == table.fixed_bitops()
    assert sum(per_holder.values()) == costs.bitops(space, arch)


@pytest.mark.parametrize(
    "name,quantized_macs",
    [("resnet18_mixed_precision", 1_695_547_392), ("resnet34_mixed_precision", 3_545_235_456)],
)
def test_uniform_4w4a_is_4x_2w2a_imagenet(name, quantized_macs):
    space = spaces.get(name)
    table = costs.table(space)
    # first conv (7x7/2, 3->64 at 112x112) and last FC (512->1000), both at 8 bits
    assert table.fixed_qmacs == 112 * 112 * 49 * 3 * 64 + 512 * 1000
    assert table.fixed_bitops() == table.fixed_qmacs * 64
    a4, a2 = costs.uniform_arch(space, bits=4), costs.uniform_arch(space, bits=2)
    q4, q2 = costs.bitops(space, a4, False), costs.bitops(space, a2, False)
    assert q2 == quantized_macs * 4 and q4 == 4 * q2
    assert costs.bitops(space, a4) == q4 + table.fixed_bitops() == costs.uniform_bitops(space, 4)
    assert costs.uniform_macs(space) == quantized_macs + table.fixed_qmacs


# ResNet MACs at 224x224, 1000 classes (torchvision's ResNet-18/34: 1.81G / 3.66G multiply-adds)
RESNET_MACS = {"resnet18_mixed_precision": 1_814_073_344, "resnet34_mixed_precision": 3_663_761_408}


def test_resnet_costs_are_torchvisions():
    """At channel scale 1.0 the spaces' networks are torchvision's ResNet-18/34: 11,689,512 and
    21,797,672 parameters."""
    for name, params in {
        "resnet18_mixed_precision": 11_689_512,
        "resnet34_mixed_precision": 21_797_672,
    }.items():
        space = spaces.get(name)
        arch = costs.uniform_arch(space, bits=4)
        assert costs.params(space, arch) == params
        assert costs.macs(space, arch) == RESNET_MACS[name]


@pytest.mark.parametrize("name", sorted(RESNET_MACS))
def test_costs_cli_uniform_bits(name):
    out = run_app("costs", f"--space={name}", "--uniform_bits=3", timeout=120).stdout
    record = json.loads(out.strip().splitlines()[-1])
    # pinned figures, not the library's functions: the first conv (7x7, 3 -> 64, 112x112 output)
    # and the FC (512 -> 1000) stay at 8x8 bits, every other MAC is 3x3 bits
    fixed_macs = 112 * 112 * 49 * 3 * 64 + 512 * 1000
    assert record["macs"] == RESNET_MACS[name]
    assert record["fixed_bitops"] == fixed_macs * 64
    assert record["bitops"] == (RESNET_MACS[name] - fixed_macs) * 9 + fixed_macs * 64
    assert record["uniform_bits"] == 3 and record["space"] == name


# ------------------------------------------------------------------ QAT baseline, float spaces
@pytest.mark.slow
def test_uniform_kwka_standalone_for_qat():
    space = tiny()
    model = spos_tf.build_standalone(space, costs.uniform_arch(space, bits=2))
    for h, p, w in apply.quantized_layers(model):
        bits = 8 if p in ("stem_conv", "classifier") else 2
        assert w.quantize_config.weight_quantizer.bits == (bits,), (h, p)
        assert w.quantize_config.input_quantizer.bits == (bits,), (h, p)
    arch = costs.uniform_arch(space, bits=2)
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == costs.params(
        space, arch
    )
    x, y = _data(space, 8)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    conv = model.get_layer("block01_basic").prims["conv1"]
    conv(tf.zeros([1, conv.prim.in_hw, conv.prim.in_hw, conv.prim.cin]), training=False)
    assert len(np.unique(conv.layer.kernel.numpy())) <= 3  # ternary weights


@pytest.mark.slow
def test_float_spaces_do_not_touch_quantization():
    space = spaces.get(
        "shufflenet_oneshot", image_size=16, num_classes=10, width=0.25, repeats=(1, 1, 1, 1)
    )
    assert not space.quantized
    code = (
        "import sys, spos_tf, tensorflow as tf\n"
        "from spos_tf import spaces\n"
        "s = spaces.get('shufflenet_oneshot', image_size=16, num_classes=10, width=0.25,"
        " repeats=(1, 1, 1, 1))\n"
        "net = spos_tf.build_supernet(s)\n"
        "spos_tf.build_standalone(s, s.sample(__import__('numpy').random.default_rng(0)), net)\n"
        "assert all(b.gene_selectors == () for b in net.choice_blocks)\n"
        "assert not [m for m in sys.modules if m.startswith('tensorflow_model_optimization')]\n"
        "print('ok')\n"
    )
    out = _apps.run([sys.executable, "-c", code], check=False, timeout=300)
    assert out.stdout.strip().endswith("ok"), out.stderr[-3000:]
