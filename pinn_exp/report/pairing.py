"""How the paired comparison pairs runs and compares one sampler with the baseline.

Each run belongs to an arm (its sampler, with the sampler keys that vary among that sampler's
runs) and has a pairing label (its seed and the values of the other pairing keys); repeated
runs of one label count by their geometric mean. ``compare_pairs`` gives the statistics of the
ratios of one arm's values to the baseline's, label by label (see ``paired``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pinn_exp.io import record
from pinn_exp.metrics import registry
from pinn_exp.report.runs import ignored, numeric, ok_runs, time_kinds
from pinn_exp.report.stats import is_significant, nonzero_count, t_mean_ci, wilcoxon_p
from pinn_exp.report.tables import group_labels, norm_label, sort_key


def is_sampler_key(column: str) -> bool:
    """Whether ``column`` is the sampler or one of its keys (``sampler.ratio``)."""
    return column == "sampler" or column.startswith("sampler.")


def usable_runs(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The ok runs with a finite, positive ``metric`` (a ratio needs both).

    Args:
        frame: the runs.
        metric: the compared column.

    Returns:
        Those rows, with the value as float in column ``_value``.
    """
    ok = ok_runs(frame)
    values = numeric(ok, metric)
    keep = values.notna() & np.isfinite(values) & (values > 0)
    return ok[keep].assign(_value=values[keep])


def run_arms(runs: pd.DataFrame, sampler_keys: list[str]) -> pd.Series:
    """Each run's arm: its sampler, with the sampler keys that vary among that sampler's runs
    (``rsmote (sampler.ratio=0.3)``), so variants of one sampler are not mixed."""
    names = pd.Series([str(norm_label(v)) for v in runs["sampler"]], index=runs.index, dtype=object)
    arms = names.copy()
    for name in names.unique():
        mine = runs[names == name]
        varying = [k for k in sampler_keys if len({norm_label(v) for v in mine[k]}) > 1]
        if varying:
            labels = group_labels(mine, varying)
            arms[mine.index] = [
                f"{name} ({', '.join(f'{k}={v}' for k, v in zip(varying, label))})"
                for label in labels
            ]
    return arms


def shared_labels(sampler: pd.DataFrame, baseline: pd.DataFrame, keys: list[str]) -> set[tuple]:
    """The pairing labels where a time or memory value cannot be compared: the sampler's or
    the baseline's run of that label is a member of a batched ensemble whose time and memory
    are the ensemble's (``runs.time_kinds``: shared), one value for all its members, so its
    pairs would count that value once per member."""
    shared = set()
    for runs in (sampler, baseline):
        for label, kind in zip(group_labels(runs, keys), time_kinds(runs)):
            if kind[0] == "shared":
                shared.add(label)
    common = set(group_labels(sampler, keys)) & set(group_labels(baseline, keys))
    return shared & common


def pair_label(label: tuple) -> str:
    """The text of a pair's label: ``0`` for seed 0, ``0, 2000`` with more keys."""
    return ", ".join(str(v) for v in label)


def values_by_pair(runs: pd.DataFrame, keys: list[str]) -> dict[tuple, float]:
    """The value of each pairing label; repeated runs of one label by their geometric mean (a
    single run by its value as recorded: exp(log(x)) may differ from x in the last digit, and
    equal ratios must stay equal for the test's ties)."""
    values: dict[tuple, list[float]] = {}
    for label, value in zip(group_labels(runs, keys), runs["_value"]):
        values.setdefault(label, []).append(float(value))
    return {
        label: v[0] if len(v) == 1 else math.exp(float(np.mean(np.log(v))))
        for label, v in values.items()
    }


def _log_ratio(a: float, b: float) -> float:
    """log(a / b), exactly antisymmetric: log(a / b) and -log(b / a) differ in the last digit
    half of the time (the rounding of the quotient), which broke the tie of two pairs whose
    errors are swapped and changed the test's p. Taken from the quotient that is >= 1, so
    equal quotients stay equal too (and a = b gives exactly 0)."""
    return math.log(a / b) if a >= b else -math.log(b / a)


def better_direction(metric: str) -> str | None:
    """Which direction of ``metric`` is better: the registry's ``better`` for a metric or
    history metric, ``"lower"`` for memory and times (``record.unit``), None (neither, or not
    known: a column the report cannot judge) otherwise.

    Args:
        metric: the compared column.

    Returns:
        ``registry.LOWER``, ``registry.HIGHER`` or None.
    """
    if metric in registry.METRICS:
        return registry.METRICS[metric].better
    if metric in registry.HISTORY_METRICS:
        return registry.HISTORY_METRICS[metric].better
    return registry.LOWER if record.unit(metric) else None


def compare_pairs(
    sampler: dict[tuple, float], baseline: dict[tuple, float], better: str | None = "lower"
) -> dict:
    """The statistics of one sampler against the baseline, paired by label.

    Args:
        sampler: the sampler's value per pairing label.
        baseline: the baseline's value per pairing label.
        better: ``"higher"`` counts as wins the ratios above 1; otherwise (``"lower"``, or None
            for a metric without a better direction) those below 1.

    Returns:
        ``pairs``, ``nonzero`` (pairs whose ratio is not exactly 1: those the Wilcoxon test
        uses), ``unpaired_sampler``, ``unpaired_baseline``, ``ratios`` (label -> ratio, in
        label order), ``geo_mean_ratio``, ``ci_low``, ``ci_high`` (the 95 % t-interval of the
        mean log ratio, exponentiated; NaN below 2 pairs), ``wins`` (ratios < 1) and
        ``p_value`` (exact; NaN below 2 pairs or when every ratio is 1) and ``significant``
        (``is_significant`` at ``ALPHA``).
    """
    common = sorted(set(sampler) & set(baseline), key=sort_key)
    ratios = {label: sampler[label] / baseline[label] for label in common}
    logs = np.array([_log_ratio(sampler[label], baseline[label]) for label in common], dtype=float)
    interval = t_mean_ci(logs)
    p_value = wilcoxon_p(logs)
    return {
        "pairs": len(common),
        "nonzero": nonzero_count(logs),
        "unpaired_sampler": len(set(sampler) - set(baseline)),
        "unpaired_baseline": len(set(baseline) - set(sampler)),
        "ratios": ratios,
        "geo_mean_ratio": math.exp(float(np.mean(logs))) if len(logs) else math.nan,
        "ci_low": math.exp(interval[0]) if interval else math.nan,
        "ci_high": math.exp(interval[1]) if interval else math.nan,
        "wins": int(np.sum(logs > 0 if better == registry.HIGHER else logs < 0)),
        "p_value": p_value,
        "significant": is_significant(p_value, nonzero_count(logs)),
    }


def pairing_keys(
    part: pd.DataFrame, configs: list[str], group_keys: list[str], given: list[str] | None
) -> list[str]:
    """The keys besides ``seed`` that pair runs within one group."""
    if given is not None:
        return [k for k in given if k != "seed"]
    return [
        c
        for c in configs
        if c != "seed"
        and c not in group_keys
        and not is_sampler_key(c)
        and not ignored(c)  # keys that change nothing a run computes (runs.IGNORED)
        and len({norm_label(v) for v in part[c]}) > 1
    ]


def seed_count(ratios: dict[tuple, float]) -> int:
    """The number of distinct seeds among the pairs (the first value of each label)."""
    return len({label[0] for label in ratios})
