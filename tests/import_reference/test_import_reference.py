"""Importing the authors' released weights (spos_tf.import_reference.convert / spos_tf.import_reference),
and the reference-compatible numerics it relies on (padding=reference, preprocessing=reference).

The release's state_dict layout is rebuilt here from its network definition (names and shapes as
its Supernet/network.py, blocks.py and Evaluation/ write them; no reference code, no PyTorch),
filled with random values, imported, and checked value by value and by hand-computed numpy
convolutions. The logit parity against the real PyTorch networks is benchmarks/reference_parity.py.
"""

import importlib.util
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from spos_tf.import_reference import convert as reference_import
from spos_tf.runs import run_dir
from spos_tf import spaces
from spos_tf.data import DataConfig, build_dataset
from spos_tf.data.preprocess import MEAN_RGB, STDDEV_RGB, finish
from spos_tf.models.layers import Conv, DepthwiseConv
from spos_tf.spaces.ops import Prim
from spos_tf.import_reference.convert import ImportConfig, ReferenceImportError
from _apps import run_app
from _reference_layout import add_block

PAPER_ARCH = (2, 1, 0, 1, 2, 0, 2, 0, 2, 0, 2, 3, 0, 0, 0, 0, 3, 2, 3, 3)
NUM_CLASSES = 10
OP_NAMES = ("shuffle3x3", "shuffle5x5", "shuffle7x7", "xception")  # the release's blockIndex
# The release's nn.Sequential index -> our primitive (written from its blocks.py: ReLUs at the
# indices left out hold no tensors).
SHUFFLE_MAIN = {0: "conv1", 1: "bn1", 3: "dw", 4: "bn2", 5: "conv2", 6: "bn3"}
XCEPTION_MAIN = {
    0: "dw1",
    1: "bn1",
    2: "conv1",
    3: "bn2",
    5: "dw2",
    6: "bn3",
    7: "conv2",
    8: "bn4",
    10: "dw3",
    11: "bn5",
    12: "conv3",
    13: "bn6",
}
PROJ = {0: "proj_dw", 1: "proj_bn1", 2: "proj_conv", 3: "proj_bn2"}
BN = {
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
    "weight": "gamma",
    "bias": "beta",
}


