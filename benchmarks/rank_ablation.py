"""Ablation table of ranking runs on the same architectures: each row against the baseline row and
against MACs by paired bootstrap.

Usage:
    python benchmarks/rank_ablation.py --out=<runs>/nb201_ablation \
        --row="baseline=<runs>/nb201_rank" \
        --row="batch_stats scoring=<runs>/nb201_rank_bs" \
        --row="baseline + MACs prior=<runs>/nb201_rank:+macs" \
        --train="baseline=2534" --train="batch_stats scoring=2534"

Each ``--row`` is ``label=<spos_tf.rank workdir>[,<workdir>...][:<score>]``; the first row is
the baseline. Several workdirs in a row are its supernet seeds: the row's Kendall tau and Spearman
rho are the means over them, its deltas the differences of those means, all with the same paired
bootstrap over architectures (:func:`spos_tf.rank.stats.mean_correlation`); its top-1 and top-k
figures and scoring time are means over the seeds.
``<score>`` is ``supernet_accuracy`` (default), any other numeric column of the workdir's
``ranking.csv`` (e.g. ``combined_score``), ``+macs``: the rank average of the supernet
accuracy and MACs (:func:`spos_tf.rank.stats.rank_average`; a combination, labelled as such in
the table; ``+<column>[+<column>...]`` likewise with any numeric columns, e.g. ``+naswot`` or
``+synflow+naswot`` on rankings that ``benchmarks/prior_scores.py`` extended), or ``ensemble`` (2 or more workdirs): one ranking by the mean supernet accuracy
over the row's supernets (a seed ensemble: its cost is every supernet's training and scoring).
The stand-alone accuracy is the ``ranking.csv`` column ``ground_truth_*`` (a
``--ground_truth`` ranking) or ``standalone_mean``. Rows are matched by architecture; only the
architectures present in every row are compared (and, with ``--archs_file``, only those it lists
in text form, e.g. the ones inside a shrunk space: ``benchmarks/shrink_space.py``).

For every row: Kendall tau and Spearman rho with bootstrap 95% intervals, the ground truth of
the top-1 pick and its percentile among the compared cells, top-k overlap with the ground
truth's top k (chance level k/n), paired-bootstrap delta-tau against the baseline row and
against ranking by MACs, the size bias (Spearman rho between MACs and the rank error, i.e. the
architecture's rank by the score minus its rank by the ground truth, both as fractions of n;
below 0: the row ranks large architectures too low; with a ``benchmark`` column of
NAS-Bench-201 cell strings also per op, against the number of edges holding it: ``op_bias``),
Kendall tau over the better half alone (the architectures whose ground truth is at or above
the median: the region a search picks from, where the whole-set tau can hide a poor order),
with its interval and its paired delta against the baseline row,
the training wall time (``--train``, seconds) and the scoring wall time
(sum of the per-architecture ``seconds`` of ``archs/*/supernet.json``; none for a prior
alone: a cost column or ``synflow``).

Writes ``<out>/ablation.json`` and ``<out>/ablation.md`` (the Markdown table) and prints the table.
With per-seed stand-alone columns (``standalone_seed_*``, 2 or more seeds) the table adds the
noise ceiling, :func:`spos_tf.rank.stats.seed_vs_seed` over the baseline row's architectures,
and each row's tau as a fraction of it.

Costs: 3 x 2000 Kendall taus per row (about 1 s per row for 200 architectures).
"""

import argparse
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

from spos_tf.rank import stats as rank_stats
from spos_tf.spaces import archs_file, nasbench201
from spos_tf.runs import run_dir  # noqa: E402


PRIORS = ("macs", "params", "bitops", "latency_ms", "synflow", "naswot")


def read_rows(workdir: str) -> dict:
    """``{arch: row}`` of ``<workdir>/ranking.csv`` (values as float where numeric)."""
    path = os.path.join(workdir, "ranking.csv")
    if not os.path.exists(path):
        raise SystemExit(f"{path} does not exist: run spos_tf.rank into {workdir} first")
    out = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            parsed = {}
            for k, v in row.items():
                try:
                    parsed[k] = float(v)
                except (TypeError, ValueError):
                    parsed[k] = v
            out[row["arch"]] = parsed
    return out


def truth_column(row: dict) -> str:
    names = [k for k in row if k.startswith("ground_truth_") and k != "ground_truth_percentile"]
    return names[0] if names else "standalone_mean"


