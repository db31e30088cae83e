"""spos_tf.search.run: a search run in-process on a trained tiny supernet: resuming a killed search,
the checks that fail before anything is written, and the rows and best record it returns."""

import json

import numpy as np
import pytest
from scipy import stats

from spos_tf.runs import run_dir
from spos_tf.search import results as search_results
from spos_tf.search import run as search_run
from spos_tf.search import tuner as search_tuner
from spos_tf.models.evaluate import PathEvaluator
from spos_tf.search.oracle import InfeasibleConstraintError
from spos_tf.search.data import FreshCalibration, RotatingHoldout
from spos_tf.spaces.archs_file import read_archs_file

from _files import snapshot
from _search import TRIALS, read_history, share_evaluator, tiny_config
from _supernet_workdir import tiny_space, trained_supernet_dir

pytestmark = pytest.mark.filterwarnings("ignore:currentThread|getName:DeprecationWarning")


@pytest.fixture(scope="module")
def supernet_dir(tmp_path_factory):
    return trained_supernet_dir(tmp_path_factory)


@pytest.mark.slow
def test_killed_search_resumes_without_evaluating_again(supernet_dir, tmp_path, monkeypatch):
    workdir = tmp_path / "search"
    config = tiny_config(supernet_dir, workdir, "--algorithm=evolution")
    share_evaluator(monkeypatch)
    original = PathEvaluator.__call__
    first = []

    def dies_during_the_twelfth(self, arch):
        if len(first) == 11:
            raise KeyboardInterrupt  # like a kill: KerasTuner catches Exception only
        first.append(arch)
        return original(self, arch)

    monkeypatch.setattr(PathEvaluator, "__call__", dies_during_the_twelfth)
    with pytest.raises(KeyboardInterrupt):
        search_run.run(config)
    rows_before = read_history(workdir)
    assert len(rows_before) == 11

    second = []

    def counting(self, arch):
        second.append(arch)
        return original(self, arch)

    monkeypatch.setattr(PathEvaluator, "__call__", counting)
    summary = search_run.run(config)
    assert summary["evaluated"] == len(second) == TRIALS - 11
    assert not set(first) & set(second), "a completed candidate was evaluated again"
    rows = read_history(workdir)
    read_history_before = rows
    assert len(rows) == len({r["arch"] for r in rows}) == TRIALS
    assert rows[:11] == rows_before  # earlier results kept as they were
    assert summary["best"]["accuracy"] == max(float(r["accuracy"]) for r in rows)
    # The returned rows and best record are what the files hold (the caller needs no re-read).
    assert [(r["arch"], r["accuracy"]) for r in summary["rows"]] == [
        (r["arch"], float(r["accuracy"])) for r in rows
    ]
    assert summary["best"] == json.loads((workdir / search_results.BEST_FILE).read_text())

    # A finished search rerun with the same flags evaluates nothing.
    def never(self, arch):
        raise AssertionError(f"{arch} evaluated again")

    monkeypatch.setattr(PathEvaluator, "__call__", never)
    assert search_run.run(config)["evaluated"] == 0

    # Rerun with --score=supernet+synflow (a neutral setting): nothing is evaluated again, every
    # stored candidate gains its SynFlow, and best.json is the first of the best mean rank by
    # accuracy and SynFlow, computed here with scipy.
    summary = search_run.run(
        tiny_config(supernet_dir, workdir, "--algorithm=evolution", "--score=supernet+synflow")
    )
    assert summary["evaluated"] == 0
    rows = read_history(workdir)
    assert [(r["arch"], r["accuracy"]) for r in rows] == [
        (r["arch"], r["accuracy"]) for r in read_history_before
    ]
    synflow = np.array([float(r["synflow"]) for r in rows])
    assert np.all(synflow > 0) and len(set(synflow)) > 1
    mean_rank = (stats.rankdata([float(r["accuracy"]) for r in rows]) + stats.rankdata(synflow)) / 2
    assert summary["best"]["arch"] == rows[int(np.argmax(mean_rank))]["arch"]
    assert summary["best"]["score"] == "supernet+synflow"
    assert summary["best"]["synflow"] == pytest.approx(synflow[int(np.argmax(mean_rank))])
    assert (workdir / "synflow.json").exists()


