"""Throughput of the analytic cost model (MACs, params, BitOps of sampled architectures).

Usage:
    python benchmarks/cost_model.py [--archs=20000]

For each registered space: samples ``--archs`` architectures with a seeded RNG (sampling time
excluded), then times ``CostTable.macs`` and ``CostTable.all`` over them. Prints one JSON line per
space with architectures per second (target: >= 10,000 per second, since constrained sampling and
the search's constraint call it for every candidate).
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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--archs", type=int, default=20_000)
    args = p.parse_args()
    for name in spaces.names():
        space = spaces.get(name)
        rng = np.random.default_rng(0)
        archs = [space.sample(rng) for _ in range(args.archs)]
        table = costs.table(space)
        table.macs(archs[0])  # builds the per-choice tables
        t = time.perf_counter()
        for arch in archs:
            table.macs(arch)
        macs_s = time.perf_counter() - t
        t = time.perf_counter()
        for arch in archs:
            table.all(arch)
        all_s = time.perf_counter() - t
        print(
            json.dumps(
                {
                    "space": name,
                    "archs": args.archs,
                    "macs_archs_per_s": round(args.archs / macs_s),
                    "all_costs_archs_per_s": round(args.archs / all_s),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
