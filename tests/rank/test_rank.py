"""The ranking app (spos_tf.rank / rank_lib / rank_stats) on a trained tiny supernet."""

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import flags
from scipy import stats

from spos_tf.runs import config_flags
from spos_tf import costs
from spos_tf.rank import __main__ as rank
from spos_tf.rank import run as rank_lib

from _apps import run_app
from _files import snapshot
from _supernet_workdir import OVERRIDES, SPACE, tiny_space, trained_supernet_dir
from _ground_truth import write_table
from _nb201 import gt_args, gt_config, nb201_cells

REPO = Path(__file__).resolve().parents[2]
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
    proc = run_app(
        "rank",
        f"--flagfile={TINY_FLAGS}",
        f"--supernet_dir={supernet_dir}",
        f"--workdir={workdir}",
        f"--data_dir={data_dir}",
        timeout=900,
    )
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
    for row in rows:  # the held-out log-likelihood recorded beside the accuracy, and in the csv
        with open(workdir / "archs" / f"{int(row['index']):03d}" / "supernet.json") as f:
            scored = json.load(f)
        assert float(row["supernet_log_likelihood"]) == scored["log_likelihood"] < 0
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
    from spos_tf import train as train_lib

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
    from spos_tf import train as train_lib

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
    from spos_tf import train as train_lib

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
    paths = sorted((REPO / "flags").glob("*rank*.cfg"))
    # the glob finds at least the flag files the README and the tests run (a renamed folder or
    # pattern would otherwise leave the loop below checking nothing)
    assert {"rank.cfg", "tiny_rank.cfg", "quickstart_rank.cfg", "nb201_rank.cfg"} <= {
        p.name for p in paths
    }
    kinds = set()
    for path in paths:
        extra = ["--supernet_dir=/s", "--workdir=/w"]
        if "nb201" in path.name:  # the table is passed on the command line (its header says so)
            extra.append("--ground_truth=table.csv")
        fv = config_flags.parse_flagfile(rank.define_flags, str(path), extra)
        config = config_flags.from_flags(rank_lib.RankConfig, fv)
        if not config.ground_truth:  # a ground-truth ranking trains nothing
            assert os.path.exists(REPO / config.retrain_flagfile), path
        config.validate()
        kinds.add("ground truth" if config.ground_truth else "retraining")
    assert kinds == {"ground truth", "retraining"}  # both branches above were checked


def test_flags_are_derived_from_the_config_fields():
    fv = flags.FlagValues()
    rank.define_flags(fv)
    names = {f for f in rank_lib.RankConfig.__dataclass_fields__}
    assert names <= set(fv)
    assert fv["num_archs"].default == rank_lib.RankConfig().num_archs
    assert fv["select"].default == "stratified"


# ------------------------------------------------------------------ settings, shards, locks
def test_ground_truth_replaces_the_retraining_flags():
    base = dict(supernet_dir="/s", workdir="/w")
    rank_lib.RankConfig(**base, ground_truth="t.csv").validate()
    cases = [
        (dict(), "--retrain_flagfile is required \\(or --ground_truth"),
        (dict(ground_truth="t.csv", retrain_flagfile="r.cfg"), "pass one of the two"),
        (dict(ground_truth="t.csv", reuse_standalone="/o"), "--reuse_standalone"),
        (dict(ground_truth="t.csv", retrain_seeds=2), "--retrain_seeds=2"),
        (dict(ground_truth="t.csv", select="random", archs_file="a"), "--archs_file is read by"),
    ]
    for extra, message in cases:
        with pytest.raises(ValueError, match=message):
            rank_lib.RankConfig(**base, **extra).validate()
    assert "random" in rank_lib.SELECTIONS


def test_the_shard_count_is_recorded_once_and_another_is_refused(tmp_path):
    rank_lib.check_shards(tmp_path, "0/3")  # nothing recorded: any count passes
    rank_lib.record_shards(tmp_path, "1/3")
    assert json.loads((tmp_path / rank_lib.SHARDS_FILE).read_text()) == {"n": 3}
    rank_lib.record_shards(tmp_path, "2/3")  # same count: fine, unchanged
    rank_lib.check_shards(tmp_path, "0/3")
    for other in ("0/2", "0/1"):
        with pytest.raises(rank_lib.run_dir.RunDirError, match=r"split into 3 shards") as info:
            rank_lib.record_shards(tmp_path, other)
        assert f"--shard={other}" in str(info.value) and "shards.json" in str(info.value)


