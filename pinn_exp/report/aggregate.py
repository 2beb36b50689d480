"""Collects the runs below one or more folders into one table and writes the summaries.

Every folder that holds ``metrics.json``, ``config_resolved.yaml`` or ``.hydra/config.yaml`` is a
run. A run without a readable ``metrics.json`` is listed with status ``incomplete``, so the
report can be made at any time, also while a sweep is still running or after parts of it failed.
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

from pinn_exp.io.records import atomic_write, read_json

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
CONFIG_FILES = ("config_resolved.yaml", ".hydra/config.yaml")
HYDRA_FILE = ".hydra/hydra.yaml"
INCOMPLETE = "incomplete"
STATUS_ORDER = ("ok", "failed", "diverged", "oom", INCOMPLETE)
PER_ROUND = "l2_rel_error_per_round"
METRIC_COLUMNS = (
    "error",
    "pde",
    "sampler",
    "dim",
    "n_points",
    "ratio",
    "seed",
    "device",
    "dtype",
    "l2_rel_error",
    "peak_gpu_mem_mb",
    "peak_gpu_mem_mb_train",
    "peak_gpu_mem_mb_sampling",
    "peak_cpu_rss_mb",
    "wall_time_s",
    "time_train_s",
    "time_sampling_s",
    "n_residual_evals",
)
HYDRA_SPECIAL_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}
# Metric columns an incomplete run can take from its config: column -> dotted config key.
CONFIG_FALLBACKS = {"dim": "pde.dim", "ratio": "sampler.ratio"}
MISSING_LABEL = "none"
STD_NOTE = "std is the sample standard deviation (ddof=1); only runs with status `ok` counted"


# ----------------------------------------------------------------------------- discovery


def _is_run_dir(path: Path) -> bool:
    """True when ``path`` holds a metrics file or a Hydra config."""
    return any((path / name).is_file() for name in (METRICS_FILE, *CONFIG_FILES))


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
            if _is_run_dir(path):
                found.add(path.resolve())
                subdirs[:] = []  # a run's own subfolders are not runs
    return sorted(found)


# ----------------------------------------------------------------------------- one run


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _read_metrics(run_dir: Path) -> tuple[dict, str | None]:
    """The metrics record, or an empty dict and the reason the run counts as incomplete."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return {}, "no metrics.json (run not finished)"
    try:
        record = read_json(path)
    except (OSError, ValueError) as exc:
        return {}, f"unreadable metrics.json: {type(exc).__name__}: {exc}"
    if not isinstance(record, dict):
        return {}, "unreadable metrics.json: not a JSON object"
    return record, None


def _per_round(value) -> list[float] | None:
    """``l2_rel_error_per_round`` as a list of floats (nulls become NaN), else None."""
    if not isinstance(value, (list, tuple)):
        return None
    out = []
    for item in value:
        try:
            out.append(float(item) if item is not None else math.nan)
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


def _metric_scalars(record: dict) -> dict:
    """The flat part of a metrics record; nested values dropped except the per-round errors."""
    row = {str(k): v for k, v in record.items() if _is_scalar(v)}
    row[PER_ROUND] = _per_round(record.get(PER_ROUND))
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
        ``{"pde.dim": 10, "sampler.ratio": 0.45, ...}``; lists become JSON strings.
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
    """Fills the metric columns that an incomplete run lacks from its config."""
    choices = _hydra_choices(run_dir) if tree else {}
    for group in ("pde", "sampler"):
        if row.get(group) is None:
            row[group] = _group_name(group, tree, choices)
    for column, key in CONFIG_FALLBACKS.items():
        if row.get(column) is None and flat.get(key) is not None:
            row[column] = flat[key]


def load_run(run_dir: Path) -> tuple[dict, dict]:
    """Reads one run folder.

    Args:
        run_dir: the run's folder.

    Returns:
        ``(metrics, config)``: the flat metric columns (with ``status``; ``incomplete`` and an
        ``error`` message when ``metrics.json`` is missing or unreadable) and the flattened config.
    """
    record, problem = _read_metrics(run_dir)
    row = _metric_scalars(record)
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


