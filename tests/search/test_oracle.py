"""Contract tests of spos_tf.search.oracle on synthetic objectives (no model training; about 15 s on 2 cores)."""

import json
import os
import sys
import textwrap
from pathlib import Path

import keras_tuner as kt
import numpy as np
import pytest
from keras_tuner.engine.trial import TrialStatus

from spos_tf.search.oracle import EvolutionOracle, InfeasibleConstraintError, RandomSearchOracle

import _apps

REPO = Path(__file__).resolve().parents[2]
NUM_GENES, NUM_VALUES = 20, 4
WEIGHTS = np.random.default_rng(1234).normal(size=(NUM_GENES, NUM_VALUES))
ORACLES = [EvolutionOracle, RandomSearchOracle]
# keras_tuner 1.4.8's @synchronized calls the deprecated threading.currentThread() on every oracle call.
pytestmark = pytest.mark.filterwarnings("ignore:currentThread|getName:DeprecationWarning")


def big_space():
    hps = kt.HyperParameters()
    for g in range(NUM_GENES):
        hps.Choice(f"g{g}", list(range(NUM_VALUES)))
    return hps


def separable_score(values):
    return float(sum(WEIGHTS[g, values[f"g{g}"]] for g in range(NUM_GENES)))


def total(values):
    return float(sum(values.values()))


def threes(values):
    return float(sum(v == 3 for v in values.values()))


def make(cls, tmp_path, name="p", space=None, seed=0, max_trials=100, persist=True, **kwargs):
    if cls is EvolutionOracle:
        kwargs = dict(
            dict(population_size=20, num_parents=5, num_crossover=8, num_mutation=8), **kwargs
        )
    oracle = cls(
        kt.Objective("score", "max"),
        max_trials=max_trials,
        hyperparameters=big_space() if space is None else space,
        seed=seed,
        **kwargs,
    )
    oracle._set_project_dir(
        str(tmp_path), name
    )  # what a Tuner does; trials and oracle.json go there
    oracle.verbose = 0
    if (
        not persist
    ):  # KerasTuner writes oracle.json + trial.json via tf.io.gfile per call: ~80% of the time
        oracle.save = lambda: None
        oracle._save_trial = lambda trial: None
    return oracle


def drive(oracle, score=separable_score, stop_after=None, fail_every=None, evaluated=None):
    """Runs trials one at a time like a single KerasTuner worker; returns [(trial_id, values)] proposed.

    With ``stop_after``, the last proposed trial is left RUNNING (never ended), as in a killed process.
    """
    proposed = []
    while stop_after is None or len(proposed) < stop_after:
        trial = oracle.create_trial("tuner0")
        if trial.status == TrialStatus.STOPPED:
            break
        assert trial.status == TrialStatus.RUNNING
        values = dict(trial.hyperparameters.values)
        proposed.append((trial.trial_id, values))
        if stop_after is not None and len(proposed) == stop_after:
            break
        if evaluated is not None:
            evaluated.append(tuple(values.values()))
        if fail_every and len(proposed) % fail_every == 0:
            trial.status = TrialStatus.FAILED
        else:
            oracle.update_trial(trial.trial_id, {"score": score(values)})
            trial.status = TrialStatus.COMPLETED
        oracle.end_trial(trial)
    return proposed


def keys(proposed):
    return [tuple(values.values()) for _, values in proposed]


# --------------------------------------------------------------------------- constraint and dedupe
@pytest.mark.parametrize("cls", ORACLES)
@pytest.mark.parametrize("form", ["callable", "dict"])
def test_constraint_never_violated_and_nothing_evaluated_twice(tmp_path, cls, form):
    # ~16% of the space is legal under the callable form.
    constraint = (
        (lambda v: total(v) <= 25)
        if form == "callable"
        else {"total": (total, 25), "threes": (threes, 3)}
    )
    oracle = make(cls, tmp_path, constraint=constraint, max_trials=120)
    proposed = drive(oracle, fail_every=9)
    assert len(proposed) == 120
    for _, values in proposed:
        assert total(values) <= 25
        if form == "dict":
            assert threes(values) <= 3
            assert oracle.costs_of(values) == {"total": total(values), "threes": threes(values)}
        else:
            assert oracle.costs_of(values) == {}
    assert len(set(keys(proposed))) == len(proposed), (
        "duplicate architecture (failed ones count as seen)"
    )


def first_two(values):
    """A toy equivalence: candidates agreeing on genes g0 and g1 count as one (16 classes)."""
    return (values["g0"], values["g1"])


