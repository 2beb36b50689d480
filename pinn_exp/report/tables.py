"""Tables over runs: grouping, mean ± std (with a Student-t confidence interval of the mean)
per group, and their markdown and LaTeX text. Numbers are formatted as the run record says
(``record.is_scientific``: errors in scientific notation, memory and times plainly)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pinn_exp.io import record
from pinn_exp.report.runs import numeric, ok_runs
from pinn_exp.report.stats import t_mean_ci

MISSING_LABEL = "none"
STD_NOTE = "std is the sample standard deviation (ddof=1); only runs with status `ok` counted"
CI_NOTE = "in brackets the 95 % t-interval of the mean (Student-t; n/a below 2 runs)"

# ----------------------------------------------------------------------------- grouping


def split_keys(spec: str | Sequence[str]) -> list[str]:
    """Grouping keys from ``"a,b"`` or ``["a", "b"]``.

    Args:
        spec: comma-separated names or a list of names.

    Returns:
        ``["a", "b"]`` (blanks dropped).
    """
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    return [p.strip() for p in parts if p and p.strip()]


def norm_label(value):
    """A hashable, comparable group label of one value.

    Args:
        value: a cell of the runs' frame.

    Returns:
        ``"none"`` for NaN/None/NA, ``10`` for ``10.0``, numpy scalars as Python values, else
        ``value``.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_LABEL
    if value is pd.NA or value is pd.NaT:
        return MISSING_LABEL
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def sort_key(label: tuple) -> tuple:
    """Sorts group labels: numbers first (by value), then strings, then missing values.

    Args:
        label: a group label (one value per key).

    Returns:
        A key for ``sorted``.
    """
    out = []
    for value in label:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((0, float(value), ""))
        elif value == MISSING_LABEL:
            out.append((2, 0.0, ""))
        else:
            out.append((1, 0.0, str(value)))
    return tuple(out)


def group_labels(frame: pd.DataFrame, keys: list[str]) -> list[tuple]:
    """The group label (one value per key) of every row; absent columns count as missing.

    Args:
        frame: the runs.
        keys: the grouping columns.

    Returns:
        One tuple per row, in row order; ``("all",)`` for every row when ``keys`` is empty.
    """
    if not keys:
        return [("all",)] * len(frame)
    columns = [frame[k].tolist() if k in frame.columns else [None] * len(frame) for k in keys]
    return [tuple(norm_label(v) for v in values) for values in zip(*columns)]


def _index(labels: list[tuple], keys: list[str]) -> pd.Index:
    """A (Multi)Index for the sorted group labels."""
    if len(keys) <= 1:
        name = keys[0] if keys else None
        return pd.Index([label[0] for label in labels], name=name, dtype=object)
    arrays = [list(level) for level in zip(*labels)] if labels else [[] for _ in keys]
    return pd.MultiIndex.from_arrays(arrays, names=keys or None)


# ----------------------------------------------------------------------------- formatting


def _plain(value: float) -> str:
    """Memory and times: one decimal, or 3 significant digits below 1."""
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"


def format_cell(values: Sequence[float], scientific: bool, ci: bool = False) -> str:
    """``"mean ± std (n)"`` of ``values``, std with ddof=1 (``n/a`` for a single value).

    Args:
        values: the numbers of one table cell.
        scientific: errors: mean with 3 and std with 2 significant digits (``1.23e-02 ± 4.5e-03``).
        ci: append ``[low, high]``, the 95 % Student-t confidence interval of the mean
            (``stats.t_mean_ci``; ``[n/a]`` below two values).

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
    text = f"{fmt_mean(mean)} ± {std_text} ({len(data)})"
    if ci:
        interval = t_mean_ci(data)
        bounds = "n/a" if interval is None else ", ".join(fmt_std(b) for b in interval)
        text += f" [{bounds}]"
    return text


def mean_std_table(
    frame: pd.DataFrame,
    rows: str | Sequence[str] = "sampler",
    cols: str | Sequence[str] = "pde",
    metric: str = "l2_rel_error",
    ci: bool = False,
) -> pd.DataFrame:
    """Mean ± std of ``metric`` over the ok runs of each (rows, cols) group.

    Args:
        frame: the runs (as from ``runs.collect_runs``).
        rows: column(s) whose values label the table rows; comma-separated or a list.
        cols: column(s) whose values label the table columns.
        metric: the numeric column to summarize.
        ci: also give each cell's 95 % Student-t confidence interval of the mean.

    Returns:
        A frame of strings ``"mean ± std (n)"`` (``"-"`` for empty cells; with ``ci``,
        ``"mean ± std (n) [low, high]"``); std uses ddof=1. Missing group values are labelled
        ``"none"``.
    """
    row_keys, col_keys = split_keys(rows), split_keys(cols)
    ok = ok_runs(frame)
    values = numeric(ok, metric)
    ok, values = ok[values.notna()], values[values.notna()]
    row_labels, col_labels = group_labels(ok, row_keys), group_labels(ok, col_keys)
    cells: dict[tuple, list[float]] = {}
    for r, c, v in zip(row_labels, col_labels, values.tolist()):
        cells.setdefault((r, c), []).append(v)
    row_order = sorted(set(row_labels), key=sort_key)
    col_order = sorted(set(col_labels), key=sort_key)
    scientific = record.is_scientific(metric)
    data = [
        [format_cell(cells.get((r, c), []), scientific, ci) for c in col_order] for r in row_order
    ]
    return pd.DataFrame(
        data, index=_index(row_order, row_keys), columns=_index(col_order, col_keys), dtype=object
    )


# ----------------------------------------------------------------------------- markdown, LaTeX


def _text(value) -> str:
    """A table label as text (tuples of a MultiIndex joined by commas)."""
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def md_escape(text: str) -> str:
    """``text`` safe inside a markdown table cell (pipes escaped, one line).

    Args:
        text: any text.

    Returns:
        The escaped text.
    """
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
    lines = ["| " + " | ".join(map(md_escape, header)) + " |", "|" + "---|" * len(header)]
    for label, values in zip(table.index, table.itertuples(index=False, name=None)):
        label = label if isinstance(label, tuple) else (label,)
        cells = [str(v) for v in label] + [str(v) for v in values]
        lines.append("| " + " | ".join(map(md_escape, cells)) + " |")
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
