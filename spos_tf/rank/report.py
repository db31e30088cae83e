"""The results of a ranking: per-architecture files read back into rows, and ``ranking.csv``,
``ranking.json``, ``ranking.png`` and the HParams sessions written from them.

Layout read here (written by :mod:`spos_tf.rank.run`)::

    archs/<i>/supernet.json       arch i's supernet accuracy and log-likelihood (held-out split)
    archs/<i>/seed_<k>/           arch i trained from scratch with seed k (a spos_tf.train run)
    archs/<i>/synflow.json        arch i's SynFlow score (a ``--score`` with synflow only)
    archs/<i>/naswot.json         arch i's NASWOT score (a ``--score`` with naswot only)

With a ground-truth table (``--ground_truth``, :mod:`spos_tf.rank.ground_truth`) the stand-alone
accuracy of each architecture is the table's, not a training's.

With a combined ``--score`` (:data:`SCORES`: ``supernet+macs``, ``supernet+synflow``,
``supernet+naswot``, ``supernet+synflow+naswot``) the report adds a *combined* score: per
architecture the mean of its rank by supernet accuracy and its ranks by the priors
(:data:`PRIORS`: MACs, or the zero-cost proxies :data:`ZERO_COST` of its untrained stand-alone
network, :mod:`spos_tf.rank.zero_cost`), see :func:`combined_scores`. It is always reported as a
combination, next to the supernet's own statistics (which stay as they are): ``ranking.csv``
gains ``combined_score`` (and a column per zero-cost prior), ``ranking.json`` gains ``score`` and
``stats["combined"]`` (:func:`combined_stats`).

Costs: reading is a few file opens per architecture; the statistics (scipy bootstrap, 2000
resamples each) take about a second for 20 architectures and grow about linearly; a combined
score adds 2 correlations and 2 paired differences, and 2 and 1 more per zero-cost prior.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Optional

import numpy as np

from spos_tf import costs as costs_lib
from spos_tf.rank import stats as rank_stats
from spos_tf.runs import run_dir
from spos_tf.spaces.space import SearchSpace

CSV_FILE = "ranking.csv"
JSON_FILE = "ranking.json"
PLOT_FILE = "ranking.png"
HPARAMS_DIR = "hparams"
ARCHS_DIR = "archs"
SUPERNET_FILE = "supernet.json"
SYNFLOW_FILE = "synflow.json"
# The initialisation the zero-cost proxies are computed at (rank and search): fixed, so an
# architecture's score is the same in every ranking or search (of any --seed) and no cache
# depends on the settings.
SYNFLOW_SEED = 0
# Zero-cost proxies of an architecture's untrained stand-alone network (spos_tf.rank.zero_cost),
# each computed once per architecture and cached in archs/<i>/<name>.json.
ZERO_COST = ("synflow", "naswot")
# --score: what ranks the architectures. A combined score is the mean rank of the supernet's
# accuracy and its priors (PRIORS: their row keys); "supernet" is the supernet's accuracy alone.
SCORES = (
    "supernet",
    "supernet+macs",
    "supernet+synflow",
    "supernet+naswot",
    "supernet+synflow+naswot",
)
PRIORS = {score: tuple(score.split("+")[1:]) for score in SCORES[1:]}
PRIOR_LABELS = {"macs": "MACs", "synflow": "SynFlow", "naswot": "NASWOT"}


def zero_cost_priors(score: str) -> tuple:
    """The zero-cost proxies (:data:`ZERO_COST`) among ``score``'s priors, e.g. ``("synflow",)``."""
    return tuple(p for p in PRIORS.get(score, ()) if p in ZERO_COST)


def prior_label(score: str) -> str:
    """``score``'s priors in words: ``"SynFlow and NASWOT"``."""
    return " and ".join(PRIOR_LABELS[p] for p in PRIORS[score])


def arch_dir(workdir: str, index: int) -> str:
    return os.path.join(os.fspath(workdir), ARCHS_DIR, f"{index:03d}")


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _final_accuracy(workdir: str) -> Optional[float]:
    """The final test accuracy of a finished ``spos_tf.train`` run (None if unfinished)."""
    records = run_dir.MetricsLog(workdir).read()
    if records and records[-1].get("final") and records[-1].get("eval_split") == "test":
        return float(records[-1]["val_accuracy"])
    return None


