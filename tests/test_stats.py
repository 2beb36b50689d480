"""The report's statistics against their definitions: the exact Wilcoxon signed-rank p-value
against a brute-force enumeration of every sign flip (ties and zeros included) and known
values (two swapped pairs of a paired comparison tie), the smallest reachable p counted from
the non-zero differences, and the coverage of the t-interval of a mean at small n."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from pinn_exp.report import stats
from pinn_exp.report.pairing import compare_pairs


def _average_ranks(values: list[float]) -> list[float]:
    """Ranks 1..n of ``values`` (ascending), tied values sharing the mean of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def _brute_force_p(differences: list[float]) -> float:
    """Two-sided p of the signed-rank statistic over all 2**m sign flips of the m non-zero
    differences' average ranks: P(|W+ - T/2| >= |w - T/2|), T the sum of the ranks."""
    nonzero = [d for d in differences if d != 0]
    ranks = _average_ranks([abs(d) for d in nonzero])
    w = sum(r for r, d in zip(ranks, nonzero) if d > 0)
    centre = sum(ranks) / 2
    flips = list(itertools.product((0, 1), repeat=len(ranks)))
    extreme = sum(
        abs(sum(r for r, s in zip(ranks, signs) if s) - centre) >= abs(w - centre) - 1e-9
        for signs in flips
    )
    return extreme / len(flips)


def _cases() -> list[list[float]]:
    """Samples of n = 3..8 with ties in |d| (opposite signs too) and zeros."""
    rng = np.random.default_rng(11)
    cases = []
    for n in range(3, 9):
        for _ in range(6):
            # few distinct magnitudes: ties are likely; some zeros
            magnitudes = rng.choice([0.0, 0.3, 0.7, 1.1, 2.0], size=n, p=[0.2, 0.2, 0.2, 0.2, 0.2])
            signs = rng.choice([-1.0, 1.0], size=n)
            cases.append([float(m * s) for m, s in zip(magnitudes, signs)])
        cases.append([0.5] * n)  # all tied, one sign
        cases.append([0.0, *[(-1) ** k * 0.5 for k in range(n - 1)]])  # a zero, ties of both signs
    return [c for c in cases if any(c)]


@pytest.mark.parametrize("differences", _cases())
def test_p_equals_the_enumeration_of_every_sign_flip(differences):
    assert stats.wilcoxon_p(differences) == pytest.approx(_brute_force_p(differences), rel=1e-12)


