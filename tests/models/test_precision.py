"""Mixed precision (spos_tf.models.precision): masked updates stay exact under every policy, float16 loss
scaling skips overflowing steps, layers compute in the policy's dtype, configs check the setting.

Tiny spaces (8x8 images, 4 blocks) so each model traces in seconds on 2 CPU cores.
"""

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
from absl import flags

import spos_tf
import tensorflow as tf
import tf_keras as keras
from spos_tf.models import precision
from spos_tf import spaces
from spos_tf.models import step as step_lib
from spos_tf.models.sampling import SequenceSampler

REPO = Path(__file__).resolve().parents[2]
MIXED = ("mixed_float16", "mixed_bfloat16")
COMPUTE = {"float32": tf.float32, "mixed_float16": tf.float16, "mixed_bfloat16": tf.bfloat16}
CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _space(name="shufflenet_oneshot", **kw):
    kw = dict(dict(image_size=8, num_classes=10, width=0.125, repeats=(1, 1, 1, 1)), **kw)
    if name.startswith("shufflenet"):
        kw.setdefault("dropout", 0.0)
    if name == "shufflenet_oneshot":
        kw.setdefault("ops", ("shuffle3x3", "xception"))
    return spaces.get(name, **kw)


def _batch(space, n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, space.image_size, space.image_size, 3)).astype("float32")
    return x, rng.integers(0, space.num_classes, n)


def _build(policy, space, make_optimizer, archs, seed=1, initial_scale=2.0**8):
    """Supernet + bound (loss-scaled for float16) optimizer built under ``policy``; the supernet
    trains on ``archs`` in turn. ``initial_scale``: float16's first loss scale (None: Keras'
    2**15, at which this tiny net's first gradients overflow)."""
    with precision.policy_scope(policy):
        net = spos_tf.build_supernet(space, seed=seed)
        if policy == "mixed_float16" and initial_scale:
            optimizer = precision.MaskedLossScaleOptimizer(
                make_optimizer(), initial_scale=initial_scale
            )
        else:
            optimizer = precision.loss_scaled(make_optimizer(), policy)
        optimizer.bind(net)
        optimizer.build(net.trainable_variables)
    net.set_sampler(SequenceSampler(space, archs, cycle=True))
    return net, optimizer


def _state(weights: dict, optimizer) -> dict:
    """``{name: array}`` of ``weights`` ({name: variable}) and the optimizer slots of the
    trainable ones."""
    inner = precision.inner_optimizer(optimizer)
    out = {}
    for key, var in weights.items():
        out[key] = var.numpy().copy()
        if var.trainable:
            index = inner._index_dict[inner._var_key(var)]
            for name in inner.slot_names:
                out[f"{key}:{name}"] = inner._slots[name][index].numpy().copy()
    return out


def _unit_states(net, optimizer) -> dict:
    """``{(block, op index): state}``: every variable of every choice (kernels, BN moving
    statistics) and the optimizer slots of its trainable ones."""
    return {
        (b, o): _state(unit.weight_dict(), optimizer)
        for b, block in enumerate(net.choice_blocks)
        for o, unit in enumerate(block.units.values())
    }


def _other_state(net, optimizer) -> dict:
    """The same for the variables outside the choice blocks (stem, head)."""
    return _state({**net.stem.weight_dict(), **net.head.weight_dict()}, optimizer)


def _sampled(net, step):
    return {(b, int(o)) for b, o in enumerate(net.space.indices(net.sampler(step))[0])}


def _step_fn(net, optimizer, loss_fn=CE):
    return tf.function(lambda x, y: step_lib.train_step(net, optimizer, loss_fn, x, y))


ARCHS = ("0,1,0,1", "1,0,1,0", "0,0,1,1")
OPTIMIZERS = {
    "sgd": lambda: spos_tf.MaskedSGD(0.1, momentum=0.9, weight_decay=4e-5),
    "adam": lambda: spos_tf.MaskedAdam(1e-2, weight_decay=4e-5),
}


