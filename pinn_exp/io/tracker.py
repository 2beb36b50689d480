"""The experiment tracker (``logger=mlflow``): a run's record, curves and files mirrored into
MLflow; a sweep as one parent run with its jobs as child runs.

The run's files stay the source of truth. When a run ends the tracker reads what the runner
wrote (``metrics.json``, ``history.csv``, ``config_resolved.yaml``, the plots) and mirrors it:
the config as params, the record's identity as tags, every metric per round (step = round),
the loss curve, the files as artifacts, and the record's status as the run's. A tracker that
fails (a locked database, a server that does not answer, a bad URI) costs one warning and at
most ``logger.timeout_s`` seconds; it never fails a run. This module is the only one that
imports MLflow, and only when the config chooses it (``logger=none`` imports nothing).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pinn_exp.io import records
from pinn_exp.io.record import CONFIG, METRICS, PLOTS
from pinn_exp.metrics import registry

log = logging.getLogger(__name__)

#: how the optional dependency is installed
INSTALL = 'pip install -e ".[mlflow]"'
#: the database of ``logger.tracking_uri=null``, in the directory the command starts from
DEFAULT_DATABASE = Path("outputs") / "mlflow.db"
#: a run's artifacts beside its SQLite database (MLflow's own default is ./mlruns)
ARTIFACTS = "mlartifacts"
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
#: the most a run that a signal ended waits for the tracker (SLURM kills it soon after)
SIGNALLED_TIMEOUT_S = 10.0
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
}
#: an experiment's tags: MLflow's UI then opens it on its runs (training), not on traces
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
#: the prefix of this project's own tags
TAG = "pinn_exp."
#: a sweep's summary files that its parent run keeps (plus its PNG plots)
SWEEP_FILES = ("summary.csv", "summary.md", "summary_paired.csv", "summary.tex", "multirun.yaml")
#: MLflow's limits on a param's value and a tag's value
MAX_PARAM, MAX_TAG = 6000, 5000
#: the steps of the loss curve kept when the config has no ``optimizer.check_every``
CHECK_EVERY = 50


class MLflowLogger:
    """``logger=mlflow``: where a run is tracked. Its config schema is this signature.

    Args:
        tracking_uri: any MLflow tracking URI (``sqlite:///PATH``, ``http://HOST:PORT``,
            ...); None: the SQLite database ``outputs/mlflow.db`` in the directory the
            command starts from.
        experiment: the MLflow experiment; None: the PDE's name (a sweep: the sweep's).
        timeout_s: the most a run (or a sweep's start and end) waits for the tracker.

    Raises:
        ValueError: MLflow is not installed, or a value is not allowed.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        timeout_s: float = 60.0,
    ):
        if importlib.util.find_spec("mlflow") is None:
            raise ValueError(
                "logger=mlflow is not allowed here: the mlflow package is not installed; "
                f"install it ({INSTALL}) or choose logger=none"
            )
        for key, value in (("tracking_uri", tracking_uri), ("experiment", experiment)):
            if value is not None and not str(value).strip():
                raise ValueError(
                    f"logger.{key}={value!r} is not allowed; it must be a non-empty string, or "
                    "null for the default"
                )
        if isinstance(timeout_s, bool) or not (
            isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0
        ):
            raise ValueError(
                f"logger.timeout_s={timeout_s!r} is not allowed; it must be a number of seconds > 0"
            )
        self.tracking_uri = str(tracking_uri) if tracking_uri is not None else default_uri()
        self.experiment = str(experiment) if experiment is not None else None
        self.timeout_s = float(timeout_s)


def default_uri() -> str:
    """``sqlite:////ABSOLUTE/outputs/mlflow.db`` in the current directory (a run's jobs and
    its sweep share it: no launcher here changes the directory)."""
    return f"sqlite:///{(Path.cwd() / DEFAULT_DATABASE).resolve()}"


def _logger(node: dict) -> MLflowLogger:
    keys = {k: v for k, v in node.items() if not str(k).startswith("_")}
    return MLflowLogger(**keys)


