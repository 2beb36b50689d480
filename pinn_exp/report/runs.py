"""Finds the runs below one or more folders and reads them into one table, one row per run.

Every folder that holds ``metrics.json``, ``config_resolved.yaml`` or ``.hydra/config.yaml`` is a
run. A run without a readable ``metrics.json`` is listed with status ``incomplete``, so the
report can be made at any time, also while a sweep is still running or after parts of it failed;
so are the jobs of a sweep that never started. The record's fields and file names come from
:mod:`pinn_exp.io.record`; records written before a field existed read as missing values there.

Two runs are the same *setting* when they agree on every key of ``setting_keys`` (the PDE and
sampler options, every config key except ``seed`` and the keys that do not change what a run
computes, ``IGNORED``, and whether the run was a member of a vectorized ensemble,
``computation``); a table cell pools only runs of one setting. Two ok runs of one setting and
one seed are duplicates: the newest record counts, the others get ``duplicate_of``.

A record's values that are not finite numbers (NaN or infinite, also a registered metric that
an ok run recorded as null, the runner's spelling of a non-finite value) are named per run in
``not_finite``; the tables and the paired comparison leave them out and say so.

The fields a batched ensemble adds (``batched``, ``ensemble_size``, ``time_shared``) are read
where present; a record without them (an older run) is a single run.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from omegaconf import OmegaConf

from pinn_exp.io import record
from pinn_exp.io.records import read_json
from pinn_exp.metrics import registry

log = logging.getLogger(__name__)

CONFIG_FILES = (record.CONFIG, record.HYDRA_CONFIG)
HYDRA_FILE = ".hydra/hydra.yaml"
INCOMPLETE = "incomplete"
#: the order of the status counts: the record's final statuses, then runs without one
STATUS_ORDER = (*(s for s in record.STATUSES if s != "running"), INCOMPLETE)
HYDRA_SPECIAL_KEYS = {"_partial_", "_convert_", "_recursive_", "_args_"}
# Record columns an incomplete run can take from its config: column -> dotted config key.
CONFIG_FALLBACKS = {"dim": "pde.dim", "ratio": "sampler.ratio"}
#: ``frame.attrs`` key of the flattened config keys of the runs (set by ``collect_runs``)
CONFIG_COLUMNS = "config_columns"
#: config keys (or prefixes ending in ".") that never make two runs different settings
IGNORED = ("seed", "resume", "progress", "report.", "hydra.")
#: the record's option names that are settings too, ahead of the config keys
SETTING_NAMES = ("pde", "sampler")
#: the size of the collocation set after the last round (RAR-D grows from N/2)
FINAL_N = "final_n_points"
#: the run whose result counts in place of this one (same setting, same seed)
DUPLICATE_OF = "duplicate_of"
#: the record's fields whose value is not a finite number, comma-separated (None: all finite)
NOT_FINITE = "not_finite"
#: ``vmap`` for a member of a vectorized ensemble (record field ``batched``), missing for any
#: other run: a different computation from the single run of its config and seed (float32
#: round-off grows differently), so a setting of its own; a column only when such runs exist
COMPUTATION = "computation"
VMAP = "vmap"
TARGET = "_target_"


# ----------------------------------------------------------------------------- discovery


def is_run_dir(path: Path) -> bool:
    """True when ``path`` holds a metrics file or a Hydra config."""
    return any((path / name).is_file() for name in (record.METRICS, *CONFIG_FILES))


def find_run_dirs(dirs: Iterable[Path]) -> list[Path]:
    """All run folders at or below ``dirs``; hidden folders (``.hydra``) are not searched.

    Args:
        dirs: folders to search.

    Returns:
        The run folders, resolved, sorted and without duplicates.
    """
    found: set[Path] = set()
    for root in dirs:
        for current, subdirs, _files in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            path = Path(current)
            if is_run_dir(path):
                found.add(path.resolve())
                subdirs[:] = []  # a run's own subfolders are not runs
    return sorted(found)


# ----------------------------------------------------------------------------- one run


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _read_metrics(run_dir: Path) -> tuple[dict, str | None]:
    """The metrics record, or an empty dict and the reason the run counts as incomplete."""
    path = run_dir / record.METRICS
    if not path.is_file():
        return {}, f"no {record.METRICS} (run not finished)"
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        return {}, f"unreadable {record.METRICS}: {type(exc).__name__}: {exc}"
    if not isinstance(data, dict):
        return {}, f"unreadable {record.METRICS}: not a JSON object"
    return data, None


def per_round_values(value) -> list[float] | None:
    """A per-round field (``l2_rel_error_per_round``) as a list of floats.

    Args:
        value: the field as read from ``metrics.json``.

    Returns:
        The floats (nulls and non-numbers become NaN), or None when ``value`` is not a list.
    """
    if not isinstance(value, (list, tuple)):
        return None
    out = []
    for item in value:
        try:
            out.append(float(item) if item is not None else math.nan)
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


def _metric_scalars(data: dict) -> dict:
    """The flat part of a metrics record; nested values dropped except the per-round lists."""
    row = {str(k): v for k, v in data.items() if _is_scalar(v)}
    for name in record.per_round_fields():
        row[name] = per_round_values(data.get(name))
    # metrics of the per-round history (``fluctuation``), derived here for every run
    row.update(registry.history_all(row))
    return row


def _read_config_tree(run_dir: Path) -> dict:
    """The first readable config of the run as a nested dict (empty when there is none)."""
    for name in CONFIG_FILES:
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            tree = yaml.safe_load(path.read_text())
        except (OSError, ValueError, yaml.YAMLError) as exc:
            log.warning("cannot read %s: %s", path, exc)
            continue
        if isinstance(tree, dict):
            return tree
    return {}


def flatten_config(tree: dict, prefix: str = "") -> dict:
    """Flattens a nested config into dotted keys, dropping Hydra keys such as ``_target_``.

    Args:
        tree: the nested config.
        prefix: prepended to every key (used in the recursion).

    Returns:
        ``{"pde.dim": 10, "sampler.ratio": 0.45, ...}``; lists become JSON strings. The
        ``_target_`` classes are kept (``sampler._target_``); ``collect_runs`` drops those that
        the option names already tell apart.
    """
    flat: dict = {}
    for key, value in tree.items():
        key = str(key)
        if key in HYDRA_SPECIAL_KEYS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value, default=str)
        else:
            flat[name] = value
    return flat


def _hydra_choices(run_dir: Path) -> dict:
    """``hydra.runtime.choices`` (config group -> option) of the run, if recorded."""
    path = run_dir / HYDRA_FILE
    try:
        tree = yaml.safe_load(path.read_text()) if path.is_file() else None
        choices = tree["hydra"]["runtime"]["choices"]
    except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError):
        return {}
    return choices if isinstance(choices, dict) else {}


def _group_name(group: str, tree: dict, choices: dict) -> str | None:
    """The option chosen for config group ``group`` (``pde``, ``sampler``), best guess."""
    if isinstance(choices.get(group), str):
        return choices[group]
    node = tree.get(group)
    if not isinstance(node, dict):
        return node if isinstance(node, str) else None
    if isinstance(node.get("name"), str):
        return node["name"]
    target = node.get("_target_")
    return str(target).rsplit(".", 1)[-1].lower() if target else None


def _fill_from_config(row: dict, tree: dict, flat: dict, run_dir: Path) -> None:
    """Fills the record columns that an incomplete run lacks from its config."""
    choices = _hydra_choices(run_dir) if tree else {}
    for group in ("pde", "sampler"):
        if row.get(group) is None:
            row[group] = _group_name(group, tree, choices)
    for column, key in CONFIG_FALLBACKS.items():
        if row.get(column) is None and flat.get(key) is not None:
            row[column] = flat[key]


def _last_round_size(path: Path) -> int | None:
    """The number of points of the last ``round_K`` array of a ``collocation.npz``."""
    try:
        with np.load(path) as data:
            rounds = [k for k in data.files if k.startswith("round_") and k[6:].isdigit()]
            if not rounds:
                return None
            return int(data[max(rounds, key=lambda k: int(k[6:]))].shape[0])
    except (OSError, ValueError, EOFError, IndexError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None


def final_n_points(data: dict, run_dir: Path) -> int | None:
    """The size of the collocation set after the run's last round.

    Args:
        data: the run's record.
        run_dir: the run's folder.

    Returns:
        ``n_points`` of the record's last ``round_stats`` entry; for records without it, the
        size of the last round of ``collocation.npz``; None when neither is there.
    """
    stats = data.get("round_stats")
    if isinstance(stats, list) and stats and isinstance(stats[-1], dict):
        size = stats[-1].get("n_points")
        if isinstance(size, int) and not isinstance(size, bool):
            return size
    path = run_dir / record.COLLOCATION
    return _last_round_size(path) if path.is_file() else None


def load_run(run_dir: Path) -> tuple[dict, dict]:
    """Reads one run folder.

    Args:
        run_dir: the run's folder.

    Returns:
        ``(metrics, config)``: the flat record columns (with ``status``; ``incomplete`` and an
        ``error`` message when ``metrics.json`` is missing or unreadable; ``final_n_points``)
        and the flattened config.
    """
    data, problem = _read_metrics(run_dir)
    row = _metric_scalars(data)
    if problem is None:
        row[FINAL_N] = final_n_points(data, run_dir)
    tree = _read_config_tree(run_dir)
    flat = flatten_config(tree)
    if problem is not None:
        row.update(status=INCOMPLETE, error=problem)
        _fill_from_config(row, tree, flat, run_dir)
    elif row.get("status") == "running":  # killed before it could write its final record
        row.update(status=INCOMPLETE, error=row.get("error") or "the run did not finish")
    elif row.get("status") is None:
        row["status"] = "unknown"
    return row, flat


def _safe_load_run(run_dir: Path) -> tuple[dict, dict]:
    """``load_run`` that turns any unexpected error into an incomplete row."""
    try:
        return load_run(run_dir)
    except Exception as exc:  # one bad run must never stop the report
        log.warning("cannot read run %s: %s", run_dir, exc)
        return {"status": INCOMPLETE, "error": f"cannot read run: {exc}"}, {}


# ----------------------------------------------------------------------------- the table


def _display_path(path: Path, relative_to: Path | None) -> str:
    """``path`` relative to ``relative_to`` where possible, else absolute."""
    if relative_to is None:
        return str(path)
    try:
        return os.path.relpath(path, Path(relative_to).resolve())
    except ValueError:  # another drive on Windows
        return str(path)


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


def expected_jobs(sweep_dir: Path) -> list[list[str]] | None:
    """The overrides of every job of a sweep, as Hydra's basic sweeper expands them.

    Args:
        sweep_dir: the sweep's folder (with ``multirun.yaml``).

    Returns:
        One list of overrides per job, in job-number order; None where there is no
        ``multirun.yaml`` or it cannot be expanded (another sweeper, ranges of floats).
    """
    path = Path(sweep_dir) / "multirun.yaml"
    if not path.is_file():
        return None
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        config = OmegaConf.load(path)
        params = config.hydra.sweeper.get("params") or {}
        arguments = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
        overrides = OverridesParser.create().parse_overrides(arguments)
        return [list(job) for job in BasicSweeper.split_arguments(overrides, None)[0]]
    except Exception as exc:  # noqa: BLE001 - a summary without the missing jobs still helps
        log.warning("cannot list the jobs of %s: %s", path, exc)
        return None


def _not_started(sweep_dir: Path, relative_to: Path | None) -> list[dict]:
    """Rows (status ``incomplete``) for the jobs of a sweep that have no directory."""
    jobs = expected_jobs(sweep_dir)
    if jobs is None:
        return []
    started = {
        int(p.name.split("_", 1)[0])
        for p in Path(sweep_dir).iterdir()
        if p.is_dir() and p.name.split("_", 1)[0].isdigit()
    }
    rows = []
    for num, job in enumerate(jobs):
        if num in started:
            continue
        row = {
            "run_dir": _display_path(Path(sweep_dir) / f"{num} (not started)", relative_to),
            "status": INCOMPLETE,
            "error": "not started: " + " ".join(job),
        }
        for override in job:
            key, _, value = override.partition("=")
            row[key.lstrip("+~")] = _parse_value(value)
        rows.append(row)
    return rows


def _parse_value(text: str):
    """An override's value as the number it spells, else the string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


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
    loaded = [(path, *_safe_load_run(path)) for path in paths]
    per_round = record.per_round_fields()
    metric_cols = (
        ordered_union((k for _, m, _ in loaded for k in m if k not in per_round), _record_columns())
        + per_round
    )
    config_keys = ordered_union(k for _, _, c in loaded for k in c)
    config_cols = [k for k in config_keys if k not in metric_cols]
    rows = [
        {**_merge(metrics, config), "run_dir": _display_path(path, relative_to)}
        for path, metrics, config in loaded
    ]
    # a sweep's jobs that never started (a killed sweep, a crashed launcher) are listed too
    for folder in dirs:
        rows += _not_started(Path(folder), relative_to)
    extra = [k for k in ordered_union(k for r in rows for k in r) if k not in metric_cols]
    config_cols += [k for k in extra if k not in config_cols]
    frame = _integer_columns(pd.DataFrame(rows, columns=metric_cols + config_cols), rows)
    frame = _drop_implied_targets(frame)
    frame.attrs[CONFIG_COLUMNS] = [k for k in config_keys if k in frame.columns]
    if "batched" in frame.columns and (frame["batched"] == VMAP).any():
        frame[COMPUTATION] = [VMAP if b == VMAP else None for b in frame["batched"]]
    ages = [_record_time(path) for path in paths] + [math.nan] * (len(frame) - len(paths))
    frame[DUPLICATE_OF] = mark_duplicates(frame, ages, has_config=[bool(c) for *_, c in loaded])
    frame[NOT_FINITE] = [_not_finite_fields(m) for _, m, _ in loaded] + [None] * (
        len(frame) - len(loaded)
    )
    return frame