def zero_cost_record(workdir: str, index: int, arch, name: str = "synflow") -> Optional[dict]:
    """The cached record of the zero-cost proxy ``name`` (:data:`ZERO_COST`) of architecture
    ``index`` (``archs/<i>/<name>.json``), or None if there is none or it is of another
    architecture or unreadable."""
    record = _read_json(os.path.join(arch_dir(workdir, index), f"{name}.json"))
    if isinstance(record, dict) and record.get("arch") == str(arch) and name in record:
        return record
    return None


def collect(
    workdir: str, space: SearchSpace, archs: list, seeds: int, truth=None, score: str = "supernet"
) -> list:
    """One row per architecture from the files of ``workdir`` (unfinished values are None).

    With ``truth`` (a :class:`spos_tf.rank.ground_truth.GroundTruth`; NAS-Bench-201) the stand-alone
    accuracy is the table's (its units, percent), not a training: ``standalone`` is
    ``[that accuracy]``, the row adds ``benchmark`` (the cell's string), ``ground_truth`` and
    ``ground_truth_percentile`` (:meth:`~spos_tf.rank.ground_truth.GroundTruth.percentile`), and it
    is complete once the supernet scored it. Raises ``MissingCellError`` for a cell the table
    lacks.

    With a ``score`` that has zero-cost priors (e.g. ``"supernet+synflow"``) each row adds a
    column per proxy (``synflow``, ``naswot``): the cached score (:func:`zero_cost_record`), None
    where not computed yet (the row's ``complete`` ignores it).
    """
    table = costs_lib.table(space)
    rows = []
    for i, arch in enumerate(archs):
        folder = arch_dir(workdir, i)
        scored = _read_json(os.path.join(folder, SUPERNET_FILE))
        row = {"index": i, "arch": str(arch)}
        if truth is not None:
            accuracy = truth.accuracy(arch.genes[0])
            row["benchmark"] = space.benchmark_string(arch)
            per_seed = [accuracy]
        else:
            per_seed = [_final_accuracy(os.path.join(folder, f"seed_{k}")) for k in range(seeds)]
        done = [a for a in per_seed if a is not None]
        row.update(
            {
                **table.all(arch),
                "supernet_accuracy": None if scored is None else scored["accuracy"],
                # held-out mean log-probability of the true class (absent in older rankings)
                "supernet_log_likelihood": None if scored is None else scored.get("log_likelihood"),
                "standalone": per_seed,
                "standalone_mean": float(np.mean(done)) if done else None,
                "standalone_std": float(np.std(done, ddof=1)) if len(done) > 1 else None,
                "complete": scored is not None and len(done) == len(per_seed),
            }
        )
        if truth is not None:
            row["ground_truth"] = per_seed[0]
            row["ground_truth_percentile"] = truth.percentile(per_seed[0])
        for name in zero_cost_priors(score):
            record = zero_cost_record(workdir, i, arch, name)
            row[name] = None if record is None else float(record[name])
        rows.append(row)
    return rows


def ground_truth_column(truth) -> str:
    """The ``ranking.csv`` column of the table's accuracy: ``ground_truth_<column>``."""
    return f"ground_truth_{truth.column}"


def csv_text(
    rows: list, space: SearchSpace, seeds: int, truth=None, score: str = "supernet"
) -> str:
    """``ranking.csv``: arch, costs, supernet accuracy (held-out), stand-alone accuracy per seed
    (test), their mean and std (ddof 1). With ``truth``: arch, benchmark string, costs, supernet
    accuracy, the table's accuracy (column :func:`ground_truth_column`, table units) and its
    percentile among the table's distinct cells (fraction). With a combined ``score``
    (:data:`PRIORS`), after the supernet accuracy: its zero-cost priors (``synflow``, ``naswot``)
    and ``combined_score`` (:func:`combined_scores`; empty for rows outside the statistics)."""
    cost_names = list(costs_lib.table(space).all(space.parse(rows[0]["arch"]))) if rows else []
    scores = ["supernet_accuracy"]
    if any(row.get("supernet_log_likelihood") is not None for row in rows):
        scores.append("supernet_log_likelihood")
    if score in PRIORS:
        scores += [*zero_cost_priors(score), "combined_score"]
    if truth is not None:
        columns = (
            ["index", "arch", "benchmark"]
            + cost_names
            + scores
            + [ground_truth_column(truth), "ground_truth_percentile"]
        )
    else:
        columns = (
            ["index", "arch"]
            + cost_names
            + scores
            + [f"standalone_seed_{k}" for k in range(seeds)]
            + ["standalone_mean", "standalone_std"]
        )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        out = {k: row[k] for k in columns if k in row}
        if truth is not None:
            out[ground_truth_column(truth)] = row["ground_truth"]
        else:
            out.update({f"standalone_seed_{k}": v for k, v in enumerate(row["standalone"])})
        writer.writerow({k: "" if v is None else v for k, v in out.items()})
    return buf.getvalue()


