"""Ranking quality of a supernet: how well its path accuracies predict stand-alone accuracies.

Plain NumPy/SciPy, no TensorFlow. The correlation statistics are scipy.stats' own
(``kendalltau`` = tau-b, ``spearmanr``, ``pearsonr``); their 95% intervals are paired percentile
bootstraps over architectures: ``resamples`` index sets drawn with
``np.random.default_rng(seed).integers(0, n, (resamples, n))`` (the draws of
``scipy.stats.bootstrap(..., paired=True, method="percentile")``), so the same inputs always give
the same intervals. A resample on which the statistic is undefined (x or y constant, common with
5 or 6 architectures) is dropped and counted in ``resamples_dropped``, instead of turning the whole
interval into NaN; the interval is then that of the bootstrap distribution conditioned on a
defined statistic.

Inputs are per architecture: the supernet's accuracy (inherited weights, BN recalibrated, held-out
split) and the stand-alone accuracies of its from-scratch trainings, one per seed (test split).
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
from scipy import stats

CORRELATIONS = {
    "kendall_tau": lambda x, y: stats.kendalltau(x, y),
    "spearman_rho": lambda x, y: stats.spearmanr(x, y),
    "pearson_r": lambda x, y: stats.pearsonr(x, y),
}


def _pairs(x, *ys) -> tuple:
    """``x, *ys`` as float arrays; raises unless all are 1-D of the same length."""
    arrays = tuple(np.asarray(a, float) for a in (x, *ys))
    if any(a.ndim != 1 or a.shape != arrays[0].shape for a in arrays):
        shapes = " and ".join(str(a.shape) for a in arrays)
        raise ValueError(f"x and y must be 1-D of equal length, got {shapes}")
    return arrays


def _defined(*arrays) -> bool:
    """Whether a correlation between the arrays is defined: >= 3 pairs, none constant."""
    return len(arrays[0]) >= 3 and all(np.ptp(a) > 0 for a in arrays)


def _statistic(name: str, x, y) -> float:
    """Correlation ``name`` of ``x`` and ``y``; NaN where undefined (constant input)."""
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(CORRELATIONS[name](x, y)[0])


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """The ``[resamples, n]`` resampled architecture indices that every interval of this module
    uses for ``seed`` (the draws of ``scipy.stats.bootstrap`` with a paired resampling)."""
    return np.random.default_rng(seed).integers(0, n, (resamples, n))


def _interval(values: np.ndarray, confidence: float) -> tuple:
    """``(low, high, dropped)``: the percentile interval of the finite ``values`` (NaN, NaN when
    none are finite) and how many were not finite."""
    kept = values[np.isfinite(values)]
    dropped = int(len(values) - len(kept))
    if not len(kept):
        return math.nan, math.nan, dropped
    alpha = (1 - confidence) / 2
    low, high = np.percentile(kept, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high), dropped


def correlation(
    name: str, x, y, *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> dict:
    """``{"value", "p_value", "ci_low", "ci_high", "resamples_dropped"}`` of correlation ``name``
    between ``x`` and ``y``.

    The interval is a paired percentile bootstrap (see the module docstring) over the resamples
    on which the correlation is defined; ``resamples_dropped`` counts the others (x or y constant
    in the resample). Everything but ``resamples_dropped`` (then 0) is NaN where the correlation
    itself is undefined (constant input or fewer than 3 pairs); the interval is NaN when every
    resample was dropped.

    Args:
      name: a key of :data:`CORRELATIONS`.
      x, y: paired 1-D sequences of equal length.
      resamples: number of bootstrap resamples (before dropping).
      seed: seed of :func:`bootstrap_indices`; the same seed gives the same interval.
      confidence: of the two-sided interval.
    """
    x, y = _pairs(x, y)
    out = {"value": math.nan, "p_value": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    out["resamples_dropped"] = 0
    if not _defined(x, y):
        return out
    result = CORRELATIONS[name](x, y)
    out["value"], out["p_value"] = float(result[0]), float(result[1])
    interval = mean_correlation(name, x, [y], resamples=resamples, seed=seed, confidence=confidence)
    out.update({k: interval[k] for k in ("ci_low", "ci_high", "resamples_dropped")})
    return out


def paired_delta(
    name: str, x, y1, y2, *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> dict:
    """Paired-bootstrap difference ``corr(x, y1) - corr(x, y2)`` of correlation ``name``, e.g.
    how much better the supernet (``y1``) ranks the stand-alone accuracies ``x`` of the same
    architectures than their MACs (``y2``).

    Both correlations of a resample are computed on the same resampled architectures (the
    :func:`bootstrap_indices` of ``seed``), so what the architectures share cancels out in the
    difference.

    Returns:
      ``{"value": corr(x, y1) - corr(x, y2), "value_1": corr(x, y1), "value_2": corr(x, y2),
      "ci_low", "ci_high": percentile interval of the resampled differences, "resamples_dropped":
      resamples where either correlation is undefined (x, y1 or y2 constant), left out}``. The
      values and the interval are NaN where a correlation itself is undefined (constant input or
      fewer than 3 architectures; ``resamples_dropped`` then 0).

    Args:
      name: a key of :data:`CORRELATIONS`.
      x, y1, y2: paired 1-D sequences of equal length (one entry per architecture).
      resamples, seed, confidence: as for :func:`correlation`.
    """
    x, y1, y2 = _pairs(x, y1, y2)
    out = {"value": math.nan, "value_1": math.nan, "value_2": math.nan}
    out.update(ci_low=math.nan, ci_high=math.nan, resamples_dropped=0)
    if not _defined(x, y1, y2):
        return out
    out["value_1"], out["value_2"] = _statistic(name, x, y1), _statistic(name, x, y2)
    out.update(
        mean_correlation(name, x, [y1], [y2], resamples=resamples, seed=seed, confidence=confidence)
    )
    return out


def mean_correlation(
    name: str, x, ys, others=(), *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> dict:
    """The mean over ``ys`` of correlation ``name`` between ``x`` and each ``y``, minus the mean
    over ``others`` (none: nothing subtracted), with a paired bootstrap interval: e.g. the
    Kendall tau of a lever averaged over its supernet seeds, against the baseline's seeds.

    Every resample draws the same architectures (:func:`bootstrap_indices` of ``seed``) for all
    arrays; a resample where any correlation is undefined is dropped and counted. It is the
    bootstrap of :func:`correlation` (one ``y``, no ``others``) and :func:`paired_delta` (one of
    each), which take their intervals from it.

    Args:
      name: a key of :data:`CORRELATIONS`.
      x: per architecture, the ground truth.
      ys, others: sequences of paired 1-D arrays (one per supernet seed), each as long as ``x``.
      resamples, seed, confidence: as for :func:`correlation`.

    Returns:
      ``{"value", "ci_low", "ci_high", "resamples_dropped"}``; all NaN (``resamples_dropped``
      0) where a correlation itself is undefined (constant input or fewer than 3 pairs).
    """
    if not len(ys):
        raise ValueError("mean_correlation needs at least one y")
    x, *arrays = _pairs(x, *ys, *others)
    ys, others = arrays[: len(ys)], arrays[len(ys) :]
    if not _defined(x, *arrays):
        return {"value": math.nan, "ci_low": math.nan, "ci_high": math.nan, "resamples_dropped": 0}

    def value(idx):
        got = np.mean([_statistic(name, x[idx], y[idx]) for y in ys])
        if others:
            got -= np.mean([_statistic(name, x[idx], y[idx]) for y in others])
        return float(got)

    out = {"value": value(np.arange(len(x)))}
    boot = np.array([value(i) for i in bootstrap_indices(len(x), resamples, seed)])
    out["ci_low"], out["ci_high"], out["resamples_dropped"] = _interval(boot, confidence)
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


def rank_average(*scores) -> np.ndarray:
    """Per architecture, the mean of its ranks by each of ``scores`` (e.g. supernet accuracy and
    MACs): ``scipy.stats.rankdata`` of each (rank 1 = the lowest value, ties get their average
    rank), averaged. Higher is better for every input and for the result.

    The ranks are among the given architectures only, so the result of one architecture depends
    on which others are given (a partial ranking's values change as more finish).

    Args:
      *scores: paired 1-D sequences of equal length (at least one), one entry per architecture.

    Returns:
      A float array of the mean ranks (1..n).
    """
    if not scores:
        raise ValueError("rank_average needs at least one score")
    arrays = _pairs(*scores)
    return np.mean([stats.rankdata(a, method="average") for a in arrays], axis=0)


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


def seed_vs_seed(per_seed, *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95):
    """How well one from-scratch training ranks the architectures of another: Kendall's tau
    between the stand-alone accuracies of two seeds, averaged over every pair of seeds. It is
    the noise ceiling of a ranking measured against trained accuracies: a ranker that knew
    each architecture's accuracy only as well as one more training run does would reach it.

    Only the first ``m`` seeds of every row count, ``m`` the fewest seeds of any row. The
    interval is the paired percentile bootstrap of the module (the same :func:`bootstrap_indices`
    resample of architectures for every pair of a resample; resamples where a pair's tau is
    undefined are dropped and counted).

    A ranking is usually scored against the *mean* of the ``m`` seeds, which is less noisy than
    one seed, so a good ranker can exceed this single-seed figure. With ``m >= 4`` the result
    also holds ``"split_half"``: Kendall's tau between the means of two disjoint halves of the
    first ``2 * (m // 2)`` seeds, averaged over every such split (3 splits for 4 seeds), with
    its interval from the same resamples: the agreement of two independent ``m // 2``-seed
    ground truths.

    Args:
      per_seed: ``[num_archs][num_seeds]`` stand-alone accuracies.
      resamples, seed, confidence: as for :func:`correlation`.

    Returns:
      ``{"value", "ci_low", "ci_high", "resamples_dropped", "seeds": m, "pairs": m(m-1)/2}``
      (and ``"split_half": {"value", "ci_low", "ci_high", "resamples_dropped", "splits"}``
      with ``m >= 4``), or ``None`` with fewer than 2 seeds in some row or fewer than 3
      architectures.
    """
    rows = [list(r) for r in per_seed]
    if len(rows) < 3 or min(len(r) for r in rows) < 2:
        return None
    m = min(len(r) for r in rows)
    table = np.array([r[:m] for r in rows], float)
    pairs = [(a, b) for a in range(m) for b in range(a + 1, m)]
    half = m // 2
    # halves of the first 2*half seeds; the half holding seed 0 first, so each split counts once
    splits = [
        (list(a), [k for k in range(2 * half) if k not in a])
        for a in itertools.combinations(range(2 * half), half)
        if a[0] == 0
    ]

    def mean_tau(columns_pairs, idx):
        return float(
            np.mean(
                [
                    _statistic("kendall_tau", table[idx][:, a].mean(1), table[idx][:, b].mean(1))
                    for a, b in columns_pairs
                ]
            )
        )

    single = [([a], [b]) for a, b in pairs]
    everyone = np.arange(len(rows))
    boot_idx = bootstrap_indices(len(rows), resamples, seed)
    out = {"value": mean_tau(single, everyone), "seeds": m, "pairs": len(pairs)}
    boot = np.array([mean_tau(single, i) for i in boot_idx])
    out["ci_low"], out["ci_high"], out["resamples_dropped"] = _interval(boot, confidence)
    if m >= 4:
        block = {"value": mean_tau(splits, everyone), "splits": len(splits)}
        boot = np.array([mean_tau(splits, i) for i in boot_idx])
        block["ci_low"], block["ci_high"], block["resamples_dropped"] = _interval(boot, confidence)
        out["split_half"] = block
    return out


def summarize(supernet, per_seed, *, resamples: int = 2000, seed: int = 0) -> dict:
    """Every ranking statistic of ``ranking.json``.

    Args:
      supernet: per architecture, the supernet's accuracy.
      per_seed: per architecture, the list of stand-alone accuracies (one per seed).

    Returns:
      ``{"num_archs", "kendall_tau": {...}, "spearman_rho": {...}, "pearson_r": {...},
      "top_k_overlap": {str(k): fraction}, **seed_noise(per_seed)}`` where the correlations are
      against the mean stand-alone accuracy of each architecture, plus ``"seed_vs_seed_tau"``
      (:func:`seed_vs_seed`) where every architecture has at least 2 seeds.
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
    ceiling = seed_vs_seed(per_seed, resamples=resamples, seed=seed)
    if ceiling is not None:
        out["seed_vs_seed_tau"] = ceiling
    return out