def _not_finite_fields(metrics: dict) -> str | None:
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


def time_kinds(frame: pd.DataFrame) -> list[tuple]:
    """What each run's times are (record fields ``time_shared`` and ``ensemble_size``).

    Args:
        frame: the runs.

    Returns:
        Per row, ``("own",)`` for a run that timed itself (a single run, an older record) and
        ``("shared", S)`` for a member of an ensemble of S runs whose times are a share of the
        ensemble's; two times compare only when their kinds are equal.
    """
    shared = frame["time_shared"].tolist() if "time_shared" in frame.columns else []
    sizes = frame["ensemble_size"].tolist() if "ensemble_size" in frame.columns else []
    shared += [None] * (len(frame) - len(shared))
    sizes += [None] * (len(frame) - len(sizes))
    return [
        ("shared", cell_label(size)) if cell_label(flag) is True else ("own",)
        for flag, size in zip(shared, sizes)
    ]


def _record_time(run_dir: Path) -> float:
    """The modification time of the run's record (NaN without one)."""
    try:
        return (run_dir / record.METRICS).stat().st_mtime
    except OSError:
        return math.nan


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


def cell_label(value):
    """A hashable label of a cell (None for missing values, ``10`` for ``10.0``)."""
    if isinstance(value, np.generic):
        value = value.item()
    if (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and math.isnan(value))
    ):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def ignored(column: str) -> bool:
    """True for a config key that does not change what a run computes (``IGNORED``).

    Args:
        column: a config key.

    Returns:
        Whether two runs that differ in it alone are the same setting.
    """
    return any(column == k or (k.endswith(".") and column.startswith(k)) for k in IGNORED)


