"""GPU checks (marker ``gpu``): skipped without CUDA; run with ``pytest -m gpu``."""

from __future__ import annotations

import pytest
import torch
from support import patient

from pinn_exp import runner
from pinn_exp.factory import build

pytestmark = pytest.mark.gpu


def test_run_on_cuda_records_gpu_memory_per_phase(tmp_path, tiny, compose):
    overrides = [o for o in tiny if not o.startswith("device")] + ["device=cuda"]
    record = runner.run(build(compose(overrides)), tmp_path, progress=False)
    assert record["status"] == "ok"
    assert record["device"] == torch.cuda.get_device_name()
    assert record["peak_gpu_mem_mb_train"] > 0 and record["peak_gpu_mem_mb_sampling"] > 0
    assert record["peak_gpu_mem_mb"] == max(
        record["peak_gpu_mem_mb_train"], record["peak_gpu_mem_mb_sampling"]
    )


def test_forward_laplacian_matches_autograd_on_cuda():
    from pinn_exp.model import MLP, Solution
    from pinn_exp.ops import Laplacian, laplacian_autograd
    from pinn_exp.pdes import Elliptic

    pde = Elliptic(dim=20, n_test=10)
    model = Solution(MLP(20, 32, 3), pde.constraint).to("cuda", torch.float64)
    x = pde.domain.sample(64, torch.Generator().manual_seed(0), "cuda", torch.float64)
    x.requires_grad_(True)
    _, fwd = Laplacian("forward").value_and_laplacian(model, x)
    _, ref = laplacian_autograd(model, x)
    assert torch.allclose(fwd, ref, rtol=1e-10, atol=1e-10)


def test_memory_limit_turns_an_overflow_into_an_oom_record(tmp_path, tiny, compose):
    # Training (N = 200) fits in 1 GiB; scoring RAD's 400k dense points at d = 200 in one pass
    # with the autograd Laplacian needs tens of GiB (H100: 77 GiB already at d = 100, 100k).
    overrides = [o for o in tiny if not o.startswith("device")] + [
        "device=cuda",
        "device.memory_limit_gb=1",
        "pde=elliptic",
        "pde.dim=200",
        "sampler=rad",
        "sampler.n_dense=400000",
        "laplacian=autograd",
    ]
    torch.cuda.empty_cache()  # the cap counts memory cached by earlier tests
    record = runner.run(build(compose(overrides)), tmp_path, progress=False)
    assert record["status"] == "oom", record["error"]
    assert record["phase"] == "sampling", record["error"]
    assert 0 < record["peak_gpu_mem_mb_train"] <= 1024


@pytest.mark.parametrize("pde", ["burgers", "elliptic"])
def test_cuda_graphs_replay_the_same_steps_as_eager(tmp_path, pde, tiny, compose):
    """Captured Adam steps and device L-BFGS iterations follow the eager ones (float64,
    so that the kernels' different orders of summation stay far below the tolerance)."""
    overrides = [o for o in tiny if not o.startswith("device")] + [
        "device=cuda",
        "device.dtype=float64",
        f"pde={pde}",
        "optimizer.lbfgs_impl=device",
        "optimizer.lbfgs_steps=20",
        "rounds=1",
    ]
    eager = runner.run(build(compose(overrides)), tmp_path / "eager", progress=False)
    graphs = runner.run(
        build(compose([*overrides, "optimizer.cuda_graphs=true"])),
        tmp_path / "graphs",
        progress=False,
    )
    assert eager["status"] == graphs["status"] == "ok"
    assert graphs["l2_rel_error_per_round"] == pytest.approx(
        eager["l2_rel_error_per_round"], rel=1e-6
    )


def test_captured_step_replays_a_graph_on_cuda():
    from pinn_exp.training.cuda_graphs import CapturedStep

    counter = torch.zeros((), device="cuda")

    def step():
        counter.add_(1)
        return counter * 2

    captured = CapturedStep(step, torch.device("cuda"), warmup=2)
    outs = [captured().item() for _ in range(5)]
    assert captured.captured and outs == [2.0, 4.0, 6.0, 8.0, 10.0]


def test_resume_with_cuda_graphs_reaches_the_uninterrupted_result(tmp_path, root, tiny):
    """A run on the captured path killed inside round 2 and resumed ends where the
    uninterrupted run ends (float64; GPU reductions may differ in the last bits). Captured
    steps call the residual only while warming up and capturing (4 calls per stage, plus
    L-BFGS's start; scoring is not counted), so the 22nd call is in round 2's Adam stage."""
    import json
    import os
    import subprocess
    import sys

    overrides = [o for o in tiny if not o.startswith("device")] + [
        "device=cuda",
        "device.dtype=float64",
        "rounds=3",
        "optimizer.lbfgs_impl=device",
        "optimizer.cuda_graphs=true",
        "pde._target_=faults.KilledBurgers",
    ]
    env = {**os.environ, "PYTHONPATH": str(root / "tests"), "HYDRA_FULL_ERROR": "0"}

    def run(out, *extra, kill=False):
        return subprocess.run(
            [sys.executable, str(root / "run.py"), *overrides, *extra, f"hydra.run.dir={out}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=patient(600),
            env={**env, **({"PINN_EXP_KILL": "22"} if kill else {})},
        )

    assert run(tmp_path / "full").returncode == 0
    assert run(tmp_path / "part", kill=True).returncode != 0
    resumed = run(tmp_path / "part", "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((tmp_path / "full" / "metrics.json").read_text())
    b = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert b["l2_rel_error_per_round"] == pytest.approx(a["l2_rel_error_per_round"], rel=1e-5)
