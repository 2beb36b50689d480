"""Sweeps on SLURM: the tests marked ``slurm`` run against a running cluster (``.ci/run``
starts a single-node one with ``ci/slurm.sh``) and skip where ``sinfo`` does not answer; the
others check, without a cluster, the threads a job uses, the sbatch script submitit writes for
GPU settings and the refusal where SLURM keeps no job accounting."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from support import patient

from pinn_exp.device import DeviceSpec

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

#: one test process runs them all, one after the other (pytest-xdist's --dist loadgroup): the
#: cluster's jobs and their timing checks were built for that
pytestmark = pytest.mark.xdist_group("slurm")

#: a budget of seconds per job, one L-BFGS implementation, the CPU
BUDGET = [
    "optimizer.pretrain_steps=50",
    "optimizer.lbfgs_steps=20",
    "optimizer.adam_steps=0",
    "rounds=2",
    "n_points=200",
    "progress=false",
    "device=cpu",
]
#: every job's CPUs: two jobs share this machine's cores, on SLURM and under joblib alike
SHARE = max(len(os.sched_getaffinity(0)) // 2, 1)
SLURM = ["hydra.launcher.timeout_min=10", f"hydra.launcher.cpus_per_task={SHARE}"]
#: a time limit that the held job reaches: SLURM sends USR2 60 s before it, or up to 60 s
#: earlier still (sbatch --signal), so 60-120 s after the start, well after the first
#: checkpoint; submitit checkpoints the call and requeues the job once
TIMEOUT = [
    "hydra.launcher.timeout_min=3",
    "hydra.launcher.signal_delay_s=60",
    "hydra.launcher.max_num_timeout=1",
    f"hydra.launcher.cpus_per_task={SHARE}",
]
RUN_FILES = (
    "metrics.json",
    "history.csv",
    "collocation.npz",
    "checkpoint.pt",
    "loss.png",
    "error.png",
    "config_resolved.yaml",
    "run.log",
)


# ------------------------------------------------------------------------------ helpers
def _sinfo_answers() -> bool:
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    up = ("idle", "mixed", "allocated", "completing")
    return proc.returncode == 0 and any(s.rstrip("*~#") in up for s in proc.stdout.split())


@pytest.fixture(scope="session")
def cluster() -> None:
    """Skips unless a SLURM cluster with a node that takes jobs answers."""
    if not _sinfo_answers():
        pytest.skip("no SLURM cluster answers (sinfo); ci/slurm.sh start runs one")


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(root / "tests"), "HYDRA_FULL_ERROR": "0"}
    env.pop("SLURM_CPUS_PER_TASK", None)  # the sweep's own, where pytest runs in a SLURM job
    return {**env, **extra}


def _start(root: Path, cwd: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(root / "run.py"), "-m", *args],
        cwd=cwd,
        env=_env(root, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _end(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    timeout = patient(timeout)  # a loaded machine makes the jobs slow, not wrong
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        pytest.fail(f"the sweep did not end within {timeout} s:\n{stderr[-3000:]}")
    return proc.returncode, stderr


def _records(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))}


def _wait_for(path: Path, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.5)
    return path.read_text()


def _slurm_state(job: str) -> str:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "State", "-j", job], capture_output=True, text=True
    ).stdout
    return out.strip().splitlines()[-1] if out.strip() else "?"


# ------------------------------------------------------------------------ on a cluster
JOBS = [*BUDGET, "sampler=uniform,rsmote"]
NAMES = ["0_burgers_uniform", "1_burgers_rsmote"]


@pytest.fixture(scope="module")
def sweeps(cluster, root, tmp_path_factory) -> dict[str, tuple[subprocess.Popen, Path]]:
    """The module's sweeps of the same jobs, started at once (SLURM's scheduling and
    submitit's polling leave the CPUs idle most of the time): under joblib, each job with
    its share of the cores (``joblib``); on SLURM by hydra/launcher=submitit_slurm
    (``plain``); on SLURM by hydra/launcher=slurm with jobs that hold still once their first
    checkpoint is on disk (``cut``, see :func:`cut_sweep`)."""
    where = tmp_path_factory.mktemp("sweeps")
    (where / "hold").mkdir()
    env = _env(root)
    env.pop("OMP_NUM_THREADS", None)  # joblib sets each worker's share
    started = {
        "joblib": (
            subprocess.Popen(
                [
                    sys.executable,
                    str(root / "run.py"),
                    "-m",
                    "hydra/launcher=joblib",
                    "hydra.launcher.n_jobs=2",
                    *JOBS,
                    f"hydra.sweep.dir={where / 'joblib'}",
                ],
                cwd=where,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
            where / "joblib",
        )
    }
    started["plain"] = (
        _start(
            root,
            where,
            "hydra/launcher=submitit_slurm",
            *SLURM,
            *JOBS,
            f"hydra.sweep.dir={where / 'plain'}",
        ),
        where / "plain",
    )
    started["cut"] = (
        _start(
            root,
            where,
            "hydra/launcher=slurm",
            *SLURM,
            *JOBS,
            "pde._target_=slurm_faults.HeldBurgers",
            f"hydra.sweep.dir={where / 'cut'}",
            PINN_EXP_HOLD=str(where / "hold"),
        ),
        where / "cut",
    )
    # the cut sweep's jobs are requeued and ended as soon as they hold: held, they keep the
    # node's CPUs from the other sweep's jobs
    cutter = threading.Thread(target=_cut, args=(where / "hold", CUT), daemon=True)
    cutter.start()
    yield started
    cutter.join(timeout=1)
    for proc, sweep in started.values():
        if proc.poll() is None:  # a test failed half-way: its jobs must not hold the node
            proc.kill()
            proc.communicate()
            jobs = [p.name for p in (sweep / ".submitit").glob("*_*") if p.is_dir()]
            if jobs:
                subprocess.run(["scancel", *jobs], timeout=60)


@pytest.fixture(scope="module")
def uninterrupted(sweeps) -> dict[str, dict]:
    """The joblib sweep's records: what every SLURM sweep of these jobs is compared with."""
    proc, sweep = sweeps["joblib"]
    code, stderr = _end(proc)
    assert code == 0, stderr[-3000:]
    records = _records(sweep)
    assert sorted(records) == NAMES
    assert all(r["status"] == "ok" and r["threads"] == SHARE for r in records.values())
    return records


