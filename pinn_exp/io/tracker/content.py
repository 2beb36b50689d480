"""What a run logs: the record's identity as tags, the config as params, every metric per
round and the loss curve as metrics, the record's status as the run's."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from pinn_exp.io.tracker.session import retry
from pinn_exp.metrics import registry

#: MLflow's run status for each status of the record (a signal's: KILLED, see _status)
STATUS = {
    "ok": "FINISHED",
    "failed": "FAILED",
    "diverged": "FAILED",
    "oom": "FAILED",
    "running": "KILLED",
}
#: how the record's error begins when a signal ended the run (pinn_exp.runner.ENDING)
SIGNALLED = ("terminated (", "interrupted (")
#: the tag of each identity field of the record (tag -> record field)
IDENTITY = {
    "pde": "pde",
    "sampler": "sampler",
    "seed": "seed",
    "N": "n_points",
    "device": "device",
    "dtype": "dtype",
    "threads": "threads",
    "lbfgs_impl": "lbfgs_impl",
    "compiled": "compiled",
    "status": "status",
    # how it ran: a batched member (loop, vmap) or a single run (null), its ensemble, and
    # whether its times and CPU memory are a share of the ensemble's
    "batched": "batched",
    "ensemble_size": "ensemble_size",
    "ensemble_id": "ensemble_id",
    "time_shared": "time_shared",
}
#: the prefix of this project's own tags
TAG = "pinn_exp."
#: MLflow's limits on a param's value and a tag's value
MAX_PARAM, MAX_TAG = 6000, 5000
#: the steps of the loss curve kept when the config has no ``optimizer.check_every``
CHECK_EVERY = 50


def run_status(content: dict) -> str:
    status = str(content.get("status"))
    if status != "ok" and str(content.get("error") or "").startswith(SIGNALLED):
        return "KILLED"
    return STATUS.get(status, "FAILED")


def log_record(client, run, out_dir: Path, content: dict, config: dict) -> None:
    """Params (the flattened config, those the run has not logged yet: MLflow keeps a
    param's first value), tags and every metric of the record, in batches."""
    from mlflow.entities import Param, RunTag

    logged = run.data.params
    params = [
        Param(key, value[:MAX_PARAM])
        for key, value in flatten(config).items()
        if key not in logged and len(key) <= 250
    ]
    tags = {tag: _text(content.get(field)) for tag, field in IDENTITY.items()}
    tags[f"{TAG}rounds"] = _text(content.get("rounds"))
    if content.get("error"):
        tags[f"{TAG}error"] = str(content["error"])[:MAX_TAG]
    run_tags = [RunTag(key, value[:MAX_TAG]) for key, value in tags.items()]
    metrics = run_metrics(content, out_dir / "history.csv", _check_every(config))
    entities = _metric_entities(metrics, run.info.start_time or 0)
    run_id = run.info.run_id
    retry(lambda: client.log_batch(run_id, params=params, tags=run_tags))
    for first in range(0, len(entities), 1000):  # MLflow's most metrics per batch
        retry(lambda chunk=entities[first : first + 1000]: client.log_batch(run_id, chunk))


def _metric_entities(metrics: dict[str, list[tuple[int, float]]], start_ms: int) -> list:
    """MLflow metrics, each timestamp a function of the step, so that logging a history
    again (a resumed run mirrors its earlier rounds once more) adds nothing."""
    from mlflow.entities import Metric

    return [
        Metric(key, value, start_ms + step, step)
        for key, points in metrics.items()
        for step, value in points
    ]


def run_metrics(content: dict, history: Path, check_every: int) -> dict[str, list]:
    """What a run logs as metrics, ``name -> [(step, value), ...]``: every registry metric
    per round (step = round), the history metrics (``fluctuation``) and the record's memory
    and times at the last round, the numbers of each round's statistics (``round/NAME``,
    step = round) and the loss curve (``train/LOSS``, every ``check_every``-th optimizer step
    of ``history.csv`` and its last, step = the step's index in the run).

    Args:
        content: the record, as in ``metrics.json``.
        history: the run's ``history.csv``.
        check_every: keep every this many steps of the loss curve.
    """
    out: dict[str, list] = {}

    def add(key: str, step: int, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if math.isfinite(value):
            out.setdefault(key, []).append((int(step), float(value)))

    last = -1
    for name in registry.METRICS:
        values = content.get(registry.per_round(name)) or []
        for step, value in enumerate(values):
            add(name, step, value)
        last = max(last, len(values) - 1)
    last = max(last, 0)
    per_round = {
        registry.per_round(n): content.get(registry.per_round(n)) for n in registry.METRICS
    }
    for name, value in registry.history_all(per_round).items():
        add(name, last, value)
    for key, value in content.items():
        if _measured(key):
            add(key, last, value)
    for stats in content.get("round_stats") or []:
        if isinstance(stats, dict) and isinstance(stats.get("round"), int):
            for key, value in stats.items():
                if key != "round" and key not in registry.METRICS:
                    add(f"round/{key}", stats["round"], value)
    for step, row in _loss_curve(history, check_every):
        for key, value in row.items():
            add(f"train/{key}", step, value)
    return out


def _measured(key: str) -> bool:
    """A record field that holds a memory peak or a time."""
    return key.startswith(("peak_", "cpu_rss_", "time_", "wall_time_")) or key == (
        "n_residual_evals"
    )


def _loss_curve(history: Path, check_every: int) -> list[tuple[int, dict[str, float]]]:
    """The losses of every ``check_every``-th row of ``history.csv`` and of its last row."""
    try:
        with open(history, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    every = max(int(check_every), 1)
    kept = [i for i in range(len(rows)) if (i + 1) % every == 0 or i == len(rows) - 1]
    out = []
    for i in kept:
        values = {}
        for key, text in rows[i].items():
            if key in ("round", "step", "phase") or key is None:
                continue
            try:
                values[key] = float(text)
            except (TypeError, ValueError):
                continue
        out.append((i, values))
    return out


def _check_every(config: dict) -> int:
    value = ((config or {}).get("optimizer") or {}).get("check_every")
    return value if isinstance(value, int) and value > 0 else CHECK_EVERY


def flatten(node: Any, prefix: str = "") -> dict[str, str]:
    """The config as Hydra names its keys (``sampler.ratio``), each value as text (JSON for
    anything but a string: ``null``, ``true``, ``[1, 2]``)."""
    if isinstance(node, dict):
        out: dict[str, str] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: _text(node)}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
