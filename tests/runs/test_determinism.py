"""Bit-reproducible training graphs (spos_tf.runs.determinism, ``spos_tf.train --deterministic``):
the Grappler switch is set inside the block and restored after, the training app trains inside
it, and two processes training the NAS-Bench-201 proxy supernet with it end with the same
weights (with Grappler on they part within a few steps on this model: benchmarks/RESULTS.md)."""

import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

import spos_tf  # noqa: F401
from spos_tf.runs.determinism import reproducible_graphs
from spos_tf.train import loop as train_loop

from _train_checks import parse_flagfile

REPO = Path(__file__).resolve().parents[2]


def _grappler_off():
    return bool(tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer"))


def test_the_switch_is_on_inside_the_block_and_restored_after():
    assert not _grappler_off()
    with reproducible_graphs():
        assert _grappler_off()
        with reproducible_graphs(False):
            assert _grappler_off()  # False changes nothing
    assert not _grappler_off()
    with pytest.raises(RuntimeError):
        with reproducible_graphs():
            raise RuntimeError("boom")
    assert not _grappler_off()  # restored on an error too


@pytest.mark.parametrize("deterministic", [True, False])
def test_the_training_app_trains_inside_the_block(tmp_path, data_dir, monkeypatch, deterministic):
    seen = []

    class Recorder:  # stands in for the run: records the switch while it would train
        def __init__(self, *args):
            pass

        def train(self):
            seen.append(_grappler_off())
            return {}

    monkeypatch.setattr(train_loop, "_Run", Recorder)
    config = parse_flagfile(
        "tiny_nb201_supernet.cfg", f"--workdir={tmp_path / 'w'}", f"--data_dir={data_dir}"
    )
    train_loop.run(dataclasses.replace(config, deterministic=deterministic), stream=io.StringIO())
    assert seen == [deterministic] and not _grappler_off()


@pytest.mark.slow
def test_two_processes_train_the_proxy_supernet_to_the_same_weights():
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "determinism.py"),
            "--steps=4",
            "--repeats=2",
            "--settings=grappler=off",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["setting"] == "grappler=off" and len(set(row["sha256"])) == 1, row
