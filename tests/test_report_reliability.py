"""The report never pools different configurations, never counts a run twice, never leaves an
earlier report's files behind or replaces a summary of other runs, and refuses in one line
(exit 2, no traceback); a sweep in which every job failed exits non-zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from support import patient

from pinn_exp.report import summary as summary_module
from pinn_exp.report.__main__ import main
from pinn_exp.report.runs import collect_runs
from pinn_exp.report.summary import write_summary
from pinn_exp.report.tables import mean_std_table, to_markdown
from pinn_exp.sweep import failure_line

BASE_CONFIG = {
    "pde": {"_target_": "pinn_exp.pdes.Burgers", "dim": None},
    "sampler": {"_target_": "pinn_exp.samplers.RSmote", "ratio": 0.45, "k_neighbors": 5},
    "optimizer": {"_target_": "pinn_exp.training.schedule.Schedule", "adam_steps": 10},
    "seed": 0,
    "n_points": 200,
    "rounds": 2,
    "resume": False,
    "progress": True,
    "report": {"rows": "sampler", "cols": "pde", "metric": "l2_rel_error", "baseline": None},
}


def _run(
    folder: Path, error: float, final_n: int | None = None, sampler: str = "rsmote", **config
) -> Path:
    """A finished run folder: metrics.json and config_resolved.yaml (``config``: dotted keys)."""
    tree = json.loads(json.dumps(BASE_CONFIG))
    if sampler != "rsmote":
        tree["sampler"] = {"_target_": f"pinn_exp.samplers.{sampler.upper()}"}
    for key, value in config.items():
        node = tree
        *parents, leaf = key.split(".")
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    n_points = tree["n_points"]
    record = {
        "status": "ok",
        "error": None,
        "pde": "burgers",
        "sampler": sampler,
        "n_points": n_points,
        "seed": tree["seed"],
        "l2_rel_error": error,
        "l2_rel_error_per_round": [2 * error, error],
        "peak_cpu_rss_mb": 100.0,
        "wall_time_s": 1.0,
        "round_stats": [{"round": r, "n_points": final_n or n_points} for r in range(2)],
    }
    folder.mkdir(parents=True)
    (folder / "config_resolved.yaml").write_text(yaml.safe_dump(tree))
    (folder / "metrics.json").write_text(json.dumps(record))
    return folder


def _table(root: Path, **kwargs) -> pd.DataFrame:
    return mean_std_table(collect_runs([root]), **kwargs).droplevel("final N")


# ----------------------------------------------------------------------------- pooling


def test_runs_of_different_configurations_are_not_pooled_as_seeds(tmp_path):
    """Two seed-0 RSmote runs, N=200 with 2 rounds and N=300 with 3 rounds: two rows."""
    _run(tmp_path / "a", 1e-2, n_points=200, rounds=2)
    _run(tmp_path / "b", 3e-2, n_points=300, rounds=3)
    table = _table(tmp_path)
    assert table.loc["rsmote (n_points=200, rounds=2)", "burgers"] == "1.00e-02 ± n/a (1)"
    assert table.loc["rsmote (n_points=300, rounds=3)", "burgers"] == "3.00e-02 ± n/a (1)"
    write_summary([tmp_path], plots=False)
    text = (tmp_path / "summary.md").read_text()
    assert "(2)" not in text and "rsmote (n_points=300, rounds=3)" in text
    assert "a cell pools only runs that differ in `seed`" in text


def test_seeds_of_one_configuration_are_pooled(tmp_path):
    for seed, error in enumerate([1e-2, 2e-2, 3e-2]):
        _run(tmp_path / f"s{seed}", error, seed=seed, progress=bool(seed % 2))
    table = _table(tmp_path)
    # progress (and report.*, resume) do not change a run: the three seeds are one cell
    assert table.loc["rsmote", "burgers"] == f"2.00e-02 ± {np.std([1, 2, 3], ddof=1) / 100:.1e} (3)"


def test_a_samplers_own_keys_and_a_changed_class_keep_runs_apart(tmp_path):
    _run(tmp_path / "rad50", 1e-2, sampler="rad", **{"sampler.n_dense": 50000})
    _run(tmp_path / "rad100", 2e-2, sampler="rad", **{"sampler.n_dense": 100000})
    _run(tmp_path / "nan", 4e-2, **{"pde._target_": "faults.NanBurgers"})
    _run(tmp_path / "plain", 5e-2)
    table = _table(tmp_path)
    assert table.loc["rad (sampler.n_dense=50000)", "burgers"].startswith("1.00e-02")
    assert table.loc["rad (sampler.n_dense=100000)", "burgers"].startswith("2.00e-02")
    assert table.loc["rsmote (pde._target_=faults.NanBurgers)", "burgers"].startswith("4.00e-02")
    assert table.loc["rsmote (pde._target_=pinn_exp.pdes.Burgers)", "burgers"].startswith("5.0")
    # one row per setting, never "(2)"
    assert not any("(2)" in cell for cell in table.to_numpy().ravel())


def test_columns_split_by_setting_in_plots_too(tmp_path):
    from pinn_exp.report import plots

    _run(tmp_path / "a", 1e-2, n_points=200)
    _run(tmp_path / "b", 3e-2, n_points=300)
    fig = plots.plot_error_per_round(collect_runs([tmp_path]), tmp_path)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert sorted(labels) == ["rsmote (n_points=200) (1)", "rsmote (n_points=300) (1)"]


def test_duplicates_are_counted_once_and_listed(tmp_path, capsys):
    old = _run(tmp_path / "first", 1e-2)
    new = _run(tmp_path / "again", 3e-2)  # same config, same seed: a duplicate
    os.utime(old / "metrics.json", (1_000_000, 1_000_000))
    os.utime(new / "metrics.json", (2_000_000, 2_000_000))
    frame = collect_runs([tmp_path])
    dup = frame.set_index(frame["run_dir"].map(lambda p: Path(p).name))["duplicate_of"]
    assert Path(dup["first"]).name == "again" and dup.isna()["again"]
    table = mean_std_table(frame).droplevel("final N")
    assert table.loc["rsmote", "burgers"] == "3.00e-02 ± n/a (1)"  # the newest counts
    assert main([str(tmp_path), "--no-plots"]) == 0
    assert "1 duplicate run(s) not counted" in capsys.readouterr().out
    text = (tmp_path / "summary.md").read_text()
    assert "## Duplicate runs, not counted" in text and "first`: same as `again`" in text


# ----------------------------------------------------------------------------- final N


def test_every_row_shows_the_final_number_of_points(tmp_path):
    """RAR-D at budget=paper ends with 1,100 points, the others with 2,000."""
    for seed in range(2):
        _run(tmp_path / f"rar{seed}", 1e-2, final_n=1100, sampler="rar_d", seed=seed, n_points=2000)
        _run(tmp_path / f"rs{seed}", 2e-2, seed=seed, n_points=2000)
    frame = collect_runs([tmp_path])
    assert sorted(frame["final_n_points"]) == [1100, 1100, 2000, 2000]
    table = mean_std_table(frame)
    assert table.index.names == ["sampler", "final N"]
    assert list(table.index) == [("rar_d", "1100"), ("rsmote", "2000")]
    assert "| rar_d | 1100 |" in to_markdown(table)
    csv = write_summary([tmp_path], plots=False)
    assert "final_n_points" in pd.read_csv(tmp_path / "summary.csv").columns
    assert csv.columns.get_loc("final_n_points") == csv.columns.get_loc("n_points") + 1


def test_final_n_from_the_collocation_file_when_the_record_lacks_it(tmp_path):
    run = _run(tmp_path / "old", 1e-2)
    record = json.loads((run / "metrics.json").read_text())
    del record["round_stats"]
    (run / "metrics.json").write_text(json.dumps(record))
    np.savez(run / "collocation.npz", round_0=np.zeros((100, 2)), round_1=np.zeros((150, 2)))
    assert collect_runs([tmp_path])["final_n_points"].tolist() == [150]


# ----------------------------------------------------------------------------- refusals


def _report(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pinn_exp.report", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=patient(300),
    )


def _one_line_refusal(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_out_pointing_to_a_file_is_refused_in_one_line(tmp_path):
    _run(tmp_path / "runs" / "a", 1e-2)
    target = tmp_path / "report.txt"
    target.write_text("mine")
    proc = _report(str(tmp_path / "runs"), "--out", str(target), cwd=tmp_path)
    _one_line_refusal(proc, str(target), "not a folder")
    assert target.read_text() == "mine"
    below = target / "sub"  # a folder that cannot be made
    _one_line_refusal(
        _report(str(tmp_path / "runs"), "--out", str(below), cwd=tmp_path),
        str(below),
        "cannot create",
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_refused_in_one_line(tmp_path):
    _run(tmp_path / "runs" / "a", 1e-2)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        _one_line_refusal(
            _report(str(tmp_path / "runs"), "--out", str(locked), cwd=tmp_path),
            str(locked),
            "cannot write",
        )
    finally:
        locked.chmod(0o755)


def test_unwritable_out_is_refused_before_writing(tmp_path, monkeypatch, capsys):
    """As root, a folder is never read-only by its mode: the write probe fails instead."""
    _run(tmp_path / "runs" / "a", 1e-2)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(summary_module.tempfile, "mkstemp", denied)
    out = tmp_path / "out"
    assert main([str(tmp_path / "runs"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {out}: cannot write there: Permission denied"
    assert not list(out.iterdir())


def test_a_baseline_without_runs_is_refused_naming_the_samplers(tmp_path):
    _run(tmp_path / "a", 1e-2)
    _run(tmp_path / "b", 2e-2, sampler="uniform")
    proc = _report(str(tmp_path), "--baseline", "rad", cwd=tmp_path)
    _one_line_refusal(proc, "--baseline rad", "rsmote, uniform")
    assert not (tmp_path / "summary.md").exists()
    proc = _report(str(tmp_path), "--baseline", "uniform", "--no-plots", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


# ----------------------------------------------------------------------------- earlier reports


def test_an_earlier_reports_files_do_not_stay_behind(tmp_path, capsys):
    _run(tmp_path / "a", 1e-2)
    _run(tmp_path / "b", 2e-2, sampler="uniform")
    assert main([str(tmp_path), "--baseline", "uniform", "--latex"]) == 0
    for name in ("summary_paired.csv", "summary.tex", "error_per_round.png"):
        assert (tmp_path / name).is_file(), name
    capsys.readouterr()
    # the next report has no baseline, no LaTeX and no plots: their old files go
    assert main([str(tmp_path), "--no-plots"]) == 0
    for name in ("summary_paired.csv", "summary.tex", "error_per_round.png"):
        assert not (tmp_path / name).exists(), name
    assert f"removed {tmp_path / 'summary_paired.csv'} (from an earlier report)" in (
        capsys.readouterr().out
    )
    assert (tmp_path / "summary.md").is_file() and (tmp_path / "summary.csv").is_file()


def test_a_report_of_one_run_does_not_replace_the_sweeps_summary(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in range(3):
        _run(sweep / f"{seed}_burgers_rsmote", 1e-2 * (seed + 1), seed=seed)
    assert main([str(sweep), "--no-plots"]) == 0
    before = (sweep / "summary.csv").read_text()
    one = sweep / "0_burgers_rsmote"
    proc = _report(str(one), "--out", str(sweep), "--no-plots", cwd=tmp_path)
    _one_line_refusal(proc, str(sweep / "summary.csv"), "2 run(s)", "--overwrite")
    assert (sweep / "summary.csv").read_text() == before
    # a report over one run into its own folder, or over the whole sweep again, is fine
    assert main([str(one), "--no-plots"]) == 0
    assert main([str(sweep), "--no-plots"]) == 0
    # runs that were deleted since are no reason to refuse; --overwrite replaces on purpose
    import shutil

    shutil.rmtree(sweep / "2_burgers_rsmote")
    assert main([str(sweep), "--no-plots"]) == 0
    assert main([str(one), "--out", str(sweep), "--no-plots", "--overwrite"]) == 0
    assert len(pd.read_csv(sweep / "summary.csv")) == 1


# ----------------------------------------------------------------------------- the sweep's end


def test_failure_line_names_the_failed_jobs():
    assert failure_line([], 4) is None
    line = failure_line([("1_burgers_rad", "failed")], 4)
    assert line == "sweep: 1 of 4 jobs did not finish ok: 1_burgers_rad (failed) (see summary.md)"
    jobs = [(f"{i}_x", "oom") for i in range(12)]
    assert failure_line(jobs, 12).startswith("sweep: all 12 jobs failed: 0_x (oom), ")
    assert failure_line(jobs, 12).endswith("and 2 more (see summary.md)")


def test_a_sweep_whose_every_job_fails_exits_non_zero(tmp_path, root, tiny):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    # n_points=3 composes but the factory refuses it: every job fails while building
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "run.py"),
            "-m",
            *tiny,
            "n_points=3",
            "seed=0,1",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=patient(600),
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "sweep: all 2 jobs failed: 0_burgers_rsmote (failed), 1_burgers_rsmote (failed)" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert (sweep / "summary.md").is_file()  # written before the exit