@pytest.mark.parametrize(
    "policy,opt",
    [
        ("float32", "sgd"),
        ("mixed_float16", "sgd"),
        ("mixed_bfloat16", "sgd"),
        ("mixed_float16", "adam"),
    ],
)
def test_only_the_sampled_path_moves_under_every_policy(policy, opt):
    space = _space()
    net, optimizer = _build(policy, space, OPTIMIZERS[opt], [space.parse(a) for a in ARCHS])
    assert precision.is_loss_scaled(optimizer) == (policy == "mixed_float16")
    step = _step_fn(net, optimizer)
    x, y = _batch(space)
    scale = float(getattr(optimizer, "loss_scale", 1.0))
    for t in range(len(ARCHS)):
        before = _unit_states(net, optimizer)
        out = step(x, y)
        assert bool(out.finite)
        assert float(getattr(optimizer, "loss_scale", 1.0)) == scale  # no step was skipped
        after = _unit_states(net, optimizer)
        sampled = _sampled(net, t)
        for unit, state in before.items():
            changed = sorted(k for k in state if not np.array_equal(state[k], after[unit][k]))
            if unit in sampled:
                assert any(k.endswith("kernel") for k in changed), (policy, t, unit)
                assert any("moving_mean" in k for k in changed), (policy, t, unit)
            else:
                assert changed == [], f"{policy} step {t}: unsampled {unit} changed {changed}"
    assert {v.dtype for v in net.weights if v.dtype.is_floating} == {tf.float32}
    for var in precision.inner_optimizer(optimizer).variables:
        assert var.dtype in (tf.float32, tf.int64), var.name


def test_float16_overflow_skips_the_step_for_every_variable_and_halves_the_scale():
    space = _space()
    net, optimizer = _build(
        "mixed_float16",
        space,
        OPTIMIZERS["sgd"],
        [space.parse(a) for a in ARCHS],
        initial_scale=None,
    )
    assert float(optimizer.loss_scale) == 2.0**15  # precision.loss_scaled: Keras' default
    x, y = _batch(space)
    _step_fn(net, optimizer)(x, y)  # a step: momentum slots now non-zero
    # The same loss times 1e9: finite in float32, but its gradient overflows float16 (> 65504)
    # at any loss scale, so every step is skipped until the scale reaches its floor of 1.
    huge = _step_fn(net, optimizer, lambda labels, logits: 1e9 * CE(labels, logits))
    scale = float(optimizer.loss_scale)
    halvings = int(np.log2(scale))
    assert scale == 2.0**halvings and halvings >= 14
    skipped = 0
    while True:
        t = int(optimizer.iterations.numpy())
        units, other = _unit_states(net, optimizer), _other_state(net, optimizer)
        out = huge(x, y)
        assert np.isfinite(float(out.loss))
        assert int(optimizer.iterations.numpy()) == t + 1  # the next step trains the next path
        for unit, state in _unit_states(net, optimizer).items():
            for key, value in state.items():
                if "moving" in key and unit in _sampled(net, t):
                    continue  # the forward pass ran (finite): its BN statistics count
                assert np.array_equal(value, units[unit][key]), (unit, key)
        for key, value in _other_state(net, optimizer).items():
            if "moving" not in key:
                assert np.array_equal(value, other[key]), key
        if scale == 1.0:  # at the floor an overflow can no longer be a scale problem
            assert not bool(out.finite)
            break
        assert bool(out.finite)  # skipped, not diverged
        assert float(optimizer.loss_scale) == scale / 2
        scale /= 2
        skipped += 1
    assert skipped == halvings
    # Back to the plain loss (at scale 1 it cannot overflow): the update applies again.
    before = _unit_states(net, optimizer)
    t = int(optimizer.iterations.numpy())
    assert bool(_step_fn(net, optimizer)(x, y).finite)
    after = _unit_states(net, optimizer)
    for unit in _sampled(net, t):
        kernels = [k for k in before[unit] if k.endswith("kernel")]
        assert not all(np.array_equal(before[unit][k], after[unit][k]) for k in kernels)


@pytest.mark.parametrize("policy,tolerance", [("mixed_float16", 0.3), ("mixed_bfloat16", 0.7)])
def test_mixed_update_matches_float32_update(policy, tolerance):
    """The loss scale is undone: one plain SGD step (lr 1, no momentum) from the same weights on
    the same path moves the weights by the float32 step up to the compute dtype's rounding. The
    tolerance is on the relative error of all deltas together; measured 0.14 (float16) and 0.41
    (bfloat16) on this tiny net at initialisation, where BN's backward pass cancels heavily. A
    missing unscale would be off by 255 (scale 2**8), an unscale applied twice by 0.996, a sign
    error by 2. Unsampled choices get exactly zero either way."""
    space = _space()
    archs = [space.parse(ARCHS[0])]
    make = lambda: spos_tf.MaskedSGD(1.0, momentum=0.0, weight_decay=0.0)  # noqa: E731
    x, y = _batch(space, 16)
    deltas = {}
    for p in ("float32", policy):
        net, optimizer = _build(p, space, make, archs)
        before = [v.numpy().copy() for v in net.trainable_variables]
        assert bool(_step_fn(net, optimizer)(x, y).finite)
        assert float(getattr(optimizer, "loss_scale", 1.0)) == (
            2.0**8 if p == "mixed_float16" else 1.0
        )  # applied, not skipped
        deltas[p] = [v.numpy() - b for v, b in zip(net.trainable_variables, before)]
    # (Which variables move is checked bit for bit above; here a sampled kernel can get an exact
    # zero in float32 but rounding noise in 16 bits where a tiny channel is constant over the
    # batch, so only the sizes are compared.)
    moved = [np.linalg.norm(d) > 0 for d in deltas["float32"]]
    assert 10 < sum(moved) < len(moved)
    d32 = np.concatenate([d.ravel() for d in deltas["float32"]])
    dmp = np.concatenate([d.ravel() for d in deltas[policy]])
    assert np.linalg.norm(dmp - d32) / np.linalg.norm(d32) < tolerance


