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

from pinn_exp.io import record
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
    # a boolean is not a number here (``true`` would count as 1.0): listed in ``not_finite``
    values = frame[column].map(lambda v: None if isinstance(v, (bool, np.bool_)) else v)
    return pd.to_numeric(values, errors="coerce").astype(float)


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


def _is_number(value) -> bool:
    """True for an int or a float (a boolean is not a number)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_fields() -> set[str]:
    """The record's fields that must hold a number: the registered metrics, memory and times."""
    return set(registry.METRICS) | {c for c in record.columns() if record.unit(c)}


def not_finite_fields(metrics: dict) -> str | None:
    """The record's values that are not finite numbers, comma-separated; None when there are
    none: scalar fields that hold NaN or an infinity; in an ok record, the registered metrics
    recorded as null (every ok run evaluates them; the runner writes a non-finite value as
    null); a registered metric, memory or time that holds something other than a number (a
    string, a boolean); and each per-round value that is not a finite number, as
    ``NAME_per_round[r]``. Values the report derives (``fluctuation``) are not the record's
    and not listed."""
    derived = set(registry.HISTORY_METRICS)
    numeric_fields = _numeric_fields()
    names = [
        k
        for k, v in metrics.items()
        if k not in derived
        and (
            (isinstance(v, float) and not math.isfinite(v))
            or (k in numeric_fields and v is not None and not _is_number(v))
        )
    ]
    if metrics.get("status") == "ok":
        names += [k for k in registry.METRICS if k in metrics and metrics[k] is None]
    for field in record.per_round_fields():
        values = metrics.get(field)
        if isinstance(values, list):
            names += [
                f"{field}[{r}]"
                for r, v in enumerate(values)
                if not (_is_number(v) and math.isfinite(v))
            ]
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
    if NOT_FINITE in frame.columns:  # dtype: an empty list is float64, which | refuses
        out |= np.array(
            [isinstance(s, str) and column in s.split(", ") for s in frame[NOT_FINITE]], dtype=bool
        )
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
