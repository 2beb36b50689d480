"""Writes the sweep's summary when a multirun ends (registered in conf/config.yaml)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SummaryCallback(Callback):
    """``on_multirun_end``: summary.csv, summary.md and plots in the sweep directory, also when
    some jobs failed. ``python -m pinn_exp.report DIR`` rebuilds them at any time."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from pinn_exp.report.aggregate import write_summary

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            report = config.report
            frame = write_summary(
                [sweep_dir],
                out_dir=sweep_dir,
                rows=report.rows,
                cols=report.cols,
                metric=report.metric,
            )
            print(f"summary of {len(frame)} runs: {sweep_dir / 'summary.md'}")
        except Exception:  # noqa: BLE001 - the sweep's runs are on disk; never fail here
            log.exception("could not write the summary of %s", sweep_dir)
