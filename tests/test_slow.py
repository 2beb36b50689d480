"""Longer checks (``pytest -m slow``): the default job's accuracy promise."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support import patient

pytestmark = pytest.mark.slow


def test_default_job_reaches_five_percent_on_the_cpu(tmp_path, root):
    """README: ``python run.py`` (Burgers + RSmote) reaches a relative L2 error <= 5e-2 within
    5 minutes on a 2-core CPU (docs/results.md, "The default job against ...")."""
    env = {**os.environ, "OMP_NUM_THREADS": str(os.cpu_count() or 1)}
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "run.py"),
            "device=cpu",
            "progress=false",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=patient(900),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "ok"
    assert record["l2_rel_error"] <= 5e-2
