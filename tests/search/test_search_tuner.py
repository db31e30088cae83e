"""spos_tf.search.tuner: the oracle built from the settings and the tuner that scores candidates
through an evaluator (here a stand-in: a function of the architecture, no supernet)."""

import dataclasses
import time

import numpy as np
import pytest

from spos_tf.search import config as search_config
from spos_tf.search import tuner as search_tuner
from spos_tf.search.oracle import EvolutionOracle, RandomSearchOracle
from spos_tf.search.config import SearchConfig

from _supernet_workdir import tiny_space

pytestmark = pytest.mark.filterwarnings("ignore:currentThread|getName:DeprecationWarning")


def _config(**changes):
    return SearchConfig(
        supernet_dir="/s",
        workdir="/w",
        population_size=4,
        num_parents=2,
        num_crossover=2,
        num_mutation=2,
        max_trials=6,
        seed=3,
        **changes,
    )


def _score(arch):
    return sum(sum(g) for g in arch.genes) / 100.0


def test_make_oracle_takes_the_settings_and_the_constraint():
    space = tiny_space()
    constraint = search_config.build_constraint(space, {"macs": 2.5e6})
    evolution = search_tuner.make_oracle("evolution", _config(), space, constraint)
    assert isinstance(evolution, EvolutionOracle)
    assert (evolution.population_size, evolution.num_parents, evolution.max_trials) == (4, 2, 6)
    assert isinstance(search_tuner.make_oracle("random", _config(), space), RandomSearchOracle)
    with pytest.raises(ValueError, match="unknown algorithm 'grid'"):
        search_tuner.make_oracle("grid", _config(), space)


@pytest.mark.parametrize("algorithm", ["evolution", "random"])
def test_archs_file_constraint_proposes_only_the_listed_architectures(tmp_path, algorithm):
    """--archs_file as the oracle constraint: with 6 listed architectures and 6 trials the search
    evaluates exactly those 6 (each once), whatever its algorithm breeds or draws."""
    space = tiny_space()
    rng = np.random.default_rng(7)
    listed = set()
    while len(listed) < 6:
        listed.add(space.sample(rng))
    outside = next(a for a in iter(lambda: space.sample(rng), None) if a not in listed)
    constraint = search_config.build_constraint(space, {}, allowed=listed)
    cost, limit = constraint["archs_file"]
    assert (cost(space.to_values(next(iter(listed)))), cost(space.to_values(outside))) == (0, 1)
    assert limit == 0
    oracle = search_tuner.make_oracle(algorithm, _config(), space, constraint)
    seen = []
    tuner = search_tuner.SupernetTuner(
        oracle,
        space,
        lambda arch: seen.append(arch) or _score(arch),
        directory=str(tmp_path),
        project_name=algorithm,
    )
    tuner.search(verbose=0)
    assert sorted(seen, key=str) == sorted(listed, key=str)


def test_tuner_scores_each_candidate_with_the_evaluator(tmp_path):
    space = tiny_space()
    oracle = search_tuner.make_oracle("random", _config(), space)
    seen = []

    def evaluator(arch):
        seen.append(arch)
        return _score(arch)

    ended = []
    tuner = search_tuner.SupernetTuner(
        oracle,
        space,
        evaluator,
        on_trial_end=lambda t, trial: ended.append(trial.trial_id),
        directory=str(tmp_path),
        project_name="random",
    )
    start = time.perf_counter()
    tuner.search(verbose=0)
    wall = time.perf_counter() - start
    assert tuner.evaluated == len(seen) == len(ended) == 6
    assert len(set(seen)) == 6  # never the same architecture twice
    for trial in oracle.trials.values():
        arch = space.from_values(trial.hyperparameters.values)
        assert trial.score == pytest.approx(_score(arch))
        # the evaluation's own time: a positive float, within the search's wall time
        seconds = trial.metrics.get_last_value("seconds")
        assert isinstance(seconds, float) and 0 < seconds <= wall
    durations = [t.metrics.get_last_value("seconds") for t in oracle.trials.values()]
    assert sum(durations) <= wall  # one evaluation each, not the time since the search began
    assert tuner.load_model(next(iter(oracle.trials.values()))) is None


