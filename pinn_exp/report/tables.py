"""Tables over runs, one cell per group (labels: ``grouping``), as markdown and LaTeX;
numbers formatted as the run record says (``record.is_scientific``).

A positive metric (``record.is_positive``: registry errors marked ``positive``, memory, times)
is summarized on the log scale: geometric mean ×/÷ geometric std and the exponentiated
t-interval of the mean log (never below zero); any other metric, or one with a value <= 0,
as mean ± std with a Student-t interval. Values that are not finite numbers are left out of a
cell and counted in it. A cell pools runs that differ in ``seed`` alone (and in keys that do
not change a run); a setting that differs inside a cell is added to the row's label,
``rsmote (n_points=300, rounds=3)``, and each row names its final N."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pinn_exp.io import record
from pinn_exp.report.grouping import (
    MISSING_LABEL,
    display_label,
    group_labels,
    norm_label,
    setting_labels,
    sort_key,
    split_keys,
)
from pinn_exp.report.run_files import FINAL_N
from pinn_exp.report.selections import not_finite, numeric, ok_runs
from pinn_exp.report.settings import setting_keys, time_kinds
from pinn_exp.report.stats import geometric_mean_ci, t_mean_ci

#: the name of the row level that gives the final size of the collocation set
FINAL_N_LEVEL = "final N"
SETTINGS_NOTE = (
    "a cell pools only runs that differ in `seed`; where runs of one row differ in another "
    "setting, the row's label names it, e.g. `rsmote (n_points=300, rounds=3)`; `final N`: "
    "the size of the collocation set after the last round"
)
STD_NOTE = "std is the sample standard deviation (ddof=1); only runs with status `ok` counted"
CI_NOTE = "in brackets the 95 % t-interval of the mean (Student-t; n/a below 2 runs)"
LOG, LINEAR = "log", "linear"  # a table's scale: log for positive metrics
CELL_TEXT = {
    LOG: "geometric mean ×/÷ geometric std (n) [95 % t-interval of the geometric mean]",
    LINEAR: "mean ± std (n) [95 % t-interval of the mean]",
}
LOG_NOTE = (
    "log scale: the geometric mean, ×/÷ the geometric standard deviation (the factor exp(s) of "
    "the logs' standard deviation s, ddof=1), and in brackets the 95 % Student-t interval of "
    "the mean of the logs, exponentiated (n/a below 2 runs): it never goes below zero"
)
LINEAR_NOTE = (
    "linear scale: the mean ± the standard deviation (ddof=1), and in brackets the 95 % "
    "Student-t interval of the mean (n/a below 2 runs)"
)
NOT_FINITE_NOTE = (
    "`k not finite` in a cell: ok runs whose value is NaN, infinite or not a number, left out "
    "of the cell"
)
#: the row key that splits the runs of a time metric whose times are an ensemble's share
TIME_SHARED = "time_shared"


def _index(labels: list[tuple], keys: list[str]) -> pd.Index:
    """A (Multi)Index for the sorted group labels."""
    if len(keys) <= 1:
        name = keys[0] if keys else None
        return pd.Index([label[0] for label in labels], name=name, dtype=object)
    arrays = [list(level) for level in zip(*labels)] if labels else [[] for _ in keys]
    return pd.MultiIndex.from_arrays(arrays, names=keys or None)


def _setting_sort_key(item: tuple[tuple, tuple]) -> tuple:
    label, settings = item
    return sort_key(label) + sort_key(tuple(v for _, v in settings))


def _final_n_text(values: list) -> str:
    """The distinct final sizes of a row's runs, ``1100`` or ``1100, 2750``."""
    known = sorted({v for v in values if v != MISSING_LABEL}, key=lambda v: sort_key((v,)))
    return ", ".join(str(v) for v in known) if known else "n/a"


# ----------------------------------------------------------------------------- formatting


def _plain(value: float) -> str:
    """Memory and times: one decimal, or 3 significant digits below 1 and from a million on
    (the far bound of a wide interval)."""
    return f"{value:.1f}" if 1 <= abs(value) < 1e6 else f"{value:.3g}"


def _finite_or_na(fmt):
    """``fmt``, with ``n/a`` for a value that is not finite (an interval's bound that
    overflowed): a table never prints nan or inf."""
    return lambda x: fmt(x) if math.isfinite(x) else "n/a"