# ------------------------------------------------------------------ the release's state_dict
def reference_state_dict(kind, arch=PAPER_ARCH, seed=0, prefix=""):
    """``{name: array}`` as the release's ``state_dict()`` names and shapes them, random values."""
    rng = np.random.default_rng(seed)
    affine = kind == "standalone"
    sd = {}

    def conv(name, cout, cin, k, groups=1):
        sd[f"{prefix}{name}.weight"] = (
            rng.standard_normal((cout, cin // groups, k, k)).astype(np.float32) * 0.3
        )

    def bn(name, c):
        sd[f"{prefix}{name}.running_mean"] = rng.standard_normal(c).astype(np.float32) * 0.1
        sd[f"{prefix}{name}.running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        sd[f"{prefix}{name}.num_batches_tracked"] = np.array(150000, np.int64)
        if affine:
            sd[f"{prefix}{name}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
            sd[f"{prefix}{name}.bias"] = rng.standard_normal(c).astype(np.float32) * 0.1

    conv("first_conv.0", 16, 3, 3)
    bn("first_conv.1", 16)
    input_channel, block = 16, 0
    for repeats, output_channel in zip((4, 4, 8, 4), (64, 160, 320, 640)):
        for i in range(repeats):
            stride = 2 if i == 0 else 1
            inp = input_channel if stride == 2 else input_channel // 2
            mid, outputs = output_channel // 2, output_channel - inp
            for choice in range(4) if kind == "supernet" else [arch[block]]:
                m = f"features.{block}." + (f"{choice}." if kind == "supernet" else "")
                add_block(conv, bn, m, choice, inp, outputs, mid, proj=stride == 2)
            input_channel, block = output_channel, block + 1
    conv("conv_last.0", 1024, 640, 1)
    bn("conv_last.1", 1024)
    sd[f"{prefix}classifier.0.weight"] = (
        rng.standard_normal((NUM_CLASSES, 1024)).astype(np.float32) * 0.03
    )
    return sd


def our_variable(model, name):
    """``(variable, kind)`` that the release's tensor ``name`` must land in (written from the
    release's module names, independently of spos_tf.import_reference.convert's tables)."""
    parts = name.split(".")
    tensor = parts[-1]
    if parts[0] in ("first_conv", "conv_last", "classifier"):
        holder = model.get_layer("stem") if parts[0] == "first_conv" else model.get_layer("head")
        prim = {
            "first_conv": ["stem_conv", "stem_bn"],
            "conv_last": ["head_conv", "head_bn"],
            "classifier": ["classifier"],
        }[parts[0]][int(parts[1])]
    else:
        block = int(parts[1])
        supernet = not parts[2].startswith("branch")
        choice = int(parts[2]) if supernet else PAPER_ARCH[block]
        branch, index = parts[-3], int(parts[-2])
        unit = f"block{block:02d}_{OP_NAMES[choice]}"
        holder = (
            model.choice_blocks[block].units[OP_NAMES[choice]]
            if supernet
            else model.get_layer(unit)
        )
        prim = (
            PROJ if branch == "branch_proj" else XCEPTION_MAIN if choice == 3 else SHUFFLE_MAIN
        )[index]
    layer = holder.prims[prim]
    if prim.startswith(("bn", "stem_bn", "head_bn", "proj_bn")):
        return getattr(layer, BN[tensor]), "bn"
    if hasattr(layer, "depthwise_kernel"):
        return layer.depthwise_kernel, "dw"
    return layer.kernel, "fc" if prim == "classifier" else "conv"


def expected_value(kind, value):
    if kind == "conv":
        return value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if kind == "dw":
        return value.transpose(2, 3, 0, 1)  # [C, 1, k, k] -> [k, k, C, 1]
    if kind == "fc":
        return value.T
    return value


def conv_numpy(x, w, stride, pads, groups=1):
    """Cross-correlation of NHWC ``x`` with OIHW ``w``: zero padding ``pads`` = (top, bottom,
    left, right), ``groups`` as PyTorch (depthwise: groups = channels)."""
    x = np.pad(x, [(0, 0), pads[:2], pads[2:], (0, 0)])
    n, h, wd, c = x.shape
    cout, cin_g, k, _ = w.shape
    oh, ow = (h - k) // stride + 1, (wd - k) // stride + 1
    out = np.zeros((n, oh, ow, cout))
    per_group = cout // groups
    for o in range(cout):
        g = o // per_group
        for i in range(oh):
            for j in range(ow):
                patch = x[
                    :,
                    i * stride : i * stride + k,
                    j * stride : j * stride + k,
                    g * cin_g : (g + 1) * cin_g,
                ]
                out[:, i, j, o] = np.einsum("nhwc,chw->n", patch, w[o])
    return out


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def supernet_import(tmp_path_factory):
    """The release's supernet state_dict (random values, ``module.`` prefix) imported once."""
    folder = tmp_path_factory.mktemp("ref_supernet")
    sd = reference_state_dict("supernet", prefix="module.")
    np.savez(folder / "supernet.npz", **sd)
    workdir = folder / "run"
    record = reference_import.run(
        ImportConfig(checkpoint=str(folder / "supernet.npz"), kind="supernet", workdir=str(workdir))
    )
    return sd, workdir, record


# ------------------------------------------------------------------ layout
@pytest.mark.slow
def test_supernet_every_tensor_lands_in_its_variable(supernet_import):
    sd, workdir, record = supernet_import
    space, model, config = run_dir.restore_model(str(workdir))  # what spos_tf.search does
    assert config["arch"] is None and config["steps"] == 150_000
    assert config["space_overrides"]["padding"] == "reference"
    assert config["data"]["preprocessing"] == "reference"
    assert config["data"]["eval_resize"] == "reference"  # the release's OpencvResize + crop
    assert space.padding == "reference" and space.num_classes == NUM_CLASSES
    landed = set()
    for name, value in sd.items():
        if name.endswith("num_batches_tracked"):
            continue
        var, kind = our_variable(model, name[len("module.") :])
        np.testing.assert_array_equal(var.numpy(), expected_value(kind, value), err_msg=name)
        landed.add(id(var))
    # Every variable of the model was written (the arch variable and BN control aside); the
    # supernet's BN has no gamma/beta, as the release's affine=False.
    weights = [v for v in model.weights if "arch" not in v.name and "bn_momentum" not in v.name]
    assert landed == {id(v) for v in weights}
    assert record["tensors"] == len(landed) == 1003
    assert record["values"] == sum(v.shape.num_elements() for v in weights)


@pytest.mark.slow
def test_imported_stem_and_strided_block_compute_the_reference_convolutions(supernet_import):
    """Functional check of the transposes, the symmetric padding and the BN statistics: the
    stem (3x3/2 conv + BN + ReLU) and a stride-2 depthwise conv against numpy on the release's
    OIHW tensors with PyTorch's k//2 zero padding."""
    sd, workdir, _ = supernet_import
    _, model, _ = run_dir.restore_model(str(workdir))
    sd = {k[len("module.") :]: v for k, v in sd.items()}
    x = np.random.default_rng(1).uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
    got = model.stem(tf.constant(x), training=False).numpy()
    z = conv_numpy(x[:, :12, :12], sd["first_conv.0.weight"], 2, (1, 1, 1, 1))
    mean, var = sd["first_conv.1.running_mean"], sd["first_conv.1.running_var"]
    want = np.maximum((z - mean) / np.sqrt(var + 1.001e-5), 0.0)
    # The top-left 5x5 outputs see only the 12x12 corner (and the symmetric padding).
    np.testing.assert_allclose(got[:, :5, :5], want[:, :5, :5], rtol=1e-4, atol=1e-3)

    unit = model.choice_blocks[4].units["shuffle7x7"]  # stage 2's first block: stride 2, 64 in
    h = np.random.default_rng(2).standard_normal((1, 14, 14, 64)).astype(np.float32)
    got = unit.prims["proj_dw"](tf.constant(h)).numpy()
    want = conv_numpy(h, sd["features.4.2.branch_proj.0.weight"], 2, (3, 3, 3, 3), groups=64)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_standalone_import_through_the_app_reads_the_arch_off_the_tensors(tmp_path):
    sd = reference_state_dict("standalone", prefix="module.")
    np.savez(tmp_path / "eval.npz", **sd)
    workdir = tmp_path / "runs" / "retrained"
    done = run_app(
        "import_reference",
        f"--checkpoint={tmp_path / 'eval.npz'}",
        "--kind=standalone",
        f"--workdir={workdir}",
    )
    assert "stand-alone network 2,1,0,1,2,0,2,0,2,0,2,3,0,0,0,0,3,2,3,3" in done.stdout
    assert sorted(os.listdir(workdir)) == ["checkpoints", "config.json", "import_reference.json"]
    space, model, config = run_dir.restore_model(str(workdir))  # what spos_tf.export does
    assert config["arch"] == "2,1,0,1,2,0,2,0,2,0,2,3,0,0,0,0,3,2,3,3"
    for name, value in sd.items():
        if not name.endswith("num_batches_tracked"):
            var, kind = our_variable(model, name[len("module.") :])
            np.testing.assert_array_equal(var.numpy(), expected_value(kind, value), err_msg=name)
    # A wrong --arch is refused, naming the blocks that differ; nothing is written.
    with pytest.raises(ReferenceImportError, match=r"in blocks \[0\]"):
        reference_import.run(
            ImportConfig(
                checkpoint=str(tmp_path / "eval.npz"),
                kind="standalone",
                workdir=str(tmp_path / "other"),
                arch="0,1,0,1,2,0,2,0,2,0,2,3,0,0,0,0,3,2,3,3",
            )
        )
    assert not (tmp_path / "other").exists()


# ------------------------------------------------------------------ bad input
def test_missing_extra_and_misshaped_tensors_are_named_and_nothing_is_written(tmp_path):
    sd = reference_state_dict("supernet")
    del sd["features.3.1.branch_main.3.weight"]
    sd["features.3.1.branch_main.9.weight"] = np.zeros((32, 32, 1, 1), np.float32)
    sd["conv_last.0.weight"] = np.zeros((1024, 320, 1, 1), np.float32)
    np.savez(tmp_path / "bad.npz", **sd)
    workdir = tmp_path / "runs" / "ref"
    with pytest.raises(ReferenceImportError) as info:
        reference_import.run(
            ImportConfig(
                checkpoint=str(tmp_path / "bad.npz"), kind="supernet", workdir=str(workdir)
            )
        )
    problems = info.value.problems
    assert len(problems) == 3, problems
    assert any(
        p.startswith("missing tensor features.3.1.branch_main.3.weight (shape [32, 1, 5, 5])")
        for p in problems
    )
    assert any(p.startswith("extra tensor features.3.1.branch_main.9.weight") for p in problems)
    assert any(
        p.startswith(
            "mis-shaped tensor conv_last.0.weight: shape [1024, 320, 1, 1], the "
            "reference supernet has [1024, 640, 1, 1]"
        )
        for p in problems
    )
    assert "nothing was written" in str(info.value) and "--kind" in str(info.value)
    assert not workdir.exists() and not (tmp_path / "runs").exists()

    # With --overwrite over an existing run, a failed import leaves that run as it was.
    workdir.mkdir(parents=True)
    (workdir / "config.json").write_text("previous run")
    with pytest.raises(ReferenceImportError):
        reference_import.run(
            ImportConfig(
                checkpoint=str(tmp_path / "bad.npz"),
                kind="supernet",
                workdir=str(workdir),
                overwrite=True,
            )
        )
    assert os.listdir(tmp_path / "runs") == ["ref"] and os.listdir(workdir) == ["config.json"]
    assert (workdir / "config.json").read_text() == "previous run"
    # Without --overwrite the run is refused before the checkpoint is read.
    with pytest.raises(run_dir.RunDirError, match="--overwrite"):
        reference_import.run(
            ImportConfig(
                checkpoint=str(tmp_path / "absent.npz"), kind="supernet", workdir=str(workdir)
            )
        )


def test_wrong_kind_pth_without_torch_and_bad_flags_are_clear(tmp_path, monkeypatch):
    sd = reference_state_dict("standalone")
    np.savez(tmp_path / "eval.npz", **sd)
    with pytest.raises(ReferenceImportError, match=r"--kind=standalone\?"):
        reference_import.run(
            ImportConfig(
                checkpoint=str(tmp_path / "eval.npz"),
                kind="supernet",
                workdir=str(tmp_path / "run"),
            )
        )
    assert not (tmp_path / "run").exists()
    pth = tmp_path / "checkpoint-150000.pth.tar"
    pth.write_bytes(b"not read")
    if importlib.util.find_spec("torch") is not None:  # PyTorch reads the file, finds no checkpoint
        with pytest.raises(ReferenceImportError, match="is not a readable PyTorch checkpoint"):
            reference_import.load_state_dict(str(pth))
    with monkeypatch.context() as m:  # without PyTorch (installed or not), the message says how
        m.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
        with pytest.raises(ReferenceImportError, match=r"pip install 'spos_tf\[torch\]'"):
            reference_import.load_state_dict(str(pth))
    with pytest.raises(FileNotFoundError, match="SinglePathOneShot"):
        reference_import.load_state_dict(str(tmp_path / "absent.npz"))
    with pytest.raises(ValueError, match="--arch=.* applies to --kind=standalone"):
        ImportConfig(checkpoint="x.npz", kind="supernet", workdir="w", arch="0").validate()
    with pytest.raises(ValueError, match="--kind must be one of supernet, standalone"):
        ImportConfig(checkpoint="x.npz", kind="evaluation", workdir="w").validate()


# ------------------------------------------------------------------ padding=reference
@pytest.mark.parametrize("depthwise", [False, True])
def test_padding_reference_pads_stride2_symmetrically_default_stays_tf_same(depthwise):
    rng = np.random.default_rng(3)
    k, c = (5, 4) if depthwise else (3, 4)
    x = rng.standard_normal((2, 8, 8, c)).astype(np.float32)  # even input
    prim = Prim("dw" if depthwise else "conv", c, c if depthwise else 6, k, 2, 8)
    outputs = {}
    for padding in ("same", "reference"):
        layer = (
            DepthwiseConv(prim, seed=0, padding=padding)
            if depthwise
            else Conv(prim, seed=0, padding=padding)
        )
        var = layer.depthwise_kernel if depthwise else layer.kernel
        var.assign(
            rng.standard_normal(var.shape).astype(np.float32)
            if padding == "same"
            else outputs["kernel"]
        )
        outputs["kernel"] = var.numpy()
        outputs[padding] = layer(tf.constant(x)).numpy()
    kernel = outputs["kernel"]
    oihw = kernel.transpose(2, 3, 0, 1) if depthwise else kernel.transpose(3, 2, 0, 1)
    groups = c if depthwise else 1
    p = k // 2
    symmetric = conv_numpy(x, oihw, 2, (p, p, p, p), groups)  # PyTorch padding=k//2
    tf_same = conv_numpy(x, oihw, 2, (p - 1, p, p - 1, p), groups)  # TF SAME: one less on top
    np.testing.assert_allclose(outputs["reference"], symmetric, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outputs["same"], tf_same, rtol=1e-5, atol=1e-5)
    assert np.max(np.abs(outputs["reference"] - outputs["same"])) > 0.1


def test_padding_is_a_space_option_that_reaches_every_layer():
    space = spaces.get(
        "shufflenet_oneshot",
        image_size=32,
        width=0.25,
        repeats=(1, 1, 1, 1),
        num_classes=10,
        padding="reference",
    )
    assert spaces.get("shufflenet_oneshot").padding == "same"
    from spos_tf.models.supernet import build_supernet

    model = build_supernet(space)
    convs = [
        layer
        for holder in [model.stem, model.head]
        + [u for b in model.choice_blocks for u in b.units.values()]
        for layer in holder.prims.values()
        if isinstance(layer, (Conv, DepthwiseConv))
    ]
    assert convs and {layer.padding for layer in convs} == {"reference"}
    with pytest.raises(ValueError, match="padding='valid' is not one of"):
        spaces.get("shufflenet_oneshot", padding="valid")


# ------------------------------------------------------------------ preprocessing=reference
def test_preprocessing_reference_is_bgr_0_255_without_normalisation(data_dir):
    rgb = tf.constant([[[[10, 20, 30]]]], tf.uint8)
    np.testing.assert_array_equal(finish(rgb, "reference").numpy(), [[[[30.0, 20.0, 10.0]]]])
    standard = DataConfig(name="spos_digits", data_dir=data_dir)
    reference = DataConfig(name="spos_digits", data_dir=data_dir, preprocessing="reference")
    images = [
        next(iter(build_dataset(c, "holdout", 8, training=False, seed=0)))[0].numpy()
        for c in (standard, reference)
    ]
    unnormalised = images[0] * np.array(STDDEV_RGB) + np.array(MEAN_RGB)
    np.testing.assert_allclose(images[1], unnormalised[..., ::-1], atol=1e-3)
    assert images[1].max() > 100.0  # 0..255 scale
    with pytest.raises(ValueError, match="preprocessing must be one of"):
        DataConfig(preprocessing="bgr").validate()


def test_train_flags_carry_the_reference_options_into_the_run_config():
    from absl import flags

    from spos_tf.train import __main__ as train

    fv = flags.FlagValues()
    train.define_flags(fv)
    fv(["train", "--workdir=/x", "--padding=reference", "--preprocessing=reference"])
    config = train.config_from_flags(fv).validate()
    assert config.space_overrides == {"padding": "reference"}
    assert config.data.preprocessing == "reference"
    assert {"--padding=reference", "--preprocessing=reference"} <= set(
        train.flags_text(fv).splitlines()
    )
    fv = flags.FlagValues()
    train.define_flags(fv)
    fv(["train", "--workdir=/x"])
    default = train.config_from_flags(fv)
    assert "padding" not in default.space_overrides
    assert default.data.preprocessing == "standard"
