"""What a search writes for its users, derived from the oracles' trials: the history rows, the best
record and the files that hold them.

What a search writes into ``workdir`` (only the chief of a distributed search, or the single
process; workers write only their KerasTuner tuner file ``<workdir>/<algorithm>/<tuner id>.json``):

- ``search_config.json``: the search's settings; a rerun with different settings is refused
  (``max_trials`` may grow, ``algorithm`` may change; ``overwrite`` starts over);
- ``history.csv``: one row per evaluated candidate of every algorithm run into this workdir:
  ``algorithm, trial_id, generation, arch, macs, params[, bitops][, latency_ms][, synflow]
  [, naswot], accuracy, seconds`` (``seconds``: set path + recalibrate + evaluate; ``synflow``,
  ``naswot`` with a ``--score`` combining them), derived from the oracles' trials:
  rewritten after every candidate by a single process, at the end of the search by a distributed
  chief;
- ``best.json``: the best candidate over all algorithms: ``{"arch": text, "space": name,
  "accuracy", "costs": {...}, ...}``, accepted by ``spos_tf.spaces.space.arch_from_any`` and by
  ``python -m spos_tf.train --arch=<workdir>/best.json``;
- ``search.png``: best accuracy so far vs number of evaluations, one curve per algorithm (the
  paper's Figure 3 when evolution and random search both ran);
- ``hparams/``: every candidate as a TensorBoard HParams session;
- ``synflow.json``, ``naswot.json``: with a ``--score`` combining them, the candidates'
  zero-cost proxies (:mod:`spos_tf.search.priors`).

The files are for users: the search returns the same rows and best record to its caller
(:meth:`Results.finish`, :func:`spos_tf.search.run.run`), nothing reads them back.
"""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np

import keras_tuner as kt

from spos_tf import costs as costs_lib
from spos_tf.runs import run_dir
from spos_tf.search.config import (
    ALGORITHM_COLORS,
    ALGORITHMS,
    SEARCH_PRIORS,
    SEARCH_SCORES,
    SearchConfig,
    arch_costs,
    resolve_limits,
)
from spos_tf.rank.report import ZERO_COST, zero_cost_priors
from spos_tf.search.priors import naswot_images, prior_caches
from spos_tf.search.tuner import make_oracle
from spos_tf.spaces.space import SearchSpace

CONFIG_FILE = "search_config.json"
HISTORY_FILE = "history.csv"
BEST_FILE = "best.json"
PLOT_FILE = "search.png"
SEEDS_FILE = "seeds.json"
HPARAMS_DIR = "hparams"
ARCHS_FILE_RECORD = "archs_file.json"  # the architectures of the --archs_file it started with
# Everything a search writes; --overwrite deletes exactly these (and a --seeds search's seed_<s>).
SEARCH_ENTRIES = (
    CONFIG_FILE,
    HISTORY_FILE,
    BEST_FILE,
    PLOT_FILE,
    SEEDS_FILE,
    HPARAMS_DIR,
    ARCHS_FILE_RECORD,
    *(f"{name}.json" for name in ZERO_COST),
) + ALGORITHMS

__all__ = [
    "Results",
    "history_columns",
    "history_rows",
    "pick_values",
    "best_index",
    "best_row",
    "best_over_seeds",
    "best_record",
    "write_history",
    "write_plot",
    "write_outputs",
    "write_hparams",
]


def history_columns(space: SearchSpace, latency: bool = False, priors=()) -> list:
    """``history.csv``'s columns; ``priors``: the zero-cost proxies it holds (in
    :data:`~spos_tf.rank.report.ZERO_COST` order)."""
    return (
        ["algorithm", "trial_id", "generation", "arch", "macs", "params"]
        + (["bitops"] if space.quantized else [])
        + (["latency_ms"] if latency else [])
        + [name for name in ZERO_COST if name in priors]
        + ["accuracy", "seconds"]
    )


