"""Batched ensembles (hydra/launcher=batched): member k is the single run with seed k."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from support import ROOT, TINY, compose_config, files_of, patient, run_cli

from pinn_exp import runner
from pinn_exp.factory import build
from pinn_exp.training.ensemble import EnsembleTrainer, Unbatchable, unbatchable_reason
from pinn_exp.training.trainer import Trainer

#: float64 and the ensemble's L-BFGS: the single runs members are compared with
EXACT = [
    *TINY,
    "device.dtype=float64",
    "optimizer.lbfgs_impl=device",
    "rounds=2",
    "optimizer.lbfgs_steps=15",
    "n_points=150",
]


def _parts(overrides: list[str], seeds: list[int]):
    return [build(compose_config([*EXACT, *overrides, f"seed={s}"])) for s in seeds]


def _same_rounds(single: Trainer, member: Trainer) -> None:
    """The member's error after every round equals its single run's to 1e-6, and its points
    after every round are the same."""
    errors = single.state.metrics["l2_rel_error"]
    errors_m = member.state.metrics["l2_rel_error"]
    assert len(errors) == 3 and np.allclose(errors_m, errors, rtol=1e-6, atol=0)
    assert single.state.collocation.keys() == member.state.collocation.keys()
    for key, points in single.state.collocation.items():
        np.testing.assert_array_equal(member.state.collocation[key], points)


def _losses(trainer: Trainer, phase: str) -> np.ndarray:
    return np.array([r["loss"] for r in trainer.state.history if r["phase"] == phase])


@functools.cache
def _single_runs(overrides: tuple[str, ...], seeds: tuple[int, ...]) -> tuple[Trainer, ...]:
    """The single runs (read only), shared by the tests that compare members with them."""
    singles = tuple(Trainer(b, progress=False) for b in _parts(list(overrides), list(seeds)))
    for single in singles:
        single.run()
    return singles


@pytest.mark.parametrize(
    "sampler",
    ["rsmote", *(pytest.param(s, marks=pytest.mark.slow) for s in ("uniform", "rad", "rar_d"))],
)
def test_each_member_equals_its_single_run(sampler):
    overrides = [f"sampler={sampler}"]
    if sampler in ("rad", "rar_d"):
        overrides.append("sampler.n_dense=2000")
    seeds = [0, 1]
    singles = _single_runs(tuple(overrides), tuple(seeds))
    members = [Trainer(b, progress=False) for b in _parts(overrides, seeds)]
    EnsembleTrainer(members, progress=False).run()
    for single, member in zip(singles, members):
        adam, adam_m = _losses(single, "adam"), _losses(member, "adam")
        assert len(adam) == len(adam_m) and np.allclose(adam_m, adam, rtol=1e-10, atol=0)
        lbfgs, lbfgs_m = _losses(single, "lbfgs"), _losses(member, "lbfgs")
        assert len(lbfgs) == len(lbfgs_m) and np.allclose(lbfgs_m, lbfgs, rtol=1e-10, atol=0)
        _same_rounds(single, member)
        assert single.scorer.n_evals == member.scorer.n_evals


@pytest.mark.parametrize("vectorize", [False, True], ids=["loop", "vmap"])
def test_a_member_whose_loss_turns_nan_diverges_alone(tmp_path, vectorize):
    """The diverged member leaves the ensemble (its L-BFGS frozen in the stage where it
    diverged); the others end as their single runs."""
    seeds = [0, 1, 2]
    singles = _single_runs(("sampler=uniform",), (0, 2))
    holder: dict = {}

    def poison(round_index: int, step: int, phase: str) -> None:
        if (round_index, step, phase) == (1, 3, "adam"):
            with torch.no_grad():
                holder["ensemble"]._params[0][1].fill_(float("nan"))  # member 1 (seed 1)

    builts = _parts(["sampler=uniform"], seeds)
    dirs = [tmp_path / f"m{s}" for s in seeds]
    for d in dirs:
        d.mkdir()
    original = EnsembleTrainer.__init__

    def keep(self, *args, **kwargs):
        original(self, *args, **kwargs)
        holder["ensemble"] = self

    EnsembleTrainer.__init__ = keep
    try:
        records = runner.run_ensemble(
            builts, dirs, progress=False, step_hook=poison, vectorize=vectorize
        )
    finally:
        EnsembleTrainer.__init__ = original
    assert [r["status"] for r in records] == ["ok", "diverged", "ok"]
    bad = records[1]
    assert (bad["round"], bad["step"], bad["phase"]) == (1, 3, "adam")
    assert len(bad["l2_rel_error_per_round"]) == 1  # round 0 finished, round 1 did not
    for record, single in zip([records[0], records[2]], singles):
        assert np.isclose(
            record["l2_rel_error"], single.state.metrics["l2_rel_error"][-1], rtol=1e-6, atol=0
        )
    for d in dirs:
        assert json.loads((d / "metrics.json").read_text())["status"] in ("ok", "diverged")
        assert (d / "history.csv").is_file()


def test_what_cannot_be_batched_says_why():
    def reason(*overrides):
        return unbatchable_reason(_parts(list(overrides), [0]))

    assert reason() is None
    assert "lbfgs_impl=device" in reason("optimizer.lbfgs_impl=torch")
    assert "sampler.period" in reason("sampler=r3")
    assert "hutchinson" in reason("laplacian.method=hutchinson")
    assert "more than their seed" in unbatchable_reason(
        _parts([], [0]) + _parts(["n_points=160"], [1])
    )
    with pytest.raises(Unbatchable, match="sampler.period"):
        EnsembleTrainer([Trainer(b, progress=False) for b in _parts(["sampler=r3"], [0, 1])])


@pytest.mark.parametrize("sampler", ["rsmote", pytest.param("rad", marks=pytest.mark.slow)])
def test_vectorized_members_agree_with_their_single_runs_to_round_off(sampler):
    """``vectorize=True``: one vmap for the losses (the members' L-BFGS is one DeviceLBFGS in
    either mode). A member follows its single run to round-off: the first Adam stage to
    1e-10, the L-BFGS stages (the same accepted iterations, numbered alike) and the errors of
    every round to 1e-6; every round's points are the same."""
    overrides = [f"sampler={sampler}"] + (["sampler.n_dense=2000"] if sampler == "rad" else [])
    seeds = [0, 1]
    singles = _single_runs(tuple(overrides), tuple(seeds))
    members = [Trainer(b, progress=False) for b in _parts(overrides, seeds)]
    EnsembleTrainer(members, progress=False, vectorize=True).run()
    for single, member in zip(singles, members):
        first = [
            [r["loss"] for r in t.state.history if r["round"] == 0 and r["phase"] == "adam"]
            for t in (single, member)
        ]
        assert len(first[0]) == 30 and np.allclose(first[1], first[0], rtol=1e-10, atol=0)
        steps = [
            [(r["round"], r["phase"], r["step"]) for r in t.state.history] for t in (single, member)
        ]
        assert steps[0] == steps[1] and any(phase == "lbfgs" for _, phase, _ in steps[0])
        assert np.allclose(_losses(member, "lbfgs"), _losses(single, "lbfgs"), rtol=1e-6, atol=0)
        _same_rounds(single, member)