def test_known_values_with_ties_and_zeros():
    # five equal differences: W+ = 15 is reached by one sign pattern of 32: p = 2/32
    assert stats.wilcoxon_p([0.4] * 5) == pytest.approx(0.0625, rel=1e-12)
    # seven differences, two of them zero: five of one sign, p = 2/32 (the normal
    # approximation older scipy used here gives 0.043)
    assert stats.wilcoxon_p([0, 0, 0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(0.0625, rel=1e-12)
    # no ties, no zeros: the classic table, n = 6 with one smallest negative: W- = 1, 4/64
    assert stats.wilcoxon_p([-0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == pytest.approx(4 / 64, rel=1e-12)
    # a sign-symmetric sample is as far from significant as can be
    assert stats.wilcoxon_p([-1, 1, -2, 2]) == 1.0


def test_swapped_errors_tie_in_the_signed_rank_test():
    a, b = 0.6389971438592221, 0.41774516234970216  # log(a/b) != -log(b/a) in floating point
    assert abs(math.log(a / b)) != abs(math.log(b / a))
    others = [(0.2, 0.1), (0.15, 0.6), (0.3, 0.25)]
    sampler = {(0,): a, (1,): b, **{(i + 2,): x for i, (x, _) in enumerate(others)}}
    base = {(0,): b, (1,): a, **{(i + 2,): y for i, (_, y) in enumerate(others)}}
    d = math.log(a / b)  # the two swapped pairs tie: |d| each
    exact = stats.wilcoxon_p([d, -d, *(math.log(x / y) for x, y in others)])
    assert compare_pairs(sampler, base)["p_value"] == exact


def test_p_is_never_below_the_floor_of_the_nonzero_differences():
    for differences in _cases():
        m = stats.nonzero_count(differences)
        assert stats.wilcoxon_p(differences) >= stats.smallest_exact_p(m) * (1 - 1e-12)


def test_no_test_without_two_differences_or_with_only_zeros():
    assert math.isnan(stats.wilcoxon_p([0.3]))
    assert math.isnan(stats.wilcoxon_p([0.0, 0.0, 0.0]))
    assert stats.wilcoxon_p([0.0, 0.0, 0.3]) == 1.0  # one non-zero difference: p = 2/2


def test_large_samples_use_the_tie_corrected_normal_approximation():
    rng = np.random.default_rng(3)
    d = np.round(rng.normal(0.1, 1, size=stats.EXACT_MAX_N + 100), 1)  # ties and zeros
    nonzero = d[d != 0]
    assert len(nonzero) > stats.EXACT_MAX_N
    ranks = np.array(_average_ranks(list(np.abs(nonzero))))
    w = ranks[nonzero > 0].sum()
    z = (w - ranks.sum() / 2) / math.sqrt(np.sum(ranks**2) / 4)
    expected = math.erfc(abs(z) / math.sqrt(2))
    assert stats.wilcoxon_p(d) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    "differences, pairs, floor",
    [
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 6, 2 / 64),
        ([0.0, 0.2, 0.3, 0.4, 0.5, 0.6], 5, 0.0625),  # 6 pairs, one zero: not 0.031
        ([0.0, 0.0, 0.3, 0.3, 0.3, 0.3, 0.3], 5, 0.0625),
        ([0.0, 0.0, 0.0], 0, 1.0),
    ],
)
def test_floor_counts_the_nonzero_differences(differences, pairs, floor):
    assert stats.nonzero_count(differences) == pairs
    assert stats.smallest_exact_p(stats.nonzero_count(differences)) == pytest.approx(floor)
    if any(differences):  # all of one sign: the floor is reached
        assert stats.wilcoxon_p(differences) == pytest.approx(floor, rel=1e-12)


def test_t_interval_formula():
    low, high = stats.t_mean_ci([1.0, 2.0, 3.0])
    half = 4.302652729749464 * 1.0 / math.sqrt(3)  # t(0.975, 2) · s / √n
    assert (low, high) == pytest.approx((2 - half, 2 + half), rel=1e-12)
    assert stats.t_mean_ci([2.0, 2.0]) == (2.0, 2.0)
    assert stats.t_mean_ci([2.0]) is None


@pytest.mark.parametrize("n", [3, 5, 10])
def test_t_interval_covers_the_mean_95_percent_of_the_time(n):
    """Normal log ratios (mean -0.3, sd 0.5): coverage within 3 points of 0.95. With 4000
    replications the sampling sd of the coverage is 0.0034, so 3 points is about 9 sd."""
    rng = np.random.default_rng(n)
    mean, reps = -0.3, 4000
    samples = rng.normal(mean, 0.5, size=(reps, n))
    covered = 0
    for sample in samples:
        low, high = stats.t_mean_ci(sample)
        covered += low <= mean <= high
    assert abs(covered / reps - 0.95) <= 0.03, covered / reps


def test_geometric_interval_formula():
    """exp(mean(log x) ± t(0.975, n - 1) · s_log / √n), the geometric std exp(s_log)."""
    values = [1e-4, 1e-3, 1.5]
    logs = np.log(values)
    center, spread, (low, high) = stats.geometric_mean_ci(values)
    half = 4.302652729749464 * logs.std(ddof=1) / math.sqrt(3)  # t(0.975, 2) · s / √n
    assert center == pytest.approx(math.exp(logs.mean()), rel=1e-12)
    assert spread == pytest.approx(math.exp(logs.std(ddof=1)), rel=1e-12)
    assert (low, high) == pytest.approx(np.exp([logs.mean() - half, logs.mean() + half]), rel=1e-9)
    assert 0 < low < center < high
    assert stats.geometric_mean_ci([2.0, 2.0]) == (2.0, 1.0, (2.0, 2.0))
    one = stats.geometric_mean_ci([2.0])
    assert one[0] == 2.0 and math.isnan(one[1]) and one[2] is None
    with pytest.raises(ValueError):
        stats.geometric_mean_ci([1.0, 0.0])


@pytest.mark.parametrize("n", [2, 3, 5])
def test_geometric_interval_covers_the_median_of_log_normal_values(n):
    """Log-normal values (median 1e-2, log sd 1): the interval covers the median 95 % of the
    time (within 3 points, about 9 sd of 4000 replications), and its low bound is never <= 0."""
    rng = np.random.default_rng(n)
    median, reps = 1e-2, 4000
    covered = 0
    for sample in np.exp(rng.normal(math.log(median), 1.0, size=(reps, n))):
        _, _, (low, high) = stats.geometric_mean_ci(sample)
        assert low > 0
        covered += low <= median <= high
    assert abs(covered / reps - 0.95) <= 0.03, covered / reps