def _compute_ops(fn, *args) -> dict:
    """``{op type: {dtype names}}`` of the convolutions, depthwise convolutions, fused BNs and
    matmuls in ``fn``'s graph, including every ``tf.switch_case`` branch."""
    graph = tf.function(fn).get_concrete_function(*args).graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    out = {}
    for n in nodes:
        if n.op in ("Conv2D", "DepthwiseConv2dNative", "FusedBatchNormV3", "MatMul"):
            out.setdefault(n.op, set()).add(tf.dtypes.as_dtype(n.attr["T"].type).name)
    return out


@pytest.mark.parametrize("policy", MIXED)
@pytest.mark.parametrize(
    "name", ["shufflenet_oneshot", "shufflenet_oneshot_channels", "resnet18_mixed_precision"]
)
def test_layers_compute_in_the_policy_dtype_with_float32_variables(policy, name):
    """Every conv, depthwise conv, BN and matmul of the supernet (all branches, channel slices
    and quantized layers included) and of a stand-alone network runs in the compute dtype; the
    variables are float32 and the logits float32."""
    space = _space(name)
    with precision.policy_scope(policy):
        net = spos_tf.build_supernet(space)
        alone = spos_tf.build_standalone(
            space, space.sample(np.random.default_rng(0)), supernet=net
        )
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    x = tf.constant(_batch(space)[0])
    arch = tf.constant(space.indices(space.sample(np.random.default_rng(1))))
    want = {COMPUTE[policy].name}
    for model, kwargs in ((net, {"arch": arch}), (alone, {})):
        ops = _compute_ops(lambda images, m=model, kw=kwargs: m(images, training=True, **kw), x)
        assert set(ops) == {"Conv2D", "DepthwiseConv2dNative", "FusedBatchNormV3", "MatMul"} - (
            {"DepthwiseConv2dNative"} if name.startswith("resnet") else set()
        )
        assert all(dtypes == want for dtypes in ops.values()), ops
        assert model(x, training=False, **kwargs).dtype == tf.float32
        assert {v.dtype for v in model.weights if v.dtype.is_floating} == {tf.float32}


def test_policy_scope_restores_the_global_policy_after_an_error():
    with pytest.raises(RuntimeError):
        with precision.policy_scope("mixed_bfloat16"):
            assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
            raise RuntimeError
    assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(
        ValueError,
        match="--precision must be one of float32, mixed_float16, mixed_bfloat16; got 'float16'",
    ):
        with precision.policy_scope("float16"):
            pass


def test_fit_under_mixed_float16_scales_the_loss_of_a_masked_optimizer():
    space = _space()
    with precision.policy_scope("mixed_float16"):
        net = spos_tf.build_supernet(space)
        net.compile(optimizer=spos_tf.MaskedSGD(0.1), loss=CE)
    assert isinstance(net.optimizer, precision.MaskedLossScaleOptimizer)
    assert precision.inner_optimizer(net.optimizer)._model is net
    with pytest.raises(TypeError, match="masked optimizer"):
        net.compile(optimizer=keras.optimizers.SGD(0.1), loss=CE)
    x, y = _batch(space, 8)
    net.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert int(net.optimizer.iterations.numpy()) == 2


# ------------------------------------------------------------------------- configs and apps
def test_configs_refuse_an_unknown_precision():
    from spos_tf.search import SearchConfig
    from spos_tf.train import TrainConfig

    with pytest.raises(
        ValueError,
        match="--precision must be one of float32, mixed_float16, mixed_bfloat16; got 'fp16'",
    ):
        TrainConfig(workdir="/tmp/x", precision="fp16").validate()
    with pytest.raises(ValueError, match="--precision must be one of"):
        SearchConfig(supernet_dir="/tmp/a", workdir="/tmp/b", precision="bfloat16").validate()
    assert TrainConfig().precision == SearchConfig().precision == "float32"


