"""Architecture search on a trained supernet: the library behind ``python -m spos_tf.search``.

Example::

    config = SearchConfig(supernet_dir="/tmp/qs", workdir="/tmp/qs_search", algorithm="both",
                          population_size=20, num_parents=5, num_crossover=8, num_mutation=8,
                          max_trials=100, max_macs=2.5e6, calib_images=512)
    summary = run(config)          # summary["best"] is what best.json holds

Roles (KerasTuner's, see the README's "Distributed search"):

- the *oracle* (:mod:`spos_tf.oracle`) only proposes architectures under the constraint, never the
  same twice; its state lives in ``<workdir>/<algorithm>/`` (KerasTuner's project folder), so a
  killed search rerun with the same flags resumes: completed candidates are not evaluated again,
  the one that was running is evaluated again;
- the tuner's :meth:`SupernetTuner.run_trial` scores one candidate on the supernet through
  :class:`~spos_tf.evaluate.PathEvaluator` (set path, exact BN recalibration, held-out top-1);
- :func:`run` wires them up and writes the results.

What a search writes into ``workdir`` (only the chief of a distributed search, or the single
process; workers write only their KerasTuner tuner file ``<workdir>/<algorithm>/<tuner id>.json``):

- ``search_config.json``: the search's settings; a rerun with different settings is refused
  (``max_trials`` may grow, ``algorithm`` may change; ``overwrite`` starts over);
- ``history.csv``: one row per evaluated candidate of every algorithm run into this workdir:
  ``algorithm, trial_id, generation, arch, macs, params[, bitops], accuracy, seconds``
  (``seconds``: set path + recalibrate + evaluate), derived from the oracles' trials: rewritten
  after every candidate by a single process, at the end of the search by a distributed chief;
- ``best.json``: the best candidate over all algorithms: ``{"arch": text, "space": name,
  "accuracy", "costs": {...}, ...}``, accepted by ``spos_tf.space.arch_from_any`` and by
  ``python -m spos_tf.train --arch=<workdir>/best.json``;
- ``search.png``: best accuracy so far vs number of evaluations, one curve per algorithm (the
  paper's Figure 3 when evolution and random search both ran).

Checks before anything is written: the settings, the supernet run, the constraint's feasibility
(:meth:`~spos_tf.oracle_base.DiscreteSearchOracle.check_feasible`) and the workdir's previous
settings; a failing check raises and leaves the workdir untouched.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import sys
import time
from typing import Callable, Mapping, Optional

import keras_tuner as kt

from spos_tf import costs as costs_lib
from spos_tf import run_dir
from spos_tf.oracle import EvolutionOracle, InfeasibleConstraintError, RandomSearchOracle
from spos_tf.progress import ProgressBar
from spos_tf.space import Architecture, SearchSpace

ALGORITHMS = ("evolution", "random")
ALGORITHM_CHOICES = ALGORITHMS + ("both",)
OBJECTIVE = "accuracy"
IDLE_WAIT_S = 0.2  # a distributed worker waiting for a generation to finish asks 5 times a second
CONFIG_FILE = "search_config.json"
HISTORY_FILE = "history.csv"
BEST_FILE = "best.json"
PLOT_FILE = "search.png"
SEEDS_FILE = "seeds.json"
HPARAMS_DIR = "hparams"
# Everything a search writes; --overwrite deletes exactly these (and a --seeds search's seed_<s>).
SEARCH_ENTRIES = (CONFIG_FILE, HISTORY_FILE, BEST_FILE, PLOT_FILE, SEEDS_FILE,
                  HPARAMS_DIR) + ALGORITHMS
# Settings that may differ when a search in a workdir is resumed or extended.
NEUTRAL = ("workdir", "algorithm", "max_trials", "overwrite", "data_dir", "cache_mb", "progress",
           "eval_batch_size", "wait_for_workers")
# Constraint name -> cost of an architecture. The flag is --max_<name>.
COSTS: dict = {
    "macs": lambda table, arch: table.macs(arch),
    "params": lambda table, arch: table.params(arch),
    "bitops": lambda table, arch: table.bitops(arch),
    "latency_ms": lambda table, arch: table.latency_ms(arch),   # needs --latency_table
}

__all__ = ["SearchConfig", "SupernetTuner", "EvaluationError", "InfeasibleConstraintError",
           "build_constraint", "make_oracle", "make_evaluator", "history_rows", "write_outputs",
           "run"]


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Settings of one search (the flags of ``spos_tf.search``; defaults = the paper's).

    Attributes:
      supernet_dir: the ``--workdir`` of a finished ``spos_tf.train`` supernet run.
      workdir: where the search writes (see the module docstring).
      algorithm: ``"evolution"``, ``"random"`` or ``"both"`` (evolution, then random search with
        the same budget and constraint: the paper's Figure 3).
      population_size, num_parents, num_crossover, num_mutation, mutation_prob: evolution
        (paper: 50, 10, 25, 25, 0.1).
      max_trials: candidates evaluated per algorithm (paper: 20 generations x 50 = 1000).
      seed: the oracles' seed; a search is a function of it and the supernet.
      max_macs, max_params, max_bitops: hard constraints (None: none); ``max_bitops`` needs a
        quantized space.
      latency_table: a latency lookup table of the supernet's space (``spos_tf.latency build``):
        history.csv, best.json and search.png then carry the predicted ``latency_ms``.
      max_latency_ms: hard constraint on the predicted latency (needs ``latency_table``).
      bitops_budget: ``"kWkA"`` (e.g. ``"3w3a"``): a BitOps limit equal to the BitOps of the
        uniform k-bit network of the supernet's space, ``costs.uniform_bitops(space, k)`` (the
        budgets of the paper's Table 6); resolved by :func:`resolve_limits` once the space is
        known. Exclusive with ``max_bitops``; needs a quantized space.
      bitops_convention: ``"ours"`` (every layer, the 8-bit first conv and FC included) or
        ``"paper"`` (the choice blocks only: Table 6's counting, see :mod:`spos_tf.costs`); sets
        what ``max_bitops``, ``bitops_budget``, ``history.csv`` and ``best.json`` count. A kWkA
        budget selects the same architectures either way (the fixed layers cost the same in all).
      calib_images, calib_batch_size: BN recalibration per candidate: the first
        ``ceil(calib_images / calib_batch_size)`` batches of the supernet's training split in its
        stored order (TFDS stores ImageNet shuffled), the same images for every candidate
        (default 25,600 = the reference's 200 batches of 128).
      calib_augment: the calibration images go through the training augmentation (the
        reference's choice), each seeded by its position, so every candidate still sees the same
        augmented images; default: evaluation preprocessing.
      calib_mode: ``"exact"`` (cumulative average over the batches; default) or ``"ema"`` (the
        reference: reset the statistics, then an exponential average with Keras momentum 0.9);
        see :mod:`spos_tf.evaluate`.
      holdout_images: evaluate on the first this many held-out images (None: the whole split).
      eval_batch_size: held-out batch size.
      data_dir: TFDS data directory (None: the supernet run's).
      cache_mb: keep the preprocessed calibration and held-out batches in host memory when they
        fit in this many MiB (decoded once instead of once per candidate); 0 disables.
      overwrite: delete a previous search in ``workdir`` and start over.
      progress: show a progress bar with the best accuracy so far.
      wait_for_workers: distributed search, chief: hand out no candidate until this many workers
        have asked for one (``EvolutionOracle(wait_for_tuners=...)``; 0: don't wait). Refused in a
        single-process search.
      seeds: run the whole search once per seed (``seed`` is then ignored) into
        ``<workdir>/seed_<s>/`` and write the comparison over seeds into ``workdir``: Figure 3
        with a band (``search.png``), ``seeds.json`` and ``best.json`` (see :func:`run_seeds`).
        Empty: one search with ``seed``.
      precision: the Keras policy the supernet is scored in (``"float32"``, ``"mixed_float16"``
        or ``"mixed_bfloat16"``, see :mod:`spos_tf.precision`), whatever it was trained in.
    """

    supernet_dir: str = ""
    workdir: str = ""
    algorithm: str = "evolution"
    population_size: int = 50
    num_parents: int = 10
    num_crossover: int = 25
    num_mutation: int = 25
    mutation_prob: float = 0.1
    max_trials: int = 1000
    seed: int = 0
    max_macs: Optional[float] = None
    max_params: Optional[float] = None
    max_bitops: Optional[float] = None
    max_latency_ms: Optional[float] = None
    latency_table: Optional[str] = None
    bitops_budget: Optional[str] = None
    bitops_convention: str = "ours"
    calib_images: int = 25_600
    calib_batch_size: int = 128
    calib_augment: bool = False
    calib_mode: str = "exact"
    holdout_images: Optional[int] = None
    eval_batch_size: int = 256
    data_dir: Optional[str] = None
    cache_mb: int = 4096
    overwrite: bool = False
    progress: bool = True
    wait_for_workers: int = 0
    seeds: tuple = ()
    precision: str = "float32"

    def __post_init__(self):
        seeds = self.seeds if self.seeds is not None else ()
        try:
            seeds = tuple(int(s) for s in seeds)
        except (TypeError, ValueError):
            raise ValueError(f"--seeds must be a list of integers, e.g. 0,1,2; got "
                             f"{self.seeds!r}") from None
        object.__setattr__(self, "seeds", seeds)

    @property
    def algorithms(self) -> tuple:
        return ALGORITHMS if self.algorithm == "both" else (self.algorithm,)

    @property
    def limits(self) -> dict:
        """``{cost name: limit}`` of the constraints that are set as numbers (without
        ``bitops_budget``, which needs the space: see :func:`resolve_limits`)."""
        return {name: getattr(self, f"max_{name}") for name in COSTS
                if getattr(self, f"max_{name}") is not None}

    @property
    def num_calib_batches(self) -> int:
        return -(-self.calib_images // self.calib_batch_size)

    def validate(self) -> "SearchConfig":
        """Checks every field without touching files; returns ``self``.

        Raises:
          ValueError: naming the flag and quoting the bad value.
        """
        for name in ("supernet_dir", "workdir"):
            value = getattr(self, name)
            if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
                raise ValueError(f"--{name} is required")
        if os.path.abspath(self.supernet_dir) == os.path.abspath(self.workdir):
            raise ValueError(f"--workdir must differ from --supernet_dir ({self.workdir!r}): the "
                             f"search writes its own folder")
        if self.algorithm not in ALGORITHM_CHOICES:
            raise ValueError(f"--algorithm must be one of {ALGORITHM_CHOICES}, got "
                             f"{self.algorithm!r}")
        for name, low in (("population_size", 1), ("num_parents", 1), ("num_crossover", 0),
                          ("num_mutation", 0), ("max_trials", 1), ("seed", 0),
                          ("calib_images", 1), ("calib_batch_size", 1), ("eval_batch_size", 1),
                          ("cache_mb", 0), ("wait_for_workers", 0)):
            _check_int(name, getattr(self, name), low)
        if self.num_crossover + self.num_mutation > self.population_size:
            raise ValueError(f"--num_crossover + --num_mutation ({self.num_crossover} + "
                             f"{self.num_mutation}) must not exceed --population_size "
                             f"({self.population_size})")
        if isinstance(self.mutation_prob, bool) or not isinstance(self.mutation_prob, (int, float)) \
                or not 0.0 <= self.mutation_prob <= 1.0:
            raise ValueError(f"--mutation_prob must be in [0, 1], got {self.mutation_prob!r}")
        for name, limit in self.limits.items():
            if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
                raise ValueError(f"--max_{name} must be a positive number, got {limit!r}")
        if self.max_latency_ms is not None and not self.latency_table:
            raise ValueError(f"--max_latency_ms={self.max_latency_ms:g} needs --latency_table (a "
                             f"table built by python -m spos_tf.latency build)")
        if self.latency_table and not os.path.isfile(self.latency_table):
            raise ValueError(f"--latency_table={self.latency_table!r} does not exist; build it "
                             f"with python -m spos_tf.latency build --space=... --out=...")
        if self.holdout_images is not None:
            _check_int("holdout_images", self.holdout_images, 1)
        if any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"--seeds must be distinct integers >= 0, got {list(self.seeds)}")
        from spos_tf.evaluate import CALIB_MODES
        if self.calib_mode not in CALIB_MODES:
            raise ValueError(f"--calib_mode must be one of {', '.join(CALIB_MODES)}, got "
                             f"{self.calib_mode!r}")
        costs_lib.check_convention(self.bitops_convention)
        if self.bitops_budget is not None:
            budget_bits(self.bitops_budget)
            if self.max_bitops is not None:
                raise ValueError(f"pass one of --max_bitops ({self.max_bitops:g}) and "
                                 f"--bitops_budget ({self.bitops_budget!r}), not both")
        from spos_tf import precision
        precision.check(self.precision)
        return self

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["supernet_dir"], d["workdir"] = os.fspath(self.supernet_dir), os.fspath(self.workdir)
        return run_dir.normalized(d)


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"--{name} must be an integer >= {low}, got {value!r}")


