"""Finds the run folders below one or more folders, and the jobs of a sweep that never
started (listed as incomplete runs, so a report made while a sweep runs, or after it was
killed, names them).

Every folder that holds ``metrics.json``, ``config_resolved.yaml`` or ``.hydra/config.yaml`` is
a run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from omegaconf import OmegaConf

from pinn_exp.hydra_adapter import split_override, sweep_jobs
from pinn_exp.io import record
from pinn_exp.report.run_files import CONFIG_FILES, INCOMPLETE

log = logging.getLogger(__name__)


def is_run_dir(path: Path) -> bool:
    """True when ``path`` holds a metrics file or a Hydra config."""
    return any((path / name).is_file() for name in (record.METRICS, *CONFIG_FILES))


def find_run_dirs(dirs: Iterable[Path]) -> list[Path]:
    """All run folders at or below ``dirs``; hidden folders (``.hydra``) are not searched.

    Args:
        dirs: folders to search.

    Returns:
        The run folders, resolved, sorted and without duplicates.
    """
    found: set[Path] = set()
    for root in dirs:
        for current, subdirs, _files in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            path = Path(current)
            if is_run_dir(path):
                found.add(path.resolve())
                subdirs[:] = []  # a run's own subfolders are not runs
    return sorted(found)


def display_path(path: Path, relative_to: Path | None) -> str:
    """``path`` relative to ``relative_to`` where possible, else absolute."""
    if relative_to is None:
        return str(path)
    try:
        return os.path.relpath(path, Path(relative_to).resolve())
    except ValueError:  # another drive on Windows
        return str(path)


def expected_jobs(sweep_dir: Path) -> list[list[str]] | None:
    """The overrides of every job of a sweep, as Hydra's basic sweeper expands them.

    Args:
        sweep_dir: the sweep's folder (with ``multirun.yaml``).

    Returns:
        One list of overrides per job, in job-number order; None where there is no
        ``multirun.yaml`` or it cannot be expanded (another sweeper, ranges of floats).
    """
    path = Path(sweep_dir) / "multirun.yaml"
    if not path.is_file():
        return None
    try:
        return sweep_jobs(OmegaConf.load(path))
    except Exception as exc:  # noqa: BLE001 - a summary without the missing jobs still helps
        log.warning("cannot list the jobs of %s: %s", path, exc)
        return None


def not_started(sweep_dir: Path, relative_to: Path | None) -> list[dict]:
    """Rows (status ``incomplete``) for the jobs of a sweep that have no directory."""
    jobs = expected_jobs(sweep_dir)
    if jobs is None:
        return []
    started = {
        int(p.name.split("_", 1)[0])
        for p in Path(sweep_dir).iterdir()
        if p.is_dir() and p.name.split("_", 1)[0].isdigit()
    }
    rows = []
    for num, job in enumerate(jobs):
        if num in started:
            continue
        row = {
            "run_dir": display_path(Path(sweep_dir) / f"{num} (not started)", relative_to),
            "status": INCOMPLETE,
            "error": "not started: " + " ".join(job),
        }
        for override in job:
            key, value = split_override(override)
            row[key] = _parse_value(value)
        rows.append(row)
    return rows


def _parse_value(text: str):
    """An override's value as the number it spells, else the string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