def scoring_seconds(workdir: str, archs):
    """Seconds of supernet scoring of ``archs`` in ``workdir``; None for a stored ranking without
    its per-architecture records (``benchmarks/nb201/rankings/``)."""
    if not os.path.isdir(os.path.join(workdir, "archs")):
        return None
    total = 0.0
    for name in os.listdir(os.path.join(workdir, "archs")):
        path = os.path.join(workdir, "archs", name, "supernet.json")
        if os.path.exists(path):
            with open(path) as f:
                record = json.load(f)
            if record.get("arch") in archs:
                total += float(record.get("seconds", 0.0))
    return total


def parse_row(spec: str) -> tuple:
    """``(label, [workdir, ...], score)`` of ``label=<workdir>[,<workdir>...][:<score>]``."""
    # the last "=" ends the label, so a label may quote a flag (--lr_schedule=complexity_aware)
    label, sep, rest = spec.rpartition("=")
    if not sep or not rest:
        raise SystemExit(f"--row={spec!r}: expected label=<rank workdir>[,<workdir>...][:<score>]")
    path, sep, score = rest.rpartition(":")
    if not sep or "/" in score:
        path, score = rest, ""
    paths = [p for p in path.split(",") if p]
    if not paths:
        raise SystemExit(
            f"--row={spec!r}: no rank workdir; expected label=<workdir>[,<workdir>...]"
        )
    return label, paths, score or "supernet_accuracy"


def row_scores(rows: dict, archs: list, score: str) -> np.ndarray:
    """A row's scores of ``archs``: the column ``score``, or for ``+<column>[+<column>...]`` the
    rank average of the supernet accuracy and those columns (higher = better for each)."""
    supernet = np.array([rows[a]["supernet_accuracy"] for a in archs], float)
    columns = [score] if not score.startswith("+") else score[1:].split("+")
    for name in columns:
        if name not in rows[archs[0]]:
            raise SystemExit(
                f"ranking.csv has no column {name!r}"
                + (
                    " (benchmarks/prior_scores.py adds naswot or synflow)"
                    if name in ("naswot", "synflow")
                    else ""
                )
            )
    values = [np.array([rows[a][name] for a in archs], float) for name in columns]
    return rank_stats.rank_average(supernet, *values) if score.startswith("+") else values[0]


def seed_scores(runs: dict, paths: list, archs: list, score: str, label: str) -> list:
    """The row's scores, one array per supernet seed; one array for ``ensemble`` (the mean
    supernet accuracy over ``paths``)."""
    if score != "ensemble":
        return [row_scores(runs[p], archs, score) for p in paths]
    if len(paths) < 2:
        raise SystemExit(
            f"--row={label}=...:ensemble averages several supernets; give 2 or more rank "
            "workdirs (comma-separated)"
        )
    return [np.mean([row_scores(runs[p], archs, "supernet_accuracy") for p in paths], axis=0)]


def rank_errors(truth, scores) -> list:
    """Per array of ``scores``: each architecture's rank by the score minus its rank by
    ``truth``, as fractions of n (above 0: ranked too high)."""
    truth_ranks = scipy_stats.rankdata(truth)
    return [(scipy_stats.rankdata(v) - truth_ranks) / len(truth) for v in scores]


def size_bias(errors, macs, seed: int) -> dict:
    """Spearman rho between ``macs`` and each of ``errors`` (:func:`rank_errors`), mean over
    them with a bootstrap interval over architectures (the errors are ranked once, on all of
    them)."""
    return rank_stats.mean_correlation("spearman_rho", macs, errors, seed=seed)


def op_counts(rows: dict, archs: list) -> dict:
    """``{op: edges holding it, per architecture}`` for the ops that occur, from the
    ``benchmark`` column's NAS-Bench-201 strings (:func:`spos_tf.spaces.nasbench201.from_string`);
    empty without that column."""
    if "benchmark" not in rows[archs[0]]:
        return {}
    cells = np.array([nasbench201.from_string(str(rows[a]["benchmark"])) for a in archs])
    counts = {nasbench201.OPS[i]: (cells == i).sum(axis=1).astype(float) for i in np.unique(cells)}
    return dict(sorted(counts.items()))


def op_bias(errors, counts: dict) -> dict:
    """``{op: Spearman rho between its edge count and the rank error}``, mean over ``errors``
    (:func:`rank_errors`)."""
    return {
        op: float(np.mean([scipy_stats.spearmanr(c, e)[0] for e in errors]))
        for op, c in counts.items()
    }


