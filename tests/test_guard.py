"""The guard: no command damages a run on disk; every refusal is one line, exit status 2."""

from __future__ import annotations

import errno
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from support import TINY, compose_config, files_of, patient, run_cli

from pinn_exp import guard, runner, sweep
from pinn_exp.factory import build
from pinn_exp.io import storage

TINY1 = [*TINY, "rounds=1"]


_cli, _files = run_cli, files_of


def _refused(proc, said: str, code: int = 2) -> None:
    assert proc.returncode == code, proc.stderr[-2000:]
    assert said in proc.stderr and "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error:")]) == 1


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished run (one round); tests copy it before they touch it."""
    tmp = tmp_path_factory.mktemp("finished")
    proc = _cli(*TINY1, f"hydra.run.dir={tmp / 'run'}", cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return tmp / "run"


def _copy(finished: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    return run


# ------------------------------------------------------------------- in process: the checks
def test_a_claim_is_exclusive_and_a_dead_process_claim_is_taken_over(tmp_path):
    claim = guard.claim_run_dir(tmp_path)
    with pytest.raises(guard.Refused, match="is in use by process"):
        guard.claim_run_dir(tmp_path)  # this process is alive
    claim.release()
    assert not (tmp_path / guard.RUN_CLAIM).exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / guard.RUN_CLAIM).write_text(f"pid {dead.pid} host {os.uname().nodename}\n")
    guard.claim_run_dir(tmp_path).release()  # a stale claim does not block forever


def test_a_requeued_slurm_job_takes_over_its_claim_from_another_node(tmp_path, monkeypatch):
    """A job killed on node A and requeued by SLURM on node B: its earlier start's claim (same
    SLURM job id, a process B cannot see) is taken over; another job's claim on A is not."""
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    claim = tmp_path / guard.RUN_CLAIM
    claim.write_text("pid 1 host node-a slurm 4242\n")
    taken = guard.claim_run_dir(tmp_path)
    assert "slurm 4242" in claim.read_text() and "node-a" not in claim.read_text()
    taken.release()
    claim.write_text("pid 1 host node-a slurm 4243\n")
    with pytest.raises(guard.Refused, match="in use by process 1 on node-a"):
        guard.claim_run_dir(tmp_path)


