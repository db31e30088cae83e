"""A search's pick re-made after scoring its finalists again: does a better estimate of the
supernet accuracy of the top candidates pick a better cell (NAS-Bench-201, issue 20)?

Usage:
    python benchmarks/rescore_pick.py --search=<runs>/s1_steer --top=10 \
        [--rescored=<runs>/s1_steer_h25k[,<runs>/other_rank,...]] \
        --ground_truth=<nb201>/nats_tss_test_accuracy.csv [--score=supernet+synflow] \
        [--out=<file.json>] [--plot=<file.png>]

``--search`` is a ``spos_tf.search --seeds=...`` workdir (``seed_<s>/history.csv``), or several
(comma-separated, without ``--rescored``) whose seeds are pooled as ``<folder>:<seed>``. Per seed
(and algorithm), its finalists are the ``--top`` candidates it ranks first by its own ``--score``
over everything it evaluated (``spos_tf.search.results.best_index``'s order; the first of them is
the search's own pick). Each ``--rescored`` is a ``spos_tf.rank --select=file`` workdir that
scored those finalists again (another scoring set, another supernet or checkpoint; ``{seed}`` in
it is replaced by the search seed, for a rescoring of each seed's own, e.g. a supernet fine-tuned
on that seed's finalists with ``spos_tf.train --sample_from``): a finalist's
rescored accuracy is the mean of its ``supernet_accuracy`` over the ``--rescored`` rankings
(matched by the table's UniqueString; every finalist must be in every ranking). Without
``--rescored`` each finalist keeps the search's own accuracy, for the re-picks that need no
rescoring (``combined`` then ranks it within the finalists, not over all candidates as the search
did, so it may differ from the search's pick). Up to four re-picks are judged, each among the
finalists only:

- ``combined``: the first of the highest mean of the finalists' ranks by rescored accuracy and by
  the search's prior (``--score``'s history column, e.g. ``synflow``): the search's own rule with
  the accuracy re-estimated (``supernet`` alone when ``--score=supernet``);
- ``alone``: the first of the highest rescored accuracy;
- ``prior``: the first of the highest prior (SynFlow or MACs; the rescoring plays no part, and
  there is no such re-pick under ``--score=supernet``);
- ``macs``: the first of the highest MACs (the rescoring plays no part; none under
  ``--score=supernet+macs``, where it is ``prior``).

Printed and written (``--out``, JSON): per seed its finalists (in order; the ``--archs_file`` to
rescore them with), the search's pick, each re-pick and the best finalist (what a perfect
re-pick among the finalists would reach), each with its table accuracy; per re-pick the paired
difference to the search's pick (mean, t 95% interval over the seeds, how many positive:
``search_ground_truth.paired``); and how well the search's accuracy, the rescored
accuracy, the prior and MACs (the free baseline) order the distinct finalists of all seeds
pooled (Kendall tau against the table with its bootstrap 95% interval: the ranking where the
pick is made), with every distinct finalist's table accuracy and scores (``cells``); ``--plot``
draws them, one panel per score.
Costs: parsing the table and the rankings (well under a second); the rescoring itself is the
``spos_tf.rank`` runs (measured on 2 CPU cores, start-up included: about 8 s per finalist per
supernet on 5,000 held-out images, 21 s on 25,000).
"""

import argparse
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import search_ground_truth as sg  # noqa: E402
from spos_tf import spaces  # noqa: E402
from spos_tf.rank import ground_truth  # noqa: E402
from spos_tf.rank import stats as rank_stats  # noqa: E402
from spos_tf.search.config import SEARCH_PRIORS, SEARCH_SCORES  # noqa: E402
from spos_tf.search.results import best_index, pick_values  # noqa: E402

RULES = ("combined", "alone", "prior", "macs")


def finalists(rows: list, score: str, top: int) -> list:
    """The ``top`` rows ``best_index`` would pick first, in that order: by the search's score
    over all ``rows`` (:func:`spos_tf.search.results.pick_values`: accuracy, or the mean rank
    of accuracy and the prior column), ties to the first evaluated."""
    column = prior_column(score)
    prior = [float(r[column]) for r in rows] if column else None
    values = pick_values([float(r["accuracy"]) for r in rows], prior, score)
    order = np.argsort(-values, kind="stable")
    return [rows[i] for i in order[:top]]


def prior_column(score: str):
    """The one prior column of ``score`` (None for ``supernet``); a score of several priors is
    refused: the ``prior`` rule re-picks by a single column."""
    columns = SEARCH_PRIORS.get(score, ())
    if len(columns) > 1:
        raise SystemExit(f"--score={score} combines several priors; this tool takes one or none")
    return columns[0] if columns else None


