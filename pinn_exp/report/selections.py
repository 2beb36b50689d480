"""Selections from the runs' frame: the ok runs that count, a column as numbers, the values
that are not finite, the memory metric to show and the status counts.

A record's values that are not finite numbers (NaN or infinite, also a registered metric that
an ok run recorded as null, the runner's spelling of a non-finite value) are named per run in
``not_finite``; the tables and the paired comparison leave them out and say so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pinn_exp.metrics import registry
from pinn_exp.report.duplicates import DUPLICATE_OF
from pinn_exp.report.run_files import STATUS_ORDER

#: the record's fields whose value is not a finite number, comma-separated (None: all finite)
NOT_FINITE = "not_finite"


def numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` as floats (non-numbers become NaN; all NaN when the column is absent).

    Args:
        frame: the runs.
        column: a column name.

    Returns:
        A float series aligned with ``frame``.
    """
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def ok_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with status ``ok`` that count: duplicates (``duplicate_of`` set) left out.

    Args:
        frame: the runs.

    Returns:
        The rows whose ``status`` is ``ok`` (none when there is no status column).
    """
    if "status" not in frame.columns:
        return frame.iloc[0:0]
    keep = frame["status"] == "ok"
    if DUPLICATE_OF in frame.columns:
        keep &= frame[DUPLICATE_OF].isna()
    return frame[keep]


def not_finite_fields(metrics: dict) -> str | None:
    """The record's scalar fields that hold NaN or an infinity, and, in an ok record, the
    registered metrics recorded as null (every ok run evaluates them; the runner writes a
    non-finite value as null), comma-separated; None when there are none. Values the report
    derives (``fluctuation``) are not the record's and not listed."""
    derived = set(registry.HISTORY_METRICS)
    names = [
        k
        for k, v in metrics.items()
        if k not in derived and isinstance(v, float) and not math.isfinite(v)
    ]
    if metrics.get("status") == "ok":
        names += [k for k in registry.METRICS if k in metrics and metrics[k] is None]
    return ", ".join(names) if names else None


def not_finite(frame: pd.DataFrame, column: str) -> pd.Series:
    """Which rows recorded a value of ``column`` that is not a finite number.

    Args:
        frame: the runs.
        column: a column name.

    Returns:
        A boolean series aligned with ``frame``: the rows whose ``not_finite`` names
        ``column``, and any row whose value is infinite.
    """
    out = np.isinf(numeric(frame, column).to_numpy())
    if NOT_FINITE in frame.columns:
        out |= np.array([isinstance(s, str) and column in s.split(", ") for s in frame[NOT_FINITE]])
    return pd.Series(out, index=frame.index, dtype=bool)


def memory_metric(frame: pd.DataFrame) -> str:
    """``peak_gpu_mem_mb`` when any ok run has a value for it; else the CPU peak over the
    run's starting RSS (``peak_cpu_rss_increase_mb``: what the run itself allocated, without
    the interpreter and libraries it started with) where the runs recorded it; else, for
    records older than that field, ``peak_cpu_rss_mb``.

    Args:
        frame: the runs.

    Returns:
        The column name.
    """
    ok = ok_runs(frame)
    if numeric(ok, "peak_gpu_mem_mb").notna().any():
        return "peak_gpu_mem_mb"
    if numeric(ok, "peak_cpu_rss_increase_mb").notna().any():
        return "peak_cpu_rss_increase_mb"
    return "peak_cpu_rss_mb"


def status_counts(frame: pd.DataFrame) -> str:
    """``"ok: 6, failed: 1, ..."`` in the order ok, failed, diverged, oom, incomplete, others.

    Args:
        frame: the runs.

    Returns:
        The counts as one line.
    """
    counts = frame["status"].astype(str).value_counts().to_dict() if len(frame) else {}
    order = [s for s in STATUS_ORDER if s in counts] + sorted(set(counts) - set(STATUS_ORDER))
    return ", ".join(f"{s}: {counts[s]}" for s in order)
