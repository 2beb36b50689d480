"""The runs this process admitted: each one's claim, and the files Hydra rewrites in its
directory (``.hydra/``, the log) as they were, to put back when the run cannot start after
all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pinn_exp.guard.claim import claim_run_dir
from pinn_exp.guard.paths import check_not_in_sweep, check_run_dir
from pinn_exp.guard.refusal import Refused, print_refusal

#: runs claimed and checked in this process: run directory -> its claim, its files before
_ADMITTED: dict[str, dict[str, Any]] = {}


def is_claimed(run_dir: Path) -> bool:
    """True if this process claimed and checked ``run_dir`` (:func:`claim_and_check`)."""
    return str(Path(run_dir).absolute()) in _ADMITTED


def claim_and_check(
    run_dir: Path, job: dict, sweep: bool = False, keep: tuple[str, ...] = ()
) -> None:
    """Claims ``run_dir`` and checks that the run ``job`` may write there (raises
    :class:`Refused` otherwise, the claim released). ``keep``: files (relative) whose
    content is kept in memory, for :func:`refuse_started` to put back."""
    run_dir = Path(run_dir).absolute()
    if is_claimed(run_dir):
        return
    if not sweep:
        check_not_in_sweep(run_dir)
    claim = claim_run_dir(run_dir)
    try:
        check_run_dir(run_dir, job)
        files = {
            name: (run_dir / name).read_bytes() if (run_dir / name).is_file() else None
            for name in keep
        }
    except BaseException:
        claim.release()
        raise
    _ADMITTED[str(run_dir)] = {"claim": claim, "files": files}


def release(run_dir: Path) -> None:
    """Releases the claim of ``run_dir`` (at the end of its run)."""
    entry = _ADMITTED.pop(str(Path(run_dir).absolute()), None)
    if entry is not None:
        entry["claim"].release()


def release_all() -> None:
    """Releases every claim of this process (at exit)."""
    for run_dir in list(_ADMITTED):
        release(Path(run_dir))


def refuse_started(run_dir: Path, exc: Refused) -> None:
    """A run claimed by :func:`claim_and_check` that cannot start after all: puts back the
    kept files (``.hydra/``, the log, which Hydra rewrote), releases the claim, says
    ``exc``."""
    run_dir = Path(run_dir).absolute()
    entry = _ADMITTED.get(str(run_dir), {"files": {}})
    for name, content in entry["files"].items():
        try:
            if content is None:
                (run_dir / name).unlink(missing_ok=True)
            else:
                from pinn_exp.io.storage import atomic_write

                atomic_write(run_dir / name, lambda f, c=content: f.write(c))
        except OSError:
            pass
    hydra_dir = run_dir / ".hydra"
    if hydra_dir.is_dir() and not any(hydra_dir.iterdir()):
        hydra_dir.rmdir()
    release(run_dir)
    print_refusal(exc)