def rescored_accuracies(dirs: list, table, space) -> dict:
    """``{UniqueString: mean supernet accuracy over the rankings}`` of cells every ranking holds."""
    per_dir = []
    for d in dirs:
        path = os.path.join(d, "ranking.csv")
        if not os.path.exists(path):
            raise SystemExit(f"no ranking.csv in {d}: run spos_tf.rank --select=file into it first")
        with open(path) as f:
            per_dir.append(
                {
                    table.key(space.parse(r["arch"]).genes[0]): float(r["supernet_accuracy"])
                    for r in csv.DictReader(f)
                }
            )
    keys = set(per_dir[0]).intersection(*per_dir[1:])
    return {k: float(np.mean([d[k] for d in per_dir])) for k in keys}


def repick(searches: list, rescored: list, table, score: str, top: int) -> dict:
    """The re-picks of the finalists of ``searches`` (workdirs; the JSON written by ``--out``).
    Several searches are pooled, each seed labelled ``<search folder name>:<seed>``; they take
    no ``rescored``. ``rescored`` empty: each finalist keeps the search's own accuracy
    (``combined`` then re-ranks it within the finalists, which need not give the search's pick:
    its ranks were taken over all candidates)."""
    if len(searches) > 1 and rescored:
        raise SystemExit(
            "--rescored takes one --search: rescore each search on its own, or pool several "
            "searches without --rescored"
        )
    space = spaces.get("nasbench201")
    per_seed = any("{seed}" in d for d in rescored)
    shared = rescored_accuracies(rescored, table, space) if rescored and not per_seed else None
    column = prior_column(score)
    rules = ("search",) + tuple(
        r for r in RULES if (r != "prior" or column) and (r != "macs" or column != "macs")
    )
    result = {"score": score, "top": top, "rescored": rescored, "seeds": []}
    summaries = {rule: {"picks": []} for rule in rules}
    pooled = {}  # UniqueString -> (table, search, rescored accuracy, prior, MACs): distinct finalists
    runs = [
        (seed if len(searches) == 1 else f"{os.path.basename(os.path.normpath(d))}:{seed}", rows)
        for d in searches
        for seed, rows in sg.histories(d).items()
    ]
    for seed, rows in runs:
        for algorithm in dict.fromkeys(r["algorithm"] for r in rows):
            final = finalists([r for r in rows if r["algorithm"] == algorithm], score, top)
            keys = [table.key(space.parse(r["arch"]).genes[0]) for r in final]
            if rescored:
                accuracy = (
                    shared
                    if shared is not None
                    else rescored_accuracies([d.format(seed=seed) for d in rescored], table, space)
                )
                missing = [r["arch"] for r, k in zip(final, keys) if k not in accuracy]
                if missing:
                    raise SystemExit(
                        f"seed {seed}: finalists {missing} are not in every --rescored ranking: "
                        "rank them there (spos_tf.rank --select=file --archs_file=<finalists>)"
                    )
                again = [accuracy[k] for k in keys]
            else:
                again = [float(r["accuracy"]) for r in final]
            prior = [float(r[column]) for r in final] if column else None
            chosen = {
                "search": 0,
                "combined": best_index(again, prior, score),
                "alone": best_index(again, None, "supernet"),
            }
            macs = [float(r["macs"]) for r in final]
            if "prior" in rules:
                chosen["prior"] = best_index(prior, None, "supernet")
            if "macs" in rules:
                chosen["macs"] = best_index(macs, None, "supernet")
            truth = [table.accuracy(space.parse(r["arch"]).genes[0]) for r in final]
            for j, key in enumerate(keys):
                pooled.setdefault(
                    key,
                    (
                        truth[j],
                        float(final[j]["accuracy"]),
                        again[j],
                        prior[j] if prior else None,
                        macs[j],
                    ),
                )
            entry = {
                "seed": seed,
                "algorithm": algorithm,
                "finalists": [r["arch"] for r in final],
                "best_finalist": max(truth),
            }
            for rule, i in chosen.items():
                entry[rule] = {
                    "arch": final[i]["arch"],
                    "supernet_accuracy_search": float(final[i]["accuracy"]),
                    "supernet_accuracy_rescored": again[i],
                    "ground_truth": truth[i],
                    "percentile": table.percentile(truth[i]),
                }
                summaries[rule]["picks"].append(
                    {"seed": seed, "algorithm": algorithm, "ground_truth": truth[i]}
                )
            result["seeds"].append(entry)
    for rule in rules:
        values = [p["ground_truth"] for p in summaries[rule]["picks"]]
        result[rule] = {
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        }
    for rule in rules[1:]:
        result[rule]["paired_vs_search"] = sg.paired(summaries[rule], summaries["search"])
    result["finalists"] = finalist_ranking(pooled, column)
    result["best_finalist_mean"] = float(np.mean([e["best_finalist"] for e in result["seeds"]]))
    return result