_BUDGET = re.compile(r"^\s*(\d+)\s*w\s*(\d+)\s*a\s*$", re.IGNORECASE)


def budget_bits(budget: str) -> int:
    """``k`` of a ``"kWkA"`` BitOps budget (``"3w3a"`` -> 3; case-insensitive).

    Raises:
      ValueError: not of the form kWkA with equal weight and activation bits in 1..32.
    """
    match = _BUDGET.match(budget) if isinstance(budget, str) else None
    if match is None or match.group(1) != match.group(2) or not 1 <= int(match.group(1)) <= 32:
        raise ValueError(f"--bitops_budget must be kWkA with the same k for weights and "
                         f"activations (e.g. 2w2a, 3w3a, 4w4a), got {budget!r}")
    return int(match.group(1))


def resolve_limits(config: SearchConfig, space: SearchSpace) -> dict:
    """``config.limits`` with ``bitops_budget`` turned into ``{"bitops": uniform_bitops(space,
    k)}`` (the BitOps of the uniform kWkA network, first conv and last FC at 8 bits).

    Raises:
      ValueError: ``bitops_budget`` for a float space.
    """
    limits = dict(config.limits)
    if config.bitops_budget is not None:
        if not space.quantized:
            raise ValueError(f"--bitops_budget needs a quantized space; {space.name!r} searches "
                             f"float architectures (use --max_macs)")
        limits["bitops"] = float(costs_lib.uniform_bitops(space, budget_bits(config.bitops_budget),
                                                          convention=config.bitops_convention))
    return limits