@pytest.mark.parametrize(
    "vectorize", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["loop", "vmap"]
)
def test_compiled_members_follow_their_compiled_single_runs(vectorize):
    """``optimizer.compile=true``: the ensemble compiles its batched loss once (and, with
    ``vmap``, the batched L-BFGS update); a member follows the compiled single run with its
    seed to round-off: the same steps, losses and errors after every round to 1e-6 (float64),
    the same points."""
    overrides = ["sampler=rsmote", "rounds=1", "optimizer.compile=true"]
    seeds = [0, 1]
    singles = _single_runs(tuple(overrides), tuple(seeds))
    members = [Trainer(b, progress=False) for b in _parts(overrides, seeds)]
    EnsembleTrainer(members, progress=False, vectorize=vectorize).run()
    for single, member in zip(singles, members):
        steps = [
            [(r["round"], r["phase"], r["step"]) for r in t.state.history] for t in (single, member)
        ]
        assert steps[0] == steps[1] and any(phase == "lbfgs" for _, phase, _ in steps[0])
        losses = [[r["loss"] for r in t.state.history] for t in (single, member)]
        assert np.allclose(losses[1], losses[0], rtol=1e-6, atol=0)
        errors = [t.state.metrics["l2_rel_error"] for t in (single, member)]
        assert len(errors[0]) == 2 and np.allclose(errors[1], errors[0], rtol=1e-6, atol=0)
        for key, points in single.state.collocation.items():
            np.testing.assert_array_equal(member.state.collocation[key], points)


