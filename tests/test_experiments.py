"""Paper experiment files, the smoke sweep, and Hydra's launcher plugins."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pandas as pd
import pytest
from support import ROOT, patient


def _run(*args: str, cwd, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=patient(timeout),
    )


def test_experiment_cfg_job_shows_the_config_without_running(tmp_path):
    proc = _run("+experiment=lambda_ablation", "--cfg", "job", "--resolve", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "_target_: pinn_exp.pdes.AllenCahn" in proc.stdout
    assert "adam_steps: 1000" in proc.stdout and "lbfgs_steps: 1000" in proc.stdout
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_smoke_runs_every_pde_with_every_sampler(tmp_path):
    sweep = tmp_path / "smoke"
    proc = _run("+experiment=smoke", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 10 * 7
    assert set(summary["pde"]) == {
        "burgers",
        "allen_cahn",
        "laplace",
        "elliptic",
        "reaction_diffusion",
        "convection",
        "helmholtz",
        "poisson_lshape",
        "heat",
        "wave",
    }
    assert set(summary["sampler"]) == {
        "uniform",
        "random_r",
        "rad",
        "rar_d",
        "rar_g",
        "r3",
        "rsmote",
    }
    failed = summary[summary["status"] != "ok"]
    assert failed.empty, failed[["run_dir", "status", "error"]].to_string()
    assert summary["l2_rel_error"].notna().all()
    assert (sweep / "summary.md").is_file() and (sweep / "points_by_sampler.png").is_file()


@pytest.mark.parametrize(
    "launcher",
    [pytest.param(name, marks=pytest.mark.slow) for name in ("joblib", "submitit_local")],
)
def test_launcher_plugins_run_a_two_job_sweep(tmp_path, launcher, tiny):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    extra = (
        ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.timeout_min=10"]
    )
    proc = _run(
        "-m",
        f"hydra/launcher={launcher}",
        *extra,
        *tiny,
        "sampler=uniform,rsmote",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = pd.read_csv(sweep / "summary.csv")
    assert sorted(summary["sampler"]) == ["rsmote", "uniform"]
    assert (summary["status"] == "ok").all()


@pytest.mark.parametrize(
    "budget, rounds, steps, dtype",
    [
        ("reference", 100, (15000, 1000, 1000), "float64"),
        ("paper", 10, (15000, 1000, 1000), "float32"),
        ("short", 3, (2000, 200, 200), "float32"),
    ],
)
def test_a_budget_is_one_switch_over_an_experiment(budget, rounds, steps, dtype, compose):
    cfg = compose(["+experiment=burgers_table", f"budget={budget}"])
    opt = cfg.optimizer
    assert cfg.rounds == rounds and cfg.device.dtype == dtype
    assert (opt.pretrain_steps, opt.adam_steps, opt.lbfgs_steps) == steps
    assert cfg.pde._target_.endswith("Burgers")  # the experiment's own choices stay


def test_experiment_default_budget_and_key_overrides_win(compose):
    assert compose(["+experiment=allen_cahn_table"]).rounds == 10  # paper
    cfg = compose(["+experiment=burgers_table", "budget=reference", "rounds=2"])
    assert cfg.rounds == 2 and cfg.device.dtype == "float64"
    default = compose([])
    assert default.rounds == 6 and default.optimizer.pretrain_steps == 2000  # no budget


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_a_killed_joblib_worker_leaves_a_summary_and_the_command_that_finishes(
    tmp_path, root, tiny
):
    """A worker killed as the OOM killer would: the sweep ends, but its summary lists the jobs
    without a final record and the printed command (resume=true) finishes every one."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": str(root / "tests"), "HYDRA_FULL_ERROR": "0"}
    args = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *tiny,
        "rounds=1",
        "pde._target_=faults.KilledBurgers,pinn_exp.pdes.Burgers",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
    ]
    cut = subprocess.run(
        [sys.executable, str(root / "run.py"), *args],
        cwd=tmp_path,
        env={**env, "PINN_EXP_KILL": "5"},
        capture_output=True,
        text=True,
        timeout=patient(600),
    )
    assert cut.returncode != 0
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 4 and (summary["status"] == "incomplete").sum() >= 2
    finish = shlex.split(cut.stderr.strip().splitlines()[-1])
    assert finish[:3] == ["python", "run.py", "-m"] and "resume=true" in finish
    done = subprocess.run(
        [sys.executable, str(root / "run.py"), *finish[2:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=patient(600),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "set hydra.run.dir" not in done.stdout + done.stderr  # jobs that never started: start
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 4 and (summary["status"] == "ok").all()
