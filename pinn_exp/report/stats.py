"""The report's statistics: bootstrap confidence intervals of a mean and the Wilcoxon
signed-rank test, both deterministic (the bootstrap's random generator has a fixed seed)."""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
#: the bootstrap's resamples and seed: the same runs always give the same interval
N_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
#: significance level of the statements in the summary
ALPHA = 0.05

# scipy >= 1.15 takes the generator as ``rng``; older releases as ``random_state``
_RNG_KEYWORD = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def bootstrap_mean_ci(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval of the mean of ``values``.

    ``scipy.stats.bootstrap`` with ``N_RESAMPLES`` resamples drawn by a generator seeded with
    ``BOOTSTRAP_SEED``, so the interval is the same on every call with the same values.

    Args:
        values: the sample (NaN not allowed).
        confidence: the confidence level.

    Returns:
        ``(low, high)``, or None for fewer than two values.
    """
    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return None
    if np.all(data == data[0]):  # every resample has the same mean
        return float(data[0]), float(data[0])
    result = stats.bootstrap(
        (data,),
        np.mean,
        n_resamples=N_RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        **{_RNG_KEYWORD: np.random.default_rng(BOOTSTRAP_SEED)},
    )
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (``scipy.stats.wilcoxon``).

    scipy uses the exact distribution for small samples without zeros or ties, the normal
    approximation otherwise; zero differences are dropped (``zero_method="wilcox"``).

    Args:
        differences: the paired differences (here the log error ratios).

    Returns:
        The p-value; NaN for fewer than two differences or when all are zero.
    """
    data = np.asarray(differences, dtype=float)
    if len(data) < 2 or not np.any(data != 0):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's notes on ties and small samples
        try:
            p = float(stats.wilcoxon(data).pvalue)
        except ValueError:
            return math.nan
    return p if math.isfinite(p) else math.nan


def smallest_exact_p(n: int) -> float:
    """The smallest p-value a two-sided exact Wilcoxon signed-rank test can give with ``n``
    pairs: all differences of one sign, probability 2 / 2**n.

    Args:
        n: the number of pairs (non-zero differences).

    Returns:
        ``min(1, 2 ** (1 - n))``; 1 for ``n < 1``.
    """
    return 1.0 if n < 1 else min(1.0, 2.0 ** (1 - n))