def _sweep(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    sweep = tmp_path / name
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(ROOT / "tests")}
    overrides = [a for a in EXACT if a != "rounds=2"] + ["rounds=1", "optimizer.lbfgs_steps=5"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-m", *overrides, *args, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=patient(600),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, sweep


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_the_batched_launcher_writes_what_the_basic_one_writes(tmp_path):
    args = ["sampler=uniform,r3", "seed=0,1"]
    proc, batched = _sweep(tmp_path, "batched", *args, "hydra/launcher=batched")
    out = proc.stdout + proc.stderr
    assert "batched: 2 jobs (seeds 0, 1) train as one ensemble" in out
    assert "not batched (sampler r3 updates within a stage (sampler.period))" in out
    _, basic = _sweep(tmp_path, "basic", *args)
    jobs = sorted(p.name for p in basic.iterdir() if p.is_dir())
    assert jobs == sorted(p.name for p in batched.iterdir() if p.is_dir()) and len(jobs) == 4
    for job in jobs:
        names = {p.relative_to(basic / job) for p in (basic / job).rglob("*")} - {Path("run.log")}
        assert names <= {p.relative_to(batched / job) for p in (batched / job).rglob("*")}
        one = json.loads((basic / job / "metrics.json").read_text())
        other = json.loads((batched / job / "metrics.json").read_text())
        assert other["status"] == one["status"] == "ok"
        assert np.allclose(
            other["l2_rel_error_per_round"], one["l2_rel_error_per_round"], rtol=1e-6, atol=0
        )
        pd.testing.assert_frame_equal(
            pd.read_csv(batched / job / "history.csv"), pd.read_csv(basic / job / "history.csv")
        )
    summary, summary_b = (pd.read_csv(d / "summary.csv") for d in (basic, batched))
    assert list(summary.columns) == list(summary_b.columns) and len(summary_b) == 4
    assert not list(batched.rglob(".run.lock"))  # every member's claim released at its end
    # the same tables, in the same order; the members' shared time and memory count once per
    # ensemble, and the batched summary says so
    texts = [(d / "summary.md").read_text() for d in (basic, batched)]
    tables = [[line for line in text.splitlines() if line.startswith("## `")] for text in texts]
    assert tables[0] == tables[1] and len(tables[0]) == 3
    assert "(1 ensemble)" in texts[1] and "(1 ensemble)" not in texts[0]


def test_sigterm_records_every_member(tmp_path):
    seeds = [0, 1]
    dirs = [tmp_path / f"m{s}" for s in seeds]
    for d in dirs:
        d.mkdir()

    def terminate(round_index: int, step: int, phase: str) -> None:
        if (round_index, step, phase) == (1, 2, "adam"):
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(runner.Interrupted):
        runner.run_ensemble(
            _parts(["sampler=uniform"], seeds), dirs, progress=False, step_hook=terminate
        )
    for d in dirs:
        record = json.loads((d / "metrics.json").read_text())
        assert (record["status"], record["error"]) == ("failed", "terminated (SIGTERM)")
        assert record["phase"] == "train" and record["last_completed_round"] == 0
        assert (d / "history.csv").is_file() and (d / "checkpoint.pt").is_file()


def test_ensemble_benchmark_writes_a_row_per_size_mode_and_phase(tmp_path):
    out = tmp_path / "ens.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "ensemble.py"),
            "--sizes",
            "1,2",
            "--adam",
            "2",
            "--lbfgs",
            "2",
            "--warmup",
            "0",
            "--json",
            str(out),
            "--",
            "n_points=100",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=patient(300),
    )
    rows = json.loads(out.read_text())["rows"]
    assert {(r["size"], r["mode"], r["phase"]) for r in rows} == {
        (s, m, p)
        for s, m in [(1, "single"), (1, "loop"), (1, "vmap"), (2, "loop"), (2, "vmap")]
        for p in ("adam", "lbfgs")
    }
    assert all(r["ms_per_step_per_member"] > 0 for r in rows)


def test_a_vectorised_l_bfgs_update_costs_the_same_operations_for_any_ensemble_size(tmp_path):
    """benchmarks/ensemble.py --count-ops: an L-BFGS update (one DeviceLBFGS for all the
    members, in either mode) dispatches as many operations for 4 members as for 1, and as
    many as a single run's; evaluating the loss in the loop mode costs one member's worth
    per member."""
    out = tmp_path / "ops.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "ensemble.py"),
            "--count-ops",
            "--sizes",
            "1,4",
            "--lbfgs",
            "2",
            "--warmup",
            "1",
            "--json",
            str(out),
            "--",
            "n_points=100",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=patient(300),
    )
    ops = {(r["size"], r["mode"]): r for r in json.loads(out.read_text())["rows"]}
    assert set(ops) == {(1, "single"), (1, "loop"), (1, "vmap"), (4, "loop"), (4, "vmap")}
    update = {key: row["ops_update"] for key, row in ops.items()}
    assert update[(1, "single")] > 100
    assert update[(4, "vmap")] == update[(1, "vmap")] == update[(4, "loop")] == update[(1, "loop")]
    evaluation = {key: row["ops_evaluation"] for key, row in ops.items()}
    assert evaluation[(4, "loop")] > 3.5 * evaluation[(1, "loop")]


