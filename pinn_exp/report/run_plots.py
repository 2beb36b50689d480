"""The three plots of one run: loss curve, error per round, collocation points."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_loss(path: Path, history: pd.DataFrame) -> None:
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
    _save(fig, path)


def plot_error(path: Path, errors: list[float]) -> None:
    """Relative L2 error after the initial training (round 0) and after each round."""
    fig, ax = plt.subplots(figsize=(5, 4))
    if errors:
        ax.semilogy(range(len(errors)), errors, "o-")
    ax.set_xlabel("round (0 = after initial training)")
    ax.set_ylabel("relative L2 error")
    _save(fig, path)


def plot_points(path: Path, collocation: dict[str, np.ndarray], labels=("x_1", "x_2")) -> None:
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
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
