"""The search app (spos_tf.search / search_lib) end to end on a trained tiny supernet."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import flags

from spos_tf import costs, run_dir, search, search_lib
from spos_tf.evaluate import PathEvaluator
from spos_tf.space import arch_from_any

from _distributed import app_env
from _files import snapshot
from _supernet_workdir import tiny_space, trained_supernet_dir

REPO = Path(__file__).resolve().parents[1]
TINY_FLAGS = REPO / "flags" / "tiny_search.cfg"
MAX_MACS = 2.5e6  # as in flags/tiny_search.cfg
TRIALS, POPULATION = 24, 8
pytestmark = pytest.mark.filterwarnings("ignore:currentThread|getName:DeprecationWarning")


@pytest.fixture(scope="module")
def supernet_dir(tmp_path_factory):
    return trained_supernet_dir(tmp_path_factory)


def tiny_config(supernet_dir, workdir, *extra):
    """The SearchConfig of flags/tiny_search.cfg (parsed by the app's own flag definitions)."""
    fv = flags.FlagValues()
    search.define_flags(fv)
    fv(["search", f"--flagfile={TINY_FLAGS}", f"--supernet_dir={supernet_dir}",
        f"--workdir={workdir}", *extra])
    return search.config_from_flags(fv)


def read_history(workdir):
    with open(os.path.join(workdir, search_lib.HISTORY_FILE)) as f:
        return list(csv.DictReader(f))


def _app(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "spos_tf.search", *args], cwd=REPO, env=app_env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_app_writes_history_best_and_plot_and_refuses_an_infeasible_constraint(supernet_dir,
                                                                               tmp_path):
    workdir = tmp_path / "search"
    proc = _app(f"--flagfile={TINY_FLAGS}", f"--supernet_dir={supernet_dir}",
                f"--workdir={workdir}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "best" in proc.stdout

    space, table = tiny_space(), costs.CostTable(tiny_space())
    rows = read_history(workdir)
    assert list(rows[0]) == search_lib.history_columns(space)
    for algorithm in search_lib.ALGORITHMS:
        mine = [r for r in rows if r["algorithm"] == algorithm]
        assert len(mine) == TRIALS, algorithm
        assert len({r["arch"] for r in mine}) == TRIALS, f"{algorithm} evaluated an arch twice"
    for r in rows:
        arch = space.parse(r["arch"])
        assert int(r["macs"]) == table.macs(arch) <= MAX_MACS
        assert int(r["params"]) == table.params(arch)
        assert 0.0 <= float(r["accuracy"]) <= 1.0 and float(r["seconds"]) > 0
    generations = [int(r["generation"]) for r in rows if r["algorithm"] == "evolution"]
    assert generations == sorted(generations) and set(generations) == {0, 1, 2}
    accuracies = [float(r["accuracy"]) for r in rows]
    assert np.std(accuracies) > 0  # candidates are told apart

    best = json.loads((workdir / search_lib.BEST_FILE).read_text())
    arch = arch_from_any(space, str(workdir / search_lib.BEST_FILE))  # what train --arch= reads
    assert str(arch) == best["arch"] and best["space"] == space.name
    assert best["costs"]["macs"] == table.macs(arch) <= MAX_MACS
    assert best["accuracy"] == max(accuracies)
    assert best["evaluated"] == 2 * TRIALS

    png = (workdir / search_lib.PLOT_FILE).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    import matplotlib.image

    assert matplotlib.image.imread(str(workdir / search_lib.PLOT_FILE)).ndim == 3

    # An infeasible constraint: a clear error (exit 2) and nothing written or overwritten.
    # (test_checks_fail_before_anything_is_written covers a fresh workdir in-process.)
    before = snapshot(workdir)
    proc = _app(f"--flagfile={TINY_FLAGS}", f"--supernet_dir={supernet_dir}",
                f"--workdir={workdir}", "--max_macs=1e6", timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "infeasible" in proc.stderr and "macs <= 1000000" in proc.stderr, proc.stderr
    assert snapshot(workdir) == before


@pytest.mark.slow
def test_killed_search_resumes_without_evaluating_again(supernet_dir, tmp_path, monkeypatch):
    workdir = tmp_path / "search"
    config = tiny_config(supernet_dir, workdir, "--algorithm=evolution")
    # Each run restores the supernet as a fresh process would; reuse the first restored one
    # (and its traces) to keep the test short.
    cached = {}
    make = search_lib.make_evaluator
    monkeypatch.setattr(search_lib, "make_evaluator",
                        lambda c: cached.setdefault("evaluator", make(c)))
    original = PathEvaluator.__call__
    first = []

    def dies_during_the_twelfth(self, arch):
        if len(first) == 11:
            raise KeyboardInterrupt  # like a kill: KerasTuner catches Exception only
        first.append(arch)
        return original(self, arch)

    monkeypatch.setattr(PathEvaluator, "__call__", dies_during_the_twelfth)
    with pytest.raises(KeyboardInterrupt):
        search_lib.run(config)
    rows_before = read_history(workdir)
    assert len(rows_before) == 11

    second = []

    def counting(self, arch):
        second.append(arch)
        return original(self, arch)

    monkeypatch.setattr(PathEvaluator, "__call__", counting)
    summary = search_lib.run(config)
    assert summary["evaluated"] == len(second) == TRIALS - 11
    assert not set(first) & set(second), "a completed candidate was evaluated again"
    rows = read_history(workdir)
    assert len(rows) == len({r["arch"] for r in rows}) == TRIALS
    assert rows[:11] == rows_before  # earlier results kept as they were
    assert summary["best"]["accuracy"] == max(float(r["accuracy"]) for r in rows)

    # A finished search rerun with the same flags evaluates nothing.
    def never(self, arch):
        raise AssertionError(f"{arch} evaluated again")

    monkeypatch.setattr(PathEvaluator, "__call__", never)
    assert search_lib.run(config)["evaluated"] == 0


@pytest.mark.slow
def test_checks_fail_before_anything_is_written(supernet_dir, tmp_path):
    fresh = tmp_path / "fresh"
    with pytest.raises(search_lib.InfeasibleConstraintError, match="infeasible"):
        search_lib.run(tiny_config(supernet_dir, fresh, "--max_macs=1e6"))
    with pytest.raises(ValueError, match="needs a quantized space"):
        search_lib.run(tiny_config(supernet_dir, fresh, "--max_bitops=1e9"))
    with pytest.raises(ValueError, match="must not exceed --population_size"):
        search_lib.run(tiny_config(supernet_dir, fresh, "--num_mutation=9"))
    with pytest.raises(run_dir.RunDirError, match="supernet_dir.*does not exist"):
        search_lib.run(tiny_config(tmp_path / "nothing", fresh))
    with pytest.raises(ValueError, match="--wait_for_workers=2 applies to a distributed search only"):
        search_lib.run(tiny_config(supernet_dir, fresh, "--wait_for_workers=2"))
    assert not fresh.exists()

    # A workdir holding a search of other settings is refused, not overwritten.
    existing = tmp_path / "existing"
    existing.mkdir()
    old = tiny_config(supernet_dir, existing, "--seed=5").to_dict()
    (existing / search_lib.CONFIG_FILE).write_text(json.dumps(old))
    before = snapshot(existing)
    with pytest.raises(run_dir.RunDirError, match="seed"):
        search_lib.run(tiny_config(supernet_dir, existing))
    assert snapshot(existing) == before


@pytest.mark.slow
def test_constraint_hook_builds_every_cost(supernet_dir):
    space = tiny_space()
    constraint = search_lib.build_constraint(space, {"macs": 2.5e6, "params": 8e4})
    arch = space.parse("0,1,2,3")
    values = space.to_values(arch)
    assert constraint["macs"][0](values) == costs.macs(space, arch)
    assert constraint["params"][0](values) == costs.params(space, arch)
    assert constraint["params"][1] == 8e4
    with pytest.raises(ValueError, match="unknown constraint"):
        search_lib.build_constraint(space, {"latency": 1.0})


def test_search_flags_calibrate_like_the_reference_by_count():
    """flags/search.cfg: 25,600 calibration images (the reference's 200 x 128), exact and
    un-augmented by default; --calib_mode=ema / --calib_augment give the reference's way."""
    fv = flags.FlagValues()
    search.define_flags(fv)
    fv(["search", f"--flagfile={REPO / 'flags' / 'search.cfg'}", "--supernet_dir=/s",
        "--workdir=/w"])
    config = search.config_from_flags(fv).validate()
    assert (config.num_calib_batches, config.calib_batch_size) == (200, 128)
    assert (config.calib_mode, config.calib_augment) == ("exact", False)
    fv(["search", "--calib_mode=ema", "--calib_augment"])
    config = search.config_from_flags(fv).validate()
    assert (config.calib_mode, config.calib_augment) == ("ema", True)
    with pytest.raises(ValueError, match="--calib_mode"):
        search_lib.SearchConfig(supernet_dir="/s", workdir="/w", calib_mode="running").validate()


@pytest.mark.slow
def test_seeds_compare_evolution_and_random_over_seeds(supernet_dir, tmp_path, monkeypatch):
    cached = {}
    make = search_lib.make_evaluator
    monkeypatch.setattr(search_lib, "make_evaluator",
                        lambda c: cached.setdefault("evaluator", make(c)))
    workdir = tmp_path / "seeds"
    config = tiny_config(supernet_dir, workdir, "--seeds=0,1,2", "--max_trials=8")
    summary = search_lib.run(config)
    finals = {}
    every = []
    for seed in (0, 1, 2):
        rows = read_history(workdir / f"seed_{seed}")
        every += rows
        for algorithm in search_lib.ALGORITHMS:
            mine = [float(r["accuracy"]) for r in rows if r["algorithm"] == algorithm]
            assert len(mine) == 8
            finals.setdefault(algorithm, []).append(max(mine))
        # one TensorBoard HParams session per evaluated candidate
        sessions = [p for p in (workdir / f"seed_{seed}" / "hparams").iterdir() if p.is_dir()]
        assert len(sessions) == len(rows) == 16
    assert len({tuple(r["arch"] for r in read_history(workdir / f"seed_{s}"))
                for s in (0, 1, 2)}) == 3  # the seeds searched differently
    comparison = json.loads((workdir / search_lib.SEEDS_FILE).read_text())
    assert comparison == summary["comparison"]
    for algorithm, values in finals.items():
        got = comparison["algorithms"][algorithm]
        assert got["final_best"] == values and got["evaluations"] == 8
        assert got["mean"] == pytest.approx(np.mean(values))
        assert got["std"] == pytest.approx(np.std(values, ddof=1))
    difference = np.mean(finals["evolution"]) - np.mean(finals["random"])
    assert comparison["difference"] == pytest.approx(difference)
    spread = np.std(finals["evolution"], ddof=1) + np.std(finals["random"], ddof=1)
    assert comparison["exceeds_seed_spread"] == bool(abs(difference) > spread)
    best = json.loads((workdir / search_lib.BEST_FILE).read_text())
    assert best["accuracy"] == max(float(r["accuracy"]) for r in every)
    assert best["seeds"] == comparison
    assert (workdir / search_lib.PLOT_FILE).read_bytes()[:4] == b"\x89PNG"
    # rerun: every seed's search is finished, nothing is evaluated again
    assert search_lib.run(config)["evaluated"] == 0


def test_compare_seeds_by_hand():
    def rows(evo, rnd):
        return ([{"algorithm": "evolution", "accuracy": a} for a in evo]
                + [{"algorithm": "random", "accuracy": a} for a in rnd])

    per_seed = {0: rows([0.5, 0.9, 0.7], [0.6, 0.6, 0.8]), 1: rows([0.8, 0.85], [0.7, 0.75, 0.9])}
    out = search_lib.compare_seeds(per_seed)
    # equal evaluations: 2 for evolution (seed 1 has 2), 3 for random
    assert out["algorithms"]["evolution"]["final_best"] == [0.9, 0.85]
    assert out["algorithms"]["random"]["final_best"] == [0.8, 0.9]
    assert out["difference"] == pytest.approx(0.875 - 0.85)
    assert out["exceeds_seed_spread"] is False


def test_bitops_convention_sets_what_the_constraint_counts():
    """--bitops_convention=paper: budget and constraint count the choice blocks only (Table 6)."""
    from spos_tf import spaces

    space = spaces.get("resnet18_mixed_precision", image_size=16, width=0.25,
                       repeats=(1, 1, 1, 1), num_classes=10)
    arch = space.sample(np.random.default_rng(0))
    fixed = costs.table(space).fixed_bitops()
    for convention, extra in (("ours", fixed), ("paper", 0)):
        config = search_lib.SearchConfig(supernet_dir="/s", workdir="/w", bitops_budget="3w3a",
                                         bitops_convention=convention).validate()
        limit = search_lib.resolve_limits(config, space)["bitops"]
        assert limit == costs.uniform_bitops(space, 3, convention="paper") + extra
        constraint = search_lib.build_constraint(space, {"bitops": limit},
                                                 bitops_convention=convention)
        cost, _ = constraint["bitops"]
        assert cost(space.to_values(arch)) == costs.bitops(space, arch, include_fixed=False) + extra
        assert search_lib.arch_costs(space, arch, convention)["bitops"] == cost(
            space.to_values(arch))
    with pytest.raises(ValueError, match="--bitops_convention"):
        search_lib.SearchConfig(supernet_dir="/s", workdir="/w", bitops_convention="x").validate()