@pytest.mark.slurm
def test_a_two_job_sweep_on_slurm_equals_the_joblib_sweep(sweeps, uninterrupted):
    """hydra/launcher=submitit_slurm: every job's files, the summary, and per-round errors
    bit-identical to the same jobs under joblib (same threads: SLURM_CPUS_PER_TASK there,
    joblib's share of the cores here)."""
    proc, sweep = sweeps["plain"]
    code, stderr = _end(proc)
    assert code == 0, stderr[-3000:]
    records = _records(sweep)
    assert sorted(records) == NAMES
    for name, record in records.items():
        assert record["status"] == "ok" and record["threads"] == SHARE, record
        assert len(record["l2_rel_error_per_round"]) == 3
        expected = uninterrupted[name]
        assert record["l2_rel_error_per_round"] == expected["l2_rel_error_per_round"]
        assert record["l2_rel_error"] == expected["l2_rel_error"]
        for file in RUN_FILES:
            assert (sweep / name / file).is_file(), (name, file)
    summary = pd.read_csv(sweep / "summary.csv").set_index("sampler")
    assert sorted(summary.index) == ["rsmote", "uniform"] and (summary["status"] == "ok").all()
    for record in uninterrupted.values():
        assert summary.loc[record["sampler"], "l2_rel_error"] == pytest.approx(
            record["l2_rel_error"], rel=1e-12
        )
    assert (sweep / "summary.md").is_file()
    assert len(list((sweep / ".submitit").glob("*/*_log.out"))) == 2


#: what _cut did: the job ids it requeued and ended, or its error
CUT: dict[str, str] = {}


def _cut(hold: Path, done: dict[str, str]) -> None:
    """Waits for both jobs of the cut sweep to hold, then requeues the first and ends the
    second with SIGTERM."""
    try:
        deadline = time.monotonic() + 400
        while not all((hold / name).exists() for name in NAMES):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the jobs did not hold within 400 s ({hold})")
            time.sleep(0.5)
        done["requeued"], done["ended"] = ((hold / name).read_text() for name in NAMES)
        subprocess.run(["scontrol", "requeue", done["requeued"]], check=True, timeout=60)
        subprocess.run(["scancel", "--signal=TERM", done["ended"]], check=True, timeout=60)
    except Exception as exc:  # noqa: BLE001 - the test reports it
        done["error"] = f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="module")
def cut_sweep(sweeps) -> dict:
    """The ``cut`` sweep once its two jobs hold: the first requeued from outside (``scontrol
    requeue``: SIGTERM, then SLURM starts it again), the second ended by ``scancel
    --signal=TERM``."""
    proc, sweep = sweeps["cut"]
    code, stderr = _end(proc, timeout=400)
    assert CUT.get("error") is None, CUT["error"]
    requeued = CUT["requeued"]
    restarts = subprocess.run(
        ["scontrol", "show", "job", requeued], capture_output=True, text=True
    ).stdout
    return {
        "code": code,
        "stderr": stderr,
        "sweep": sweep,
        "records": _records(sweep),
        "restarts": restarts,
        "requeued": requeued,
    }


