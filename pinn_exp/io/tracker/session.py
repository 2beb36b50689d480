"""MLflow, safely: the tracker's settings (``logger=mlflow``), its client, and the calls that
retry a busy database and never take more than ``logger.timeout_s`` or fail a run."""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: the package's logger: a tracker that fails is one warning here
log = logging.getLogger(__package__)

#: how the optional dependency is installed
INSTALL = 'pip install -e ".[mlflow]"'
#: the database of ``logger.tracking_uri=null``, in the directory the command starts from
DEFAULT_DATABASE = Path("outputs") / "mlflow.db"
#: a run's artifacts beside its SQLite database (MLflow's own default is ./mlruns)
ARTIFACTS = "mlartifacts"
#: an experiment's tags: MLflow's UI then opens it on its runs (training), not on traces
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


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


def logger_of(node: dict) -> MLflowLogger:
    keys = {k: v for k, v in node.items() if not str(k).startswith("_")}
    return MLflowLogger(**keys)


def open_client(logger: MLflowLogger):
    """An MlflowClient for ``logger.tracking_uri``; MLflow's own logging kept quiet (a
    failure is the tracker's one warning) and its HTTP requests not retried (the next run
    tries again)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(int(logger.timeout_s / 4), 1)))
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage reports from runs
    from mlflow.tracking import MlflowClient

    for name in ("mlflow", "alembic"):  # after the import, which sets MLflow's own levels
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if logger.tracking_uri.startswith("sqlite:///") and logger.tracking_uri != default_uri():
        # MLflow would create a missing folder of the database wherever the URI points: a
        # folder the user named must exist (the default one, outputs/, is created)
        folder = Path(os.path.abspath(logger.tracking_uri.removeprefix("sqlite:///"))).parent
        if not folder.is_dir():
            raise FileNotFoundError(
                f"logger.tracking_uri={logger.tracking_uri}: the folder {folder} does not "
                "exist; create it or choose another"
            )
    return MlflowClient(tracking_uri=logger.tracking_uri)


def find_experiment(client, logger: MLflowLogger, name: str) -> str:
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


def transient(exc: BaseException) -> bool:
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


def retry(call: Callable[[], Any]) -> Any:
    """``call()``, tried again after a busy or locked database (SQLite has one writer at a
    time) with growing waits; any other failure is raised at once."""
    for wait in (*BACKOFF_S, None):
        try:
            return call()
        except Exception as exc:
            if wait is None or not transient(exc):
                raise
            time.sleep(wait * (1 + random.random()))


def bounded(timeout_s: float, what: str, work: Callable[[], None]) -> bool:
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


def existing_run(client, run_id: str | None):
    """The run ``run_id`` where the store has it and it is not deleted, else None."""
    if not run_id:
        return None
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if transient(exc):
            raise
        return None  # another store, or a run deleted for good: a new run
    return run if run.info.lifecycle_stage == "active" else None
