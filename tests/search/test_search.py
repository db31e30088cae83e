"""The search app (python -m spos_tf.search): flags derived from SearchConfig, and the binary end to
end on a trained tiny supernet."""

import json

import numpy as np
import pytest
from absl import flags

from spos_tf import costs
from spos_tf.search import __main__ as search
from spos_tf.search import config as search_config
from spos_tf.search import results as search_results
from spos_tf.spaces.space import arch_from_any

from _apps import run_app
from _files import snapshot
from _search import MAX_MACS, REPO, TINY_FLAGS, TRIALS, read_history
from _supernet_workdir import tiny_space, trained_supernet_dir

pytestmark = pytest.mark.filterwarnings("ignore:currentThread|getName:DeprecationWarning")


@pytest.fixture(scope="module")
def supernet_dir(tmp_path_factory):
    return trained_supernet_dir(tmp_path_factory)


def _app(*args, timeout=300):
    return run_app("search", *args, check=False, timeout=timeout)


@pytest.mark.slow
def test_app_writes_history_best_and_plot_and_refuses_an_infeasible_constraint(
    supernet_dir, tmp_path
):
    workdir = tmp_path / "search"
    proc = _app(
        f"--flagfile={TINY_FLAGS}", f"--supernet_dir={supernet_dir}", f"--workdir={workdir}"
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "best" in proc.stdout

    space, table = tiny_space(), costs.CostTable(tiny_space())
    rows = read_history(workdir)
    assert list(rows[0]) == search_results.history_columns(space)
    for algorithm in search_config.ALGORITHMS:
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

    best = json.loads((workdir / search_results.BEST_FILE).read_text())
    arch = arch_from_any(space, str(workdir / search_results.BEST_FILE))  # train --arch= reads it
    assert str(arch) == best["arch"] and best["space"] == space.name
    assert best["costs"]["macs"] == table.macs(arch) <= MAX_MACS
    assert best["accuracy"] == max(accuracies)
    assert best["evaluated"] == 2 * TRIALS

    png = (workdir / search_results.PLOT_FILE).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    import matplotlib.image

    assert matplotlib.image.imread(str(workdir / search_results.PLOT_FILE)).ndim == 3

    # An infeasible constraint: a clear error (exit 2) and nothing written or overwritten.
    # (test_search_run.py covers a fresh workdir in-process.)
    before = snapshot(workdir)
    proc = _app(
        f"--flagfile={TINY_FLAGS}",
        f"--supernet_dir={supernet_dir}",
        f"--workdir={workdir}",
        "--max_macs=1e6",
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "infeasible" in proc.stderr and "macs <= 1000000" in proc.stderr, proc.stderr
    assert snapshot(workdir) == before


def test_search_flags_calibrate_like_the_reference():
    """flags/search.cfg recalibrates BN as the release does: 25,600 images (200 x 128), reset +
    EMA, augmented, from a shuffled stream that carries on across candidates, each candidate
    scored on all held-out images (the paper's); the flags give back the exact, fixed,
    un-augmented recalibration of the library's defaults."""
    fv = flags.FlagValues()
    search.define_flags(fv)
    fv(
        [
            "search",
            f"--flagfile={REPO / 'flags' / 'search.cfg'}",
            "--supernet_dir=/s",
            "--workdir=/w",
        ]
    )
    config = search.config_from_flags(fv).validate()
    assert (config.num_calib_batches, config.calib_batch_size) == (200, 128)
    assert (config.calib_mode, config.calib_stream, config.calib_augment) == ("ema", "fresh", True)
    assert config.holdout_images_per_candidate == 0
    fv(["search", "--calib_mode=exact", "--calib_stream=fixed", "--nocalib_augment"])
    config = search.config_from_flags(fv).validate()
    assert (config.calib_mode, config.calib_stream, config.calib_augment) == (
        "exact",
        "fixed",
        False,
    )
    defaults = search_config.SearchConfig(supernet_dir="/s", workdir="/w")
    assert (defaults.calib_mode, defaults.calib_stream, defaults.calib_augment) == (
        "exact",
        "fixed",
        False,
    )
    with pytest.raises(ValueError, match="--calib_mode"):
        search_config.SearchConfig(supernet_dir="/s", workdir="/w", calib_mode="running").validate()


def test_every_flag_is_a_setting_with_the_papers_defaults():
    """One flag per SearchConfig field; parsing no flag gives the paper's search (
    population 50, top-10 parents, 25 crossover + 25 mutation children with probability 0.1,
    20 generations x 50 = 1000 candidates); enum flags refuse other values at parse time."""
    fv = flags.FlagValues()
    search.define_flags(fv)
    fv(["search", "--supernet_dir=/s", "--workdir=/w", "--seeds=0,2"])
    assert set(fv) == {f for f in search_config.SearchConfig.__dataclass_fields__}
    config = search.config_from_flags(fv).validate()
    assert (
        config.population_size,
        config.num_parents,
        config.num_crossover,
        config.num_mutation,
        config.mutation_prob,
        config.max_trials,
    ) == (50, 10, 25, 25, 0.1, 1000)
    assert config.seeds == (0, 2) and config.algorithm == "evolution"
    assert (config.calib_stream, config.holdout_images_per_candidate) == ("fixed", 0)
    for bad in (
        "--algorithm=grid",
        "--bitops_convention=theirs",
        "--calib_mode=running",
        "--calib_stream=shuffled",
    ):
        with pytest.raises(flags.IllegalFlagValueError):
            fv(["search", bad])
