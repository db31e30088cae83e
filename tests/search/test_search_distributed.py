"""``python -m spos_tf.search`` as a KerasTuner chief and two workers on 127.0.0.1 (about 60-120 s on
2 cores: each worker restores and traces its own copy of the supernet)."""

import csv
import json
import sys
from pathlib import Path

import pytest

from _supernet_workdir import tiny_space, trained_supernet_dir

from spos_tf import costs
from spos_tf import search as search_lib
from _distributed import run_chief_and_workers  # tests/_distributed.py

pytestmark = pytest.mark.slow  # starts several app processes

REPO = Path(__file__).resolve().parents[2]
TINY_FLAGS = REPO / "flags" / "tiny_search.cfg"
WORKERS = ("tuner0", "tuner1")
TIMEOUT_S = 300


def test_chief_serves_workers_score_and_chief_writes_the_results(tmp_path_factory, tmp_path):
    supernet_dir = trained_supernet_dir(tmp_path_factory)
    workdir = tmp_path / "search"
    args = [
        sys.executable,
        "-m",
        "spos_tf.search",
        f"--flagfile={TINY_FLAGS}",
        f"--supernet_dir={supernet_dir}",
        f"--workdir={workdir}",
        "--algorithm=evolution",
        f"--wait_for_workers={len(WORKERS)}",
    ]
    logs = run_chief_and_workers(args, WORKERS, TIMEOUT_S)

    evaluated = {w: int(logs[w].split("Worker done")[1].split(":")[1].split()[0]) for w in WORKERS}
    assert sum(evaluated.values()) == 24, (evaluated, logs)
    assert all(evaluated.values()), (
        f"--wait_for_workers: both workers must get candidates: {evaluated}"
    )
    with open(workdir / search_lib.HISTORY_FILE) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len({r["arch"] for r in rows}) == 24
    table = costs.CostTable(tiny_space())
    assert all(table.macs(tiny_space().parse(r["arch"])) <= 2.5e6 for r in rows)
    best = json.loads((workdir / search_lib.BEST_FILE).read_text())
    assert best["accuracy"] == max(float(r["accuracy"]) for r in rows)
    assert (workdir / search_lib.PLOT_FILE).exists()
    assert "Done in" in logs["chief"]
    # Workers wrote only their KerasTuner tuner files.
    assert sorted(p.name for p in (workdir / "evolution").glob("tuner*.json")) == [
        f"{w}.json" for w in WORKERS
    ]
