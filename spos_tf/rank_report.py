"""The results of a ranking: per-architecture files read back into rows, and ``ranking.csv``,
``ranking.json``, ``ranking.png`` and the HParams sessions written from them.

Layout read here (written by :mod:`spos_tf.rank_lib`)::

    archs/<i>/supernet.json       arch i's supernet accuracy (held-out split)
    archs/<i>/seed_<k>/           arch i trained from scratch with seed k (a spos_tf.train run)

Costs: reading is a few file opens per architecture; the statistics (scipy bootstrap) take about a
second for 20 architectures.
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


def collect(workdir: str, space: SearchSpace, archs: list, seeds: int) -> list:
    """One row per architecture from the files of ``workdir`` (unfinished values are None)."""
    table = costs_lib.table(space)
    rows = []
    for i, arch in enumerate(archs):
        folder = arch_dir(workdir, i)
        score = _read_json(os.path.join(folder, SUPERNET_FILE))
        per_seed = [_final_accuracy(os.path.join(folder, f"seed_{k}")) for k in range(seeds)]
        done = [a for a in per_seed if a is not None]
        rows.append(
            {
                "index": i,
                "arch": str(arch),
                **table.all(arch),
                "supernet_accuracy": None if score is None else score["accuracy"],
                "standalone": per_seed,
                "standalone_mean": float(np.mean(done)) if done else None,
                "standalone_std": float(np.std(done, ddof=1)) if len(done) > 1 else None,
                "complete": score is not None and len(done) == seeds,
            }
        )
    return rows


def csv_text(rows: list, space: SearchSpace, seeds: int) -> str:
    """``ranking.csv``: arch, costs, supernet accuracy (held-out), stand-alone accuracy per seed
    (test), their mean and std (ddof 1)."""
    cost_names = list(costs_lib.table(space).all(space.parse(rows[0]["arch"]))) if rows else []
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
        out.update({f"standalone_seed_{k}": v for k, v in enumerate(row["standalone"])})
        writer.writerow({k: "" if v is None else v for k, v in out.items()})
    return buf.getvalue()


def write_outputs(workdir: str, rows: list, space: SearchSpace, config) -> dict:
    """Writes ``ranking.csv`` (every architecture), ``ranking.json`` (statistics over the complete
    rows), ``ranking.png`` and the TensorBoard HParams sessions (``hparams/``) once at least 3
    rows are complete; returns ``{"rows", "stats", "complete"}``. ``config``: the ranking's
    :class:`~spos_tf.rank_lib.RankConfig` (``retrain_seeds``, ``seed``, ``supernet_dir``)."""
    run_dir.atomic_write_text(
        os.path.join(workdir, CSV_FILE), csv_text(rows, space, config.retrain_seeds)
    )
    full = [r for r in rows if r["complete"]]
    stats = None
    if len(full) >= 3:
        stats = rank_stats.summarize(
            [r["supernet_accuracy"] for r in full],
            [r["standalone"] for r in full],
            seed=config.seed,
        )
        # the baseline a supernet has to beat: ranking by MACs alone
        stats["macs_kendall_tau"] = rank_stats.correlation(
            "kendall_tau",
            [r["macs"] for r in full],
            [r["standalone_mean"] for r in full],
            seed=config.seed,
        )
    complete = len(full) == len(rows)
    record = {
        "complete": complete,
        "finished_archs": len(full),
        "num_archs": len(rows),
        "retrain_seeds": config.retrain_seeds,
        "space": space.name,
        "supernet_dir": os.fspath(config.supernet_dir),
        "supernet_accuracy_split": "holdout",
        "standalone_accuracy_split": "test",
        "stats": stats,
    }
    run_dir.atomic_write_text(
        os.path.join(workdir, JSON_FILE), json.dumps(record, indent=2, sort_keys=True) + "\n"
    )
    if stats is not None:
        write_plot(os.path.join(workdir, PLOT_FILE), full, stats, space.name)
        from spos_tf import hparams

        hparams.write_sessions(
            os.path.join(workdir, HPARAMS_DIR),
            [
                {
                    "name": f"{r['index']:03d}",
                    "hparams": {**space.to_values(space.parse(r["arch"])), **_costs_of(r)},
                    "metrics": {
                        "supernet_accuracy": r["supernet_accuracy"],
                        "standalone_accuracy": r["standalone_mean"],
                    },
                }
                for r in full
            ],
        )
    return {"rows": rows, "stats": stats, "complete": complete}


def _costs_of(row: dict) -> dict:
    return {k: float(row[k]) for k in ("macs", "params", "bitops", "latency_ms") if k in row}


def write_plot(path: str, rows: list, stats: dict, title: str = "") -> None:
    """Supernet accuracy (held-out) vs stand-alone accuracy (test, mean and seed range) of the
    complete rows, coloured by MACs, with tau and its interval in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.array([100 * r["supernet_accuracy"] for r in rows])
    y = np.array([100 * r["standalone_mean"] for r in rows])
    low = y - np.array([100 * min(r["standalone"]) for r in rows])
    high = np.array([100 * max(r["standalone"]) for r in rows]) - y
    macs = np.array([r["macs"] / 1e6 for r in rows])
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    ax.errorbar(x, y, yerr=[low, high], fmt="none", ecolor="0.6", lw=1, zorder=1)
    points = ax.scatter(
        x, y, c=macs, cmap="viridis", s=36, zorder=2, edgecolors="k", linewidths=0.4
    )
    fig.colorbar(points, ax=ax, label="MMACs")
    tau = stats["kendall_tau"]
    ax.set_title(
        f"{title}: Kendall tau {tau['value']:.2f} [{tau['ci_low']:.2f}, "
        f"{tau['ci_high']:.2f}], Spearman {stats['spearman_rho']['value']:.2f}, "
        f"n={stats['num_archs']}",
        fontsize=9,
    )
    ax.set_xlabel("supernet accuracy (%), inherited weights, held-out split")
    ax.set_ylabel("stand-alone accuracy (%), test split\n(mean; bars: seed min..max)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    run_dir.save_figure(fig, path)


def describe(result: dict) -> str:
    """A few lines for the console: the statistics, or how much is finished."""
    rows, stats = result["rows"], result["stats"]
    done = sum(r["complete"] for r in rows)
    head = f"{done}/{len(rows)} architectures finished"
    if stats is None:
        return head + " (statistics need 3)"
    tau, rho, r = stats["kendall_tau"], stats["spearman_rho"], stats["pearson_r"]
    return (
        f"{head}{'' if result['complete'] else ' (partial: statistics over those)'}\n"
        f"Kendall tau {tau['value']:.3f} (95% CI {tau['ci_low']:.3f}..{tau['ci_high']:.3f}, "
        f"p={tau['p_value']:.2g}), Spearman rho {rho['value']:.3f}, Pearson r "
        f"{r['value']:.3f}; ranking by MACs alone: Kendall tau "
        f"{stats['macs_kendall_tau']['value']:.3f}\nstand-alone test accuracy: spread {100 * stats['spread']:.2f} "
        f"points, seed std {100 * stats['seed_std']:.2f} points; top-k overlap "
        f"{stats['top_k_overlap']}"
    )