def baseline_stats(rows: list, seed: int) -> dict:
    """The baseline a supernet has to beat, on the same (complete) rows: ranking by MACs alone
    (``macs_kendall_tau``, ``macs_spearman_rho``: MACs vs stand-alone mean, as
    :func:`spos_tf.rank.stats.correlation`), and, where :mod:`spos_tf.rank.stats` offers
    ``paired_delta``, ``supernet_minus_macs``: ``{"kendall_tau", "spearman_rho"}`` paired
    bootstrap differences corr(stand-alone, supernet) - corr(stand-alone, MACs) on the same
    resampled architectures. Costs 3 x 2000 correlations per statistic (about 1 s per 100
    architectures)."""
    macs = [r["macs"] for r in rows]
    truth = [r["standalone_mean"] for r in rows]
    out = {
        f"macs_{name}": rank_stats.correlation(name, macs, truth, seed=seed)
        for name in ("kendall_tau", "spearman_rho")
    }
    paired_delta = getattr(rank_stats, "paired_delta", None)
    if paired_delta is not None:
        supernet = [r["supernet_accuracy"] for r in rows]
        out["supernet_minus_macs"] = {
            name: paired_delta(name, truth, supernet, macs, seed=seed)
            for name in ("kendall_tau", "spearman_rho")
        }
    return out


def _pick(row: dict, ranked: list, truth, score: str = "supernet_accuracy") -> dict:
    """What the pick ``row`` is worth by the table: its accuracy and percentiles among the table's
    distinct cells and among the ``ranked`` rows (both: fraction at or below). Also names the
    row's ``score`` (its key) where that is not the supernet accuracy."""
    accuracy = row["ground_truth"]
    return {
        "index": row["index"],
        "arch": row["arch"],
        "benchmark": row["benchmark"],
        "supernet_accuracy": row["supernet_accuracy"],
        **({} if score == "supernet_accuracy" else {score: row[score]}),
        "ground_truth_accuracy": accuracy,
        "percentile_table": truth.percentile(accuracy),
        "percentile_ranked": float(np.mean([r["ground_truth"] <= accuracy for r in ranked])),
    }


def pick_stats(rows: list, truth, k: int = 10, score: str = "supernet_accuracy") -> dict:
    """The picks of ``score`` (a row key, higher = better: the supernet's accuracy, or
    ``combined_score``) among the complete ``rows``, judged by the table: ``top1`` (highest
    score; ties: lowest index), ``best_of_top{k}`` (the best ground truth among the ``min(k, n)``
    highest by score), and ``best_ranked`` (the best ground truth of all ranked rows, what a
    perfect ranker picks). Each as :func:`_pick`."""
    order = sorted(rows, key=lambda r: (-r[score], r["index"]))
    top = order[: min(k, len(order))]
    best_top = max(top, key=lambda r: (r["ground_truth"], -r["index"]))
    best = max(rows, key=lambda r: (r["ground_truth"], -r["index"]))
    return {
        "top1": _pick(order[0], rows, truth, score),
        f"best_of_top{k}": {**_pick(best_top, rows, truth, score), "k": len(top)},
        "best_ranked": _pick(best, rows, truth, score),
    }


def combined_scores(rows: list, score: str) -> list:
    """Sets ``row["combined_score"]`` of every row for the combined ``score`` (a key of
    :data:`PRIORS`) and returns the rows that have one.

    The combined score of a row is :func:`spos_tf.rank.stats.rank_average` of its supernet
    accuracy and its priors (``macs``, ``synflow``, ``naswot``), higher = better for each: the
    mean of its rank by each (``scipy.stats.rankdata``, average ties), among the rows the
    statistics are over, i.e. the complete rows with every prior value (a row whose proxy is not
    computed yet is left out). Every other row gets None.
    """
    priors = PRIORS[score]
    ranked = [r for r in rows if r["complete"] and all(r.get(p) is not None for p in priors)]
    for row in rows:
        row["combined_score"] = None
    if ranked:
        values = rank_stats.rank_average(
            [r["supernet_accuracy"] for r in ranked],
            *([float(r[p]) for r in ranked] for p in priors),
        )
        for row, value in zip(ranked, values):
            row["combined_score"] = float(value)
    return ranked


