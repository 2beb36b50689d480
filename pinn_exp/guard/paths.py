"""Where a run or a sweep may write: a directory named at all, not through a dangling link
or a loop of links, writable with free space; a run not in a sweep's directory, a sweep not
in a run's nor in another sweep's; a run's directory without another run's record (unless
it resumes it); a sweep's job folder strictly inside the sweep's and not a symbolic link."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pinn_exp.guard.claim import RUN_CLAIM
from pinn_exp.guard.refusal import Refused
from pinn_exp.guard.resume import check_resume
from pinn_exp.io.record import CHECKPOINT, HISTORY, METRICS
from pinn_exp.sweep import SWEEP_CLAIM

#: free disk space below which a run or a sweep does not start (its files take a few MB)
MIN_FREE_MB = 50


def check_path(value: Any, key: str) -> Path:
    """The directory ``key=value`` names, absolute; :class:`Refused` for an empty value (it
    would be the current directory), a dangling symbolic link or a loop of links."""
    text = "" if value is None else str(value)
    if not text.strip():
        raise Refused(f"{key} is empty: give the directory the output goes to ({key}=DIR)")
    path = Path(os.path.abspath(text))
    for part in [path, *path.parents]:
        if part.is_symlink():
            try:
                part.resolve(strict=True)
            except RuntimeError:
                raise Refused(f"{key}={text}: {part} is a loop of symbolic links") from None
            except OSError as exc:
                if exc.errno == 40:  # ELOOP
                    raise Refused(f"{key}={text}: {part} is a loop of symbolic links") from None
                raise Refused(
                    f"{key}={text}: {part} is a symbolic link to {os.readlink(part)}, which "
                    "does not exist; create its target or choose another directory"
                ) from None
    return path


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


def _is_sweep_dir(folder: Path) -> bool:
    return (folder / SWEEP_CLAIM).exists() or (folder / "multirun.yaml").exists()


def _is_run_dir(folder: Path) -> bool:
    return any((folder / name).exists() for name in (METRICS, CHECKPOINT, RUN_CLAIM))


def _enclosing(folder: Path) -> list[Path]:
    """``folder`` and every folder above it, as given and with symbolic links resolved (a link
    into a sweep's or a run's folder is inside it)."""
    out: list[Path] = []
    for path in (Path(os.path.abspath(folder)), Path(os.path.realpath(folder))):
        for part in (path, *path.parents):
            if part not in out:
                out.append(part)
    return out


def _same_folder(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def check_not_in_sweep(run_dir: Path) -> None:
    """A single run neither writes into a sweep's directory nor anywhere below one (a job's
    folder or a folder in it, also through a symbolic link)."""
    for folder in _enclosing(run_dir):
        if _is_sweep_dir(folder):
            inside = "" if _same_folder(folder, run_dir) else "inside "
            raise Refused(
                f"hydra.run.dir={run_dir} is {inside}a sweep's directory ({folder}); a "
                f"sweep's jobs are resumed with -m ... resume=true hydra.sweep.dir={folder}, "
                "a single run goes elsewhere"
            )


def check_not_in_run(sweep_dir: Path) -> None:
    """A sweep neither writes into a run's directory nor anywhere below one (also through a
    symbolic link)."""
    for folder in _enclosing(sweep_dir):
        if _is_run_dir(folder):
            inside = "" if _same_folder(folder, sweep_dir) else "inside "
            raise Refused(
                f"hydra.sweep.dir={sweep_dir} is {inside}a run's directory ({folder}); choose "
                "another hydra.sweep.dir"
            )


def check_sweep_not_in_sweep(sweep_dir: Path) -> None:
    """A sweep does not write below another sweep's folder (its report would take the new
    sweep's runs for its own)."""
    for folder in _enclosing(sweep_dir):
        if not _same_folder(folder, sweep_dir) and _is_sweep_dir(folder):
            raise Refused(
                f"hydra.sweep.dir={sweep_dir} is inside another sweep's directory ({folder}); "
                "choose another hydra.sweep.dir"
            )