# ------------------------------------------------------------------------------- oracle side
def build_constraint(space: SearchSpace, limits: Mapping[str, float],
                     latency_table: Optional[str] = None,
                     bitops_convention: str = "ours") -> dict:
    """The oracle constraint ``{name: (cost_fn(values) -> float, limit)}`` of ``limits``.

    Args:
      space: the search space (costs come from its :class:`~spos_tf.costs.CostTable`).
      limits: ``{cost name: max value}`` with names in :data:`COSTS` (``macs``, ``params``,
        ``bitops``, ``latency_ms``).
      latency_table: the latency lookup table ``latency_ms`` needs.
      bitops_convention: how ``bitops`` counts (``costs.BITOPS_CONVENTIONS``).

    Raises:
      ValueError: an unknown cost name, ``bitops`` for a float space, a latency table that does
        not cover ``space``.
    """
    table = costs_lib.table(space, latency_table)
    out = {}
    for name, limit in limits.items():
        if name not in COSTS:
            raise ValueError(f"unknown constraint {name!r}; known: {sorted(COSTS)}")
        if name == "bitops" and not space.quantized:
            raise ValueError(f"--max_bitops needs a quantized space; {space.name!r} searches "
                             f"float architectures (use --max_macs)")
        cost = _cost_fn(name, bitops_convention)
        out[name] = (lambda values, cost=cost: float(cost(table, space.from_values(values))),
                     float(limit))
    return out


def _cost_fn(name: str, bitops_convention: str = "ours"):
    if name == "bitops" and costs_lib.check_convention(bitops_convention) == "paper":
        return lambda table, arch: table.bitops(arch, include_fixed=False)
    return COSTS[name]


def arch_costs(space: SearchSpace, arch: Architecture, bitops_convention: str = "ours",
               table=None) -> dict:
    """``CostTable.all(arch)`` (of ``table``, default the space's) with ``bitops`` counted by
    ``bitops_convention``."""
    out = (table or costs_lib.table(space)).all(arch)
    if "bitops" in out:
        out["bitops"] = costs_lib.bitops(space, arch, convention=bitops_convention)
    return out


