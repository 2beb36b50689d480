"""The report's statistics: the Student-t confidence interval of a mean (of the values, or of
their logs for a geometric mean) and the two-sided Wilcoxon signed-rank test with its exact
sign-flip distribution, with what its exact p can reach (``smallest_exact_p``,
``pairs_needed``) and the verdict built on it (``is_significant``).

Both are computed here from their formulas (scipy only for the t quantile and the ranks), so
the report gives the same numbers on every supported scipy: before 1.15
``scipy.stats.wilcoxon`` used the normal approximation for tied or zero differences, which
gives p-values below what the exact test can reach at small n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
#: significance level of the statements in the summary
ALPHA = 0.05
#: the most non-zero differences whose exact sign-flip distribution is computed; above, the
#: normal approximation with the tie correction (far beyond the report's numbers of seeds)
EXACT_MAX_N = 400


def t_mean_ci(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Student-t confidence interval of the mean of ``values``.

    ``mean ± t(1 - (1 - confidence) / 2, n - 1) · s / √n`` with ``s`` the sample standard
    deviation (ddof=1). Exact for normal samples at every n; unlike a bootstrap of the mean,
    which only resamples the values that ran, it widens as n shrinks (a percentile bootstrap
    covers the mean about 76 % of the time at n = 3, 84 % at n = 5).

    Args:
        values: the sample (NaN not allowed).
        confidence: the confidence level.

    Returns:
        ``(low, high)``, or None for fewer than two values.
    """
    data = np.asarray(values, dtype=float)
    n = len(data)
    if n < 2:
        return None
    if np.all(data == data[0]):  # no spread (the mean's rounding aside): the interval is a point
        return float(data[0]), float(data[0])
    mean = float(np.mean(data))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * float(np.std(data, ddof=1))
    half /= math.sqrt(n)
    return mean - half, mean + half


def geometric_mean_ci(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float, tuple[float, float] | None]:
    """Geometric mean, geometric standard deviation and the confidence interval of the
    geometric mean of positive ``values``: the Student-t interval of the mean of their logs,
    exponentiated (``scipy.stats.gmean``, ``gstd``, ``t.interval``).

    For quantities spread by a factor rather than an amount (errors, times, memory) this is
    the interval of the typical value; it never reaches zero or below, where the t-interval of
    the arithmetic mean of a few skewed values can.

    Args:
        values: the sample, every value finite and positive.
        confidence: the confidence level.

    Returns:
        ``(geometric mean, geometric std, (low, high))``: the geometric std is the factor
        ``exp(s)`` of the logs' standard deviation (ddof=1), NaN for one value; the interval is
        None for fewer than two values.

    Raises:
        ValueError: a value is not finite and positive.
    """
    data = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(data) & (data > 0)):
        raise ValueError("the geometric mean needs finite positive values")
    mean = float(stats.gmean(data))
    if len(data) < 2:
        return mean, math.nan, None
    if np.all(data == data[0]):  # no spread: the interval is a point
        return float(data[0]), 1.0, (float(data[0]), float(data[0]))
    logs = np.log(data)
    low, high = stats.t.interval(confidence, len(data) - 1, np.mean(logs), stats.sem(logs))
    return mean, float(stats.gstd(data)), (math.exp(low), math.exp(high))


def t_quantile(n: int, confidence: float = CONFIDENCE) -> float:
    """The Student-t quantile of a ``confidence`` interval from ``n`` values (``n - 1`` degrees
    of freedom): the half-width is this many standard errors.

    Args:
        n: the number of values (at least 2).
        confidence: the confidence level.

    Returns:
        ``t(1 - (1 - confidence) / 2, n - 1)``, 12.7 at n = 2 for 95 %.
    """
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1))


def nonzero_count(differences: Sequence[float]) -> int:
    """The number of non-zero differences, those the signed-rank test uses.

    Args:
        differences: the paired differences.

    Returns:
        How many are not exactly zero.
    """
    return int(np.count_nonzero(np.asarray(differences, dtype=float)))


