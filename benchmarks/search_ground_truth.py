"""What a NAS-Bench-201 search found, judged by the benchmark's table: the ground truth of each
seed's and algorithm's pick.

Usage:
    python benchmarks/search_ground_truth.py --search=<runs>/nb201_search \
        --ground_truth=<nb201>/nats_tss_test_accuracy.csv [--max_macs=44669824] [--out=<file>]

``--search`` is a ``spos_tf.search --seeds=...`` workdir (``seed_<s>/history.csv``) or a single
search's workdir (``history.csv``). For every seed and algorithm in the history the pick is the
row of highest held-out supernet accuracy (ties: the first evaluated), as ``best.json`` picks;
with ``--score=supernet+macs`` (or ``supernet+synflow``, ``supernet+naswot``,
``supernet+synflow+naswot``) the row of the best mean rank by accuracy and by MACs (or by the
history's ``synflow`` / ``naswot`` columns, which a search run with that score writes) among the
candidates that search evaluated (a combination with priors, reported as such).
Printed and written (``--out``, JSON): per pick its arch, benchmark string, MACs, supernet
accuracy (held-out split), the table's accuracy and its percentile among the table's distinct
cells; per algorithm the mean and std (ddof 1) over seeds; and for reference the table's best
cell and its largest cell (the most MACs; ties: the best of them) within ``--max_macs``, and per
pick the best table accuracy among the candidates that search evaluated (``best_evaluated``: what
a perfect re-pick would reach; the gap to it is the ranking's, the gap above it the exploration's)
and that candidate's place in the pick order (``best_evaluated_place``, 1 = picked) and by supernet
accuracy alone (``best_evaluated_place_supernet``).
With ``--top=K`` (default 20) also where the supernet's favourites lie: per edge and op, the
share of the evaluated candidates (every seed pooled) holding it, its share among each seed's top K
by supernet accuracy, and the mean table accuracy of the evaluated candidates holding it; printed
for the ops at least 0.2 more frequent on top than among the evaluated (what evolution converged
on), with the mean table accuracy of the top K.
With ``--paired_with=<another search workdir>`` (searched with the same seeds, e.g. the same
flags without ``--steer_by_score``) also the paired difference of the picks: per seed and
algorithm present in both, this search's pick's table accuracy minus the other's (both picked
by ``--score``), their mean, the t 95% interval of the mean over those pairs
(``scipy.stats.t``; none for a single pair) and how many are positive (``paired`` in the JSON).
With ``--first=N`` every seed's and algorithm's search is judged as if it had stopped after its
first N candidates (history order, which is evaluation order): what the same search picks with a
budget of N, e.g. a search extended from 100 to 300 candidates (``max_trials`` may grow) judged at
100, 200 and 300 without rerunning it (``--paired_first=M`` does the same for ``--paired_with``;
``--paired_with`` may name the same workdir). A history shorter than N is refused.
Costs: parsing the table (about 0.1 s) and one dict look-up per row (twice with
``--paired_with``).
"""

import argparse
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

from spos_tf import costs
from spos_tf.rank import ground_truth
from spos_tf.runs import run_dir
from spos_tf.search.config import SEARCH_PRIORS, SEARCH_SCORES  # noqa: E402
from spos_tf.search.results import best_index, pick_values  # noqa: E402
from spos_tf import spaces  # noqa: E402
from spos_tf.spaces import nasbench201  # noqa: E402


def histories(search: str) -> dict:
    """``{seed or None: [rows]}`` of a search workdir."""
    out = {}
    if not os.path.isdir(search):
        raise SystemExit(f"{search} is not a directory: give a spos_tf.search --workdir")
    if os.path.exists(os.path.join(search, "history.csv")):
        paths = {None: os.path.join(search, "history.csv")}
    else:
        names = sorted(n for n in os.listdir(search) if n.startswith("seed_"))
        paths = {int(n[5:]): os.path.join(search, n, "history.csv") for n in names}
        paths = {k: p for k, p in paths.items() if os.path.exists(p)}
    if not paths:
        raise SystemExit(f"no history.csv under {search}: run spos_tf.search into it first")
    for seed, path in paths.items():
        with open(path) as f:
            out[seed] = list(csv.DictReader(f))
    return out