def combined_stats(rows: list, score: str, seed: int, truth=None) -> dict:
    """The ``stats["combined"]`` block of ``ranking.json`` over ``rows`` (those of
    :func:`combined_scores`, at least 3): how well the combined ``score`` ranks, labelled as the
    combination it is.

    Returns:
      ``{"score": score, "prior": the priors joined by "+" ("macs", "synflow",
      "synflow+naswot", ...), "method": the rule in words, "num_archs", "kendall_tau",
      "spearman_rho": combined score vs stand-alone mean (:func:`spos_tf.rank.stats.correlation`),
      "combined_minus_supernet", "combined_minus_macs" (and "combined_minus_<proxy>" per
      zero-cost prior): {"kendall_tau", "spearman_rho"} paired bootstrap differences
      corr(stand-alone, combined) - corr(stand-alone, other) on the same resampled architectures
      (:func:`spos_tf.rank.stats.paired_delta`)}``; per zero-cost prior also
      ``<proxy>_kendall_tau`` and ``<proxy>_spearman_rho`` (the proxy alone), and with ``truth``
      ``picks`` (:func:`pick_stats` by ``combined_score``).
    """
    priors = PRIORS[score]
    names = ("kendall_tau", "spearman_rho")
    truth_values = [r["standalone_mean"] for r in rows]
    combined = [r["combined_score"] for r in rows]
    out = {
        "score": score,
        "prior": "+".join(priors),
        "method": f"mean of the ranks by supernet accuracy and by {' and by '.join(priors)} "
        f"(scipy.stats.rankdata, average ties; higher = better) among these num_archs "
        f"architectures",
        "num_archs": len(rows),
    }
    out.update(
        {name: rank_stats.correlation(name, combined, truth_values, seed=seed) for name in names}
    )
    others = {"supernet": [r["supernet_accuracy"] for r in rows], "macs": [r["macs"] for r in rows]}
    for proxy in zero_cost_priors(score):
        others[proxy] = [r[proxy] for r in rows]
        out.update(
            {
                f"{proxy}_{name}": rank_stats.correlation(
                    name, others[proxy], truth_values, seed=seed
                )
                for name in names
            }
        )
    for other, values in others.items():
        out[f"combined_minus_{other}"] = {
            name: rank_stats.paired_delta(name, truth_values, combined, values, seed=seed)
            for name in names
        }
    if truth is not None:
        out["picks"] = pick_stats(rows, truth, score="combined_score")
    return out


