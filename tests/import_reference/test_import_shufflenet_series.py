"""Importing block + channel stand-alone networks of megvii-model/ShuffleNet-Series ``OneShot/``
(spos_tf.import_reference.convert, issue 22 item 5).

The checkpoint layout is rebuilt here from that release's network definition (its ``network.py``:
stages [4, 4, 8, 4] of [64, 160, 320, 640] channels, a block's mid width
``int(outp // 2 * scale)``, ``nn.Sequential`` indices of ``blocks.py``), filled with random numpy
values; no reference code and no PyTorch. The imported network's logits are compared with a
spos_tf network of the same architecture and channel scales built here and filled by this
module's own name table, not the importer's.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import spos_tf
from spos_tf.import_reference import convert as reference_import
from spos_tf.runs import run_dir
from spos_tf import spaces
from spos_tf.import_reference.convert import ImportConfig, ReferenceImportError
from _reference_layout import add_block

NUM_CLASSES = 10
# ShuffleNet-Series OneShot/'s published 328M-MACs network: blockIndex per block and the index
# of each block's scale in its scale_list.
OPS = (0, 0, 3, 1, 1, 1, 0, 0, 2, 0, 2, 1, 1, 0, 2, 0, 2, 1, 3, 2)
SCALE_IDS = (6, 5, 3, 5, 2, 6, 3, 4, 2, 5, 7, 5, 4, 6, 7, 4, 4, 5, 4, 3)
SCALES = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6)
ARCH_TEXT = ",".join(map(str, OPS)) + "|" + ",".join(map(str, SCALE_IDS))
OP_NAMES = ("shuffle3x3", "shuffle5x5", "shuffle7x7", "xception")
# The release's nn.Sequential index -> spos_tf primitive, written from its blocks.py.
SHUFFLE_MAIN = {0: "conv1", 1: "bn1", 3: "dw", 4: "bn2", 5: "conv2", 6: "bn3"}
XCEPTION_MAIN = {0: "dw1", 1: "bn1", 2: "conv1", 3: "bn2", 5: "dw2", 6: "bn3", 7: "conv2"}
XCEPTION_MAIN.update({8: "bn4", 10: "dw3", 11: "bn5", 12: "conv3", 13: "bn6"})
PROJ = {0: "proj_dw", 1: "proj_bn1", 2: "proj_conv", 3: "proj_bn2"}
BN = {"running_mean": "moving_mean", "running_var": "moving_variance"}
BN.update({"weight": "gamma", "bias": "beta"})


def series_state_dict(ops=OPS, scale_ids=SCALE_IDS, seed=0, prefix="module."):
    """``{name: array}`` named and shaped as ShuffleNet-Series' ``ShuffleNetV2_OneShot(
    architecture=ops, channels_scales=...)`` state_dict, random values."""
    rng = np.random.default_rng(seed)
    sd = {}

    def conv(name, cout, cin, k, groups=1):
        fan_in = cin // groups * k * k
        shape = (cout, cin // groups, k, k)
        sd[prefix + name + ".weight"] = (rng.standard_normal(shape) * (2 / fan_in) ** 0.5).astype(
            np.float32
        )

    def bn(name, c):
        sd[prefix + name + ".weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        sd[prefix + name + ".bias"] = (rng.standard_normal(c) * 0.1).astype(np.float32)
        sd[prefix + name + ".running_mean"] = (rng.standard_normal(c) * 0.1).astype(np.float32)
        sd[prefix + name + ".running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        sd[prefix + name + ".num_batches_tracked"] = np.array(300000, np.int64)

    conv("first_conv.0", 16, 3, 3)
    bn("first_conv.1", 16)
    input_channel, block = 16, 0
    for repeats, output_channel in zip((4, 4, 8, 4), (64, 160, 320, 640)):
        for i in range(repeats):
            inp = input_channel if i == 0 else input_channel // 2
            outputs = output_channel - inp
            mid = int(output_channel // 2 * SCALES[scale_ids[block]])
            m = f"features.{block}."
            add_block(conv, bn, m, ops[block], inp, outputs, mid, proj=i == 0)
            input_channel, block = output_channel, block + 1
    conv("conv_last.0", 1024, 640, 1)
    bn("conv_last.1", 1024)
    sd[prefix + "classifier.0.weight"] = (rng.standard_normal((NUM_CLASSES, 1024)) / 32.0).astype(
        np.float32
    )
    return sd


def hand_built(sd, ops=OPS, prefix="module."):
    """A spos_tf stand-alone network of ``ops`` and SCALE_IDS in the block + channel space, its
    every variable filled from ``sd`` by this module's table (transposes written out here)."""
    space = spaces.get(
        "shufflenet_oneshot_blocks_channels",
        image_size=224,
        num_classes=NUM_CLASSES,
        padding="reference",
    )
    model = spos_tf.build_standalone(space, space.parse(ARCH_TEXT))
    filled = set()
    for name, value in sd.items():
        parts = name[len(prefix) :].split(".")
        if parts[-1] == "num_batches_tracked":
            continue
        if parts[0] == "features":
            block, branch, index = int(parts[1]), parts[2], int(parts[3])
            holder = model.get_layer(f"block{block:02d}_{OP_NAMES[ops[block]]}")
            table = (
                PROJ
                if branch == "branch_proj"
                else XCEPTION_MAIN
                if ops[block] == 3
                else (SHUFFLE_MAIN)
            )
            prim = table[index]
        else:
            holder = model.get_layer("stem" if parts[0] == "first_conv" else "head")
            prim = {
                ("first_conv", "0"): "stem_conv",
                ("first_conv", "1"): "stem_bn",
                ("conv_last", "0"): "head_conv",
                ("conv_last", "1"): "head_bn",
                ("classifier", "0"): "classifier",
            }[parts[0], parts[1]]
        layer = holder.prims[prim]
        if "bn" in prim:
            var = getattr(layer, BN[parts[-1]])
        elif prim == "classifier":
            var, value = layer.kernel, value.T
        elif hasattr(layer, "depthwise_kernel"):
            var, value = layer.depthwise_kernel, value.transpose(2, 3, 0, 1)
        else:
            var, value = layer.kernel, value.transpose(2, 3, 1, 0)
        var.assign(value)
        filled.add(id(var))
    trainable_and_stats = [v for v in model.weights if "bn_momentum" not in v.name]
    assert filled == {id(v) for v in trainable_and_stats}  # every variable came from sd
    return model


