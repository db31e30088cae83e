"""Constrained evolutionary search (Algorithm 1 of Guo et al. 2020) and its random-search baseline.

Both are KerasTuner oracles over any discrete search space (``hp.Choice``, ``hp.Boolean``, ``hp.Fixed``,
stepped ``hp.Int``/``hp.Float``); they only propose values and never touch a model: the fitness of a
candidate (set the path, recalibrate BN, evaluate) is the tuner's ``run_trial``. Shared machinery
(constraint, dedupe, seeded resumable randomness, state) is in :mod:`spos_tf.search.oracle_base`.

Example::

    hps = keras_tuner.HyperParameters()
    for b in range(20):
        hps.Choice(f"block{b}", [0, 1, 2, 3])
    oracle = EvolutionOracle(keras_tuner.Objective("val_acc", "max"), max_trials=1000,
                             constraint={"flops": (flops_of, 330e6)}, hyperparameters=hps, seed=0)
    tuner = MySupernetTuner(oracle, directory="runs", project_name="search")  # overrides run_trial
    tuner.search()
"""

from __future__ import annotations

import numpy as np
from keras_tuner.engine.trial import TrialStatus

from spos_tf.search.oracle_base import (
    ConstraintSpec,
    DiscreteSearchOracle,
    InfeasibleConstraintError,
    Key,
)

__all__ = ["EvolutionOracle", "RandomSearchOracle", "InfeasibleConstraintError"]

# Each genetic operator tries at most this many times its target count to find new legal children.
_OPERATOR_TRIES = 10