def write_outputs(workdir: str, rows: list, space: SearchSpace, config, truth=None) -> dict:
    """Writes ``ranking.csv`` (every architecture), ``ranking.json`` (statistics over the complete
    rows), ``ranking.png`` and the TensorBoard HParams sessions (``hparams/``) once at least 3
    rows are complete; returns ``{"rows", "stats", "complete"}`` (and ``"score"`` for a combined
    score). ``config``: the ranking's :class:`~spos_tf.rank.run.RankConfig` (``retrain_seeds``,
    ``seed``, ``supernet_dir``, ``score``).

    ``stats``: :func:`spos_tf.rank.stats.summarize` (supernet vs stand-alone) plus
    :func:`baseline_stats` (ranking by MACs; the supernet's paired difference to it). With
    ``truth`` (``--ground_truth``) the stand-alone accuracy is the table's, ``stats`` adds
    ``picks`` (:func:`pick_stats`) and leaves out the seed noise (one value per cell), and
    ``ranking.json`` adds ``ground_truth``: the table's file name (not its path), column, cell
    counts and the conventions.

    With a combined ``config.score`` (``supernet+macs``, ``supernet+synflow``, ...) the supernet's own
    statistics stay exactly as above; ``ranking.json`` adds ``score`` and, once 3 rows have a
    combined score, ``stats["combined"]`` (:func:`combined_stats`), ``ranking.csv`` its columns
    (:func:`csv_text`). The plot and the HParams sessions show the supernet alone.
    """
    score = getattr(config, "score", "supernet")
    combined_rows = combined_scores(rows, score) if score in PRIORS else []
    run_dir.atomic_write_text(
        os.path.join(workdir, CSV_FILE), csv_text(rows, space, config.retrain_seeds, truth, score)
    )
    full = [r for r in rows if r["complete"]]
    stats = None
    if len(full) >= 3:
        stats = rank_stats.summarize(
            [r["supernet_accuracy"] for r in full],
            [r["standalone"] for r in full],
            seed=config.seed,
        )
        stats.update(baseline_stats(full, config.seed))
        if truth is not None:
            for name in ("seed_std", "noise_to_spread"):
                stats.pop(name, None)
            stats["picks"] = pick_stats(full, truth)
        if len(combined_rows) >= 3:
            stats["combined"] = combined_stats(combined_rows, score, config.seed, truth)
    complete = len(full) == len(rows)
    record = {
        "complete": complete,
        "finished_archs": len(full),
        "num_archs": len(rows),
        "space": space.name,
        "supernet_dir": os.fspath(config.supernet_dir),
        "supernet_step": getattr(config, "supernet_step", None),
        "supernet_accuracy_split": "holdout",
        "stats": stats,
    }
    if score in PRIORS:
        record["score"] = score
    if truth is None:
        record.update(retrain_seeds=config.retrain_seeds, standalone_accuracy_split="test")
    else:
        record.update(
            standalone_accuracy_split="ground truth",
            ground_truth={
                "file": truth.file_name,
                "column": truth.column,
                "csv_column": ground_truth_column(truth),
                "cells": len(truth),
                "distinct_cells": truth.num_distinct,
                "units": "the table's (percent)",
                "percentile": "fraction of the table's distinct cells (one per UniqueString, "
                "first in file order) with accuracy <= the value; percentile_ranked: the same "
                "among the ranked cells",
            },
        )
    run_dir.atomic_write_text(
        os.path.join(workdir, JSON_FILE), json.dumps(record, indent=2, sort_keys=True) + "\n"
    )
    if stats is not None:
        if truth is None:
            write_plot(os.path.join(workdir, PLOT_FILE), full, stats, space.name)
        else:
            write_plot(
                os.path.join(workdir, PLOT_FILE),
                full,
                stats,
                f"{space.name} vs {truth.file_name}",
                y_label=f"ground truth: {truth.column} (%)",
                y_scale=1.0,
            )
        from spos_tf.runs import hparams

        metric = "standalone_accuracy" if truth is None else "ground_truth_accuracy"
        hparams.write_sessions(
            os.path.join(workdir, HPARAMS_DIR),
            [
                {
                    "name": f"{r['index']:03d}",
                    "hparams": {**space.to_values(space.parse(r["arch"])), **_costs_of(r)},
                    "metrics": {
                        "supernet_accuracy": r["supernet_accuracy"],
                        metric: r["standalone_mean"],
                    },
                }
                for r in full
            ],
        )
    out = {"rows": rows, "stats": stats, "complete": complete}
    if score in PRIORS:
        out["score"] = score
    return out


def _costs_of(row: dict) -> dict:
    return {k: float(row[k]) for k in ("macs", "params", "bitops", "latency_ms") if k in row}


