"""spos_tf.rank.stats against independent computations (pair counting, ranks by hand)."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from spos_tf.rank import stats as rank_stats


def kendall_tau_b(x, y):
    """Tau-b by counting pairs (independent of scipy)."""
    concordant = discordant = ties_x = ties_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            ties_x += 1
        elif dy == 0:
            ties_y += 1
        elif dx == dy:
            concordant += 1
        else:
            discordant += 1
    return (concordant - discordant) / math.sqrt(
        (concordant + discordant + ties_x) * (concordant + discordant + ties_y)
    )


def test_kendall_tau_matches_pair_counting_with_ties():
    x = [0.71, 0.65, 0.80, 0.80, 0.55, 0.62, 0.77]
    y = [0.90, 0.88, 0.91, 0.93, 0.85, 0.88, 0.89]
    got = rank_stats.correlation("kendall_tau", x, y, resamples=200)
    assert got["value"] == pytest.approx(kendall_tau_b(x, y), abs=1e-12)
    assert got["ci_low"] <= got["value"] <= got["ci_high"]


def test_spearman_is_pearson_of_the_ranks():
    x = np.array([3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0])
    y = np.array([2.0, 7.0, 1.0, 8.0, 2.5, 1.5, 3.0])
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))  # no ties
    expected = np.corrcoef(rx, ry)[0, 1]
    assert rank_stats.correlation("spearman_rho", x, y, resamples=100)["value"] == pytest.approx(
        expected, abs=1e-12
    )


def test_a_perfect_ranking_has_tau_one_and_a_reversed_one_minus_one():
    x = np.arange(6.0)
    assert rank_stats.correlation("kendall_tau", x, x**2, resamples=100)["value"] == pytest.approx(
        1.0
    )
    assert rank_stats.correlation("kendall_tau", x, -x, resamples=100)["value"] == pytest.approx(
        -1.0
    )


def test_undefined_correlations_are_nan_not_an_error():
    assert math.isnan(rank_stats.correlation("pearson_r", [1, 2], [3, 4])["value"])
    assert math.isnan(rank_stats.correlation("kendall_tau", [1, 1, 1], [1, 2, 3])["value"])
    with pytest.raises(ValueError, match="equal length"):
        rank_stats.correlation("kendall_tau", [1, 2, 3], [1, 2])


def test_bootstrap_interval_is_seeded():
    x, y = [0.1, 0.4, 0.2, 0.8, 0.5, 0.3], [0.2, 0.3, 0.1, 0.9, 0.4, 0.6]
    a = rank_stats.correlation("pearson_r", x, y, resamples=300, seed=3)
    b = rank_stats.correlation("pearson_r", x, y, resamples=300, seed=3)
    c = rank_stats.correlation("pearson_r", x, y, resamples=300, seed=4)
    assert a == b and (a["ci_low"], a["ci_high"]) != (c["ci_low"], c["ci_high"])


def test_top_k_overlap_counts_shared_members():
    supernet = [0.9, 0.8, 0.7, 0.6, 0.5]  # order 0,1,2,3,4
    alone = [0.5, 0.9, 0.8, 0.4, 0.7]  # order 1,2,4,0,3
    assert rank_stats.top_k_overlap(supernet, alone, 1) == 0.0
    assert rank_stats.top_k_overlap(supernet, alone, 3) == pytest.approx(2 / 3)  # {0,1,2}&{1,2,4}
    assert rank_stats.top_k_overlap(supernet, alone, 5) == 1.0
    with pytest.raises(ValueError, match="k must be in 1..5"):
        rank_stats.top_k_overlap(supernet, alone, 6)


def test_seed_noise_is_rms_of_per_arch_std_against_the_spread_of_means():
    per_seed = [[0.70, 0.74], [0.80, 0.80], [0.60, 0.66, 0.63], [0.75]]
    means = [0.72, 0.80, 0.63, 0.75]
    sds = [
        np.sqrt(((0.70 - 0.72) ** 2 + (0.74 - 0.72) ** 2) / 1),
        0.0,
        np.sqrt((0.03**2 + 0.03**2 + 0.0) / 2),
    ]
    got = rank_stats.seed_noise(per_seed)
    assert got["spread"] == pytest.approx(0.80 - 0.63)
    assert got["std_of_means"] == pytest.approx(np.std(means, ddof=1))
    assert got["seed_std"] == pytest.approx(np.sqrt(np.mean(np.square(sds))))
    assert got["noise_to_spread"] == pytest.approx(got["seed_std"] / (0.80 - 0.63))


def test_summarize_correlates_the_supernet_with_the_mean_of_the_seeds():
    supernet = [0.5, 0.6, 0.7, 0.8]
    per_seed = [[0.9, 0.7], [0.75, 0.75], [0.85, 0.85], [0.95, 0.93]]  # means .8 .75 .85 .94
    out = rank_stats.summarize(supernet, per_seed, resamples=100)
    assert out["num_archs"] == 4
    assert out["kendall_tau"]["value"] == pytest.approx(
        kendall_tau_b(supernet, [0.8, 0.75, 0.85, 0.94])
    )
    assert out["top_k_overlap"]["1"] == 1.0 and set(out["top_k_overlap"]) == {"1", "2", "3"}
    with pytest.raises(ValueError, match="4 supernet accuracies but 3"):
        rank_stats.summarize(supernet, per_seed[:3])


def _kept_percentiles(statistic, n, resamples, seed, confidence=0.95):
    """Direct reference: seeded paired resamples, statistic per resample, NaN ones left out."""
    idx = np.random.default_rng(seed).integers(0, n, (resamples, n))
    values = np.array([statistic(i) for i in idx])
    kept = values[np.isfinite(values)]
    low, high = np.percentile(kept, [50 * (1 - confidence), 50 * (1 + confidence)])
    return low, high, len(values) - len(kept)


def _pearson_or_nan(a, b):
    return np.corrcoef(a, b)[0, 1] if np.ptp(a) and np.ptp(b) else np.nan


def test_constant_resamples_are_dropped_not_a_nan_interval():
    # 5 architectures: about 5 / 5**5 of the resamples repeat one architecture (x constant)
    x, y = [0.1, 0.4, 0.2, 0.8, 0.5], [0.2, 0.3, 0.1, 0.9, 0.4]
    got = rank_stats.correlation("kendall_tau", x, y, resamples=2000, seed=0)
    assert got["resamples_dropped"] > 0
    assert math.isfinite(got["ci_low"]) and math.isfinite(got["ci_high"])
    assert -1 <= got["ci_low"] <= got["value"] <= got["ci_high"] <= 1
    xs, ys = np.array(x), np.array(y)

    def tau(i):
        return kendall_tau_b(xs[i], ys[i]) if np.ptp(xs[i]) and np.ptp(ys[i]) else np.nan

    low, high, dropped = _kept_percentiles(tau, 5, 2000, 0)
    assert got["resamples_dropped"] == dropped
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((low, high), abs=1e-12)


def test_interval_is_the_percentiles_of_the_seeded_resamples():
    rng = np.random.default_rng(7)
    x = rng.normal(size=30)
    y = x + rng.normal(size=30)
    got = rank_stats.correlation("pearson_r", x, y, resamples=500, seed=11, confidence=0.9)
    low, high, dropped = _kept_percentiles(
        lambda i: _pearson_or_nan(x[i], y[i]), 30, 500, 11, confidence=0.9
    )
    assert dropped == 0 and got["resamples_dropped"] == 0
    assert got["ci_low"] == pytest.approx(low, abs=1e-9)
    assert got["ci_high"] == pytest.approx(high, abs=1e-9)
    assert got["ci_low"] < got["value"] < got["ci_high"]
    # with nothing dropped it is scipy.stats.bootstrap's paired percentile interval, as before
    boot = stats.bootstrap(
        (x, y),
        lambda a, b: stats.pearsonr(a, b)[0],
        paired=True,
        vectorized=False,
        n_resamples=500,
        confidence_level=0.9,
        method="percentile",
        rng=np.random.default_rng(11),
    )
    assert (got["ci_low"], got["ci_high"]) == pytest.approx(tuple(boot.confidence_interval))


def test_paired_delta_uses_the_same_resamples_for_both_correlations():
    rng = np.random.default_rng(3)
    alone = rng.normal(size=12)
    supernet = alone + 0.5 * rng.normal(size=12)
    macs = alone + 2.0 * rng.normal(size=12)
    got = rank_stats.paired_delta("pearson_r", alone, supernet, macs, resamples=400, seed=5)
    r1, r2 = np.corrcoef(alone, supernet)[0, 1], np.corrcoef(alone, macs)[0, 1]
    assert got["value_1"] == pytest.approx(r1) and got["value_2"] == pytest.approx(r2)
    assert got["value"] == pytest.approx(r1 - r2)
    low, high, dropped = _kept_percentiles(
        lambda i: _pearson_or_nan(alone[i], supernet[i]) - _pearson_or_nan(alone[i], macs[i]),
        12,
        400,
        5,
    )
    assert got["resamples_dropped"] == dropped
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((low, high), abs=1e-9)


def test_paired_delta_drops_resamples_where_either_correlation_is_undefined():
    x, y1, y2 = [1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 3.0, 2.0, 5.0, 4.0], [5.0, 1.0, 4.0, 2.0, 3.0]
    got = rank_stats.paired_delta("kendall_tau", x, y1, y2, resamples=2000, seed=1)
    assert got["resamples_dropped"] > 0
    assert math.isfinite(got["ci_low"]) and got["ci_low"] <= got["value"] <= got["ci_high"]
    assert math.isnan(rank_stats.paired_delta("kendall_tau", x, y1, [1, 1, 1, 1, 1])["value"])
    with pytest.raises(ValueError, match="equal length"):
        rank_stats.paired_delta("kendall_tau", x, y1, y2[:4])


def test_seed_vs_seed_is_the_mean_pairwise_kendall_tau_by_hand():
    # seeds as columns: s1 swaps the last two of s0 (1 discordant pair of 6: tau 4/6), s2 reverses
    # s0 (tau -1) and is s1 with 5 of 6 pairs discordant (tau -4/6); mean -1/3.
    per_seed = [[0.1, 0.1, 0.4, 0.99], [0.2, 0.2, 0.3], [0.3, 0.4, 0.2], [0.4, 0.3, 0.1]]
    got = rank_stats.seed_vs_seed(per_seed, resamples=50)
    assert got["value"] == pytest.approx((4 / 6 - 1 - 4 / 6) / 3)
    assert (got["seeds"], got["pairs"]) == (3, 3)  # arch 0's 4th seed is left out
    assert got["ci_low"] <= got["ci_high"]
    assert rank_stats.seed_vs_seed([[0.1, 0.2], [0.3], [0.5, 0.6]]) is None  # a row of 1 seed
    assert rank_stats.seed_vs_seed([[0.1, 0.2], [0.3, 0.4]]) is None  # 2 architectures


def test_summarize_reports_the_seed_ceiling_only_with_two_seeds_everywhere():
    supernet = [0.5, 0.6, 0.7, 0.8]
    two = [[0.1, 0.2], [0.3, 0.1], [0.5, 0.6], [0.7, 0.8]]
    # one discordant pair of 6 between the two seeds (archs 0 and 1): tau 4/6
    got = rank_stats.summarize(supernet, two, resamples=20)["seed_vs_seed_tau"]
    assert got["value"] == pytest.approx(4 / 6)
    assert "seed_vs_seed_tau" not in rank_stats.summarize(supernet, [[r[0]] for r in two])


def test_seed_vs_seed_split_half_averages_the_three_two_by_two_splits():
    rng = np.random.default_rng(3)
    table = rng.normal(0.8, 0.05, (15, 1)) + rng.normal(0, 0.03, (15, 4))
    halves = [((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))]
    expected = np.mean(
        [
            stats.kendalltau(table[:, list(a)].mean(1), table[:, list(b)].mean(1))[0]
            for a, b in halves
        ]
    )
    got = rank_stats.seed_vs_seed(table.tolist(), resamples=40)
    assert got["split_half"]["value"] == pytest.approx(expected)
    assert got["split_half"]["splits"] == 3
    assert "split_half" not in rank_stats.seed_vs_seed(table[:, :3].tolist(), resamples=10)