@pytest.mark.slow
def test_fresh_stream_and_rotating_slices_resume_as_an_uninterrupted_search(
    supernet_dir, tmp_path, monkeypatch
):
    """--calib_stream=fresh --holdout_images_per_candidate: candidate k (the trial number) reads
    the same calibration window and held-out slice, and scores the same, in a search killed
    after 6 candidates and resumed as in an uninterrupted one; each candidate gets a new window."""
    extra = (
        "--algorithm=evolution",
        "--max_trials=12",
        "--calib_mode=ema",
        "--calib_stream=fresh",
        "--calib_augment",
        "--holdout_images_per_candidate=50",
    )
    share_evaluator(monkeypatch)
    read = []
    window, part = FreshCalibration.__call__, RotatingHoldout.__call__

    def calib(self, index):
        read.append(("calib", index, self.spec(index)))
        return window(self, index)

    def holdout(self, index):
        read.append(("holdout", index, self.bounds(index)))
        return part(self, index)

    monkeypatch.setattr(FreshCalibration, "__call__", calib)
    monkeypatch.setattr(RotatingHoldout, "__call__", holdout)
    straight = tmp_path / "straight"
    search_run.run(tiny_config(supernet_dir, straight, *extra))
    expected = {(what, index): data for what, index, data in read}
    assert len(read) == len(expected) == 2 * 12
    specs = [expected["calib", k] for k in range(12)]
    assert len(set(specs)) == 12  # a new window for every candidate
    assert [expected["holdout", k] for k in range(5)] == [(0, 50), (50, 100), (100, 150),
                                                          (150, 200), (0, 50)]  # fmt: skip

    read.clear()
    original = PathEvaluator.__call__

    def dies_during_the_seventh(self, arch, index=None):
        if sum(what == "calib" for what, _, _ in read) == 6:
            raise KeyboardInterrupt  # like a kill
        return original(self, arch, index)

    killed = tmp_path / "killed"
    monkeypatch.setattr(PathEvaluator, "__call__", dies_during_the_seventh)
    with pytest.raises(KeyboardInterrupt):
        search_run.run(tiny_config(supernet_dir, killed, *extra))
    monkeypatch.setattr(PathEvaluator, "__call__", original)
    search_run.run(tiny_config(supernet_dir, killed, *extra))
    assert sorted({index for _, index, _ in read}) == list(range(12))
    for what, index, data in read:
        assert data == expected[what, index], (what, index)
    assert [(r["arch"], r["accuracy"]) for r in read_history(killed)] == [
        (r["arch"], r["accuracy"]) for r in read_history(straight)
    ]


