"""The one PNG writer of the report: run plots and sweep plots are saved through it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pinn_exp.io.storage import atomic_write  # noqa: E402

DPI = 110


def save_png(fig: plt.Figure, path: Path, title: str = "") -> Path:
    """Writes ``fig`` as PNG atomically (with the results' permissions; nothing is left behind
    on failure) and closes it.

    Args:
        fig: the figure.
        path: the PNG file.
        title: a title over all panels (``fig.suptitle``); none when empty.

    Returns:
        ``path``.
    """
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI))
    finally:
        plt.close(fig)
    return Path(path)