@pytest.mark.parametrize("cls", ORACLES)
def test_equivalence_hands_out_one_candidate_per_class_also_after_a_resume(tmp_path, cls):
    kwargs = dict(max_trials=40, seed=5, equivalence=first_two, max_sample_tries=2000)
    first = make(cls, tmp_path, name="eq", **kwargs)
    before = drive(first, stop_after=9)  # trial 9 left RUNNING, as in a killed process
    del first
    resumed = make(cls, tmp_path, name="eq", **dict(kwargs, seed=None))
    resumed.reload()
    after = drive(resumed)
    classes = [first_two(v) for _, v in before + after[1:]]
    # 16 classes in all: each handed out once, then the space counts as exhausted
    assert len(classes) == len(set(classes)) == NUM_VALUES**2
    # without the equivalence the same oracle hands out the 40 it is allowed
    plain = drive(make(cls, tmp_path, name="plain", max_trials=40, seed=5))
    assert len(plain) == 40 and len({first_two(v) for _, v in plain}) < 40


@pytest.mark.parametrize("cls", ORACLES)
def test_small_mixed_space_is_enumerated_exactly_then_stops(tmp_path, cls):
    space = kt.HyperParameters()
    space.Int("width", 8, 16, step=4)  # 8, 12, 16
    space.Boolean("se")
    space.Choice("act", ["relu", "swish"])
    space.Fixed("depth", 3)
    space.Float("drop", 0.0, 0.2, step=0.1)  # a stepped Float is discrete too
    legal = lambda v: not (v["width"] == 16 and v["se"])  # noqa: E731  (36 candidates, 30 legal)
    oracle = make(
        cls,
        tmp_path,
        space=space,
        constraint=legal,
        max_trials=None,
        **(
            dict(population_size=8, num_parents=3, num_crossover=3, num_mutation=3)
            if cls is EvolutionOracle
            else {}
        ),
    )
    proposed = drive(oracle, score=lambda v: v["width"] + v["se"] + v["drop"])
    got = keys(proposed)
    assert len(got) == len(set(got)) == 30
    assert all(legal(v) for _, v in proposed)
    assert {type(v["width"]) for _, v in proposed} == {int}
    assert {type(v["se"]) for _, v in proposed} == {bool}
    assert {v["depth"] for _, v in proposed} == {3}
    assert oracle.create_trial("tuner0").status == TrialStatus.STOPPED  # exhausted, and stays so


# --------------------------------------------------------------------------- seeds and resume
@pytest.mark.parametrize("cls", ORACLES)
def test_seed_determines_the_sequence(tmp_path, cls):
    runs = {
        name: keys(
            drive(
                make(
                    cls,
                    tmp_path,
                    name=name,
                    seed=seed,
                    max_trials=60,
                    constraint={"total": (total, 30)},
                )
            )
        )
        for name, seed in [("a", 7), ("b", 7), ("c", 8)]
    }
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


@pytest.mark.parametrize("cls", ORACLES)
def test_resume_after_kill_continues_exactly_and_reevaluates_nothing(tmp_path, cls):
    kwargs = dict(max_trials=90, constraint={"total": (total, 32)}, seed=11)
    reference = drive(make(cls, tmp_path, name="reference", **kwargs))

    evaluated = []
    first = make(cls, tmp_path, name="killed", **kwargs)
    before = drive(
        first, stop_after=47, evaluated=evaluated
    )  # mid-generation; trial 46 left RUNNING
    assert first.get_trial(before[-1][0]).status == TrialStatus.RUNNING
    del first  # "kill": only the files written by KerasTuner survive

    resumed = make(
        cls, tmp_path, name="killed", **dict(kwargs, seed=None)
    )  # the seed comes from the state
    resumed.reload()
    after = drive(resumed, evaluated=evaluated)

    assert after[0] == before[-1], (
        "the RUNNING trial is re-issued first, with the same id and values"
    )
    assert before + after[1:] == reference
    assert len(evaluated) == len(set(evaluated)) == 90, "nothing evaluated twice"
    reference_oracle = make(cls, tmp_path, name="reference", **kwargs)
    reference_oracle.reload()
    assert [resumed.generation_of(t) for t, _ in reference] == [
        reference_oracle.generation_of(t) for t, _ in reference
    ]


