"""End to end: the output contract, sweeps, failures, resume and determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from support import ROOT, TINY, compose_config, files_of, patient

from pinn_exp import runner
from pinn_exp.factory import build

METRIC_KEYS = {
    "status",
    "error",
    "pde",
    "sampler",
    "dim",
    "n_points",
    "ratio",
    "seed",
    "device",
    "dtype",
    "l2_rel_error",
    "l2_rel_error_per_round",
    "peak_gpu_mem_mb",
    "peak_gpu_mem_mb_train",
    "peak_gpu_mem_mb_sampling",
    "peak_cpu_rss_mb",
    "wall_time_s",
    "time_train_s",
    "time_sampling_s",
    "n_residual_evals",
    "versions",
}
FILES = [
    "metrics.json",
    "history.csv",
    "collocation.npz",
    "loss.png",
    "error.png",
    "points.png",
    "config_resolved.yaml",
]


def _run_cli(*args: str, tmp_path: Path, check: bool = False, env: dict | None = None):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(ROOT / "tests"), **(env or {})}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=patient(600),
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _in_process(tmp_path: Path, overrides: list[str], **kwargs) -> dict:
    cfg = compose_config(TINY + overrides)
    return runner.run(build(cfg), tmp_path, progress=False, **kwargs)


def test_single_run_writes_the_output_contract(tmp_path, tiny):
    proc = _run_cli(*tiny, f"hydra.run.dir={tmp_path / 'run'}", tmp_path=tmp_path, check=True)
    out = tmp_path / "run"
    assert "final relative L2 error" in proc.stdout and str(out) in proc.stdout
    for name in FILES:
        assert (out / name).is_file(), name
    record = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= set(record)
    assert record["status"] == "ok" and record["error"] is None
    assert (record["pde"], record["sampler"], record["dim"]) == ("burgers", "rsmote", 2)
    assert record["ratio"] == 0.1 and record["n_points"] == 200 and record["seed"] == 0
    assert record["peak_gpu_mem_mb"] is None and record["peak_cpu_rss_mb"] > 0
    assert len(record["l2_rel_error_per_round"]) == 3  # after initial training + 2 rounds
    assert record["l2_rel_error"] == record["l2_rel_error_per_round"][-1]
    assert 0 < record["l2_rel_error"] < 2
    # every round RSmote scores the N current points
    assert record["n_residual_evals"] == 2 * 200
    # one process: the run's wall time is its session's, the setup included in both
    assert record["wall_time_s"] == pytest.approx(record["wall_time_session_s"], rel=1e-9)
    assert record["wall_time_s"] >= record["time_train_s"] + record["time_sampling_s"]
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns[:4]) == ["round", "step", "phase", "loss"]
    assert set(history["phase"]) == {"adam", "lbfgs"}
    assert (history[history["phase"] == "adam"].groupby("round").size() == [30, 10, 10]).all()
    points = np.load(out / "collocation.npz")
    assert sorted(points.files) == ["round_0", "round_1", "round_2"]
    assert all(points[k].shape == (200, 2) for k in points.files)


def test_multirun_writes_summary_and_goes_on_past_a_failure(tmp_path, tiny):
    sweep = tmp_path / "sweep"
    # half of the jobs diverge (a NaN is injected): the sweep must finish all of them
    proc = _run_cli(
        "-m",
        *tiny,
        "sampler=uniform,random_r",
        "seed=0,1",
        "pde._target_=faults.NanBurgers,pinn_exp.pdes.Burgers",
        f"hydra.sweep.dir={sweep}",
        tmp_path=tmp_path,
        check=True,
    )
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 8
    assert set(summary["status"]) == {"ok", "diverged"}
    assert (summary["status"] == "diverged").sum() == 4
    md = (sweep / "summary.md").read_text()
    assert "diverged" in md and "×/÷" in md  # errors, memory, times: on the log scale
    # each finished job says how far the sweep is
    output = proc.stdout + proc.stderr
    assert "sweep: 1 of 8 jobs done" in output and "sweep: 8 of 8 jobs done" in output


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_report_rebuilds_summary_from_disk(tmp_path, tiny):
    sweep = tmp_path / "sweep"
    _run_cli(
        "-m",
        *tiny,
        "sampler=rsmote",
        "sampler.ratio=0.2,0.3",
        f"hydra.sweep.dir={sweep}",
        tmp_path=tmp_path,
        check=True,
    )
    # the swept ratio is a row of the table: lambda is not averaged away
    assert "| rsmote | 0.2 |" in (sweep / "summary.md").read_text()
    (sweep / "summary.csv").unlink()
    out = subprocess.run(
        [sys.executable, "-m", "pinn_exp.report", str(sweep)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert len(pd.read_csv(sweep / "summary.csv")) == 2


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["sampler.ratio=0.5"], "sampler.ratio"),
        (["sampler.ratio=abc"], "ratio"),
        (["n_points=3"], "n_points"),
        (["n_points=-10"], "n_points"),
        (["device=cuda"], "device"),
        (["pde=elliptic", "pde.dim=0"], "pde.dim"),
        (["seed=abc"], "seed"),
    ],
)
def test_bad_input_exits_non_zero_and_names_the_key(tmp_path, args, key):
    if "device=cuda" in args and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    proc = _run_cli(*args, f"hydra.run.dir={tmp_path / 'run'}", tmp_path=tmp_path)
    assert proc.returncode != 0
    assert key in proc.stderr
    assert "Traceback" not in proc.stderr
    record_file = tmp_path / "run" / "metrics.json"
    if record_file.exists():  # errors found after composition also leave a failed record
        record = json.loads(record_file.read_text())
        assert record["status"] == "failed" and key in record["error"]
        assert not (tmp_path / "run" / "history.csv").exists()  # no training happened


def test_diverged_run_keeps_a_record_and_exits_non_zero(tmp_path, tiny):
    proc = _run_cli(
        *tiny,
        "pde._target_=faults.NanBurgers",
        f"hydra.run.dir={tmp_path / 'r'}",
        tmp_path=tmp_path,
    )
    assert proc.returncode != 0
    record = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert record["status"] == "diverged"
    assert record["round"] == 0 and record["phase"] == "adam"
    assert record["step"] == 25 - 1  # the 25th residual evaluation is Adam step 24
    assert "not finite" in record["error"]
    assert (tmp_path / "r" / "history.csv").is_file()


def test_oom_during_sampling_is_recorded_with_its_phase(tmp_path):
    record = _in_process(
        tmp_path, ["pde._target_=faults.OomBurgers", "sampler=rad", "sampler.n_dense=30000"]
    )
    assert record["status"] == "oom" and record["phase"] == "sampling"
    assert "out of memory" in record["error"]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["status"] == "oom"
    assert saved["l2_rel_error_per_round"]  # the initial training finished before the OOM


def test_a_run_that_fails_before_its_first_round_has_its_sessions_time(tmp_path, monkeypatch):
    """A failure between the trainer's construction and its start (here: start raises) is
    recorded with the process's whole time as the run's, the construction included."""
    from pinn_exp.training.trainer import Trainer

    def refuse(self, *args, **kwargs):
        time.sleep(0.2)
        raise RuntimeError("no start")

    monkeypatch.setattr(Trainer, "start", refuse)
    record = _in_process(tmp_path, [])
    assert record["status"] == "failed" and "no start" in record["error"]
    assert record["wall_time_s"] == pytest.approx(record["wall_time_session_s"], rel=1e-9)
    assert record["wall_time_s"] >= 0.2


def test_same_seed_gives_identical_metrics_on_cpu(tmp_path):
    a = _in_process(tmp_path / "a", ["seed=3"])
    b = _in_process(tmp_path / "b", ["seed=3"])
    c = _in_process(tmp_path / "c", ["seed=4"])
    assert a["l2_rel_error_per_round"] == b["l2_rel_error_per_round"]
    assert a["l2_rel_error_per_round"] != c["l2_rel_error_per_round"]
    pa, pb = (
        np.load(tmp_path / "a" / "collocation.npz"),
        np.load(tmp_path / "b" / "collocation.npz"),
    )
    assert all(np.array_equal(pa[k], pb[k]) for k in pa.files)


@pytest.mark.parametrize("lbfgs", ["torch", pytest.param("device", marks=pytest.mark.slow)])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, lbfgs, tiny):
    args = [*tiny, "rounds=3", f"optimizer.lbfgs_impl={lbfgs}", "pde._target_=faults.KilledBurgers"]
    full = tmp_path / "full"
    _run_cli(*args, f"hydra.run.dir={full}", tmp_path=tmp_path, check=True)
    part = tmp_path / "part"
    # with PINN_EXP_KILL=70, KilledBurgers is SIGKILLed at its 70th residual evaluation:
    # inside round 2's training; without it, it is Burgers (the config stays the same)
    killed = _run_cli(
        *args, f"hydra.run.dir={part}", tmp_path=tmp_path, env={"PINN_EXP_KILL": "70"}
    )
    assert killed.returncode != 0
    assert json.loads((part / "metrics.json").read_text())["status"] == "running"
    from pinn_exp.report.runs import collect_runs

    assert collect_runs([part])["status"].tolist() == ["incomplete"]  # killed: listed, not ok
    snapshot = torch.load(part / "checkpoint.pt", weights_only=False)
    assert 0 <= snapshot["state"]["round_index"] < 3
    _run_cli(*args, "resume=true", f"hydra.run.dir={part}", tmp_path=tmp_path, check=True)
    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((part / "metrics.json").read_text())
    assert b["status"] == "ok"
    # the wall time covers both sessions, so it is at least the phases' time
    assert b["wall_time_s"] >= b["time_train_s"] + b["time_sampling_s"]
    # and the resuming process's own time, the remainder alone, is said apart
    assert 0 < b["wall_time_session_s"] < b["wall_time_s"]
    assert a["wall_time_session_s"] > 0
    assert b["l2_rel_error"] == pytest.approx(a["l2_rel_error"], rel=1e-6)
    assert b["l2_rel_error_per_round"] == pytest.approx(a["l2_rel_error_per_round"], rel=1e-6)
    assert len(pd.read_csv(part / "history.csv")) == len(pd.read_csv(full / "history.csv"))


_files = files_of


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny) -> Path:
    tmp = tmp_path_factory.mktemp("finished")
    _run_cli(*tiny, "rounds=1", f"hydra.run.dir={tmp / 'run'}", tmp_path=tmp, check=True)
    return tmp / "run"


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["resume=true", "pde=allen_cahn"], 2, "pde._target_"),
        (["resume=true", "sampler.ratio=0.6"], 2, "sampler.ratio (0.1 -> 0.6)"),
        (["resume=true", "n_points=300"], 2, "n_points"),
        (["resume=true", "seed=1"], 2, "seed"),
        (["resume=true", "rounds=0"], 2, "rounds=0 is below"),
        (["resume=true"], 0, "finished already"),
        # a finished run builds nothing on resume: a misspelt key is still refused
        (["resume=true", "+sampler.ratoi=0.2"], 2, "did you mean sampler.ratio?"),
        (["resume=true", "+n_point=3"], 2, "did you mean n_points?"),
        ([], 2, "holds another run's record"),
    ],
)
def test_a_command_that_cannot_start_leaves_the_run_as_it_was(
    finished_run, tmp_path, args, code, said, tiny
):
    before = _files(finished_run)
    proc = _run_cli(*tiny, "rounds=1", *args, f"hydra.run.dir={finished_run}", tmp_path=tmp_path)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert said in proc.stderr and "Traceback" not in proc.stderr
    assert _files(finished_run) == before


def test_an_unreadable_checkpoint_is_refused_on_resume(finished_run, tmp_path, tiny):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    checkpoint = run / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # truncated
    before = _files(run)
    proc = _run_cli(*tiny, "rounds=2", "resume=true", f"hydra.run.dir={run}", tmp_path=tmp_path)
    assert proc.returncode == 2 and "checkpoint.pt cannot be read" in proc.stderr
    assert _files(run) == before


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_a_second_sweep_into_a_sweep_directory_is_refused(tmp_path, tiny):
    sweep = tmp_path / "sweep"
    _run_cli(
        "-m",
        *tiny,
        "rounds=1",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
        tmp_path=tmp_path,
        check=True,
    )
    before = _files(sweep)
    proc = _run_cli(
        "-m", *tiny, "rounds=1", "seed=5,6", f"hydra.sweep.dir={sweep}", tmp_path=tmp_path
    )
    assert proc.returncode == 2 and "holds another sweep" in proc.stderr
    assert _files(sweep) == before
    # a sweep folder from before claims existed (no .sweep file) is protected by its records
    (sweep / ".sweep").unlink()
    before = _files(sweep)
    proc = _run_cli(
        "-m", *tiny, "rounds=1", "seed=5,6", f"hydra.sweep.dir={sweep}", tmp_path=tmp_path
    )
    assert proc.returncode == 2 and "holds another sweep" in proc.stderr
    assert _files(sweep) == before


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_a_sweep_that_does_not_compose_leaves_its_folder_free(tmp_path, tiny):
    sweep = tmp_path / "sweep"
    typo = _run_cli(
        "-m",
        *tiny,
        "rounds=1",
        "sampler=uniform,nope",
        f"hydra.sweep.dir={sweep}",
        tmp_path=tmp_path,
    )
    assert typo.returncode != 0 and not (sweep / ".sweep").exists()
    _run_cli(
        "-m",
        *tiny,
        "rounds=1",
        "sampler=uniform,rad",
        f"hydra.sweep.dir={sweep}",
        tmp_path=tmp_path,
        check=True,
    )


def test_sigterm_records_what_was_done_and_exits_143(tmp_path, root, tiny):
    import signal
    import time

    out, ready = tmp_path / "run", tmp_path / "ready"
    env = {
        **os.environ,
        "HYDRA_FULL_ERROR": "0",
        "PYTHONPATH": str(root / "tests"),
        "PINN_EXP_READY": str(ready),
    }
    args = [
        *tiny,
        "optimizer.pretrain_steps=1000000",
        "optimizer.compile=false",
        "pde._target_=faults.ReadyBurgers",
        f"hydra.run.dir={out}",
    ]
    proc = subprocess.Popen(
        [sys.executable, str(root / "run.py"), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not ready.exists() and time.monotonic() < deadline:  # Adam's 120th step is done
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=patient(120))
    assert proc.returncode == 143, stderr[-2000:]
    record = json.loads((out / "metrics.json").read_text())
    assert record["status"] == "failed" and record["error"] == "terminated (SIGTERM)"
    assert record["phase"] == "train" and record["round"] == 0
    history = pd.read_csv(out / "history.csv")
    assert len(history) >= 100 and set(history["phase"]) == {"adam"}


def test_results_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        _in_process(tmp_path, ["rounds=1"])
    finally:
        os.umask(old)
    for name in ("metrics.json", "history.csv", "collocation.npz", "loss.png", "solution.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_a_sweep_resumes_into_its_own_directory(tmp_path, tiny):
    sweep = tmp_path / "sweep"
    tiny = [o for o in tiny if not o.startswith("rounds=")]
    args = ["-m", *tiny, "seed=0,1", f"hydra.sweep.dir={sweep}"]
    _run_cli(*args, "rounds=1", tmp_path=tmp_path, check=True)
    records = {p: p.read_bytes() for p in sweep.glob("*/metrics.json")}
    again = _run_cli(*args, "rounds=1", "resume=true", tmp_path=tmp_path, check=True)
    assert again.stderr.count("finished already") == 2
    assert {p: p.read_bytes() for p in sweep.glob("*/metrics.json")} == records
    _run_cli(*args, "rounds=2", "resume=true", tmp_path=tmp_path, check=True)
    for path in records:
        record = json.loads(path.read_text())
        assert record["status"] == "ok" and len(record["l2_rel_error_per_round"]) == 3


def test_a_host_memory_error_is_recorded_as_oom_with_its_phase(tmp_path):
    record = _in_process(tmp_path, ["pde._target_=faults.MemoryBurgers"])
    assert record["status"] == "oom" and record["phase"] == "train"
    assert record["error"].startswith("MemoryError: Unable to allocate")


@pytest.mark.parametrize("sweep", [False, True])
def test_an_unwritable_output_directory_is_said_in_one_line(tmp_path, sweep, tiny):
    if not Path("/sys").is_dir():
        pytest.skip("needs /sys (Linux) as a place no process may create a folder in")
    where = (
        ["-m", "seed=0,1", "hydra.sweep.dir=/sys/pinn_exp_sweep"]
        if sweep
        else ["hydra.run.dir=/sys/pinn_exp_run"]
    )
    proc = _run_cli(*where[:1], *tiny, *where[1:], tmp_path=tmp_path)
    key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
    assert proc.returncode == 2
    assert f"error: {key}=/sys/pinn_exp_" in proc.stderr and "cannot be written" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_a_requeued_sweep_job_resumes_from_its_checkpoint(tmp_path, tiny):
    """SLURM requeues a job (submitit's max_num_timeout) with SLURM_RESTART_COUNT > 0: the job
    continues from its checkpoint and ends where an uninterrupted one ends."""
    args = ["-m", *tiny, "rounds=3", "seed=0", "pde._target_=faults.KilledBurgers"]
    _run_cli(*args, f"hydra.sweep.dir={tmp_path / 'full'}", tmp_path=tmp_path, check=True)
    part = tmp_path / "part"
    killed = _run_cli(
        *args, f"hydra.sweep.dir={part}", tmp_path=tmp_path, env={"PINN_EXP_KILL": "70"}
    )
    assert killed.returncode != 0
    (part / ".sweep").unlink()  # a requeued job is launched alone, not as a new sweep
    _run_cli(
        *args,
        f"hydra.sweep.dir={part}",
        tmp_path=tmp_path,
        check=True,
        env={"SLURM_RESTART_COUNT": "1"},
    )
    (a,) = (tmp_path / "full").glob("0_*/metrics.json")
    (b,) = part.glob("0_*/metrics.json")
    assert "resuming after round" in (b.parent / "run.log").read_text()  # not a fresh start
    a, b = json.loads(a.read_text()), json.loads(b.read_text())
    assert b["status"] == "ok"
    assert b["l2_rel_error_per_round"] == pytest.approx(a["l2_rel_error_per_round"], rel=1e-6)


def test_an_allocation_that_fails_while_building_is_oom_in_phase_build(tmp_path, tiny):
    # a 10^6 x 10^6 hidden layer: torch refuses the 4 TB at once
    proc = _run_cli(
        *tiny, "model.width=1000000", f"hydra.run.dir={tmp_path / 'run'}", tmp_path=tmp_path
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "oom" and record["phase"] == "build"
    assert "can't allocate memory" in record["error"]
