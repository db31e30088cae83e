"""Shrink a search space by the supernet's own op marginals (issue 20: search-space shrinking).

Usage:
    python benchmarks/shrink_space.py --ranking=<rank workdir>/ranking.csv --space=nasbench201 \
        --out=<shrunk.txt> [--drop=1] [--ground_truth=<nb201>/nats_tss_test_accuracy.csv] \
        [--json=<shrunk.json>]

The rule (no ground truth in it): for every block (a NAS-Bench-201 edge), the mean
``supernet_accuracy`` of the ranked architectures holding each op there; the ``--drop`` ops with
the lowest mean are dropped from that block (ties: the later op index). The shrunk space is the
product of the ops left per block; ``--out`` lists its architectures, one per line in text form,
for ``spos_tf.train --init_from=<supernet checkpoint> --sample_from=<out>`` (the supernet trained
on, from then on, only in the shrunk space). A ranking of uniformly drawn architectures
(``spos_tf.rank --select=random``) gives unbiased marginals.

With ``--ground_truth`` (NAS-Bench-201 only) it also reports, for judging only: the best table
accuracy inside the shrunk space against the whole space's, unconstrained and under each
``--max_macs``, and how many of the whole space's top-k cells (by the table) the shrunk space keeps.
Cost: enumerating the shrunk space and the table look-up, a few seconds.
"""

import argparse
import csv
import itertools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from spos_tf import costs, spaces  # noqa: E402
from spos_tf.rank import ground_truth  # noqa: E402


def op_marginals(rows: list, space) -> list:
    """Per block, ``{op index: (mean supernet_accuracy, count)}`` over ``rows`` (ranking.csv)."""
    blocks = len(space.parse(rows[0]["arch"]).genes[0])
    sums = [dict() for _ in range(blocks)]
    for r in rows:
        genes = space.parse(r["arch"]).genes[0]
        for b, op in enumerate(genes):
            sums[b].setdefault(op, []).append(float(r["supernet_accuracy"]))
    return [{op: (float(np.mean(v)), len(v)) for op, v in sorted(s.items())} for s in sums]


def kept_ops(marginals: list, space, drop: int) -> list:
    """Per block, the allowed ops (space order) less the ``drop`` of lowest marginal mean. An op
    no ranked architecture holds there is refused (its marginal is unknown)."""
    kept = []
    for b, m in enumerate(marginals):
        allowed = list(space.allowed_ops(b))
        missing = [op for op in allowed if op not in m]
        if missing:
            raise ValueError(
                f"block {b}: no ranked architecture holds op(s) {missing}; rank more "
                f"architectures (spos_tf.rank --num_archs) before shrinking"
            )
        if not 1 <= drop < len(allowed):
            raise ValueError(
                f"--drop={drop}: pass 1 to {len(allowed) - 1} (block {b} has {len(allowed)} ops)"
            )
        order = sorted(allowed, key=lambda op: (m[op][0], -op))  # lowest mean first
        dropped = set(order[:drop])
        kept.append([op for op in allowed if op not in dropped])
    return kept


def shrunk_archs(kept: list) -> list:
    """Text forms of every architecture of the product of ``kept`` (a space whose only searched
    gene is the op: one gene row, cell spaces and chains of blocks alike)."""
    return [",".join(map(str, genes)) for genes in itertools.product(*kept)]


def judge(space, table, archs: list, max_macs: str = "") -> dict:
    """Judging only: per MACs limit (``None`` first, then each of ``max_macs``, comma-separated,
    in the benchmark network's MACs), the best table accuracy over the table's distinct cells and
    over those the shrunk space ``archs`` holds (a cell counts as held when any isomorphic
    form of it is listed), and how many of the top 10 / 100 distinct cells it holds."""
    genes = [space.parse(a).genes[0] for a in archs]
    inside = {table.key(g) for g in genes if g in table}  # a partial table: the cells it holds
    cells = table.distinct()
    macs = {c.key: costs.macs(space, space.parse(",".join(map(str, c.ops)))) for c in cells}
    judged = {}
    for limit in [None] + [int(float(x)) for x in max_macs.split(",") if x.strip()]:
        pool = sorted(
            (c for c in cells if limit is None or macs[c.key] <= limit), key=lambda c: -c.accuracy
        )
        held = [c for c in pool if c.key in inside]
        judged["none" if limit is None else str(limit)] = {
            "best_whole": pool[0].accuracy,
            "best_shrunk": held[0].accuracy if held else None,
            "kept_of_top10": sum(c.key in inside for c in pool[:10]),
            "kept_of_top100": sum(c.key in inside for c in pool[:100]),
            "distinct_cells": len(pool),
            "distinct_cells_shrunk": len(held),
        }
    return judged


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ranking", required=True, help="a spos_tf.rank workdir's ranking.csv")
    p.add_argument("--space", default="nasbench201")
    p.add_argument("--drop", type=int, default=1, help="ops dropped per block")
    p.add_argument("--out", required=True, help="text file of the shrunk space's architectures")
    p.add_argument("--json", help="marginals, kept ops and the judging figures")
    p.add_argument("--ground_truth", help="NAS-Bench-201 table (judging only)")
    p.add_argument(
        "--max_macs", default="", help="comma-separated MACs limits (benchmark network) to judge"
    )
    args = p.parse_args(argv)
    for path in (args.out, args.json):
        if path and os.path.exists(path):
            sys.exit(f"{path} exists; pass another path (nothing is overwritten)")
    space = spaces.get(args.space)
    if space.searched_genes != ("op",):
        sys.exit(
            f"--space={args.space} searches {', '.join(space.searched_genes)}; shrinking drops "
            f"ops only: pass a space whose only searched gene is the op (e.g. nasbench201)"
        )
    if not os.path.isfile(args.ranking):
        sys.exit(f"--ranking={args.ranking!r} does not exist: run spos_tf.rank first")
    with open(args.ranking) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"--ranking={args.ranking!r} lists no architecture")
    marg = op_marginals(rows, space)
    kept = kept_ops(marg, space, args.drop)
    archs = shrunk_archs(kept)
    out = {
        "ranking": args.ranking,
        "drop": args.drop,
        "ranked": len(rows),
        "marginals": [{space.ops[op]: v for op, v in m.items()} for m in marg],
        "kept": [[space.ops[op] for op in k] for k in kept],
        "shrunk_size": len(archs),
    }
    if args.ground_truth:
        out["judged"] = judge(space, ground_truth.load(args.ground_truth), archs, args.max_macs)
    with open(args.out, "w") as f:
        f.write(
            f"# {len(archs)} architectures: {args.space} shrunk by {args.ranking}, drop {args.drop}\n"
        )
        f.write("\n".join(archs) + "\n")
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
