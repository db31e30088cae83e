"""benchmarks/tau_vs_epochs.py end to end on a tiny NAS-Bench-201 supernet run with three
checkpoints (steps 4, 8, 12) and a fixture ground-truth table: the checkpoints it picks (read here
from the checkpoint folder), its statistics against scipy on its own per-checkpoint scores, its
last checkpoint's scores against the ``spos_tf.rank`` ranking of the same cells, and its resume."""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from _apps import run_app, run_script
from _files import snapshot
from conftest import import_benchmark
from _ground_truth import write_table
from _nb201 import NB201_FLAGS, NB201_RANK, nb201_cells

REPO = Path(__file__).resolve().parents[2]
SEARCH_FLAGS = REPO / "flags" / "tiny_nb201_search.cfg"
GT_COLUMN = "ground_truth_CIFAR10TestAccuracy200Epochs"
# three app processes and two checkpoint scorings: about 3.5 min on 2 busy CPU cores
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def tau_args(base, out, every):
    return [
        f"--supernet_dir={base / 'supernet'}",
        f"--ranking={base / 'rank'}",
        f"--ground_truth={base / 'table.csv'}",
        f"--search_flagfile={SEARCH_FLAGS}",
        f"--out={out}",
        f"--every={every}",
    ]


@pytest.fixture(scope="module")
def tau_run(tmp_path_factory):
    """The tiny supernet trained with a checkpoint every 4 of its 12 steps, its ``spos_tf.rank
    --ground_truth`` ranking of 8 cells (on the last checkpoint), and the script run once with
    ``--every=2``: ``(base folder, out folder, the script's stdout)``."""
    base = tmp_path_factory.mktemp("tau_vs_epochs")
    data_dir = base / "tfds"
    run_app(
        "train",
        f"--flagfile={NB201_FLAGS}",
        f"--workdir={base / 'supernet'}",
        f"--data_dir={data_dir}",
        "--checkpoint_every=4",
        "--noprogress",
    )
    write_table(base / "table.csv", nb201_cells())
    run_app(
        "rank",
        f"--flagfile={NB201_RANK}",
        f"--supernet_dir={base / 'supernet'}",
        f"--workdir={base / 'rank'}",
        f"--data_dir={data_dir}",
        f"--ground_truth={base / 'table.csv'}",
        "--noprogress",
    )
    out = base / "out"
    return base, out, run_script("tau_vs_epochs.py", *tau_args(base, out, every=2)).stdout


def saved_steps(supernet_dir: Path) -> list:
    """The steps of the checkpoints in the run's folder, from the file names (``ckpt-<n>.index``)."""
    names = [p.name for p in (supernet_dir / "checkpoints").glob("*.index")]
    return sorted(int(n[: -len(".index")].rsplit("-", 1)[1]) for n in names)


def table_accuracy(path) -> dict:
    """``{benchmark string: CIFAR-10 accuracy}`` of the fixture table, read here with csv."""
    with open(path) as f:
        return {
            r["ArchitectureString"]: float(r["CIFAR10TestAccuracy200Epochs"])
            for r in csv.DictReader(f)
        }


def same(value, expected):
    if np.isnan(expected):
        assert value != value  # NaN where scipy is undefined (a constant input)
    else:
        assert value == pytest.approx(expected, abs=1e-12)


def without_per_cell(row: dict) -> dict:
    """A checkpoint's row as the summary holds it: without its per-cell lists."""
    return {k: v for k, v in row.items() if k not in ("scores", "cells", "truth")}