def _signed_rank_counts(doubled_ranks: np.ndarray) -> np.ndarray:
    """How many of the 2**n sign patterns give each value of the doubled positive-rank sum.

    Entry ``s`` is the number of subsets of the (doubled, integer) ranks that sum to ``s``:
    each rank's sign is flipped independently with probability 1/2 under the null hypothesis.
    Counted in float64: exact up to 2**53, to 16 digits and without overflow far beyond
    ``EXACT_MAX_N``.
    """
    counts = np.zeros(int(doubled_ranks.sum()) + 1)
    counts[0] = 1.0
    top = 0
    for rank in doubled_ranks.astype(int):
        counts[rank : top + rank + 1] += counts[: top + 1].copy()
        top += rank
    return counts


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences, exact for ties and zeros.

    Zero differences are dropped (``zero_method="wilcox"``: a pair that did not change says
    nothing about the direction); the others are ranked by absolute value, tied values sharing
    their average rank. The p-value is that of the exact sign-flip (permutation) distribution
    of the sum of positive ranks W+ over all 2**m sign patterns of the m non-zero differences:
    ``min(1, 2 · min(P(W+ <= w), P(W+ >= w)))`` (the distribution is symmetric). Above
    ``EXACT_MAX_N`` non-zero differences the normal approximation with the tie correction is
    used instead.

    Args:
        differences: the paired differences (here the log error ratios).

    Returns:
        The p-value; NaN for fewer than two differences or when all are zero.
    """
    data = np.asarray(differences, dtype=float)
    if len(data) < 2 or not np.all(np.isfinite(data)):
        return math.nan
    data = data[data != 0]
    m = len(data)
    if m == 0:
        return math.nan
    doubled = np.rint(2 * stats.rankdata(np.abs(data))).astype(int)  # average ranks: k / 2
    w_plus = int(doubled[data > 0].sum())
    total = int(doubled.sum())
    if m > EXACT_MAX_N:
        return _normal_p(w_plus, total, doubled)
    counts = _signed_rank_counts(doubled)
    below = counts[: w_plus + 1].sum()
    above = counts[w_plus:].sum()
    return float(min(1.0, 2 * min(below, above) / 2.0**m))


def _normal_p(w_plus: int, total: int, doubled: np.ndarray) -> float:
    """Two-sided normal approximation of the signed-rank test on doubled ranks (tie-corrected:
    the variance of W+ is the sum of the squared ranks over 4, for ranks and sums doubled)."""
    sd = math.sqrt(float(np.sum(doubled.astype(float) ** 2)) / 4)
    z = (w_plus - total / 2) / sd
    return float(min(1.0, 2 * stats.norm.sf(abs(z))))


def smallest_exact_p(n: int) -> float:
    """The smallest p-value a two-sided exact Wilcoxon signed-rank test can give with ``n``
    non-zero differences: all of one sign, probability 2 / 2**n (ties or not). Zero
    differences are dropped by the test and do not count.

    Args:
        n: the number of non-zero differences (``nonzero_count``).

    Returns:
        ``min(1, 2 ** (1 - n))``; 1 for ``n < 1``.
    """
    return 1.0 if n < 1 else min(1.0, 2.0 ** (1 - n))


def is_significant(p_value: float, nonzero: int, alpha: float = ALPHA) -> bool:
    """Whether a row's difference is called significant: p below ``alpha``, and ``nonzero``
    differences can reach such a p at all (with the exact test they always can when p is
    below ``alpha``; the second condition keeps the verdict from ever contradicting the floor).

    Args:
        p_value: the Wilcoxon p-value (NaN: no test).
        nonzero: the number of pairs whose ratio is not 1.
        alpha: the significance level.

    Returns:
        True when significant.
    """
    return bool(math.isfinite(p_value) and p_value < alpha and smallest_exact_p(nonzero) < alpha)


def pairs_needed(alpha: float = ALPHA) -> int:
    """The fewest pairs with which a two-sided exact Wilcoxon test can reach p < ``alpha``
    (pairs whose ratio is not 1: the test drops the others).

    Args:
        alpha: the significance level.

    Returns:
        The smallest n with 2 / 2**n < alpha (6 at 5 %).
    """
    n = 1
    while smallest_exact_p(n) >= alpha:
        n += 1
    return n
