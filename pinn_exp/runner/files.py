"""A run's files besides its record: history.csv, collocation.npz, residual.npz and the
plots."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pandas as pd

from pinn_exp.io import storage
from pinn_exp.io.record import COLLOCATION, HISTORY, PLOTS, RESIDUAL, RunRecord
from pinn_exp.metrics import registry as metrics
from pinn_exp.training.trainer import Trainer

log = logging.getLogger(__package__)


def write_files(out_dir: Path, trainer: Trainer, record: RunRecord) -> None:
    """Writes what ``trainer`` holds to the run's files; a failure is logged, never raised
    (``metrics.json`` is written before)."""
    # matplotlib is imported here, after training, not when the command starts
    from pinn_exp.report import run_plots

    state = trainer.state
    errors = state.metrics.get(metrics.PRIMARY, [])
    title = run_plots.run_title(
        record.pde, record.sampler, record.seed, record.metrics.get(metrics.PRIMARY), record.status
    )
    labels = trainer.pde.coordinate_names
    try:
        storage.write_history(out_dir / HISTORY, state.history)
        storage.write_arrays(out_dir / COLLOCATION, state.collocation)
        if state.residual_maps:  # the grid as (n_1, ..., n_d, d), then one map per round
            points, shape = trainer.grid
            grid = points.cpu().numpy().reshape(*shape, -1)
            storage.write_arrays(out_dir / RESIDUAL, {"grid": grid, **state.residual_maps})
            # the last round with both a map and a point set (a failure can fall between them)
            last = max(
                int(name.rsplit("_", 1)[1])
                for name in state.residual_maps
                if f"round_{name.rsplit('_', 1)[1]}" in state.collocation
            )
            run_plots.plot_residual(
                out_dir / PLOTS["residual"],
                grid,
                state.residual_maps[f"residual_round_{last}"],
                state.collocation[f"round_{last}"],
                labels,
                title,
            )
        run_plots.plot_loss(out_dir / PLOTS["loss"], pd.DataFrame(state.history), title)
        run_plots.plot_error(out_dir / PLOTS["error"], errors, title)
        if state.collocation:
            run_plots.plot_points(out_dir / PLOTS["points"], state.collocation, labels, title)
        if errors:  # a model trained for at least one round: show what it predicts
            last = state.collocation[f"round_{state.round_index}"]
            run_plots.plot_solution(
                out_dir / PLOTS["solution"],
                trainer.x_test.cpu().numpy(),
                trainer.u_test.cpu().numpy(),
                trainer.final_prediction().cpu().numpy(),  # the last round's, not again
                last,
                labels,
                title,
            )
    except OSError as exc:  # a full disk, a quota: one line (resume=true writes them later)
        log.warning("writing the run's files failed: %s", exc)
    except Exception:  # noqa: BLE001 - metrics.json is written already; report and go on
        log.warning("writing the run's files failed:\n%s", traceback.format_exc())