class EvolutionOracle(DiscreteSearchOracle):
    """Constrained evolutionary search over a discrete KerasTuner space (SPOS Algorithm 1).

    Generation 0 is ``population_size`` random legal candidates. Generation ``g > 0`` is built once every
    candidate of generation ``g - 1`` has finished (completed or failed): take the ``num_parents`` best
    completed candidates of *all* generations so far (by the objective and its direction; ties go to the
    earlier one), then ``num_crossover`` children by crossover (each gene from one of two distinct random
    parents) and ``num_mutation`` children by mutation (each gene of a random parent resampled uniformly
    with probability ``mutation_prob``). Each operator tries at most 10x its target to find legal candidates
    never proposed before; the generation is topped up to ``population_size`` with random legal candidates.
    While a generation is handed out but not finished, ``create_trial`` answers ``IDLE`` (distributed workers
    wait; KerasTuner's ``search`` loop re-asks at once, so they spin for the tail of a generation). A worker
    that dies leaves its trial RUNNING on the chief and the generation unfinished: restart it with the same
    ``KERASTUNER_TUNER_ID`` and KerasTuner hands it that trial again. The search stops at ``max_trials`` or
    when no new legal candidate is left.

    Dedupe, constraint, randomness and resume are as in :class:`~spos_tf.search.oracle_base.DiscreteSearchOracle`:
    generation ``g`` is drawn from ``numpy.random.default_rng([seed, g])`` and depends only on the scores
    of earlier generations, so a seeded run is reproducible, also when resumed after a kill.

    Args:
        objective: a ``keras_tuner.Objective`` (or name) whose direction decides what "best" means.
        max_trials: total number of candidates to evaluate (``None``: until exhausted).
        population_size: candidates per generation (paper: 50).
        num_parents: top-k parents (paper: 10).
        num_crossover: children by crossover per generation (paper: 25).
        num_mutation: children by mutation per generation (paper: 25).
        mutation_prob: per-gene resampling probability of a mutation (paper: 0.1).
        parent_metrics: ``None`` (the paper: parents are the best by the objective), or names of
            trial metrics, each higher = better (e.g. ``("accuracy", "synflow")``): the parents are
            then the best by the mean of each completed candidate's ranks by these metrics among
            all completed candidates (:func:`spos_tf.rank.stats.rank_average`: ``scipy.stats.rankdata``,
            average ties; ties between candidates go to the earlier one). The tuner must report
            every one of them in each trial's metrics. The objective still decides
            ``get_best_trials``.
        constraint, hyperparameters, seed, max_sample_tries, **oracle_kwargs: see
            :class:`~spos_tf.search.oracle_base.DiscreteSearchOracle`.

    Raises:
        ValueError: a setting out of range (the message quotes it), or as the base class.
    """

    def __init__(
        self,
        objective=None,
        max_trials=None,
        population_size: int = 50,
        num_parents: int = 10,
        num_crossover: int = 25,
        num_mutation: int = 25,
        mutation_prob: float = 0.1,
        parent_metrics=None,
        constraint: ConstraintSpec = None,
        hyperparameters=None,
        seed: int | None = None,
        **oracle_kwargs,
    ):
        for name, value, low in (
            ("population_size", population_size, 1),
            ("num_parents", num_parents, 1),
            ("num_crossover", num_crossover, 0),
            ("num_mutation", num_mutation, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}; got {value!r}")
        if num_crossover + num_mutation > population_size:
            raise ValueError(
                f"num_crossover + num_mutation ({num_crossover} + {num_mutation}) must not exceed "
                f"population_size ({population_size})"
            )
        if not 0.0 <= mutation_prob <= 1.0:
            raise ValueError(f"mutation_prob must be in [0, 1]; got {mutation_prob!r}")
        if parent_metrics is not None:
            if isinstance(parent_metrics, str) or not all(
                isinstance(m, str) and m for m in parent_metrics
            ):
                raise ValueError(
                    f"parent_metrics must be None or a sequence of metric names; got "
                    f"{parent_metrics!r}"
                )
            parent_metrics = tuple(parent_metrics)
            if not parent_metrics:
                raise ValueError("parent_metrics must name at least one metric (or be None)")
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            constraint=constraint,
            hyperparameters=hyperparameters,
            seed=seed,
            **oracle_kwargs,
        )
        self.population_size = population_size
        self.num_parents = num_parents
        self.num_crossover = num_crossover
        self.num_mutation = num_mutation
        self.mutation_prob = float(mutation_prob)
        self.parent_metrics = parent_metrics

    @property
    def generation(self) -> int:
        """Index of the newest generation (-1 before the first proposal)."""
        return self._batch

    def _batch_done(self) -> bool:
        finished = set(self.end_order)
        return all(t in finished for t, g in self._trial_batch.items() if g == self._batch)

    def _propose(self, batch: int, rng: np.random.Generator) -> list[Key]:
        taken = set(self._seen)
        children: list[Key] = []

        def breed(target: int, make) -> None:
            found = 0
            for _ in range(_OPERATOR_TRIES * target):
                if found == target:
                    break
                key = make()
                if self._is_new_legal(key, taken):
                    children.append(key)
                    taken.add(self._class(key))
                    found += 1

        parents = self._top_parents() if batch > 0 else []
        if len(parents) >= 2:
            breed(self.num_crossover, lambda: self._crossover(parents, rng))
        if parents:
            breed(self.num_mutation, lambda: self._mutate(parents, rng))
        while len(children) < self.population_size:
            key = self._random_candidate(rng, taken)
            if key is None:
                break
            children.append(key)
            taken.add(self._class(key))
        return children

    def _top_parents(self) -> list[Key]:
        """Keys of the ``num_parents`` best completed trials, best first, in hand-out order on ties:
        best by the objective, or by the mean rank of ``parent_metrics`` when it is set."""
        done = []
        for trial_id, key in self._trial_key.items():
            trial = self.trials.get(trial_id)
            if (
                trial is not None
                and trial.status == TrialStatus.COMPLETED
                and trial.score is not None
            ):
                done.append((trial_id, key, trial))
        if self.parent_metrics is None:
            scored = [(trial.score, key) for _, key, trial in done]
            reverse = self.objective.direction == "max"
        else:
            if not done:
                return []
            columns = []
            for name in self.parent_metrics:
                missing = [t for t, _, trial in done if not trial.metrics.exists(name)]
                if missing:
                    raise ValueError(
                        f"trial {missing[0]} completed without the metric {name!r} that "
                        f"parent_metrics={self.parent_metrics} ranks parents by; report it "
                        f"from the tuner's run_trial"
                    )
                columns.append([float(trial.metrics.get_last_value(name)) for _, _, trial in done])
            from spos_tf.rank.stats import rank_average  # NumPy/SciPy only

            scored = list(zip(rank_average(*columns), (key for _, key, _ in done)))
            reverse = True
        scored.sort(key=lambda item: item[0], reverse=reverse)  # stable: ties keep hand-out order
        return [key for _, key in scored[: self.num_parents]]

    def _crossover(self, parents: list[Key], rng: np.random.Generator) -> Key:
        i, j = rng.choice(len(parents), size=2, replace=False)
        from_first = rng.random(len(self._genes)) < 0.5
        return tuple(a if f else b for a, b, f in zip(parents[i], parents[j], from_first))

    def _mutate(self, parents: list[Key], rng: np.random.Generator) -> Key:
        parent = parents[int(rng.integers(len(parents)))]
        resample = rng.random(len(self._genes)) < self.mutation_prob
        return tuple(
            vals[int(rng.integers(len(vals)))] if r else v
            for v, vals, r in zip(parent, self._gene_values, resample)
        )


class RandomSearchOracle(DiscreteSearchOracle):
    """Constrained random search: each candidate uniform over the legal candidates never proposed before.

    The baseline of the paper's Figure 3. Candidate ``i`` is drawn from ``numpy.random.default_rng([seed,
    i])`` (rejection sampling, or an exact draw from the enumerated legal set of a small space), so a seeded
    run is reproducible and resumes exactly. Answers ``IDLE`` only while waiting for ``wait_for_tuners``.

    Args:
        objective, max_trials, constraint, hyperparameters, seed, **oracle_kwargs (e.g. ``max_sample_tries``):
            see :class:`~spos_tf.search.oracle_base.DiscreteSearchOracle`.
    """

    def __init__(
        self,
        objective=None,
        max_trials=None,
        constraint: ConstraintSpec = None,
        hyperparameters=None,
        seed: int | None = None,
        **oracle_kwargs,
    ):
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            constraint=constraint,
            hyperparameters=hyperparameters,
            seed=seed,
            **oracle_kwargs,
        )

    def generation_of(self, trial_id: str) -> int:
        """Returns 0 for every trial this oracle handed out: random search has one, unbounded generation.

        Raises:
            KeyError: this oracle never handed out ``trial_id``.
        """
        super().generation_of(trial_id)
        return 0

    def _propose(self, batch: int, rng: np.random.Generator) -> list[Key]:
        key = self._random_candidate(rng, self._seen)
        return [] if key is None else [key]
