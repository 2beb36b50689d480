"""The plots of one run: loss curve, error per round, collocation points, the residual map
and the solution (reference, prediction and pointwise error on the test set). Each takes the
run's title (PDE, sampler, seed, final error) and labels axes with the PDE's own coordinate
names."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.tri import Triangulation  # noqa: E402

# every plot of a run is written by the report's one PNG writer
from pinn_exp.report.png import save_png as _save  # noqa: E402

#: the vertical markers of loss.png, as each line's ``gid``: a sampling round's first step, and
#: the first L-BFGS step of a round that began with Adam
ROUND_MARK, LBFGS_MARK = "round_start", "lbfgs_start"


def loss_terms(history: pd.DataFrame) -> list[str]:
    """The loss columns of ``history``: the total ``loss`` first, then each term
    (``loss_pde``, ``loss_bc``, ...) in the file's order."""
    terms = [c for c in history.columns if c.startswith("loss")]
    return sorted(terms, key=lambda c: c != "loss")


def round_starts(history: pd.DataFrame) -> list[int]:
    """Row positions where a new round begins (the first round's start excluded)."""
    rounds = history["round"].to_numpy()
    return [int(i) for i in np.flatnonzero(rounds[1:] != rounds[:-1]) + 1]


def lbfgs_starts(history: pd.DataFrame) -> list[int]:
    """Row positions of the Adam -> L-BFGS switch: the first ``lbfgs`` row of a round whose
    row before it is an ``adam`` row of the same round."""
    rounds, phase = history["round"].to_numpy(), history["phase"].astype(str).to_numpy()
    switch = (phase[1:] == "lbfgs") & (phase[:-1] == "adam") & (rounds[1:] == rounds[:-1])
    return [int(i) for i in np.flatnonzero(switch) + 1]


def plot_loss(path: Path, history: pd.DataFrame, title: str = "") -> None:
    """Every loss term of ``history.csv`` per optimizer step on a log scale (the total in
    black), with the sampling rounds' starts (dashed grey) and each round's switch from Adam
    to L-BFGS (dotted red) marked; the legend sits beside the axes."""
    fig, ax = plt.subplots(figsize=(8.5, 4))
    if not history.empty:
        steps = np.arange(len(history))
        for name in loss_terms(history):
            total = name == "loss"
            ax.semilogy(
                steps,
                history[name].to_numpy(dtype=float),
                lw=1.4 if total else 0.8,
                color="k" if total else None,
                ls="-" if total else "--",
                label="total loss" if total else name,
                gid=name,
            )
        for marks, gid, style, what in (
            (round_starts(history), ROUND_MARK, dict(color="grey", ls="--"), "round starts"),
            (lbfgs_starts(history), LBFGS_MARK, dict(color="tab:red", ls=":"), "Adam -> L-BFGS"),
        ):
            for n, i in enumerate(marks):
                ax.axvline(i, lw=0.8, gid=gid, label=what if n == 0 else "_nolegend_", **style)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    ax.set_xlabel("optimizer step (Adam and L-BFGS, all rounds)")
    ax.set_ylabel("loss")
    ax.set_title("training loss per term")
    _save(fig, path, title)


def plot_error(path: Path, errors: list[float], title: str = "") -> None:
    """Relative L2 error after the initial training (round 0) and after each round."""
    fig, ax = plt.subplots(figsize=(5, 4))
    if errors:
        ax.semilogy(range(len(errors)), errors, "o-")
    ax.set_xlabel("round (0 = after initial training)")
    ax.set_ylabel("relative L2 error")
    _save(fig, path, title)


def plot_points(
    path: Path,
    collocation: dict[str, np.ndarray],
    labels: tuple[str, ...] = ("x_1", "x_2"),
    title: str = "",
) -> None:
    """The first and the last interior set (first two coordinates when d > 2)."""
    keys = sorted(collocation, key=lambda k: int(k.split("_")[1]))
    shown = [keys[0], keys[-1]] if len(keys) > 1 else keys
    fig, axes = plt.subplots(
        1, max(len(shown), 1), figsize=(5 * max(len(shown), 1), 4), squeeze=False
    )
    for ax, key in zip(axes[0], shown):
        pts = collocation[key]
        y = pts[:, 1] if pts.shape[1] > 1 else np.zeros(len(pts))
        ax.scatter(pts[:, 0], y, s=1)
        ax.set_title(f"{key} ({len(pts)} points)")
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1] if pts.shape[1] > 1 else "")
    _save(fig, path, title)