def history_rows(
    oracle,
    algorithm: str,
    space: SearchSpace,
    cache: dict | None = None,
    table=None,
    bitops_convention: str = "ours",
    priors: dict | None = None,
) -> list:
    """One dict per completed trial of ``oracle`` (a live or reloaded oracle), by trial id.

    ``cache`` (``{(algorithm, trial_id): row}``) avoids recomputing rows of finished trials;
    ``table``: the :class:`~spos_tf.costs.CostTable` (with a latency table: ``latency_ms``);
    ``bitops`` is counted by ``bitops_convention``; ``priors``: ``{name: fn}`` of zero-cost
    proxies (e.g. :class:`~spos_tf.search.priors.PriorCache`, ``arch -> score``), each adds its
    column (a cached row without one gets it too).
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
            row = {
                "algorithm": algorithm,
                "trial_id": trial_id,
                "generation": oracle.generation_of(trial_id),
                "arch": str(arch),
                **arch_costs(space, arch, bitops_convention, table),
                "accuracy": float(trial.score),
            }
            seconds = (
                trial.metrics.get_last_value("seconds") if trial.metrics.exists("seconds") else None
            )
            row["seconds"] = None if seconds is None else round(float(seconds), 4)
            cache[key] = row
        for name in ZERO_COST:
            if name in (priors or {}) and name not in cache[key]:
                row = cache[key]
                value = priors[name](space.parse(row["arch"]))
                # in the history's column order: before accuracy and seconds
                cache[key] = {
                    **{k: v for k, v in row.items() if k not in ("accuracy", "seconds")},
                    name: value,
                    "accuracy": row["accuracy"],
                    "seconds": row["seconds"],
                }
        rows.append(cache[key])
    return rows


def pick_values(accuracies, prior=None, score: str = "supernet") -> np.ndarray:
    """The value a search maximizes over its candidates, one per candidate (float array):
    ``accuracies`` themselves (``"supernet"``), or with a combination (``"supernet+macs"``,
    ``"supernet+synflow"``, ...) the mean of each candidate's ranks by accuracy and by each
    ``prior`` (one value per candidate, or one such sequence per prior of ``score``: the
    candidates' MACs, SynFlow or NASWOT, higher = better) among the given candidates
    (:func:`spos_tf.rank.stats.rank_average`; a re-pick among evaluated candidates, not a search
    steered by the combination). Raises ``ValueError`` on no candidates or an unknown
    ``score``. Cost: one sort per ranking, O(n log n)."""
    if score not in SEARCH_SCORES:
        raise ValueError(f"score must be one of {', '.join(SEARCH_SCORES)}; got {score!r}")
    if len(accuracies) == 0:
        raise ValueError("no candidates to pick from")
    values = np.asarray(accuracies, dtype=float)
    if score in SEARCH_PRIORS:
        from spos_tf.rank.stats import rank_average

        values = rank_average(values, *np.atleast_2d(np.asarray(prior, dtype=float)))
    return values


def best_index(accuracies, prior=None, score: str = "supernet") -> int:
    """Which candidate a search picks: the first of the highest :func:`pick_values` (the
    accuracy, or a combination's mean rank). Raises ``ValueError`` as :func:`pick_values`."""
    # argmax: the first of equal values
    return int(np.argmax(pick_values(accuracies, prior, score)))


def best_row(rows: list, score: str = "supernet") -> dict | None:
    """The row :func:`best_index` picks (ties: the first evaluated, evolution before random);
    None without rows. A combination reads its prior from each row's column of
    :data:`~spos_tf.search.config.SEARCH_PRIORS` (``macs``, ``synflow``, ``naswot``)."""
    if not rows:
        return None
    prior = [[r[p] for r in rows] for p in SEARCH_PRIORS[score]] if score in SEARCH_PRIORS else None
    return rows[best_index([r["accuracy"] for r in rows], prior, score)]


def best_over_seeds(per_seed: dict, score: str = "supernet") -> tuple | None:
    """``(seed, row)``: the candidate a ``--seeds`` search picks over all seeds' rows
    (``{seed: rows}``) pooled, by :func:`best_row` (a combination's ranks are taken among all
    seeds' candidates); ties go to the earlier seed in ``per_seed``'s order, then to the first
    evaluated. None without rows."""
    pooled = [
        (seed, row)
        for seed, rows in per_seed.items()
        for row in sorted(rows, key=lambda r: (ALGORITHMS.index(r["algorithm"]), r["trial_id"]))
    ]
    best = best_row([row for _, row in pooled], score)
    return None if best is None else next(p for p in pooled if p[1] is best)


def best_record(
    row: dict, space: SearchSpace, run_config: dict, config: SearchConfig, evaluated: int
) -> dict:
    """The ``best.json`` object of ``row``."""
    arch = space.parse(row["arch"])
    costs = arch_costs(
        space, arch, config.bitops_convention, costs_lib.table(space, config.latency_table)
    )
    record = json.loads(arch.to_json(space))
    record.update(
        accuracy=row["accuracy"],
        **{name: row[name] for name in ZERO_COST if name in row},
        costs=costs,
        algorithm=row["algorithm"],
        trial_id=row["trial_id"],
        generation=row["generation"],
        space_overrides=run_config.get("space_overrides", {}),
        supernet_dir=os.fspath(config.supernet_dir),
        supernet_step=config.supernet_step,
        constraints=resolve_limits(config, space),
        archs_file=os.fspath(config.archs_file) if config.archs_file else None,
        evaluated=evaluated,
        score=config.score,
        calib_images=config.num_calib_batches * config.calib_batch_size,
        calib_mode=config.calib_mode,
        calib_augment=config.calib_augment,
        calib_stream=config.calib_stream,
        holdout_images=config.holdout_images,
        holdout_images_per_candidate=config.holdout_images_per_candidate,
        finetune_steps=config.finetune_steps,
        finetune_lr=config.finetune_lr if config.finetune_steps else None,
    )
    return record


def write_history(path: str, rows: list, space: SearchSpace) -> None:
    buf = io.StringIO()
    latency = bool(rows) and "latency_ms" in rows[0]
    priors = [name for name in ZERO_COST if rows and name in rows[0]]
    writer = csv.DictWriter(
        buf, fieldnames=history_columns(space, latency, priors), lineterminator="\n"
    )
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
    for algorithm in ALGORITHMS:
        acc = [r["accuracy"] for r in rows if r["algorithm"] == algorithm]
        if not acc:
            continue
        best, running = [], float("-inf")
        for a in acc:
            running = max(running, a)
            best.append(running)
        x = list(range(1, len(acc) + 1))
        color = ALGORITHM_COLORS[algorithm]
        ax.scatter(x, [100 * a for a in acc], s=4, alpha=0.25, color=color)
        ax.plot(
            x,
            [100 * b for b in best],
            color=color,
            lw=2,
            label=f"{algorithm} search (best {100 * best[-1]:.2f}%)",
        )
    ax.set_xlabel("number of evaluated architectures")
    ax.set_ylabel("held-out top-1 accuracy (%) with supernet weights")
    ax.set_title(title or "Best accuracy so far", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    run_dir.save_figure(fig, path)


def write_outputs(
    workdir: str,
    rows: list,
    space: SearchSpace,
    run_config: dict,
    config: SearchConfig,
    plot: bool = True,
) -> dict | None:
    """Writes ``history.csv``, ``best.json`` and (with ``plot``) ``search.png``; returns the
    best record (None when nothing was evaluated yet)."""
    write_history(os.path.join(workdir, HISTORY_FILE), rows, space)
    best = best_row(rows, config.score)
    if best is None:
        return None
    record = best_record(best, space, run_config, config, evaluated=len(rows))
    run_dir.atomic_write_json(os.path.join(workdir, BEST_FILE), record)
    if plot:
        limits = ", ".join(f"{k} <= {v:.4g}" for k, v in resolve_limits(config, space).items())
        latency = (
            f"; best {record['costs']['latency_ms']:.3g} ms"
            if "latency_ms" in record["costs"]
            else ""
        )
        write_plot(
            os.path.join(workdir, PLOT_FILE),
            rows,
            f"{space.name}" + (f" ({limits})" if limits else "") + latency,
        )
    return record


def write_hparams(logdir: str, rows: list, space: SearchSpace) -> int:
    """Every candidate of ``rows`` as a TensorBoard HParams session (genes, costs and algorithm
    as hyperparameters; held-out accuracy with supernet weights as the metric)."""
    from spos_tf.runs import hparams

    cost_names = [
        c for c in ("macs", "params", "bitops", "latency_ms") if rows and rows[0].get(c) is not None
    ]
    return hparams.write_sessions(
        logdir,
        [
            {
                "name": f"{r['algorithm']}_{r['trial_id']}",
                "hparams": {
                    "algorithm": r["algorithm"],
                    **space.to_values(space.parse(r["arch"])),
                    **{c: float(r[c]) for c in cost_names},
                },
                "metrics": {"holdout_accuracy": r["accuracy"]},
            }
            for r in rows
        ],
    )


class Results:
    """The rows of every algorithm searched into ``config.workdir`` and the files derived from
    them; the caller gets the same rows and best record as values (:attr:`finished`,
    :attr:`best`).

    On construction, the rows of algorithms searched into the workdir by an earlier run (and not
    searched now) are read from their oracles' saved state. ``priors``: the search's
    :class:`~spos_tf.search.priors.PriorCache` per zero-cost prior of ``config.score``, if the
    caller already opened them (otherwise they are opened here).
    """

    def __init__(
        self,
        config: SearchConfig,
        space: SearchSpace,
        run_config: dict,
        priors: dict | None = None,
    ):
        self.config, self.space, self.run_config = config, space, run_config
        self.table = costs_lib.table(space, config.latency_table)
        self.cache: dict = {}
        if priors is None:
            priors = open_priors(config, space)
        self.priors = priors
        self.finished: list = []  # rows of algorithms whose search is over
        self.best = None  # the best.json record once a search finished
        for other in ALGORITHMS:  # searched into this workdir by an earlier run
            if other not in config.algorithms and _has_project(config.workdir, other):
                self.finished += self._rows(_reload(other, config, space), other)

    def _rows(self, oracle, algorithm: str) -> list:
        return history_rows(
            oracle,
            algorithm,
            self.space,
            self.cache,
            self.table,
            self.config.bitops_convention,
            self.priors,
        )

    def write(self, oracle=None, algorithm: str | None = None, plot: bool = False):
        """Writes the files of the finished rows plus the completed trials of the live
        ``oracle``; returns the best record (None before the first candidate)."""
        live = self._rows(oracle, algorithm) if oracle else []
        rows = sorted(
            self.finished + live, key=lambda r: (ALGORITHMS.index(r["algorithm"]), r["trial_id"])
        )
        return write_outputs(
            self.config.workdir, rows, self.space, self.run_config, self.config, plot=plot
        )

    def finish(self, oracle, algorithm: str) -> int:
        """Adds the rows of a finished search, writes every file (and the TensorBoard HParams
        sessions of every candidate); returns its row count."""
        rows = self._rows(oracle, algorithm)
        self.finished += rows
        self.best = self.write(plot=True)
        write_hparams(os.path.join(self.config.workdir, HPARAMS_DIR), self.finished, self.space)
        return len(rows)


def open_priors(config: SearchConfig, space: SearchSpace) -> dict:
    """``{name: PriorCache}`` of the zero-cost priors of ``config.score`` in ``config.workdir``
    (none for other scores); NASWOT's images are read on its first computed score
    (:func:`~spos_tf.search.priors.naswot_images`). Raises ``ValueError`` for a foreign cache."""
    return prior_caches(
        config.workdir,
        space,
        zero_cost_priors(config.score),
        lambda: naswot_images(config.supernet_dir, config.data_dir),
    )


def _has_project(workdir: str, algorithm: str) -> bool:
    return os.path.exists(os.path.join(workdir, algorithm, "oracle.json"))


def _reload(algorithm: str, config: SearchConfig, space: SearchSpace):
    """The oracle of an earlier search in ``config.workdir`` (for its trials only)."""
    oracle = make_oracle(algorithm, config, space)
    oracle._set_project_dir(config.workdir, algorithm)
    oracle.reload()
    return oracle
