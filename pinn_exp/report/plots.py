"""Plots over many runs; each is drawn only when the data supports it, and skipped otherwise.

Every plot is a function ``draw(frame, base, metric) -> Figure | None`` (``base``: the folder
``run_dir`` is relative to; ``metric``: the table's metric) registered in ``PLOTS`` under its
file name; ``make_plots`` writes them with the report's one PNG writer.
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
from pinn_exp.report.png import save_png  # noqa: E402
from pinn_exp.report.runs import memory_metric, numeric, ok_runs, setting_keys  # noqa: E402
from pinn_exp.report.tables import display_label, setting_labels  # noqa: E402

log = logging.getLogger(__name__)

MEMORY_LABELS = {
    "peak_gpu_mem_mb": "peak GPU memory [MiB]",
    "peak_cpu_rss_mb": "peak CPU RSS [MiB]",
    "peak_cpu_rss_increase_mb": "peak CPU RSS over the run's start [MiB]",
}
METRIC_LABELS = {registry.PRIMARY: "relative L2 error"}
#: the class name (``sampler_class`` of the record) of the sampler whose lambda is plotted
RSMOTE_CLASS = "RSmote"
#: the config keys of the lambda axis
LAMBDA_KEYS = ("sampler.ratio",)
#: a plot: ``draw(frame, base, metric)`` returns the figure, or None when the data lacks it
Plot = Callable[[pd.DataFrame, Path, str], "plt.Figure | None"]


def _names(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` as strings (``"none"`` where missing or absent)."""
    if column not in frame.columns:
        return pd.Series("none", index=frame.index, dtype=object)
    return frame[column].astype(object).where(frame[column].notna(), "none").astype(str)


def _line_names(
    runs: pd.DataFrame, by: str, x: pd.Series | None = None, axis_keys: tuple[str, ...] = ()
) -> pd.Series:
    """The line of each run: its value of ``by``, with the settings that differ among the runs
    of one line at one ``x`` (``rsmote (n_points=300)``), so a line never pools settings.

    Args:
        runs: the runs of one panel.
        by: the column that names the lines (``sampler``, ``pde``).
        x: the x value of each run (None: one point per line, a curve over rounds).
        axis_keys: config keys that the x axis shows (not added to the names).
    """
    if runs.empty:
        return pd.Series(dtype=object, index=runs.index)
    candidates = [k for k in setting_keys(runs) if k not in axis_keys]
    frame = runs.assign(_x=x) if x is not None else runs
    items = setting_labels(frame, [by], ["_x"] if x is not None else [], candidates)
    return pd.Series([str(display_label(*item)[0]) for item in items], index=runs.index)


def _either(frame: pd.DataFrame, first: str, second: str) -> pd.Series:
    """Numeric ``frame[first]``, filled from ``frame[second]`` where missing."""
    return numeric(frame, first).fillna(numeric(frame, second))


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
    samplers = _line_names(runs, "sampler")
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
    pdes = _names(runs, "pde")
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
    by_name = _names(frame, "sampler").str.lower().str.startswith(RSMOTE_CLASS.lower())
    if "sampler_class" not in frame.columns:
        return by_name
    known = frame["sampler_class"].notna()
    by_class = frame["sampler_class"].astype(object).astype(str) == RSMOTE_CLASS
    return by_class.where(known, by_name).astype(bool)


def _rsmote_runs(frame: pd.DataFrame) -> pd.DataFrame | None:
    """Ok RSmote runs with their λ in column ``_lambda``; None when λ takes < 2 values."""
    ok = ok_runs(frame)
    runs = ok[is_rsmote(ok)]
    runs = runs.assign(_lambda=_either(runs, "sampler.ratio", "ratio")).dropna(subset=["_lambda"])
    return runs if runs["_lambda"].nunique() >= 2 else None


def _errorbars(
    ax, runs: pd.DataFrame, x: pd.Series, y: pd.Series, by: str, axis_keys: tuple[str, ...] = ()
) -> None:
    """Mean ± std (ddof=1) of ``y`` per value of ``x``, one line per value of ``runs[by]`` and
    setting (``_line_names``; ``axis_keys``: the config keys of the x axis)."""
    groups = _line_names(runs, by, x, axis_keys)
    data = pd.DataFrame({"x": x, "y": y, "g": groups}).dropna(subset=["x", "y"])
    for name, part in data.groupby("g", sort=True):
        stats = part.groupby("x")["y"].agg(["mean", "std"]).sort_index()
        ax.errorbar(
            stats.index,
            stats["mean"],
            yerr=stats["std"].fillna(0.0),
            fmt="o-",
            capsize=3,
            label=str(name),
        )
    if not data.empty:
        ax.legend(fontsize=8, title=by)


def plot_error_vs_lambda(
    frame: pd.DataFrame, base: Path, metric: str = registry.PRIMARY
) -> plt.Figure | None:
    """RSmote error against λ (``sampler.ratio``), mean ± std over seeds, a line per PDE.

    Args:
        frame: the runs.
        base: the folder ``run_dir`` is relative to (unused).
        metric: the error column; the primary metric when ``metric`` is not an error
            (a memory or time table).

    Returns:
        The figure, or None when λ takes fewer than two values.
    """
    runs = _rsmote_runs(frame)
    metric = metric if record.is_scientific(metric) else registry.PRIMARY
    if runs is None or numeric(runs, metric).notna().sum() == 0:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4))
    _errorbars(ax, runs, runs["_lambda"], numeric(runs, metric), "pde", LAMBDA_KEYS)
    if (numeric(runs, metric) > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("λ (sampler.ratio)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title("RSmote: error against λ (mean ± std)")
    return fig


def plot_memory_vs_lambda(
    frame: pd.DataFrame, base: Path, metric: str = registry.PRIMARY
) -> plt.Figure | None:
    """RSmote peak memory (GPU, else CPU RSS) against λ, mean ± std over seeds.

    Args:
        frame: the runs.
        base: the folder ``run_dir`` is relative to (unused).
        metric: the table's metric (unused: the memory column is chosen by the data).

    Returns:
        The figure, or None when λ takes fewer than two values or no memory was recorded.
    """
    runs = _rsmote_runs(frame)
    if runs is None:
        return None
    column = memory_metric(runs)
    if numeric(runs, column).notna().sum() == 0:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4))
    _errorbars(ax, runs, runs["_lambda"], numeric(runs, column), "pde", LAMBDA_KEYS)
    ax.set_xlabel("λ (sampler.ratio)")
    ax.set_ylabel(MEMORY_LABELS.get(column, column))
    ax.set_title("RSmote: peak memory against λ (mean ± std)")
    return fig