def test_a_failure_in_one_members_sampling_leaves_the_others_records_right(tmp_path, monkeypatch):
    """Members end their rounds one after the other: when member 0's next sampling fails, the
    others (round 0 evaluated and checkpointed) record that round as their last completed
    one, the one their checkpoint holds."""
    original = Trainer.begin_round

    def failing(self, round_index):
        if round_index == 1 and self.out_dir.name == "m0":
            self.phase = "sampling"
            raise MemoryError("sampling of member 0")
        return original(self, round_index)

    monkeypatch.setattr(Trainer, "begin_round", failing)
    seeds = [0, 1, 2]
    dirs = [tmp_path / f"m{s}" for s in seeds]
    for d in dirs:
        d.mkdir()
    records = runner.run_ensemble(
        _parts(["sampler=uniform", "rounds=1"], seeds), dirs, progress=False
    )
    for d, record in zip(dirs, records):
        held = torch.load(d / "checkpoint.pt", weights_only=False)["state"]["round_index"]
        assert record["status"] == "oom" and record["last_completed_round"] == held == 0
        assert record["round"] == 1 and record["phase"] != "checkpoint"
    assert records[0]["phase"] == "sampling"


# ------------------------------------------------------- the launcher's sweep flow and logs
#: one round of a few steps, one thread: the sweeps below run in seconds
#: the ensemble's L-BFGS (the device one) on the command line: a group of these batches
QUICK = [
    *(a for a in TINY if a != "rounds=2"),
    "rounds=1",
    "device.threads=1",
    "optimizer.lbfgs_impl=device",
]


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("-m", *args, cwd=cwd)


_files = files_of