@pytest.mark.slurm
def test_scontrol_requeue_resumes_from_the_checkpoint(cut_sweep, uninterrupted):
    """The requeued job resumes after its last completed round and ends with the per-round
    errors of the uninterrupted run."""
    name = NAMES[0]
    resumed = cut_sweep["records"][name]
    assert resumed["status"] == "ok", (resumed, cut_sweep["stderr"][-3000:])
    assert "resuming after round 0" in (cut_sweep["sweep"] / name / "run.log").read_text()
    assert resumed["threads"] == SHARE and len(resumed["l2_rel_error_per_round"]) == 3
    assert resumed["l2_rel_error_per_round"] == uninterrupted[name]["l2_rel_error_per_round"]
    assert "Restarts=1" in cut_sweep["restarts"] or _slurm_state(cut_sweep["requeued"]) in (
        "COMPLETED",
        "?",
    )


@pytest.mark.slurm
def test_a_job_ended_by_scancel_term_is_recorded_and_the_sweep_goes_on(cut_sweep):
    """``scancel --signal=TERM`` of one job: its record says terminated, the other job ends
    ok, the summary holds both, and the sweep ends (status 1) saying which job SLURM ended,
    how many did not finish, and the command that finishes them."""
    stderr, sweep = cut_sweep["stderr"], cut_sweep["sweep"]
    assert cut_sweep["code"] == 1, stderr[-3000:]
    ended = cut_sweep["records"][NAMES[1]]
    assert ended["status"] == "failed" and ended["error"] == "terminated (SIGTERM)"
    assert ended["phase"] == "train" and ended["round"] == 1 and ended["last_completed_round"] == 0
    assert len(ended["l2_rel_error_per_round"]) == 1
    summary = pd.read_csv(sweep / "summary.csv").set_index("sampler")
    assert summary.loc["uniform", "status"] == "ok" and summary.loc["rsmote", "status"] == "failed"
    assert "Traceback" not in stderr
    assert "sweep: 1 of 2 jobs did not end normally on SLURM" in stderr
    assert "sampler=rsmote" in stderr and "SLURM state FAILED" in stderr
    assert "1 of 2 jobs did not finish (1 failed" in stderr
    finish = shlex.split(stderr.strip().splitlines()[-1])
    assert finish[:3] == ["python", "run.py", "-m"] and "resume=true" in finish
    assert "hydra/launcher=slurm" in finish and f"hydra.sweep.dir={sweep}" in finish
    assert not any(word.startswith("hydra.mode=") for word in finish)


@pytest.fixture(scope="module")
def timeout_sweep(cut_sweep, root, tmp_path_factory):
    """The first job alone, held until its time limit comes; started once the cut sweep has
    ended (and, in the file's order, the plain one), so that it does not hold one of the
    node's CPUs while the cut sweep's jobs wait for them."""
    where = tmp_path_factory.mktemp("timeout")
    (where / "hold").mkdir()
    proc = _start(
        root,
        where,
        "hydra/launcher=slurm",
        *TIMEOUT,
        *BUDGET,
        "sampler=uniform",
        "pde._target_=slurm_faults.HeldBurgers",
        f"hydra.sweep.dir={where / 'sweep'}",
        PINN_EXP_HOLD=str(where / "hold"),
    )
    yield proc, where / "sweep"
    if proc.poll() is None:  # the test failed half-way: its job must not hold the node
        proc.kill()
        proc.communicate()
        jobs = [p.name for p in (where / "sweep" / ".submitit").glob("*_*") if p.is_dir()]
        if jobs:
            subprocess.run(["scancel", *jobs], timeout=60)


