"""Per-bin histogram of the paths that uniform and FLOPs-binned supernet sampling draw.

Usage:
    python benchmarks/sampling_bins.py [--draws=20000] [--space=shufflenet_oneshot]
        [--cost_bins=290e6,300e6,...,360e6] [--bin_tries=500] [--seed=0]

Draws steps ``0 .. draws-1`` of ``ArchSampler`` (``--sampling=uniform``) and of
``CostBinSampler`` (``--sampling=cost_bins``, the reference's rule) for the space at 224x224 with
1000 classes, and prints a markdown table: per MACs bin the share of sampled paths in each mode
(plus the share outside all bins), then one JSON line with the raw counts, the fallback count
(steps whose 500 tries in the chosen bin all failed) and the draw rate.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from spos_tf import costs
from spos_tf import spaces  # noqa: E402
from spos_tf.models.sampling import (
    REFERENCE_BIN_TRIES,
    REFERENCE_BINS,
    ArchSampler,  # noqa: E402
    CostBinSampler,
    bin_index,
    check_bins,
)


def histogram(edges, macs) -> np.ndarray:
    """Counts per bin, then the count outside all bins (last entry)."""
    counts = np.zeros(len(edges), np.int64)
    for m in macs:
        counts[bin_index(edges, m)] += 1  # -1 (outside) lands in the last entry
    return counts


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--draws", type=int, default=20_000)
    p.add_argument("--space", default="shufflenet_oneshot")
    p.add_argument("--cost_bins", default=",".join(f"{e:g}" for e in REFERENCE_BINS))
    p.add_argument("--bin_tries", type=int, default=REFERENCE_BIN_TRIES)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    edges = check_bins(args.cost_bins.split(","))
    space = spaces.get(args.space, image_size=224, num_classes=1000)
    table = costs.table(space)
    samplers = {
        "uniform": ArchSampler(space, args.seed),
        "cost_bins": CostBinSampler(space, args.seed, edges, args.bin_tries),
    }
    counts, rates, fallbacks = {}, {}, 0
    for mode, sampler in samplers.items():
        start = time.perf_counter()
        macs = []
        for step in range(args.draws):
            if mode == "cost_bins":
                arch, _, tries = sampler.draw(step)
                fallbacks += tries < 0
            else:
                arch = sampler(step)
            macs.append(table.macs(arch))
        rates[mode] = args.draws / (time.perf_counter() - start)
        counts[mode] = histogram(edges, macs)
    print("| MACs bin | uniform | cost_bins |")
    print("|---|---|---|")
    labels = [f"{lo / 1e6:g}M-{hi / 1e6:g}M" for lo, hi in zip(edges, edges[1:])] + ["outside"]
    for i, label in enumerate(labels):
        print(
            f"| {label} | "
            + " | ".join(f"{100 * counts[m][i] / args.draws:.1f}%" for m in samplers)
            + " |"
        )
    print(
        json.dumps(
            {
                "space": space.name,
                "draws": args.draws,
                "edges": edges,
                "counts": {m: c.tolist() for m, c in counts.items()},
                "cost_bins_fallbacks": int(fallbacks),
                "draws_per_s": {m: round(r) for m, r in rates.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
