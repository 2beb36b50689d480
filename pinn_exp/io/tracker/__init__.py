"""The experiment tracker (``logger=mlflow``): a run's record, curves and files mirrored into
MLflow; a sweep as one parent run with its jobs as child runs.

The run's files stay the source of truth. When a run ends the tracker reads what the runner
wrote (``metrics.json``, ``history.csv``, ``config_resolved.yaml``, the plots) and mirrors it:
the config as params, the record's identity as tags, every metric per round (step = round),
the loss curve, the files as artifacts, and the record's status as the run's. A tracker that
fails (a locked database, a server that does not answer, a bad URI) costs one warning and at
most ``logger.timeout_s`` seconds; it never fails a run. This package is the only one that
imports MLflow, and only when the config chooses it (``logger=none`` imports nothing).

Its modules: :mod:`~pinn_exp.io.tracker.session` (the settings, the client, retries and the
time bound), :mod:`~pinn_exp.io.tracker.content` (what a run logs),
:mod:`~pinn_exp.io.tracker.sweep_run` (the sweep's parent run) and
:mod:`~pinn_exp.io.tracker.run` (a run, when it ends).
"""

from pinn_exp.io.tracker.content import (
    CHECK_EVERY,
    IDENTITY,
    MAX_PARAM,
    MAX_TAG,
    SIGNALLED,
    STATUS,
    TAG,
    flatten,
    run_metrics,
)
from pinn_exp.io.tracker.run import SIGNALLED_TIMEOUT_S, recorded_run_id, track_run
from pinn_exp.io.tracker.session import (
    ARTIFACTS,
    BACKOFF_S,
    DEFAULT_DATABASE,
    EXPERIMENT_TAGS,
    INSTALL,
    MLflowLogger,
    default_uri,
)
from pinn_exp.io.tracker.sweep_run import (
    SWEEP_FILES,
    SWEEP_FUNCTIONS,
    end_sweep,
    run_name,
    start_sweep,
)

__all__ = [
    "ARTIFACTS",
    "BACKOFF_S",
    "CHECK_EVERY",
    "DEFAULT_DATABASE",
    "EXPERIMENT_TAGS",
    "IDENTITY",
    "INSTALL",
    "MAX_PARAM",
    "MAX_TAG",
    "SIGNALLED",
    "SIGNALLED_TIMEOUT_S",
    "STATUS",
    "SWEEP_FILES",
    "SWEEP_FUNCTIONS",
    "TAG",
    "MLflowLogger",
    "default_uri",
    "end_sweep",
    "flatten",
    "recorded_run_id",
    "run_metrics",
    "run_name",
    "start_sweep",
    "track_run",
]