@pytest.mark.parametrize("launcher", ["batched", "basic", "joblib"])
def test_a_job_folder_that_is_a_symbolic_link_is_refused_before_anything_is_written(
    tmp_path, launcher
):
    """Job 0's folder links to another run: the sweep is refused in one line before Hydra
    writes the job's .hydra/ and log through the link; the run is left byte for byte, and a
    linked folder's record is not counted as one of the sweep's jobs."""
    other = tmp_path / "other"
    (other / ".hydra").mkdir(parents=True)
    (other / ".hydra" / "config.yaml").write_text("seed: 7\n")
    (other / "run.log").write_text("the other run's log\n")
    (other / "metrics.json").write_text(json.dumps({"status": "ok"}))
    before = _files(other)
    sweep_dir = tmp_path / "s"
    sweep_dir.mkdir()
    (sweep_dir / "0_burgers_rsmote").symlink_to(other)
    proc = _run(
        tmp_path,
        *QUICK,
        "seed=0,1",
        f"hydra/launcher={launcher}",
        "resume=true",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is a symbolic link" in errors[0] and "Traceback" not in proc.stderr
    assert _files(other) == before
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["0_burgers_rsmote"]
    from pinn_exp.sweep import finished_jobs

    assert finished_jobs(sweep_dir) == {}


def test_a_batched_member_is_the_single_run_with_the_same_overrides(tmp_path):
    """The launcher changes nothing in a job's config: a member's overrides are the command
    line's, and its history and errors are those of the single run with the same overrides,
    bit for bit (eager, float32). A group with the default L-BFGS (torch's) runs one job after
    the other, saying how to batch it."""
    sweep, single = tmp_path / "s", tmp_path / "single"
    proc = _run(tmp_path, *QUICK, "seed=0,1", "hydra/launcher=batched", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train as one ensemble" in proc.stdout + proc.stderr
    member = next(d for d in sweep.iterdir() if d.name.startswith("1_"))
    overrides = OmegaConf.load(member / ".hydra" / "overrides.yaml")
    assert [o for o in overrides if str(o).startswith("optimizer.lbfgs_impl")] == [
        "optimizer.lbfgs_impl=device"
    ]
    alone = run_cli(*QUICK, "seed=1", f"hydra.run.dir={single}", cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr[-3000:]
    records = [json.loads((d / "metrics.json").read_text()) for d in (member, single)]
    assert [r["lbfgs_impl"] for r in records] == ["device", "device"]
    assert (records[0]["batched"], records[1]["batched"]) == ("loop", None)
    assert records[0]["l2_rel_error_per_round"] == records[1]["l2_rel_error_per_round"]
    history = [pd.read_csv(d / "history.csv") for d in (member, single)]
    assert (history[0]["phase"] == "lbfgs").any()
    pd.testing.assert_frame_equal(history[0], history[1])
    default = [a for a in QUICK if not a.startswith("optimizer.lbfgs_impl")]
    other = tmp_path / "t"
    proc = _run(
        tmp_path, *default, "seed=0,1", "hydra/launcher=batched", f"hydra.sweep.dir={other}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = proc.stdout + proc.stderr
    assert "train as one ensemble" not in said
    assert "add optimizer.lbfgs_impl=device to batch these jobs" in said
    records = [json.loads(p.read_text()) for p in sorted(other.glob("*/metrics.json"))]
    assert [(r["lbfgs_impl"], r["batched"]) for r in records] == [("torch", None)] * 2


def test_a_signal_while_the_members_files_are_written_and_the_members_logs(tmp_path):
    """SIGTERM arrives while the members' files are written (every member ok): each member's
    final line is printed and the sweep ends ok, saying so. Each member's round lines are in
    its own run.log and labelled with its seed on the console; the sweep's progress line is
    said once. A resumed job that started but has no checkpoint is said to have started."""
    sweep_dir = tmp_path / "s"
    args = [
        *QUICK,
        "seed=0,1",
        "pde._target_=faults.TermOnWriteBurgers",
        "hydra/launcher=batched",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    proc = _run(tmp_path, *args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "did not finish" not in out and "after all 2 jobs of the sweep had finished ok" in out
    assert out.count("final relative L2 error") == 2
    assert out.count("sweep: 2 of 2 jobs done") == 1
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    for seed, job in enumerate(jobs):
        assert json.loads((job / "metrics.json").read_text())["status"] == "ok"
        log = (job / "run.log").read_text()
        assert log.count("round 0/1") == 1 and log.count("round 1/1") == 1, log
        assert f"seed {seed}: round 1/1" in out
    # job 1 as one killed during its first round: a record, no checkpoint
    (jobs[1] / "checkpoint.pt").unlink()
    record = json.loads((jobs[1] / "metrics.json").read_text())
    (jobs[1] / "metrics.json").write_text(json.dumps({**record, "status": "running"}))
    proc = _run(tmp_path, *args, "resume=true")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "started but ended before its first checkpoint" in out
    assert "had not started" not in out
    assert json.loads((jobs[1] / "metrics.json").read_text())["status"] == "ok"


# ------------------------------------- every PDE and Laplacian: batched, or alone saying why
#: float64, one round of a few steps: a member is compared with its single run bit for bit
FEW = [
    "optimizer.pretrain_steps=10",
    "optimizer.adam_steps=3",
    "optimizer.lbfgs_steps=4",
    "rounds=1",
    "n_points=100",
    "progress=false",
    "device=cpu",
    "device.threads=1",
    "device.dtype=float64",
    "optimizer.lbfgs_impl=device",
    "sampler=uniform",
]


def _builts(overrides: list[str], seeds: list[int]):
    return [build(compose_config([*FEW, *overrides, f"seed={s}"])) for s in seeds]


def _dirs(tmp_path: Path, seeds: list[int]) -> list[Path]:
    dirs = [tmp_path / f"m{s}" for s in seeds]
    for d in dirs:
        d.mkdir()
    return dirs


@pytest.mark.parametrize(
    ("pde", "vectorize"),
    [("convection", False), ("heat", False), ("poisson_lshape", False), ("convection", True)],
    ids=["convection", "heat", "poisson_lshape", "convection-vmap"],
)
def test_members_whose_residual_takes_du_by_autograd_train_as_one(
    tmp_path, monkeypatch, caplog, pde, vectorize
):
    """Convection's and heat's residuals take du/dt with torch.autograd.grad: the ensemble's
    trial loss (before training) differentiates with respect to its points as training does,
    and each member ends ok, recorded as a loop member of 2, its errors after every round its
    single run's bit for bit. ``vmap`` cannot transform torch.autograd.grad: the ensemble
    says so and runs in the loop mode, and its records say loop."""
    monkeypatch.setattr(runner.files, "write_files", lambda *args: None)  # the plots: not tested
    seeds = [0, 1]
    with caplog.at_level("INFO", logger="pinn_exp.training.ensemble"):
        records = runner.run_ensemble(
            _builts([f"pde={pde}"], seeds),
            _dirs(tmp_path, seeds),
            progress=False,
            vectorize=vectorize,
        )
    assert ("not vectorized (the loss cannot be batched" in caplog.text) == vectorize
    for record, built in zip(records, _builts([f"pde={pde}"], seeds)):
        single = Trainer(built, progress=False)
        single.run()
        assert record["status"] == "ok", record["error"]
        assert record["l2_rel_error_per_round"] == single.state.metrics["l2_rel_error"]
        assert (record["batched"], record["ensemble_size"], record["time_shared"]) == (
            "loop",
            2,
            True,
        )


def test_a_members_times_are_a_fair_share_that_does_not_grow_with_its_position(
    tmp_path, monkeypatch
):
    """Writing a member's files takes time (here 0.3 s each, after training): no member's
    time holds the files of the members before it. Each gets the ensemble's time over S and
    each training stage's over its members, so the members' times add up to no more than
    the ensemble took; a single run's record keeps its own times (``time_shared`` false)."""
    monkeypatch.setattr(runner.files, "write_files", lambda *args: time.sleep(0.3))
    seeds = [0, 1, 2]
    began = time.perf_counter()
    records = runner.run_ensemble(
        _builts(["pde=burgers"], seeds), _dirs(tmp_path, seeds), progress=False
    )
    took = time.perf_counter() - began
    for field in ("wall_time_s", "wall_time_session_s"):
        shares = [r[field] for r in records]
        assert len(set(shares)) == 1 and sum(shares) <= took
    assert sum(r["time_train_s"] for r in records) <= took
    assert all(
        (r["status"], r["batched"], r["ensemble_size"], r["time_shared"]) == ("ok", "loop", 3, True)
        for r in records
    )
    single = runner.run(_builts(["pde=burgers"], [0])[0], tmp_path / "m0", progress=False)
    assert (single["batched"], single["ensemble_size"], single["time_shared"]) == (
        None,
        None,
        False,
    )


def test_members_that_cannot_be_batched_are_left_as_they_were_for_their_single_runs(
    tmp_path, monkeypatch
):
    """Where the ensemble's trial loss finds the members cannot be batched, run_ensemble
    raises Unbatchable before training and records nothing; each member's generator (from
    which its trainer drew convection's periodic-boundary points) is as it was, so its single
    run, run next from the same built objects, equals a fresh single run bit for bit."""
    monkeypatch.setattr(runner.files, "write_files", lambda *args: None)

    def refuse(self) -> None:
        raise Unbatchable("the batched loss differs from member 0's own")

    monkeypatch.setattr(EnsembleTrainer, "_check", refuse)
    seeds = [0, 1]
    builts, dirs = _builts(["pde=convection"], seeds), _dirs(tmp_path, seeds)
    with pytest.raises(Unbatchable, match="differs from member 0"):
        runner.run_ensemble(builts, dirs, progress=False)
    assert not [p for d in dirs for p in d.iterdir()]
    for built, d, fresh in zip(builts, dirs, _builts(["pde=convection"], seeds)):
        record = runner.run(built, d, progress=False)
        single = Trainer(fresh, progress=False)
        single.run()
        assert record["status"] == "ok" and record["batched"] is None
        assert record["l2_rel_error_per_round"] == single.state.metrics["l2_rel_error"]


def test_the_launcher_runs_a_group_it_cannot_batch_one_job_after_the_other(tmp_path):
    """A PDE whose residual draws noise from torch's generator cannot be batched: the
    launcher finds it before training, says why, and runs the jobs one after the other (their
    records: single runs). Jobs left failed with no checkpoint (as an ensemble that failed
    left them) run again with resume=true and end ok."""
    sweep_dir = tmp_path / "s"
    args = [
        *QUICK,
        "seed=0,1",
        "pde._target_=faults.NoisyBurgers",
        "hydra/launcher=batched",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    proc = _run(tmp_path, *args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "not batched (the batched " in out and "differs from member 0's own" in out
    assert "2 jobs run one after the other" in out and "Traceback" not in out
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    for job in jobs:
        record = json.loads((job / "metrics.json").read_text())
        assert record["status"] == "ok", record["error"]
        assert (record["batched"], record["ensemble_size"], record["time_shared"]) == (
            None,
            None,
            False,
        )
        (job / "checkpoint.pt").unlink()
        failed = "Unbatchable: the loss cannot be batched (RuntimeError: ...)"
        (job / "metrics.json").write_text(
            json.dumps({**record, "status": "failed", "error": failed, "phase": "setup"})
        )
    proc = _run(tmp_path, *args, "resume=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job in jobs:
        assert json.loads((job / "metrics.json").read_text())["status"] == "ok"


PDES = sorted(p.stem for p in (ROOT / "conf" / "pde").glob("*.yaml"))
LAPLACIANS = sorted(p.stem for p in (ROOT / "conf" / "laplacian").glob("*.yaml"))
#: the least that trains, samples once and evaluates twice
LEAST = [
    "optimizer.pretrain_steps=5",
    "optimizer.adam_steps=2",
    "optimizer.lbfgs_steps=3",
    "rounds=1",
    "n_points=64",
    "progress=false",
    "device=cpu",
    "device.threads=1",
    "optimizer.lbfgs_impl=device",
    "sampler=uniform",
]


def _single_status(overrides: list[str]) -> str:
    """How the single run with ``overrides`` ends (no files)."""
    from pinn_exp.training.trainer import Diverged

    try:
        Trainer(build(compose_config([*overrides, "progress=false"])), progress=False).run()
    except Diverged:
        return "diverged"
    except Exception:  # noqa: BLE001 - any other end is a failure
        return "failed"
    return "ok"


@pytest.mark.slow  # 80 jobs (loop) or 20 (vmap): minutes on a 2-core CPU
@pytest.mark.parametrize("vectorize", [False, True], ids=["loop", "vmap"])
def test_the_batched_launcher_runs_every_pde_with_every_laplacian(tmp_path, vectorize):
    """Every PDE of conf/pde with every option of conf/laplacian (vmap: with the default
    Laplacian; whatever vmap cannot transform runs in the loop mode), seeds 0 and 1: each job
    ends ok, batched (``hutchinson``: one job after the other, saying why), wherever its
    single run ends ok; a job that does not ends as its single run does."""
    laplacians = ["forward"] if vectorize else LAPLACIANS
    sweep_dir = tmp_path / "s"
    proc = _run(
        tmp_path,
        *LEAST,
        "seed=0,1",
        f"pde={','.join(PDES)}",
        f"laplacian={','.join(laplacians)}",
        "hydra/launcher=batched",
        f"hydra.launcher.vectorize={str(vectorize).lower()}",
        f"hydra.sweep.dir={sweep_dir}",
    )
    records = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/metrics.json"))]
    assert {(r["pde"], r["laplacian"], r["seed"]) for r in records} == {
        (pde, laplacian, seed) for pde in PDES for laplacian in laplacians for seed in (0, 1)
    }, proc.stderr[-3000:]
    assert len(records) == 2 * len(PDES) * len(laplacians)
    out = proc.stdout + proc.stderr
    assert out.count("not batched (laplacian.method=hutchinson") == len(PDES) * (not vectorize)
    for record in records:
        if record["status"] != "ok":
            assert record["status"] == _single_status(record["overrides"]), record["error"]
            continue
        if vectorize:  # vmap where it can transform the loss, else the loop mode
            expected = {"burgers": {"vmap"}, "convection": {"loop"}}  # convection: autograd.grad
            assert record["batched"] in expected.get(record["pde"], {"loop", "vmap"})
        else:
            assert record["batched"] == (None if record["laplacian"] == "hutchinson" else "loop")
    if all(r["status"] == "ok" for r in records):
        assert proc.returncode == 0, proc.stderr[-3000:]


def test_members_share_one_ensemble_id_and_one_memory_peak_taken_before_their_files(
    tmp_path, monkeypatch
):
    """Writing member 0's files grows the process's memory (here by 200 MB, kept): member 1's
    CPU peak must not hold it. Every member gets the ensemble's peak, taken before any
    member's files, and one ``ensemble_id``; a member not resumed has its wall time equal to
    its session's (both the ensemble's over S). A single run's ``ensemble_id`` is null."""
    kept = []
    monkeypatch.setattr(runner.files, "write_files", lambda *args: kept.append(b"x" * (200 << 20)))
    seeds = [0, 1]
    records = runner.run_ensemble(_builts([], seeds), _dirs(tmp_path, seeds), progress=False)
    assert len(kept) == 2
    for field in ("peak_cpu_rss_mb", "peak_cpu_rss_increase_mb", "ensemble_id"):
        assert len({r[field] for r in records}) == 1, field
    assert isinstance(records[0]["ensemble_id"], str) and records[0]["ensemble_id"]
    # the ensemble's peak is taken before the files: it is well below what they added
    assert records[0]["peak_cpu_rss_mb"] < _rss_now_mb() - 150
    for r in records:
        assert r["wall_time_s"] == r["wall_time_session_s"]
    single = runner.run(_builts([], [0])[0], tmp_path / "m0", progress=False)
    assert single["ensemble_id"] is None


def _rss_now_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_a_member_ended_in_setup_says_no_round_completed(tmp_path, monkeypatch):
    """SIGTERM while the members' trainers are built: the member without a trainer records
    ``last_completed_round`` -1 (none), as the docs say, not null."""
    built = []

    class Terminating(runner.driver.Trainer):
        def __init__(self, *args, **kwargs):
            if built:
                os.kill(os.getpid(), signal.SIGTERM)
            built.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(runner.driver, "Trainer", Terminating)
    seeds = [0, 1]
    dirs = _dirs(tmp_path, seeds)
    with pytest.raises(runner.Interrupted):
        runner.run_ensemble(_builts([], seeds), dirs, progress=False)
    for d in dirs:
        record = json.loads((d / "metrics.json").read_text())
        assert (record["status"], record["phase"]) == ("failed", "setup")
        assert record["last_completed_round"] == -1


def test_a_member_resumed_alone_keeps_its_batched_mode_and_shared_time(tmp_path):
    """A vmap ensemble terminated in round 1, then member 1 resumed as a single run (as
    resume=true does): its record keeps ``batched``, ``ensemble_size`` and ``ensemble_id``,
    and ``time_shared`` is true (its rounds 0 trained in the ensemble)."""
    seeds = [0, 1]
    dirs = _dirs(tmp_path, seeds)

    def terminate(round_index: int, step: int, phase: str) -> None:
        if (round_index, step, phase) == (1, 2, "adam"):
            os.kill(os.getpid(), signal.SIGTERM)

    overrides = ["sampler=uniform", "optimizer.lbfgs_impl=device"]
    with pytest.raises(runner.Interrupted):
        runner.run_ensemble(
            _builts(overrides, seeds), dirs, progress=False, step_hook=terminate, vectorize=True
        )
    before = json.loads((dirs[1] / "metrics.json").read_text())
    assert before["last_completed_round"] == 0 and before["batched"] == "vmap"
    resumed = runner.run(_builts(overrides, [1])[0], dirs[1], resume=True, progress=False)
    assert resumed["status"] == "ok"
    assert (resumed["batched"], resumed["ensemble_size"], resumed["time_shared"]) == (
        "vmap",
        2,
        True,
    )
    assert resumed["ensemble_id"] == before["ensemble_id"]
    # its wall time: the share of the ensemble's round 0 (up to its checkpoint), then its own
    assert 0 < resumed["wall_time_session_s"] < resumed["wall_time_s"]
    assert resumed["wall_time_s"] - resumed["wall_time_session_s"] < before["wall_time_s"]


def test_a_resumed_sweeps_earlier_records_that_did_not_end_ok_are_still_to_do(tmp_path):
    """The progress line counted job 1's failed record of the sweep before the resume as
    done while job 1 had not been resumed yet; a record older than the sweep's start (its
    multirun.yaml) that did not end ok is to do, an ok one is done."""
    from pinn_exp.sweep import finished_jobs

    for job, status in (("0", "ok"), ("1", "failed")):
        (tmp_path / job).mkdir()
        (tmp_path / job / "metrics.json").write_text(json.dumps({"status": status}))
        os.utime(tmp_path / job / "metrics.json", (time.time() - 60, time.time() - 60))
    (tmp_path / "multirun.yaml").write_text("{}\n")
    assert finished_jobs(tmp_path) == {"ok": 1, "running": 1}
    (tmp_path / "1" / "metrics.json").write_text(json.dumps({"status": "failed"}))  # again
    assert finished_jobs(tmp_path) == {"ok": 1, "failed": 1}


@pytest.mark.parametrize(
    ("sweeper", "whole"),
    [
        ({"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"}, True),
        (
            {
                "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                "max_batch_size": 2,
            },
            False,
        ),
        ({"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"}, False),
    ],
)
def test_a_signal_after_the_last_group_of_a_batch_is_not_taken_for_the_sweeps_end(sweeper, whole):
    """A signal that arrives once every member of the launch's last group has finished ok
    ends the sweep normally only where that launch holds every job of the sweep: a sweeper
    that launches in batches has jobs still to come, and the signal must stop it."""
    from hydra_plugins.pinn_exp_launcher.batched_launcher import BatchedLauncher

    launcher = BatchedLauncher()
    launcher.config = OmegaConf.create({"hydra": {"sweeper": sweeper}})
    assert launcher._whole_sweep() is whole
