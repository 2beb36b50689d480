"""A sweep as one parent run: created before its jobs, which find it by its tags and become
its children; ended with the sweep's summary files as artifacts and the sweep's status."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from pinn_exp.hydra_adapter import split_override
from pinn_exp.io.tracker.content import MAX_PARAM, TAG
from pinn_exp.io.tracker.session import (
    MLflowLogger,
    bounded,
    find_experiment,
    logger_of,
    open_client,
    retry,
)

#: a sweep's summary files that its parent run keeps (plus its PNG plots)
SWEEP_FILES = ("summary.csv", "summary.md", "summary_paired.csv", "summary.tex", "multirun.yaml")
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
    values = [str(o) for o in overrides or [] if split_override(o)[0] in swept]
    return " ".join([folder, *values])


def _on_parent(node: dict | None, sweep_dir: Path, what: str, work: Callable) -> None:
    """``work(logger, client, parent)`` with the sweep's parent run (None where there is none
    yet), bounded by ``logger.timeout_s`` (:func:`bounded`: a failure is one warning, ``the
    sweep SWEEP_DIR WHAT``). Nothing happens, and nothing is imported, without a ``node``."""
    if not node:
        return
    logger = logger_of(node)
    sweep_dir = Path(sweep_dir)

    def call() -> None:
        client = open_client(logger)
        parent = retry(lambda: find_sweep_run(client, sweep_dir))
        work(logger, client, parent)

    bounded(logger.timeout_s, f"the sweep {sweep_dir} {what}", call)


def start_sweep(node: dict | None, sweep_dir: Path, pde: str | None, overrides: list[str]) -> None:
    """Creates the parent run of the sweep in ``sweep_dir`` (a resumed sweep: finds it and
    marks it running again), before any job runs: the jobs find it by its tags.

    Args:
        node: the sweep's ``logger`` node (None: nothing happens, nothing is imported).
        sweep_dir: the sweep's directory.
        pde: the sweep's PDE, the experiment's name unless ``logger.experiment`` is set.
        overrides: the sweep's command-line overrides, kept as the parent's params.
    """

    def start(logger: MLflowLogger, client, parent) -> None:
        if parent is not None:
            retry(lambda: client.update_run(parent.info.run_id, status="RUNNING"))
            return
        experiment_id = retry(
            lambda: find_experiment(client, logger, logger.experiment or pde or "pinn-exp")
        )
        tags = {"mlflow.runName": f"sweep {Path(sweep_dir).name}", f"{TAG}kind": "sweep"}
        tags.update(sweep_tags(sweep_dir))
        run = retry(lambda: client.create_run(experiment_id, tags=tags))
        _log_overrides(client, run.info.run_id, overrides)

    _on_parent(node, sweep_dir, "has no parent run", start)


def _log_overrides(client, run_id: str, overrides: list[str]) -> None:
    from mlflow.entities import Param

    params = {}
    for override in overrides:
        key, value = split_override(override)
        params[key] = value[:MAX_PARAM]
    batch = [Param(k, v) for k, v in params.items() if k and len(k) <= 250]
    for first in range(0, len(batch), 100):
        retry(lambda chunk=batch[first : first + 100]: client.log_batch(run_id, params=chunk))


def end_sweep(node: dict | None, sweep_dir: Path, status: str) -> None:
    """Ends the parent run of the sweep in ``sweep_dir``: its summary files and plots as
    artifacts, every job of the sweep that was tracked without it as its child, and
    ``status`` (``ok``: FINISHED, ``failed``: FAILED, ``killed``: KILLED).

    Args:
        node: the sweep's ``logger`` node (None: nothing happens, nothing is imported).
        sweep_dir: the sweep's directory, its summary written.
        status: how the sweep ended.
    """

    def end(logger: MLflowLogger, client, parent) -> None:
        folder = Path(sweep_dir)
        if parent is None:  # its start was not tracked: not nested now
            return
        parent_id = parent.info.run_id
        for child in retry(lambda: sweep_runs(client, sweep_dir, "run")):
            if child.data.tags.get("mlflow.parentRunId") != parent_id:
                retry(
                    lambda c=child: client.set_tag(c.info.run_id, "mlflow.parentRunId", parent_id)
                )
        files = [folder / name for name in SWEEP_FILES] + sorted(folder.glob("*.png"))
        for path in files:
            if path.is_file():
                retry(lambda p=path: client.log_artifact(parent_id, str(p)))
        final = {"ok": "FINISHED", "killed": "KILLED"}.get(status, "FAILED")
        retry(lambda: client.set_terminated(parent_id, final))

    _on_parent(node, sweep_dir, "was not tracked", end)


def sweep_dir_of(out_dir: Path) -> Path | None:
    """The sweep directory that holds the job directory ``out_dir`` (Hydra writes
    ``multirun.yaml`` there when a sweep starts), or None for a single run."""
    for folder in Path(os.path.abspath(out_dir)).parents:
        if (folder / "multirun.yaml").is_file():
            return folder
    return None


def _sweep_key(sweep_dir: Path) -> str:
    """The sweep's tag value: a digest of its absolute path (tag filters quote plain text)."""
    return hashlib.sha256(os.path.abspath(sweep_dir).encode()).hexdigest()[:20]


def sweep_tags(sweep_dir: Path) -> dict[str, str]:
    return {f"{TAG}sweep": _sweep_key(sweep_dir), f"{TAG}sweep_dir": os.path.abspath(sweep_dir)}


def sweep_runs(client, sweep_dir: Path, kind: str) -> list:
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


def find_sweep_run(client, sweep_dir: Path):
    runs = sweep_runs(client, sweep_dir, "sweep")
    return runs[0] if runs else None
