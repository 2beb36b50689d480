"""Constants shared by the tests: the project's folders and a budget that runs in seconds.
Tests take them as fixtures (``root``, ``conf_dir``, ``tiny``, ``compose``; conftest.py);
helper functions of a test module that are not tests import them from here."""

from __future__ import annotations

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
