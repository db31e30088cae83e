"""The ranking app (spos_tf.rank / rank_lib / rank_stats) on a trained tiny supernet."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import flags
from scipy import stats

from spos_tf import config_flags, costs, rank, rank_lib

from _distributed import app_env
from _files import snapshot
from _supernet_workdir import tiny_space, trained_supernet_dir

REPO = Path(__file__).resolve().parents[1]
TINY_FLAGS = REPO / "flags" / "tiny_rank.cfg"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def supernet_dir(tmp_path_factory):
    return trained_supernet_dir(tmp_path_factory)


def tiny_config(supernet_dir, workdir, data_dir, *extra):
    """The RankConfig of flags/tiny_rank.cfg, parsed by the app's own flags."""
    fv = config_flags.parse_flagfile(
        rank.define_flags,
        str(TINY_FLAGS),
        [
            f"--supernet_dir={supernet_dir}",
            f"--workdir={workdir}",
            f"--data_dir={data_dir}",
            *extra,
        ],
    )
    return config_flags.from_flags(rank_lib.RankConfig, fv)


@pytest.fixture(scope="module")
def ranked(supernet_dir, tmp_path_factory):
    """The app run once end to end (subprocess, as a user runs it): its workdir."""
    workdir = tmp_path_factory.mktemp("rank") / "out"
    data_dir = os.path.join(os.path.dirname(supernet_dir), "tfds")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "spos_tf.rank",
            f"--flagfile={TINY_FLAGS}",
            f"--supernet_dir={supernet_dir}",
            f"--workdir={workdir}",
            f"--data_dir={data_dir}",
        ],
        cwd=REPO,
        env=app_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "Kendall tau" in proc.stdout
    return workdir, data_dir


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_app_writes_the_three_files_and_its_statistics_are_scipys(ranked):
    workdir, _ = ranked
    rows = read_csv(workdir / "ranking.csv")
    assert len(rows) == 3
    with open(workdir / "ranking.json") as f:
        record = json.load(f)
    assert record["complete"] and record["finished_archs"] == 3
    assert record["supernet_accuracy_split"] == "holdout"
    assert record["standalone_accuracy_split"] == "test"
    assert (workdir / "ranking.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    space = tiny_space()
    supernet = np.array([float(r["supernet_accuracy"]) for r in rows])
    seeds = np.array([[float(r["standalone_seed_0"]), float(r["standalone_seed_1"])] for r in rows])
    for row, per_seed in zip(rows, seeds):  # columns against numpy, costs against the cost model
        assert float(row["standalone_mean"]) == pytest.approx(per_seed.mean(), abs=1e-12)
        assert float(row["standalone_std"]) == pytest.approx(per_seed.std(ddof=1), abs=1e-12)
        assert int(row["macs"]) == costs.macs(space, space.parse(row["arch"]))
        assert 0 < per_seed.min() and per_seed.max() <= 1  # accuracies on the 300 test images
        assert (per_seed * 300 == np.round(per_seed * 300)).all()
    means = seeds.mean(axis=1)
    got = record["stats"]
    for name, fn in (
        ("kendall_tau", stats.kendalltau),
        ("spearman_rho", stats.spearmanr),
        ("pearson_r", stats.pearsonr),
    ):
        if np.ptp(supernet) and np.ptp(means):
            assert got[name]["value"] == pytest.approx(fn(supernet, means)[0], abs=1e-12)
        else:
            assert got[name]["value"] != got[name]["value"]  # NaN where scipy is undefined
    assert got["spread"] == pytest.approx(np.ptp(means), abs=1e-12)
    sds = seeds.std(axis=1, ddof=1)
    assert got["seed_std"] == pytest.approx(np.sqrt(np.mean(sds**2)), abs=1e-12)
    # TensorBoard HParams: one session per architecture next to the experiment's config
    sessions = sorted(p.name for p in (workdir / "hparams").iterdir() if p.is_dir())
    assert sessions == ["000", "001", "002"]


@pytest.mark.slow
def test_rerun_skips_finished_work_and_a_lost_run_is_the_only_one_redone(
    ranked, supernet_dir, monkeypatch
):
    workdir, data_dir = ranked
    config = tiny_config(supernet_dir, workdir, data_dir)
    result = rank_lib.run(config)
    assert (result["scored"], result["trained"]) == (0, 0)
    # lose one training (as if it was killed before it started): only it is trained again
    lost = Path(rank_lib.arch_dir(workdir, 1)) / "seed_1"
    before = snapshot(workdir / "archs", mtimes=True)
    import shutil

    shutil.rmtree(lost)
    calls = []
    from spos_tf import train_lib

    real = train_lib.run
    monkeypatch.setattr(train_lib, "run", lambda c, **kw: calls.append(c.workdir) or real(c, **kw))
    result = rank_lib.run(config)
    assert calls == [str(lost)] and result["trained"] == 1
    after = snapshot(workdir / "archs", mtimes=True)
    untouched = {k: v for k, v in before.items() if not k.startswith("001/seed_1")}
    assert {k: v for k, v in after.items() if k in untouched} == untouched


@pytest.mark.slow
def test_an_interrupted_ranking_resumes_without_retraining_finished_runs(
    supernet_dir, tmp_path, monkeypatch
):
    data_dir = os.path.join(os.path.dirname(supernet_dir), "tfds")
    config = tiny_config(supernet_dir, tmp_path / "rank", data_dir, "--retrain_seeds=1")
    from spos_tf import train_lib

    real, calls = train_lib.run, []

    def killed_after_first(c, **kw):
        if calls:
            raise KeyboardInterrupt  # the process dies while starting the second training
        calls.append(c.workdir)
        return real(c, **kw)

    monkeypatch.setattr(train_lib, "run", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        rank_lib.run(config)
    first = calls[0]
    finished = snapshot(Path(first), mtimes=True)
    monkeypatch.setattr(train_lib, "run", lambda c, **kw: calls.append(c.workdir) or real(c, **kw))
    result = rank_lib.run(config)
    assert result["trained"] == 2 and first not in calls[1:] and len(calls) == 3
    assert snapshot(Path(first), mtimes=True) == finished
    assert result["complete"]


def test_reuse_standalone_links_the_finished_runs_instead_of_training(
    ranked, supernet_dir, tmp_path, monkeypatch
):
    workdir, data_dir = ranked
    from spos_tf import train_lib

    monkeypatch.setattr(train_lib, "run", lambda *a, **k: pytest.fail("trained again"))
    config = tiny_config(
        supernet_dir, tmp_path / "again", data_dir, f"--reuse_standalone={workdir}"
    )
    result = rank_lib.run(config)
    assert result["trained"] == 0 and result["scored"] == 3 and result["complete"]
    assert read_csv(tmp_path / "again" / "ranking.csv") == read_csv(workdir / "ranking.csv")
    assert os.path.islink(rank_lib.arch_dir(tmp_path / "again", 0) + "/seed_0")
    # another recipe cannot reuse them
    other = tiny_config(
        supernet_dir,
        tmp_path / "other",
        data_dir,
        f"--reuse_standalone={workdir}",
        f"--retrain_flagfile={REPO / 'flags' / 'tiny_supernet.cfg'}",
    )
    with pytest.raises(ValueError, match="trained with another recipe"):
        rank_lib.run(other)


@pytest.mark.slow
def test_bad_input_writes_nothing(supernet_dir, tmp_path):
    data_dir = os.path.join(os.path.dirname(supernet_dir), "tfds")
    workdir = tmp_path / "rank"
    cases = [
        ("--retrain_flagfile=/nonexistent.cfg", "does not exist"),
        ("--select=file", "reads --archs_file"),
        ("--num_archs=1", "--num_archs must be an integer >= 2"),
        (f"--supernet_dir={tmp_path}", "is not a spos_tf.train run directory"),
    ]
    for extra, message in cases:
        config = tiny_config(supernet_dir, workdir, data_dir, extra)
        with pytest.raises(ValueError, match=message):
            rank_lib.run(config)
        assert not workdir.exists()


def test_every_flag_file_of_the_rank_app_parses():
    for path in sorted((REPO / "flags").glob("*rank*.cfg")):
        fv = config_flags.parse_flagfile(
            rank.define_flags, str(path), ["--supernet_dir=/s", "--workdir=/w"]
        )
        config = config_flags.from_flags(rank_lib.RankConfig, fv)
        assert os.path.exists(REPO / config.retrain_flagfile), path
        config.validate()


def test_flags_are_derived_from_the_config_fields():
    fv = flags.FlagValues()
    rank.define_flags(fv)
    names = {f for f in rank_lib.RankConfig.__dataclass_fields__}
    assert names <= set(fv)
    assert fv["num_archs"].default == rank_lib.RankConfig().num_archs
    assert fv["select"].default == "stratified"