def finalist_ranking(pooled: dict, column) -> dict:
    """How well each score orders the distinct finalists of all seeds pooled: Kendall tau (with
    its bootstrap 95% interval, :func:`spos_tf.rank.stats.correlation`) against the table of the
    search's accuracy, the rescored accuracy, the prior and MACs (the free baseline, given
    whatever the prior; a cell among several seeds' finalists counts once, with its first seed's
    rescored accuracy)."""
    values = np.array(list(pooled.values()), dtype=float)
    out = {"count": len(pooled)}
    scores = _scores(column)
    for name, j in scores.items():
        out[name] = rank_stats.correlation("kendall_tau", values[:, 0], values[:, j])
    out["cells"] = [
        {"ground_truth": v[0], **{name: v[j] for name, j in scores.items()}}
        for v in pooled.values()
    ]
    return out


def _scores(column) -> dict:
    """The scores of a finalist, by name, and their place in its ``pooled`` tuple."""
    return {
        "search_accuracy": 1,
        "rescored_accuracy": 2,
        **({column: 3} if column else {}),
        "macs": 4,
    }


def write_plot(path: str, ranking: dict, title: str) -> None:
    """One panel per score of :func:`finalist_ranking`: the distinct finalists' table accuracy
    against that score (a log axis where it spans over 100x), its Kendall tau [95% CI] in the
    panel's title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = ranking["cells"]
    names = [k for k in cells[0] if k != "ground_truth"]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), dpi=100, sharey=True)
    for ax, name in zip(axes, names):
        tau = ranking[name]
        x = np.array([c[name] for c in cells])
        ax.scatter(x, [c["ground_truth"] for c in cells], s=14)
        wide = x.min() > 0 and x.max() / x.min() > 100  # SynFlow spans orders of magnitude
        if wide:
            ax.set_xscale("log")
        ax.set_xlabel(name.replace("_", " ") + (" (log scale)" if wide else ""))
        ax.set_title(
            f"tau {tau['value']:.2f} [{tau['ci_low']:.2f}, {tau['ci_high']:.2f}]", fontsize=9
        )
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("table accuracy (%)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--search", required=True, help="spos_tf.search workdir; comma-separated: pooled"
    )
    parser.add_argument(
        "--rescored",
        default="",
        help="comma-separated spos_tf.rank workdirs; none: the search's own accuracies",
    )
    parser.add_argument("--ground_truth", required=True)
    parser.add_argument("--score", default="supernet+synflow", choices=SEARCH_SCORES)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--out")
    parser.add_argument("--plot", help="PNG: the finalists' table accuracy against each score")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top={args.top}: give 1 or more finalists")
    for name, path in (("--out", args.out), ("--plot", args.plot)):
        if path and os.path.exists(path):
            raise SystemExit(f"{path} exists: remove it or give another {name}")
    table = ground_truth.load(args.ground_truth)
    rescored = [d for d in args.rescored.split(",") if d]
    result = repick(args.search.split(","), rescored, table, args.score, args.top)
    rules = [r for r in ("search",) + RULES if r in result]
    for e in result["seeds"]:
        print(
            f"seed {e['seed']} {e['algorithm']}: "
            + ", ".join(f"{r} {e[r]['ground_truth']:.2f} ({e[r]['arch']})" for r in rules)
            + f", best finalist {e['best_finalist']:.2f}"
        )
    for rule in rules:
        line = f"{rule:8s} mean {result[rule]['mean']:.2f}"
        if rule != "search":
            p = result[rule]["paired_vs_search"]
            t95 = p["t95"]
            line += (
                f"  paired {p['mean']:+.2f}"
                + (f" [{t95[0]:+.2f}, {t95[1]:+.2f}]" if t95 else "")
                + f" ({p['positive']}/{len(p['pairs'])} positive)"
            )
        print(line)
    print(f"best finalist mean {result['best_finalist_mean']:.2f}")
    f = result["finalists"]
    print(
        f"Kendall tau among the {f['count']} distinct finalists: "
        + ", ".join(
            f"{k} {v['value']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
            for k, v in f.items()
            if k not in ("count", "cells")
        )
    )
    if args.plot:
        write_plot(
            args.plot,
            f,
            f"{f['count']} distinct finalists (top {args.top} per seed) of "
            + ", ".join(os.path.basename(os.path.normpath(d)) for d in args.search.split(",")),
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
