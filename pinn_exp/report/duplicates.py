"""Duplicate runs: two ok runs of one setting (``settings.setting_keys``) and one seed are
duplicates; the newest record counts, the others get ``duplicate_of``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pinn_exp.io import record
from pinn_exp.report.settings import cell_label, setting_keys

#: the run whose result counts in place of this one (same setting, same seed)
DUPLICATE_OF = "duplicate_of"


def record_time(run_dir: Path) -> float:
    """The modification time of the run's record (NaN without one)."""
    try:
        return (run_dir / record.METRICS).stat().st_mtime
    except OSError:
        return math.nan


def mark_duplicates(
    frame: pd.DataFrame, ages: Sequence[float], has_config: Sequence[bool] | None = None
) -> list[str | None]:
    """For every ok run of the same setting and seed as a newer ok run: that run's
    ``run_dir``; None for the others. Such a run is not counted (``ok_runs`` leaves it out).

    Args:
        frame: the runs.
        ages: the time of each row's record (a later one counts); NaN sorts first.
        has_config: per row, whether its config was read (a run without one is never called
            a duplicate: its setting is unknown); all True when None.

    Returns:
        One value per row of ``frame``.
    """
    out: list[str | None] = [None] * len(frame)
    if frame.empty or "status" not in frame.columns or "seed" not in frame.columns:
        return out
    keys = [*setting_keys(frame), "seed"]
    known = list(has_config) if has_config is not None else [True] * len(frame)
    known += [False] * (len(frame) - len(known))  # rows of jobs that never started
    groups: dict[tuple, list[int]] = {}
    for i, (status, row) in enumerate(zip(frame["status"], frame[keys].itertuples(index=False))):
        if status == "ok" and known[i] and cell_label(row[-1]) is not None:  # a known seed
            groups.setdefault(tuple(cell_label(v) for v in row), []).append(i)
    run_dirs = frame["run_dir"].astype(str).tolist() if "run_dir" in frame.columns else []
    for members in groups.values():
        if len(members) < 2:
            continue
        newest = max(members, key=lambda i: (np.nan_to_num(ages[i], nan=-np.inf), i))
        for i in members:
            if i != newest:
                out[i] = run_dirs[newest] if run_dirs else str(newest)
    return out