def make_oracle(algorithm: str, config: SearchConfig, space: SearchSpace,
                constraint: Mapping | None = None):
    """The oracle of ``algorithm`` over ``space`` (objective: held-out accuracy, maximised)."""
    common = dict(objective=kt.Objective(OBJECTIVE, "max"), max_trials=config.max_trials,
                  constraint=dict(constraint) if constraint else None,
                  hyperparameters=space.hyperparameters(), seed=config.seed,
                  wait_for_tuners=config.wait_for_workers)
    if algorithm == "evolution":
        oracle = EvolutionOracle(population_size=config.population_size,
                                 num_parents=config.num_parents,
                                 num_crossover=config.num_crossover,
                                 num_mutation=config.num_mutation,
                                 mutation_prob=config.mutation_prob, **common)
    elif algorithm == "random":
        oracle = RandomSearchOracle(**common)
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose from {ALGORITHMS}")
    oracle.verbose = 0  # KerasTuner's per-trial tables; the tuner shows a progress bar instead
    return oracle


# ------------------------------------------------------------------------------- tuner side
class EvaluationError(kt.errors.FatalError):
    """Scoring a candidate failed; the search stops (rerun to resume once fixed)."""


class SupernetTuner(kt.Tuner):
    """A KerasTuner ``Tuner`` whose trial scores one architecture on a trained supernet.

    ``run_trial`` converts the trial's values to an :class:`~spos_tf.space.Architecture`, calls
    ``evaluator(arch)`` (a :class:`~spos_tf.evaluate.PathEvaluator`: set path, recalibrate BN,
    held-out top-1) and returns ``{"accuracy": acc, "seconds": s}``. It builds, trains and saves no
    model (``save_model``/``load_model`` do nothing), so KerasTuner's Keras fit path and its
    TensorBoard import are never used.

    Args:
      oracle: the oracle (an OracleClient replaces it on distributed workers).
      space: the search space of the supernet.
      evaluator: ``evaluator(arch) -> accuracy``; None on a distributed chief (never runs trials).
      on_trial_end: ``callback(tuner, trial)`` after the oracle recorded a trial.
      **kwargs: ``directory``, ``project_name``, ``overwrite`` as for ``keras_tuner.Tuner``.

    Raises (from ``search``):
      EvaluationError: the evaluator raised; the candidate stays running in the oracle and is
        evaluated again when the search is resumed.
    """

    def __init__(self, oracle, space: SearchSpace,
                 evaluator: Callable[[Architecture], float] | None,
                 on_trial_end: Callable | None = None, **kwargs):
        super().__init__(oracle=oracle, **kwargs)
        self.space, self.evaluator, self._callback = space, evaluator, on_trial_end
        if self._is_worker():  # KerasTuner re-asks at once while a generation finishes elsewhere
            self.oracle.create_trial = _waiting_when_idle(self.oracle.create_trial)
        self.evaluated = 0  # candidates scored by this process
        self.last_accuracy = float("nan")

    def run_trial(self, trial, *args, **kwargs):
        if self.evaluator is None:
            raise EvaluationError("this tuner has no evaluator (a distributed chief only serves)")
        arch = self.space.from_values(trial.hyperparameters.values)
        start = time.perf_counter()
        try:
            accuracy = float(self.evaluator(arch))
        except Exception as e:
            raise EvaluationError(f"evaluating architecture {arch} (trial {trial.trial_id}) "
                                  f"failed: {type(e).__name__}: {e}") from e
        self.evaluated += 1
        self.last_accuracy = accuracy
        return {OBJECTIVE: accuracy, "seconds": time.perf_counter() - start}

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        if self._callback is not None:
            self._callback(self, trial)

    def save_model(self, trial_id, model, step=0):
        """Nothing to save: candidates share the supernet's weights."""

    def load_model(self, trial):
        """No per-trial model exists; build one with ``spos_tf.build_standalone``."""
        return None


def _waiting_when_idle(create_trial, wait_s: float = IDLE_WAIT_S):
    """``create_trial`` that sleeps ``wait_s`` before returning an IDLE answer (no busy loop)."""

    def create(tuner_id):
        trial = create_trial(tuner_id)
        if trial.status == kt.engine.trial.TrialStatus.IDLE:
            time.sleep(wait_s)
        return trial

    return create


# ------------------------------------------------------------------------------- results
def history_columns(space: SearchSpace, latency: bool = False) -> list:
    return (["algorithm", "trial_id", "generation", "arch", "macs", "params"]
            + (["bitops"] if space.quantized else []) + (["latency_ms"] if latency else [])
            + ["accuracy", "seconds"])


def history_rows(oracle, algorithm: str, space: SearchSpace, cache: dict | None = None,
                 table=None, bitops_convention: str = "ours") -> list:
    """One dict per completed trial of ``oracle`` (a live or reloaded oracle), by trial id.

    ``cache`` (``{(algorithm, trial_id): row}``) avoids recomputing rows of finished trials;
    ``table``: the :class:`~spos_tf.costs.CostTable` (with a latency table: ``latency_ms``);
    ``bitops`` is counted by ``bitops_convention``.
    """
    cache = {} if cache is None else cache
    table = table or costs_lib.table(space)
    rows = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        if trial.status != kt.engine.trial.TrialStatus.COMPLETED or trial.score is None:
            continue
        key = (algorithm, trial_id)
        if key not in cache:
            arch = space.from_values(trial.hyperparameters.values)
            row = {"algorithm": algorithm, "trial_id": trial_id,
                   "generation": oracle.generation_of(trial_id), "arch": str(arch),
                   **arch_costs(space, arch, bitops_convention, table),
                   "accuracy": float(trial.score)}
            seconds = (trial.metrics.get_last_value("seconds")
                       if trial.metrics.exists("seconds") else None)
            row["seconds"] = None if seconds is None else round(float(seconds), 4)
            cache[key] = row
        rows.append(cache[key])
    return rows


