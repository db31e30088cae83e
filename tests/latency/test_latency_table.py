"""spos_tf.latency.table: keys of a space, loading a table, and predictions by hand."""

import json

import numpy as np
import pytest

from spos_tf.latency import table as latency_table
from spos_tf.spaces.space import mid_channels

from _latency import tiny_fbnet


def write_table(space, path, constant_ms=0.5, drop=(), seed=0):
    rng = np.random.default_rng(seed)
    entries = {
        k: {"ms": float(rng.uniform(0.1, 2.0))}
        for k in latency_table.configurations(space)
        if k not in drop
    }
    record = {
        "format": latency_table.FORMAT,
        "entries": entries,
        "constant_ms": constant_ms,
        "header": {
            "space": space.name,
            "space_overrides": {
                "image_size": 32,
                "num_classes": 10,
                "width": 0.5,
                "repeats": [1] * 7,
                "ops": ["fb_k3_e1_g2", "fb_k5_e6", "fb_skip"],
            },
            "backend": "tflite",
            "batch": 1,
            "threads": 1,
            "dtype": "float32",
            "device": "synthetic",
            "command": "python -m spos_tf.latency build",
        },
    }
    path.write_text(json.dumps(record))
    return str(path), entries


def test_keys_of_an_architecture_follow_its_blocks():
    space = tiny_fbnet()
    arch = space.sample(np.random.default_rng(1))
    keys = latency_table.arch_keys(space, arch)
    assert keys[0] == "stem" and keys[-1] == "head" and len(keys) == space.num_blocks + 2
    for key, choice, (cin, cout, stride, hw) in zip(
        keys[1:-1], space.decode(arch), space.block_layout()
    ):
        mid = mid_channels(space, cout, choice["channel"])
        assert key == f"{choice['op']}|{cin}|{cout}|{mid}|{stride}|{hw}"
    assert set(keys) <= set(latency_table.configurations(space))


def test_prediction_is_the_constant_plus_the_entries_of_the_path(tmp_path):
    space = tiny_fbnet()
    path, entries = write_table(space, tmp_path / "lut.json", constant_ms=0.25)
    table = latency_table.LatencyTable(path)  # the space comes from the header
    assert table.space == space
    for seed in range(5):
        arch = space.sample(np.random.default_rng(seed))
        by_hand = (
            0.25
            + entries["stem"]["ms"]
            + entries["head"]["ms"]
            + sum(
                entries[
                    f"{c['op']}|{cin}|{cout}|{mid_channels(space, cout, c['channel'])}|{s}|{hw}"
                ]["ms"]
                for c, (cin, cout, s, hw) in zip(space.decode(arch), space.block_layout())
            )
        )
        assert table.predict_ms(arch) == pytest.approx(by_hand, abs=1e-9)


def test_a_table_lacking_configurations_names_the_fix(tmp_path):
    space = tiny_fbnet()
    some_block = next(k for k in latency_table.configurations(space) if k not in ("stem", "head"))
    path, _ = write_table(space, tmp_path / "lut.json", drop=(some_block,))
    with pytest.raises(ValueError, match="lacks 1 configuration"):
        latency_table.LatencyTable(path)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not JSON"),
        ('{"format": 99}', "is not a spos_tf latency table"),
    ],
)
def test_a_file_that_is_not_a_table_is_refused(tmp_path, content, message):
    path = tmp_path / "lut.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        latency_table.LatencyTable(str(path))


def test_an_unfinished_table_points_to_its_build_command(tmp_path):
    path, _ = write_table(tiny_fbnet(), tmp_path / "lut.json", constant_ms=None)
    with pytest.raises(ValueError, match="unfinished.*python -m spos_tf.latency build"):
        latency_table.LatencyTable(path)


def test_a_missing_table_names_the_build_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="build it with"):
        latency_table.LatencyTable(str(tmp_path / "none.json"))