@pytest.mark.slow
def test_checks_fail_before_anything_is_written(supernet_dir, tmp_path):
    fresh = tmp_path / "fresh"
    with pytest.raises(InfeasibleConstraintError, match="infeasible"):
        search_run.run(tiny_config(supernet_dir, fresh, "--max_macs=1e6"))
    with pytest.raises(ValueError, match="needs a quantized space"):
        search_run.run(tiny_config(supernet_dir, fresh, "--max_bitops=1e9"))
    with pytest.raises(ValueError, match="must not exceed --population_size"):
        search_run.run(tiny_config(supernet_dir, fresh, "--num_mutation=9"))
    with pytest.raises(run_dir.RunDirError, match="supernet_dir.*does not exist"):
        search_run.run(tiny_config(tmp_path / "nothing", fresh))
    with pytest.raises(
        ValueError, match="--wait_for_workers=2 applies to a distributed search only"
    ):
        search_run.run(tiny_config(supernet_dir, fresh, "--wait_for_workers=2"))
    with pytest.raises(ValueError, match="--archs_file='/no/such.txt' does not exist"):
        search_run.run(tiny_config(supernet_dir, fresh, "--archs_file=/no/such.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing left\n\n")
    with pytest.raises(ValueError, match="lists no architecture; write one per line"):
        search_run.run(tiny_config(supernet_dir, fresh, f"--archs_file={empty}"))
    bad = tmp_path / "bad.txt"
    bad.write_text("# shrunk\n0,1,2,3\n9,9\n")
    with pytest.raises(ValueError, match=f"{bad}:3: "):
        search_run.run(tiny_config(supernet_dir, fresh, f"--archs_file={bad}"))
    assert not fresh.exists()

    # A workdir holding a search of other settings is refused, not overwritten.
    existing = tmp_path / "existing"
    existing.mkdir()
    old = tiny_config(supernet_dir, existing, "--seed=5").to_dict()
    (existing / search_results.CONFIG_FILE).write_text(json.dumps(old))
    before = snapshot(existing)
    with pytest.raises(run_dir.RunDirError, match="seed"):
        search_run.run(tiny_config(supernet_dir, existing))
    assert snapshot(existing) == before

    # A corrupt SynFlow cache is refused before search_config.json is rewritten for the new score.
    (existing / search_results.CONFIG_FILE).write_text(
        json.dumps(tiny_config(supernet_dir, existing).to_dict())
    )
    (existing / "synflow.json").write_text("{not json")
    before = snapshot(existing)
    with pytest.raises(ValueError, match="not a SynFlow cache.*delete it"):
        search_run.run(tiny_config(supernet_dir, existing, "--score=supernet+synflow"))
    assert snapshot(existing) == before


@pytest.mark.slow
def test_archs_file_search_scores_the_listed_architectures_only(supernet_dir, tmp_path):
    listed = ["0,1,2,3", "3,2,1,0", "1,1,1,1"]
    archs = tmp_path / "shrunk.txt"
    archs.write_text("\n".join(listed) + "\n")
    workdir = tmp_path / "search"
    config = tiny_config(
        supernet_dir,
        workdir,
        f"--archs_file={archs}",
        "--max_macs=1e12",
        "--algorithm=random",
        "--max_trials=3",
    )
    summary = search_run.run(config)
    assert sorted(r["arch"] for r in read_history(workdir)) == sorted(listed)
    assert summary["best"]["archs_file"] == str(archs)
    record = json.loads((workdir / search_results.ARCHS_FILE_RECORD).read_text())
    assert record == {"file": str(archs), "archs": listed}


def test_a_resume_needs_the_architectures_the_search_started_with(tmp_path):
    """--archs_file: a new search records the file's architectures; a resume is refused once the
    file lists other architectures (reordering or comments are no change), and the record is
    kept."""
    space = tiny_space()
    listed = tmp_path / "shrunk.txt"
    listed.write_text("0,1,2,3\n3,2,1,0\n")
    workdir = tmp_path / "search"
    config = tiny_config("/s", workdir, f"--archs_file={listed}")

    def allowed():  # what the search reads from the file when it starts
        return read_archs_file(space, str(listed))

    search_run._start_workdir(config, "new", allowed=allowed())
    record_file = workdir / search_results.ARCHS_FILE_RECORD
    record = {"file": str(listed), "archs": ["0,1,2,3", "3,2,1,0"]}
    assert json.loads(record_file.read_text()) == record
    listed.write_text("# the same two\n3,2,1,0\n0,1,2,3\n")
    search_run.check_archs_file(config, allowed(), "resume")
    listed.write_text("0,1,2,3\n1,1,1,1\n2,2,2,2\n")
    with pytest.raises(run_dir.RunDirError, match=r"2 added, 1 removed.*--overwrite"):
        search_run.check_archs_file(config, allowed(), "resume")
    search_run.check_archs_file(config, allowed(), "overwrite")  # starts again: nothing to match
    assert json.loads(record_file.read_text()) == record


def test_workdir_check_resumes_across_neutral_settings_only(tmp_path):
    """The search's workdir check is run_dir.check_workdir over the search's entries: a rerun may
    change where data comes from, the display, or grow max_trials / switch algorithm; any
    setting that changes which candidates are proposed or how they are scored is refused."""
    base = tiny_config("/s", tmp_path)
    assert search_run.check_workdir(base) == "new"
    (tmp_path / "notes.txt").write_text("mine")  # not a search's: still a new search
    assert search_run.check_workdir(base) == "new"
    (tmp_path / search_results.CONFIG_FILE).write_text(json.dumps(base.to_dict()))
    assert search_run.check_workdir(base) == "resume"
    neutral = tiny_config(
        "/s",
        tmp_path,
        "--max_trials=50",
        "--algorithm=random",
        "--data_dir=/elsewhere",
        "--noprogress",
        "--cache_mb=0",
        "--eval_batch_size=50",
    )
    assert search_run.check_workdir(neutral) == "resume"
    older = dict(base.to_dict())
    del older["calib_stream"], older["holdout_images_per_candidate"]
    (tmp_path / search_results.CONFIG_FILE).write_text(json.dumps(older))
    assert search_run.check_workdir(base) == "resume"  # written before these settings existed
    (tmp_path / search_results.CONFIG_FILE).write_text(json.dumps(base.to_dict()))
    for changed in (
        "--seed=1",
        "--calib_images=64",
        "--max_macs=3e6",
        "--mutation_prob=0.3",
        "--calib_stream=fresh",
        "--holdout_images_per_candidate=50",
        "--archs_file=/shrunk.txt",
    ):
        with pytest.raises(run_dir.RunDirError, match=r"holds a search with other settings"):
            search_run.check_workdir(tiny_config("/s", tmp_path, changed))
    assert (
        search_run.check_workdir(tiny_config("/s", tmp_path, "--seed=1", "--overwrite"))
        == "overwrite"
    )
    # --score only re-picks best.json, unless it steers the evolution (--steer_by_score)
    assert (
        search_run.check_workdir(tiny_config("/s", tmp_path, "--score=supernet+macs")) == "resume"
    )
    steered = ("--score=supernet+macs", "--steer_by_score")
    (tmp_path / search_results.CONFIG_FILE).write_text(
        json.dumps(tiny_config("/s", tmp_path, *steered).to_dict())
    )
    assert search_run.check_workdir(tiny_config("/s", tmp_path, *steered)) == "resume"
    with pytest.raises(run_dir.RunDirError, match=r"holds a search with other settings"):
        search_run.check_workdir(
            tiny_config("/s", tmp_path, "--score=supernet+synflow", "--steer_by_score")
        )


@pytest.mark.slow
def test_steered_evolution_breeds_from_the_best_mean_rank(supernet_dir, tmp_path, monkeypatch):
    """--steer_by_score on the tiny supernet: every candidate reports its MACs to the oracle, and
    generation 1's crossover children (its first 3 candidates) take each gene from one of the 3
    best of generation 0 by the mean rank of accuracy and MACs (scipy), which here are not the
    3 best by accuracy; a rerun evaluates nothing."""
    share_evaluator(monkeypatch)
    workdir = tmp_path / "steered"
    flags_ = ("--algorithm=evolution", "--score=supernet+macs", "--steer_by_score")
    config = tiny_config(supernet_dir, workdir, *flags_)
    summary = search_run.run(config)
    rows = read_history(workdir)
    assert len(rows) == TRIALS
    space = run_dir.space_from_config(search_tuner.load_supernet_config(supernet_dir))
    oracle = search_results._reload("evolution", config, space)
    for row in rows:  # the prior the oracle ranked by is the history's MACs
        trial = oracle.trials[row["trial_id"]]
        assert trial.metrics.get_last_value("macs") == float(row["macs"])
    first = [r for r in rows if r["generation"] == "0"]
    acc = np.array([float(r["accuracy"]) for r in first])
    macs = np.array([float(r["macs"]) for r in first])
    mean_rank = (stats.rankdata(acc) + stats.rankdata(macs)) / 2
    order = sorted(range(len(first)), key=lambda i: (-mean_rank[i], i))
    parents = [space.to_values(space.parse(first[i]["arch"])) for i in order[:3]]
    by_accuracy = [
        space.to_values(space.parse(first[i]["arch"])) for i in np.argsort(-acc, kind="stable")[:3]
    ]
    assert parents != by_accuracy, "the steering must matter for this test to check it"
    children = [r for r in rows if r["generation"] == "1"][:3]
    for child in children:
        values = space.to_values(space.parse(child["arch"]))
        assert all(any(p[g] == v for p in parents) for g, v in values.items())
    # best.json: the best mean rank over all candidates
    all_rank = (
        stats.rankdata([float(r["accuracy"]) for r in rows])
        + stats.rankdata([float(r["macs"]) for r in rows])
    ) / 2
    assert summary["best"]["arch"] == rows[int(np.argmax(all_rank))]["arch"]
    assert search_run.run(config)["evaluated"] == 0