def test_steered_evolution_reports_the_prior_in_every_trial(tmp_path):
    """--steer_by_score: the oracle ranks parents by accuracy and the score's prior, and the
    tuner reports that prior in every trial (here a stand-in prior, the sum of the genes)."""
    space = tiny_space()
    config = dataclasses.replace(_config(score="supernet+macs", steer_by_score=True), max_trials=8)
    oracle = search_tuner.make_oracle("evolution", config, space)
    assert oracle.parent_metrics == ("accuracy", "macs")
    assert search_tuner.make_oracle("evolution", _config(), space).parent_metrics is None

    def gene_sum(arch):
        return float(sum(sum(g) for g in arch.genes))

    tuner = search_tuner.SupernetTuner(
        oracle, space, _score, prior=[("macs", gene_sum)], directory=str(tmp_path), project_name="e"
    )
    tuner.search(verbose=0)
    assert len(oracle.trials) == 8 and max(oracle.generation_of(t) for t in oracle.trials) == 1
    for trial in oracle.trials.values():
        arch = space.from_values(trial.hyperparameters.values)
        assert trial.metrics.get_last_value("macs") == gene_sum(arch)
        assert trial.score == pytest.approx(_score(arch))


def test_steering_prior_is_the_scores_prior():
    """The search app's prior for --steer_by_score: MACs for supernet+macs (wiring: the cost
    table's count, tested against hand counts in tests/spaces/test_costs.py), none without the flag."""
    from spos_tf import costs
    from spos_tf.search import run as search_run

    space = tiny_space()
    [(name, fn)] = search_run.steering_prior(
        _config(score="supernet+macs", steer_by_score=True), space
    )
    arch = space.from_values({h.name: h.values[-1] for h in space.hyperparameters().space})
    assert name == "macs" and fn(arch) == costs.macs(space, arch)
    assert search_run.steering_prior(_config(score="supernet+macs"), space) is None
    both = _config(score="supernet+synflow+naswot", steer_by_score=True)
    assert [name for name, _ in search_run.steering_prior(both, space)] == ["synflow", "naswot"]


def test_a_failing_evaluator_stops_the_search_with_the_architecture_named(tmp_path):
    space = tiny_space()
    oracle = search_tuner.make_oracle("random", _config(), space)

    def broken(arch):
        raise RuntimeError("out of memory")

    tuner = search_tuner.SupernetTuner(
        oracle, space, broken, directory=str(tmp_path), project_name="random"
    )
    with pytest.raises(
        search_tuner.EvaluationError,
        match=r"evaluating architecture \d,\d,\d,\d \(trial \d+\) failed: "
        r"RuntimeError: out of memory",
    ):
        tuner.search(verbose=0)
    assert tuner.evaluated == 0


def test_evaluator_gets_the_trial_number_as_candidate_index_also_when_resumed(tmp_path):
    """An evaluator with an ``index`` parameter is called with ``int(trial.trial_id)``: 0, 1, ...
    in the order the oracle hands candidates out. A candidate that was running when the search
    stopped is evaluated again, in the resumed search, with its old index."""
    space = tiny_space()
    seen = []

    def dies_at_three(arch, index):
        if index == 3:
            raise RuntimeError("killed")
        seen.append((index, arch))
        return _score(arch)

    def tuner(evaluator):
        oracle = search_tuner.make_oracle("evolution", _config(), space)
        return search_tuner.SupernetTuner(
            oracle, space, evaluator, directory=str(tmp_path), project_name="evolution"
        )

    first = tuner(dies_at_three)
    with pytest.raises(search_tuner.EvaluationError, match=r"\(trial 3\)"):
        first.search(verbose=0)
    running = first.oracle.trials["3"]
    assert [i for i, _ in seen] == [0, 1, 2]
    assert all(first.oracle.trials[str(i)].hyperparameters.values == space.to_values(a)
               for i, a in seen)  # fmt: skip

    resumed = tuner(lambda arch, index=None: seen.append((index, arch)) or _score(arch))
    resumed.search(verbose=0)
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4, 5]
    assert space.to_values(seen[3][1]) == running.hyperparameters.values  # same candidate
    for index, arch in seen:
        assert resumed.oracle.trials[str(index)].hyperparameters.values == space.to_values(arch)
