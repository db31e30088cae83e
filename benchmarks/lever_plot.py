"""Forest plot of the levers of a ranking ablation: each lever's paired delta Kendall tau against
its own baseline, with its bootstrap 95% interval, read from ``benchmarks/rank_ablation.py``
tables.

Usage:
    python benchmarks/lever_plot.py @benchmarks/nb201/levers.args   # the README's figure
    python benchmarks/lever_plot.py --out=benchmarks/figures/nb201_levers.png \
        --lever="CaLR gamma 16 vs gamma 8=benchmarks/nb201/ablation_calr_gamma16.json#CaLR, gamma 16 to 1/16, seed 0" \
        --lever="..."

An ``@<file>`` argument reads further arguments from the file, one per line. Each ``--lever`` is
``display label=<ablation.json>#<row label>`` (the display label holds no "=", the row label
may): the row's ``delta_tau_vs_baseline`` (paired against the first row of that table) is drawn
as a point with its interval; a lever whose interval excludes 0 is drawn filled, one whose
interval holds 0 hollow. Each label ends with the row's number of supernets (a seed each, or
one seed trained again on another CPU; "no supernet" for a prior alone). Writes ``<out>``
(PNG) and ``<out without .png>.json`` (the plotted numbers, with the table, row and baseline
each came from). Nothing is recomputed: the intervals are the tables'.
Cost: under a second (matplotlib).
"""

import argparse
import json
import os
import sys
import textwrap

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # spos_tf
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # rank_ablation, its neighbour

from rank_ablation import PRIORS  # noqa: E402

from spos_tf.runs import run_dir  # noqa: E402


def seeds_text(seeds: int) -> str:
    return "no supernet" if seeds == 0 else f"{seeds} supernet{'s' if seeds > 1 else ''}"


def parse_lever(spec: str) -> tuple:
    """``(display label, ablation.json path, row label)`` of ``label=<json>#<row label>``."""
    label, sep, rest = spec.partition("=")
    path, sep2, row = rest.partition("#")
    if not sep or not sep2 or not label or not path or not row:
        raise SystemExit(f"--lever={spec!r}: expected 'display label=<ablation.json>#<row label>'")
    return label, path, row


def read_lever(spec: str) -> dict:
    """One plotted point: the row's paired delta tau vs its table's baseline (first row)."""
    label, path, row_label = parse_lever(spec)
    if not os.path.exists(path):
        raise SystemExit(
            f"--lever={label!r}: {path} does not exist; write it with benchmarks/rank_ablation.py"
        )
    with open(path) as f:
        table = json.load(f)
    rows = {row["label"]: row for row in table["rows"]}
    if row_label not in rows:
        raise SystemExit(
            f"--lever={label!r}: {path} has no row {row_label!r}; its rows: {sorted(rows)}"
        )
    row = rows[row_label]
    delta = row["delta_tau_vs_baseline"]
    return {
        "label": label,
        "table": path,
        "row": row_label,
        "baseline": table["rows"][0]["label"],
        # a prior alone (MACs, SynFlow, ...) trains no supernet
        "seeds": 0 if row.get("score") in PRIORS else int(row.get("seeds", 1)),
        "num_archs": int(table["num_archs"]),
        "kendall_tau": row["kendall_tau"]["value"],
        "delta_tau": delta["value"],
        "ci_low": delta["ci_low"],
        "ci_high": delta["ci_high"],
        "resolved": bool(delta["ci_low"] > 0 or delta["ci_high"] < 0),
    }


def plot(levers: list, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(levers)
    fig, ax = plt.subplots(figsize=(11, 0.4 * n + 1.6))
    for i, lever in enumerate(levers):
        y = n - 1 - i
        color = "tab:green" if lever["delta_tau"] > 0 else "tab:red"
        ax.errorbar(
            lever["delta_tau"],
            y,
            xerr=[[lever["delta_tau"] - lever["ci_low"]], [lever["ci_high"] - lever["delta_tau"]]],
            fmt="o",
            color=color,
            mfc=color if lever["resolved"] else "white",
            capsize=3,
        )
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.set_yticks(range(n))
    ax.set_yticklabels(
        [f"{lv['label']} ({seeds_text(lv['seeds'])})" for lv in levers][::-1],
        fontsize=8,
    )
    ax.set_xlabel(
        "paired delta Kendall tau vs the lever's baseline\n(bootstrap 95% interval; filled: it excludes 0)"
    )
    ax.set_title(textwrap.fill(title, 70), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    # @<file>: one argument per line (the levers of a figure kept beside its tables)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], fromfile_prefix_chars="@")
    parser.add_argument("--lever", action="append", required=True, help="label=<json>#<row>")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--title", default="What each lever did to the supernet's ranking")
    args = parser.parse_args(argv)
    if not args.out.endswith(".png"):
        raise SystemExit(f"--out={args.out!r}: give a .png path")
    levers = [read_lever(spec) for spec in args.lever]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    plot(levers, args.out, args.title)
    run_dir.atomic_write_text(
        args.out[: -len(".png")] + ".json", json.dumps({"levers": levers}, indent=2) + "\n"
    )
    return levers


if __name__ == "__main__":
    main()