@pytest.fixture
def pids():
    """A live local pid (a sleeping child of this test, ended afterwards) and a dead one."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield live.pid, dead.pid
    live.kill()
    live.wait()


def _holder(workdir, name, **record):
    folder = Path(workdir) / rank_lib.LOCKS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    record = {"shard": "0/2", "merge": False, "overwriting": False, **record}
    path.write_text(json.dumps(record))
    return path


def _lock(workdir, **changes):
    config = rank_lib.RankConfig(supernet_dir="/s", workdir=str(workdir), ground_truth="t.csv")
    return rank_lib.WorkdirLock(workdir, dataclasses.replace(config, **changes))


def test_overwrite_is_refused_while_another_live_process_holds_the_workdir(tmp_path, pids):
    import socket

    live, dead = pids
    host = socket.gethostname()
    stale = _holder(tmp_path, "stale.json", pid=dead, host=host)
    running = _holder(tmp_path, "running.json", pid=live, host=host, shard="1/2")
    # a shard joins a live shard, and takes the stale lock over
    lock = _lock(tmp_path, shard="0/2")
    lock.acquire(overwrite=False)
    assert not stale.exists() and Path(lock.path).exists() and running.exists()
    lock.release()
    assert not Path(lock.path).exists()
    # --overwrite under the live one is refused, naming it; its own lock is gone again
    with pytest.raises(rank_lib.run_dir.RunDirError, match=f"pid {live} on {host}") as info:
        _lock(tmp_path).acquire(overwrite=True)
    assert "--overwrite would delete" in str(info.value) and str(running) in str(info.value)
    assert sorted(p.name for p in (tmp_path / rank_lib.LOCKS_DIR).iterdir()) == ["running.json"]
    # a holder on another host cannot be tested: it counts as alive
    running.unlink()
    remote = _holder(tmp_path, "remote.json", pid=dead, host=host + "-elsewhere")
    with pytest.raises(rank_lib.run_dir.RunDirError, match="elsewhere"):
        _lock(tmp_path).acquire(overwrite=True)
    remote.unlink()
    # alone, --overwrite holds the workdir: starts are refused until its deletion is done
    lock = _lock(tmp_path)
    lock.acquire(overwrite=True)
    other = _lock(tmp_path, shard="1/2")
    other.path = other.path + ".other.json"  # a second process of this host
    with pytest.raises(rank_lib.run_dir.RunDirError, match="is deleting the ranking"):
        other.acquire(overwrite=False)
    lock.done_overwriting()
    other.acquire(overwrite=False)
    other.release()
    lock.release()
    assert not (tmp_path / rank_lib.LOCKS_DIR).exists()


# ------------------------------------------------------------------ --ground_truth end to end
@pytest.fixture(scope="module")
def gt_ranked(nb201, tmp_path_factory):
    """``spos_tf.rank --ground_truth`` run once as a user runs it: its workdir."""
    supernet_dir, table, data_dir = nb201
    workdir = tmp_path_factory.mktemp("gt_rank") / "out"
    proc = run_app("rank", *gt_args(supernet_dir, workdir, table, data_dir), timeout=900)
    assert "tau(supernet) - tau(MACs)" in proc.stdout and "top1:" in proc.stdout
    return workdir


@pytest.mark.slow
def test_ground_truth_ranking_statistics_are_scipys_on_the_written_csv(gt_ranked, nb201):
    from spos_tf.rank import ground_truth
    from spos_tf.rank import stats as rank_stats

    _, table_path, _ = nb201
    workdir = gt_ranked
    assert not list((workdir / "archs").glob("*/seed_*"))  # nothing trained
    rows = read_csv(workdir / "ranking.csv")
    record = json.loads((workdir / "ranking.json").read_text())
    column = "ground_truth_CIFAR10TestAccuracy200Epochs"
    assert len(rows) == 8 and column in rows[0] and record["complete"]
    assert record["ground_truth"]["file"] == "nb201_table.csv"  # the name, not the path
    assert record["ground_truth"]["column"] == "CIFAR10TestAccuracy200Epochs"
    assert record["standalone_accuracy_split"] == "ground truth"
    assert (workdir / "ranking.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    truth = ground_truth.load(table_path)
    keys = [truth.key(r["benchmark"]) for r in rows]
    assert len(set(keys)) == len(keys)  # distinct cells only
    for row in rows:  # the table's values, the cell's both forms agree
        assert float(row[column]) == truth.accuracy(row["benchmark"])
        assert truth.cell(row["arch"]).string == row["benchmark"]
        assert float(row["ground_truth_percentile"]) == truth.percentile(float(row[column]))
    supernet = np.array([float(r["supernet_accuracy"]) for r in rows])
    gt = np.array([float(r[column]) for r in rows])
    macs = np.array([float(r["macs"]) for r in rows])
    got = record["stats"]
    assert got["num_archs"] == 8

    def same(value, expected):
        if np.isnan(expected):
            assert value != value  # NaN where scipy is undefined (a constant input)
        else:
            assert value == pytest.approx(expected, abs=1e-12)

    same(got["kendall_tau"]["value"], stats.kendalltau(supernet, gt)[0])
    same(got["spearman_rho"]["value"], stats.spearmanr(supernet, gt)[0])
    same(got["macs_kendall_tau"]["value"], stats.kendalltau(macs, gt)[0])
    same(got["macs_spearman_rho"]["value"], stats.spearmanr(macs, gt)[0])
    for name in ("kendall_tau", "spearman_rho", "macs_kendall_tau"):
        assert {"ci_low", "ci_high"} <= set(got[name])
    if hasattr(rank_stats, "paired_delta"):
        delta = got["supernet_minus_macs"]["kendall_tau"]
        if np.ptp(supernet) and np.ptp(macs):
            same(delta["value"], stats.kendalltau(gt, supernet)[0] - stats.kendalltau(gt, macs)[0])
    # the picks, by hand from the csv
    order = sorted(range(8), key=lambda i: (-supernet[i], i))
    picks = got["picks"]
    assert picks["top1"]["index"] == order[0]
    assert picks["top1"]["ground_truth_accuracy"] == gt[order[0]]
    assert picks["top1"]["percentile_table"] == truth.percentile(gt[order[0]])
    assert picks["top1"]["percentile_ranked"] == np.mean(gt <= gt[order[0]])
    assert picks["best_of_top10"]["ground_truth_accuracy"] == gt.max()  # 8 < 10: all of them
    assert picks["best_of_top10"]["percentile_ranked"] == 1.0


@pytest.mark.slow
def test_ground_truth_ranking_resumes_and_refuses_another_shard_count_or_overwrite(
    gt_ranked, nb201, pids
):
    import socket

    supernet_dir, table, data_dir = nb201
    workdir = gt_ranked
    args = gt_args(supernet_dir, workdir, table, data_dir)
    before = snapshot(workdir / "archs", mtimes=True)
    result = rank_lib.run(gt_config(*args))
    assert (result["scored"], result["trained"]) == (0, 0) and result["complete"]
    with pytest.raises(rank_lib.run_dir.RunDirError, match=r"split into 1 shards"):
        rank_lib.run(gt_config(*args, "--shard=1/2"))
    holder = _holder(workdir, "other.json", pid=pids[0], host=socket.gethostname())
    try:
        with pytest.raises(rank_lib.run_dir.RunDirError, match="--overwrite would delete"):
            rank_lib.run(gt_config(*args, "--overwrite"))
    finally:
        holder.unlink()
    assert snapshot(workdir / "archs", mtimes=True) == before
    assert (workdir / rank_lib.ARCHS_FILE).exists() and (workdir / "ranking.json").exists()


@pytest.mark.slow
def test_ground_truth_shards_and_merge_give_the_single_run(gt_ranked, nb201, tmp_path):
    supernet_dir, table, data_dir = nb201
    args = gt_args(supernet_dir, tmp_path / "sharded", table, data_dir)
    first = rank_lib.run(gt_config(*args, "--shard=0/2"))
    assert first["scored"] == 4 and not first["complete"]
    second = rank_lib.run(gt_config(*args, "--shard=1/2"))
    assert second["scored"] == 4 and second["complete"]
    merged = rank_lib.run(gt_config(*args, "--merge"))
    assert merged["scored"] == 0 and merged["complete"]
    assert read_csv(tmp_path / "sharded" / "ranking.csv") == read_csv(gt_ranked / "ranking.csv")


def test_ground_truth_refuses_another_space_and_missing_cells_before_writing(tmp_path):
    from spos_tf.runs import run_dir

    table = write_table(tmp_path / "table.csv", nb201_cells())
    workdir = tmp_path / "rank"
    # a run directory's config.json is all these checks read (no checkpoint, no TensorFlow)
    shufflenet, nb201_dir = tmp_path / "shufflenet", tmp_path / "nb201"
    run_dir.write_config(
        str(shufflenet), {"space": SPACE, "space_overrides": OVERRIDES, "seed": 0, "arch": None}
    )
    run_dir.write_config(
        str(nb201_dir), {"space": "nasbench201", "space_overrides": {}, "seed": 0, "arch": None}
    )
    with pytest.raises(ValueError, match="ranks NAS-Bench-201 cells.*--space=nasbench201"):
        rank_lib.run(gt_config(*gt_args(shufflenet, workdir, table, tmp_path)))
    archs = tmp_path / "archs.txt"
    assert "1,1,1,1,1,1" not in {",".join(map(str, c[0])) for c in nb201_cells()}
    archs.write_text("1,1,1,1,1,1\n" + ",".join(map(str, nb201_cells()[0][0])) + "\n")
    with pytest.raises(KeyError, match="'1,1,1,1,1,1'.*not in the ground-truth table"):
        rank_lib.run(
            gt_config(
                *gt_args(nb201_dir, workdir, table, tmp_path, "--select=file"),
                f"--archs_file={archs}",
            )
        )
    with pytest.raises(ValueError, match="holds 25 distinct cells, fewer than --num_archs=26"):
        rank_lib.run(gt_config(*gt_args(nb201_dir, workdir, table, tmp_path, "--num_archs=26")))
    with pytest.raises(FileNotFoundError, match="--ground_truth"):
        rank_lib.run(gt_config(*gt_args(nb201_dir, workdir, tmp_path / "none.csv", tmp_path)))
    assert not workdir.exists()


@pytest.mark.slow
def test_fine_tuned_scoring_ranks_through_the_app_and_leaves_the_supernet_as_it_was(
    gt_ranked, nb201, tmp_path
):
    """--search_flagfile=flags/tiny_nb201_search_finetune.cfg (2 fine-tuning steps per cell):
    the app scores the same cells as without, with other accuracies (the fine-tuned paths),
    records the setting, and writes nothing into the supernet's folder."""
    supernet_dir, table, data_dir = nb201
    before = snapshot(supernet_dir)
    workdir = tmp_path / "ft"
    twin = Path(__file__).resolve().parents[2] / "flags" / "tiny_nb201_search_finetune.cfg"
    args = gt_args(supernet_dir, workdir, table, data_dir, f"--search_flagfile={twin}")
    run_app("rank", *args, timeout=900)
    assert snapshot(supernet_dir) == before
    plain = {r["arch"]: float(r["supernet_accuracy"]) for r in read_csv(gt_ranked / "ranking.csv")}
    tuned = {r["arch"]: float(r["supernet_accuracy"]) for r in read_csv(workdir / "ranking.csv")}
    assert tuned.keys() == plain.keys()
    assert any(tuned[a] != plain[a] for a in plain)
    settings = json.loads((workdir / rank_lib.CONFIG_FILE).read_text())
    assert settings["scoring"]["finetune_steps"] == 2
    assert settings["scoring"]["finetune_lr"] == 0.05