def format_cell(
    values: Sequence[float],
    scientific: bool,
    ci: bool = False,
    log: bool = False,
    not_finite: int = 0,
    ensembles: int = 0,
) -> str:
    """``"mean ± std (n)"`` of ``values``, std with ddof=1 (``n/a`` for a single value); on
    the log scale ``"geometric mean ×/÷ geometric std (n)"``.

    Args:
        values: the finite numbers of one table cell (positive ones where ``log``).
        scientific: errors: mean with 3 and std with 2 significant digits (``1.23e-02 ± 4.5e-03``).
        ci: append ``[low, high]``, the 95 % Student-t confidence interval of the mean
            (``stats.t_mean_ci``), or on the log scale of the geometric mean
            (``stats.geometric_mean_ci``); ``[n/a]`` below two values.
        log: summarize on the log scale; the geometric std is a factor, 3 significant digits.
        not_finite: the ok runs of the cell whose value is not finite, left out and counted:
            ``(7; 1 not finite)``.
        ensembles: how many of ``values`` are one batched ensemble's value each (its members
            share it): ``(2 ensembles)``.

    Returns:
        The cell text; ``"-"`` when there are no values and none was left out.
    """
    if len(values) == 0 and not not_finite:
        return "-"
    n = len(values)
    if ensembles:
        n = (
            f"{n} ensemble{'s' if n != 1 else ''}"
            if ensembles == n
            else f"{n}, {ensembles} ensembles"
        )
    count = f"({n}; {not_finite} not finite)" if not_finite else f"({n})"
    if len(values) == 0:
        return f"n/a {count}" + (" [n/a]" if ci else "")
    data = np.asarray(values, dtype=float)
    fmt_mean = _finite_or_na((lambda x: f"{x:.2e}") if scientific else _plain)
    fmt_std = _finite_or_na((lambda x: f"{x:.1e}") if scientific else _plain)
    if log:
        center, spread, interval = geometric_mean_ci(data)
        text = f"{fmt_mean(center)} ×/÷ {_finite_or_na(lambda x: f'{x:.3g}')(spread)} {count}"
    else:
        std = float(np.std(data, ddof=1)) if len(data) > 1 else math.nan
        text = f"{fmt_mean(float(np.mean(data)))} ± {fmt_std(std)} {count}"
        interval = t_mean_ci(data)
    if ci:
        bounds = "n/a" if interval is None else ", ".join(fmt_std(b) for b in interval)
        text += f" [{'n/a' if bounds == 'n/a, n/a' else bounds}]"
    return text


def _ensemble_ids(runs: pd.DataFrame, metric: str) -> list[str | None]:
    """Per run, the ``ensemble_id`` under which its ``metric`` counts once per ensemble, else
    None: a memory or time value (``record.unit``) of a member whose time and memory are its
    ensemble's (``time_shared``) is one value shared by all members, and counting it per
    member would shrink its interval and inflate n. A record without ``ensemble_id`` (an
    older one) counts per run."""
    if not record.unit(metric) or "ensemble_id" not in runs.columns:
        return [None] * len(runs)
    kinds = time_kinds(runs)
    return [
        str(e) if kind[0] == "shared" and isinstance(e, str) and e else None
        for kind, e in zip(kinds, runs["ensemble_id"].tolist())
    ]


def table_scale(values: Sequence[float], metric: str) -> tuple[str, str | None]:
    """The scale of a table of ``metric`` over the finite ``values`` of its runs.

    Args:
        values: the finite values of every cell.
        metric: the column.

    Returns:
        ``(LOG, None)`` for a positive metric (``record.is_positive``) whose values are all
        above zero; ``(LINEAR, None)`` for other metrics; ``(LINEAR, why)`` for a positive
        metric with a value <= 0 (no log), ``why`` saying how many.
    """
    if not record.is_positive(metric):
        return LINEAR, None
    below = int(np.sum(np.asarray(values, dtype=float) <= 0))
    if below:
        return LINEAR, (
            f"`{metric}` is positive by nature and would be on the log scale, but "
            f"{below} of its values {'is' if below == 1 else 'are'} 0 or below"
        )
    return LOG, None


def _collect_cells(
    keys: list[tuple], values: list[float], finite: list[bool], ensembles: list[str | None]
) -> tuple[dict[tuple, list[float]], dict[tuple, dict[str, list[float]]], dict[tuple, int]]:
    """Group the runs' values by their (row, column) cell.

    Args:
        keys: each run's (row item, column label).
        values: each run's value of the metric.
        finite: whether each run's value is finite.
        ensembles: each run's ensemble id when its value is an ensemble's share, else None.

    Returns:
        ``cells`` (each cell's values, one per ensemble: the mean of its members' shares),
        ``shared`` (each cell's ensemble members' values by ensemble id) and ``dropped`` (the
        number of each cell's non-finite values).
    """
    cells: dict[tuple, list[float]] = {}
    shared: dict[tuple, dict[str, list[float]]] = {}
    dropped: dict[tuple, int] = {}
    for key, v, good, ens in zip(keys, values, finite, ensembles):
        cells.setdefault(key, [])
        if not good:
            dropped[key] = dropped.get(key, 0) + 1
        elif ens is not None:
            shared.setdefault(key, {}).setdefault(ens, []).append(v)
        else:
            cells[key].append(v)
    for key, members in shared.items():  # one value per ensemble: its members share it
        cells[key] += [float(np.mean(v)) for v in members.values()]
    return cells, shared, dropped


