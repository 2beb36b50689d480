"""Writes a sweep's summary: ``summary.csv`` (one row per run), ``summary.md`` (its text from
``summary_text``), ``summary_paired.csv``, optionally ``summary.tex``, and the plots.

A report replaces the previous report in its folder as a whole: files of the earlier report
that this one does not write (a ``summary_paired.csv`` without a baseline now, a plot the data
no longer supports) are removed. It refuses (``ReportRefused``, before writing anything) to
write where it cannot, and to replace a summary of runs it does not cover itself (a report
over one run of a sweep, written into the sweep's folder)."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pinn_exp.io import record
from pinn_exp.io.storage import atomic_write
from pinn_exp.metrics import registry
from pinn_exp.report import paired_text
from pinn_exp.report.paired import choose_baseline
from pinn_exp.report.pairing import usable_runs
from pinn_exp.report.runs import collect_runs, find_run_dirs, is_run_dir
from pinn_exp.report.summary_text import compare, summary_markdown
from pinn_exp.report.tables import mean_std_table, split_keys, to_latex

log = logging.getLogger(__name__)

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
SUMMARY_TEX = "summary.tex"
PAIRED_CSV = "summary_paired.csv"
NOT_STARTED = "(not started)"


class ReportRefused(Exception):
    """A report that is not written; the message (one line) names the path or option and why."""


def report_files() -> list[str]:
    """The names of every file a report may write into its folder.

    Returns:
        The summary files and the plots' files.
    """
    from pinn_exp.report.plots import PLOTS  # matplotlib only when needed

    return [SUMMARY_CSV, SUMMARY_MD, SUMMARY_TEX, PAIRED_CSV, *PLOTS]


# ----------------------------------------------------------------------------- writing


def _write_text(path: Path, text: str) -> Path:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path


def csv_text(frame: pd.DataFrame) -> str:
    """``summary.csv``: the runs, the per-round lists as JSON lists (null for NaN).

    Args:
        frame: the runs.

    Returns:
        The CSV text.
    """
    out = frame.copy()
    for column in record.per_round_fields():
        if column in out.columns:
            out[column] = [
                json.dumps([None if math.isnan(x) else x for x in v]) if isinstance(v, list) else ""
                for v in out[column]
            ]
    return out.to_csv(index=False)


def check_out_dir(out: Path) -> None:
    """Creates ``out`` if needed and checks that files can be written there.

    Args:
        out: the report's folder.

    Raises:
        ReportRefused: ``out`` is a file, cannot be created, or cannot be written to.
    """
    if out.exists() and not out.is_dir():
        raise ReportRefused(f"{out}: exists and is not a folder; give a folder to --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportRefused(f"{out}: cannot create the folder: {exc.strerror or exc}") from None
    try:
        handle, probe = tempfile.mkstemp(prefix=".report-", dir=out)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise ReportRefused(f"{out}: cannot write there: {exc.strerror or exc}") from None


def _summarized_runs(out: Path) -> set[Path]:
    """The run folders that the summary already in ``out`` lists (empty without one)."""
    path = out / SUMMARY_CSV
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            names = [row.get("run_dir") or "" for row in csv.DictReader(handle)]
    except (OSError, ValueError, csv.Error):
        return set()
    return {(out / name).resolve() for name in names if name and not name.endswith(NOT_STARTED)}


def check_not_clobbering(out: Path, dirs: Sequence[Path]) -> None:
    """Refuses to replace a summary that lists runs which still exist and which this report
    would not cover (a report over one run of a sweep, written into the sweep's folder).

    Args:
        out: the report's folder.
        dirs: the folders this report searches.

    Raises:
        ReportRefused: naming the summary, how many of its runs would be lost, and one of them.
    """
    earlier = _summarized_runs(out)
    if not earlier:
        return
    covered = set(find_run_dirs(dirs))
    lost = sorted(p for p in earlier - covered if p.is_dir() and is_run_dir(p))
    if lost:
        raise ReportRefused(
            f"{out / SUMMARY_CSV}: summarizes {len(lost)} run(s) that this report does not "
            f"cover (e.g. {lost[0]}); give another --out, or --overwrite to replace it"
        )


def check_metric(frame: pd.DataFrame, metric: str) -> None:
    """Refuses a metric that no run records (when there are runs).

    Args:
        frame: the runs.
        metric: the requested metric.

    Raises:
        ReportRefused: naming the metric and the closest columns.
    """
    if frame.empty or metric in frame.columns:
        return
    import difflib

    close = difflib.get_close_matches(metric, [str(c) for c in frame.columns], n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ReportRefused(f"--metric {metric}: no run records a column of that name{hint}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def check_numeric_metric(frame: pd.DataFrame, metric: str) -> None:
    """Refuses a column that holds values but no number (``status``, a per-round list): a
    table of it would be empty. A registered metric, memory or time is never refused (its
    values may all be missing where no run finished ok).

    Args:
        frame: the runs.
        metric: the requested metric (a column of ``frame``).

    Raises:
        ReportRefused: naming the metric, one of its values and the numeric metrics.
    """
    if metric not in frame.columns or metric in registry.METRICS or record.unit(metric):
        return
    values = [v for v in frame[metric] if isinstance(v, list) or pd.notna(v)]
    if not values or any(_is_number(v) for v in values):
        return
    known = [*registry.METRICS, *registry.HISTORY_METRICS, "wall_time_s"]
    raise ReportRefused(
        f"--metric {metric}: not a numeric column (values such as {values[0]!r}); give a "
        f"numeric one such as {', '.join(known)}"
    )


def check_columns(frame: pd.DataFrame, rows, cols) -> None:
    """Refuses grouping keys that are not columns of the runs (when there are runs).

    Args:
        frame: the runs.
        rows: the table rows' key(s).
        cols: the table columns' key(s).

    Raises:
        ReportRefused: naming the option, the unknown keys and the closest columns.
    """
    if frame.empty:
        return
    import difflib

    for option, spec in (("--rows", rows), ("--cols", cols)):
        unknown = [k for k in split_keys(spec) if k not in frame.columns]
        if unknown:
            close = difflib.get_close_matches(unknown[0], [str(c) for c in frame.columns], n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ReportRefused(
                f"{option} {','.join(split_keys(spec))}: no run has a column named "
                f"{', '.join(unknown)}{hint}"
            )


def check_baseline(frame: pd.DataFrame, baseline: str, metric: str) -> None:
    """Refuses a baseline sampler without ok runs.

    Args:
        frame: the runs.
        baseline: the requested baseline sampler.
        metric: the compared metric.

    Raises:
        ReportRefused: naming the baseline and the samplers that have ok runs.
    """
    if choose_baseline(frame, baseline, metric)[0] is not None:
        return
    runs = usable_runs(frame, metric)
    names = sorted(set(runs["sampler"].dropna().astype(str))) if "sampler" in runs else []
    raise ReportRefused(
        f"--baseline {baseline}: no ok run of sampler {baseline!r} with a value of {metric}; "
        f"samplers with such runs: {', '.join(names) or 'none'}"
    )


def _remove_stale(out: Path, written: list[Path]) -> list[Path]:
    """Removes the files of an earlier report in ``out`` that this report did not write."""
    removed = []
    kept = {p.name for p in written}
    for name in report_files():
        path = out / name
        if name not in kept and path.is_file():
            try:
                path.unlink()
                removed.append(path)
            except OSError as exc:
                log.warning("cannot remove %s of an earlier report: %s", path, exc)
    return removed


def write_summary(
    dirs: Sequence[Path] | Path | str,
    out_dir: Path | str | None = None,
    rows: str | Sequence[str] = "sampler",
    cols: str | Sequence[str] = "pde",
    metric: str = registry.PRIMARY,
    latex: bool = False,
    plots: bool = True,
    baseline: str | None = None,
    require_baseline: bool = False,
    overwrite: bool = False,
    require_metric: bool = False,
) -> pd.DataFrame:
    """Writes ``summary.csv``, ``summary.md``, ``summary_paired.csv`` (when there is a
    baseline), optionally ``summary.tex``, and the plots; removes the files of an earlier
    report in the folder that this one does not write.

    Args:
        dirs: folders to search for runs.
        out_dir: where the files go; the first of ``dirs`` when None.
        rows: grouping column(s) of the table rows (comma-separated or a list).
        cols: grouping column(s) of the table columns.
        metric: the metric of the main table and of the paired comparison.
        latex: also write the main table as ``summary.tex``.
        plots: also write the plots the data supports.
        baseline: the paired comparison's baseline sampler; None: ``rad`` when it has runs,
            else the comparison is skipped with a note.
        require_baseline: refuse when ``baseline`` has no ok run (else a note says so).
        require_metric: refuse when runs were found and none of them has a column ``metric``
            (a misspelt ``--metric`` would write a report without its table), when ``metric``
            holds no number (``status``), or when a key of ``rows`` or ``cols`` is not a
            column.
        overwrite: replace a summary in ``out_dir`` that lists runs this report does not cover.

    Returns:
        The runs (as from ``runs.collect_runs``); ``frame.attrs["outputs"]`` lists the written
        files, ``frame.attrs["removed"]`` the earlier report's files that were removed.

    Raises:
        ReportRefused: before anything is written, see ``check_out_dir``,
            ``check_not_clobbering`` and ``check_baseline``.
    """
    dirs = [Path(dirs)] if isinstance(dirs, (str, Path)) else [Path(d) for d in dirs]
    out = Path(out_dir) if out_dir is not None else (dirs[0] if dirs else Path.cwd())
    if out.exists() and not out.is_dir():
        check_out_dir(out)  # refuses
    frame = collect_runs(dirs, relative_to=out)
    if require_metric:
        check_metric(frame, metric)
        check_numeric_metric(frame, metric)
        check_columns(frame, rows, cols)
    if require_baseline and baseline is not None:
        check_baseline(frame, baseline, metric)
    if not overwrite:
        check_not_clobbering(out, dirs)
    check_out_dir(out)
    comparison = compare(frame, baseline, cols, metric)
    text = summary_markdown(frame, rows, cols, metric, dirs, baseline, comparison)
    written = [_write_text(out / SUMMARY_CSV, csv_text(frame)), _write_text(out / SUMMARY_MD, text)]
    if comparison.baseline is not None:
        written.append(_write_text(out / PAIRED_CSV, paired_text.csv_text(comparison)))
    if latex:
        table = mean_std_table(frame, rows, cols, metric, ci=True)
        written.append(_write_text(out / SUMMARY_TEX, to_latex(table)))
    if plots and not frame.empty:
        from pinn_exp.report.plots import make_plots  # matplotlib only when plotting

        written += make_plots(frame, out, metric=metric)
    frame.attrs["removed"] = [str(p) for p in _remove_stale(out, written)]
    frame.attrs["outputs"] = [str(p) for p in written]
    return frame