@pytest.fixture(scope="module")
def series_import(tmp_path_factory):
    folder = tmp_path_factory.mktemp("series")
    sd = series_state_dict()
    np.savez(folder / "oneshot_328m.npz", **sd)
    record = reference_import.run(
        ImportConfig(
            checkpoint=str(folder / "oneshot_328m.npz"),
            kind="standalone",
            workdir=str(folder / "run"),
        )
    )
    return folder, sd, record


def test_block_channel_network_imports_with_arch_and_scales_read_off_the_shapes(series_import):
    folder, sd, record = series_import
    assert record["arch"] == ARCH_TEXT
    assert record["space"] == "shufflenet_oneshot_blocks_channels"
    assert record["tensors"] == sum(1 for k in sd if not k.endswith("num_batches_tracked"))
    space, model, config = run_dir.restore_model(str(folder / "run"))  # what export does
    assert config["arch"] == ARCH_TEXT and config["space"] == record["space"]
    assert config["data"]["preprocessing"] == "reference"
    assert config["data"]["eval_resize"] == "reference"  # the release's OpencvResize + crop
    # The per-block mid widths are the release's int(outp // 2 * scale).
    layout = space.block_layout()
    for block, choice in enumerate(space.decode(space.parse(ARCH_TEXT))):
        assert choice["channel"] == SCALES[SCALE_IDS[block]]
        unit = model.get_layer(f"block{block:02d}_{OP_NAMES[OPS[block]]}")
        first = unit.prims["conv1"].kernel
        assert first.shape[-1] == int(layout[block][1] // 2 * SCALES[SCALE_IDS[block]])
    with open(folder / "run" / "import_reference.json") as f:
        assert json.load(f)["arch"] == ARCH_TEXT


def test_imported_logits_equal_a_hand_built_network_with_the_same_weights(series_import):
    folder, sd, _ = series_import
    _, imported, _ = run_dir.restore_model(str(folder / "run"))
    reference = hand_built(sd)
    x = tf.constant(np.random.default_rng(1).uniform(0, 255, (2, 224, 224, 3)), tf.float32)
    want = reference(x, training=False).numpy()
    got = imported(x, training=False).numpy()
    assert np.all(np.isfinite(want)) and np.max(np.abs(want)) > 1e-2
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.max(np.abs(want)))
    # The comparison sees the weights: the classifier rows reversed move the logits.
    other = dict(sd)
    for key in [k for k in sd if k.startswith("module.classifier")]:
        other[key] = sd[key][::-1].copy()
    moved = hand_built(other)(x, training=False).numpy()
    assert np.max(np.abs(moved - want)) > 1e-3