def setting_keys(frame: pd.DataFrame) -> list[str]:
    """The columns that define a run's setting: ``pde``, ``sampler``, every config key
    but ``seed`` and the ``IGNORED`` ones, and ``computation`` where present.

    Args:
        frame: the runs.

    Returns:
        The columns, in that order.
    """
    names = [c for c in SETTING_NAMES if c in frame.columns]
    keys = names + [c for c in config_columns(frame) if c not in names and not ignored(c)]
    return keys + ([COMPUTATION] if COMPUTATION in frame.columns else [])


def varying(runs: pd.DataFrame, keys: Sequence[str], by: Sequence[str] = ()) -> list[str]:
    """The ``keys`` whose values differ among ``runs``, or among the runs of one value of
    ``by`` (a missing value counts as a value of its own).

    Args:
        runs: some runs.
        keys: candidate columns (absent ones never vary).
        by: columns that split the runs first.

    Returns:
        The varying keys, in the order of ``keys``.
    """
    if runs.empty:
        return []
    if by:
        parts = [part for _, part in runs.groupby(list(by), dropna=False, sort=False)]
    else:
        parts = [runs]
    out = []
    for key in keys:
        if key in runs.columns and any(len({cell_label(v) for v in p[key]}) > 1 for p in parts):
            out.append(key)
    return out


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


def _integer_columns(frame: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    """Columns holding only integers (and gaps) as nullable ``Int64`` instead of floats."""
    for column in frame.columns:
        values = [row[column] for row in rows if row.get(column) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            frame[column] = frame[column].astype("Int64")
    return frame


# ----------------------------------------------------------------------------- selections


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


def config_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` that hold config keys (the experiment's settings).

    Args:
        frame: the runs; ``collect_runs`` names its config columns in ``frame.attrs``.

    Returns:
        Those columns; for a frame built otherwise, the dotted columns (``pde.dim``) and
        ``seed``, ``n_points`` and ``rounds``.
    """
    named = frame.attrs.get(CONFIG_COLUMNS)
    if named is None:
        named = [c for c in frame.columns if "." in str(c)] + ["seed", "n_points", "rounds"]
    return [c for c in named if c in frame.columns]
