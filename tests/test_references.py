"""Checks of the reference solvers against the published Burgers and Allen--Cahn data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pinn_exp.pdes.references import allen_cahn_reference, burgers_cole_hopf

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
BURGERS_FILE = DATA_DIR / "Burgers.npz"
ALLEN_CAHN_FILE = DATA_DIR / "usol_D_0.001_k_5.mat"
MAX_REL_L2 = 1e-3


def _data_file(path: Path) -> Path:
    """Return ``path`` or skip the test when the shared data (folder or file) is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data folder not found: {DATA_DIR}")
    if not path.is_file():
        pytest.skip(f"shared data file not found: {path}")
    return path


def _rel_l2(pred: np.ndarray, ref: np.ndarray) -> float:
    """Relative L2 error of ``pred`` against ``ref``."""
    return float(np.linalg.norm(pred - ref) / np.linalg.norm(ref))


@pytest.fixture(scope="module")
def allen_cahn_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Published Allen--Cahn grid and solution, plus ours on that grid (computed once)."""
    from scipy.io import loadmat

    mat = loadmat(_data_file(ALLEN_CAHN_FILE))
    x, t = mat["x"].ravel(), mat["t"].ravel()
    return x, t, mat["u"], allen_cahn_reference(x, t)


def test_burgers_matches_published_data() -> None:
    data = np.load(_data_file(BURGERS_FILE))
    x, t, usol = data["x"].ravel(), data["t"].ravel(), data["usol"]
    u = burgers_cole_hopf(x, t)
    assert u.shape == usol.shape == (x.size, t.size)
    assert _rel_l2(u, usol) <= MAX_REL_L2


def test_burgers_initial_condition_and_boundaries() -> None:
    x = np.linspace(-1.0, 1.0, 101)
    u = burgers_cole_hopf(x, np.array([0.0, 0.3, 0.9]))
    np.testing.assert_allclose(u[:, 0], -np.sin(np.pi * x), rtol=0, atol=1e-14)
    np.testing.assert_allclose(u[[0, -1], :], 0.0, atol=1e-10)


def test_allen_cahn_matches_published_data(allen_cahn_data) -> None:
    x, t, u_pub, u = allen_cahn_data
    assert u.shape == u_pub.shape == (t.size, x.size)
    assert _rel_l2(u, u_pub) <= MAX_REL_L2


def test_allen_cahn_initial_row_and_boundaries(allen_cahn_data) -> None:
    x, t, _, u = allen_cahn_data
    assert t[0] == 0.0
    np.testing.assert_allclose(u[0], x**2 * np.cos(np.pi * x), rtol=0, atol=1e-12)
    edges = np.isclose(np.abs(x), 1.0, rtol=0, atol=0)
    assert edges.sum() == 2
    np.testing.assert_allclose(u[:, edges], -1.0, rtol=0, atol=1e-8)
