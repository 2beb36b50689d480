"""Plots over many runs; each is drawn only when the data supports it, and skipped otherwise.

Every plot is a function ``draw(frame, base, metric) -> Figure | None`` (a ``Plot``: ``frame``
the runs; ``base`` the folder ``run_dir`` is relative to; ``metric`` the table's metric)
registered in ``PLOTS`` under its file name; ``make_plots`` writes them with the report's one
PNG writer. ``plot_lines`` says which runs make a line and what its points show (on the
tables' scale); ``plot_points`` draws the collocation sets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from pinn_exp.io import record  # noqa: E402
from pinn_exp.metrics import registry  # noqa: E402
from pinn_exp.report.plot_lines import (  # noqa: E402
    MEMORY_LABELS,
    METRIC_LABELS,
    either,
    errorbars,
    line_names,
    text_column,
)
from pinn_exp.report.plot_points import plot_points_by_sampler  # noqa: E402
from pinn_exp.report.png import save_png  # noqa: E402
from pinn_exp.report.runs import memory_metric, numeric, ok_runs  # noqa: E402

log = logging.getLogger(__name__)

#: the class name (``sampler_class`` of the record) of the sampler whose lambda is plotted
RSMOTE_CLASS = "RSmote"
#: the config keys of the lambda axis
LAMBDA_KEYS = ("sampler.ratio",)
#: a plot: ``draw(frame, base, metric)`` returns the figure, or None when the data lacks it
Plot = Callable[[pd.DataFrame, Path, str], "plt.Figure | None"]


# ----------------------------------------------------------------------------- error per round


def _round_matrix(curves: list[list[float]]) -> np.ndarray:
    """The curves as rows of a matrix padded with NaN; non-positive values become NaN."""
    width = max(len(c) for c in curves)
    matrix = np.full((len(curves), width), np.nan)
    for i, curve in enumerate(curves):
        matrix[i, : len(curve)] = curve
    matrix[~(matrix > 0)] = np.nan
    return matrix


def _draw_rounds(ax, runs: pd.DataFrame, column: str, label: str) -> None:
    """Median over seeds of a per-round list, with a min-max band (light) and a 25-75 %
    band (dark), one line per sampler and setting; log y."""
    samplers = line_names(runs, "sampler")
    for sampler in sorted(samplers.unique()):
        matrix = _round_matrix(list(runs.loc[samplers == sampler, column]))
        rounds = np.arange(matrix.shape[1])
        seen = ~np.isnan(matrix).all(axis=0)
        if not seen.any():
            continue
        sub, x = matrix[:, seen], rounds[seen]
        (line,) = ax.semilogy(
            x, np.nanmedian(sub, axis=0), "o-", ms=3, label=f"{sampler} ({len(matrix)})"
        )
        color = line.get_color()
        ax.fill_between(
            x, np.nanmin(sub, axis=0), np.nanmax(sub, axis=0), color=color, alpha=0.12, lw=0
        )
        low, high = np.nanpercentile(sub, [25, 75], axis=0)
        ax.fill_between(x, low, high, color=color, alpha=0.3, lw=0)
    ax.set_xlabel("round (0 = after initial training)")
    ax.set_ylabel(label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8, title="sampler (runs)")


def _per_round_column(frame: pd.DataFrame, metric: str) -> tuple[str, str] | None:
    """The per-round field of ``metric`` when runs have it, else the primary metric's; with
    the axis label."""
    for name in dict.fromkeys([metric, registry.PRIMARY]):
        column = registry.per_round(name)
        if column in record.per_round_fields() and column in frame.columns:
            has = frame[column].map(lambda v: isinstance(v, list) and any(x > 0 for x in v))
            if has.astype(bool).any():
                return column, METRIC_LABELS.get(name, name)
    return None


def plot_error_per_round(
    frame: pd.DataFrame, base: Path, metric: str = registry.PRIMARY
) -> plt.Figure | None:
    """A metric against round, median over seeds with min-max and 25-75 % bands, a line per
    sampler, a panel per PDE; log y.

    Args:
        frame: the runs.
        base: the folder ``run_dir`` is relative to (unused).
        metric: the metric whose per-round list is drawn; the primary metric (relative L2
            error) when runs have no list for it (memory, times).

    Returns:
        The figure, or None when no ok run has a per-round list.
    """
    ok = ok_runs(frame)
    found = _per_round_column(ok, metric)
    if found is None:
        return None
    column, label = found
    has = ok[column].map(lambda v: isinstance(v, list) and any(x > 0 for x in v))
    runs = ok[has.astype(bool)]
    pdes = text_column(runs, "pde")
    names = sorted(pdes.unique())
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    for ax, pde in zip(axes[0], names):
        _draw_rounds(ax, runs[pdes == pde], column, label)
        ax.set_title(f"{pde}: median over seeds, bands min-max and 25-75 %", fontsize=9)
    return fig


# ----------------------------------------------------------------------------- against lambda


def is_rsmote(frame: pd.DataFrame) -> pd.Series:
    """Which runs used RSmote: by the record's ``sampler_class``; for records without that
    field (older runs), by the sampler's name starting with ``rsmote``.

    Args:
        frame: the runs.

    Returns:
        A boolean series aligned with ``frame``.
    """
    by_name = text_column(frame, "sampler").str.lower().str.startswith(RSMOTE_CLASS.lower())
    if "sampler_class" not in frame.columns:
        return by_name
    known = frame["sampler_class"].notna()
    by_class = frame["sampler_class"].astype(object).astype(str) == RSMOTE_CLASS
    return by_class.where(known, by_name).astype(bool)


def _rsmote_runs(frame: pd.DataFrame) -> pd.DataFrame | None:
    """Ok RSmote runs with their λ in column ``_lambda``; None when λ takes < 2 values."""
    ok = ok_runs(frame)
    runs = ok[is_rsmote(ok)]
    runs = runs.assign(_lambda=either(runs, "sampler.ratio", "ratio")).dropna(subset=["_lambda"])
    return runs if runs["_lambda"].nunique() >= 2 else None


def plot_error_vs_lambda(
    frame: pd.DataFrame, base: Path, metric: str = registry.PRIMARY
) -> plt.Figure | None:
    """RSmote error against λ (``sampler.ratio``) over seeds, a line per PDE; ``base`` unused,
    ``metric`` the error column (the primary metric when it is not an error: a memory or time
    table).

    Returns:
        The figure, or None when λ takes fewer than two values.
    """
    runs = _rsmote_runs(frame)
    metric = metric if record.is_scientific(metric) else registry.PRIMARY
    if runs is None or numeric(runs, metric).notna().sum() == 0:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4))
    y = numeric(runs, metric)
    spread = errorbars(ax, runs, runs["_lambda"], y, "pde", LAMBDA_KEYS, metric)
    if (y > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("λ (sampler.ratio)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(f"RSmote: error against λ ({spread})")
    return fig


def _memory_axes(figsize: tuple[float, float], column: str, x_label: str):
    """A figure for peak memory (``column``) against ``x_label``."""
    fig, ax = plt.subplots(figsize=figsize)
    ax.set_xlabel(x_label)
    ax.set_ylabel(MEMORY_LABELS.get(column, column))
    return fig, ax


def plot_memory_vs_lambda(
    frame: pd.DataFrame, base: Path, metric: str = registry.PRIMARY
) -> plt.Figure | None:
    """RSmote peak memory (GPU, else CPU RSS) against λ over seeds, a line per PDE; ``base``
    and ``metric`` unused (the memory column is chosen by the data).

    Returns:
        The figure, or None when λ takes fewer than two values or no memory was recorded.
    """
    runs = _rsmote_runs(frame)
    if runs is None:
        return None
    column = memory_metric(runs)
    if numeric(runs, column).notna().sum() == 0:
        return None
    fig, ax = _memory_axes((5.5, 4), column, "λ (sampler.ratio)")
    y = numeric(runs, column)
    spread = errorbars(ax, runs, runs["_lambda"], y, "pde", LAMBDA_KEYS, column)
    ax.set_title(f"RSmote: peak memory against λ ({spread})")
    return fig


# ----------------------------------------------------------------------------- against dim


def _mark_oom(ax, oom: pd.DataFrame, dims: pd.Series) -> None:
    """A red x at the top of the axis for each dimension where runs ran out of memory."""
    samplers = text_column(oom, "sampler")
    top = ax.get_xaxis_transform()
    for i, dim in enumerate(sorted(dims.dropna().unique())):
        names = ", ".join(sorted(samplers[dims == dim].unique()))
        ax.plot(
            [dim],
            [0.95],
            "x",
            color="red",
            ms=10,
            mew=2,
            transform=top,
            label="OOM" if i == 0 else None,
        )
        ax.annotate(
            f"OOM ({names})",
            (dim, 0.95),
            xycoords=top,
            xytext=(0, -14),
            textcoords="offset points",
            ha="center",
            va="top",
            color="red",
            fontsize=7,
        )


def plot_memory_vs_dim(
    frame: pd.DataFrame, base: Path, metric: str = registry.PRIMARY
) -> plt.Figure | None:
    """Peak memory (GPU, else CPU RSS) against ``pde.dim`` over seeds, a line per sampler, OOM
    runs marked; ``base`` and ``metric`` unused (the memory column is chosen by the data).

    Returns:
        The figure, or None when fewer than two dimensions are present.
    """
    column = memory_metric(frame)
    dims = either(frame, "pde.dim", "dim")
    memory = numeric(frame, column)
    ok_mask = (frame["status"] == "ok") & memory.notna() & dims.notna()
    oom_mask = (frame["status"] == "oom") & dims.notna()
    if dims[ok_mask | oom_mask].nunique() < 2:
        return None
    fig, ax = _memory_axes((6, 4.5), column, "dimension (pde.dim)")
    ok = frame[ok_mask]
    spread = errorbars(ax, ok, dims[ok_mask], memory[ok_mask], "sampler", ("pde.dim",), column)
    if oom_mask.any():
        ax.set_ylim(top=max(ax.get_ylim()[1], 1.0) * 1.15)
        _mark_oom(ax, frame[oom_mask], dims[oom_mask])
        ax.legend(fontsize=8, title="sampler")
    shown = dims[ok_mask | oom_mask]
    pad = max(0.05 * (shown.max() - shown.min()), 0.5)
    ax.set_xlim(shown.min() - pad, shown.max() + pad)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"peak memory against dimension ({spread})")
    return fig


# ----------------------------------------------------------------------------- all


#: every sweep plot by its file name, drawn in this order
PLOTS: dict[str, Plot] = {
    "error_per_round.png": plot_error_per_round,
    "error_vs_lambda.png": plot_error_vs_lambda,
    "memory_vs_lambda.png": plot_memory_vs_lambda,
    "memory_vs_dim.png": plot_memory_vs_dim,
    "points_by_sampler.png": plot_points_by_sampler,
}


def make_plots(frame: pd.DataFrame, out_dir: Path, metric: str = registry.PRIMARY) -> list[Path]:
    """Writes every plot the data supports into ``out_dir``; a plot that fails is skipped.

    Args:
        frame: the runs (``run_dir`` relative to ``out_dir`` or absolute).
        out_dir: where the PNG files go.
        metric: the table's metric, passed to every plot.

    Returns:
        The written files.
    """
    out_dir = Path(out_dir)
    written = []
    for name, draw in PLOTS.items():
        try:
            fig = draw(frame, out_dir, metric)
            if fig is not None:
                written.append(save_png(fig, out_dir / name))
        except Exception as exc:  # one plot must not stop the others
            log.warning("plot %s skipped: %s", name, exc)
            plt.close("all")
    return written
