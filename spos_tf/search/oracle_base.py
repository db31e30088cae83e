"""Shared machinery of the constrained, deduplicating, resumable KerasTuner oracles of ``spos_tf.search.oracle``.

:class:`DiscreteSearchOracle` turns any discrete KerasTuner search space into a list of *genes* (one per
hyperparameter, in the space's order) and a candidate into a *key*: the tuple of its values in that order.
It owns what the search algorithms share: enumerating each hyperparameter's values, checking the constraint
before a candidate is handed out, never handing out the same key twice, seeded randomness that is a pure
function of ``(seed, batch)``, and saving all of that in KerasTuner's ``oracle.json``.

A subclass only proposes *batches* of new legal keys (:meth:`DiscreteSearchOracle._propose`) and says when
the next batch may be built (:meth:`DiscreteSearchOracle._batch_done`). No Keras or TensorFlow code here:
fitness lives in the tuner's ``run_trial``.
"""

from __future__ import annotations

import math
import secrets
import warnings
from numbers import Real
from typing import Callable, Mapping

import keras_tuner
import numpy as np
from keras_tuner.engine import hyperparameters as hp_module
from keras_tuner.engine.trial import TrialStatus

Key = tuple
ConstraintSpec = Callable[[dict], bool] | Mapping[str, tuple[Callable[[dict], float], float]] | None


class InfeasibleConstraintError(ValueError):
    """No legal candidate could be found: the constraint looks infeasible for this search space."""


def discrete_values(hp) -> tuple:
    """Returns every value a KerasTuner hyperparameter can take, in KerasTuner's order.

    Args:
        hp: ``hp.Choice``, ``hp.Boolean``, ``hp.Fixed``, ``hp.Int`` (linear sampling, or log sampling with a
            ``step``) or ``hp.Float`` with a ``step``.

    Returns:
        A non-empty tuple of plain Python values.

    Raises:
        ValueError: the hyperparameter is continuous, conditional or of an unknown type (the message names
            it).
    """
    if getattr(hp, "conditions", None):
        raise ValueError(
            f"hyperparameter {hp.name!r} is conditional ({hp!r}); conditional hyperparameters "
            "are not supported by spos_tf oracles"
        )
    if isinstance(hp, (hp_module.Choice, hp_module.Boolean, hp_module.Fixed)):
        return tuple(hp.values)
    if isinstance(hp, (hp_module.Int, hp_module.Float)):
        if hp.step is None:
            raise ValueError(
                f"hyperparameter {hp.name!r} is continuous ({hp!r}); spos_tf oracles search "
                "discrete spaces only: give it a `step` or use hp.Choice"
            )
        cast = (lambda v: int(round(v))) if isinstance(hp, hp_module.Int) else float
        return tuple(cast(v) for v in hp.values)
    raise ValueError(
        f"hyperparameter {hp.name!r} has unsupported type {type(hp).__name__} ({hp!r})"
    )


def _check_constraint(constraint) -> ConstraintSpec:
    if constraint is None or (callable(constraint) and not isinstance(constraint, Mapping)):
        return constraint
    if isinstance(constraint, Mapping):
        for name, spec in constraint.items():
            ok = isinstance(spec, (tuple, list)) and len(spec) == 2 and callable(spec[0])
            if not ok or not isinstance(spec[1], Real):
                raise ValueError(
                    f"constraint[{name!r}] must be a (cost_fn, max_value) pair; got {spec!r}"
                )
        return dict(constraint)
    raise TypeError(
        "constraint must be None, a callable values -> bool, or a dict "
        f"{{name: (cost_fn, max_value)}}; got {constraint!r}"
    )


