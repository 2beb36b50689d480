"""Constants shared by the tests: the project's folders and a budget that runs in seconds.
Tests take them as fixtures (``root``, ``conf_dir``, ``tiny``, ``compose``; conftest.py);
helper functions of a test module that are not tests import them from here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pinn_exp.config import compose_config  # noqa: F401  (re-exported for helper functions)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
DATA = ROOT.parent / "shared" / "data"

# A budget that runs in seconds: used by the end-to-end tests.
TINY = [
    "optimizer.pretrain_steps=30",
    "optimizer.adam_steps=10",
    "optimizer.lbfgs_steps=5",
    "rounds=2",
    "n_points=200",
    "progress=false",
    "device=cpu",
]

#: scales every subprocess timeout of the tests (``PINN_EXP_TEST_TIMEOUT_SCALE=3 pytest``)
TIMEOUT_SCALE_ENV = "PINN_EXP_TEST_TIMEOUT_SCALE"


def patient(seconds: float) -> float:
    """A subprocess timeout of ``seconds`` on a quiet machine, stretched by the machine's load
    (the 1-minute load average per core, when above 1) and by ``PINN_EXP_TEST_TIMEOUT_SCALE``:
    an end-to-end test on a busy machine is slow, not broken, and a hung one still ends."""
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:  # no load average on this platform
        load = 1.0
    return seconds * max(1.0, load) * max(1.0, float(os.environ.get(TIMEOUT_SCALE_ENV, "1")))


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python run.py ARGS`` in ``cwd``, as a user types it; the tests' own PDEs and faults
    (tests/) importable, Hydra's one-line errors."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(ROOT / "tests"), **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=patient(600),
    )


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` and its bytes: what a command left there."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