def _with_final_n(labels: list[tuple], row_order: list, row_items: list, sizes: list) -> list:
    """``labels`` (one per row of ``row_order``) with the row's final collocation-set size(s)."""
    by_row: dict[tuple, list] = {}
    for r, size in zip(row_items, sizes):
        by_row.setdefault(r, []).append(norm_label(size))
    return [(*label, _final_n_text(by_row[r])) for label, r in zip(labels, row_order)]


def mean_std_table(
    frame: pd.DataFrame,
    rows: str | Sequence[str] = "sampler",
    cols: str | Sequence[str] = "pde",
    metric: str = "l2_rel_error",
    ci: bool = False,
) -> pd.DataFrame:
    """Mean ± std of ``metric`` over the ok runs of each (rows, cols) group of one setting.

    Args:
        frame: the runs (as from ``runs.collect_runs``).
        rows: column(s) whose values label the table rows; comma-separated or a list.
        cols: column(s) whose values label the table columns.
        metric: the numeric column to summarize.
        ci: also give each cell's 95 % t-interval of the mean.

    Returns:
        A frame of strings ``"mean ± std (n)"`` (``"-"`` for empty cells; with ``ci``,
        ``"mean ± std (n) [low, high]"``); std uses ddof=1; on the log scale (``table_scale``)
        ``"geometric mean ×/÷ geometric std (n) [low, high]"``. Ok runs whose value is not
        finite are left out and counted in their cell (``(7; 1 not finite)``). Missing group
        values are labelled ``"none"``. A setting that differs among the runs of a cell is
        appended to the row label (``setting_labels``; for a time metric also
        ``time_shared``, where some runs' times are an ensemble's share), and, when the runs
        have ``final_n_points``, the last index level ``final N`` gives the row's final
        collocation-set size(s). ``attrs``: ``scale`` (``LOG`` or ``LINEAR``),
        ``scale_note`` (why a positive metric is linear, else None), ``not_finite`` (the
        runs left out) and ``counts`` (the number of values of each non-empty cell).
    """
    row_keys, col_keys = split_keys(rows), split_keys(cols)
    candidates = setting_keys(frame)
    ok = ok_runs(frame)
    if record.unit(metric) and TIME_SHARED in ok.columns:  # memory and times
        ok = ok.assign(**{TIME_SHARED: [k[0] == "shared" for k in time_kinds(ok)]})
        candidates = [*candidates, TIME_SHARED]
    values = numeric(ok, metric)
    finite = pd.Series(np.isfinite(values.to_numpy()), index=ok.index)
    keep = finite | not_finite(ok, metric)
    ok, values, finite = ok[keep], values[keep], finite[keep]
    row_items = setting_labels(ok, row_keys, col_keys, candidates)
    col_labels = group_labels(ok, col_keys)
    cells, shared, dropped = _collect_cells(
        list(zip(row_items, col_labels)),
        values.tolist(),
        finite.tolist(),
        _ensemble_ids(ok, metric),
    )
    row_order = sorted(set(row_items), key=_setting_sort_key)
    col_order = sorted(set(col_labels), key=sort_key)
    scientific = record.is_scientific(metric)
    scale, scale_note = table_scale(values[finite].tolist(), metric)
    data = [
        [
            format_cell(
                cells.get((r, c), []),
                scientific,
                ci,
                scale == LOG,
                dropped.get((r, c), 0),
                len(shared.get((r, c), {})),
            )
            for c in col_order
        ]
        for r in row_order
    ]
    labels = [display_label(*r) for r in row_order]
    names = row_keys or [None]
    if FINAL_N in frame.columns:
        labels = _with_final_n(labels, row_order, row_items, ok[FINAL_N].tolist())
        names = [*names, FINAL_N_LEVEL]
    table = pd.DataFrame(
        data, index=_index(labels, names), columns=_index(col_order, col_keys), dtype=object
    )
    table.attrs.update(
        scale=scale,
        scale_note=scale_note,
        not_finite=int((~finite).sum()),
        ensembles=sum(len(v) for v in shared.values()),
        counts=[len(v) for v in cells.values() if v],
    )
    return table


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
    return text.replace("±", r"$\pm$").replace("×/÷", r"$\times/\div$")
