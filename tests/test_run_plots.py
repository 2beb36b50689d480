"""A run's plots show what they claim (every loss term, the stage switches, points that can be
seen, nothing covering the domain), and a run's bookkeeping does no work twice."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from support import ROOT

from pinn_exp.report import run_plots


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions would save, kept open for inspection."""
    kept = []
    monkeypatch.setattr(run_plots, "_save", lambda fig, path, title="": kept.append(fig))
    yield kept
    import matplotlib.pyplot as plt

    for fig in kept:
        plt.close(fig)


def _burgers_grid() -> np.ndarray:
    """Burgers' reference grid: x in [-1, 1] (256), t in [0, 0.99] (100), x-major."""
    x, t = np.linspace(-1, 1, 256), np.linspace(0, 0.99, 100)
    xx, tt = np.meshgrid(x, t, indexing="ij")
    return np.stack([xx.ravel(), tt.ravel()], axis=1)


def test_solution_legend_sits_outside_the_error_panel(figures):
    x = _burgers_grid()
    u_ref = -np.tanh(x[:, 0] / 0.05 * x[:, 1])  # a shock at x = 0 that steepens with t
    points = np.random.default_rng(0).uniform([-1, 0], [1, 1], (300, 2))
    run_plots.plot_solution("unused.png", x, u_ref, u_ref + 0.1, points, ("x", "t"))
    fig = figures[0]
    fig.canvas.draw()
    panel = fig.axes[2]
    legend = panel.get_legend()
    assert legend is not None  # the collocation set is still named
    box = legend.get_window_extent()
    axes_box = panel.get_window_extent()
    assert not box.overlaps(axes_box), (box, axes_box)  # so it covers no data, the shock's
    shock = panel.transData.transform([[0.0, 0.95]])[0]  # t ~ 1, x ~ 0: the largest error
    assert axes_box.contains(*shock)


def _luminance(rgb) -> float:
    """Relative luminance (WCAG 2.1) of an sRGB colour."""
    c = np.asarray(rgb[:3], dtype=float)
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(linear @ [0.2126, 0.7152, 0.0722])


def _contrast(a, b) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_residual_points_contrast_with_every_colour_of_the_map(figures):
    axis = np.linspace(0, 1, 41)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)
    residual = np.exp(-((grid[..., 0] - 0.5) ** 2) / 0.01) + 1e-3
    points = np.random.default_rng(1).uniform(0, 1, (100, 2))
    run_plots.plot_residual("unused.png", grid, residual, points)
    ax = figures[0].axes[0]
    mesh, dots = ax.collections[0], ax.collections[1]
    face, edge = dots.get_facecolor()[0], dots.get_edgecolor()
    edge = edge[0] if len(edge) else None
    for colour in mesh.cmap(np.linspace(0, 1, 256)):
        # WCAG 2.1's 3:1 for graphics, by the fill or by the edge
        best = max(_contrast(face, colour), _contrast(edge, colour) if edge is not None else 0)
        assert best >= 3, (to_rgb(colour[:3]), face, edge)


def test_residual_map_zero_lines_do_not_set_its_colour_scale(figures):
    axis = np.linspace(0, 1, 101)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)
    residual = np.abs(grid[..., 0] - 0.3)  # exactly zero on a line, as a residual crossing 0
    run_plots.plot_residual("unused.png", grid, residual)
    mesh = figures[0].axes[0].collections[0]
    # the lowest colour covers at most FLOOR_PERCENTILE % of the map, not a log-scale plunge
    floor = np.percentile(residual, run_plots.FLOOR_PERCENTILE)
    assert mesh.norm.vmin == pytest.approx(floor)
    assert np.mean(residual < mesh.norm.vmin) <= run_plots.FLOOR_PERCENTILE / 100
    assert mesh.norm.vmax == pytest.approx(0.7)


def test_loss_plot_draws_every_term_and_marks_rounds_and_lbfgs(figures):
    # round 0: 5 Adam + 3 L-BFGS; round 1: 2 Adam + 3 L-BFGS; round 2: L-BFGS only
    phases = [(0, "adam")] * 5 + [(0, "lbfgs")] * 3 + [(1, "adam")] * 2 + [(1, "lbfgs")] * 3
    phases += [(2, "lbfgs")] * 4
    n = len(phases)
    history = pd.DataFrame(
        {
            "round": [r for r, _ in phases],
            "step": range(n),
            "phase": [p for _, p in phases],
            "loss_pde": np.geomspace(1, 1e-3, n),
            "loss_bc": np.geomspace(1e-1, 1e-4, n),
        }
    )
    history.insert(3, "loss", history.loss_pde + history.loss_bc)
    run_plots.plot_loss("unused.png", history)
    ax = figures[0].axes[0]
    terms = [line for line in ax.get_lines() if line.get_gid() in ("loss", "loss_pde", "loss_bc")]
    assert sorted(line.get_gid() for line in terms) == ["loss", "loss_bc", "loss_pde"]
    for line in terms:
        np.testing.assert_array_equal(line.get_ydata(), history[line.get_gid()].to_numpy())

    def marks(gid):
        return sorted(line.get_xdata()[0] for line in ax.get_lines() if line.get_gid() == gid)

    assert marks(run_plots.ROUND_MARK) == [8, 13]  # the first rows of rounds 1 and 2
    assert marks(run_plots.LBFGS_MARK) == [5, 10]  # round 2 has no Adam: no switch
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "round starts" in labels and "Adam -> L-BFGS" in labels


def test_the_command_starts_without_matplotlib():
    code = "import sys, pinn_exp.cli; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("laplacian", ["forward", "hutchinson"])
def test_each_round_scores_the_test_set_once_and_the_probes_once(
    tmp_path, compose, tiny, monkeypatch, laplacian
):
    from pinn_exp import runner
    from pinn_exp.factory import build
    from pinn_exp.training.trainer import Trainer

    calls = {"test": 0, "probes": 0}
    predict, score = Trainer.predict_test, Trainer.uncounted_residual

    def counted_predict(self, *args, **kwargs):
        calls["test"] += 1
        return predict(self, *args, **kwargs)

    def counted_score(self, x):
        calls["probes"] += x is self.probes and (
            self._probe_residual is None or self.laplacian.stochastic
        )
        return score(self, x)

    monkeypatch.setattr(Trainer, "predict_test", counted_predict)
    monkeypatch.setattr(Trainer, "uncounted_residual", counted_score)
    overrides = [*tiny, f"laplacian={laplacian}"]
    record = runner.run(build(compose(overrides)), tmp_path, progress=False)
    assert record["status"] == "ok"
    rounds = record["rounds"] + 1
    assert calls["test"] == rounds  # the solution plot reuses the last round's prediction
    # the metric after a round and the next round's concentration at sampling share the
    # probes' scoring (round 0's sampling scores the untrained model: one more), unless each
    # scoring draws new Hutchinson vectors
    assert calls["probes"] == (2 * rounds if laplacian == "hutchinson" else rounds + 1)
    assert (tmp_path / "solution.png").stat().st_size > 0