def picks(rows: list, score: str = "supernet") -> dict:
    """``{algorithm: row}``: per algorithm, the row that search's own pick rule
    (:func:`spos_tf.search.results.best_index`, as ``--score`` picks ``best.json``) chooses among
    that algorithm's rows: the first of the highest accuracy (``supernet``), or of the highest
    mean of its ranks by accuracy and by MACs or SynFlow (``supernet+macs``,
    ``supernet+synflow``, the latter from the history's ``synflow`` column: a re-pick among the
    candidates the search evaluated, not a search steered by the combination)."""
    best = {}
    columns = SEARCH_PRIORS.get(score, ())
    for column in columns:
        if rows and rows[0].get(column) in (None, ""):
            raise SystemExit(
                f"--score={score}: the history has no {column} column; rerun the finished search "
                f"with python -m spos_tf.search <its flags> --score={score} (it computes {column} "
                "for the stored candidates and evaluates none again)"
            )
    for algorithm in dict.fromkeys(r["algorithm"] for r in rows):
        mine = [r for r in rows if r["algorithm"] == algorithm]
        accuracies = [float(r["accuracy"]) for r in mine]
        prior = [[float(r[c]) for r in mine] for c in columns] if columns else None
        best[algorithm] = mine[best_index(accuracies, prior, score)]
    return best


def favourites(space, table, runs: dict, k: int) -> dict:
    """Per edge and op of the cell: its share among the evaluated candidates of every seed, among
    each seed's top ``k`` by supernet accuracy (ties: the first evaluated), and the mean table
    accuracy of the evaluated candidates holding it."""
    evaluated, top = [], []  # top: indices into evaluated
    for rows in runs.values():
        order = sorted(range(len(rows)), key=lambda i: -float(rows[i]["accuracy"]))  # stable
        top += [len(evaluated) + i for i in order[:k]]
        evaluated += [space.parse(r["arch"]).genes[0] for r in rows]
    truth = np.array([table.accuracy(c) for c in evaluated])
    edges = []
    for e, (j, i) in enumerate(nasbench201.EDGES):
        for o, op in enumerate(nasbench201.OPS):
            holds = np.array([c[e] == o for c in evaluated])
            edges.append(
                {
                    "edge": f"{i}->{j}",
                    "op": op,
                    "share_evaluated": float(holds.mean()),
                    "share_top": float(holds[top].mean()),
                    "ground_truth_mean": float(truth[holds].mean()) if holds.any() else None,
                }
            )
    return {
        "k": k,
        "evaluated": len(evaluated),
        "ground_truth_mean_top": float(truth[top].mean()),
        "ground_truth_mean_evaluated": float(truth.mean()),
        "edges": edges,
    }


def first_rows(runs: dict, n: int) -> dict:
    """``runs`` with every seed's rows cut to the first ``n`` of each algorithm (history order).

    Raises:
      SystemExit: an algorithm of a seed has fewer than ``n`` rows (naming it and the fix).
    """
    out = {}
    for seed, rows in runs.items():
        kept, count = [], {}
        for r in rows:
            count[r["algorithm"]] = count.get(r["algorithm"], 0) + 1
            if count[r["algorithm"]] <= n:
                kept.append(r)
        short = {a: c for a, c in count.items() if c < n}
        if short:
            raise SystemExit(
                f"--first={n}: seed {seed} has only "
                + ", ".join(f"{c} {a} candidates" for a, c in short.items())
                + f"; extend that search with --max_trials={n} (it resumes) or give a smaller --first"
            )
        out[seed] = kept
    return out


def best_evaluated(space, table, rows: list, algorithm: str, score: str) -> dict:
    """What a perfect re-pick among one search's candidates would get (``best_evaluated``: the
    best table accuracy among them; ties: the first evaluated) and where that candidate stood:
    its place in the order the search picks by (``best_evaluated_place``, 1 = picked; the
    search's rule by ``score``, ties to the first evaluated) and by supernet accuracy alone
    (``best_evaluated_place_supernet``), among ``len(mine)`` candidates."""
    mine = [r for r in rows if r["algorithm"] == algorithm]
    truth = [table.accuracy(space.parse(r["arch"]).genes[0]) for r in mine]
    best = int(np.argmax(truth))
    places = {}
    for name, rule in (
        ("best_evaluated_place", score),
        ("best_evaluated_place_supernet", "supernet"),
    ):
        prior = [[float(r[c]) for r in mine] for c in SEARCH_PRIORS.get(rule, ())]
        values = pick_values([float(r["accuracy"]) for r in mine], prior or None, rule)
        order = sorted(range(len(mine)), key=lambda i: -values[i])  # stable: first evaluated first
        places[name] = order.index(best) + 1
    return {"best_evaluated": truth[best], **places}


