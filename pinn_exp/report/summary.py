"""Writes a sweep's summary: ``summary.csv`` (one row per run), ``summary.md`` (status counts,
mean ± std tables, the paired comparison against a baseline, the runs that did not finish ok),
``summary_paired.csv``, optionally ``summary.tex``, and the plots."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pinn_exp.io import record
from pinn_exp.io.records import atomic_write
from pinn_exp.metrics import registry
from pinn_exp.report import paired
from pinn_exp.report.runs import collect_runs, memory_metric, ordered_union, status_counts
from pinn_exp.report.tables import (
    CI_NOTE,
    STD_NOTE,
    md_escape,
    mean_std_table,
    split_keys,
    to_latex,
    to_markdown,
)

log = logging.getLogger(__name__)

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
SUMMARY_TEX = "summary.tex"
PAIRED_CSV = "summary_paired.csv"


# ----------------------------------------------------------------------------- summary.md


def _table_section(frame: pd.DataFrame, rows, cols, metric: str) -> list[str]:
    """The markdown section of one mean ± std table."""
    lines = [
        f"## `{metric}`: mean ± std over seeds (n = number of runs) [95 % CI of the mean]",
        "",
        f"Rows: `{', '.join(split_keys(rows))}`; columns: `{', '.join(split_keys(cols))}`; "
        f"{STD_NOTE}; {CI_NOTE}.",
        "",
    ]
    absent = [k for k in [*split_keys(rows), *split_keys(cols), metric] if k not in frame.columns]
    if absent:
        lines += [f"Note: no column named {', '.join(f'`{k}`' for k in absent)}.", ""]
    try:
        table = mean_std_table(frame, rows, cols, metric, ci=True)
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
        lines.append(f"- `{run_dir}`: **{status}**: {md_escape(_short(error))}")
    return [*lines, ""]


def _compare(
    frame: pd.DataFrame, baseline: str | None, cols, metric: str
) -> paired.PairedComparison:
    """``paired.paired_comparison``; when it fails, an empty one whose note says why (the
    report is written anyway)."""
    try:
        return paired.paired_comparison(frame, baseline, cols, metric)
    except Exception as exc:  # the report must always be written
        log.exception("paired comparison failed")
        note = f"_could not build the paired comparison: {exc}_"
        return paired.PairedComparison(None, metric, [], pd.DataFrame(), [note])


def summary_markdown(
    frame: pd.DataFrame,
    rows: str | Sequence[str] = "sampler",
    cols: str | Sequence[str] = "pde",
    metric: str = registry.PRIMARY,
    dirs: Sequence[Path] = (),
    baseline: str | None = None,
    comparison: paired.PairedComparison | None = None,
) -> str:
    """The text of ``summary.md``: status counts, the mean ± std tables, the paired
    comparison, the failed runs.

    Args:
        frame: the runs (as from ``runs.collect_runs``).
        rows: grouping column(s) of the table rows.
        cols: grouping column(s) of the table columns.
        metric: the main metric (also the paired comparison's).
        dirs: the searched folders (named in the header).
        baseline: the paired comparison's baseline sampler; None: ``rad`` when present.
        comparison: the paired comparison, when already computed (else it is computed here).

    Returns:
        The markdown text.
    """
    where = ", ".join(f"`{d}`" for d in dirs)
    lines = ["# Run summary", ""]
    if frame.empty:
        return "\n".join([*lines, f"no runs found in {where or 'the given folders'}", ""])
    lines += [f"{len(frame)} runs in {where}" if where else f"{len(frame)} runs", ""]
    lines += [f"Status: {status_counts(frame)}", ""]
    for name in ordered_union([metric, memory_metric(frame), "wall_time_s"]):
        lines += _table_section(frame, rows, cols, name)
    if comparison is None:
        comparison = _compare(frame, baseline, cols, metric)
    lines += paired.markdown_section(comparison)
    return "\n".join(lines + _problem_section(frame))


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
                json.dumps([None if math.isnan(x) else x for x in v]) if isinstance(v, list)
                else ""
                for v in out[column]
            ]  # fmt: skip
    return out.to_csv(index=False)


def write_summary(
    dirs: Sequence[Path] | Path | str,
    out_dir: Path | str | None = None,
    rows: str | Sequence[str] = "sampler",
    cols: str | Sequence[str] = "pde",
    metric: str = registry.PRIMARY,
    latex: bool = False,
    plots: bool = True,
    baseline: str | None = None,
) -> pd.DataFrame:
    """Writes ``summary.csv``, ``summary.md``, ``summary_paired.csv`` (when there is a
    baseline), optionally ``summary.tex``, and the plots.

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

    Returns:
        The runs (as from ``runs.collect_runs``); ``frame.attrs["outputs"]`` lists the written
        files.
    """
    dirs = [Path(dirs)] if isinstance(dirs, (str, Path)) else [Path(d) for d in dirs]
    out = Path(out_dir) if out_dir is not None else (dirs[0] if dirs else Path.cwd())
    frame = collect_runs(dirs, relative_to=out)
    comparison = _compare(frame, baseline, cols, metric)
    text = summary_markdown(frame, rows, cols, metric, dirs, baseline, comparison)
    written = [_write_text(out / SUMMARY_CSV, csv_text(frame)), _write_text(out / SUMMARY_MD, text)]
    if comparison.baseline is not None:
        written.append(_write_text(out / PAIRED_CSV, paired.csv_text(comparison)))
    if latex:
        table = mean_std_table(frame, rows, cols, metric, ci=True)
        written.append(_write_text(out / SUMMARY_TEX, to_latex(table)))
    if plots and not frame.empty:
        from pinn_exp.report.plots import make_plots  # matplotlib only when plotting

        written += make_plots(frame, out, metric=metric)
    frame.attrs["outputs"] = [str(p) for p in written]
    return frame
