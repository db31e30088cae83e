"""``python -m spos_tf.search`` as a KerasTuner chief and two workers on 127.0.0.1 (about 60-120 s on
2 cores: each worker restores and traces its own copy of the supernet)."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _supernet_workdir import tiny_space, trained_supernet_dir  # noqa: E402

from spos_tf import costs, search_lib  # noqa: E402
from _distributed import free_port, tuner_env  # noqa: E402  (tests/_distributed.py)

REPO = Path(__file__).resolve().parents[1]
TINY_FLAGS = REPO / "flags" / "tiny_search.cfg"
WORKERS = ("tuner0", "tuner1")
TIMEOUT_S = 300


def test_chief_serves_workers_score_and_chief_writes_the_results(tmp_path_factory, tmp_path):
    supernet_dir = trained_supernet_dir(tmp_path_factory)
    workdir = tmp_path / "search"
    port = free_port()
    args = [sys.executable, "-m", "spos_tf.search", f"--flagfile={TINY_FLAGS}",
            f"--supernet_dir={supernet_dir}", f"--workdir={workdir}", "--algorithm=evolution"]
    procs, logs = {}, {}
    try:
        for tuner_id in ("chief",) + WORKERS:
            procs[tuner_id] = subprocess.Popen(args, env=tuner_env(tuner_id, port), cwd=REPO,
                                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                               text=True)
        for tuner_id, proc in procs.items():
            try:
                logs[tuner_id], _ = proc.communicate(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{tuner_id} did not finish in {TIMEOUT_S} s")
            assert proc.returncode == 0, f"{tuner_id} failed:\n{logs[tuner_id][-4000:]}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    evaluated = {w: int(logs[w].split("Worker done")[1].split(":")[1].split()[0]) for w in WORKERS}
    assert sum(evaluated.values()) == 24, (evaluated, logs)
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
    assert sorted(p.name for p in (workdir / "evolution").glob("tuner*.json")) == \
        [f"{w}.json" for w in WORKERS]