@pytest.mark.parametrize("target", ["dangling", "a claim elsewhere"])
def test_a_claim_that_is_a_symbolic_link_is_refused_not_waited_on(tmp_path, target):
    """A ``.run.lock`` that is a symbolic link (dangling: it never opens, nor can it be
    created) is refused at once in one line; the file it points to is left as it was."""
    run = tmp_path / "run"
    run.mkdir()
    elsewhere = tmp_path / "other.lock"
    if target != "dangling":
        elsewhere.write_text(f"pid 1 host {os.uname().nodename}\n")
    (run / guard.RUN_CLAIM).symlink_to(elsewhere)
    code = (
        "import sys; from pathlib import Path; from pinn_exp import guard\n"
        "try:\n    guard.claim_run_dir(Path(sys.argv[1]))\n"
        "except guard.Refused as exc:\n    print(exc); sys.exit(exc.code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(run)],
        capture_output=True,
        text=True,
        timeout=patient(60),  # the old claim spun here forever
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"its {guard.RUN_CLAIM} is a symbolic link to {elsewhere}" in proc.stdout
    assert (run / guard.RUN_CLAIM).is_symlink()
    if target != "dangling":
        assert elsewhere.read_text() == f"pid 1 host {os.uname().nodename}\n"


@pytest.mark.parametrize("kind", ["empty", "dangling", "loop"])
def test_unusable_directories_are_named(tmp_path, kind):
    if kind == "empty":
        value, said = "", "hydra.run.dir is empty"
    elif kind == "dangling":
        (tmp_path / "link").symlink_to(tmp_path / "missing")
        value, said = str(tmp_path / "link"), "does not exist"
    else:
        (tmp_path / "a").symlink_to(tmp_path / "b")
        (tmp_path / "b").symlink_to(tmp_path / "a")
        value, said = str(tmp_path / "a" / "run"), "loop of symbolic links"
    with pytest.raises(guard.Refused, match=said):
        guard.check_path(value, "hydra.run.dir")


def test_resume_checks_the_checkpoint_and_its_own_config(tmp_path):
    job = {"seed": 0, "rounds": 2, "resume": True}
    torch.save({"foo": 1}, tmp_path / "checkpoint.pt")
    with pytest.raises(guard.Refused, match="is not a checkpoint of a run"):
        guard.check_resume(tmp_path, job)
    # no metrics.json, no config_resolved.yaml: the checkpoint's config is compared
    snapshot = {key: {} for key in guard.CHECKPOINT_KEYS}
    snapshot.update(state={"round_index": 0}, config={"seed": 1, "rounds": 2})
    torch.save(snapshot, tmp_path / "checkpoint.pt")
    with pytest.raises(guard.Refused, match=r"seed \(1 -> 0\)"):
        guard.check_resume(tmp_path, job)
    guard.check_resume(tmp_path, {**job, "seed": 1})
    (tmp_path / "config_resolved.yaml").write_text("seed: [unclosed\n")
    with pytest.raises(guard.Refused, match="config_resolved.yaml is unreadable"):
        guard.check_resume(tmp_path, {**job, "seed": 1})


def test_resume_without_any_recorded_config_is_refused(tmp_path):
    snapshot = {key: {} for key in guard.CHECKPOINT_KEYS}
    snapshot["state"] = {"round_index": 1}  # an older checkpoint: no "config" in it
    torch.save(snapshot, tmp_path / "checkpoint.pt")
    with pytest.raises(guard.Refused, match="neither config_resolved.yaml nor checkpoint.pt"):
        guard.check_resume(tmp_path, {"seed": 5, "rounds": 3, "resume": True})


def test_a_run_that_failed_at_its_configuration_does_not_protect_its_directory(tmp_path):
    runner.write_failure(tmp_path, {}, "sampler.ratio=0.7 is outside (0, 0.5)")
    guard.check_run_dir(tmp_path, {"resume": False})  # nothing to lose
    storage.write_history(tmp_path / "history.csv", [])
    with pytest.raises(guard.Refused, match="holds another run's record"):
        guard.check_run_dir(tmp_path, {"resume": False})


def test_runs_and_sweeps_do_not_nest(tmp_path):
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / ".sweep").touch()
    for run_dir in (tmp_path / "sweep", tmp_path / "sweep" / "0_job"):
        with pytest.raises(guard.Refused, match="a sweep's directory"):
            guard.check_not_in_sweep(run_dir)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")
    for sweep_dir in (tmp_path / "run", tmp_path / "run" / "sub"):
        with pytest.raises(guard.Refused, match="a run's directory"):
            guard.check_not_in_run(sweep_dir)


def _sweep_dir(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / sweep.SWEEP_CLAIM).write_text("pid 1\n")
    return folder