def _ordered_union(keys: Iterable[str], start: Sequence[str] = ()) -> list[str]:
    """``start`` followed by the other ``keys`` in order of first appearance."""
    return list(dict.fromkeys([*start, *keys]))


def _merge(metrics: dict, config: dict) -> dict:
    """One row: metric values, and config values where a metric of that name is missing."""
    row = dict(config)
    row.update({k: v for k, v in metrics.items() if v is not None or k not in config})
    return row


def expected_jobs(sweep_dir: Path) -> list[list[str]] | None:
    """The overrides of every job of the sweep whose ``multirun.yaml`` is in ``sweep_dir``,
    in job-number order (as Hydra's basic sweeper expands them), or None where there is no
    such file or it cannot be expanded (another sweeper, ranges of floats)."""
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
        row = {"run_dir": _display_path(Path(sweep_dir) / f"{num} (not started)", relative_to),
               "status": INCOMPLETE, "error": "not started: " + " ".join(job)}  # fmt: skip
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


def collect_runs(dirs: Sequence[Path], relative_to: Path | None = None) -> pd.DataFrame:
    """One row per run below ``dirs``, finished, failed or incomplete.

    Args:
        dirs: folders to search for runs.
        relative_to: ``run_dir`` is given relative to this folder; absolute when None.

    Returns:
        Columns ``run_dir``, ``status``, the metric scalars (and ``l2_rel_error_per_round`` as
        lists), then the flattened config columns (``pde.dim``, ``sampler.ratio``, ...).
    """
    loaded = [(path, *_safe_load_run(path)) for path in find_run_dirs(Path(d) for d in dirs)]
    metric_cols = _ordered_union(
        (k for _, m, _ in loaded for k in m if k != PER_ROUND),
        ("run_dir", "status", *METRIC_COLUMNS),
    ) + [PER_ROUND]
    config_cols = [
        k for k in _ordered_union(k for _, _, c in loaded for k in c) if k not in metric_cols
    ]
    rows = [
        {**_merge(metrics, config), "run_dir": _display_path(path, relative_to)}
        for path, metrics, config in loaded
    ]
    # a sweep's jobs that never started (a killed sweep, a crashed launcher) are listed too
    for folder in dirs:
        rows += _not_started(Path(folder), relative_to)
    extra = [k for k in _ordered_union(k for r in rows for k in r) if k not in metric_cols]
    config_cols += [k for k in extra if k not in config_cols]
    return _integer_columns(pd.DataFrame(rows, columns=metric_cols + config_cols), rows)