def _nothing_to_lose(run_dir: Path) -> bool:
    """True for a run that failed before training (a bad value, an allocation while
    building): a corrected command may take its directory."""
    try:
        record = json.loads((run_dir / METRICS).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("status") in ("failed", "oom")
        and record.get("phase") in ("config", "build")
        and not (run_dir / CHECKPOINT).exists()
        and not (run_dir / HISTORY).exists()
    )


def check_run_dir(run_dir: Path, job: dict) -> None:
    """Raises :class:`Refused` unless a run may write into ``run_dir``."""
    if job.get("resume"):
        check_resume(run_dir, job)
    elif (run_dir / METRICS).exists() and not _nothing_to_lose(run_dir):
        raise Refused(
            f"{run_dir} holds another run's record ({METRICS}); choose another "
            "hydra.run.dir, or add resume=true to continue that run"
        )
    elif (run_dir / CHECKPOINT).exists() and not (run_dir / METRICS).exists():
        raise Refused(
            f"{run_dir} holds another run's {CHECKPOINT}; choose another hydra.run.dir, or "
            "add resume=true to continue that run"
        )


def check_subdir(name: str, subdir: str, sweep_dir: Path) -> None:
    """A job's folder is a folder strictly inside the sweep's: not absolute, no ``..`` out of
    it, not the sweep's folder itself (Hydra would write the job's ``.hydra/`` and log there,
    into another run's folder or the sweep's own)."""
    normal = os.path.normpath(name)
    if os.path.isabs(name) or normal == "." or normal == ".." or normal.startswith("../"):
        raise Refused(
            f"hydra.sweep.subdir={subdir} gives a job the folder {name!r}, which is not a "
            f"folder inside hydra.sweep.dir={sweep_dir}: use a relative path without '..' "
            "(e.g. the default ${hydra.job.num}_...)"
        )


def has_links(sweep_dir: Path, depth: int) -> bool:
    """True if a symbolic link is among the entries of ``sweep_dir`` down to ``depth`` levels
    (where a job's folder, or a folder on the way to it, could be one)."""
    level = [Path(sweep_dir)]
    for _ in range(max(depth, 1)):
        below = []
        for folder in level:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if entry.is_symlink():
                    return True
                if entry.is_dir(follow_symlinks=False):
                    below.append(Path(entry.path))
        level = below
    return False


def check_job_link(sweep_dir: Path, name: str) -> None:
    """A job's folder (``name``, relative to ``sweep_dir``) and every folder between it and
    the sweep's are real folders, not symbolic links: Hydra writes the job's ``.hydra/`` and
    log into it before any check of the job, so a link to another run's folder would have that
    run's files rewritten."""
    part = Path(sweep_dir)
    for piece in Path(os.path.normpath(name)).parts:
        part = part / piece
        if part.is_symlink():
            where = "" if part == Path(sweep_dir) / os.path.normpath(name) else "inside "
            raise Refused(
                f"the sweep's job folder {Path(sweep_dir) / name} is {where}a symbolic link "
                f"({part} -> {os.readlink(part)}): the job would write into another folder; "
                "remove the link or choose another hydra.sweep.dir; nothing was started"
            )


def check_job_dir(job_dir: Path, sweep_dir: Path) -> None:
    """A sweep's job writes into a folder strictly inside the sweep's folder (any sweeper)."""
    job, sweep = os.path.realpath(job_dir), os.path.realpath(sweep_dir)
    if job == sweep or not job.startswith(sweep.rstrip(os.sep) + os.sep):
        raise Refused(
            f"the sweep's job folder {job_dir} is not a folder inside hydra.sweep.dir="
            f"{sweep_dir}: hydra.sweep.subdir must be a relative path without '..'"
        )