def table(args) -> dict:
    specs = [parse_row(s) for s in args.row]
    paths = sorted({p for _, row_paths, _ in specs for p in row_paths})
    runs = {path: read_rows(path) for path in paths}
    archs = sorted(set.intersection(*(set(r) for r in runs.values())))
    if args.archs_file:
        listed = {text for _, text in archs_file.arch_lines(args.archs_file)}
        archs = [a for a in archs if a in listed]
    if len(archs) < 3:
        raise SystemExit(f"only {len(archs)} architectures are in every row; need at least 3")
    first = runs[specs[0][1][0]]
    column = truth_column(first[archs[0]])
    truth = np.array([first[a][column] for a in archs], float)
    macs = np.array([first[a]["macs"] for a in archs], float)
    upper = truth >= np.median(truth)  # the better half by the ground truth
    train = dict(t.split("=", 1) for t in args.train)
    counts = op_counts(first, archs)
    k = min(args.k, len(archs))
    base_scores = seed_scores(runs, specs[0][1], archs, specs[0][2], specs[0][0])
    seed_columns = sorted(c for c in first[archs[0]] if c.startswith("standalone_seed_"))
    ceiling = None
    if column == "standalone_mean" and len(seed_columns) >= 2:
        ceiling = rank_stats.seed_vs_seed(
            [[first[a][c] for c in seed_columns] for a in archs], seed=args.seed
        )
    out = {
        "num_archs": len(archs),
        "ground_truth_column": column,
        "k": k,
        "top_k_chance": k / len(archs),
        "better_half": int(upper.sum()),
        "macs": {
            name: rank_stats.correlation(name, truth, macs, seed=args.seed)
            for name in ("kendall_tau", "spearman_rho")
        },
        "macs_better_half": rank_stats.correlation(
            "kendall_tau", truth[upper], macs[upper], seed=args.seed
        ),
        "seed_vs_seed_tau": ceiling,
        "rows": [],
    }
    for label, row_paths, score in specs:
        # a prior alone (a cost column, SynFlow) uses no supernet scoring; per supernet
        seconds = None if score in PRIORS else [scoring_seconds(p, set(archs)) for p in row_paths]
        scores = seed_scores(runs, row_paths, archs, score, label)
        if score == "ensemble" and seconds is not None and None not in seconds:
            seconds = [sum(seconds)]  # one ranking scored by every member
        tau = rank_stats.mean_correlation("kendall_tau", truth, scores, seed=args.seed)
        errors = rank_errors(truth, scores)
        tops = [int(np.argsort(-v, kind="stable")[0]) for v in scores]
        out["rows"].append(
            {
                "label": label,
                "workdir": ",".join(os.path.basename(os.path.normpath(p)) for p in row_paths),
                "seeds": len(row_paths),
                "score": score,
                "kendall_tau": tau,
                "spearman_rho": rank_stats.mean_correlation(
                    "spearman_rho", truth, scores, seed=args.seed
                ),
                "top1_ground_truth": float(np.mean([truth[t] for t in tops])),
                "top1_percentile_compared": float(
                    np.mean([np.mean(truth <= truth[t]) for t in tops])
                ),
                "top_k_overlap": float(
                    np.mean([rank_stats.top_k_overlap(truth, v, k) for v in scores])
                ),
                "delta_tau_vs_baseline": rank_stats.mean_correlation(
                    "kendall_tau", truth, scores, base_scores, seed=args.seed
                ),
                "delta_tau_vs_macs": rank_stats.mean_correlation(
                    "kendall_tau", truth, scores, [macs], seed=args.seed
                ),
                "kendall_tau_better_half": rank_stats.mean_correlation(
                    "kendall_tau", truth[upper], [v[upper] for v in scores], seed=args.seed
                ),
                "delta_tau_better_half_vs_baseline": rank_stats.mean_correlation(
                    "kendall_tau",
                    truth[upper],
                    [v[upper] for v in scores],
                    [v[upper] for v in base_scores],
                    seed=args.seed,
                ),
                "size_bias": size_bias(errors, macs, args.seed),
                "op_bias": op_bias(errors, counts),
                "tau_over_ceiling": None if ceiling is None else tau["value"] / ceiling["value"],
                "train_seconds": float(train[label]) if label in train else None,
                "scoring_seconds": None
                if seconds is None or None in seconds
                else float(np.mean(seconds)),
            }
        )
    return out


def _ci(stat: dict) -> str:
    return f"{stat['value']:.3f} [{stat['ci_low']:.3f}, {stat['ci_high']:.3f}]"