class DiscreteSearchOracle(keras_tuner.Oracle):
    """Base oracle: discrete genes, a constraint, no duplicates, ``(seed, batch)``-seeded proposals.

    Candidates are handed out one per :meth:`populate_space` call from a pending batch. When the batch is
    empty and :meth:`_batch_done` is true, the next batch is built by :meth:`_propose` with the generator
    ``numpy.random.default_rng([seed, batch])``; when it is not done, ``populate_space`` answers ``IDLE``
    (KerasTuner's workers then ask again). An empty proposal means the legal space is exhausted: ``STOPPED``.

    Dedupe: every key ever put in a batch (handed out or pending; completed, failed or running) is never
    proposed again, across batches and across save/reload. With ``equivalence``, neither is any key of
    the same class (``equivalence(values)`` equal): candidates known to score the same are scored once.

    Resume: the batch index, the pending keys and the key and batch of every handed-out trial live in the
    oracle state (``oracle.json``, written by KerasTuner on every ``create_trial``/``end_trial``). KerasTuner's
    ``Oracle.reload`` puts the trials that were RUNNING when the process died in its retry queue, so they are
    re-issued with the same trial id and values before anything new is proposed: they never reported a score,
    so they have not been evaluated. ``max_trials`` and the algorithm's settings come from the constructor;
    the seed comes from the saved state.

    Args:
        objective: as for ``keras_tuner.Oracle``.
        max_trials: as for ``keras_tuner.Oracle``; ``None`` searches until the legal space is exhausted.
        constraint: ``None``; a callable ``constraint(values: dict) -> bool``; or a dict
            ``{name: (cost_fn, max_value)}``, legal iff ``cost_fn(values) <= max_value`` for every entry.
            Pure functions of the values; checked before a candidate is handed out.
        hyperparameters: optional ``keras_tuner.HyperParameters`` holding the search space (else a hypermodel
            must declare it before the search starts). Validated here when given.
        seed: non-negative int, or ``None`` to draw one from OS entropy (stored in the state).
        max_sample_tries: random draws allowed to find one new legal candidate. Spaces with at most this many
            candidates are enumerated once instead (one constraint call per candidate) and sampled exactly.
        equivalence: optional pure function ``equivalence(values) -> hashable``; keys with equal results
            count as one candidate for dedupe (e.g. the canonical form of a NAS-Bench-201 cell,
            ``SearchSpace.canonical``). Not saved in the state: pass the same one when resuming.
        wait_for_tuners: KerasTuner chief/worker mode: answer ``IDLE`` to everyone until this many distinct
            tuners have asked for a trial (0: never wait). KerasTuner's chief exits once every tuner it has
            seen was stopped, so a worker whose first request comes later finds no server; set this to the
            number of workers to rule that out. Never set it above 1 in a single-process search (it would
            wait forever).
        **oracle_kwargs: passed to ``keras_tuner.Oracle`` (e.g. ``max_retries_per_trial``).

    Raises:
        ValueError: bad ``seed``, ``max_sample_tries`` or ``wait_for_tuners``, a malformed dict constraint,
            or a non-discrete hyperparameter in ``hyperparameters``.
        TypeError: ``constraint`` of an unsupported type.
    """

    def __init__(
        self,
        objective=None,
        max_trials=None,
        constraint: ConstraintSpec = None,
        hyperparameters=None,
        seed: int | None = None,
        max_sample_tries: int = 10000,
        wait_for_tuners: int = 0,
        equivalence: Callable[[dict], object] | None = None,
        **oracle_kwargs,
    ):
        if seed is None:
            seed = secrets.randbits(31)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int or None; got {seed!r}")
        if not isinstance(max_sample_tries, int) or max_sample_tries < 1:
            raise ValueError(f"max_sample_tries must be a positive int; got {max_sample_tries!r}")
        if (
            isinstance(wait_for_tuners, bool)
            or not isinstance(wait_for_tuners, int)
            or wait_for_tuners < 0
        ):
            raise ValueError(f"wait_for_tuners must be an int >= 0; got {wait_for_tuners!r}")
        if equivalence is not None and not callable(equivalence):
            raise TypeError(
                f"equivalence must be a function of the values or None; got {equivalence!r}"
            )
        if hyperparameters is not None:
            for hp in hyperparameters.space:
                discrete_values(hp)
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            hyperparameters=hyperparameters,
            seed=int(seed),
            **oracle_kwargs,
        )
        self.seed = int(seed)  # the base class replaces a seed of 0 by a random one
        self.constraint = _check_constraint(constraint)
        self.max_sample_tries = max_sample_tries
        self.wait_for_tuners = wait_for_tuners
        self.equivalence = equivalence
        self._tuners_arrived = wait_for_tuners == 0  # runtime only: a restarted chief waits again
        self._genes: list[str] | None = None  # hp names, frozen at the first proposal
        self._batch = -1  # index of the newest batch
        self._pending: list[Key] = []
        self._trial_key: dict[str, Key] = {}  # handed-out trial id -> key, in hand-out order
        self._trial_batch: dict[str, int] = {}
        self._seen: set = set()  # derived: classes (:meth:`_class`) of handed-out and pending keys
        self._gene_values: list[tuple] | None = None  # derived from self.hyperparameters
        self._legal: list[Key] | None = None  # derived: enumerated legal keys of a small space

    # ----------------------------------------------------------------- subclass hooks
    def _propose(self, batch: int, rng: np.random.Generator) -> list[Key]:
        """Returns new legal keys (none in ``self._seen``, no repeats) for batch ``batch``; [] = exhausted."""
        raise NotImplementedError

    def _batch_done(self) -> bool:
        """Whether the next batch may be built now that the current one is handed out. Default: always."""
        return True

    # ----------------------------------------------------------------- public API
    def costs_of(self, values: Mapping) -> dict[str, float]:
        """Returns ``{name: cost}`` for a dict constraint (``{}`` otherwise), e.g. for a tuner to log."""
        if not isinstance(self.constraint, dict):
            return {}
        return {name: float(fn(dict(values))) for name, (fn, _) in self.constraint.items()}

    def is_legal(self, values: Mapping) -> bool:
        """Whether ``values`` (``{hp name: value}``) satisfies the constraint."""
        if self.constraint is None:
            return True
        if isinstance(self.constraint, dict):
            return all(fn(dict(values)) <= limit for fn, limit in self.constraint.values())
        return bool(self.constraint(dict(values)))

    def check_feasible(self) -> None:
        """Fails fast if no legal candidate can be found; consumes no randomness and freezes nothing.

        Call it once the search space is declared (e.g. on the chief before ``tuner.search()``): an error
        raised later inside ``create_trial`` reaches only the worker that asked, and a KerasTuner chief
        would keep serving.

        Raises:
            InfeasibleConstraintError: as :meth:`populate_space` would on its first call.
            ValueError: the search space is empty or not discrete.
        """
        if self._batch >= 0 or self._pending:
            return  # a legal candidate was found already
        try:
            self._freeze_space()
            self._random_candidate(np.random.default_rng(self.seed), set())
        finally:
            self._genes = self._gene_values = self._legal = None

    def generation_of(self, trial_id: str) -> int:
        """Returns the index of the batch (generation) in which trial ``trial_id`` was proposed.

        Raises:
            KeyError: this oracle never handed out ``trial_id``.
        """
        if trial_id not in self._trial_batch:
            raise KeyError(f"trial {trial_id!r} was not proposed by this oracle")
        return self._trial_batch[trial_id]

    def populate_space(self, trial_id):
        """Hands out the next pending candidate, building a new batch first when needed.

        Returns:
            ``{"status": RUNNING, "values": {...}}``, ``{"status": IDLE}`` while the current batch is handed
            out but not finished or fewer than ``wait_for_tuners`` tuners have asked, or
            ``{"status": STOPPED}`` when the legal space is exhausted.

        Raises:
            InfeasibleConstraintError: no legal candidate exists or none was found (see ``max_sample_tries``).
            ValueError, RuntimeError: the search space is empty, not discrete, or changed after the start.
        """
        self._freeze_space()
        if not self._tuners_arrived:
            # KerasTuner's create_trial records the asking tuner in self.tuner_ids before calling this.
            if len(self.tuner_ids) < self.wait_for_tuners:
                return {"status": TrialStatus.IDLE}
            self._tuners_arrived = True
        if not self._pending:
            if self._batch >= 0 and not self._batch_done():
                return {"status": TrialStatus.IDLE}
            proposals = self._propose(
                self._batch + 1, np.random.default_rng([self.seed, self._batch + 1])
            )
            if not proposals:
                return {"status": TrialStatus.STOPPED}
            self._batch += 1
            self._pending = list(proposals)
            self._seen.update(map(self._class, proposals))
        key = self._pending.pop(0)
        self._trial_key[trial_id] = key
        self._trial_batch[trial_id] = self._batch
        return {"status": TrialStatus.RUNNING, "values": self._values(key)}

    def get_state(self):
        state = super().get_state()
        state["discrete_search"] = {
            "genes": self._genes,
            "batch": self._batch,
            "pending": [list(k) for k in self._pending],
            "trial_key": {t: list(k) for t, k in self._trial_key.items()},
            "trial_batch": dict(self._trial_batch),
        }
        return state

    def set_state(self, state):
        super().set_state(state)
        own = state["discrete_search"]
        self._genes = own["genes"]
        self._batch = int(own["batch"])
        self._pending = [tuple(k) for k in own["pending"]]
        self._trial_key = {t: tuple(k) for t, k in own["trial_key"].items()}
        self._trial_batch = {t: int(b) for t, b in own["trial_batch"].items()}
        self._seen = {self._class(k) for k in [*self._trial_key.values(), *self._pending]}
        self._gene_values = self._legal = None

    # ----------------------------------------------------------------- helpers for subclasses
    def _values(self, key: Key) -> dict:
        return dict(zip(self._genes, key))

    def _class(self, key: Key):
        """What dedupe compares: ``key`` itself, or its ``equivalence`` class."""
        return key if self.equivalence is None else ("class", self.equivalence(self._values(key)))

    def _is_new_legal(self, key: Key, taken: set) -> bool:
        """``key``'s class is not in ``taken`` (a set of :meth:`_class` values) and it is legal."""
        return self._class(key) not in taken and self.is_legal(self._values(key))

    def _random_candidate(self, rng: np.random.Generator, taken: set) -> Key | None:
        """Returns a uniformly drawn legal key whose class is not in ``taken``, or ``None`` when none is
        left/found.

        Raises:
            InfeasibleConstraintError: the space has no legal key, or no legal key was ever found.
        """
        legal = self._enumerate_legal()
        if legal is not None:
            free = [k for k in legal if self._class(k) not in taken]
            return free[int(rng.integers(len(free)))] if free else None
        sizes = np.array([len(v) for v in self._gene_values])
        for _ in range(self.max_sample_tries):
            idx = rng.integers(0, sizes)
            key = tuple(vals[i] for vals, i in zip(self._gene_values, idx))
            if self._is_new_legal(key, taken):
                return key
        if not taken:
            raise self._infeasible(f"no legal candidate in {self.max_sample_tries} random draws")
        warnings.warn(
            f"no new legal candidate found in {self.max_sample_tries} random draws "
            f"({len(taken)} taken); treating the legal space as exhausted",
            stacklevel=2,
        )
        return None

    # ----------------------------------------------------------------- internals
    def _freeze_space(self):
        space = self.hyperparameters.space
        names = [hp.name for hp in space]
        if not names:
            raise ValueError(
                "the search space is empty: pass `hyperparameters=` to the oracle or a hypermodel "
                "that declares them"
            )
        if self._genes is None:
            self._genes = names
        elif names != self._genes:
            raise RuntimeError(
                f"the search space changed after the search started: {self._genes} -> {names}"
            )
        if self._gene_values is None:
            self._gene_values = [discrete_values(hp) for hp in space]

    def _enumerate_legal(self) -> list[Key] | None:
        """Legal keys of a space with at most ``max_sample_tries`` candidates (cached); ``None`` if larger."""
        if self._legal is None:
            if math.prod(len(v) for v in self._gene_values) > self.max_sample_tries:
                return None
            grid = (
                np.indices([len(v) for v in self._gene_values])
                .reshape(len(self._gene_values), -1)
                .T
            )
            keys = [tuple(vals[i] for vals, i in zip(self._gene_values, row)) for row in grid]
            legal = [k for k in keys if self.is_legal(self._values(k))]
            if not legal:
                raise self._infeasible(f"none of the {len(keys)} candidates of the space is legal")
            self._legal = legal
        return self._legal

    def _infeasible(self, why: str) -> InfeasibleConstraintError:
        if isinstance(self.constraint, dict):
            limits = ", ".join(f"{name} <= {limit}" for name, (_, limit) in self.constraint.items())
        else:
            limits = getattr(self.constraint, "__qualname__", repr(self.constraint))
        return InfeasibleConstraintError(f"the constraint looks infeasible ({limits}): {why}")