@pytest.mark.slurm
def test_a_submitit_timeout_requeues_the_job_which_resumes(timeout_sweep, uninterrupted):
    """A job held past its first checkpoint until SLURM's time-limit warning (USR2,
    ``signal_delay_s`` before ``timeout_min``): submitit checkpoints the
    call and requeues the job (``max_num_timeout=1``), and the job, started again by SLURM,
    resumes after its last completed round and ends with the uninterrupted run's per-round
    errors; the sweep ends normally."""
    proc, sweep = timeout_sweep
    code, stderr = _end(proc, timeout=420)
    assert code == 0, stderr[-3000:]
    name = NAMES[0]
    (record,) = _records(sweep).values()
    assert record["status"] == "ok", record
    log = (sweep / name / "run.log").read_text()
    # submitit's account in the job's log: the warning, its checkpoint and requeue, then the
    # job started again by SLURM resumed from the project's checkpoint
    said = [line.split("] ", 1)[-1] for line in log.splitlines()]
    assert any(line.startswith("Caught signal SIGUSR2") and "timed-out" in line for line in said)
    assert "Requeued job" in log and "(0 remaining timeouts)" in log, log[-3000:]
    assert log.index("Requeued job") < log.index("resuming after round 0")
    assert record["threads"] == SHARE and len(record["l2_rel_error_per_round"]) == 3
    assert record["l2_rel_error_per_round"] == uninterrupted[name]["l2_rel_error_per_round"]
    assert record["l2_rel_error"] == uninterrupted[name]["l2_rel_error"]
    summary = pd.read_csv(sweep / "summary.csv")
    assert list(summary["status"]) == ["ok"]


# --------------------------------------------------------------------- without a cluster
def test_threads_follow_slurm_cpus_per_task_then_torch(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert DeviceSpec("cpu").threads == 3
    assert "3 threads" in DeviceSpec("cpu").description
    assert DeviceSpec("cpu", threads=2).threads == 2  # an explicit value wins
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert DeviceSpec("cpu").threads == torch.get_num_threads()
    with pytest.raises(ValueError, match=r"device.threads=0 is not allowed"):
        DeviceSpec("cpu", threads=0)


def test_apply_sets_the_threads_and_release_restores_them():
    before = torch.get_num_threads()
    spec = DeviceSpec("cpu", threads=before + 1, retain_cpu_memory=False)
    spec.apply()
    try:
        assert torch.get_num_threads() == before + 1
    finally:
        spec.release()
    assert torch.get_num_threads() == before


def _sbatch(conf_dir: Path, *launcher: str) -> str:
    """The sbatch script submitit writes for ``hydra/launcher=slurm`` with ``launcher`` keys."""
    from hydra import compose, initialize_config_dir

    from hydra_plugins.pinn_exp_launcher.slurm_launcher import SlurmLauncher

    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir)):
        cfg = compose(
            "config",
            ["hydra/launcher=slurm", *(f"hydra.launcher.{k}" for k in launcher)],
            return_hydra_config=True,
        )
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    params.pop("_target_")
    params["submitit_folder"], params["name"] = "/sweep/.submitit/%j", "run"
    executor = SlurmLauncher(**params).executor()
    return executor._executor._make_submission_file_text("python -m submitit.core._submit", "x")


@pytest.mark.parametrize(
    "keys, lines",
    [
        # one job per GPU
        (
            ["gpus_per_node=1", "cpus_per_task=8", "mem_gb=32", "partition=gpu"],
            ["--gpus-per-node=1", "--cpus-per-task=8", "--mem=32GB", "--partition=gpu"],
        ),
        (["gres=gpu:a100:1", "cpus_per_task=4"], ["--gres=gpu:a100:1", "--cpus-per-task=4"]),
        # several jobs per GPU: SLURM's GPU sharding or MPS, where the cluster offers them
        (["gres=shard:1", "cpus_per_task=2"], ["--gres=shard:1", "--cpus-per-task=2"]),
        (["gres=mps:25"], ["--gres=mps:25"]),
        # a time limit with submitit's requeue: USR2 90 s before it
        (
            ["timeout_min=240", "signal_delay_s=90", "max_num_timeout=3"],
            ["--time=240", "--signal=USR2@90"],
        ),
    ],
)
@pytest.mark.skipif(
    shutil.which("srun") is None, reason="submitit writes an sbatch script only where srun exists"
)
def test_the_sbatch_script_for_gpu_settings(conf_dir, keys, lines):
    script = _sbatch(conf_dir, *keys)
    sbatch = {
        line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH ")
    }
    for line in lines:
        assert line in sbatch, (line, script)
    assert "srun --unbuffered" in script