def _run_dir(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text('{"status": "ok"}')
    return folder


def test_run_through_a_link_into_a_sweep_is_refused(tmp_path):
    sweep_dir = _sweep_dir(tmp_path / "sweep")
    (sweep_dir / "empty").mkdir()
    (tmp_path / "link").symlink_to(sweep_dir / "empty")
    with pytest.raises(guard.Refused, match="sweep's directory"):
        guard.check_not_in_sweep(tmp_path / "link")


def test_run_below_a_sweeps_job_is_refused(tmp_path):
    sweep_dir = _sweep_dir(tmp_path / "sweep")
    with pytest.raises(guard.Refused, match=f"inside a sweep's directory \\({sweep_dir}\\)"):
        guard.check_not_in_sweep(sweep_dir / "0_burgers_rsmote" / "sub")


def test_sweep_deep_inside_a_run_is_refused(tmp_path):
    run = _run_dir(tmp_path / "run")
    with pytest.raises(guard.Refused, match="inside a run's directory"):
        guard.check_not_in_run(run / "x" / "y")


def test_sweep_inside_another_sweep_is_refused_but_resuming_itself_is_not(tmp_path):
    sweep_dir = _sweep_dir(tmp_path / "sweep")
    with pytest.raises(guard.Refused, match="inside another sweep's directory"):
        guard.check_sweep_not_in_sweep(sweep_dir / "inner")
    guard.check_sweep_not_in_sweep(sweep_dir)  # a resumed sweep is its own sweep directory


@pytest.mark.parametrize("name", ["/tmp/elsewhere", "0/..", "..", "../other", "."])
def test_job_folder_outside_the_sweep_is_refused(tmp_path, name):
    with pytest.raises(guard.Refused, match="not a folder inside hydra.sweep.dir"):
        guard.check_subdir(name, name, tmp_path)
    guard.check_subdir("0_burgers_rad", "x", tmp_path)  # the usual folder passes


def test_job_dir_check_resolves_the_path(tmp_path):
    guard.check_job_dir(tmp_path / "sweep" / "0_a", tmp_path / "sweep")
    for job in (tmp_path / "sweep", tmp_path / "run", tmp_path / "sweep" / ".." / "run"):
        with pytest.raises(guard.Refused, match="not a folder inside"):
            guard.check_job_dir(job, tmp_path / "sweep")


@pytest.mark.parametrize("where", ["/tmp/my runs/é ü", "/tmp/a:b=c,d(e)'f"])
def test_the_finish_command_survives_the_shell_and_hydra(where):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    config = OmegaConf.create(
        {
            "hydra": {
                "overrides": {
                    "hydra": [f"hydra.sweep.dir={where}", "hydra.sweep.subdir=${hydra.job.num}"],
                    "task": ["seed=0,1", "resume=true"],
                }
            }
        }
    )
    words = shlex.split(sweep.finish_command(config, Path(where)))
    assert words[:3] == ["python", "run.py", "-m"] and words.count("resume=true") == 1
    parsed = OverridesParser.create().parse_overrides(words[3:])
    values = {o.key_or_group: o for o in parsed}
    assert values["hydra.sweep.dir"].value() == where
    assert words[3] == "hydra.sweep.subdir=${hydra.job.num}"


# ------------------------------------------------------------------ in process: the runner
def _run(tmp_path: Path, **kwargs) -> dict:
    return runner.run(build(compose_config(TINY1)), tmp_path, progress=False, **kwargs)


def test_a_full_disk_is_one_line_and_a_final_record(tmp_path, monkeypatch, caplog):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("pinn_exp.training.trainer.save_checkpoint", full)
    real_write = runner.recording.write
    calls = []

    def write(out_dir, record):  # the first record goes in; the final one finds a full disk
        calls.append(record.status)
        if len(calls) > 1:
            full()
        real_write(out_dir, record)

    monkeypatch.setattr(runner.recording, "write", write)
    monkeypatch.setattr("pinn_exp.io.storage.write_history", full)
    record = _run(tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["status"] == record["status"] == "failed"
    assert "No space left on device" in saved["error"]
    assert "Traceback" not in caplog.text


def test_a_failed_checkpoint_write_is_recorded_in_its_phase(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("pinn_exp.training.trainer.save_checkpoint", full)
    _run(tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["status"] == "failed" and "No space left on device" in saved["error"]
    assert saved["phase"] == "checkpoint" and saved["round"] == 0
    assert saved["last_completed_round"] == -1  # no checkpoint holds a round
    assert len(saved["l2_rel_error_per_round"]) == 1  # the round was evaluated before


def test_checkpoint_write_on_a_full_disk_raises_the_os_error(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    big = {"weights": torch.zeros(64 * 1024)}  # 256 KiB, over the limit below
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, hard))
    try:
        with pytest.raises(OSError):  # not torch's opaque RuntimeError
            storage.save_checkpoint(tmp_path / "checkpoint.pt", big)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert not (tmp_path / "checkpoint.pt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_last_completed_round_is_the_round_the_checkpoint_holds(tmp_path, monkeypatch):
    """A failure after a round's evaluation but before its checkpoint (here the residual map
    of round 1) belongs to that round: the record's last completed round is the one the
    checkpoint holds, and the plots are still drawn from the last round that has a map."""
    from pinn_exp.training.trainer import Trainer

    original = Trainer.residual_map

    def failing(self):
        if self.state.round_index == 1:
            raise MemoryError("the residual map of round 1")
        return original(self)

    monkeypatch.setattr(Trainer, "residual_map", failing)
    built = build(compose_config([*TINY1, "rounds=2", "sampler=uniform"]))
    record = runner.run(built, tmp_path, progress=False)
    held = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["state"]["round_index"]
    assert record["status"] == "oom" and record["phase"] == "evaluation"
    assert record["last_completed_round"] == held == 0 and record["round"] == 1
    assert (tmp_path / "residual.png").is_file() and (tmp_path / "points.png").is_file()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_records_the_run_and_a_second_one_changes_nothing(tmp_path, monkeypatch, signum):
    def hook(round_index, step, phase):
        if step == 5:
            os.kill(os.getpid(), signum)

    real = runner.files.write_files

    def files_with_a_second_signal(*args):
        os.kill(os.getpid(), signal.SIGTERM)  # remembered, not raised: the files get written
        real(*args)

    monkeypatch.setattr(runner.files, "write_files", files_with_a_second_signal)
    # what was there before (Python's Ctrl-C handler; SIG_IGN where the suite was started in
    # the background by a shell) is what is there after
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(runner.Interrupted) as stopped:
        _run(tmp_path, step_hook=hook)
    assert stopped.value.code == 128 + signum
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "failed" and record["error"] == runner.ENDING[signum]
    assert (tmp_path / "loss.png").is_file() and (tmp_path / "history.csv").is_file()
    assert {s: signal.getsignal(s) for s in before} == before  # handlers restored


# -------------------------------------------------------------------- end to end (run.py)
def test_a_resume_that_cannot_build_or_load_leaves_the_run_as_it_was(finished, tmp_path):
    run = _copy(finished, tmp_path)
    before = _files(run)
    proc = _cli(
        *TINY, "rounds=3", "resume=true", "+sampler.period=5", f"hydra.run.dir={run}", cwd=tmp_path
    )
    _refused(proc, "period")
    assert _files(run) == before  # .hydra/ and the log included
    torch.save({"foo": 1}, run / "checkpoint.pt")
    before = _files(run)
    _refused(
        _cli(*TINY, "rounds=3", "resume=true", f"hydra.run.dir={run}", cwd=tmp_path),
        "not a checkpoint of a run",
    )
    assert _files(run) == before


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_the_original_resume_still_works_after_a_refused_one(finished, tmp_path):
    run = _copy(finished, tmp_path)
    (run / "loss.png").unlink()  # and a finished run missing a plot gets it on resume
    _refused(
        _cli(
            *TINY,
            "rounds=2",
            "resume=true",
            "+sampler.period=5",
            f"hydra.run.dir={run}",
            cwd=tmp_path,
        ),
        "period",
    )
    proc = _cli(*TINY, "rounds=1", "resume=true", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0 and (run / "loss.png").is_file(), proc.stderr[-2000:]
    proc = _cli(*TINY, "rounds=2", "resume=true", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "ok" and len(record["l2_rel_error_per_round"]) == 3
    assert not (run / guard.RUN_CLAIM).exists()


def test_a_run_in_use_is_neither_joined_nor_resumed(finished, tmp_path):
    run = _copy(finished, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (run / guard.RUN_CLAIM).write_text(f"pid {holder.pid} host {os.uname().nodename}\n")
        before = _files(run)
        for extra in (["resume=true", "rounds=2"], []):
            _refused(_cli(*TINY1, *extra, f"hydra.run.dir={run}", cwd=tmp_path), "is in use by")
            assert _files(run) == before
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        (fresh / guard.RUN_CLAIM).write_text(f"pid {holder.pid} host {os.uname().nodename}\n")
        _refused(_cli(*TINY1, f"hydra.run.dir={fresh}", cwd=tmp_path), "is in use by")
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("case", ["malformed_config", "unresolvable"])
def test_the_guard_fails_closed(finished, tmp_path, case):
    run = _copy(finished, tmp_path)
    if case == "malformed_config":
        (run / "config_resolved.yaml").write_text("seed: [unclosed\n")
        args, said = ["resume=true", "rounds=2"], "config_resolved.yaml is unreadable"
    else:
        args, said = ["+note=${oc.env:PINN_EXP_SURELY_UNSET}", f"hydra.run.dir={run}_new"], "resolv"
        run = tmp_path / "run_new"
    before = _files(run) if run.exists() else {}
    _refused(_cli(*TINY1, *args, f"hydra.run.dir={run}", cwd=tmp_path), said)
    assert (_files(run) if run.exists() else {}) == before


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_refusals_of_places(finished, tmp_path):
    _refused(_cli(*TINY1, "hydra.run.dir=", cwd=tmp_path), "hydra.run.dir is empty")
    assert not list(tmp_path.iterdir())
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    _refused(
        _cli(*TINY1, f"hydra.run.dir={tmp_path / 'dangling'}", cwd=tmp_path), "which does not exist"
    )
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / ".sweep").touch()
    _refused(_cli(*TINY1, f"hydra.run.dir={sweep / 'mine'}", cwd=tmp_path), "sweep's directory")
    _refused(
        _cli("-m", *TINY1, "seed=0,1", f"hydra.sweep.dir={finished}", cwd=tmp_path),
        "a run's directory",
    )


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_a_failed_configuration_does_not_block_the_corrected_rerun(tmp_path):
    run = tmp_path / "run"
    bad = _cli(*TINY1, "sampler.ratio=0.7", f"hydra.run.dir={run}", cwd=tmp_path)
    assert bad.returncode == 2 and json.loads((run / "metrics.json").read_text())["phase"]
    good = _cli(*TINY1, f"hydra.run.dir={run}", cwd=tmp_path)
    assert good.returncode == 0, good.stderr[-2000:]
    assert json.loads((run / "metrics.json").read_text())["status"] == "ok"


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_sweeps_whose_jobs_collide_or_whose_config_changed_are_refused(tmp_path):
    sweep = tmp_path / "sweep"
    proc = _cli(
        "-m",
        *TINY1,
        "seed=0,1",
        "hydra.sweep.subdir=${hydra.runtime.choices.sampler}",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    _refused(proc, "both write into")
    assert not (sweep / "rsmote").exists()
    proc = _cli("-m", *TINY1, "sampler=uniform", "seed=0", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before = _files(sweep)
    proc = _cli(
        "-m",
        *TINY1,
        "sampler=rad",
        "seed=0",
        "resume=true",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    _refused(proc, "sampler ('uniform' -> 'rad')")
    assert _files(sweep) == before


def test_a_sweep_started_before_the_defaults_changed_resumes_with_them_written_out(tmp_path):
    """A sweep whose multirun.yaml has the old default (optimizer.compile=false) is
    refused with the overrides that resume it, and resumes with them: an override that sets
    the value the sweep's config had is not a change, nor is leaving out one that restated a
    default in another form (1e-3); values are compared as Hydra composed them (0100 is 100,
    not YAML's octal 64)."""
    sweep_dir = tmp_path / "sweep"
    old = ["optimizer.compile=false"]
    first = _cli(
        "-m",
        *TINY1,
        "seed=0",
        *old,
        "optimizer.lr=1e-3",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    # as if it had been started when these were the defaults: not on its command line
    multirun = OmegaConf.load(sweep_dir / "multirun.yaml")
    task = [o for o in multirun.hydra.overrides.task if o not in old]
    multirun.hydra.overrides.task = task
    OmegaConf.save(multirun, sweep_dir / "multirun.yaml")
    refused = _cli(
        "-m", *TINY1, "seed=0", "resume=true", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path
    )
    _refused(refused, "resumes with optimizer.compile=false")
    wider = _cli(
        "-m",
        *TINY1,
        "seed=0",
        *old,
        "model.width=0100",
        "resume=true",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    _refused(wider, "model.width")
    assert "resumes with" not in wider.stderr  # it has the old default already
    resumed = _cli(
        "-m", *TINY1, "seed=0", *old, "resume=true", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    record = json.loads(next(sweep_dir.glob("*/metrics.json")).read_text())
    assert record["status"] == "ok"
    assert (record["lbfgs_impl"], record["compiled"]) == ("torch", False)


def test_a_run_or_sweep_of_the_removed_sync_free_l_bfgs_is_refused_on_resume(tmp_path):
    """A run, or a batched sweep's job, that ran with optimizer.lbfgs_impl=sync_free (an
    L-BFGS since replaced) cannot be continued: resume=true says so in one line, before
    anything runs, instead of naming overrides that could never match."""
    run_dir = tmp_path / "run"
    assert _cli(*TINY1, f"hydra.run.dir={run_dir}", cwd=tmp_path).returncode == 0
    config = run_dir / "config_resolved.yaml"
    text = config.read_text()
    assert "lbfgs_impl: torch" in text  # the default
    config.write_text(text.replace("lbfgs_impl: torch", "lbfgs_impl: sync_free"))
    before = _files(run_dir)
    proc = _cli(*TINY1, f"hydra.run.dir={run_dir}", "resume=true", cwd=tmp_path)
    _refused(proc, "ran with optimizer.lbfgs_impl=sync_free")
    assert "start a new run or sweep" in proc.stderr and _files(run_dir) == before
    sweep_dir = tmp_path / "sweep"
    assert (
        _cli("-m", *TINY1, "seed=0,1", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path).returncode == 0
    )
    job = next(sweep_dir.glob("1_*"))
    overrides = job / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text() + "- optimizer.lbfgs_impl=sync_free\n")
    proc = _cli(
        "-m", *TINY1, "seed=0,1", f"hydra.sweep.dir={sweep_dir}", "resume=true", cwd=tmp_path
    )
    _refused(proc, f"its job {job.name} ran with optimizer.lbfgs_impl=sync_free")