def test_generation_is_handed_out_then_idle_until_every_member_finished(tmp_path):
    oracle = make(
        EvolutionOracle, tmp_path, population_size=4, num_parents=2, num_crossover=2, num_mutation=2
    )
    trials = [oracle.create_trial(f"tuner{i}") for i in range(4)]
    assert [t.status for t in trials] == [TrialStatus.RUNNING] * 4
    assert oracle.create_trial("tuner4").status == TrialStatus.IDLE
    for trial in trials[:3]:
        oracle.update_trial(
            trial.trial_id, {"score": separable_score(trial.hyperparameters.values)}
        )
        trial.status = TrialStatus.COMPLETED
        oracle.end_trial(trial)
    assert oracle.create_trial("tuner0").status == TrialStatus.IDLE
    trials[3].status = TrialStatus.FAILED  # a failed member also finishes the generation
    oracle.end_trial(trials[3])
    nxt = oracle.create_trial("tuner0")
    assert nxt.status == TrialStatus.RUNNING
    assert [oracle.generation_of(t.trial_id) for t in trials + [nxt]] == [0, 0, 0, 0, 1]
    assert oracle.generation == 1
    with pytest.raises(KeyError, match="nope"):
        oracle.generation_of("nope")


@pytest.mark.parametrize("cls", [EvolutionOracle, RandomSearchOracle])
def test_wait_for_tuners_hands_out_nothing_until_every_worker_asked(tmp_path, cls):
    oracle = make(cls, tmp_path, wait_for_tuners=3)
    assert [oracle.create_trial("tuner0").status for _ in range(3)] == [TrialStatus.IDLE] * 3
    assert oracle.create_trial("tuner1").status == TrialStatus.IDLE
    assert not oracle.trials, "a waiting oracle must not record trials"
    first = oracle.create_trial("tuner2")  # the third distinct tuner: the search starts
    assert first.status == TrialStatus.RUNNING
    second = oracle.create_trial("tuner0")
    assert second.status == TrialStatus.RUNNING
    # Same proposals as an oracle that never waited (waiting consumes no randomness).
    plain = make(cls, tmp_path, name="plain")
    assert [plain.create_trial(f"t{i}").hyperparameters.values for i in range(2)] == [
        first.hyperparameters.values,
        second.hyperparameters.values,
    ]


# --------------------------------------------------------------------------- parents by mean rank
def _hand_mean_ranks(columns):
    """Mean rank per row, by counting: rank = 1 + (#lower) + (#equal - 1) / 2, per column."""
    n = len(columns[0])
    return [
        sum(1 + sum(o < c[i] for o in c) + (sum(o == c[i] for o in c) - 1) / 2 for c in columns)
        / len(columns)
        for i in range(n)
    ]


