"""The text of ``summary.md``: status counts, how to read the tables and what their numbers of
seeds can show (said once), the tables of the metric, memory and time, each on the scale
``tables.table_scale`` gives, the paired comparison against a baseline, the ok runs without a
finite value, the runs that did not finish ok, and the duplicates."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pinn_exp.metrics import registry
from pinn_exp.report import paired, paired_text
from pinn_exp.report.runs import (
    COMPUTATION,
    DUPLICATE_OF,
    NOT_FINITE,
    VMAP,
    memory_metric,
    ok_runs,
    ordered_union,
    status_counts,
)
from pinn_exp.report.stats import ALPHA, pairs_needed, smallest_exact_p, t_quantile
from pinn_exp.report.tables import (
    CELL_TEXT,
    LINEAR,
    LINEAR_NOTE,
    LOG,
    LOG_NOTE,
    NOT_FINITE_NOTE,
    SETTINGS_NOTE,
    TIME_SHARED,
    md_escape,
    mean_std_table,
    split_keys,
    to_markdown,
)

log = logging.getLogger(__name__)


def _build_table(frame: pd.DataFrame, rows, cols, metric: str) -> pd.DataFrame | str:
    """The table of ``metric``, or the message of why it could not be built."""
    try:
        return mean_std_table(frame, rows, cols, metric, ci=True)
    except Exception as exc:  # the report must always be written
        log.exception("table for %s failed", metric)
        return f"could not build the table: {exc}"


def _table_section(frame: pd.DataFrame, rows, cols, metric: str, table) -> list[str]:
    """The markdown section of one table (``table``: as from ``_build_table``)."""
    scale = table.attrs.get("scale", LINEAR) if isinstance(table, pd.DataFrame) else LINEAR
    lines = [f"## `{metric}` ({scale} scale): {CELL_TEXT[scale]} over seeds", ""]
    absent = [k for k in [*split_keys(rows), *split_keys(cols), metric] if k not in frame.columns]
    if absent:
        lines += [f"Note: no column named {', '.join(f'`{k}`' for k in absent)}.", ""]
    if isinstance(table, str):
        return [*lines, f"_{table}_", ""]
    if table.attrs.get("scale_note"):
        lines += [f"Note: {table.attrs['scale_note']}; this table is on the linear scale.", ""]
    if table.empty:
        return [*lines, f"_{empty_table_text(frame, metric)}_", ""]
    return [*lines, to_markdown(table), ""]


def empty_table_text(frame: pd.DataFrame, metric: str) -> str:
    """Why a table is empty: no ok runs at all, or none with a value of ``metric``.

    Args:
        frame: the runs.
        metric: the table's column.

    Returns:
        The sentence, without markup.
    """
    if ok_runs(frame).empty:
        return f"no ok runs ({status_counts(frame) or 'no runs'})"
    return f"no ok runs with a value for `{metric}`"


def _names(metrics: list[str]) -> str:
    return ", ".join(f"`{m}`" for m in metrics)


def _reading_section(frame: pd.DataFrame, rows, cols, tables: dict) -> list[str]:
    """How to read the tables, once for all of them: grouping, scales, counts, batched runs."""
    built = {m: t for m, t in tables.items() if isinstance(t, pd.DataFrame)}
    by_scale = {
        s: [m for m, t in built.items() if t.attrs.get("scale") == s] for s in (LOG, LINEAR)
    }
    lines = [
        "## How to read the tables",
        "",
        f"Rows: `{', '.join(split_keys(rows))}`; columns: `{', '.join(split_keys(cols))}`; only "
        f"runs with status `ok` counted; {SETTINGS_NOTE}. Each table's title names its scale.",
        "",
    ]
    if by_scale[LOG]:
        lines.append(
            f"- {_names(by_scale[LOG])}: positive by nature (errors, memory, times) and spread "
            f"across seeds by a factor rather than an amount; {LOG_NOTE}."
        )
    if by_scale[LINEAR]:
        lines.append(f"- {_names(by_scale[LINEAR])}: {LINEAR_NOTE}.")
    if any(t.attrs.get("not_finite") for t in built.values()):
        lines.append(f"- {NOT_FINITE_NOTE} (listed under *Ok runs without a finite value*).")
    if COMPUTATION in frame.columns:
        lines.append(
            f"- `{COMPUTATION}={VMAP}`: members of a vectorized ensemble "
            "(`hydra.launcher.vectorize=true`), which round differently from their single runs: "
            "never pooled with them or counted as their duplicates."
        )
    if any(f"{TIME_SHARED}=" in str(label) for t in built.values() for label in t.index):
        lines.append(
            f"- `{TIME_SHARED}=True` in a table of memory or a time: members of a batched "
            "ensemble whose time and memory are the ensemble's, kept apart from values that are "
            "a run's own."
        )
    if any(t.attrs.get("ensembles") for t in built.values()):
        lines.append(
            "- `(n ensembles)` in a cell: the members of one batched ensemble share one time "
            "and memory value (`time_shared`), counted once per ensemble (`ensemble_id`); n is "
            "the number of ensembles, not of runs. The paired comparison of memory or a time "
            "leaves such runs out."
        )
    return [*lines, ""]


def _seeds_text(numbers: list[int]) -> str:
    low, high = min(numbers), max(numbers)
    return f"{low} seed{'s' if low != 1 else ''}" if low == high else f"{low} to {high} seeds"


def _seeds_section(tables: dict, comparison: paired.PairedComparison) -> list[str]:
    """What the numbers of seeds in the tables and the paired comparison can show, said once."""
    counts = sorted(
        {n for t in tables.values() if isinstance(t, pd.DataFrame) for n in t.attrs["counts"]}
    )
    if not counts:
        return []
    lines = [f"## What {_seeds_text(counts)} can show", ""]
    if counts[0] == 1:
        lines.append("- A cell of 1 run has no spread and no interval (n/a).")
    several = [n for n in counts if n >= 2]
    if several:
        quantiles = ", ".join(f"{t_quantile(n):.3g} at n = {n}" for n in several[:6])
        text = (
            "- A 95 % interval from n runs reaches t(0.975, n - 1) standard errors either side "
            f"of the mean (of the logs, on the log scale): t = {quantiles}."
        )
        if several[0] == 2:
            text += (
                " From 2 runs it is 12.7 times as wide as the gap between the two values; on the "
                "log scale it spans their ratio to the power 12.7 (two errors a factor of 2 "
                "apart give an interval spanning a factor of about 6,600). Such an interval "
                "says that the mean is barely known, not where it lies; the two values "
                "themselves say more."
            )
        lines.append(text)
    table = comparison.table
    if comparison.baseline is not None and not table.empty:
        nonzero = sorted({int(n) for n in table["nonzero"]})
        floors = ", ".join(
            f"{_p(smallest_exact_p(m))} with {m} pair{'s' if m != 1 else ''}"
            for m in nonzero[:6]
            if m >= 1
        )
        level = f"{ALPHA * 100:g} %"
        needed = pairs_needed(ALPHA)
        text = (
            "- The paired comparison's exact Wilcoxon test cannot give a p below 2 / 2^m with m "
            "pairs whose ratio is not 1" + (f" (here the smallest p is {floors})" if floors else "")
        )
        if nonzero[0] < needed:
            text += (
                f", so with fewer than {needed} such pairs no difference can be significant at "
                f"{level}, however large; *not significant* there means *not shown*, not *no "
                "difference*"
            )
        lines.append(
            text + ". Its interval of the geometric mean ratio widens as n shrinks, as above."
        )
    return [*lines, ""]


def _p(value: float) -> str:
    return f"{value:.3g}"


def _not_finite_section(frame: pd.DataFrame) -> list[str]:
    """The ok runs (counted ones) whose record holds values that are not finite numbers."""
    if NOT_FINITE not in frame.columns:
        return []
    ok = ok_runs(frame)
    bad = ok[ok[NOT_FINITE].notna()]
    if bad.empty:
        return []
    lines = [
        "## Ok runs without a finite value",
        "",
        f"{len(bad)} ok run(s) recorded a value that is not a finite number (NaN or infinite; "
        "the runner writes such a metric as null; or not a number at all, a string or a "
        "boolean). Each is left out of every table and paired comparison of that value, and "
        "counted in its cell as *not finite*; `NAME_per_round[r]`: the value after round r.",
        "",
    ]
    for run_dir, names in zip(bad["run_dir"], bad[NOT_FINITE]):
        values = ", ".join(f"`{n}` = {_value_text(bad, run_dir, n)}" for n in names.split(", "))
        lines.append(f"- `{run_dir}`: {values}")
    return [*lines, ""]


def _value_text(runs: pd.DataFrame, run_dir: str, column: str) -> str:
    """``inf``, ``-inf`` or ``NaN`` (also for null) of one run's column, or the value that is
    not a number as the record holds it (``"abc"``, ``true``); ``NAME_per_round[r]``: the
    value after round r."""
    name, _, index = column.partition("[")
    value = runs.loc[runs["run_dir"] == run_dir, name].iloc[0] if name in runs else None
    if index and isinstance(value, list):
        value = value[int(index.rstrip("]"))]
    if isinstance(value, (bool, str)):
        return json.dumps(value)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "NaN"
    return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")


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


def _duplicate_section(frame: pd.DataFrame) -> list[str]:
    """The ok runs not counted because a newer run has the same setting and seed."""
    if DUPLICATE_OF not in frame.columns or frame[DUPLICATE_OF].isna().all():
        return []
    lines = [
        "## Duplicate runs, not counted",
        "",
        "Ok runs with the same config and seed as a newer run; only the newest counts.",
        "",
    ]
    dups = frame[frame[DUPLICATE_OF].notna()]
    for run_dir, kept in zip(dups["run_dir"], dups[DUPLICATE_OF]):
        lines.append(f"- `{run_dir}`: same as `{kept}`")
    return [*lines, ""]


def duplicate_count(frame: pd.DataFrame) -> int:
    """The number of runs not counted as duplicates.

    Args:
        frame: the runs.

    Returns:
        How many rows have ``duplicate_of`` set.
    """
    return int(frame[DUPLICATE_OF].notna().sum()) if DUPLICATE_OF in frame.columns else 0


def compare(
    frame: pd.DataFrame, baseline: str | None, cols, metric: str
) -> paired.PairedComparison:
    """``paired.paired_comparison``; when it fails, an empty one whose note says why (the
    report is written anyway).

    Args:
        frame: the runs.
        baseline: the baseline sampler, or None (``rad`` when it has runs).
        cols: the table's column keys.
        metric: the compared column.

    Returns:
        The comparison.
    """
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
    """The text of ``summary.md``: status counts, how to read the tables and what their numbers
    of seeds can show, the tables, the paired comparison, the ok runs without a finite value,
    the failed runs, the duplicates.

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
    duplicates = duplicate_count(frame)
    note = f" ({duplicates} duplicate run(s) not counted)" if duplicates else ""
    lines += [f"Status: {status_counts(frame)}{note}", ""]
    names = ordered_union([metric, memory_metric(frame), "wall_time_s"])
    tables = {name: _build_table(frame, rows, cols, name) for name in names}
    if comparison is None:
        comparison = compare(frame, baseline, cols, metric)
    lines += _reading_section(frame, rows, cols, tables) + _seeds_section(tables, comparison)
    for name in names:
        lines += _table_section(frame, rows, cols, name, tables[name])
    lines += paired_text.markdown_section(comparison)
    return "\n".join(
        lines + _not_finite_section(frame) + _problem_section(frame) + _duplicate_section(frame)
    )