def recorded_run_id(out_dir: Path) -> str | None:
    """The MLflow run id of the record in ``out_dir`` (what a resume continues), or None."""
    try:
        value = records.read_json(Path(out_dir) / METRICS).get("mlflow_run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


# ------------------------------------------------------------------------------------ a run


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
        logger = _logger(node)
    except Exception as exc:  # noqa: BLE001 - building refuses these; never fail the run here
        log.warning("mlflow: the run was not tracked: %s", exc)
        return
    error = str(record.error or "")
    timeout = logger.timeout_s
    if record.status != "ok" and error.startswith(SIGNALLED):
        timeout = min(timeout, SIGNALLED_TIMEOUT_S)
    fallback = record.to_json()
    done: dict[str, Any] = {}
    _bounded(
        timeout,
        f"the run {out_dir} was not tracked",
        lambda: _log_run(logger, out_dir, fallback, config, done),
    )
    if done.get("run_id"):
        record.mlflow_run_id = done["run_id"]


def _log_run(logger: MLflowLogger, out_dir: Path, fallback: dict, config: dict, done: dict):
    client = _client(logger)
    try:
        content = records.read_json(out_dir / METRICS)  # the record as written: the source
    except (OSError, ValueError):
        content = fallback
    sweep_dir = _sweep_dir(out_dir)
    parent = _retry(lambda: _find_sweep_run(client, sweep_dir)) if sweep_dir else None
    if parent is not None:  # a sweep is one experiment: its parent's
        experiment_id = parent.info.experiment_id
    else:
        name = logger.experiment or str(content.get("pde") or "pinn-exp")
        experiment_id = _retry(lambda: _experiment(client, logger, name))
    run = _retry(lambda: _existing_run(client, content.get("mlflow_run_id")))
    if run is None:
        tags = {
            "mlflow.runName": run_name(out_dir.name, content.get("overrides"), parent),
            f"{TAG}kind": "run",
            f"{TAG}run_dir": str(out_dir.resolve()),
        }
        if sweep_dir is not None:
            tags.update(_sweep_tags(sweep_dir))
        if parent is not None:
            tags["mlflow.parentRunId"] = parent.info.run_id
        started = time.time() - float(content.get("wall_time_session_s") or 0.0)
        run = _retry(
            lambda: client.create_run(experiment_id, start_time=int(started * 1000), tags=tags)
        )
    run_id = run.info.run_id
    done["run_id"] = run_id
    if content.get("mlflow_run_id") != run_id:
        content["mlflow_run_id"] = run_id
        records.write_json(out_dir / METRICS, content)
    _log_record(client, run, out_dir, content, config)
    for name in (METRICS, CONFIG, *PLOTS.values()):
        if (out_dir / name).is_file():
            _retry(lambda path=out_dir / name: client.log_artifact(run_id, str(path)))
    status = _status(content)
    _retry(lambda: client.set_terminated(run_id, status))


#: how a sweep's value that stands for several values begins (Hydra's sweep functions)
SWEEP_FUNCTIONS = ("range(", "choice(", "interval(", "glob(", "tag(", "sort(", "shuffle(")


def run_name(folder: str, overrides: list | None, parent=None) -> str:
    """A run's name: its folder's, and in a sweep the job's values of the keys the sweep
    varies (those of the parent's params with several values), e.g.
    ``2_burgers_rsmote sampler.ratio=0.2``."""
    if parent is None:
        return folder
    swept = {
        key
        for key, value in parent.data.params.items()
        if "," in value or value.startswith(SWEEP_FUNCTIONS)
    }
    values = [str(o) for o in overrides or [] if str(o).partition("=")[0].lstrip("+~") in swept]
    return " ".join([folder, *values])


def _status(content: dict) -> str:
    status = str(content.get("status"))
    if status != "ok" and str(content.get("error") or "").startswith(SIGNALLED):
        return "KILLED"
    return STATUS.get(status, "FAILED")


def _log_record(client, run, out_dir: Path, content: dict, config: dict) -> None:
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
    _retry(lambda: client.log_batch(run_id, params=params, tags=run_tags))
    for first in range(0, len(entities), 1000):  # MLflow's most metrics per batch
        _retry(lambda chunk=entities[first : first + 1000]: client.log_batch(run_id, chunk))


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


# ---------------------------------------------------------------------------------- a sweep


def start_sweep(node: dict | None, sweep_dir: Path, pde: str | None, overrides: list[str]) -> None:
    """Creates the parent run of the sweep in ``sweep_dir`` (a resumed sweep: finds it and
    marks it running again), before any job runs: the jobs find it by its tags.

    Args:
        node: the sweep's ``logger`` node (None: nothing happens, nothing is imported).
        sweep_dir: the sweep's directory.
        pde: the sweep's PDE, the experiment's name unless ``logger.experiment`` is set.
        overrides: the sweep's command-line overrides, kept as the parent's params.
    """
    if not node:
        return
    logger = _logger(node)
    sweep_dir = Path(sweep_dir)

    def start() -> None:
        client = _client(logger)
        parent = _retry(lambda: _find_sweep_run(client, sweep_dir))
        if parent is not None:
            _retry(lambda: client.update_run(parent.info.run_id, status="RUNNING"))
            return
        experiment_id = _retry(
            lambda: _experiment(client, logger, logger.experiment or pde or "pinn-exp")
        )
        tags = {"mlflow.runName": f"sweep {sweep_dir.name}", f"{TAG}kind": "sweep"}
        tags.update(_sweep_tags(sweep_dir))
        run = _retry(lambda: client.create_run(experiment_id, tags=tags))
        _log_overrides(client, run.info.run_id, overrides)

    _bounded(logger.timeout_s, f"the sweep {sweep_dir} has no parent run", start)


def _log_overrides(client, run_id: str, overrides: list[str]) -> None:
    from mlflow.entities import Param

    params = {}
    for override in overrides:
        key, _, value = str(override).partition("=")
        params[key.lstrip("+~")] = value[:MAX_PARAM]
    batch = [Param(k, v) for k, v in params.items() if k and len(k) <= 250]
    for first in range(0, len(batch), 100):
        _retry(lambda chunk=batch[first : first + 100]: client.log_batch(run_id, params=chunk))


def end_sweep(node: dict | None, sweep_dir: Path, status: str) -> None:
    """Ends the parent run of the sweep in ``sweep_dir``: its summary files and plots as
    artifacts, every job of the sweep that was tracked without it as its child, and
    ``status`` (``ok``: FINISHED, ``failed``: FAILED, ``killed``: KILLED).

    Args:
        node: the sweep's ``logger`` node (None: nothing happens, nothing is imported).
        sweep_dir: the sweep's directory, its summary written.
        status: how the sweep ended.
    """
    if not node:
        return
    logger = _logger(node)
    sweep_dir = Path(sweep_dir)

    def end() -> None:
        client = _client(logger)
        parent = _retry(lambda: _find_sweep_run(client, sweep_dir))
        if parent is None:  # its start was not tracked: not nested now
            return
        parent_id = parent.info.run_id
        for child in _retry(lambda: _sweep_runs(client, sweep_dir, "run")):
            if child.data.tags.get("mlflow.parentRunId") != parent_id:
                _retry(
                    lambda c=child: client.set_tag(c.info.run_id, "mlflow.parentRunId", parent_id)
                )
        files = [sweep_dir / name for name in SWEEP_FILES] + sorted(sweep_dir.glob("*.png"))
        for path in files:
            if path.is_file():
                _retry(lambda p=path: client.log_artifact(parent_id, str(p)))
        final = {"ok": "FINISHED", "killed": "KILLED"}.get(status, "FAILED")
        _retry(lambda: client.set_terminated(parent_id, final))

    _bounded(logger.timeout_s, f"the sweep {sweep_dir} was not tracked", end)


def _sweep_dir(out_dir: Path) -> Path | None:
    """The sweep directory that holds the job directory ``out_dir`` (Hydra writes
    ``multirun.yaml`` there when a sweep starts), or None for a single run."""
    for folder in Path(os.path.abspath(out_dir)).parents:
        if (folder / "multirun.yaml").is_file():
            return folder
    return None


def _sweep_key(sweep_dir: Path) -> str:
    """The sweep's tag value: a digest of its absolute path (tag filters quote plain text)."""
    return hashlib.sha256(os.path.abspath(sweep_dir).encode()).hexdigest()[:20]


def _sweep_tags(sweep_dir: Path) -> dict[str, str]:
    return {f"{TAG}sweep": _sweep_key(sweep_dir), f"{TAG}sweep_dir": os.path.abspath(sweep_dir)}


def _sweep_runs(client, sweep_dir: Path, kind: str) -> list:
    """The runs of every experiment tagged with the sweep in ``sweep_dir`` and ``kind``
    (``sweep``: its parent, ``run``: its jobs), oldest first."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    query = f"tags.`{TAG}sweep` = '{_sweep_key(sweep_dir)}' and tags.`{TAG}kind` = '{kind}'"
    found, token = [], None
    while True:
        page = client.search_runs(
            experiments, query, max_results=1000, order_by=["start_time ASC"], page_token=token
        )
        found.extend(page)
        token = page.token
        if not token:
            return found


def _find_sweep_run(client, sweep_dir: Path):
    runs = _sweep_runs(client, sweep_dir, "sweep")
    return runs[0] if runs else None


def _existing_run(client, run_id: str | None):
    """The run ``run_id`` where the store has it and it is not deleted, else None."""
    if not run_id:
        return None
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if _transient(exc):
            raise
        return None  # another store, or a run deleted for good: a new run
    return run if run.info.lifecycle_stage == "active" else None


# -------------------------------------------------------------------- MLflow, safely


def _client(logger: MLflowLogger):
    """An MlflowClient for ``logger.tracking_uri``; MLflow's own logging kept quiet (a
    failure is this module's one warning) and its HTTP requests not retried (the next run
    tries again)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(int(logger.timeout_s / 4), 1)))
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage reports from runs
    from mlflow.tracking import MlflowClient

    for name in ("mlflow", "alembic"):  # after the import, which sets MLflow's own levels
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return MlflowClient(tracking_uri=logger.tracking_uri)