def write_plot(
    path: str,
    rows: list,
    stats: dict,
    title: str = "",
    y_label: str = "stand-alone accuracy (%), test split\n(mean; bars: seed min..max)",
    y_scale: float = 100.0,
) -> None:
    """Supernet accuracy (held-out) vs stand-alone accuracy (``y_scale`` x the rows' values: 100
    for fractions, 1 for a table in percent; mean and seed range, no bars for a single value) of
    the complete rows, coloured by MACs, with tau and its interval, Spearman's rho and the MACs
    baseline's tau in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.array([100 * r["supernet_accuracy"] for r in rows])
    y = np.array([y_scale * r["standalone_mean"] for r in rows])
    low = y - np.array([y_scale * min(r["standalone"]) for r in rows])
    high = np.array([y_scale * max(r["standalone"]) for r in rows]) - y
    macs = np.array([r["macs"] / 1e6 for r in rows])
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    if (low > 0).any() or (high > 0).any():
        ax.errorbar(x, y, yerr=[low, high], fmt="none", ecolor="0.6", lw=1, zorder=1)
    points = ax.scatter(
        x,
        y,
        c=macs,
        cmap="viridis",
        s=36 if len(rows) <= 50 else 12,
        zorder=2,
        edgecolors="k",
        linewidths=0.4,
    )
    fig.colorbar(points, ax=ax, label="MMACs")
    tau = stats["kendall_tau"]
    baseline = stats.get("macs_kendall_tau")
    ax.set_title(
        f"{title}\nKendall tau {tau['value']:.2f} [{tau['ci_low']:.2f}, "
        f"{tau['ci_high']:.2f}], Spearman {stats['spearman_rho']['value']:.2f}, "
        f"n={stats['num_archs']}"
        + (f"; by MACs alone: tau {baseline['value']:.2f}" if baseline else ""),
        fontsize=9,
    )
    ax.set_xlabel("supernet accuracy (%), inherited weights, held-out split")
    ax.set_ylabel(y_label)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    run_dir.save_figure(fig, path)


def _interval(stat: dict) -> str:
    return f"{stat['value']:.3f} (95% CI {stat['ci_low']:.3f}..{stat['ci_high']:.3f})"


def describe(result: dict) -> str:
    """A few lines for the console: the statistics, or how much is finished."""
    rows, stats = result["rows"], result["stats"]
    done = sum(r["complete"] for r in rows)
    head = f"{done}/{len(rows)} architectures finished"
    if stats is None:
        return head + " (statistics need 3)"
    tau, rho, r = stats["kendall_tau"], stats["spearman_rho"], stats["pearson_r"]
    lines = [
        f"{head}{'' if result['complete'] else ' (partial: statistics over those)'}",
        f"Kendall tau {tau['value']:.3f} (95% CI {tau['ci_low']:.3f}..{tau['ci_high']:.3f}, "
        f"p={tau['p_value']:.2g}), Spearman rho {rho['value']:.3f}, Pearson r "
        f"{r['value']:.3f}; ranking by MACs alone: Kendall tau "
        f"{stats['macs_kendall_tau']['value']:.3f}",
    ]
    delta = stats.get("supernet_minus_macs", {}).get("kendall_tau")
    if delta is not None:
        lines.append(f"tau(supernet) - tau(MACs): {_interval(delta)}")
    if "picks" in stats:
        lines += _pick_lines(stats["picks"])
    else:
        lines.append(
            f"stand-alone test accuracy: spread {100 * stats['spread']:.2f} points, seed std "
            f"{100 * stats['seed_std']:.2f} points; top-k overlap {stats['top_k_overlap']}"
        )
        ceiling = stats.get("seed_vs_seed_tau")
        if ceiling is not None:
            lines.append(
                f"seed-vs-seed Kendall tau (the noise ceiling, {ceiling['seeds']} seeds): "
                f"{ceiling['value']:.3f} (95% CI {ceiling['ci_low']:.3f}..{ceiling['ci_high']:.3f});"
                f" the supernet reaches {tau['value'] / ceiling['value']:.2f} of it"
                + _split_half_text(ceiling.get("split_half"))
            )
    score = result.get("score")
    if score in PRIORS:
        lines += _combined_lines(score, stats.get("combined"), rows)
    return "\n".join(lines)


def _split_half_text(block) -> str:
    if not block:
        return ""
    return (
        f"; two halves of the seeds, mean vs mean: {block['value']:.3f} (95% CI "
        f"{block['ci_low']:.3f}..{block['ci_high']:.3f})"
    )


def _pick_lines(picks: dict, prefix: str = "") -> list:
    return [
        f"{prefix}{name}: {pick['arch']} ground truth {pick['ground_truth_accuracy']:.2f}, "
        f"percentile {100 * pick['percentile_table']:.1f} of the table's distinct cells, "
        f"{100 * pick['percentile_ranked']:.1f} of the ranked"
        for name, pick in picks.items()
    ]


def _combined_lines(score: str, block: Optional[dict], rows: list) -> list:
    """describe()'s lines of a combined score, each labelled as the combination."""
    label = f"combined score {score} (mean rank of supernet accuracy and {prior_label(score)})"
    if block is None:
        have = sum(r.get("combined_score") is not None for r in rows)
        return [
            f"{label}: statistics need 3 finished architectures with a "
            f"{'+'.join(PRIORS[score])} score ({have})"
        ]
    tau, rho = block["kendall_tau"], block["spearman_rho"]
    lines = [
        f"{label}, n={block['num_archs']}: Kendall tau {_interval(tau)}, Spearman rho "
        f"{rho['value']:.3f}"
    ]
    deltas = [("supernet", "supernet")] + [("macs", "MACs")]
    for proxy in zero_cost_priors(score):
        lines[-1] += (
            f"; {PRIOR_LABELS[proxy]} alone: Kendall tau {block[f'{proxy}_kendall_tau']['value']:.3f}"
        )
        deltas.append((proxy, PRIOR_LABELS[proxy]))
    for key, name in deltas:
        delta = block[f"combined_minus_{key}"]["kendall_tau"]
        lines.append(f"tau({score}) - tau({name}): {_interval(delta)}")
    if "picks" in block:
        lines += _pick_lines(block["picks"], prefix=f"{score} ")
    return lines
