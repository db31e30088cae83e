"""The hardware-aware flag files: the ImageNet ones parse into valid configs; their tiny twins run the
real train -> search path under a latency limit."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from absl import flags

from spos_tf.latency import table as latency
from spos_tf.search import __main__ as search
from spos_tf import spaces
from spos_tf.train import __main__ as train

from _apps import run_app
from _latency import synthetic_lut
from _search import read_history  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FLAGS = REPO / "flags"


@pytest.mark.parametrize(
    "name", ["supernet_fbnet", "supernet_proxyless", "latency_quickstart", "tiny_latency_supernet"]
)
def test_supernet_flag_files_parse(name, tmp_path):
    fv = flags.FlagValues()
    train.define_flags(fv)
    fv(["train", f"--flagfile={FLAGS / name}.cfg", f"--workdir={tmp_path}"])
    config = train.config_from_flags(fv).validate()
    assert config.space in ("fbnet", "proxyless_mobile")
    spaces.get(config.space, **config.space_overrides)


@pytest.mark.parametrize(
    "name", ["search_fbnet", "search_proxyless", "latency_quickstart_search", "tiny_latency_search"]
)
def test_search_flag_files_parse(name, tmp_path):
    fv = flags.FlagValues()
    search.define_flags(fv)
    fv(
        [
            "search",
            f"--flagfile={FLAGS / name}.cfg",
            f"--workdir={tmp_path / 'w'}",
            f"--supernet_dir={tmp_path / 's'}",
        ]
    )
    config = search.config_from_flags(fv)
    if config.latency_table:  # flags/search_fbnet.cfg: this repository's table of this CPU
        config = dataclasses.replace(config, latency_table=str(REPO / config.latency_table))
        table = latency.LatencyTable(config.latency_table)
        fbnet_b = spaces.named_arch(table.space, "fbnet_b")
        assert table.predict_ms(fbnet_b) == pytest.approx(config.max_latency_ms, abs=0.05)
    config.validate()


def test_tiny_twins_train_and_search_under_a_latency_limit(tmp_path, data_dir):
    supernet = tmp_path / "supernet"
    run_app(
        "train",
        f"--flagfile={FLAGS / 'tiny_latency_supernet.cfg'}",
        f"--data_dir={data_dir}",
        f"--workdir={supernet}",
    )
    run_config = json.loads((supernet / "config.json").read_text())
    space = spaces.get(
        run_config["space"],
        **{
            k: tuple(v) if isinstance(v, list) else v
            for k, v in run_config["space_overrides"].items()
        },
    )
    lut = synthetic_lut(space, tmp_path / "lut.json", seed=5)
    table = latency.LatencyTable(lut, space)
    lat = sorted(table.predict_ms(space.sample(np.random.default_rng(i))) for i in range(200))
    limit = lat[100]
    run_app(
        "search",
        f"--flagfile={FLAGS / 'tiny_latency_search.cfg'}",
        f"--supernet_dir={supernet}",
        f"--workdir={tmp_path / 'search'}",
        f"--latency_table={lut}",
        f"--max_latency_ms={limit}",
    )
    rows = read_history(tmp_path / "search")
    assert len(rows) == 8
    assert all(float(r["latency_ms"]) <= limit for r in rows)
    best = json.loads((tmp_path / "search" / "best.json").read_text())
    assert best["costs"]["latency_ms"] <= limit
