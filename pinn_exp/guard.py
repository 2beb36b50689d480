"""Checks that run before Hydra writes anything into a run's directory (a Hydra callback,
registered in conf/config.yaml), so that no command can damage a run on disk:

* a run never writes into a directory that holds another run's record, unless it resumes it;
* a sweep never writes into a sweep directory that another sweep claimed (``.sweep``, created
  exclusively, so two sweeps started at once cannot both pass);
* ``resume=true`` starts only when it can: the checkpoint reads, and the config equals the
  recorded one except for the keys a resume may change (``RESUMABLE``; ``rounds`` only
  upwards); a finished run is left alone, and said to be finished.

A refusal prints one line and exits (status 2; 0 for a finished run), before Hydra writes
``.hydra/`` or the log, so every file of the run stays as it was. (A sweep's job is checked
inside the job, after Hydra has rewritten its ``.hydra/*.yaml`` and opened its log; its
records, history, points and checkpoint stay as they were.)
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from pinn_exp.io.record import CHECKPOINT, CONFIG, METRICS

SWEEP_CLAIM = ".sweep"
#: keys that may differ between a run and its resumption
RESUMABLE = {"resume", "progress", "rounds", "report"}


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
        # keys the recorded config lacks were added to the project after the run started
        changed = sorted(
            key
            for key in before.keys()
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


#: free disk space below which a run or a sweep does not start (its files take a few MB)
MIN_FREE_MB = 50


def check_writable(folder: Path, key: str) -> None:
    """Raises :class:`Refused` unless ``folder`` (created if need be) takes a file and its
    disk has ``MIN_FREE_MB`` free: a read-only or full disk is said in one line, up front."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise Refused(f"{key}={folder} cannot be written: {exc.strerror or exc}") from None
    free_mb = shutil.disk_usage(folder).free / 2**20
    if free_mb < MIN_FREE_MB:
        raise Refused(
            f"{key}={folder}: only {free_mb:.0f} MiB are free on its disk (a run needs at "
            f"least {MIN_FREE_MB} MiB); free some space or choose another {key}"
        )


def check_run_dir(run_dir: Path, job: dict) -> None:
    """Raises :class:`Refused` unless a single run may write into ``run_dir``."""
    if job.get("resume"):
        check_resume(run_dir, job)
    elif (run_dir / METRICS).exists():
        raise Refused(
            f"{run_dir} holds another run's record ({METRICS}); choose another "
            "hydra.run.dir, or add resume=true to continue that run"
        )


def requeued() -> bool:
    """True in a SLURM job that SLURM restarted (``--requeue``, submitit's timeouts)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0


def claim_sweep_dir(sweep_dir: Path, resume: bool) -> None:
    """Claims ``sweep_dir`` for this sweep, or raises :class:`Refused` if another has it: its
    ``.sweep`` file, created exclusively (two sweeps started at once cannot both have it), or,
    for folders from before such files, a run's record in one of its job folders."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    claim = sweep_dir / SWEEP_CLAIM
    if resume:  # the jobs resume their own directories (each checked by check_resume)
        claim.touch()
        return
    earlier = any(sweep_dir.glob(f"*/{METRICS}"))
    try:
        if earlier:
            raise FileExistsError
        fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise Refused(
            f"{sweep_dir} holds another sweep; choose another hydra.sweep.dir, or add "
            "resume=true to continue that sweep's runs"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(f"pid {os.getpid()}\n")


def say(exc: Refused) -> None:
    """The refusal's one line on stderr (``error:`` unless it is no error)."""
    print(("" if exc.code == 0 else "error: ") + str(exc), file=sys.stderr)


def _refuse(exc: Refused) -> None:
    say(exc)
    sys.exit(exc.code)


# set by on_multirun_end: a sweep that exits without it was cut short
_SWEEP = {"config": None, "ended": False}


def sweep_ended() -> None:
    """Marks the running sweep as ended normally (its summary is written by the callback)."""
    _SWEEP["ended"] = True


def _finish_cut_sweep() -> None:
    """At exit of a sweep that did not end normally (a launcher that died with a killed
    worker, an exception in Hydra): write the summary of what is on disk and say how to run
    the jobs that did not finish."""
    config = _SWEEP["config"]
    if config is None or _SWEEP["ended"]:
        return
    from pinn_exp.report.callback import write_sweep_summary

    sweep_dir = Path(config.hydra.sweep.dir)
    if not any(p.is_dir() for p in sweep_dir.iterdir()):
        # no job started (a sweep that did not compose): the folder is not another sweep's
        (sweep_dir / SWEEP_CLAIM).unlink(missing_ok=True)
        return
    try:
        frame = write_sweep_summary(config)
    except Exception as exc:  # noqa: BLE001 - exiting anyway; say what could not be done
        print(f"the sweep stopped early and its summary could not be written: {exc}",
              file=sys.stderr)  # fmt: skip
        return
    unfinished = int((frame["status"] == "incomplete").sum()) if "status" in frame else 0
    given = [*config.hydra.overrides.hydra, *config.hydra.overrides.task]
    overrides = " ".join(
        shlex.quote(str(o)) for o in given if not str(o).startswith(("resume=", "hydra.sweep.dir="))
    )
    print(
        f"the sweep stopped before it ended: {unfinished} of {len(frame)} jobs have no final "
        f"record (summary: {sweep_dir / 'summary.md'}). To finish them (finished jobs are left "
        f"as they are):\n  python run.py -m {overrides} resume=true "
        f"hydra.sweep.dir={shlex.quote(str(sweep_dir))}",
        file=sys.stderr,
    )


class RunGuard(Callback):
    """The checks of this module, before Hydra touches a run's or a sweep's directory; and,
    for a sweep cut short, its summary and the command that finishes it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_run_dir(Path(config.hydra.run.dir), _job_config(config))
            check_writable(Path(config.hydra.run.dir), "hydra.run.dir")
        except Refused as exc:
            _refuse(exc)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_writable(Path(config.hydra.sweep.dir), "hydra.sweep.dir")
            # a whole sweep requeued by SLURM goes on: its jobs resume (pinn_exp/cli.py)
            resume = bool(config.get("resume")) or requeued()
            claim_sweep_dir(Path(config.hydra.sweep.dir), resume)
        except Refused as exc:
            _refuse(exc)
        _SWEEP.update(config=copy.deepcopy(config), ended=False)
        atexit.register(_finish_cut_sweep)
