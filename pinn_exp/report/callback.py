"""Writes the sweep's summary when a multirun ends (registered in conf/config.yaml)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def swept_keys(config: DictConfig) -> list[str]:
    """Config keys the sweep varies (``a=1,2`` on the command line or in sweeper params)."""
    axes = dict(config.hydra.sweeper.get("params") or {})
    for override in config.hydra.overrides.task:
        key, _, value = override.partition("=")
        if "," in value:
            axes[key.lstrip("+~")] = value
    return [k for k in axes if "." in k and "_target_" not in k and not k.startswith("hydra.")]


def summary_rows(rows: str, cols: str, swept: list[str]) -> str:
    """The table's rows: ``rows`` plus every swept key other than ``seed`` and the columns, so
    that, e.g., a sweep over ``sampler.ratio`` is not averaged over lambda."""
    keys = [k for k in rows.split(",") if k]
    extra = [k for k in swept if k not in keys and k not in cols.split(",") and k != "seed"]
    return ",".join(keys + extra)


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
                rows=summary_rows(report.rows, report.cols, swept_keys(config)),
                cols=report.cols,
                metric=report.metric,
            )
            print(f"summary of {len(frame)} runs: {sweep_dir / 'summary.md'}")
        except Exception:  # noqa: BLE001 - the sweep's runs are on disk; never fail here
            log.exception("could not write the summary of %s", sweep_dir)