def test_parent_metrics_choose_the_parents_by_their_mean_rank(tmp_path):
    """With parent_metrics the parents of generation 1 are the top by the mean rank of the named
    metrics (checked against ranks counted by hand, ties included), not by the objective; the
    objective still decides get_best_trials."""
    oracle = make(EvolutionOracle, tmp_path, parent_metrics=("score", "prior"))
    plain = make(EvolutionOracle, tmp_path, name="plain")
    generation = []
    for _ in range(20):
        trial = oracle.create_trial("tuner0")
        values = dict(trial.hyperparameters.values)
        generation.append(values)
        # the prior is coarse (5 levels), so its ranks tie
        metrics = {"score": separable_score(values), "prior": float(threes(values) // 2)}
        oracle.update_trial(trial.trial_id, metrics)
        trial.status = TrialStatus.COMPLETED
        oracle.end_trial(trial)
    keys_ = [tuple(values.values()) for values in generation]
    score = [separable_score(values) for values in generation]
    prior = [float(threes(values) // 2) for values in generation]
    assert len(set(prior)) < len(prior), "the prior must tie for this test to check ties"
    mean = _hand_mean_ranks([score, prior])
    order = sorted(range(20), key=lambda i: (-mean[i], i))  # ties: the earlier candidate
    expected = [keys_[i] for i in order[:5]]
    by_score = [keys_[i] for i in sorted(range(20), key=lambda i: -score[i])[:5]]
    assert expected != by_score, "pick metrics whose tops differ"
    assert oracle._top_parents() == expected
    assert oracle.get_best_trials(1)[0].score == max(score)
    # the next generation is bred from those parents: every crossover child takes each gene
    # from one of them
    child = oracle.create_trial("tuner0")
    assert oracle.generation_of(child.trial_id) == 1
    genes = list(child.hyperparameters.values.values())
    assert all(any(p[g] == v for p in expected) for g, v in enumerate(genes))
    # without parent_metrics the same scores give the objective's parents
    for _ in range(20):
        trial = plain.create_trial("tuner0")
        plain.update_trial(trial.trial_id, {"score": separable_score(trial.hyperparameters.values)})
        trial.status = TrialStatus.COMPLETED
        plain.end_trial(trial)
    assert plain._top_parents() == by_score


def test_parent_metrics_name_a_metric_a_trial_did_not_report(tmp_path):
    oracle = make(
        EvolutionOracle,
        tmp_path,
        population_size=2,
        num_parents=1,
        num_crossover=0,
        num_mutation=1,
        parent_metrics=("score", "synflow"),
    )
    for _ in range(2):
        trial = oracle.create_trial("tuner0")
        oracle.update_trial(trial.trial_id, {"score": 1.0})
        trial.status = TrialStatus.COMPLETED
        oracle.end_trial(trial)
    with pytest.raises(ValueError, match=r"without the metric 'synflow'.*report it"):
        oracle.create_trial("tuner0")


# --------------------------------------------------------------------------- search quality
@pytest.mark.slow
def test_evolution_beats_random_search_at_equal_evaluations(tmp_path):
    best = {EvolutionOracle: [], RandomSearchOracle: []}
    for seed in range(5):
        for cls in best:
            extra = (
                dict(population_size=30, num_parents=10, num_crossover=15, num_mutation=15)
                if cls is EvolutionOracle
                else {}
            )
            oracle = make(
                cls,
                tmp_path,
                name=f"{cls.__name__}{seed}",
                seed=seed,
                max_trials=300,
                constraint={"total": (total, 40)},
                persist=False,
                **extra,
            )
            proposed = drive(oracle)
            assert len(proposed) == 300
            best[cls].append(max(separable_score(v) for _, v in proposed))
    evolution, random = np.mean(best[EvolutionOracle]), np.mean(best[RandomSearchOracle])
    assert evolution > random, (best[EvolutionOracle], best[RandomSearchOracle])
    assert min(best[EvolutionOracle]) > max(
        best[RandomSearchOracle]
    )  # by a wide margin in practice


# --------------------------------------------------------------------------- errors
def test_check_feasible_passes_without_side_effects(tmp_path):
    oracle = make(
        EvolutionOracle, tmp_path, space=kt.HyperParameters(), constraint={"total": (total, 25)}
    )
    oracle.update_space(big_space())
    oracle.check_feasible()
    extra = kt.HyperParameters()
    extra.Boolean("late")  # the space may still grow after the check
    oracle.update_space(extra)
    reference = make(
        EvolutionOracle,
        tmp_path,
        name="r",
        constraint={"total": (total, 25)},
        space=oracle.get_space(),
    )
    assert keys(drive(oracle)) == keys(drive(reference)), "the check consumed no randomness"


@pytest.mark.parametrize("cls", ORACLES)
@pytest.mark.parametrize("small", [False, True])
def test_infeasible_constraint_raises_clear_error(tmp_path, cls, small):
    space = None
    if small:
        space = kt.HyperParameters()
        space.Choice("a", [1, 2, 3])
    oracle = make(
        cls,
        tmp_path,
        space=space,
        constraint={"macs": (lambda v: 1e9, 330e6)},
        max_sample_tries=500,
    )
    with pytest.raises(InfeasibleConstraintError, match=r"infeasible.*macs <= 330000000"):
        oracle.check_feasible()  # what a chief should call before serving
    with pytest.raises(InfeasibleConstraintError, match=r"infeasible.*macs <= 330000000"):
        oracle.create_trial("tuner0")

    def never(values):
        return False

    oracle = make(cls, tmp_path, name="q", space=space, constraint=never, max_sample_tries=500)
    with pytest.raises(ValueError, match="infeasible.*never"):
        oracle.create_trial("tuner0")


@pytest.mark.parametrize(
    "declare",
    [
        lambda hp: hp.Float("lr", 1e-4, 1e-1, sampling="log"),
        lambda hp: hp.Float("lr", 0.0, 1.0),
        lambda hp: hp.Int("lr", 1, 1024, sampling="log"),
    ],
)
def test_continuous_hyperparameter_is_rejected_naming_it(tmp_path, declare):
    space = big_space()
    declare(space)
    with pytest.raises(ValueError, match="'lr' is continuous"):
        make(EvolutionOracle, tmp_path, space=space)
    # Declared later (by a hypermodel through update_space): rejected at the first proposal.
    oracle = make(RandomSearchOracle, tmp_path, space=kt.HyperParameters())
    oracle.update_space(space)
    with pytest.raises(ValueError, match="'lr' is continuous"):
        oracle.create_trial("tuner0")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(population_size=10, num_crossover=6, num_mutation=6),
            ValueError,
            "must not exceed population_size",
        ),
        (dict(num_parents=0), ValueError, "num_parents must be an int >= 1; got 0"),
        (dict(mutation_prob=1.5), ValueError, "mutation_prob .* 1.5"),
        (dict(constraint=42), TypeError, "got 42"),
        (dict(constraint={"macs": 330e6}), ValueError, r"constraint\['macs'\]"),
        (dict(seed=-1), ValueError, "seed .* -1"),
        (dict(wait_for_tuners=-1), ValueError, "wait_for_tuners must be an int >= 0; got -1"),
        (dict(parent_metrics="score"), ValueError, "parent_metrics must be None or a sequence"),
        (dict(parent_metrics=()), ValueError, "parent_metrics must name at least one"),
    ],
)
def test_bad_settings_fail_fast(kwargs, error, match):
    with pytest.raises(error, match=match):
        EvolutionOracle(
            kt.Objective("score", "max"), max_trials=10, hyperparameters=big_space(), **kwargs
        )


# --------------------------------------------------------------------------- a real Keras 3 tuner
KERAS3_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from spos_tf.search.oracle import EvolutionOracle  # sets TF_USE_LEGACY_KERAS=1; Keras 3 must not care
    import keras
    import keras_tuner as kt

    class DenseTuner(kt.Tuner):
        def run_trial(self, trial, x, y, **kwargs):
            hp = trial.hyperparameters
            model = keras.Sequential([keras.Input((8,)),
                                      keras.layers.Dense(hp.get("units"), activation=hp.get("act")),
                                      keras.layers.Dense(1, activation="sigmoid", use_bias=hp.get("bias"))])
            assert isinstance(model, keras.Model)
            model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
            history = model.fit(x, y, epochs=1, batch_size=32, verbose=0)
            return {"acc": float(history.history["accuracy"][-1])}

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("float32")
    hps = kt.HyperParameters()
    hps.Int("units", 4, 16, step=4)
    hps.Choice("act", ["relu", "tanh"])
    hps.Boolean("bias")
    oracle = EvolutionOracle(kt.Objective("acc", "max"), max_trials=6, population_size=4, num_parents=2,
                             num_crossover=2, num_mutation=2, constraint={"units": (lambda v: v["units"], 12)},
                             hyperparameters=hps, seed=1)
    tuner = DenseTuner(oracle=oracle, directory=sys.argv[1], project_name="k3", overwrite=True)
    tuner.search(x, y, verbose=0)
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    print("RESULT" + json.dumps({"keras": keras.__version__, "values": [t.hyperparameters.values for t in trials],
                                 "status": [t.status for t in trials],
                                 "generation": [oracle.generation_of(t.trial_id) for t in trials]}))
""")


@pytest.mark.slow
def test_keras3_tuner_drives_evolution_oracle(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TF_USE_LEGACY", "KERAS", "KERASTUNER_"))
    }
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = _apps.run([sys.executable, "-c", KERAS3_SCRIPT, tmp_path], env=env, timeout=120)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    result = json.loads(line[len("RESULT") :])
    assert result["keras"].startswith("3.")
    assert result["status"] == ["COMPLETED"] * 6
    assert result["generation"] == [0, 0, 0, 0, 1, 1]
    values = result["values"]
    assert all(
        v["units"] in (4, 8, 12) and v["act"] in ("relu", "tanh") and isinstance(v["bias"], bool)
        for v in values
    )
    assert len({tuple(v.values()) for v in values}) == 6


def test_search_cfg_evaluates_exactly_the_releases_budget(tmp_path):
    """flags/search.cfg: the release's evolution evaluates a population of 50, then 20
    generations of 25 crossover + 25 mutation children: 50 + 20 x 50 = 1,050 candidates. Driving
    the oracle with the flag file's settings on a 4^20 space proposes exactly that many, in 21
    generations of 50, and nothing twice."""
    from spos_tf.search import __main__ as search_app
    from spos_tf.runs.config_flags import parse_flagfile

    config = search_app.config_from_flags(
        parse_flagfile(search_app.define_flags, str(REPO / "flags" / "search.cfg"))
    )
    children = config.num_crossover + config.num_mutation
    assert (config.population_size, children, config.max_trials) == (50, 50, 1050)
    oracle = make(
        EvolutionOracle,
        tmp_path,
        max_trials=config.max_trials,
        persist=False,
        population_size=config.population_size,
        num_parents=config.num_parents,
        num_crossover=config.num_crossover,
        num_mutation=config.num_mutation,
        mutation_prob=config.mutation_prob,
    )
    proposed = drive(oracle)
    assert len(proposed) == 1050 and len(set(keys(proposed))) == 1050
    generations = [oracle.generation_of(t) for t, _ in proposed]
    assert max(generations) == 20 and np.bincount(generations).tolist() == [50] * 21
