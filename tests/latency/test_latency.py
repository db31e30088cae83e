"""Latency lookup tables: build (resumable), predict, validate against measured whole networks; latency
as a search constraint and a sampling range."""

import csv
import io
import json
import os

import numpy as np
import pytest

from spos_tf import costs
from spos_tf.latency import measure as latency
from spos_tf.latency import table as latency_table
from spos_tf.search import run as search_run
from spos_tf import spaces
from spos_tf.models.sampling import ArchSampler, latency_range

from _apps import run_app
from _latency import synthetic_lut, tiny_fbnet
from _supernet_workdir import tiny_space, trained_supernet_dir  # noqa: E402
from _search import read_history, tiny_config  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:currentThread|getName:DeprecationWarning")


class _CountingTimer(latency.Timer):
    """Returns a fixed fake latency per model and counts calls; fails after ``fail_after``."""

    def __init__(self, fail_after=None, **kw):
        super().__init__(**kw)
        self.calls, self.fail_after = 0, fail_after

    def time_ms(self, model):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        return 1.0


def test_build_is_resumable_and_refuses_other_settings(tmp_path):
    space = tiny_fbnet()
    out = str(tmp_path / "lut.json")
    configs = latency.configurations(space)
    timed = [k for k, (kind, cfg) in configs.items() if kind != "block" or not latency._free(*cfg)]
    assert len(configs) == 7 * 3 + 2 and len(timed) == len(configs) - 1  # stage-1 skip is free
    with pytest.raises(KeyboardInterrupt):
        latency.build(space, out, _CountingTimer(fail_after=5), {}, fit_archs=2)
    partial = json.load(open(out))
    assert partial["constant_ms"] is None and len(partial["entries"]) >= 5
    with pytest.raises(ValueError, match="unfinished"):
        latency.LatencyTable(out)
    timer = _CountingTimer()
    record = latency.build(space, out, timer, {}, fit_archs=2)
    done_before = sum(1 for k in partial["entries"] if k in timed)
    assert timer.calls == len(timed) - done_before + 2  # the rest, then 2 whole networks
    assert set(record["entries"]) == set(configs)
    with pytest.raises(ValueError, match="other settings"):
        latency.build(space, out, _CountingTimer(threads=2), {}, fit_archs=2)


class _ParamTimer(latency.Timer):
    """A deterministic stand-in for the clock: a model "takes" 1 ms per 1000 parameters (times
    ``scale``). Parameters add up over the table's pieces exactly, as latency does roughly."""

    scale = 1.0

    def time_ms(self, model):
        return model.count_params() * 1e-3 * self.scale


def test_lut_is_additive_and_validate_reports_mape_and_correlations(tmp_path, monkeypatch):
    """The table's arithmetic without a clock: timed by parameter count, the entries of a tiny
    space add up to whole networks exactly (the fitted constant is 0), and validating on a machine
    25% "slower" than the table's gives a MAPE of exactly 20% with perfect correlations."""
    space = tiny_fbnet()
    out = str(tmp_path / "lut.json")
    overrides = {"image_size": 32, "num_classes": 10, "width": 0.5, "repeats": (1,) * 7}
    record = latency.build(
        space,
        out,
        _ParamTimer(runs=1, warmup=0),
        {**overrides, "ops": space.ops},
        fit_archs=3,
        stream=io.StringIO(),
    )
    assert record["fit"]["gaps_ms"] == [0.0] * 3 and record["constant_ms"] == 0.0
    table = latency.LatencyTable(out)
    assert table.space == space
    # prediction = constant + sum of the architecture's entries
    arch = space.sample(np.random.default_rng(0))
    expected = table.constant_ms + sum(
        table.entries[k]["ms"] for k in latency_table.arch_keys(space, arch)
    )
    assert table.predict_ms(arch) == pytest.approx(expected, abs=1e-9)

    monkeypatch.setattr(latency, "Timer", type("Slower", (_ParamTimer,), {"scale": 1.25}))
    report = latency.validate(
        table, num_archs=6, seed=1, plot=str(tmp_path / "v.png"), stream=io.StringIO()
    )
    rows = report["rows"]
    assert len(rows) == 6 and len({r["arch"] for r in rows}) == 6
    for r in rows:
        assert r["predicted_ms"] == pytest.approx(table.predict_ms(space.parse(r["arch"])))
        assert r["measured_ms"] == pytest.approx(1.25 * r["predicted_ms"], rel=1e-6)
    assert report["mape_percent"] == pytest.approx(20.0, abs=1e-3)  # |p - 1.25 p| / 1.25 p
    assert report["within_10_percent"] == 0.0
    assert report["pearson_r"] == 1.0 and report["kendall_tau"] == 1.0
    assert os.path.getsize(tmp_path / "v.png") > 1000