def test_one_row_per_chosen_checkpoint_with_scipys_statistics(tau_run):
    base, out, stdout = tau_run
    steps = saved_steps(base / "supernet")
    assert steps == [4, 8, 12]  # the run's checkpoints, all kept
    chosen = [4, 12]  # --every=2: every second one counted back from the last
    summary = json.loads((out / "tau_vs_epochs.json").read_text())
    assert [r["step"] for r in summary] == chosen
    assert {p.name for p in out.glob("step_*.json")} == {f"step_{s}.json" for s in chosen}
    assert [line.split(":")[0] for line in stdout.splitlines() if line.startswith("step ")] == [
        f"step {s}" for s in chosen
    ]
    assert (out / "tau_vs_epochs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the ranking's cells, their ground truth from the table file and their MACs from its csv
    with open(base / "rank" / "ranking.csv") as f:
        ranking = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
    archs = [r["arch"] for r in json.loads((base / "rank" / "archs.json").read_text())]
    assert [r["arch"] for r in ranking] == archs and len(archs) == 8
    accuracy = table_accuracy(base / "table.csv")
    truth = np.array([accuracy[r["benchmark"]] for r in ranking])
    np.testing.assert_array_equal(truth, [float(r[GT_COLUMN]) for r in ranking])
    macs = np.array([float(r["macs"]) for r in ranking])

    rows = {s: json.loads((out / f"step_{s}.json").read_text()) for s in chosen}
    for step, row in rows.items():
        scores = np.array(row["scores"])
        assert row["step"] == step and row["archs"] == 8 and len(scores) == 8
        assert ((0 <= scores) & (scores <= 1)).all()
        assert (scores * 150 == np.round(scores * 150)).all()  # accuracies on 150 held-out images
        same(row["kendall_tau"]["value"], stats.kendalltau(scores, truth)[0])
        same(row["spearman_rho"]["value"], stats.spearmanr(scores, truth)[0])
        same(row["macs_kendall_tau"]["value"], stats.kendalltau(macs, truth)[0])
        for name in ("kendall_tau", "spearman_rho", "macs_kendall_tau"):
            assert {"ci_low", "ci_high"} <= set(row[name])
        top = int(np.argmax(scores))  # the first of equal best scores
        assert row["top1_truth"] == truth[top]
        assert row["mean_score"] == pytest.approx(scores.mean(), abs=1e-12)
        assert row["calib_mode"] == "exact"  # the search flag file's (the default) mode
        assert row["cells"] == archs and row["truth"] == truth.tolist()
        assert summary[chosen.index(step)] == without_per_cell(row)

    # the last checkpoint scores the cells as spos_tf.rank scored them (same weights, same data);
    # the first one holds other weights, so some cell scores differently
    np.testing.assert_array_equal(
        rows[12]["scores"], [float(r["supernet_accuracy"]) for r in ranking]
    )
    assert rows[4]["scores"] != rows[12]["scores"]


def test_the_ranking_app_scores_an_earlier_checkpoint_with_supernet_step(tau_run):
    """``spos_tf.rank --supernet_step=4`` scores the ranking's cells as this script scored the
    checkpoint of step 4 (two code paths: the app restores the run at that step, the script reads
    the checkpoint file into a restored model), and records the step."""
    base, out, _ = tau_run
    run_app(
        "rank",
        f"--flagfile={NB201_RANK}",
        f"--supernet_dir={base / 'supernet'}",
        f"--workdir={base / 'rank_at_4'}",
        f"--data_dir={base / 'tfds'}",
        f"--ground_truth={base / 'table.csv'}",
        "--supernet_step=4",
        "--noprogress",
    )
    with open(base / "rank_at_4" / "ranking.csv") as f:
        ranking = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
    step_4 = json.loads((out / "step_4.json").read_text())
    assert [r["arch"] for r in ranking] == step_4["cells"]
    np.testing.assert_array_equal(
        [float(r["supernet_accuracy"]) for r in ranking], step_4["scores"]
    )
    assert json.loads((base / "rank_at_4" / "ranking.json").read_text())["supernet_step"] == 4
    assert json.loads((base / "rank" / "ranking.json").read_text())["supernet_step"] is None


def test_a_rerun_scores_only_the_checkpoints_not_yet_scored(tau_run):
    base, out, _ = tau_run
    finished = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("step_*.json")}
    stdout = run_script("tau_vs_epochs.py", *tau_args(base, out, every=1)).stdout
    assert [line.split(":")[0] for line in stdout.splitlines() if line.startswith("step ")] == [
        "step 8"
    ]
    for name, before in finished.items():  # not rewritten, not even with the same bytes
        assert ((out / name).read_bytes(), (out / name).stat().st_mtime_ns) == before
    summary = json.loads((out / "tau_vs_epochs.json").read_text())
    assert [r["step"] for r in summary] == saved_steps(base / "supernet") == [4, 8, 12]
    middle = json.loads((out / "step_8.json").read_text())
    assert summary[1] == without_per_cell(middle)


@pytest.mark.parametrize(
    "change, stale",
    [
        ("--max_archs=4", "archs, cells, truth"),
        ("--calib_mode=batch_stats", "calib_mode"),
        ("--ground_truth={base}/table.csv:CIFAR100TestAccuracy200Epochs", "truth"),
    ],
)
def test_a_rerun_with_other_cells_scoring_or_truth_is_refused_before_writing(
    tau_run, change, stale, monkeypatch
):
    base, out, _ = tau_run
    before = snapshot(out, mtimes=True)
    script = import_benchmark("tau_vs_epochs")
    args = [*map(str, tau_args(base, out, every=1)), change.format(base=base)]
    monkeypatch.setattr(sys, "argv", ["tau_vs_epochs.py", *args])
    with pytest.raises(SystemExit, match=f"scored with other {stale} than this run's"):
        script.main()
    assert snapshot(out, mtimes=True) == before
