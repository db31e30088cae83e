"""Evolution vs random search over seeds: the comparison of the history rows of one search per seed
(:func:`compare_seeds`, ``seeds.json``), its summary line and Figure 3 with a band over seeds.

:func:`spos_tf.search.run.run_seeds` runs the searches and writes these; everything here is a
function of the rows (imports no TensorFlow, no oracle).
"""

from __future__ import annotations

import os

from spos_tf.runs import run_dir
from spos_tf.search.config import ALGORITHM_COLORS as COLORS
from spos_tf.search.config import ALGORITHMS

__all__ = [
    "best_so_far",
    "common_evaluations",
    "compare_seeds",
    "describe_seeds",
    "write_seeds_plot",
    "seed_dir",
]


def seed_dir(workdir: str, seed: int) -> str:
    """The folder of the search of ``seed`` in a ``--seeds`` search's ``workdir``."""
    return os.path.join(os.fspath(workdir), f"seed_{seed}")


def best_so_far(rows: list, algorithm: str) -> list:
    """Best accuracy after 1, 2, ... evaluations of ``algorithm`` (rows in evaluation order)."""
    out, best = [], float("-inf")
    for row in rows:
        if row["algorithm"] == algorithm:
            best = max(best, row["accuracy"])
            out.append(best)
    return out


def common_evaluations(per_seed: dict) -> int | None:
    """The evaluation count every run is cut to: the fewest evaluations of any algorithm in any
    seed, over the algorithms that evaluated something in every seed (None when there is none),
    so that evolution and random search are compared at the same budget."""
    lengths = []
    for algorithm in ALGORITHMS:
        counts = [sum(r["algorithm"] == algorithm for r in rows) for rows in per_seed.values()]
        if counts and all(counts):
            lengths.append(min(counts))
    return min(lengths) if lengths else None


def _curves(per_seed: dict, algorithm: str) -> list | None:
    """The best-so-far curves of ``algorithm`` of every seed, cut to
    :func:`common_evaluations` (equal evaluations for both algorithms); None when a seed has
    none."""
    curves = [best_so_far(rows, algorithm) for rows in per_seed.values()]
    if not curves or not all(curves):
        return None
    n = common_evaluations(per_seed)
    return [c[:n] for c in curves]


def compare_seeds(per_seed: dict) -> dict:
    """Evolution vs random search over seeds at equal evaluations.

    Every run of both algorithms is cut to the same number of evaluations,
    :func:`common_evaluations` (the shortest run of either algorithm in any seed), so both are
    compared at the same budget.

    Args:
      per_seed: ``{seed: history rows}``.

    Returns:
      ``{"seeds", "evaluations": the common evaluation count (None without any run),
      "algorithms": {name: {"final_best": [per seed, at "evaluations"], "mean", "std" (ddof 1),
      "evaluations"}}, "difference": mean evolution - mean random, "seed_spread": std(evolution)
      + std(random), the quantity the verdict compares with, "exceeds_seed_spread": |difference|
      > seed_spread, "welch_p": p of Welch's t-test (scipy)}`` (the last four only with both
      algorithms and >= 2 seeds; ``welch_p`` only when a std is not 0).
    """
    import numpy as np
    from scipy import stats

    out = {"algorithms": {}, "seeds": sorted(per_seed)}
    out["evaluations"] = common_evaluations(per_seed)
    for algorithm in ALGORITHMS:
        curves = _curves(per_seed, algorithm)
        if curves is None:
            continue
        finals = [c[-1] for c in curves]
        out["algorithms"][algorithm] = {
            "final_best": finals,
            "evaluations": len(curves[0]),
            "mean": float(np.mean(finals)),
            "std": float(np.std(finals, ddof=1)) if len(finals) > 1 else None,
        }
    algos = out["algorithms"]
    if set(algos) == set(ALGORITHMS) and len(per_seed) > 1:
        evo, rnd = algos["evolution"], algos["random"]
        out["difference"] = evo["mean"] - rnd["mean"]
        out["seed_spread"] = evo["std"] + rnd["std"]
        out["exceeds_seed_spread"] = bool(abs(out["difference"]) > out["seed_spread"])
        if evo["std"] or rnd["std"]:
            out["welch_p"] = float(
                stats.ttest_ind(evo["final_best"], rnd["final_best"], equal_var=False).pvalue
            )
    return out


def describe_seeds(comparison: dict) -> str:
    """One line per algorithm (mean and std of the final best over seeds) and the verdict."""
    lines = [
        f"{name}: final best over seeds {', '.join(f'{v:.4f}' for v in a['final_best'])} "
        f"(mean {a['mean']:.4f}, std {a['std'] if a['std'] is None else round(a['std'], 4)}, "
        f"at {a['evaluations']} evaluations)"
        for name, a in comparison["algorithms"].items()
    ]
    if "difference" in comparison:
        lines.append(
            f"evolution - random: {comparison['difference']:+.4f}; "
            f"{'exceeds' if comparison['exceeds_seed_spread'] else 'within'} the seed "
            f"spread {comparison['seed_spread']:.4f} (std evolution + std random)"
        )
    return "\n".join(lines)


def write_seeds_plot(path: str, per_seed: dict, title: str = "") -> None:
    """Figure 3 over seeds: per algorithm the mean best-so-far curve and a band from the lowest
    to the highest seed, both algorithms cut to :func:`common_evaluations`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for algorithm in ALGORITHMS:
        curves = _curves(per_seed, algorithm)
        if curves is None:
            continue
        curves = 100 * np.array(curves)
        x = np.arange(1, curves.shape[1] + 1)
        mean = curves.mean(axis=0)
        ax.fill_between(
            x, curves.min(axis=0), curves.max(axis=0), color=COLORS[algorithm], alpha=0.2, lw=0
        )
        ax.plot(
            x,
            mean,
            color=COLORS[algorithm],
            lw=2,
            label=f"{algorithm}: mean {mean[-1]:.2f}% over {len(curves)} seeds (band: min..max)",
        )
    ax.set_xlabel("number of evaluated architectures")
    ax.set_ylabel("best held-out top-1 so far (%), supernet weights")
    ax.set_title(title or "Best accuracy so far over seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    run_dir.save_figure(fig, path)
