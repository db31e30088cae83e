"""EvolutionOracle served by a KerasTuner chief to two workers over gRPC on 127.0.0.1 (about 15-30 s)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _oracle_distributed_worker as job  # noqa: E402  (constants only; importing it loads keras_tuner)
from _distributed import free_port, tuner_env  # noqa: E402  (tests/_distributed.py)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).parent / "_oracle_distributed_worker.py"
TIMEOUT_S = 240  # the chief polls every 20 s once a worker is stopped; CI machines are loaded


def test_chief_and_two_workers_share_one_deduplicated_constrained_search(tmp_path):
    port = free_port()
    procs = {}
    try:
        for tuner_id in ("chief",) + job.WORKERS:
            procs[tuner_id] = subprocess.Popen(
                [sys.executable, str(SCRIPT), str(tmp_path)], env=tuner_env(tuner_id, port), cwd=REPO,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        logs = {}
        for tuner_id, proc in procs.items():
            try:
                logs[tuner_id], _ = proc.communicate(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{tuner_id} did not finish in {TIMEOUT_S} s (hang?)")
            assert proc.returncode == 0, f"{tuner_id} failed:\n{logs[tuner_id][-3000:]}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    trials = json.loads((tmp_path / "chief.json").read_text())
    ran = {w: json.loads((tmp_path / f"{w}.json").read_text()) for w in job.WORKERS}

    assert len(trials) == job.MAX_TRIALS
    assert all(t["status"] == "COMPLETED" for t in trials)
    keys = [tuple(t["values"].values()) for t in trials]
    assert len(set(keys)) == len(keys), "an architecture was evaluated twice"
    assert all(job.cost(t["values"]) <= job.COST_LIMIT for t in trials)
    assert sorted({t["generation"] for t in trials}) == [0, 1, 2]

    for worker, done in ran.items():
        assert done, f"{worker} ran no trial"
    ran_ids = [r["trial_id"] for done in ran.values() for r in done]
    assert sorted(ran_ids) == sorted(t["trial_id"] for t in trials), "each trial ran exactly once"
    ran_keys = [tuple(r["values"].values()) for done in ran.values() for r in done]
    assert len(set(ran_keys)) == len(ran_keys)
