"""The lines of the sweep plots: which runs make one line (never pooling settings), and what a
line's point and bar at one x show: for a positive quantity (errors, memory, times; the
tables' log scale, ``tables.table_scale``) the geometric mean with its 95 % Student-t interval
on a log y axis, else the mean ± std."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pinn_exp.metrics import registry  # noqa: E402
from pinn_exp.report.runs import numeric, setting_keys  # noqa: E402
from pinn_exp.report.stats import geometric_mean_ci  # noqa: E402
from pinn_exp.report.tables import LOG, display_label, setting_labels, table_scale  # noqa: E402

MEMORY_LABELS = {
    "peak_gpu_mem_mb": "peak GPU memory [MiB]",
    "peak_cpu_rss_mb": "peak CPU RSS [MiB]",
    "peak_cpu_rss_increase_mb": "peak CPU RSS over the run's start [MiB]",
}
METRIC_LABELS = {registry.PRIMARY: "relative L2 error"}
#: what a point and its bar show, per scale (the plots' titles)
SPREAD_TEXT = {LOG: "geometric mean, 95 % t-interval", "linear": "mean ± std"}


def text_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` as strings (``"none"`` where missing or absent).

    Args:
        frame: the runs.
        column: the column.

    Returns:
        The names, aligned with ``frame``.
    """
    if column not in frame.columns:
        return pd.Series("none", index=frame.index, dtype=object)
    return frame[column].astype(object).where(frame[column].notna(), "none").astype(str)


def line_names(
    runs: pd.DataFrame, by: str, x: pd.Series | None = None, axis_keys: tuple[str, ...] = ()
) -> pd.Series:
    """The line of each run: its value of ``by``, with the settings that differ among the runs
    of one line at one ``x`` (``rsmote (n_points=300)``), so a line never pools settings.

    Args:
        runs: the runs of one panel.
        by: the column that names the lines (``sampler``, ``pde``).
        x: the x value of each run (None: one point per line, a curve over rounds).
        axis_keys: config keys that the x axis shows (not added to the names).

    Returns:
        The names, aligned with ``runs``.
    """
    if runs.empty:
        return pd.Series(dtype=object, index=runs.index)
    candidates = [k for k in setting_keys(runs) if k not in axis_keys]
    frame = runs.assign(_x=x) if x is not None else runs
    items = setting_labels(frame, [by], ["_x"] if x is not None else [], candidates)
    return pd.Series([str(display_label(*item)[0]) for item in items], index=runs.index)


def either(frame: pd.DataFrame, first: str, second: str) -> pd.Series:
    """Numeric ``frame[first]``, filled from ``frame[second]`` where missing.

    Args:
        frame: the runs.
        first: the column read first (``sampler.ratio``).
        second: the column of older records (``ratio``).

    Returns:
        The values, aligned with ``frame``.
    """
    return numeric(frame, first).fillna(numeric(frame, second))


def _geometric(values: pd.Series) -> tuple[float, float, float]:
    """The geometric mean of ``values`` and its distances to the 95 % interval's ends (none
    for one value)."""
    mean, _, interval = geometric_mean_ci(values.to_numpy(dtype=float))
    low, high = interval if interval is not None else (mean, mean)
    return mean, mean - low, high - mean


def errorbars(
    ax,
    runs: pd.DataFrame,
    x: pd.Series,
    y: pd.Series,
    by: str,
    axis_keys: tuple[str, ...] = (),
    metric: str = "",
) -> str:
    """Draws ``y`` per value of ``x`` over the runs, one line per value of ``runs[by]`` and
    setting (``line_names``): on the tables' scale of ``metric`` (``tables.table_scale``), the
    geometric mean with its 95 % t-interval on a log y axis, else the mean ± std (ddof=1).

    Args:
        ax: the axes.
        runs: the runs.
        x: the x value of each run.
        y: the value of each run.
        by: the column that names the lines.
        axis_keys: the config keys of the x axis.
        metric: the column ``y`` holds (its scale).

    Returns:
        What the points and bars show, for the title (``SPREAD_TEXT``).
    """
    groups = line_names(runs, by, x, axis_keys)
    data = pd.DataFrame({"x": x, "y": y, "g": groups}).dropna(subset=["x", "y"])
    scale, _ = table_scale(data["y"][np.isfinite(data["y"])], metric)
    if scale == LOG:  # the tables leave values that are not finite out too
        data = data[np.isfinite(data["y"])]
    for name, part in data.groupby("g", sort=True):
        if scale == LOG:
            stats = part.groupby("x")["y"].apply(_geometric).sort_index()
            mean, below, above = (np.array([s[i] for s in stats]) for i in range(3))
            ax.errorbar(
                stats.index, mean, yerr=(below, above), fmt="o-", capsize=3, label=str(name)
            )
            continue
        stats = part.groupby("x")["y"].agg(["mean", "std"]).sort_index()
        ax.errorbar(
            stats.index,
            stats["mean"],
            yerr=stats["std"].fillna(0.0),
            fmt="o-",
            capsize=3,
            label=str(name),
        )
    if scale == LOG:
        ax.set_yscale("log")
    if not data.empty:
        ax.legend(fontsize=8, title=by)
    return SPREAD_TEXT[scale]
