"""Finds the runs below one or more folders and reads them into one table, one row per run.

Every folder that holds ``metrics.json``, ``config_resolved.yaml`` or ``.hydra/config.yaml`` is a
run (``discovery``). A run without a readable ``metrics.json`` is listed with status
``incomplete`` (``run_files``), so the report can be made at any time, also while a sweep is
still running or after parts of it failed; so are the jobs of a sweep that never started.

Two runs are the same *setting* when they agree on every key of ``setting_keys``
(``settings``); a table cell pools only runs of one setting. Two ok runs of one setting and
one seed are duplicates: the newest record counts, the others get ``duplicate_of``
(``duplicates``). Values that are not finite are named per run in ``not_finite``
(``selections``).

The fields a batched ensemble adds (``batched``, ``ensemble_size``, ``time_shared``) are read
where present; a record without them (an older run) is a single run.

This module builds the frame (``collect_runs``) and is the one import of the names that read
it, wherever they are defined.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from pinn_exp.io import record
from pinn_exp.report.discovery import (
    display_path,
    expected_jobs,
    find_run_dirs,
    is_run_dir,
    not_started,
)
from pinn_exp.report.duplicates import DUPLICATE_OF, mark_duplicates, record_time
from pinn_exp.report.run_files import (
    FINAL_N,
    INCOMPLETE,
    STATUS_ORDER,
    final_n_points,
    per_round_values,
    read_record_and_config,
)
from pinn_exp.report.selections import (
    NOT_FINITE,
    memory_metric,
    not_finite,
    not_finite_fields,
    numeric,
    ok_runs,
    status_counts,
)
from pinn_exp.report.settings import (
    COMPUTATION,
    CONFIG_COLUMNS,
    IGNORED,
    SETTING_NAMES,
    VMAP,
    cell_label,
    config_columns,
    ignored,
    setting_keys,
    time_kinds,
    varying,
)

__all__ = [
    "COMPUTATION",
    "CONFIG_COLUMNS",
    "DUPLICATE_OF",
    "FINAL_N",
    "IGNORED",
    "INCOMPLETE",
    "NOT_FINITE",
    "SETTING_NAMES",
    "STATUS_ORDER",
    "VMAP",
    "cell_label",
    "collect_runs",
    "config_columns",
    "expected_jobs",
    "final_n_points",
    "find_run_dirs",
    "ignored",
    "is_run_dir",
    "mark_duplicates",
    "memory_metric",
    "not_finite",
    "numeric",
    "ok_runs",
    "ordered_union",
    "per_round_values",
    "read_record_and_config",
    "setting_keys",
    "status_counts",
    "time_kinds",
    "varying",
]

log = logging.getLogger(__name__)

TARGET = "_target_"


def _read_or_incomplete(run_dir: Path) -> tuple[dict, dict]:
    """``read_record_and_config`` that turns any unexpected error into an incomplete row."""
    try:
        return read_record_and_config(run_dir)
    except Exception as exc:  # one bad run must never stop the report
        log.warning("cannot read run %s: %s", run_dir, exc)
        return {"status": INCOMPLETE, "error": f"cannot read run: {exc}"}, {}


def ordered_union(keys: Iterable[str], start: Sequence[str] = ()) -> list[str]:
    """``start`` followed by the other ``keys`` in order of first appearance.

    Args:
        keys: names, possibly repeated.
        start: names that come first.

    Returns:
        The names without repeats.
    """
    return list(dict.fromkeys([*start, *keys]))


def _merge(metrics: dict, config: dict) -> dict:
    """One row: record values, and config values where a record field of that name is missing."""
    row = dict(config)
    row.update({k: v for k, v in metrics.items() if v is not None or k not in config})
    return row


def _record_columns() -> list[str]:
    """The leading columns of the runs' frame: ``run_dir``, ``status``, the record's columns
    with ``final_n_points`` after ``n_points``."""
    out = ["run_dir", "status"]
    for column in record.columns():
        out.append(column)
        if column == "n_points":
            out.append(FINAL_N)
    return out


def collect_runs(dirs: Sequence[Path], relative_to: Path | None = None) -> pd.DataFrame:
    """One row per run below ``dirs``, finished, failed or incomplete.

    Args:
        dirs: folders to search for runs.
        relative_to: ``run_dir`` is given relative to this folder; absolute when None.

    Returns:
        Columns ``run_dir``, ``status``, the record's columns (``record.columns()``; missing
        values where an older record lacks a field; ``final_n_points`` after ``n_points``) and
        its other scalars, the per-round lists (``record.per_round_fields()``), then the
        flattened config columns (``pde.dim``, ``sampler.ratio``, ...), whose names are in
        ``frame.attrs["config_columns"]``, and ``duplicate_of`` (see ``mark_duplicates``).
    """
    paths = find_run_dirs(Path(d) for d in dirs)
    loaded = [(path, *_read_or_incomplete(path)) for path in paths]
    per_round = record.per_round_fields()
    metric_cols = (
        ordered_union((k for _, m, _ in loaded for k in m if k not in per_round), _record_columns())
        + per_round
    )
    config_keys = ordered_union(k for _, _, c in loaded for k in c)
    config_cols = [k for k in config_keys if k not in metric_cols]
    rows = [
        {**_merge(metrics, config), "run_dir": display_path(path, relative_to)}
        for path, metrics, config in loaded
    ]
    # a sweep's jobs that never started (a killed sweep, a crashed launcher) are listed too
    for folder in dirs:
        rows += not_started(Path(folder), relative_to)
    extra = [k for k in ordered_union(k for r in rows for k in r) if k not in metric_cols]
    config_cols += [k for k in extra if k not in config_cols]
    frame = _integer_columns(pd.DataFrame(rows, columns=metric_cols + config_cols), rows)
    frame = _drop_implied_targets(frame)
    frame.attrs[CONFIG_COLUMNS] = [k for k in config_keys if k in frame.columns]
    if "batched" in frame.columns and (frame["batched"] == VMAP).any():
        frame[COMPUTATION] = [VMAP if b == VMAP else None for b in frame["batched"]]
    ages = [record_time(path) for path in paths] + [math.nan] * (len(frame) - len(paths))
    frame[DUPLICATE_OF] = mark_duplicates(frame, ages, has_config=[bool(c) for *_, c in loaded])
    frame[NOT_FINITE] = [not_finite_fields(m) for _, m, _ in loaded] + [None] * (
        len(frame) - len(loaded)
    )
    return frame


def _drop_implied_targets(frame: pd.DataFrame) -> pd.DataFrame:
    """Drops the ``GROUP._target_`` columns whose class the option names already tell (the
    same class for every run of one ``sampler``/``pde`` option, or for every run); a class
    overridden on the command line (``pde._target_=my.Pde``) stays a column."""
    drop = []
    for column in [c for c in frame.columns if str(c).endswith(f".{TARGET}")]:
        group = str(column)[: -len(TARGET) - 1]
        by = [group] if group in SETTING_NAMES and group in frame.columns else []
        if not varying(frame, [column], by):
            drop.append(column)
    return frame.drop(columns=drop)


def _integer_columns(frame: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    """Columns holding only integers (and gaps) as nullable ``Int64`` instead of floats."""
    for column in frame.columns:
        values = [row[column] for row in rows if row.get(column) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            frame[column] = frame[column].astype("Int64")
    return frame
