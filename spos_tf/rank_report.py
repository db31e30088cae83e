"""The results of a ranking: per-architecture files read back into rows, and ``ranking.csv``,
``ranking.json``, ``ranking.png`` and the HParams sessions written from them.

Layout read here (written by :mod:`spos_tf.rank_lib`)::

    archs/<i>/supernet.json       arch i's supernet accuracy (held-out split)
    archs/<i>/seed_<k>/           arch i trained from scratch with seed k (a spos_tf.train run)

With a ground-truth table (``--ground_truth``, :mod:`spos_tf.ground_truth`) the stand-alone
accuracy of each architecture is the table's, not a training's.

Costs: reading is a few file opens per architecture; the statistics (scipy bootstrap, 2000
resamples each) take about a second for 20 architectures and grow about linearly.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Optional

import numpy as np

from spos_tf import costs as costs_lib
from spos_tf import rank_stats, run_dir
from spos_tf.space import SearchSpace

CSV_FILE = "ranking.csv"
JSON_FILE = "ranking.json"
PLOT_FILE = "ranking.png"
HPARAMS_DIR = "hparams"
ARCHS_DIR = "archs"
SUPERNET_FILE = "supernet.json"


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


def collect(workdir: str, space: SearchSpace, archs: list, seeds: int, truth=None) -> list:
    """One row per architecture from the files of ``workdir`` (unfinished values are None).

    With ``truth`` (a :class:`spos_tf.ground_truth.GroundTruth`; NAS-Bench-201) the stand-alone
    accuracy is the table's (its units, percent), not a training: ``standalone`` is
    ``[that accuracy]``, the row adds ``benchmark`` (the cell's string), ``ground_truth`` and
    ``ground_truth_percentile`` (:meth:`~spos_tf.ground_truth.GroundTruth.percentile`), and it
    is complete once the supernet scored it. Raises ``MissingCellError`` for a cell the table
    lacks.
    """
    table = costs_lib.table(space)
    rows = []
    for i, arch in enumerate(archs):
        folder = arch_dir(workdir, i)
        score = _read_json(os.path.join(folder, SUPERNET_FILE))
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
                "supernet_accuracy": None if score is None else score["accuracy"],
                "standalone": per_seed,
                "standalone_mean": float(np.mean(done)) if done else None,
                "standalone_std": float(np.std(done, ddof=1)) if len(done) > 1 else None,
                "complete": score is not None and len(done) == len(per_seed),
            }
        )
        if truth is not None:
            row["ground_truth"] = per_seed[0]
            row["ground_truth_percentile"] = truth.percentile(per_seed[0])
        rows.append(row)
    return rows


def ground_truth_column(truth) -> str:
    """The ``ranking.csv`` column of the table's accuracy: ``ground_truth_<column>``."""
    return f"ground_truth_{truth.column}"


def csv_text(rows: list, space: SearchSpace, seeds: int, truth=None) -> str:
    """``ranking.csv``: arch, costs, supernet accuracy (held-out), stand-alone accuracy per seed
    (test), their mean and std (ddof 1). With ``truth``: arch, benchmark string, costs, supernet
    accuracy, the table's accuracy (column :func:`ground_truth_column`, table units) and its
    percentile among the table's distinct cells (fraction)."""
    cost_names = list(costs_lib.table(space).all(space.parse(rows[0]["arch"]))) if rows else []
    if truth is not None:
        columns = (
            ["index", "arch", "benchmark"]
            + cost_names
            + ["supernet_accuracy", ground_truth_column(truth), "ground_truth_percentile"]
        )
    else:
        columns = (
            ["index", "arch"]
            + cost_names
            + ["supernet_accuracy"]
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
    :func:`spos_tf.rank_stats.correlation`), and, where :mod:`spos_tf.rank_stats` offers
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


def _pick(row: dict, ranked: list, truth) -> dict:
    """What the supernet's pick ``row`` is worth by the table: its accuracy and percentiles among
    the table's distinct cells and among the ``ranked`` rows (both: fraction at or below)."""
    accuracy = row["ground_truth"]
    return {
        "index": row["index"],
        "arch": row["arch"],
        "benchmark": row["benchmark"],
        "supernet_accuracy": row["supernet_accuracy"],
        "ground_truth_accuracy": accuracy,
        "percentile_table": truth.percentile(accuracy),
        "percentile_ranked": float(np.mean([r["ground_truth"] <= accuracy for r in ranked])),
    }


def pick_stats(rows: list, truth, k: int = 10) -> dict:
    """The supernet's picks among the complete ``rows``, judged by the table: ``top1`` (highest
    supernet accuracy; ties: lowest index), ``best_of_top{k}`` (the best ground truth among the
    ``min(k, n)`` highest by supernet accuracy), and ``best_ranked`` (the best ground truth of
    all ranked rows, what a perfect ranker picks). Each as :func:`_pick`."""
    order = sorted(rows, key=lambda r: (-r["supernet_accuracy"], r["index"]))
    top = order[: min(k, len(order))]
    best_top = max(top, key=lambda r: (r["ground_truth"], -r["index"]))
    best = max(rows, key=lambda r: (r["ground_truth"], -r["index"]))
    return {
        "top1": _pick(order[0], rows, truth),
        f"best_of_top{k}": {**_pick(best_top, rows, truth), "k": len(top)},
        "best_ranked": _pick(best, rows, truth),
    }


def write_outputs(workdir: str, rows: list, space: SearchSpace, config, truth=None) -> dict:
    """Writes ``ranking.csv`` (every architecture), ``ranking.json`` (statistics over the complete
    rows), ``ranking.png`` and the TensorBoard HParams sessions (``hparams/``) once at least 3
    rows are complete; returns ``{"rows", "stats", "complete"}``. ``config``: the ranking's
    :class:`~spos_tf.rank_lib.RankConfig` (``retrain_seeds``, ``seed``, ``supernet_dir``).

    ``stats``: :func:`spos_tf.rank_stats.summarize` (supernet vs stand-alone) plus
    :func:`baseline_stats` (ranking by MACs; the supernet's paired difference to it). With
    ``truth`` (``--ground_truth``) the stand-alone accuracy is the table's, ``stats`` adds
    ``picks`` (:func:`pick_stats`) and leaves out the seed noise (one value per cell), and
    ``ranking.json`` adds ``ground_truth``: the table's file name (not its path), column, cell
    counts and the conventions.
    """
    run_dir.atomic_write_text(
        os.path.join(workdir, CSV_FILE), csv_text(rows, space, config.retrain_seeds, truth)
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
    complete = len(full) == len(rows)
    record = {
        "complete": complete,
        "finished_archs": len(full),
        "num_archs": len(rows),
        "space": space.name,
        "supernet_dir": os.fspath(config.supernet_dir),
        "supernet_accuracy_split": "holdout",
        "stats": stats,
    }
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
        from spos_tf import hparams

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
    return {"rows": rows, "stats": stats, "complete": complete}


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
        for name, pick in stats["picks"].items():
            lines.append(
                f"{name}: {pick['arch']} ground truth {pick['ground_truth_accuracy']:.2f}, "
                f"percentile {100 * pick['percentile_table']:.1f} of the table's distinct cells, "
                f"{100 * pick['percentile_ranked']:.1f} of the ranked"
            )
    else:
        lines.append(
            f"stand-alone test accuracy: spread {100 * stats['spread']:.2f} points, seed std "
            f"{100 * stats['seed_std']:.2f} points; top-k overlap {stats['top_k_overlap']}"
        )
    return "\n".join(lines)