def best_row(rows: list) -> dict | None:
    """The row of highest accuracy (ties: the first evaluated, evolution before random)."""
    best = None
    for row in rows:
        if best is None or row["accuracy"] > best["accuracy"]:
            best = row
    return best


def best_record(row: dict, space: SearchSpace, run_config: dict, config: SearchConfig,
                evaluated: int) -> dict:
    """The ``best.json`` object of ``row``."""
    arch = space.parse(row["arch"])
    costs = arch_costs(space, arch, config.bitops_convention,
                       costs_lib.table(space, config.latency_table))
    record = json.loads(arch.to_json(space))
    record.update(accuracy=row["accuracy"], costs=costs, algorithm=row["algorithm"],
                  trial_id=row["trial_id"], generation=row["generation"],
                  space_overrides=run_config.get("space_overrides", {}),
                  supernet_dir=os.fspath(config.supernet_dir),
                  constraints=resolve_limits(config, space),
                  evaluated=evaluated,
                  calib_images=config.num_calib_batches * config.calib_batch_size,
                  calib_mode=config.calib_mode, calib_augment=config.calib_augment,
                  holdout_images=config.holdout_images)
    return record


def write_history(path: str, rows: list, space: SearchSpace) -> None:
    buf = io.StringIO()
    latency = bool(rows) and "latency_ms" in rows[0]
    writer = csv.DictWriter(buf, fieldnames=history_columns(space, latency), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    run_dir.atomic_write_text(path, buf.getvalue())


def write_plot(path: str, rows: list, title: str = "") -> None:
    """Best held-out accuracy so far vs number of evaluations, one curve per algorithm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    colors = {"evolution": "tab:red", "random": "tab:blue"}
    for algorithm in ALGORITHMS:
        acc = [r["accuracy"] for r in rows if r["algorithm"] == algorithm]
        if not acc:
            continue
        best, running = [], float("-inf")
        for a in acc:
            running = max(running, a)
            best.append(running)
        x = list(range(1, len(acc) + 1))
        color = colors[algorithm]
        ax.scatter(x, [100 * a for a in acc], s=4, alpha=0.25, color=color)
        ax.plot(x, [100 * b for b in best], color=color, lw=2,
                label=f"{algorithm} search (best {100 * best[-1]:.2f}%)")
    ax.set_xlabel("number of evaluated architectures")
    ax.set_ylabel("held-out top-1 accuracy (%) with supernet weights")
    ax.set_title(title or "Best accuracy so far", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    run_dir.save_figure(fig, path)


def write_outputs(workdir: str, rows: list, space: SearchSpace, run_config: dict,
                  config: SearchConfig, plot: bool = True) -> dict | None:
    """Writes ``history.csv``, ``best.json`` and (with ``plot``) ``search.png``; returns the
    best record (None when nothing was evaluated yet)."""
    write_history(os.path.join(workdir, HISTORY_FILE), rows, space)
    best = best_row(rows)
    if best is None:
        return None
    record = best_record(best, space, run_config, config, evaluated=len(rows))
    run_dir.atomic_write_text(os.path.join(workdir, BEST_FILE),
                              json.dumps(record, indent=2, sort_keys=True) + "\n")
    if plot:
        limits = ", ".join(f"{k} <= {v:.4g}" for k, v in resolve_limits(config, space).items())
        latency = (f"; best {record['costs']['latency_ms']:.3g} ms"
                   if "latency_ms" in record["costs"] else "")
        write_plot(os.path.join(workdir, PLOT_FILE), rows,
                   f"{space.name}" + (f" ({limits})" if limits else "") + latency)
    return record


def write_hparams(logdir: str, rows: list, space: SearchSpace) -> int:
    """Every candidate of ``rows`` as a TensorBoard HParams session (genes, costs and algorithm
    as hyperparameters; held-out accuracy with supernet weights as the metric)."""
    from spos_tf import hparams

    cost_names = [c for c in ("macs", "params", "bitops", "latency_ms")
                  if rows and rows[0].get(c) is not None]
    return hparams.write_sessions(logdir, [
        {"name": f"{r['algorithm']}_{r['trial_id']}",
         "hparams": {"algorithm": r["algorithm"], **space.to_values(space.parse(r["arch"])),
                     **{c: float(r[c]) for c in cost_names}},
         "metrics": {"holdout_accuracy": r["accuracy"]}} for r in rows])


# ------------------------------------------------------------------------------- seeds
def best_so_far(rows: list, algorithm: str) -> list:
    """Best accuracy after 1, 2, ... evaluations of ``algorithm`` (rows in evaluation order)."""
    out, best = [], float("-inf")
    for row in rows:
        if row["algorithm"] == algorithm:
            best = max(best, row["accuracy"])
            out.append(best)
    return out


def compare_seeds(per_seed: dict) -> dict:
    """Evolution vs random search over seeds at equal evaluations.

    Args:
      per_seed: ``{seed: history rows}``.

    Returns:
      ``{"algorithms": {name: {"final_best": [per seed], "mean", "std", "evaluations"}},
      "difference": mean evolution - mean random, "seed_spread": the larger std (ddof 1) of the
      two, "exceeds_seed_spread": |difference| > std(evolution) + std(random), "welch_p": p of
      Welch's t-test (scipy)}`` (the last four only with both algorithms and >= 2 seeds). The
      curves are cut to the smallest evaluation count of any seed so that they are compared at
      equal evaluations.
    """
    import numpy as np
    from scipy import stats

    out = {"algorithms": {}, "seeds": sorted(per_seed)}
    for algorithm in ALGORITHMS:
        curves = [best_so_far(rows, algorithm) for rows in per_seed.values()]
        if not all(curves):
            continue
        n = min(len(c) for c in curves)
        finals = [c[n - 1] for c in curves]
        out["algorithms"][algorithm] = {
            "final_best": finals, "evaluations": n, "mean": float(np.mean(finals)),
            "std": float(np.std(finals, ddof=1)) if len(finals) > 1 else None}
    algos = out["algorithms"]
    if set(algos) == set(ALGORITHMS) and len(per_seed) > 1:
        evo, rnd = algos["evolution"], algos["random"]
        out["difference"] = evo["mean"] - rnd["mean"]
        out["seed_spread"] = max(evo["std"], rnd["std"])
        out["exceeds_seed_spread"] = bool(abs(out["difference"]) > evo["std"] + rnd["std"])
        if evo["std"] or rnd["std"]:
            out["welch_p"] = float(stats.ttest_ind(evo["final_best"], rnd["final_best"],
                                                   equal_var=False).pvalue)
    return out


def describe_seeds(comparison: dict) -> str:
    """One line per algorithm (mean and std of the final best over seeds) and the verdict."""
    lines = [f"{name}: final best over seeds {', '.join(f'{v:.4f}' for v in a['final_best'])} "
             f"(mean {a['mean']:.4f}, std {a['std'] if a['std'] is None else round(a['std'], 4)}, "
             f"at {a['evaluations']} evaluations)"
             for name, a in comparison["algorithms"].items()]
    if "difference" in comparison:
        lines.append(f"evolution - random: {comparison['difference']:+.4f}; "
                     f"{'exceeds' if comparison['exceeds_seed_spread'] else 'within'} the seed "
                     f"spread (std evolution + std random)")
    return "\n".join(lines)


def write_seeds_plot(path: str, per_seed: dict, title: str = "") -> None:
    """Figure 3 over seeds: per algorithm the mean best-so-far curve and a band from the lowest
    to the highest seed, at equal evaluations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    colors = {"evolution": "tab:red", "random": "tab:blue"}
    for algorithm in ALGORITHMS:
        curves = [best_so_far(rows, algorithm) for rows in per_seed.values()]
        if not all(curves):
            continue
        n = min(len(c) for c in curves)
        curves = 100 * np.array([c[:n] for c in curves])
        x = np.arange(1, n + 1)
        mean = curves.mean(axis=0)
        ax.fill_between(x, curves.min(axis=0), curves.max(axis=0), color=colors[algorithm],
                        alpha=0.2, lw=0)
        ax.plot(x, mean, color=colors[algorithm], lw=2,
                label=f"{algorithm}: mean {mean[-1]:.2f}% over {len(curves)} seeds "
                      f"(band: min..max)")
    ax.set_xlabel("number of evaluated architectures")
    ax.set_ylabel("best held-out top-1 so far (%), supernet weights")
    ax.set_title(title or "Best accuracy so far over seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    run_dir.save_figure(fig, path)


def seed_dir(workdir: str, seed: int) -> str:
    return os.path.join(os.fspath(workdir), f"seed_{seed}")


def run_seeds(config: SearchConfig, stream=None) -> dict:
    """The search of ``config`` once per seed of ``config.seeds`` (each a normal, resumable search
    in ``<workdir>/seed_<s>/``), then the comparison over seeds in ``workdir``: ``search.png``
    (:func:`write_seeds_plot`), ``seeds.json`` (:func:`compare_seeds`) and ``best.json`` (the best
    candidate of all seeds, with the comparison under ``"seeds"``).

    Returns:
      ``{"best": best.json record, "comparison": seeds.json record, "evaluated": candidates
      scored by this call, "role": "single", "rows": {seed: rows}}``.

    Raises:
      ValueError: in a distributed search (run one distributed search per seed instead), and
        as :func:`run`.
    """
    stream = stream or sys.stdout
    if _role() != "single":
        raise ValueError("--seeds runs one search after another in one process; for a "
                         "distributed search run one search per --seed into its own --workdir")
    _, space, _ = _checked_oracles(config)
    state = check_workdir(config)
    if state == "overwrite":
        run_dir.clear(config.workdir, SEARCH_ENTRIES + tuple(
            e for e in os.listdir(config.workdir) if re.fullmatch(r"seed_\d+", e)))
    os.makedirs(config.workdir, exist_ok=True)
    run_dir.atomic_write_text(os.path.join(config.workdir, CONFIG_FILE),
                              json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    per_seed, evaluated, best = {}, 0, None
    for seed in config.seeds:
        if config.progress:
            print(f"seed {seed} ({config.seeds.index(seed) + 1}/{len(config.seeds)})",
                  file=stream)
        summary = run(dataclasses.replace(config, seed=seed, seeds=(), overwrite=False,
                                          workdir=seed_dir(config.workdir, seed)), stream)
        per_seed[seed], evaluated = summary["rows"], evaluated + summary["evaluated"]
        if summary["best"] and (best is None or summary["best"]["accuracy"] > best["accuracy"]):
            best = dict(summary["best"], seed=seed)
    comparison = compare_seeds(per_seed)
    run_dir.atomic_write_text(os.path.join(config.workdir, SEEDS_FILE),
                              json.dumps(comparison, indent=2, sort_keys=True) + "\n")
    best = dict(best, seeds=comparison)
    run_dir.atomic_write_text(os.path.join(config.workdir, BEST_FILE),
                              json.dumps(best, indent=2, sort_keys=True) + "\n")
    write_seeds_plot(os.path.join(config.workdir, PLOT_FILE), per_seed,
                     f"{space.name}: seeds {', '.join(map(str, config.seeds))}")
    return {"best": best, "comparison": comparison, "evaluated": evaluated, "role": "single",
            "rows": per_seed}


# ------------------------------------------------------------------------------- the app
def _role() -> str:
    """``"single"``, or ``"chief"`` / ``"worker"`` of a KerasTuner distributed search."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    missing = [v for v in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID") if v not in os.environ]
    if missing:
        raise ValueError(f"KERASTUNER_ORACLE_IP is set but {', '.join(missing)} is not; a "
                         f"distributed search needs all three (see the README)")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def check_workdir(config: SearchConfig) -> str:
    """``"new"``, ``"resume"`` or ``"overwrite"``; writes nothing.

    Raises:
      run_dir.RunDirError: the workdir is a file or holds a search of different settings.
    """
    return run_dir.check_results_dir(config.workdir, SEARCH_ENTRIES, CONFIG_FILE,
                                     config.to_dict(), overwrite=config.overwrite, neutral=NEUTRAL,
                                     defaults=SearchConfig().to_dict(), what="a search")




def _cached(ds, num_images: int, image_size: int, cache_mb: int):
    """``ds`` cached in memory (filled now) when its float32 images fit in ``cache_mb`` MiB."""
    if num_images * image_size * image_size * 3 * 4 > cache_mb * 2 ** 20:
        return ds
    import tensorflow as tf

    ds = ds.cache()
    ds.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1)
    return ds


def build_eval_data(data, config: SearchConfig, image_size: int, seed: int = 0):
    """``(calib_ds, holdout_ds, num_holdout_images)`` for scoring candidates.

    Calibration: the first ``config.num_calib_batches`` batches of the ``calib`` role (training
    images, evaluation preprocessing, or with ``config.calib_augment`` the training augmentation
    seeded by ``(seed, position)``) in stored order, repeated if the split is smaller. Held-out:
    the ``holdout`` role, cut to ``config.holdout_images``.
    """
    from spos_tf.data import build_dataset, dataset_info

    num_holdout = dataset_info(data).num_examples["holdout"]
    calib = build_dataset(data, "calib", config.calib_batch_size, training=False, seed=seed,
                          repeat=True, drop_remainder=True, augment=config.calib_augment,
                          ).take(config.num_calib_batches)
    holdout = build_dataset(data, "holdout", config.eval_batch_size, training=False, seed=seed)
    if config.holdout_images is not None and config.holdout_images < num_holdout:
        num_holdout = config.holdout_images
        holdout = holdout.unbatch().take(num_holdout).batch(config.eval_batch_size)
    calib = _cached(calib, config.num_calib_batches * config.calib_batch_size, image_size,
                    config.cache_mb)
    holdout = _cached(holdout, num_holdout, image_size, config.cache_mb)
    return calib, holdout, num_holdout


def _load_run_config(supernet_dir: str) -> dict:
    try:
        run_config = run_dir.load_run_config(supernet_dir)
    except run_dir.RunDirError as e:
        raise run_dir.RunDirError(f"--supernet_dir: {e}") from None
    if run_config.get("arch"):
        raise run_dir.RunDirError(
            f"--supernet_dir={supernet_dir!r} holds a stand-alone network "
            f"(arch {run_config['arch']!r}), not a supernet")
    return run_config


def load_supernet(config: SearchConfig):
    """``(space, supernet, run_config, data_config)`` of ``config.supernet_dir``.

    Raises:
      run_dir.RunDirError, run_dir.CheckpointError: not a trained supernet run.
    """
    _load_run_config(config.supernet_dir)
    space, model, run_config = run_dir.restore_model(config.supernet_dir)
    return space, model, run_config, _data_config(run_config, space, config)


def _data_config(run_config: dict, space: SearchSpace, config: SearchConfig):
    from spos_tf.data import DataConfig

    data = DataConfig(**run_config.get("data", {}))
    changes = {"image_size": space.image_size}
    if config.data_dir is not None:
        changes["data_dir"] = config.data_dir
    return dataclasses.replace(data, **changes)


class _Results:
    """The rows of every algorithm searched into the workdir, and the files derived from them."""

    def __init__(self, config: SearchConfig, space: SearchSpace, run_config: dict):
        self.config, self.space, self.run_config = config, space, run_config
        self.table = costs_lib.table(space, config.latency_table)
        self.cache: dict = {}
        self.finished: list = []  # rows of algorithms whose search is over
        self.best = None  # the best.json record once a search finished
        for other in ALGORITHMS:  # searched into this workdir by an earlier run
            if other not in config.algorithms and _has_project(config.workdir, other):
                self.finished += history_rows(_reload(other, config, space), other, space,
                                              self.cache, self.table, config.bitops_convention)

    def write(self, oracle=None, algorithm: str | None = None, plot: bool = False):
        live = (history_rows(oracle, algorithm, self.space, self.cache, self.table,
                             self.config.bitops_convention) if oracle else [])
        rows = sorted(self.finished + live,
                      key=lambda r: (ALGORITHMS.index(r["algorithm"]), r["trial_id"]))
        return write_outputs(self.config.workdir, rows, self.space, self.run_config,
                             self.config, plot=plot)

    def finish(self, oracle, algorithm: str) -> int:
        """Adds the rows of a finished search, writes every file (and the TensorBoard HParams
        sessions of every candidate); returns its row count."""
        rows = history_rows(oracle, algorithm, self.space, self.cache, self.table,
                            self.config.bitops_convention)
        self.finished += rows
        self.best = self.write(plot=True)
        write_hparams(os.path.join(self.config.workdir, HPARAMS_DIR), self.finished, self.space)
        return len(rows)


def run(config: SearchConfig, stream=None) -> dict:
    """Runs (or resumes) the search of ``config``; see the module docstring.

    Returns:
      ``{"best": best.json record or None, "evaluated": candidates scored by this process,
      "trials": {algorithm: completed candidates}, "role": "single" | "chief" | "worker",
      "rows": the history.csv rows}``; with ``config.seeds`` see :func:`run_seeds`.

    Raises:
      ValueError: bad settings (including ``--algorithm=both`` in a distributed search);
      InfeasibleConstraintError: no architecture meets the constraint; run_dir.RunDirError /
      CheckpointError: bad supernet run or workdir; EvaluationError: scoring failed. Nothing is
      written to the workdir before these checks pass.
    """
    config = config.validate()
    stream = stream or sys.stdout
    if config.seeds:
        return run_seeds(config, stream)
    role = _role()
    if role != "single" and config.algorithm == "both":
        raise ValueError("--algorithm=both runs one search after the other, which a distributed "
                         "search cannot: run --algorithm=evolution, then --algorithm=random into "
                         "the same --workdir (the chief's outputs cover both)")
    if role == "single" and config.wait_for_workers:
        raise ValueError(f"--wait_for_workers={config.wait_for_workers} applies to a distributed "
                         f"search only (KERASTUNER_* unset here, so it would wait forever); drop it")
    run_config, space, oracles = _checked_oracles(config)
    writes = role != "worker"  # workers report to the chief's oracle and write no results
    state = check_workdir(config) if writes else None

    evaluator = None
    if role != "chief":  # the chief only serves the oracle; each worker scores on its own copy
        evaluator = make_evaluator(config)
    if writes:
        if state == "overwrite":
            run_dir.clear(config.workdir, SEARCH_ENTRIES)
        os.makedirs(config.workdir, exist_ok=True)
        run_dir.atomic_write_text(os.path.join(config.workdir, CONFIG_FILE),
                                  json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    results = _Results(config, space, run_config) if writes else None

    evaluated, trials = 0, {}
    for algorithm, oracle in oracles.items():
        tuner = _search(algorithm, oracle, space, evaluator, config, role, results, stream)
        evaluated += tuner.evaluated
        if results is not None:
            trials[algorithm] = results.finish(tuner.oracle, algorithm)

    best = results.best if results is not None else None
    return {"best": best, "evaluated": evaluated, "trials": trials, "role": role,
            "rows": results.finished if results is not None else []}


def _checked_oracles(config: SearchConfig) -> tuple:
    """``(supernet run config, space, {algorithm: oracle})`` after the checks that need the
    supernet run and the constraint (writes nothing).

    Raises:
      run_dir.RunDirError: not a supernet run; InfeasibleConstraintError, ValueError: a
        constraint that no architecture meets or that the space cannot cost.
    """
    run_config = _load_run_config(config.supernet_dir)
    space = run_dir.space_from_config(run_config)
    constraint = build_constraint(space, resolve_limits(config, space), config.latency_table,
                                  config.bitops_convention)
    oracles = {a: make_oracle(a, config, space, constraint) for a in config.algorithms}
    for oracle in oracles.values():
        oracle.check_feasible()
    return run_config, space, oracles


def make_evaluator(config: SearchConfig):
    """A :class:`~spos_tf.evaluate.PathEvaluator` on the restored supernet of ``config``, with
    its calibration and held-out data."""
    from spos_tf import precision
    from spos_tf.evaluate import PathEvaluator

    with precision.policy_scope(config.precision):  # the supernet computes in it for good
        space, supernet, run_config, data = load_supernet(config)
    calib, holdout, _ = build_eval_data(data, config, space.image_size, seed=0)
    return PathEvaluator(supernet, calib, holdout, config.num_calib_batches,
                         calib_mode=config.calib_mode)


def _search(algorithm, oracle, space, evaluator, config, role, results, stream) -> SupernetTuner:
    """Runs one algorithm's KerasTuner search (serves it on a distributed chief)."""
    bar = None

    def on_trial_end(tuner, trial):
        if bar is not None:
            best = tuner.oracle.get_best_trials(1)
            score = best[0].score if best and best[0].score is not None else float("nan")
            bar.update(int(trial.trial_id) + 1, best=score, last=tuner.last_accuracy)
        if role == "single":
            results.write(oracle, algorithm)  # history.csv and best.json stay current

    tuner = SupernetTuner(oracle, space, evaluator, on_trial_end=on_trial_end,
                          directory=config.workdir, project_name=algorithm, overwrite=False)
    if config.progress and role != "chief":
        done = len(tuner.oracle.trials) if role == "single" else 0
        print(f"{algorithm} search: {config.max_trials} candidates"
              + (f" ({done} handed out before)" if done else ""), file=stream)
        bar = ProgressBar(config.max_trials, initial=done, stream=stream)
    elif role == "chief":
        print(f"{algorithm} search: serving the oracle on {os.environ['KERASTUNER_ORACLE_IP']}:"
              f"{os.environ['KERASTUNER_ORACLE_PORT']} until the workers finished "
              f"{config.max_trials} candidates", file=stream)
    tuner.search(verbose=0)
    if bar is not None:
        bar.close()
    return tuner


def _has_project(workdir: str, algorithm: str) -> bool:
    return os.path.exists(os.path.join(workdir, algorithm, "oracle.json"))


def _reload(algorithm: str, config: SearchConfig, space: SearchSpace):
    """The oracle of an earlier search in ``config.workdir`` (for its trials only)."""
    oracle = make_oracle(algorithm, config, space)
    oracle._set_project_dir(config.workdir, algorithm)
    oracle.reload()
    return oracle
