"""A run directory's claim for the run's lifetime (``.run.lock``, created exclusively,
holding the process id): two commands started at once into one directory, or a resume of a
run that is still running, cannot both go on; a claim whose process died is taken over."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from pinn_exp.guard.refusal import Refused

#: a run directory's claim: created exclusively, holds ``pid PID host HOST``
RUN_CLAIM = ".run.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _holder(text: str) -> tuple[int, str, str | None] | None:
    """(pid, host, SLURM job id or None) of a claim's text."""
    match = re.fullmatch(r"pid (\d+) host (\S+)(?: slurm (\S+))?\s*", text)
    return (int(match.group(1)), match.group(2), match.group(3)) if match else None


def _slurm_job() -> str | None:
    """This process's SLURM job (an array task: its own id), or None outside SLURM."""
    return os.environ.get("SLURM_JOB_ID") or None


def _holder_ended(holder: tuple[int, str, str | None], host: str) -> bool:
    """The claim's process has ended: it ran on this host and is not alive, or it was an
    earlier start of this same SLURM job (SLURM runs one instance of a job at a time, and a
    requeued job may start on another node)."""
    pid, where, job = holder
    if job is not None and job == _slurm_job() and (pid, where) != (os.getpid(), host):
        return True
    return where == host and not _alive(pid)


def _take_over(path: Path, stale: str) -> None:
    """Removes a claim whose process died, unless another process renewed it meanwhile."""
    moved = path.with_name(f"{path.name}.{os.getpid()}.stale")
    try:
        os.replace(path, moved)
    except FileNotFoundError:
        return
    try:
        if moved.read_text() != stale:  # a fresh claim was moved: put it back
            try:
                os.link(moved, path)
            except FileExistsError:
                pass
    finally:
        moved.unlink(missing_ok=True)


class Claim:
    """A run directory's claim (``.run.lock``), held until :meth:`release`."""

    def __init__(self, path: Path, text: str):
        self.path, self.text = path, text

    def release(self) -> None:
        try:
            if self.path.read_text() == self.text:
                self.path.unlink()
        except OSError:
            pass


def claim_run_dir(run_dir: Path) -> Claim:
    """Claims ``run_dir`` for this process, or raises :class:`Refused` if a live process holds
    it; a claim of a process that ended (killed, crashed) on this host is taken over."""
    import time

    path = run_dir / RUN_CLAIM
    host = socket.gethostname()
    job = _slurm_job()
    text = f"pid {os.getpid()} host {host}" + (f" slurm {job}" if job else "") + "\n"
    deadline = time.monotonic() + 3
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if path.is_symlink():
                # not a claim this project writes (it creates a plain file): a dangling link
                # would never open, and a link elsewhere is not this folder's to take over
                target = os.readlink(path)
                raise Refused(
                    f"{run_dir} cannot be claimed: its {RUN_CLAIM} is a symbolic link to "
                    f"{target}, not a claim; delete {path} if no run uses {run_dir}"
                ) from None
            try:
                held, age = path.read_text(), time.time() - path.stat().st_mtime
            except FileNotFoundError:
                if time.monotonic() < deadline:
                    continue  # released meanwhile
                raise Refused(
                    f"{run_dir} cannot be claimed: its {RUN_CLAIM} neither opens nor can be "
                    f"created; delete {path} if no run uses {run_dir}"
                ) from None
            holder = _holder(held)
            if holder is None and age < 5 and time.monotonic() < deadline:
                time.sleep(0.1)  # being written by the process that created it
                continue
            if holder is None or _holder_ended(holder, host):
                _take_over(path, held)
                if time.monotonic() < deadline:
                    continue
            who = f"process {holder[0]} on {holder[1]}" if holder else "another process"
            raise Refused(
                f"{run_dir} is in use by {who} (its {RUN_CLAIM}); wait until it ends, or "
                f"delete {path} if that process is gone"
            ) from None
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return Claim(path, text)


def requeued() -> bool:
    """True in a SLURM job that SLURM restarted (``--requeue``, submitit's timeouts)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0