def _ceiling_text(ceiling) -> str:
    if ceiling is None:
        return ""
    return (
        f" Noise ceiling: seed-vs-seed tau {_ci(ceiling)} (mean over the {ceiling['pairs']} pairs "
        f"of {ceiling['seeds']} from-scratch seeds); `/ceiling` = tau / that."
        + (
            f" Two halves of the seeds, mean vs mean: tau {_ci(ceiling['split_half'])}."
            if ceiling.get("split_half")
            else ""
        )
    )


def _better_half_text(result: dict) -> str:
    if "better_half" not in result:
        return ""
    return (
        f" Better half: the {result['better_half']} architectures whose ground truth is at or above "
        "the median (where a search picks), ranked alone; MACs there: tau "
        f"{_ci(result['macs_better_half'])}."
    )


def markdown(result: dict) -> str:
    n, k = result["num_archs"], result["k"]
    half = "better_half" in result  # tables written before the column have none
    lines = [
        f"{n} architectures in every row; ground truth `{result['ground_truth_column']}`; "
        f"ranking by MACs alone: tau {_ci(result['macs']['kendall_tau'])}, rho "
        f"{result['macs']['spearman_rho']['value']:.3f}. Intervals: bootstrap 95%, paired "
        f"for the deltas. Top-{k} overlap chance level {result['top_k_chance']:.2f}. A row of "
        "several supernet seeds gives means over them (tau, rho, deltas, top-1, top-k, scoring s); "
        "an `ensemble` row ranks by their mean supernet accuracy. Size bias: Spearman rho between "
        "MACs and the rank error (rank by the score minus rank by the truth); below 0, large "
        "architectures are ranked too low."
        + _better_half_text(result)
        + _ceiling_text(result.get("seed_vs_seed_tau")),
        "",
        "| row | supernet seeds | score | Kendall tau [95% CI] | Spearman rho | top-1 ground truth (percentile "
        f"of the {n}) | top-{k} overlap | delta tau vs baseline | delta tau vs MACs | "
        + ("tau, better half | delta vs baseline, better half | " if half else "")
        + "size bias | "
        + ("/ceiling | " if result.get("seed_vs_seed_tau") else "")
        + "training s | scoring s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
        + ("---|---|" if half else "")
        + ("---|" if result.get("seed_vs_seed_tau") else ""),
    ]
    for row in result["rows"]:
        train = "" if row["train_seconds"] is None else f"{row['train_seconds']:.0f}"
        lines.append(
            f"| {row['label']} | {row.get('seeds', 1)} | {row['score']} | {_ci(row['kendall_tau'])} | "
            f"{row['spearman_rho']['value']:.3f} | {row['top1_ground_truth']:.2f} "
            f"({100 * row['top1_percentile_compared']:.1f}) | {row['top_k_overlap']:.2f} | "
            f"{_ci(row['delta_tau_vs_baseline'])} | {_ci(row['delta_tau_vs_macs'])} | "
            + (
                f"{_ci(row['kendall_tau_better_half'])} | "
                f"{_ci(row['delta_tau_better_half_vs_baseline'])} | "
                if half
                else ""
            )
            + ("" if row.get("size_bias") is None else _ci(row["size_bias"]))
            + " | "
            + ("" if row.get("tau_over_ceiling") is None else f"{row['tau_over_ceiling']:.2f} | ")
            + f"{train} | "
            + ("" if row["scoring_seconds"] is None else f"{row['scoring_seconds']:.0f}")
            + " |"
        )
    biased = [row for row in result["rows"] if row.get("op_bias")]
    if biased:
        lines += [
            "",
            "Op bias (Spearman rho of the rank error with the op's edge count; mean over seeds):",
        ]
        lines += [
            f"- {row['label']}: "
            + ", ".join(f"{op} {rho:+.2f}" for op, rho in row["op_bias"].items())
            for row in biased
        ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--row", action="append", required=True, help="label=<workdir>[:<score>]")
    parser.add_argument("--train", action="append", default=[], help="label=<seconds>")
    parser.add_argument("--out", required=True)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--archs_file",
        help="compare only the architectures listed (text form, one per line, e.g. a shrunk space)",
    )
    args = parser.parse_args(argv)
    result = table(args)
    os.makedirs(args.out, exist_ok=True)
    run_dir.atomic_write_text(
        os.path.join(args.out, "ablation.json"), json.dumps(result, indent=2) + "\n"
    )
    text = markdown(result)
    run_dir.atomic_write_text(os.path.join(args.out, "ablation.md"), text)
    print(text)
    return result


if __name__ == "__main__":
    main()
