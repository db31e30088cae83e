"""Subprocess entry point for tests/search/test_oracle_distributed.py: one KerasTuner chief or worker.

Usage: ``python tests/_oracle_distributed_worker.py WORKDIR`` with ``KERASTUNER_TUNER_ID``,
``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT`` set. The chief serves the EvolutionOracle and, when
the search ends, writes every trial to ``WORKDIR/chief.json``. A worker runs trials with a synthetic
objective (no model) and writes the trials it ran to ``WORKDIR/<id>.json``.

The chief's oracle waits for both workers (``wait_for_tuners=2``): KerasTuner's chief exits once every tuner
it has *seen* got STOPPED, and without the wait a worker whose first request came after the other had
finished the whole search found the chief gone (seen on a loaded CI machine).
"""

import json
import os
import sys
import time

import keras_tuner as kt

from spos_tf.search.oracle import EvolutionOracle

NUM_GENES, NUM_VALUES = 8, 4
MAX_TRIALS, POPULATION = 30, 10
WORKERS = ("tuner0", "tuner1")
COST_LIMIT = 14


def cost(values):
    return float(sum(values.values()))


def score(values):
    return float(sum((g % 3 + 1) * v for g, v in enumerate(values.values())))


HOLD_POLLS, HOLD_POLL_S = 6000, 0.01  # a worker waits at most 60 s for the other (see below)


def hold_until_every_worker_has_a_trial(workdir, tuner_id):
    """Called by a worker on its first trial: marks that it holds one (``WORKDIR/holds_<id>``) and
    waits until every worker has marked, so that each runs at least one trial however fast the
    other is. This cannot deadlock: generation 0 hands out ``POPULATION`` (10) candidates at once,
    so while this worker holds one the other can still get one. The wait polls a bounded number
    of times; past it the worker carries on, and the test fails on the worker that ran nothing."""
    with open(os.path.join(workdir, f"holds_{tuner_id}"), "w"):
        pass
    for _ in range(HOLD_POLLS):
        if all(os.path.exists(os.path.join(workdir, f"holds_{w}")) for w in WORKERS):
            return
        time.sleep(HOLD_POLL_S)


class SyntheticTuner(kt.Tuner):
    """Scores a candidate from its values; records what it ran."""

    def __init__(self, *args, workdir, **kwargs):
        super().__init__(*args, **kwargs)
        self.workdir, self.ran = workdir, []

    def run_trial(self, trial, *args, **kwargs):
        if not self.ran:
            hold_until_every_worker_has_a_trial(self.workdir, self.tuner_id)
        values = dict(trial.hyperparameters.values)
        self.ran.append({"trial_id": trial.trial_id, "values": values})
        return {"score": score(values)}


def main(workdir):
    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    hps = kt.HyperParameters()
    for g in range(NUM_GENES):
        hps.Choice(f"g{g}", list(range(NUM_VALUES)))
    oracle = EvolutionOracle(
        kt.Objective("score", "max"),
        max_trials=MAX_TRIALS,
        population_size=POPULATION,
        num_parents=4,
        num_crossover=4,
        num_mutation=4,
        constraint={"cost": (cost, COST_LIMIT)},
        hyperparameters=hps,
        seed=3,
        wait_for_tuners=len(WORKERS),
    )
    oracle.verbose = 0
    tuner = SyntheticTuner(
        oracle=oracle,
        directory=os.path.join(workdir, tuner_id),
        project_name="p",
        overwrite=True,
        workdir=workdir,
    )
    if "chief" in tuner_id:
        oracle.check_feasible()  # an infeasible constraint would otherwise leave the chief serving forever
        tuner.search(verbose=0)  # serves the oracle; returns once every worker got STOPPED
        trials = [
            {
                "trial_id": t.trial_id,
                "values": t.hyperparameters.values,
                "status": t.status,
                "generation": oracle.generation_of(t.trial_id),
            }
            for t in oracle.trials.values()
        ]
        out = trials
    else:
        tuner.search()
        out = tuner.ran
    with open(os.path.join(workdir, f"{tuner_id}.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1])
