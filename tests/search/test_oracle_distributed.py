"""EvolutionOracle served by a KerasTuner chief to two workers over gRPC on 127.0.0.1 (about 15-30 s)."""

import json
import sys
from pathlib import Path

import pytest

import _oracle_distributed_worker as job  # constants only; importing it loads keras_tuner
from _distributed import run_chief_and_workers  # tests/_distributed.py

pytestmark = pytest.mark.slow  # starts several app processes

SCRIPT = Path(__file__).parents[1] / "_oracle_distributed_worker.py"
TIMEOUT_S = 240  # the chief polls every 20 s once a worker is stopped; CI machines are loaded


def test_chief_and_two_workers_share_one_deduplicated_constrained_search(tmp_path):
    run_chief_and_workers([sys.executable, str(SCRIPT), str(tmp_path)], job.WORKERS, TIMEOUT_S)

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
