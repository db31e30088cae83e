"""Ranking quality of a supernet: how well its path accuracies predict stand-alone accuracies.

Plain NumPy/SciPy, no TensorFlow. The correlation statistics are scipy.stats' own
(``kendalltau`` = tau-b, ``spearmanr``, ``pearsonr``); their 95% intervals come from
``scipy.stats.bootstrap`` over architectures (paired resampling, percentile method, fixed seed),
so the same inputs always give the same intervals.

Inputs are per architecture: the supernet's accuracy (inherited weights, BN recalibrated, held-out
split) and the stand-alone accuracies of its from-scratch trainings, one per seed (test split).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

CORRELATIONS = {
    "kendall_tau": lambda x, y: stats.kendalltau(x, y),
    "spearman_rho": lambda x, y: stats.spearmanr(x, y),
    "pearson_r": lambda x, y: stats.pearsonr(x, y),
}


def correlation(
    name: str, x, y, *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> dict:
    """``{"value", "p_value", "ci_low", "ci_high"}`` of correlation ``name`` between ``x`` and
    ``y`` (a bootstrap interval over the pairs; NaN where undefined, e.g. constant input or fewer
    than 3 pairs).

    Args:
      name: a key of :data:`CORRELATIONS`.
      x, y: paired 1-D sequences of equal length.
      resamples, seed, confidence: of ``scipy.stats.bootstrap``.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    nan = {"value": math.nan, "p_value": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return nan
    result = CORRELATIONS[name](x, y)
    out = {
        "value": float(result[0]),
        "p_value": float(result[1]),
        "ci_low": math.nan,
        "ci_high": math.nan,
    }
    fn = CORRELATIONS[name]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resamples with a constant x or y give NaN: ignored
        boot = stats.bootstrap(
            (x, y),
            lambda a, b: fn(a, b)[0],
            paired=True,
            vectorized=False,
            n_resamples=resamples,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    low, high = boot.confidence_interval
    out["ci_low"], out["ci_high"] = float(low), float(high)
    return out


def top_k_overlap(x, y, k: int) -> float:
    """Fraction of the ``k`` best architectures by ``x`` that are also among the ``k`` best by
    ``y`` (ties broken by position)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    k = int(k)
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be in 1..{len(x)}, got {k}")
    top_x = set(np.argsort(-x, kind="stable")[:k].tolist())
    top_y = set(np.argsort(-y, kind="stable")[:k].tolist())
    return len(top_x & top_y) / k


def seed_noise(per_seed) -> dict:
    """Noise of the stand-alone accuracies against the spread between architectures.

    Args:
      per_seed: ``[num_archs][num_seeds]`` accuracies (rows may differ in length; rows with
        fewer than 2 seeds do not count for the noise).

    Returns:
      ``{"spread": max - min of the per-architecture means, "std_of_means": std (ddof 1) of the
      means, "seed_std": root mean square of the per-architecture seed std (ddof 1; NaN with
      fewer than 2 seeds), "noise_to_spread": seed_std / spread}``.
    """
    means = np.array([np.mean(r) for r in per_seed], float)
    sds = [np.std(r, ddof=1) for r in per_seed if len(r) >= 2]
    seed_std = float(np.sqrt(np.mean(np.square(sds)))) if sds else math.nan
    spread = float(np.ptp(means)) if len(means) else math.nan
    return {
        "spread": spread,
        "std_of_means": float(np.std(means, ddof=1)) if len(means) > 1 else math.nan,
        "seed_std": seed_std,
        "noise_to_spread": seed_std / spread if spread else math.nan,
    }


def summarize(supernet, per_seed, *, resamples: int = 2000, seed: int = 0) -> dict:
    """Every ranking statistic of ``ranking.json``.

    Args:
      supernet: per architecture, the supernet's accuracy.
      per_seed: per architecture, the list of stand-alone accuracies (one per seed).

    Returns:
      ``{"num_archs", "kendall_tau": {...}, "spearman_rho": {...}, "pearson_r": {...},
      "top_k_overlap": {str(k): fraction}, **seed_noise(per_seed)}`` where the correlations are
      against the mean stand-alone accuracy of each architecture.
    """
    supernet = np.asarray(supernet, float)
    means = np.array([np.mean(r) for r in per_seed], float)
    if len(supernet) != len(means):
        raise ValueError(f"{len(supernet)} supernet accuracies but {len(means)} stand-alone rows")
    out = {"num_archs": int(len(means))}
    for name in CORRELATIONS:
        out[name] = correlation(name, supernet, means, resamples=resamples, seed=seed)
    n = len(means)
    ks = sorted({k for k in (1, 3, 5, max(1, n // 4), max(1, n // 2)) if k <= n})
    out["top_k_overlap"] = {str(k): top_k_overlap(supernet, means, k) for k in ks}
    out.update(seed_noise(per_seed))
    return out