def _experiment(client, logger: MLflowLogger, name: str) -> str:
    """The id of experiment ``name``, created where missing (on a SQLite store with its
    artifacts beside the database, not in the current directory)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage != "active":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    location = None
    if logger.tracking_uri.startswith("sqlite:///"):
        database = Path(os.path.abspath(logger.tracking_uri.removeprefix("sqlite:///")))
        location = (database.parent / ARTIFACTS / _folder_name(name)).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id  # another job created it


def _folder_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "experiment"


def _transient(exc: BaseException) -> bool:
    """A failure that a later try may not meet: a busy or locked database."""
    code = getattr(exc, "error_code", "")
    text = str(exc).lower()
    return (
        code == "TEMPORARILY_UNAVAILABLE"
        or type(exc).__name__ == "OperationalError"
        or "locked" in text
        or "busy" in text
    )


#: the waits between tries of an MLflow call that met a busy database, in seconds, before
#: a random share of each is added (writers that collided do not collide again)
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)


def _retry(call: Callable[[], Any]) -> Any:
    """``call()``, tried again after a busy or locked database (SQLite has one writer at a
    time) with growing waits; any other failure is raised at once."""
    for wait in (*BACKOFF_S, None):
        try:
            return call()
        except Exception as exc:
            if wait is None or not _transient(exc):
                raise
            time.sleep(wait * (1 + random.random()))


def _bounded(timeout_s: float, what: str, work: Callable[[], None]) -> bool:
    """Runs ``work`` in a thread for at most ``timeout_s`` seconds; a failure or the time
    running out is one warning (``what`` and why). Returns whether it completed."""
    failure: list[str] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - said below, never raised into a run
            failure.append(f"{type(exc).__name__}: {exc}".splitlines()[0][:500])

    thread = threading.Thread(target=target, name="pinn-exp-tracker", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        log.warning("mlflow: %s: no answer within logger.timeout_s=%g s", what, timeout_s)
        return False
    if failure:
        log.warning("mlflow: %s: %s", what, failure[0])
        return False
    return True
