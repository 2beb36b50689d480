"""The worked example "Add your own PDE" (examples/poisson_peak): the class is right, its YAML
composes with the primary config through hydra.searchpath, and the README's command runs."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from support import ROOT, patient

from pinn_exp.ops import Laplacian
from pinn_exp.pdes import PDE

EXAMPLE = ROOT / "examples" / "poisson_peak"
# The command of examples/poisson_peak/README.md, run from the project root.
SEARCHPATH = "hydra.searchpath=[file://examples/poisson_peak/conf]"


@pytest.fixture(scope="module")
def module():
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield importlib.import_module("poisson_peak")
    finally:
        sys.path.remove(str(EXAMPLE))


@pytest.mark.parametrize("method", ["autograd", "forward", "func"])
@pytest.mark.parametrize("sigma", [0.05, 0.2])
def test_exact_solution_makes_the_residual_vanish(module, sigma, method):
    pde = module.PoissonPeak(sigma=sigma)
    assert isinstance(pde, PDE) and pde.name == "poisson_peak" and pde.dim == 2
    x = pde.domain.sample(2000, torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.cat([x, torch.tensor([[0.5, 0.5]], dtype=torch.float64)])  # the peak itself
    x.requires_grad_(True)
    res = pde.residual(pde.exact, x, Laplacian(method))
    assert res.shape == (2001,)
    f = pde.source(x)
    assert f.abs().max().item() == pytest.approx(2 / sigma**2, rel=1e-12)  # f(c) = d / sigma^2
    assert (res.abs().max() / f.abs().max()).item() <= 1e-8  # measured ~1e-16


def test_exact_solution_is_the_gaussian_peak(module):
    pde = module.PoissonPeak()
    x = torch.tensor([[0.5, 0.5], [0.55, 0.5], [0.5, 0.4], [0.0, 0.0]], dtype=torch.float64)
    expected = [1.0, math.exp(-0.5), math.exp(-2.0), math.exp(-0.5 / (2 * 0.05**2))]
    np.testing.assert_allclose(pde.exact(x).reshape(-1).numpy(), expected, rtol=1e-14)


def test_reference_and_boundary_terms(module):
    pde = module.PoissonPeak(n_boundary=400, boundary_weight=2.0)
    x, u = pde.reference()
    assert x.shape == (101 * 101, 2) and u.shape == (101 * 101,)
    np.testing.assert_allclose(np.unique(x[:, 0]), np.linspace(0, 1, 101), atol=1e-15)
    np.testing.assert_allclose(np.unique(x[:, 1]), np.linspace(0, 1, 101), atol=1e-15)
    assert np.isfinite(u).all() and u.max() == pytest.approx(1.0, abs=1e-15)

    (term,) = pde.boundary_terms(
        torch.Generator().manual_seed(0), torch.device("cpu"), torch.float64
    )
    assert term.name == "boundary" and term.weight == 2.0 and term.x.shape == (400, 2)
    assert ((term.x >= 0) & (term.x <= 1)).all()
    for i in range(2):
        for side in (0.0, 1.0):
            assert int((term.x[:, i] == side).sum()) == 100  # every edge gets its share
    torch.testing.assert_close(term.target.reshape(-1), pde.exact(term.x).reshape(-1))
    # the domain draws the points the example drew itself before (the same generator state)
    before = torch.rand(400, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    edge = torch.arange(400) % 4
    before[torch.arange(400), edge // 2] = (edge % 2).double()
    assert torch.equal(term.x, before)


def test_yaml_composes_with_the_primary_config(module, compose):
    searchpath = f"hydra.searchpath=[file://{EXAMPLE / 'conf'}]"
    cfg = compose(["pde=poisson_peak", searchpath, "pde.sigma=0.1"])
    assert cfg.pde._target_ == "poisson_peak.PoissonPeak"
    pde = instantiate(cfg.pde)
    assert isinstance(pde, module.PoissonPeak)
    assert pde.sigma == 0.1 and pde.n_boundary == 400
    # like the built-in PDEs of fixed dimension, pde.dim=3 is refused with the key named
    cfg = compose(["pde=poisson_peak", searchpath, "pde.dim=3"])
    with pytest.raises(InstantiationException) as info:
        instantiate(cfg.pde)
    assert isinstance(info.value.__cause__, ValueError)
    assert "pde.dim=3" in str(info.value.__cause__)


def test_readme_shows_the_tested_command():
    text = (EXAMPLE / "README.md").read_text()
    assert "PYTHONPATH=examples/poisson_peak python run.py pde=poisson_peak" in text
    assert f"'{SEARCHPATH}'" in text


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_end_to_end_run(tmp_path, root, tiny):
    env = dict(os.environ)
    # one intra-op thread: this run is tiny, and on a loaded 2-core machine two spinning
    # threads made it take 22 s instead of 5 s
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in ("examples/poisson_peak", env.get("PYTHONPATH")) if p
    )
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "run.py", "pde=poisson_peak", SEARCHPATH, f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(
        [*cmd, *tiny, "rounds=1"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=patient(300),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "ok", record["error"]
    assert record["pde"] == "poisson_peak"
    assert record["dim"] == 2 and record["n_points"] == 200
    assert len(record["l2_rel_error_per_round"]) == 2
    assert math.isfinite(record["l2_rel_error"])
    assert "final relative L2 error" in proc.stdout
