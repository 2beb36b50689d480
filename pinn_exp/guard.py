"""Checks that run before Hydra writes anything into a run's directory (a Hydra callback,
registered in conf/config.yaml), so that no command can damage a run on disk:

* a run never writes into a directory that holds another run's record, unless it resumes it;
* a sweep never writes into a sweep directory that another sweep claimed (``.sweep``, created
  exclusively, so two sweeps started at once cannot both pass);
* ``resume=true`` starts only when it can: the checkpoint reads, and the config equals the
  recorded one except for the keys a resume may change (``RESUMABLE``; ``rounds`` only
  upwards); a finished run is left alone, and said to be finished.

A refusal prints one line and exits (status 2; 0 for a finished run), before Hydra writes
``.hydra/`` or the log, so every file of the run stays as it was.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

METRICS = "metrics.json"
CONFIG = "config_resolved.yaml"
CHECKPOINT = "checkpoint.pt"
SWEEP_CLAIM = ".sweep"
#: keys that may differ between a run and its resumption
RESUMABLE = {"resume", "progress", "rounds"}


class Refused(Exception):
    """The command would damage a run on disk; the message says why and what to do."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def _job_config(config: DictConfig) -> dict:
    """The config a run records in config_resolved.yaml (everything but ``hydra``)."""
    job = copy.deepcopy(config)
    with read_write(job), open_dict(job):
        del job["hydra"]
    return OmegaConf.to_container(job, resolve=True)


def check_resume(run_dir: Path, job: dict) -> None:
    """Raises :class:`Refused` unless resuming ``run_dir`` with config ``job`` can start."""
    record_file = run_dir / METRICS
    if not record_file.is_file():
        return  # nothing there yet: the run starts from scratch (the trainer says so)
    try:
        record = json.loads(record_file.read_text())
    except (OSError, ValueError) as exc:
        raise Refused(f"cannot resume {run_dir}: {METRICS} is unreadable ({exc})") from None
    old_config = run_dir / CONFIG
    if old_config.is_file():
        before = _flat(OmegaConf.to_container(OmegaConf.load(old_config), resolve=True))
        after = _flat(job)
        changed = sorted(
            key
            for key in before.keys() | after.keys()
            if key.split(".")[0] not in RESUMABLE and before.get(key) != after.get(key)
        )
        if changed:
            shown = ", ".join(f"{k} ({before.get(k)!r} -> {after.get(k)!r})" for k in changed)
            raise Refused(
                f"cannot resume {run_dir}: the config differs from the run's in {shown}; "
                f"only {', '.join(sorted(RESUMABLE))} may change on resume"
            )
        if after.get("rounds", 0) < before.get("rounds", 0):
            raise Refused(
                f"cannot resume {run_dir}: rounds={after.get('rounds')} is below the run's "
                f"rounds={before.get('rounds')}; a resume may only raise it"
            )
    if record.get("status") == "ok" and record.get("rounds") == job.get("rounds"):
        raise Refused(
            f"{run_dir} finished already (status ok, {record.get('rounds')} rounds): nothing "
            "to resume; raise rounds=... to train further",
            code=0,
        )
    checkpoint = run_dir / CHECKPOINT
    if checkpoint.is_file():
        import torch

        try:
            torch.load(checkpoint, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is refused
            raise Refused(
                f"cannot resume {run_dir}: {CHECKPOINT} cannot be read ({type(exc).__name__}: "
                f"{exc}); nothing was changed"
            ) from None


def check_run_dir(run_dir: Path, job: dict) -> None:
    """Raises :class:`Refused` unless a single run may write into ``run_dir``."""
    if job.get("resume"):
        check_resume(run_dir, job)
    elif (run_dir / METRICS).exists():
        raise Refused(
            f"{run_dir} holds another run's record ({METRICS}); choose another "
            "hydra.run.dir, or add resume=true to continue that run"
        )


def claim_sweep_dir(sweep_dir: Path, resume: bool) -> None:
    """Claims ``sweep_dir`` for this sweep, or raises :class:`Refused` if another has it."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    claim = sweep_dir / SWEEP_CLAIM
    if resume:
        return  # the jobs resume their own directories (each checked by check_resume)
    try:
        fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise Refused(
            f"{sweep_dir} holds another sweep (its {SWEEP_CLAIM} file); choose another "
            "hydra.sweep.dir, or add resume=true to continue that sweep's runs"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(f"pid {os.getpid()}\n")


def _refuse(exc: Refused) -> None:
    print(("" if exc.code == 0 else "error: ") + str(exc), file=sys.stderr)
    sys.exit(exc.code)


class RunGuard(Callback):
    """The checks of this module, before Hydra touches a run's or a sweep's directory."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_run_dir(Path(config.hydra.run.dir), _job_config(config))
        except Refused as exc:
            _refuse(exc)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            claim_sweep_dir(Path(config.hydra.sweep.dir), bool(config.get("resume")))
        except Refused as exc:
            _refuse(exc)