def plot_residual(
    path: Path,
    grid: np.ndarray,
    residual: np.ndarray,
    points: np.ndarray | None = None,
    labels: tuple[str, ...] = ("x_1", "x_2"),
    title: str = "",
) -> None:
    """|residual| on a regular grid (log colour scale; a curve in 1-D) with the collocation
    points on top.

    Args:
        grid: the grid, (n_1, ..., n_d, d) for d = 1 or 2.
        residual: |residual| there, (n_1, ..., n_d).
        points: the collocation set to draw, (N, d).
    """
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if grid.shape[-1] == 1:
        values = np.maximum(residual, max(float(np.nanmax(residual)) * 1e-6, np.finfo(float).tiny))
        ax.semilogy(grid[:, 0], values)
        if points is not None:
            ax.plot(points[:, 0], np.full(len(points), values.min()), "|", color="k", ms=6)
        ax.set_xlabel(labels[0])
        ax.set_ylabel("|residual|")
    else:
        mesh = draw_residual_map(ax, grid, residual, points, labels)
        fig.colorbar(mesh, ax=ax, label="|residual|")
    ax.set_title("|residual| after the last round; dots: the collocation set", fontsize=10)
    _save(fig, path, title)


#: the colour map of |residual| and |error| panels, and the style of the points drawn on them:
#: a light fill with a dark edge, so that each point contrasts with every colour of the map
#: (the fill with its dark end, the edge with its light end)
MAP_CMAP = "magma"
POINT_STYLE = dict(s=4, c="#00e5ff", edgecolors="k", linewidths=0.3)
#: the share of a map's area that may lie below its colour scale: a zero of the residual is a
#: line where log|residual| plunges, and a floor at this percentile keeps such lines from
#: stretching the scale over decades that only they occupy
FLOOR_PERCENTILE = 5


def log_norm(values: np.ndarray) -> LogNorm:
    """A log colour scale from the ``FLOOR_PERCENTILE``-th percentile of ``values`` (clipped
    below; at least 1e-6 of the maximum) to their maximum."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    top = float(finite.max()) if finite.size else 1.0
    floor = max(top * 1e-6, np.finfo(float).tiny)
    positive = finite[finite > floor]
    if positive.size:
        floor = max(floor, float(np.percentile(finite, FLOOR_PERCENTILE)))
    return LogNorm(vmin=min(floor, top), vmax=max(top, floor), clip=True)


def draw_residual_map(
    ax: plt.Axes,
    grid: np.ndarray,
    residual: np.ndarray,
    points: np.ndarray | None = None,
    labels: tuple[str, ...] = ("x_1", "x_2"),
):
    """Draws a 2-D |residual| map (log colours, :func:`log_norm`, no contour lines) on ``ax``,
    the points on top in :data:`POINT_STYLE`; returns the colour mesh (for a colour bar)."""
    norm = log_norm(residual)
    values = np.clip(residual, norm.vmin, norm.vmax)
    mesh = ax.pcolormesh(
        grid[..., 0], grid[..., 1], values, norm=norm, cmap=MAP_CMAP, shading="auto"
    )
    if points is not None:
        ax.scatter(points[:, 0], points[:, 1], **POINT_STYLE)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    return mesh


def _grid_order(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Where the 2-D points ``x`` are a full tensor grid: the order that puts them in 'ij'
    order and the grid's shape; None otherwise (scattered points)."""
    first, second = np.unique(x[:, 0]), np.unique(x[:, 1])
    if len(first) * len(second) != len(x) or min(len(first), len(second)) < 2:
        return None
    order = np.lexsort((x[:, 1], x[:, 0]))
    shape = (len(first), len(second))
    ordered = x[order]
    if not (
        np.array_equal(ordered[:, 0].reshape(shape), np.repeat(first, len(second)).reshape(shape))
        and np.array_equal(ordered[:, 1].reshape(shape), np.tile(second, len(first)).reshape(shape))
    ):
        return None
    return order, shape


