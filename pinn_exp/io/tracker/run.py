"""A run mirrored into the tracker when it ends: found or created (in its sweep's experiment,
as the child of the sweep's parent run), its record, files and status logged."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pinn_exp.io import storage
from pinn_exp.io.record import CONFIG, METRICS, PLOTS
from pinn_exp.io.tracker.content import SIGNALLED, TAG, log_record, run_status
from pinn_exp.io.tracker.session import (
    MLflowLogger,
    bounded,
    existing_run,
    find_experiment,
    log,
    logger_of,
    open_client,
    retry,
)
from pinn_exp.io.tracker.sweep_run import find_sweep_run, run_name, sweep_dir_of, sweep_tags

#: the most a run that a signal ended waits for the tracker (SLURM kills it soon after)
SIGNALLED_TIMEOUT_S = 10.0


def recorded_run_id(out_dir: Path) -> str | None:
    """The MLflow run id of the record in ``out_dir`` (what a resume continues), or None."""
    try:
        value = storage.read_json(Path(out_dir) / METRICS).get("mlflow_run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def track_run(out_dir: Path, record, config: dict | None) -> None:
    """Mirrors the run whose files are in ``out_dir`` into the tracker that ``config``
    chooses (nothing, and no import, for ``logger=none``); sets ``record.mlflow_run_id`` and
    writes it into ``metrics.json``.

    Args:
        out_dir: the run's directory, its record and files written.
        record: the run's :class:`~pinn_exp.io.record.RunRecord`, as written.
        config: the run's resolved config (its ``logger`` node chooses the tracker).
    """
    node = (config or {}).get("logger")
    if not node:
        return
    out_dir = Path(out_dir)
    try:
        logger = logger_of(node)
    except Exception as exc:  # noqa: BLE001 - building refuses these; never fail the run here
        log.warning("mlflow: the run was not tracked: %s", exc)
        return
    error = str(record.error or "")
    timeout = logger.timeout_s
    if record.status != "ok" and error.startswith(SIGNALLED):
        timeout = min(timeout, SIGNALLED_TIMEOUT_S)
    fallback = record.to_json()
    done: dict[str, Any] = {}
    bounded(
        timeout,
        f"the run {out_dir} was not tracked",
        lambda: _log_run(logger, out_dir, fallback, config, done),
    )
    if done.get("run_id"):
        record.mlflow_run_id = done["run_id"]


def _log_run(logger: MLflowLogger, out_dir: Path, fallback: dict, config: dict, done: dict):
    client = open_client(logger)
    try:
        content = storage.read_json(out_dir / METRICS)  # the record as written: the source
    except (OSError, ValueError):
        content = fallback
    sweep_dir = sweep_dir_of(out_dir)
    parent = retry(lambda: find_sweep_run(client, sweep_dir)) if sweep_dir else None
    if parent is not None:  # a sweep is one experiment: its parent's
        experiment_id = parent.info.experiment_id
    else:
        name = logger.experiment or str(content.get("pde") or "pinn-exp")
        experiment_id = retry(lambda: find_experiment(client, logger, name))
    run = retry(lambda: existing_run(client, content.get("mlflow_run_id")))
    if run is None:
        tags = {
            "mlflow.runName": run_name(out_dir.name, content.get("overrides"), parent),
            f"{TAG}kind": "run",
            f"{TAG}run_dir": str(out_dir.resolve()),
        }
        if sweep_dir is not None:
            tags.update(sweep_tags(sweep_dir))
        if parent is not None:
            tags["mlflow.parentRunId"] = parent.info.run_id
        started = time.time() - float(content.get("wall_time_session_s") or 0.0)
        run = retry(
            lambda: client.create_run(experiment_id, start_time=int(started * 1000), tags=tags)
        )
    run_id = run.info.run_id
    done["run_id"] = run_id
    if content.get("mlflow_run_id") != run_id:
        content["mlflow_run_id"] = run_id
        storage.write_json(out_dir / METRICS, content)
    log_record(client, run, out_dir, content, config)
    for name in (METRICS, CONFIG, *PLOTS.values()):
        if (out_dir / name).is_file():
            retry(lambda path=out_dir / name: client.log_artifact(run_id, str(path)))
    status = run_status(content)
    retry(lambda: client.set_terminated(run_id, status))
