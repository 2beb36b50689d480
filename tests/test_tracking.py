"""logger=mlflow: runs and sweeps mirrored into MLflow on a real SQLite store (no mocks); a
tracker that fails costs one warning; logger=none imports nothing."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from support import ROOT, TINY, compose_config, patient

from pinn_exp import guard, runner
from pinn_exp.factory import build
from pinn_exp.io import tracker
from pinn_exp.io.record import PLOTS, RunRecord
from pinn_exp.metrics import registry

needs_mlflow = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None,
    reason=f"mlflow is not installed ({tracker.INSTALL})",
)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


def _cli(*args: str, cwd: Path, code: str | None = None) -> subprocess.CompletedProcess:
    """``run.py ARGS`` in ``cwd``, or Python ``code`` that runs it (``sys.argv`` set)."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(ROOT / "tests")}
    argv = [str(ROOT / "run.py"), *args]
    if code:
        command = [sys.executable, "-c", code.replace("ARGV", repr(argv))]
    else:
        command = [sys.executable, *argv]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=patient(600)
    )


def _runs(uri: str, kind: str = "run") -> list:
    client = _client(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return [r for r in client.search_runs(experiments) if r.data.tags.get("pinn_exp.kind") == kind]


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _assert_metrics_mirror_the_record(client, run, record: dict) -> None:
    """One value per round, step = round, equal to metrics.json, for every registry metric."""
    for name in registry.METRICS:
        values = record[registry.per_round(name)]
        assert _history(client, run.info.run_id, name) == list(enumerate(values)), name


def _in_process(folder: Path, overrides: list[str], resume: bool = False, **kwargs) -> dict:
    """A run of the tiny budget with logger=mlflow on ``folder``'s database, in this process."""
    cfg = compose_config(
        TINY + ["logger=mlflow", f"logger.tracking_uri={_uri(folder)}", *overrides]
    )
    config = OmegaConf.to_container(cfg, resolve=True)
    out = folder / "run"
    out.mkdir(parents=True, exist_ok=True)
    return runner.run(build(cfg), out, resume=resume, progress=False, config=config, **kwargs)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> Path:
    """A run of the command line with logger=mlflow and the default tracking URI: the
    database outputs/mlflow.db in the directory the command starts from."""
    cwd = tmp_path_factory.mktemp("tracked")
    if importlib.util.find_spec("mlflow") is None:
        pytest.skip(f"mlflow is not installed ({tracker.INSTALL})")
    proc = _cli(*TINY, "logger=mlflow", f"hydra.run.dir={cwd / 'run'}", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd


@needs_mlflow
def test_a_run_mirrors_its_config_record_metrics_and_files(tracked):
    out, uri = tracked / "run", _uri(tracked / "outputs")
    assert (tracked / "outputs" / "mlflow.db").is_file()
    assert not (tracked / "mlruns").exists()  # artifacts beside the database, not in the cwd
    record = json.loads((out / "metrics.json").read_text())
    (run,) = _runs(uri)
    client = _client(uri)
    assert record["mlflow_run_id"] == run.info.run_id
    assert client.get_experiment(run.info.experiment_id).name == "burgers"  # the PDE's name
    assert run.info.status == "FINISHED"
    # every composed config key, with Hydra's dotted names
    config = OmegaConf.to_container(OmegaConf.load(out / "config_resolved.yaml"))
    assert run.data.params == tracker.flatten(config)
    assert run.data.params["sampler.ratio"] == "0.1" and run.data.params["rounds"] == "2"
    identity = {
        "pde": "burgers",
        "sampler": "rsmote",
        "seed": "0",
        "N": "200",
        "dtype": "float32",
        "threads": str(record["threads"]),
        "device": record["device"],
        "lbfgs_impl": record["lbfgs_impl"],
        "compiled": json.dumps(record["compiled"]),
        "status": "ok",
    }
    assert {k: run.data.tags[k] for k in identity} == identity
    _assert_metrics_mirror_the_record(client, run, record)
    assert len(record["l2_rel_error_per_round"]) == 3  # initial training + 2 rounds
    assert run.data.metrics["wall_time_s"] == record["wall_time_s"]
    assert _history(client, run.info.run_id, "round/time_s") == [
        (s["round"], s["time_s"]) for s in record["round_stats"]
    ]
    # the loss curve: every check_every-th optimizer step and the last (history.csv's rows)
    rows = (out / "history.csv").read_text().splitlines()[1:]
    every = config["optimizer"]["check_every"]
    kept = [i for i in range(len(rows)) if (i + 1) % every == 0 or i == len(rows) - 1]
    loss = _history(client, run.info.run_id, "train/loss")
    assert [step for step, _ in loss] == kept
    assert loss[-1][1] == float(rows[-1].split(",")[3])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    expected = {"metrics.json", "config_resolved.yaml"} | {
        name for name in PLOTS.values() if (out / name).is_file()
    }
    assert artifacts == expected and "loss.png" in artifacts
    mirrored = json.loads(
        Path(client.download_artifacts(run.info.run_id, "metrics.json", str(tracked))).read_text()
    )
    assert mirrored == record


@needs_mlflow
def test_a_diverged_run_is_failed(tmp_path):
    record = _in_process(tmp_path, ["pde._target_=faults.NanBurgers"])
    assert record["status"] == "diverged"
    (run,) = _runs(_uri(tmp_path))
    assert run.info.run_id == record["mlflow_run_id"]
    assert run.info.status == "FAILED"
    assert run.data.tags["status"] == "diverged" and "not finite" in run.data.tags["pinn_exp.error"]


@needs_mlflow
def test_a_run_ended_by_sigterm_is_killed(tmp_path):
    def terminate(round_index: int, step: int, phase: str) -> None:
        if (round_index, step, phase) == (1, 2, "adam"):
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(runner.Interrupted):
        _in_process(tmp_path, [], step_hook=terminate)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (record["status"], record["error"]) == ("failed", "terminated (SIGTERM)")
    (run,) = _runs(_uri(tmp_path))
    assert run.info.run_id == record["mlflow_run_id"]
    assert run.info.status == "KILLED"
    # the round that completed before the signal
    _assert_metrics_mirror_the_record(_client(_uri(tmp_path)), run, record)
    assert len(record["l2_rel_error_per_round"]) == 1


@needs_mlflow
def test_resume_continues_the_same_mlflow_run(tmp_path):
    first = _in_process(tmp_path, ["rounds=1"])
    assert first["status"] == "ok" and first["mlflow_run_id"]
    second = _in_process(tmp_path, ["rounds=2", "resume=true"], resume=True)
    assert second["mlflow_run_id"] == first["mlflow_run_id"]
    (run,) = _runs(_uri(tmp_path))  # one run, not two
    assert run.info.run_id == first["mlflow_run_id"] and run.info.status == "FINISHED"
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(record["l2_rel_error_per_round"]) == 3
    # the rounds of the first process are not logged twice
    _assert_metrics_mirror_the_record(_client(_uri(tmp_path)), run, record)


@needs_mlflow
def test_a_resume_may_choose_another_tracker(tracked, tmp_path):
    """The tracker changes nothing a run computes: a resume may change ``logger``."""
    out, _, config = _copy(tracked / "run", tmp_path)
    server = {**config["logger"], "tracking_uri": "http://127.0.0.1:5000"}
    for logger in (None, server):
        guard.check_resume(out, {**config, "logger": logger, "resume": True, "rounds": 3})
    with pytest.raises(guard.Refused, match="seed"):  # what a run computes still may not
        guard.check_resume(out, {**config, "seed": 1, "resume": True, "rounds": 3})


def _copy(run_dir: Path, to: Path) -> tuple[Path, RunRecord, dict]:
    out = to / "copy"
    shutil.copytree(run_dir, out)
    fields = json.loads((out / "metrics.json").read_text())
    record = RunRecord(status=fields["status"], error=fields["error"], pde=fields["pde"])
    record.mlflow_run_id = fields["mlflow_run_id"]
    config = OmegaConf.to_container(OmegaConf.load(out / "config_resolved.yaml"))
    return out, record, config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_mlflow
def test_a_server_that_does_not_answer_is_one_warning(tracked, tmp_path, caplog):
    out, record, config = _copy(tracked / "run", tmp_path)
    before = (out / "metrics.json").read_text()
    # nothing listens on this port of the loopback: the connection is refused
    config["logger"].update(tracking_uri=f"http://127.0.0.1:{_free_port()}", timeout_s=30)
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        tracker.track_run(out, record, config)
    assert time.perf_counter() - start < 30
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].name == "pinn_exp.io.tracker"
    assert "was not tracked" in warnings[0].getMessage()
    assert (out / "metrics.json").read_text() == before  # the run's files as they were


@needs_mlflow
def test_a_locked_database_costs_one_warning_and_at_most_the_timeout(tracked, tmp_path, caplog):
    out, record, config = _copy(tracked / "run", tmp_path)
    database = tmp_path / "locked" / "mlflow.db"
    database.parent.mkdir()
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another writer that does not let go
    config["logger"].update(tracking_uri=f"sqlite:///{database}", timeout_s=3)
    start = time.perf_counter()
    try:
        with caplog.at_level(logging.WARNING):
            tracker.track_run(out, record, config)
        elapsed = time.perf_counter() - start
    finally:
        holder.close()
    assert 2.5 < elapsed < 6
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "logger.timeout_s=3" in warnings[0].getMessage()


@needs_mlflow
def test_logger_none_imports_no_mlflow_and_writes_the_files_it_did(tmp_path):
    code = (
        "import sys\nsys.argv = ARGV\nfrom pinn_exp.cli import main\ntry:\n    main()\n"
        "finally:\n    print('MLFLOW:', sorted(m for m in sys.modules if m.split('.')[0] == "
        "'mlflow'))\n"
    )
    proc = _cli(*TINY, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, code=code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MLFLOW: []" in proc.stdout
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "ok" and record["mlflow_run_id"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no database, no mlruns


#: runs the command line as if MLflow were not installed
WITHOUT_MLFLOW = (
    "import sys\nsys.modules['mlflow'] = None\nsys.argv = ARGV\n"
    "from pinn_exp.cli import main\nmain()\n"
)


def test_logger_mlflow_without_mlflow_is_refused_in_one_line_before_training(tmp_path):
    proc = _cli(
        *TINY,
        "logger=mlflow",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        code=WITHOUT_MLFLOW,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if "logger=mlflow" in line]
    assert len(lines) == 1 and tracker.INSTALL in lines[0] and "logger=none" in lines[0]
    assert "Traceback" not in proc.stderr
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "failed" and "logger=mlflow" in record["error"]
    assert not (tmp_path / "run" / "history.csv").exists()  # nothing was trained
    # a sweep is refused before any job
    sweep = tmp_path / "sweep"
    proc = _cli(
        "-m",
        *TINY,
        "seed=0,1",
        "logger=mlflow",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        code=WITHOUT_MLFLOW,
    )
    assert proc.returncode == 2
    assert len([line for line in proc.stderr.splitlines() if "logger=mlflow" in line]) == 1
    assert not [job for job in sweep.glob("*") if job.is_dir()]


def _sweep(tmp_path: Path, *args: str) -> tuple[Path, str]:
    sweep, uri = tmp_path / "sweep", _uri(tmp_path)
    proc = _cli(
        "-m",
        *TINY,
        *args,
        "logger=mlflow",
        f"logger.tracking_uri={uri}",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep, uri


@needs_mlflow
@pytest.mark.slow  # four processes at once: `pytest -m slow` (run by .ci/run)
def test_a_parallel_sweep_is_one_parent_with_every_job_as_its_child(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep, uri = _sweep(
        tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "seed=0,1,2,3"
    )
    client = _client(uri)
    (parent,) = _runs(uri, "sweep")
    children = _runs(uri)
    assert len(children) == 4  # four writers at once on one SQLite file: none lost
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.info.experiment_id for c in children} == {parent.info.experiment_id}
    assert sorted(c.data.params["seed"] for c in children) == ["0", "1", "2", "3"]
    # each child named by its folder and the values the sweep varies
    assert sorted(c.info.run_name for c in children) == [
        f"{i}_burgers_rsmote seed={i}" for i in range(4)
    ]
    for child in children:
        record = json.loads(
            (Path(child.data.tags["pinn_exp.run_dir"]) / "metrics.json").read_text()
        )
        assert record["mlflow_run_id"] == child.info.run_id and child.info.status == "FINISHED"
        _assert_metrics_mirror_the_record(client, child, record)
    assert parent.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.csv", "summary.md", "multirun.yaml", "error_per_round.png"} <= artifacts
    assert parent.data.params["seed"] == "0,1,2,3"


@needs_mlflow
@pytest.mark.slow  # end-to-end: `pytest -m slow` (run by .ci/run)
def test_the_batched_launchers_members_are_children_like_single_runs(tmp_path):
    sweep, uri = _sweep(
        tmp_path, "hydra/launcher=batched", "optimizer.lbfgs_impl=device", "seed=0,1"
    )
    (parent,) = _runs(uri, "sweep")
    children = _runs(uri)
    assert sorted(c.info.run_name for c in children) == [
        f"{i}_burgers_rsmote seed={i}" for i in range(2)
    ]
    client = _client(uri)
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        record = json.loads(
            (Path(child.data.tags["pinn_exp.run_dir"]) / "metrics.json").read_text()
        )
        assert record["mlflow_run_id"] == child.info.run_id and child.info.status == "FINISHED"
        assert record["batched"] == "loop"  # trained as one ensemble
        _assert_metrics_mirror_the_record(client, child, record)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@needs_mlflow
@pytest.mark.slow  # a web server and a browser: `pytest -m slow` (run by .ci/run)
def test_mlflow_ui_shows_the_runs_of_a_sweep_and_their_error(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium here (.ci/run installs Debian's where apt-get is available)")
    sweep, uri = _sweep(tmp_path, "sampler.ratio=0.1,0.3")
    children = _runs(uri)
    assert len(children) == 2
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/health", patient(180))
        ids = json.dumps([c.info.run_id for c in children])
        experiment = json.dumps([children[0].info.experiment_id])
        page = (
            f"{base}/#/compare-runs?runs={urllib.parse.quote(ids)}"
            f"&experiments={urllib.parse.quote(experiment)}"
        )
        text = ""
        for _ in range(3):  # the page's scripts load the runs after the page itself
            text = _rendered_text(browser, page, tmp_path)
            if all(c.info.run_name in text for c in children):
                break
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
        server.wait(timeout=60)
    assert "l2_rel_error" in text
    shown = [float(x) for x in re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", text)]
    for child in children:
        assert child.info.run_name in text
        error = child.data.metrics["l2_rel_error"]
        # the page rounds it to a few digits
        assert any(abs(x - error) <= 5e-4 + 1e-3 * error for x in shown), (error, shown)


def _wait_for(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"mlflow server did not answer {url} within {timeout_s:.0f} s")
        time.sleep(1)


def _rendered_text(browser: str, url: str, folder: Path) -> str:
    """The visible text of ``url`` after its scripts ran, as headless Chromium renders it."""
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={folder / 'chromium'}",
            "--window-size=1600,1400",
            "--virtual-time-budget=30000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=patient(180),
    )
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", proc.stdout, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def _member(tmp_path: Path) -> tuple[Path, RunRecord]:
    """A batched member's run folder with its record only."""
    out = tmp_path / "m1"
    out.mkdir()
    record = RunRecord(status="ok", pde="burgers", sampler="rad", seed=1).update(
        batched="vmap", ensemble_size=2, ensemble_id="ens@t", time_shared=True
    )
    (out / "metrics.json").write_text(json.dumps(record.to_json()))
    return out, record


@needs_mlflow
def test_a_batched_members_run_is_tagged_with_how_it_ran(tmp_path):
    """A member's MLflow run says it is one (its params equal its single run's)."""
    out, record = _member(tmp_path)
    uri = _uri(tmp_path)
    tracker.track_run(out, record, {"logger": {"tracking_uri": uri, "timeout_s": 60}})
    (run,) = _runs(uri)
    tags = run.data.tags
    assert (tags["batched"], tags["ensemble_size"], tags["ensemble_id"]) == ("vmap", "2", "ens@t")
    assert tags["time_shared"] == "true"


@needs_mlflow
def test_a_sqlite_database_in_a_missing_folder_is_one_warning_and_creates_nothing(tmp_path, caplog):
    out, record = _member(tmp_path)
    missing = tmp_path / "nonexistent" / "dir"
    config = {"logger": {"tracking_uri": f"sqlite:///{missing / 'x.db'}", "timeout_s": 60}}
    with caplog.at_level(logging.WARNING):
        tracker.track_run(out, record, config)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "does not exist" in warnings[0], warnings
    assert not (tmp_path / "nonexistent").exists()


@needs_mlflow
def test_a_sweep_refused_by_its_launcher_ends_its_parent_run(tmp_path):
    """The parent run is created when the sweep starts; a launcher that then refuses the
    sweep before any job (SLURM's signal before the time limit) ends it KILLED, not left
    RUNNING."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    proc = _cli(
        "-m",
        *TINY,
        "seed=0,1",
        "hydra/launcher=slurm",
        "hydra.launcher.timeout_min=1",
        "logger=mlflow",
        f"logger.tracking_uri={_uri(tmp_path)}",
        f"hydra.sweep.dir={tmp_path / 's'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "signal_delay_s" in proc.stderr
    (parent,) = _runs(_uri(tmp_path), "sweep")
    assert parent.info.status == "KILLED"