def judge(runs: dict, table, score: str = "supernet", top: int = 20) -> dict:
    """``{"picks", "algorithms", "favourites"}`` of loaded histories (``{seed: rows}``, see
    :func:`histories`): per seed and algorithm the pick by ``score`` and its table accuracy, per
    algorithm the mean over seeds, and the favourites of each seed's top ``top``."""
    space = spaces.get("nasbench201")  # the benchmark's network (C=16, N=5): its MACs
    result = {"picks": [], "algorithms": {}, "favourites": favourites(space, table, runs, top)}
    for seed, rows in runs.items():
        for algorithm, row in picks(rows, score).items():
            arch = space.parse(row["arch"])
            accuracy = table.accuracy(arch.genes[0])
            result["picks"].append(
                {
                    "seed": seed,
                    "algorithm": algorithm,
                    "evaluated": sum(r["algorithm"] == algorithm for r in rows),
                    "arch": row["arch"],
                    "benchmark": space.benchmark_string(arch),
                    "macs_searched_space": float(row["macs"]),
                    "macs_benchmark_network": float(costs.macs(space, arch)),
                    "supernet_accuracy_holdout": float(row["accuracy"]),
                    "ground_truth": accuracy,
                    "percentile": table.percentile(accuracy),
                    **best_evaluated(space, table, rows, algorithm, score),
                }
            )
    for algorithm in sorted({p["algorithm"] for p in result["picks"]}):
        values = [p["ground_truth"] for p in result["picks"] if p["algorithm"] == algorithm]
        reach = [p["best_evaluated"] for p in result["picks"] if p["algorithm"] == algorithm]
        result["algorithms"][algorithm] = {
            "seeds": len(values),
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "best_evaluated_mean": float(np.mean(reach)),
        }
    return result


def table_reference(table, max_macs=None) -> dict:
    """The table's best cell and its largest cell (the most MACs of the C=16/N=5 network; ties:
    the best of them) within ``max_macs``. Cost: the MACs of every distinct cell (a fraction of a
    second), so a caller judging one search at many budgets computes it once."""
    space = spaces.get("nasbench201")
    cells = table.distinct()
    macs = {c.key: costs.macs(space, space.parse(",".join(map(str, c.ops)))) for c in cells}
    allowed = [c for c in cells if max_macs is None or macs[c.key] <= max_macs]
    best = max(allowed, key=lambda c: c.accuracy)
    most = max(allowed, key=lambda c: (macs[c.key], c.accuracy))
    return {
        "table_best": {"benchmark": best.string, "ground_truth": best.accuracy},
        "table_largest": {"benchmark": most.string, "ground_truth": most.accuracy},
        "max_macs_benchmark_network": max_macs,
    }


def summarize(
    search: str,
    table,
    max_macs=None,
    score: str = "supernet",
    top: int = 20,
    first: int | None = None,
) -> dict:
    """:func:`judge` of a search workdir's histories (cut to the first ``first`` candidates per
    seed and algorithm, see :func:`first_rows`) with the :func:`table_reference` within
    ``max_macs``."""
    runs = histories(search)
    if first is not None:
        runs = first_rows(runs, first)
    judged = judge(runs, table, score, top)
    return {"score": score, "first": first, **judged, **table_reference(table, max_macs)}