def test_no_job_accounting_is_refused_before_anything_is_submitted(tmp_path, root):
    """Where sacct does not answer, submitit could wait forever for a job killed before it
    wrote its result: hydra/launcher=slurm refuses in one paragraph, submitting nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (
        ("sacct", "echo 'Slurm accounting storage is disabled' >&2; exit 1"),
        ("sbatch", f"touch {tmp_path / 'submitted'}; exit 1"),
    ):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    sweep = tmp_path / "sweep"
    env = _env(root, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "run.py"),
            "-m",
            "hydra/launcher=slurm",
            *BUDGET,
            "seed=0,1",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: hydra/launcher=slurm needs SLURM's job accounting" in proc.stderr
    assert "Slurm accounting storage is disabled" in proc.stderr
    assert "hydra.launcher.require_accounting=false" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "submitted").exists()
    assert not sweep.exists() or not [p for p in sweep.iterdir() if p.is_dir()]


@pytest.mark.parametrize(
    ("timeout_min", "delay", "refused"),
    [(1, 120, True), (1, 60, True), (2, 120, True), (2, 119, False), (60, 120, False)],
)
def test_a_warning_signal_at_or_before_the_start_is_refused(timeout_min, delay, refused):
    from hydra_plugins.pinn_exp_launcher.slurm_launcher import time_limit_problem

    said = time_limit_problem({"timeout_min": timeout_min, "signal_delay_s": delay})
    assert (said is not None) == refused
    if refused:
        assert "\n" not in said
        assert f"hydra.launcher.signal_delay_s={delay}" in said
        assert f"hydra.launcher.timeout_min={timeout_min}" in said
        assert f"60 * timeout_min = {60 * timeout_min}" in said


def test_a_time_limit_shorter_than_the_signal_delay_is_refused_before_submitting(tmp_path, root):
    """``timeout_min=1`` with the default ``signal_delay_s=120``: SLURM would send USR2 before
    the job's handlers exist; nothing is submitted, one line names both keys, exit 2."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sacct", "exit 0"), ("sbatch", f"touch {tmp_path / 'submitted'}; exit 1")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "run.py"),
            "-m",
            "hydra/launcher=slurm",
            "hydra.launcher.timeout_min=1",
            *BUDGET,
            "seed=0,1",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        env=_env(root, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"),
        capture_output=True,
        text=True,
        timeout=patient(120),
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    said = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(said) == 1, proc.stderr[-2000:]
    assert "signal_delay_s=120" in said[0] and "timeout_min=1" in said[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "submitted").exists()
    assert not sweep.exists() or not [p for p in sweep.iterdir() if p.is_dir()]


def test_usr1_is_recorded_like_term_and_the_threads_follow_slurm(tmp_path, root):
    """SLURM's pre-emption warning (sbatch --signal=USR1): the record says so, never
    ``running``; the process ends as the signal would (128 + 10). The job's threads are
    SLURM_CPUS_PER_TASK's, in the record and the log's header."""
    hold = tmp_path / "hold"
    hold.mkdir()
    out = tmp_path / "sweep"
    proc = _start(
        root,
        tmp_path,
        *BUDGET,
        "pde._target_=slurm_faults.HeldBurgers",
        "seed=0",
        f"hydra.sweep.dir={out}",
        PINN_EXP_HOLD=str(hold),
        OMP_NUM_THREADS="2",
        SLURM_CPUS_PER_TASK="1",
    )
    _wait_for(hold / "0_burgers_rsmote", timeout=120)
    proc.send_signal(signal.SIGUSR1)
    code, stderr = _end(proc, timeout=120)
    assert code == 128 + signal.SIGUSR1, stderr[-2000:]
    (record,) = _records(out).values()
    assert record["status"] == "failed" and record["error"] == "terminated (SIGUSR1)"
    assert record["last_completed_round"] == 0 and record["phase"] == "train"
    assert record["threads"] == 1 and record["device"].endswith("1 thread)")
    assert ", 1 thread) float32" in (out / "0_burgers_rsmote" / "run.log").read_text()


def test_usr2_runs_the_handler_that_was_there_once_the_record_is_written(tmp_path, compose):
    """submitit's USR2 handler (time limit: checkpoint, requeue, exit) runs after the run has
    written its record; here a stand-in that reads the record, then exits as submitit's does."""
    from pinn_exp import runner
    from pinn_exp.factory import build

    seen = []

    def submitit_like(signum, frame):
        seen.append(json.loads((tmp_path / "metrics.json").read_text()))
        raise SystemExit(-1)

    def hook(round_index, step, phase):
        if round_index == 1 and not seen and not signalled:  # round 1's first L-BFGS step
            signalled.append(phase)
            os.kill(os.getpid(), signal.SIGUSR2)

    signalled: list[str] = []

    built = build(compose([*BUDGET, "rounds=2"]))
    previous = signal.signal(signal.SIGUSR2, submitit_like)
    try:
        with pytest.raises(SystemExit) as ended:
            runner.run(built, tmp_path, progress=False, step_hook=hook)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert ended.value.code == -1 and len(seen) == 1
    assert seen[0]["status"] == "failed" and seen[0]["error"] == "terminated (SIGUSR2)"
    assert seen[0]["last_completed_round"] == 0 and seen[0]["round"] == 1
    assert (tmp_path / "history.csv").is_file() and (tmp_path / "checkpoint.pt").is_file()