def test_flags_reach_the_configs():
    from spos_tf.search import __main__ as search
    from spos_tf.train import __main__ as train

    fv = flags.FlagValues()
    train.define_flags(fv)
    fv(["train", "--workdir=/tmp/w", "--precision=mixed_bfloat16"])
    assert train.config_from_flags(fv).precision == "mixed_bfloat16"
    assert "--precision=mixed_bfloat16" in train.flags_text(fv)
    fv = flags.FlagValues()
    search.define_flags(fv)
    fv(["search", "--supernet_dir=/a", "--workdir=/b", "--precision=mixed_float16"])
    assert search.config_from_flags(fv).precision == "mixed_float16"
    fv = flags.FlagValues()
    train.define_flags(fv)
    with pytest.raises(flags.IllegalFlagValueError):
        fv(["train", "--precision=float16"])


def test_train_app_runs_mixed_float16_and_restores_the_policy(tmp_path, data_dir):
    from spos_tf.runs import run_dir
    from spos_tf.train import __main__ as train
    from spos_tf import train as train_lib

    fv = flags.FlagValues()
    train.define_flags(fv)
    fv(
        [
            "train",
            f"--flagfile={REPO / 'flags' / 'tiny_supernet.cfg'}",
            f"--workdir={tmp_path / 'wd'}",
            f"--data_dir={data_dir}",
            "--ops=shuffle3x3,xception",
            "--precision=mixed_float16",
            "--steps=4",
            "--eval_paths=1",
        ]
    )
    config = dataclasses.replace(train.config_from_flags(fv), progress=False)
    record = train_lib.run(config, stream=io.StringIO())
    assert record["final"] and np.isfinite(record["val_accuracy"])
    assert keras.mixed_precision.global_policy().name == "float32"
    assert run_dir.load_run_config(str(tmp_path / "wd"))["precision"] == "mixed_float16"
    records = [r for r in run_dir.MetricsLog(str(tmp_path / "wd")).read() if "loss" in r]
    assert records and all(np.isfinite(r["loss"]) for r in records)
    reader = tf.train.load_checkpoint(
        run_dir.latest_checkpoint(run_dir.checkpoint_dir(str(tmp_path / "wd")))
    )
    scales = [k for k in reader.get_variable_to_shape_map() if "loss_scale" in k]
    assert scales, "the loss scale is checkpointed with the optimizer"
    # The search scores this (float16-trained) supernet in another precision.
    from spos_tf import search as search_lib

    search = search_lib.SearchConfig(
        supernet_dir=str(tmp_path / "wd"),
        workdir=str(tmp_path / "search"),
        calib_images=32,
        calib_batch_size=32,
        holdout_images=64,
        eval_batch_size=32,
        precision="mixed_bfloat16",
    )
    evaluator = search_lib.make_evaluator(search.validate())
    assert evaluator.model.dtype_policy.name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"
    space = evaluator.model.space
    accuracy = evaluator(space.sample(np.random.default_rng(0)))
    assert 0.0 <= accuracy <= 1.0


@pytest.mark.slow
def test_gpu_check_runs_in_tiny_mode():
    """benchmarks/gpu_check.sh --tiny (the GPU check's CI mode, on whatever devices there are):
    float32 and mixed_float16 supernet and stand-alone steps under MirroredStrategy, one JSON
    record each with a positive img/s and a finite loss, and the summary."""
    import json
    import os
    import sys

    from _apps import run_script

    # this process's environment as it is (the GPU visible), not an app's CPU-only one
    env = dict(os.environ, PYTHON=sys.executable, GPU_CHECK_TIMEOUT="1500")
    done = run_script("gpu_check.sh", "--tiny", env=env, timeout=1600)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines[0]["strategy"] == "mirrored" and lines[0]["batch"] == 8
    records = {(r["precision"], r["model"]): r for r in lines if "model" in r}
    assert set(records) == {
        (p, m) for p in ("float32", "mixed_float16") for m in ("supernet", "standalone")
    }
    for (policy, _), r in records.items():
        assert r["img_per_s"] > 0 and r["trace_s"] > 0 and np.isfinite(r["loss_first"])
        assert (r["loss_scale"] is not None) == (policy == "mixed_float16")
    summary = lines[-1]["summary"]
    assert {
        "supernet_mixed_float16_speedup",
        "ratio_supernet_standalone_float32",
        "ratio_supernet_standalone_mixed_float16",
    } <= set(summary)