def test_table_must_cover_the_space(tmp_path):
    lut = synthetic_lut(tiny_fbnet(), tmp_path / "lut.json")
    with pytest.raises(ValueError, match="lacks"):
        latency.LatencyTable(lut, tiny_fbnet().replace(image_size=64))


def test_costs_app_prints_latency(tmp_path):
    flags = [
        "--space=fbnet",
        "--image_size=32",
        "--num_classes=10",
        "--width=0.5",
        "--repeats=1,1,1,1,1,1,1",
    ]
    space = spaces.get("fbnet", image_size=32, num_classes=10, width=0.5, repeats=(1,) * 7)
    lut = synthetic_lut(space, tmp_path / "lut.json")
    arch = space.sample(np.random.default_rng(0))

    def app(*extra):
        return run_app("costs", *flags, f"--arch={arch}", *extra, check=False, timeout=300)

    proc = app(f"--latency_table={lut}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["latency_ms"] == pytest.approx(
        latency.LatencyTable(lut, space).predict_ms(arch), abs=1e-3
    )
    assert out["macs"] == costs.macs(space, arch)
    # a table of another space (the 3-op tiny one) is refused, naming what it lacks
    other = synthetic_lut(tiny_fbnet(), tmp_path / "tiny.json")
    proc = app(f"--latency_table={other}")
    assert proc.returncode != 0 and "lacks" in proc.stderr


def test_sampling_within_a_latency_range(tmp_path):
    space = tiny_fbnet()
    lut = synthetic_lut(space, tmp_path / "lut.json")
    table = latency.LatencyTable(lut, space)
    lat = sorted(table.predict_ms(space.sample(np.random.default_rng(i))) for i in range(200))
    low, high = lat[50], lat[150]
    sampler = ArchSampler(space, 0, latency_range(space, lut, low, high))
    for step in range(50):
        assert low <= table.predict_ms(sampler(step)) <= high


@pytest.fixture(scope="module")
def supernet_dir(tmp_path_factory):
    return trained_supernet_dir(tmp_path_factory)


def test_search_never_hands_out_a_candidate_over_the_latency_limit(supernet_dir, tmp_path):
    space = tiny_space()
    lut = synthetic_lut(space, tmp_path / "lut.json", seed=3)
    table = latency.LatencyTable(lut, space)
    lat = sorted(table.predict_ms(space.sample(np.random.default_rng(i))) for i in range(300))
    limit = lat[len(lat) // 3]  # about a third of the space is legal
    workdir = tmp_path / "search"
    config = tiny_config(
        supernet_dir,
        workdir,
        f"--latency_table={lut}",
        f"--max_latency_ms={limit}",
        "--algorithm=evolution",
        "--max_trials=16",
    )
    summary = search_run.run(config)
    rows = read_history(workdir)
    assert len(rows) == 16
    for row in rows:
        predicted = table.predict_ms(space.parse(row["arch"]))
        assert predicted <= limit
        assert float(row["latency_ms"]) == pytest.approx(predicted, abs=1e-3)
    best = summary["best"]
    assert best["costs"]["latency_ms"] <= limit
    assert best["constraints"]["latency_ms"] == pytest.approx(limit)
    with open(workdir / "history.csv") as f:
        assert "latency_ms" in next(csv.reader(f))


def test_latency_limit_needs_a_table(supernet_dir, tmp_path):
    config = tiny_config(supernet_dir, tmp_path / "s", "--max_latency_ms=3")
    with pytest.raises(ValueError, match="needs --latency_table"):
        config.validate()


@pytest.mark.parametrize("statistic, expected_ms", [("median", 3.0), ("min", 1.0)])
def test_timer_reports_the_chosen_statistic_of_its_runs(monkeypatch, statistic, expected_ms):
    """Runs of 5, 1 and 3 ms on a fake clock: the median is 3 ms, the minimum (the estimate of
    the unloaded latency on a shared machine) 1 ms."""
    timer = latency.Timer(runs=3, warmup=1, statistic=statistic)
    clock = iter([0.0, 0.005, 1.0, 1.001, 2.0, 2.003])
    monkeypatch.setattr(latency.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(timer, "_tflite", lambda model: lambda: None)
    assert timer.time_ms(model=None) == pytest.approx(expected_ms)
    assert timer.settings()["statistic"] == statistic
    with pytest.raises(ValueError, match="--statistic must be one of"):
        latency.Timer(statistic="mean")