# ----------------------------------------------------------------------------- against dim


def _mark_oom(ax, oom: pd.DataFrame, dims: pd.Series) -> None:
    """A red x at the top of the axis for each dimension where runs ran out of memory."""
    samplers = _names(oom, "sampler")
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
    """Peak memory (GPU, else CPU RSS) against ``pde.dim``, a line per sampler; OOM runs marked.

    Args:
        frame: the runs.
        base: the folder ``run_dir`` is relative to (unused).
        metric: the table's metric (unused: the memory column is chosen by the data).

    Returns:
        The figure, or None when fewer than two dimensions are present.
    """
    column = memory_metric(frame)
    dims = _either(frame, "pde.dim", "dim")
    memory = numeric(frame, column)
    ok_mask = (frame["status"] == "ok") & memory.notna() & dims.notna()
    oom_mask = (frame["status"] == "oom") & dims.notna()
    if dims[ok_mask | oom_mask].nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ok = frame[ok_mask]
    _errorbars(ax, ok, dims[ok_mask], memory[ok_mask], "sampler", ("pde.dim",))
    if oom_mask.any():
        ax.set_ylim(top=max(ax.get_ylim()[1], 1.0) * 1.15)
        _mark_oom(ax, frame[oom_mask], dims[oom_mask])
        ax.legend(fontsize=8, title="sampler")
    shown = dims[ok_mask | oom_mask]
    pad = max(0.05 * (shown.max() - shown.min()), 0.5)
    ax.set_xlim(shown.min() - pad, shown.max() + pad)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("dimension (pde.dim)")
    ax.set_ylabel(MEMORY_LABELS.get(column, column))
    ax.set_title("peak memory against dimension (mean ± std)")
    return fig


# ----------------------------------------------------------------------------- points


def _last_round(path: Path) -> tuple[str, np.ndarray] | None:
    """The ``round_K`` array with the largest K in ``path``, or None."""
    try:
        with np.load(path) as data:
            keys = [k for k in data.files if k.startswith("round_") and k[6:].isdigit()]
            if not keys:
                return None
            key = max(keys, key=lambda k: int(k[6:]))
            points = np.asarray(data[key], dtype=float)
    except (OSError, ValueError, EOFError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None
    if points.ndim != 2 or len(points) == 0:
        return None
    return key, points


def _axis_labels(pde: object) -> tuple[str, str]:
    """The first two coordinate names of a built-in PDE by its record name (x and t for the
    space-time PDEs), else x_1 and x_2."""
    from pinn_exp import pdes

    for cls in vars(pdes).values():
        names = getattr(cls, "coordinate_names", None)
        if getattr(cls, "name", None) == pde and isinstance(names, tuple):
            return names[0], names[1]
    return "x_1", "x_2"


def _sampler_points(
    frame: pd.DataFrame, base: Path
) -> list[tuple[str, pd.Series, str, np.ndarray]]:
    """For each sampler and setting (``_line_names``), the last collocation set of its first
    ok run (lowest seed, then run directory) that saved one, with that run's row."""
    ok = ok_runs(frame)
    ok = ok.sort_values([c for c in ("seed", "run_dir") if c in ok.columns])
    samplers = _line_names(ok, "sampler")
    panels = []
    for sampler in sorted(samplers.unique()):
        for _, row in ok[samplers == sampler].iterrows():
            path = Path(base) / str(row["run_dir"]) / record.COLLOCATION
            found = _last_round(path) if path.is_file() else None
            if found is not None:
                panels.append((sampler, row, *found))
                break
    return panels


def plot_points_by_sampler(
    frame: pd.DataFrame, base: Path, metric: str = registry.PRIMARY
) -> plt.Figure | None:
    """The final collocation points (first two coordinates) side by side, a panel per sampler.

    Args:
        frame: the runs.
        base: the folder ``run_dir`` is relative to.
        metric: the table's metric (unused).

    Returns:
        The figure, or None when no ok run saved ``collocation.npz``.
    """
    panels = _sampler_points(frame, base)
    if not panels:
        return None
    # at least 6 inches wide: a single panel would clip the figure's title
    width = max(6.0, 4.0 * len(panels))
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 4.3), squeeze=False)
    for ax, (sampler, row, key, points) in zip(axes[0], panels):
        y = points[:, 1] if points.shape[1] > 1 else np.zeros(len(points))
        ax.scatter(points[:, 0], y, s=1)
        seed = row.get("seed")
        seed = "?" if seed is None or pd.isna(seed) else int(seed)
        ax.set_title(f"{sampler}, seed {seed}: {key} ({len(points)} points)", fontsize=9)
        xlabel, ylabel = _axis_labels(row.get("pde"))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel if points.shape[1] > 1 else "")
    fig.suptitle(
        "final collocation set of one run per sampler (the lowest seed)", fontsize=10, wrap=True
    )
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
