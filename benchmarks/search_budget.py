"""What a larger search budget buys on NAS-Bench-201: one search judged by the benchmark's table
after its first N candidates, for a series of N.

Usage:
    python benchmarks/search_budget.py --search=<runs>/nb201_search \
        --ground_truth=<nb201>/nats_tss_test_accuracy.csv [--score=supernet+synflow] \
        [--max_macs=100000000] [--every=20] [--out=<file>.json] [--plot=<file>.png]

``--search`` is a ``spos_tf.search --seeds=...`` workdir, typically one extended to a larger
``--max_trials`` (the search resumes and continues exactly). For N = every, 2 x every, ... up to the
fewest candidates any seed evaluated (and that number itself), each seed's pick is the row the
search's own rule (``--score``) chooses among its first N candidates, exactly what the same
search run with ``--max_trials=N`` would have written to ``best.json``
(``search_ground_truth.py --first=N``). Reported per N and algorithm: each seed's pick's table
accuracy and best evaluated (the best table accuracy among the first N: what a perfect re-pick
would reach), their means over the seeds, and the paired difference of the picks against the
smallest N (mean and t 95% interval over the seeds). ``--plot`` draws the mean pick and the mean
best evaluated against N, each seed's pick faintly, with the table's best and largest cell.
Cost: the histories read and the table's reference cells found once, then one
:func:`search_ground_truth.judge` per N, after the imports and the table (about 5 s).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import search_ground_truth as sgt  # noqa: E402

from spos_tf.rank import ground_truth  # noqa: E402
from spos_tf.runs import run_dir  # noqa: E402
from spos_tf.search.config import SEARCH_SCORES  # noqa: E402


def budgets(runs: dict, every: int) -> list:
    """``every, 2 x every, ...`` up to the fewest candidates of any seed and algorithm of the
    loaded histories (``{seed: rows}``), that number included (so a search of 100 with every=30
    gives 30, 60, 90, 100)."""
    if every < 1:
        raise SystemExit(f"--every={every}: give a positive number of candidates")
    fewest = min(
        sum(r["algorithm"] == a for r in rows)
        for rows in runs.values()
        for a in {r["algorithm"] for r in rows}
    )
    steps = list(range(every, fewest + 1, every))
    if not steps or steps[-1] != fewest:
        steps.append(fewest)
    return steps


def curve(search: str, table, score="supernet", max_macs=None, every=20) -> dict:
    """``{"budgets": [N...], "algorithms": {algorithm: {"pick_mean", "best_evaluated_mean",
    "picks" (per N, per seed), "best_evaluated", "seeds", "paired_vs_first"}}, "table_best",
    "table_largest"}`` (see the module docstring). The histories are read and the table's
    reference cells found once; each N judges the cut histories."""
    runs = sgt.histories(search)
    ns = budgets(runs, every)
    reference = sgt.table_reference(table, max_macs)
    out = {"budgets": ns, "score": score, "algorithms": {}}
    out["table_best"], out["table_largest"] = reference["table_best"], reference["table_largest"]
    first = None
    for n in ns:
        result = sgt.judge(sgt.first_rows(runs, n), table, score, top=1)
        if first is None:
            first = result
        for algorithm in result["algorithms"]:
            a = out["algorithms"].setdefault(
                algorithm,
                {
                    "seeds": [],
                    "picks": [],
                    "best_evaluated": [],
                    "pick_mean": [],
                    "best_evaluated_mean": [],
                    "paired_vs_first": [],
                },
            )
            mine = [p for p in result["picks"] if p["algorithm"] == algorithm]
            a["seeds"] = [p["seed"] for p in mine]
            a["picks"].append([p["ground_truth"] for p in mine])
            a["best_evaluated"].append([p["best_evaluated"] for p in mine])
            a["pick_mean"].append(result["algorithms"][algorithm]["mean"])
            a["best_evaluated_mean"].append(result["algorithms"][algorithm]["best_evaluated_mean"])
            ours = {"picks": mine}
            theirs = {"picks": [p for p in first["picks"] if p["algorithm"] == algorithm]}
            d = sgt.paired(ours, theirs)
            a["paired_vs_first"].append({k: d[k] for k in ("mean", "t95", "positive")})
    return out


def plot(result: dict, path: str, title: str = "") -> None:
    """The curve as a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = result["budgets"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for algorithm, a in result["algorithms"].items():
        line = ax.plot(ns, a["pick_mean"], "o-", label=f"{algorithm}: pick, mean of seeds")[0]
        ax.plot(
            ns,
            a["best_evaluated_mean"],
            "s--",
            color=line.get_color(),
            label=f"{algorithm}: best evaluated, mean",
        )
        for s in range(len(a["seeds"])):
            ax.plot(ns, [p[s] for p in a["picks"]], "-", color=line.get_color(), alpha=0.25)
    ax.axhline(result["table_best"]["ground_truth"], color="k", lw=0.8, ls=":", label="table best")
    ax.axhline(
        result["table_largest"]["ground_truth"], color="grey", lw=0.8, ls="-.", label="largest cell"
    )
    ax.set_xlabel("candidates evaluated per search seed")
    ax.set_ylabel("CIFAR-10 test accuracy by the table (%)")
    ax.set_title(title or f"picks by {result['score']} against the budget", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--search", required=True)
    parser.add_argument("--ground_truth", required=True, help="<csv>[:column]")
    parser.add_argument("--score", choices=SEARCH_SCORES, default="supernet")
    parser.add_argument("--max_macs", type=float, default=None, help="of the C=16/N=5 network")
    parser.add_argument("--every", type=int, default=20, help="budget step (candidates)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--plot", default=None)
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    table = ground_truth.load(args.ground_truth)
    result = curve(args.search, table, args.score, args.max_macs, args.every)
    for algorithm, a in result["algorithms"].items():
        print(f"{algorithm} ({len(a['seeds'])} seeds), pick by {args.score}:")
        for i, n in enumerate(result["budgets"]):
            d = a["paired_vs_first"][i]
            t95 = "" if d["t95"] is None else f" [{d['t95'][0]:+.2f}, {d['t95'][1]:+.2f}]"
            picks = " / ".join(f"{v:.2f}" for v in a["picks"][i])
            print(
                f"  N={n:4d}: picks {picks} = {a['pick_mean'][i]:.2f}; best evaluated "
                f"{a['best_evaluated_mean'][i]:.2f}; vs N={result['budgets'][0]}: "
                f"{d['mean']:+.2f}{t95}"
            )
    if args.out:
        run_dir.atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    if args.plot:
        plot(result, args.plot, args.title)
    return result


if __name__ == "__main__":
    main()