def paired(mine: dict, other: dict) -> dict:
    """The paired difference of two :func:`summarize` results' picks, matched by (seed,
    algorithm): ``{"pairs": [{seed, algorithm, ground_truth, other, delta}], "mean", "std",
    "t95": [low, high] or None, "positive"}`` (delta = this pick's table accuracy minus the
    other's; std with ddof 1; the t interval of the mean, which needs 2 or more pairs).

    Raises:
      SystemExit: no (seed, algorithm) is in both (naming those of each).
    """
    theirs = {(p["seed"], p["algorithm"]): p["ground_truth"] for p in other["picks"]}
    pairs = []
    for p in mine["picks"]:
        their = theirs.get((p["seed"], p["algorithm"]))
        if their is not None:
            pairs.append(
                {
                    "seed": p["seed"],
                    "algorithm": p["algorithm"],
                    "ground_truth": p["ground_truth"],
                    "other": their,
                    "delta": p["ground_truth"] - their,
                }
            )
    if not pairs:
        raise SystemExit(
            "--paired_with: no seed and algorithm is in both searches (this one: "
            f"{sorted((str(p['seed']), p['algorithm']) for p in mine['picks'])}, the other: "
            f"{sorted((str(s), a) for s, a in theirs)}); pair searches run with the same --seeds"
        )
    deltas = np.array([p["delta"] for p in pairs])
    n = len(deltas)
    std = float(np.std(deltas, ddof=1)) if n > 1 else None
    t95 = None
    if n > 1 and std > 0:
        low, high = scipy_stats.t.interval(0.95, n - 1, loc=deltas.mean(), scale=std / np.sqrt(n))
        t95 = [float(low), float(high)]
    elif n > 1:  # every pair differs by the same amount: the interval is that point
        t95 = [float(deltas.mean())] * 2
    return {
        "pairs": pairs,
        "mean": float(deltas.mean()),
        "std": std,
        "t95": t95,
        "positive": int((deltas > 0).sum()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--search", required=True)
    parser.add_argument("--ground_truth", required=True, help="<csv>[:column]")
    parser.add_argument(
        "--max_macs",
        type=float,
        default=None,
        help="MACs limit of the benchmark's C=16/N=5 network",
    )
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--score",
        choices=SEARCH_SCORES,
        default="supernet",
        help="how the pick is chosen among each search's evaluated candidates",
    )
    parser.add_argument(
        "--top", type=int, default=20, help="top K per seed for the favourites (see above)"
    )
    parser.add_argument(
        "--paired_with",
        default=None,
        help="another search workdir (same seeds): the paired difference of the picks",
    )
    parser.add_argument(
        "--paired_score",
        choices=SEARCH_SCORES,
        default=None,
        help="how the --paired_with search's picks are chosen (default: --score), e.g. "
        "supernet+synflow against a supernet+synflow+naswot search",
    )
    parser.add_argument(
        "--first",
        type=int,
        default=None,
        help="judge each search as stopped after its first N candidates (see above)",
    )
    parser.add_argument(
        "--paired_first",
        type=int,
        default=None,
        help="the same for the --paired_with search (e.g. the same workdir at a smaller budget)",
    )
    args = parser.parse_args(argv)
    if args.top < 1:
        raise SystemExit(f"--top={args.top}: give a positive number of candidates per seed")
    for name in ("first", "paired_first"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise SystemExit(
                f"--{name}={getattr(args, name)}: give a positive number of candidates"
            )
    if args.paired_first is not None and not args.paired_with:
        raise SystemExit("--paired_first needs --paired_with=<search workdir> (it may be --search)")
    table = ground_truth.load(args.ground_truth)
    result = summarize(args.search, table, args.max_macs, args.score, args.top, args.first)
    if args.paired_with:
        other_score = args.paired_score or args.score
        other = summarize(
            args.paired_with, table, args.max_macs, other_score, args.top, args.paired_first
        )
        result["paired"] = dict(
            paired(result, other),
            other=args.paired_with,
            other_score=other_score,
            other_first=args.paired_first,
        )
    for p in result["picks"]:
        print(
            f"seed {p['seed']} {p['algorithm']:>9}: {p['arch']} supernet {p['supernet_accuracy_holdout']:.4f} "
            f"-> ground truth {p['ground_truth']:.2f} (percentile {100 * p['percentile']:.1f}), "
            f"{p['macs_benchmark_network'] / 1e6:.1f}M MACs at N=5; best evaluated "
            f"{p['best_evaluated']:.2f} (placed {p['best_evaluated_place']} by the pick rule, "
            f"{p['best_evaluated_place_supernet']} by supernet accuracy, of {p['evaluated']})"
        )
    for algorithm, s in result["algorithms"].items():
        std = "" if s["std"] is None else f" +- {s['std']:.2f}"
        print(
            f"{algorithm}: mean ground truth {s['mean']:.2f}{std} over {s['seeds']} seeds "
            f"(best evaluated: {s['best_evaluated_mean']:.2f} on average)"
        )
    print(
        f"table best {result['table_best']['ground_truth']:.2f}; largest cell "
        f"{result['table_largest']['ground_truth']:.2f}"
    )
    fav = result["favourites"]
    print(
        f"top {fav['k']} per seed: mean ground truth {fav['ground_truth_mean_top']:.2f} "
        f"(all {fav['evaluated']} evaluated: {fav['ground_truth_mean_evaluated']:.2f})"
    )
    for e in fav["edges"]:
        if e["share_top"] - e["share_evaluated"] >= 0.2:
            print(
                f"  edge {e['edge']} {e['op']}: {100 * e['share_top']:.0f}% of the top, "
                f"{100 * e['share_evaluated']:.0f}% of the evaluated, whose mean ground truth is "
                f"{e['ground_truth_mean']:.2f}"
            )
    if args.paired_with:
        d = result["paired"]
        each = ", ".join(f"{p['delta']:+.2f}" for p in d["pairs"])
        interval = "" if d["t95"] is None else f", t 95% [{d['t95'][0]:+.2f}, {d['t95'][1]:+.2f}]"
        print(
            f"paired with {args.paired_with}: {each}; mean {d['mean']:+.2f}{interval}; "
            f"{d['positive']} of {len(d['pairs'])} positive"
        )
    if args.out:
        run_dir.atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