def _integer_columns(frame: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    """Columns holding only integers (and gaps) as nullable ``Int64`` instead of floats."""
    for column in frame.columns:
        values = [row[column] for row in rows if row.get(column) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            frame[column] = frame[column].astype("Int64")
    return frame


# ----------------------------------------------------------------------------- grouping


def _keys(spec: str | Sequence[str]) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]``."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    return [p.strip() for p in parts if p and p.strip()]


def _norm(value):
    """A hashable, comparable group label: NaN/None -> ``"none"``, 10.0 -> 10."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_LABEL
    if value is pd.NA or value is pd.NaT:
        return MISSING_LABEL
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _sort_key(label: tuple) -> tuple:
    """Numbers first (by value), then strings, then missing values."""
    out = []
    for value in label:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((0, float(value), ""))
        elif value == MISSING_LABEL:
            out.append((2, 0.0, ""))
        else:
            out.append((1, 0.0, str(value)))
    return tuple(out)


def _labels(frame: pd.DataFrame, keys: list[str]) -> list[tuple]:
    """The group label (one value per key) of every row; absent columns count as missing."""
    if not keys:
        return [("all",)] * len(frame)
    columns = [frame[k].tolist() if k in frame.columns else [None] * len(frame) for k in keys]
    return [tuple(_norm(v) for v in values) for values in zip(*columns)]


def _index(labels: list[tuple], keys: list[str]) -> pd.Index:
    """A (Multi)Index for the sorted group labels."""
    if len(keys) <= 1:
        name = keys[0] if keys else None
        return pd.Index([label[0] for label in labels], name=name, dtype=object)
    arrays = [list(level) for level in zip(*labels)] if labels else [[] for _ in keys]
    return pd.MultiIndex.from_arrays(arrays, names=keys or None)


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
    """The rows with status ``ok``."""
    if "status" not in frame.columns:
        return frame.iloc[0:0]
    return frame[frame["status"] == "ok"]


def memory_metric(frame: pd.DataFrame) -> str:
    """``peak_gpu_mem_mb`` when any ok run has a value for it, else ``peak_cpu_rss_mb``.

    Args:
        frame: the runs.

    Returns:
        The column name.
    """
    has_gpu = numeric(ok_runs(frame), "peak_gpu_mem_mb").notna().any()
    return "peak_gpu_mem_mb" if has_gpu else "peak_cpu_rss_mb"


# ----------------------------------------------------------------------------- formatting


def is_error_metric(metric: str) -> bool:
    """True for metrics shown in scientific notation (errors, losses)."""
    return "error" in metric or "loss" in metric


def _plain(value: float) -> str:
    """Memory and times: one decimal, or 3 significant digits below 1."""
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"


def format_cell(values: Sequence[float], scientific: bool) -> str:
    """``"mean ± std (n)"`` of ``values``, std with ddof=1 (``n/a`` for a single value).

    Args:
        values: the numbers of one table cell.
        scientific: errors: mean with 3 and std with 2 significant digits (``1.23e-02 ± 4.5e-03``).

    Returns:
        The cell text; ``"-"`` when ``values`` is empty.
    """
    if len(values) == 0:
        return "-"
    data = np.asarray(values, dtype=float)
    mean = float(np.mean(data))
    std = float(np.std(data, ddof=1)) if len(data) > 1 else math.nan
    fmt_mean = (lambda x: f"{x:.2e}") if scientific else _plain
    fmt_std = (lambda x: f"{x:.1e}") if scientific else _plain
    std_text = "n/a" if math.isnan(std) else fmt_std(std)
    return f"{fmt_mean(mean)} ± {std_text} ({len(data)})"


def mean_std_table(
    frame: pd.DataFrame,
    rows: str | Sequence[str] = "sampler",
    cols: str | Sequence[str] = "pde",
    metric: str = "l2_rel_error",
) -> pd.DataFrame:
    """Mean ± std of ``metric`` over the ok runs of each (rows, cols) group.

    Args:
        frame: the runs (as from ``collect_runs``).
        rows: column(s) whose values label the table rows; comma-separated or a list.
        cols: column(s) whose values label the table columns.
        metric: the numeric column to summarize.

    Returns:
        A frame of strings ``"mean ± std (n)"`` (``"-"`` for empty cells); std uses ddof=1.
        Missing group values are labelled ``"none"``.
    """
    row_keys, col_keys = _keys(rows), _keys(cols)
    ok = ok_runs(frame)
    values = numeric(ok, metric)
    ok, values = ok[values.notna()], values[values.notna()]
    row_labels, col_labels = _labels(ok, row_keys), _labels(ok, col_keys)
    cells: dict[tuple, list[float]] = {}
    for r, c, v in zip(row_labels, col_labels, values.tolist()):
        cells.setdefault((r, c), []).append(v)
    row_order = sorted(set(row_labels), key=_sort_key)
    col_order = sorted(set(col_labels), key=_sort_key)
    scientific = is_error_metric(metric)
    data = [[format_cell(cells.get((r, c), []), scientific) for c in col_order] for r in row_order]
    return pd.DataFrame(
        data, index=_index(row_order, row_keys), columns=_index(col_order, col_keys), dtype=object
    )


def _text(value) -> str:
    """A table label as text (tuples of a MultiIndex joined by commas)."""
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pd.DataFrame) -> str:
    """A markdown pipe table of ``table`` with its index as leading columns.

    Args:
        table: e.g. the result of ``mean_std_table``.

    Returns:
        The markdown text (no trailing newline).
    """
    names = [str(n) if n is not None else "" for n in table.index.names]
    header = names + [_text(c) for c in table.columns]
    lines = ["| " + " | ".join(map(_md_escape, header)) + " |", "|" + "---|" * len(header)]
    for label, values in zip(table.index, table.itertuples(index=False, name=None)):
        label = label if isinstance(label, tuple) else (label,)
        cells = [str(v) for v in label] + [str(v) for v in values]
        lines.append("| " + " | ".join(map(_md_escape, cells)) + " |")
    return "\n".join(lines)


def _tex_escape(text: str) -> str:
    """Escapes the LaTeX special characters of ``text``."""
    out = str(text).replace("\\", r"\textbackslash{}")
    for char in "&%$#_{}":
        out = out.replace(char, "\\" + char)
    return out.replace("~", r"\textasciitilde{}").replace("^", r"\textasciicircum{}")


def _simple_tabular(table: pd.DataFrame) -> str:
    """A plain ``tabular`` of ``table`` (used when ``DataFrame.to_latex`` is unavailable)."""
    names = [str(n) if n is not None else "" for n in table.index.names]
    header = names + [_text(c) for c in table.columns]
    lines = [
        r"\begin{tabular}{" + "l" * len(names) + "r" * len(table.columns) + "}",
        r"\toprule",
        " & ".join(map(_tex_escape, header)) + r" \\",
        r"\midrule",
    ]
    for label, values in zip(table.index, table.itertuples(index=False, name=None)):
        label = label if isinstance(label, tuple) else (label,)
        lines.append(" & ".join(_tex_escape(v) for v in (*label, *values)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def to_latex(table: pd.DataFrame) -> str:
    """LaTeX for ``table`` via ``DataFrame.to_latex`` (plain tabular without jinja2).

    Args:
        table: e.g. the result of ``mean_std_table``.

    Returns:
        The LaTeX text with ``±`` written as ``$\\pm$``.
    """
    if table.empty:
        text = "% no ok runs with a value for this metric\n" + _simple_tabular(table)
    else:
        try:
            text = table.to_latex(escape=True)
        except ImportError:  # pandas needs jinja2 for to_latex
            text = _simple_tabular(table)
    return text.replace("±", r"$\pm$")


# ----------------------------------------------------------------------------- summary.md


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


def _table_section(frame: pd.DataFrame, rows, cols, metric: str) -> list[str]:
    """The markdown section of one mean ± std table."""
    lines = [
        f"## `{metric}`: mean ± std over seeds (n = number of runs)",
        "",
        f"Rows: `{', '.join(_keys(rows))}`; columns: `{', '.join(_keys(cols))}`; {STD_NOTE}.",
        "",
    ]
    absent = [k for k in [*_keys(rows), *_keys(cols), metric] if k not in frame.columns]
    if absent:
        lines += [f"Note: no column named {', '.join(f'`{k}`' for k in absent)}.", ""]
    try:
        table = mean_std_table(frame, rows, cols, metric)
    except Exception as exc:  # the report must always be written
        log.exception("table for %s failed", metric)
        return [*lines, f"_could not build the table: {exc}_", ""]
    if table.empty:
        return [*lines, f"_no ok runs with a value for `{metric}`_", ""]
    return [*lines, to_markdown(table), ""]


def _short(message, limit: int = 300) -> str:
    """An error message on one line, at most ``limit`` characters."""
    if message is None or (isinstance(message, float) and math.isnan(message)):
        return "(no message)"
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _problem_section(frame: pd.DataFrame) -> list[str]:
    """The list of runs that did not finish with status ok."""
    bad = frame[frame["status"] != "ok"]
    lines = ["## Runs that did not finish ok", ""]
    if bad.empty:
        return [*lines, "none", ""]
    errors = bad["error"] if "error" in bad.columns else pd.Series(None, index=bad.index)
    for run_dir, status, error in zip(bad["run_dir"], bad["status"], errors):
        lines.append(f"- `{run_dir}`: **{status}**: {_md_escape(_short(error))}")
    return [*lines, ""]


def summary_markdown(
    frame: pd.DataFrame,
    rows: str | Sequence[str] = "sampler",
    cols: str | Sequence[str] = "pde",
    metric: str = "l2_rel_error",
    dirs: Sequence[Path] = (),
) -> str:
    """The text of ``summary.md``: status counts, the mean ± std tables, the failed runs.

    Args:
        frame: the runs (as from ``collect_runs``).
        rows: grouping column(s) of the table rows.
        cols: grouping column(s) of the table columns.
        metric: the main metric.
        dirs: the searched folders (named in the header).

    Returns:
        The markdown text.
    """
    where = ", ".join(f"`{d}`" for d in dirs)
    lines = ["# Run summary", ""]
    if frame.empty:
        return "\n".join([*lines, f"no runs found in {where or 'the given folders'}", ""])
    lines += [f"{len(frame)} runs in {where}" if where else f"{len(frame)} runs", ""]
    lines += [f"Status: {status_counts(frame)}", ""]
    for name in _ordered_union([metric, memory_metric(frame), "wall_time_s"]):
        lines += _table_section(frame, rows, cols, name)
    return "\n".join(lines + _problem_section(frame))


# ----------------------------------------------------------------------------- writing


def _write_text(path: Path, text: str) -> Path:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path


def _csv_text(frame: pd.DataFrame) -> str:
    """The frame as CSV, the per-round errors as JSON lists."""
    out = frame.copy()
    if PER_ROUND in out.columns:
        out[PER_ROUND] = [
            json.dumps([None if math.isnan(x) else x for x in v]) if isinstance(v, list) else ""
            for v in out[PER_ROUND]
        ]
    return out.to_csv(index=False)


def write_summary(
    dirs: Sequence[Path] | Path | str,
    out_dir: Path | str | None = None,
    rows: str | Sequence[str] = "sampler",
    cols: str | Sequence[str] = "pde",
    metric: str = "l2_rel_error",
    latex: bool = False,
    plots: bool = True,
) -> pd.DataFrame:
    """Writes ``summary.csv``, ``summary.md``, optionally ``summary.tex`` and the plots.

    Args:
        dirs: folders to search for runs.
        out_dir: where the files go; the first of ``dirs`` when None.
        rows: grouping column(s) of the table rows (comma-separated or a list).
        cols: grouping column(s) of the table columns.
        metric: the metric of the main table.
        latex: also write the main table as ``summary.tex``.
        plots: also write the plots the data supports.

    Returns:
        The runs (as from ``collect_runs``); ``frame.attrs["outputs"]`` lists the written files.
    """
    dirs = [Path(dirs)] if isinstance(dirs, (str, Path)) else [Path(d) for d in dirs]
    out = Path(out_dir) if out_dir is not None else (dirs[0] if dirs else Path.cwd())
    frame = collect_runs(dirs, relative_to=out)
    written = [
        _write_text(out / "summary.csv", _csv_text(frame)),
        _write_text(out / "summary.md", summary_markdown(frame, rows, cols, metric, dirs)),
    ]
    if latex:
        table = mean_std_table(frame, rows, cols, metric)
        written.append(_write_text(out / "summary.tex", to_latex(table)))
    if plots and not frame.empty:
        from pinn_exp.report.plots import make_plots  # matplotlib only when plotting

        written += make_plots(frame, out, metric=metric)
    frame.attrs["outputs"] = [str(p) for p in written]
    return frame