def test_arch_flag_is_checked_against_the_tensors(series_import, tmp_path):
    folder, _, _ = series_import
    checkpoint = str(folder / "oneshot_328m.npz")
    wrong = list(SCALE_IDS)
    wrong[5] = 4
    arch = ",".join(map(str, OPS)) + "|" + ",".join(map(str, wrong))
    with pytest.raises(ReferenceImportError, match=r"in blocks \[5\]"):
        reference_import.run(
            ImportConfig(checkpoint, kind="standalone", workdir=str(tmp_path / "a"), arch=arch)
        )
    # Blocks alone mean every scale 1.0: refused where the tensors' scales differ.
    not_one = [b for b, i in enumerate(SCALE_IDS) if SCALES[i] != 1.0]
    with pytest.raises(
        ReferenceImportError, match=rf"in blocks \[{', '.join(map(str, not_one))}\]"
    ):
        reference_import.run(
            ImportConfig(
                checkpoint,
                kind="standalone",
                workdir=str(tmp_path / "b"),
                arch=",".join(map(str, OPS)),
            )
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_bad_block_channel_checkpoint_names_every_problem_and_writes_nothing(tmp_path):
    sd = series_state_dict(prefix="")
    # block 0: a mid width (33) of no scale; block 7: no readable op; one tensor mis-shaped and
    # one extra elsewhere.
    sd["features.0.branch_main.0.weight"] = np.zeros((33, 16, 1, 1), np.float32)
    del sd["features.7.branch_main.3.weight"]
    sd["conv_last.0.weight"] = np.zeros((1024, 320, 1, 1), np.float32)
    sd["features.2.branch_main.20.weight"] = np.zeros((4, 4, 1, 1), np.float32)
    np.savez(tmp_path / "bad.npz", **sd)
    with pytest.raises(ReferenceImportError) as info:
        reference_import.run(
            ImportConfig(str(tmp_path / "bad.npz"), kind="standalone", workdir=str(tmp_path / "r"))
        )
    problems = info.value.problems
    text = "\n".join(problems)
    assert any(p.startswith("block 0 (shuffle3x3): mid width 33") for p in problems), text
    assert any(p.startswith("block 7: op not readable") for p in problems), text
    assert any(p.startswith("mis-shaped tensor conv_last.0.weight") for p in problems), text
    assert any(p.startswith("extra tensor features.2.branch_main.20.weight") for p in problems)
    assert "pass --arch" in str(info.value) and "nothing was written" in str(info.value)
    assert not (tmp_path / "r").exists()


def test_all_scales_one_stays_in_the_block_space(tmp_path):
    """A SinglePathOneShot Evaluation network (every scale 1.0) imports as before."""
    sd = series_state_dict(scale_ids=(4,) * 20, prefix="")
    np.savez(tmp_path / "eval.npz", **sd)
    record = reference_import.run(
        ImportConfig(str(tmp_path / "eval.npz"), kind="standalone", workdir=str(tmp_path / "r"))
    )
    assert record["space"] == "shufflenet_oneshot" and record["arch"] == ",".join(map(str, OPS))
    assert os.path.isfile(tmp_path / "r" / "config.json")
