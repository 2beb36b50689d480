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

# every plot of a run is written by the report's one PNG writer
from pinn_exp.report.png import save_png as _save  # noqa: E402


def plot_loss(path: Path, history: pd.DataFrame, title: str = "") -> None:
    """Loss per optimizer step on a log scale, round boundaries marked."""
    fig, ax = plt.subplots(figsize=(7, 4))
    if not history.empty:
        loss = history["loss"].to_numpy(dtype=float)
        ax.semilogy(np.arange(len(loss)), loss, lw=0.8)
        starts = history.index[history["round"].diff().fillna(0) != 0]
        for i in starts:
            ax.axvline(i, color="grey", ls="--", lw=0.6)
    ax.set_xlabel("optimizer step (Adam and L-BFGS, all rounds)")
    ax.set_ylabel("loss")
    ax.set_title("training loss; dashed lines: sampling rounds")
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
    ax.set_title("|residual| after the last round; dots: the collocation set")
    _save(fig, path, title)


def draw_residual_map(
    ax: plt.Axes,
    grid: np.ndarray,
    residual: np.ndarray,
    points: np.ndarray | None = None,
    labels: tuple[str, ...] = ("x_1", "x_2"),
):
    """Draws a 2-D |residual| map (log colours, floored at 1e-6 of its maximum) on ``ax``, the
    points on top in white; returns the colour mesh (for a colour bar)."""
    floor = max(float(np.nanmax(residual)) * 1e-6, np.finfo(float).tiny)
    values = np.maximum(residual, floor)
    norm = LogNorm(vmin=floor, vmax=float(values.max()))
    mesh = ax.pcolormesh(grid[..., 0], grid[..., 1], values, norm=norm, shading="auto")
    if points is not None:
        ax.scatter(points[:, 0], points[:, 1], s=1, c="w", edgecolors="none", alpha=0.8)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    return mesh


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
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        lo, hi = np.nanmin(u_ref), np.nanmax(u_ref)
        for ax, values, name, limits in (
            (axes[0], u_ref, "reference", (lo, hi)),
            (axes[1], u_pred, "prediction", (lo, hi)),
            (axes[2], error, "|prediction - reference|", (None, None)),
        ):
            mesh = ax.tripcolor(
                x_test[:, 0],
                x_test[:, 1],
                values,
                shading="gouraud",
                vmin=limits[0],
                vmax=limits[1],
            )
            fig.colorbar(mesh, ax=ax)
            ax.set_title(name)
            ax.set_xlabel(labels[0])
            ax.set_ylabel(labels[1])
        if points is not None and len(points):
            axes[2].scatter(
                points[:, 0],
                points[:, 1],
                s=0.5,
                c="white",
                alpha=0.6,
                label=f"final collocation set ({len(points)})",
            )
            axes[2].legend(loc="upper right", fontsize=7, markerscale=8, facecolor="0.5")
    elif dim == 1:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        order = np.argsort(x_test[:, 0])
        axes[0].plot(x_test[order, 0], u_ref[order], label="reference")
        axes[0].plot(x_test[order, 0], u_pred[order], "--", label="prediction")
        axes[0].legend()
        axes[1].semilogy(x_test[order, 0], error[order])
        axes[1].set_ylabel("|prediction - reference|")
        for ax in axes:
            ax.set_xlabel(labels[0])
    else:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        axes[0].scatter(u_ref, u_pred, s=1)
        lo, hi = np.nanmin(u_ref), np.nanmax(u_ref)
        axes[0].plot([lo, hi], [lo, hi], "k--", lw=0.8)
        axes[0].set_xlabel("reference")
        axes[0].set_ylabel("prediction")
        radius = np.linalg.norm(x_test, axis=1)
        axes[1].scatter(radius, error, s=1)
        axes[1].set_xlabel(f"|x| (d = {dim})")
        axes[1].set_ylabel("|prediction - reference|")
    _save(fig, path, title)


def run_title(pde: str, sampler: str, seed, error: float | None, status: str = "ok") -> str:
    """'burgers · rsmote · seed 0 · relative L2 error 2.112e-02' (or the status when not ok)."""
    tail = f"relative L2 error {error:.3e}" if error is not None else f"status {status}"
    return f"{pde} · {sampler} · seed {seed} · {tail}"
