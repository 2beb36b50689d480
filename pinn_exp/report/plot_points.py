"""``points_by_sampler.png``: the final collocation set of one run per sampler and setting, a
panel each (a ``Plot`` of ``plots``)."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pinn_exp.io import record  # noqa: E402
from pinn_exp.metrics import registry  # noqa: E402
from pinn_exp.report.plot_lines import line_names  # noqa: E402
from pinn_exp.report.runs import ok_runs  # noqa: E402

log = logging.getLogger(__name__)


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
    """For each sampler and setting (``plot_lines.line_names``), the last collocation set of
    its first ok run (lowest seed, then run directory) that saved one, with that run's row."""
    ok = ok_runs(frame)
    ok = ok.sort_values([c for c in ("seed", "run_dir") if c in ok.columns])
    samplers = line_names(ok, "sampler")
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