def _solution_maps(
    fig, axes, x_test: np.ndarray, panels: tuple, labels: tuple[str, ...] = ("x_1", "x_2")
) -> None:
    """Colour maps of ``panels`` (values, name, colour limits, colour map) over the 2-D test
    points, on a grid as cells, else on one triangulation shared by the panels."""
    on_grid = _grid_order(x_test)
    if on_grid is None:  # scattered points: one triangulation for the three panels
        triangles = Triangulation(x_test[:, 0], x_test[:, 1])
    for ax, (values, name, limits, cmap) in zip(axes, panels):
        style = dict(vmin=limits[0], vmax=limits[1], cmap=cmap)
        if on_grid is None:
            mesh = ax.tripcolor(triangles, values, shading="gouraud", **style)
        else:  # a grid (the reference grids): cells, about a pixel each, no triangulation
            order, shape = on_grid
            grid = x_test[order]
            mesh = ax.pcolormesh(
                grid[:, 0].reshape(shape),
                grid[:, 1].reshape(shape),
                values[order].reshape(shape),
                shading="nearest",
                **style,
            )
        fig.colorbar(mesh, ax=ax)
        ax.margins(0)  # the test set's extent, points included, without white edges
        ax.set_title(name)
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])


def _solution_2d(x_test, u_ref, u_pred, error, points, labels) -> plt.Figure:
    """Reference, prediction and |error| as colour maps, the collocation set on the last."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    lo, hi = np.nanmin(u_ref), np.nanmax(u_ref)
    panels = (
        (u_ref, "reference", (lo, hi), None),
        (u_pred, "prediction", (lo, hi), None),
        (error, "|prediction - reference|", (None, None), MAP_CMAP),
    )
    _solution_maps(fig, axes, x_test, panels, labels)
    if points is not None and len(points):
        axes[2].scatter(
            points[:, 0],
            points[:, 1],
            **{**POINT_STYLE, "s": 2, "linewidths": 0.2},
            label=f"final collocation set ({len(points)})",
        )
        # below the panel, outside the axes: inside it would cover part of the domain
        # (in a corner it covered Burgers' shock, where the error is largest)
        axes[2].legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.16),
            fontsize=8,
            markerscale=3,
            frameon=False,
        )
    return fig


def _solution_1d(x_test, u_ref, u_pred, error, labels) -> plt.Figure:
    """The reference and prediction curves, and |error| on a log scale."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    order = np.argsort(x_test[:, 0])
    axes[0].plot(x_test[order, 0], u_ref[order], label="reference")
    axes[0].plot(x_test[order, 0], u_pred[order], "--", label="prediction")
    axes[0].legend()
    axes[1].semilogy(x_test[order, 0], error[order])
    axes[1].set_ylabel("|prediction - reference|")
    for ax in axes:
        ax.set_xlabel(labels[0])
    return fig


def _solution_nd(x_test, u_ref, u_pred, error) -> plt.Figure:
    """The prediction against the reference, and |error| against |x|."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].scatter(u_ref, u_pred, s=1)
    lo, hi = np.nanmin(u_ref), np.nanmax(u_ref)
    axes[0].plot([lo, hi], [lo, hi], "k--", lw=0.8)
    axes[0].set_xlabel("reference")
    axes[0].set_ylabel("prediction")
    radius = np.linalg.norm(x_test, axis=1)
    axes[1].scatter(radius, error, s=1)
    axes[1].set_xlabel(f"|x| (d = {x_test.shape[1]})")
    axes[1].set_ylabel("|prediction - reference|")
    return fig


def plot_solution(
    path: Path,
    x_test: np.ndarray,
    u_ref: np.ndarray,
    u_pred: np.ndarray,
    points: np.ndarray | None = None,
    labels: tuple[str, ...] = ("x_1", "x_2"),
    title: str = "",
) -> None:
    """Reference, prediction and |error| on the test set.

    With two inputs, three colour maps over the test points (the final collocation set drawn
    on the error panel); with one, the curves; with more, the prediction against the reference
    and the error against |x| (the distance from the origin), the two views that need no slice.
    """
    x_test, u_ref, u_pred = np.asarray(x_test), np.ravel(u_ref), np.ravel(u_pred)
    error = np.abs(u_pred - u_ref)
    dim = x_test.shape[1]
    if dim == 2:
        fig = _solution_2d(x_test, u_ref, u_pred, error, points, labels)
    elif dim == 1:
        fig = _solution_1d(x_test, u_ref, u_pred, error, labels)
    else:
        fig = _solution_nd(x_test, u_ref, u_pred, error)
    _save(fig, path, title)


def run_title(pde: str, sampler: str, seed, error: float | None, status: str = "ok") -> str:
    """'burgers · rsmote · seed 0 · relative L2 error 2.112e-02' (or the status when not ok)."""
    tail = f"relative L2 error {error:.3e}" if error is not None else f"status {status}"
    return f"{pde} · {sampler} · seed {seed} · {tail}"
