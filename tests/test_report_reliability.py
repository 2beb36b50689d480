"""The report never pools different configurations, never counts a run twice, never leaves an
earlier report's files behind or replaces a summary of other runs, and refuses in one line
(exit 2, no traceback); a sweep in which every job failed exits non-zero."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from support import patient

from pinn_exp.metrics import registry
from pinn_exp.report import paired
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
    assert table.loc["rsmote (n_points=200, rounds=2)", "burgers"] == "1.00e-02 ×/÷ n/a (1)"
    assert table.loc["rsmote (n_points=300, rounds=3)", "burgers"] == "3.00e-02 ×/÷ n/a (1)"
    write_summary([tmp_path], plots=False)
    text = (tmp_path / "summary.md").read_text()
    assert "(2)" not in text and "rsmote (n_points=300, rounds=3)" in text
    assert "a cell pools only runs that differ in `seed`" in text


def test_seeds_of_one_configuration_are_pooled(tmp_path):
    for seed, error in enumerate([1e-2, 2e-2, 3e-2]):
        _run(tmp_path / f"s{seed}", error, seed=seed, progress=bool(seed % 2))
    table = _table(tmp_path)
    # progress (and report.*, resume) do not change a run: the three seeds are one cell
    logs = np.log([1e-2, 2e-2, 3e-2])  # errors: geometric mean ×/÷ geometric std
    expected = f"{np.exp(logs.mean()):.2e} ×/÷ {np.exp(logs.std(ddof=1)):.3g} (3)"
    assert table.loc["rsmote", "burgers"] == expected


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
    assert table.loc["rsmote", "burgers"] == "3.00e-02 ×/÷ n/a (1)"  # the newest counts
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


# ----------------------------------------------------------------------------- batched members


def _set(run: Path, **fields) -> Path:
    """Sets fields of a run's record (``None`` writes null, NaN and infinities as JSON does)."""
    path = run / "metrics.json"
    record = json.loads(path.read_text())
    record.update(fields)
    path.write_text(json.dumps(record))
    return run


def _dirs(frame: pd.DataFrame, column: str) -> dict:
    """``column`` by run folder name (folder names for ``duplicate_of``)."""
    values = [Path(v).name if isinstance(v, str) else v for v in frame[column]]
    return dict(zip(frame["run_dir"].map(lambda p: Path(p).name), values))


def test_a_vmap_member_is_never_a_duplicate_of_its_single_run(tmp_path):
    """A vectorized member ends elsewhere than its single run (float32 round-off): both count,
    in rows of their own; a loop member equals its single run and may be its duplicate."""
    for sampler, error in (("rsmote", 0.5), ("rad", 0.25)):
        single = _run(tmp_path / f"{sampler}_single", error, sampler=sampler, seed=1)
        loop = _set(
            _run(tmp_path / f"{sampler}_loop", error, sampler=sampler, seed=1),
            batched="loop",
            ensemble_size=2,
            time_shared=False,
        )
        vmap = _set(
            _run(tmp_path / f"{sampler}_vmap", 0.8 * error, sampler=sampler, seed=1),
            batched="vmap",
            ensemble_size=2,
            time_shared=True,
        )
        for age, run in enumerate((single, loop, vmap)):  # the vmap member is the newest
            os.utime(run / "metrics.json", (1_000_000 + age, 1_000_000 + age))
    frame = collect_runs([tmp_path], relative_to=tmp_path)
    duplicates = _dirs(frame, "duplicate_of")
    assert duplicates["rsmote_single"] == "rsmote_loop" and duplicates["rad_single"] == "rad_loop"
    assert all(pd.isna(duplicates[name]) for name in ("rsmote_loop", "rsmote_vmap", "rad_vmap"))
    table = mean_std_table(frame).droplevel("final N")
    assert table.loc["rsmote", "burgers"] == "5.00e-01 ×/÷ n/a (1)"
    assert table.loc["rsmote (computation=vmap)", "burgers"] == "4.00e-01 ×/÷ n/a (1)"
    # each member pairs with the baseline's run of its kind
    row = paired.paired_comparison(frame, "rad").table.iloc[0]
    assert row["paired_by"] == "seed, computation"
    assert row["ratios"] == {(1, "none"): pytest.approx(2.0), (1, "vmap"): pytest.approx(2.0)}
    text = summary_module.summary_markdown(frame)
    assert "`rsmote_single`: same as `rsmote_loop`" in text and "vmap`: same as" not in text


def test_times_shared_by_an_ensemble_are_not_compared_with_own_times(tmp_path):
    """Six members whose wall time grows with their place in the ensemble against six single
    runs of 20 s: no pair of times is compared, and the summary says how many and why."""
    for seed in range(6):
        _run(tmp_path / f"rad{seed}", 1e-2, sampler="rad", seed=seed)  # older records
        _set(
            _run(tmp_path / f"rs{seed}", 5e-3, seed=seed),
            wall_time_s=10.0 + 4 * seed,
            batched="loop",
            ensemble_size=6,
            time_shared=True,
        )
    frame = collect_runs([tmp_path])
    times = paired.paired_comparison(frame, "rad", metric="wall_time_s")
    row = times.table.iloc[0]
    assert (row["pairs"], row["left_out_time_shared"]) == (0, 6)
    assert (row["unpaired_sampler"], row["unpaired_baseline"]) == (0, 0)
    assert any("6 pair(s) left out of the comparison of `wall_time_s`" in n for n in times.notes)
    errors = paired.paired_comparison(frame, "rad").table.iloc[0]  # errors still pair
    assert (errors["pairs"], errors["left_out_time_shared"]) == (6, 0)
    assert errors["p_value"] == pytest.approx(2 / 64)
    write_summary([tmp_path], metric="wall_time_s", baseline="rad", plots=False)
    assert "`time_shared`" in (tmp_path / "summary.md").read_text()
    # the baseline's runs shared an ensemble too: a shared time is one value per ensemble,
    # never a pair per member
    for seed in range(6):
        _set(tmp_path / f"rad{seed}", batched="loop", ensemble_size=6, time_shared=True)
    row = paired.paired_comparison(collect_runs([tmp_path]), "rad", "pde", "wall_time_s")
    assert (row.table.iloc[0]["pairs"], row.table.iloc[0]["left_out_time_shared"]) == (0, 6)


def test_a_time_table_keeps_shared_times_apart_from_own_ones(tmp_path):
    for seed in range(4):
        run = _set(_run(tmp_path / f"rs{seed}", 1e-2, seed=seed), wall_time_s=2.0 + seed)
        if seed >= 2:
            _set(run, batched="loop", ensemble_size=2, time_shared=True)
    frame = collect_runs([tmp_path])
    times = mean_std_table(frame, metric="wall_time_s").droplevel("final N")
    assert list(times.index) == ["rsmote (time_shared=False)", "rsmote (time_shared=True)"]
    assert times.loc["rsmote (time_shared=True)", "burgers"].startswith(
        f"{math.sqrt(4.0 * 5.0):.1f} ×/÷ "
    )
    assert list(mean_std_table(frame).droplevel("final N").index) == ["rsmote"]  # errors pool


# ----------------------------------------------------------------------------- non-finite values


def test_an_ok_run_without_a_finite_metric_is_counted_and_named(tmp_path, capsys):
    errors = [1e-2 * (seed + 1) for seed in range(8)]
    for seed, error in enumerate(errors):
        _run(tmp_path / f"rs{seed}", error, seed=seed)
        _run(tmp_path / f"un{seed}", error, sampler="uniform", seed=seed)
    _set(tmp_path / "rs0", l2_rel_error=math.nan)  # a NaN in the record
    _set(tmp_path / "un0", l2_rel_error=math.inf)  # Infinity
    _set(tmp_path / "un1", l2_rel_error=None)  # the runner writes a non-finite value as null
    table = _table(tmp_path)

    def cell(values: list[float], note: str) -> str:
        logs = np.log(values)
        return f"{np.exp(logs.mean()):.2e} ×/÷ {np.exp(logs.std(ddof=1)):.3g} ({note})"

    assert table.loc["rsmote", "burgers"].startswith(cell(errors[1:], "7; 1 not finite"))
    assert table.loc["uniform", "burgers"].startswith(cell(errors[2:], "6; 2 not finite"))
    assert main([str(tmp_path), "--no-plots", "--baseline", "rsmote"]) == 0
    out = capsys.readouterr().out
    assert "3 ok run(s) with a value that is not finite" in out
    text = (tmp_path / "summary.md").read_text()
    section = text.split("## Ok runs without a finite value", 1)[1].split("\n## ", 1)[0]
    for line in ("`rs0`: `l2_rel_error` = NaN", "`un0`: `l2_rel_error` = inf", "`un1`: `l2_"):
        assert line in section, line
    assert "3 ok run(s) left out, as a ratio needs two positive numbers" in text
    # no table prints nan or inf, in the file or on the terminal
    rows = [line for line in (text + out).splitlines() if line.startswith("|")]
    assert rows and not [line for line in rows if re.search(r"\b(nan|inf)\b", line, re.I)]


# ----------------------------------------------------------------------------- scales


def _bounds(cell: str) -> tuple[float, float]:
    low, high = cell.rsplit("[", 1)[1].strip().rstrip("]").split(", ")
    return float(low), float(high)


def test_positive_metrics_get_their_interval_on_the_log_scale(tmp_path):
    """Three errors spread by a factor (the arithmetic t-interval reaches below zero): the
    interval of the geometric mean, exp(mean(log e) ± t(0.975, 2) · s / √3)."""
    errors = [1e-4, 1e-3, 1.5]
    assert np.mean(errors) - 4.302652729749464 * np.std(errors, ddof=1) / math.sqrt(3) < 0
    for seed, error in enumerate(errors):
        _set(
            _run(tmp_path / f"rs{seed}", error, seed=seed),
            wall_time_s=[1.0, 10.0, 100.0][seed],
            peak_cpu_rss_increase_mb=[5.0, 50.0, 500.0][seed],
            concentration=[0.5, 1.0, 4.0][seed],
            my_error=[1.0, 2.0, 3.0][seed],  # a column no registry or record field describes
        )
    frame = collect_runs([tmp_path])
    logs = np.log(errors)
    half = 4.302652729749464 * logs.std(ddof=1) / math.sqrt(3)
    table = mean_std_table(frame, ci=True).droplevel("final N")
    assert table.attrs["scale"] == "log"
    low, high = _bounds(table.loc["rsmote", "burgers"])
    assert (low, high) == pytest.approx(np.exp([logs.mean() - half, logs.mean() + half]), rel=0.05)
    assert low > 0
    for metric, center in (("wall_time_s", "10.0"), ("peak_cpu_rss_increase_mb", "50.0")):
        cell = mean_std_table(frame, metric=metric, ci=True).iloc[0, 0]
        assert cell.startswith(f"{center} ×/÷ 10 (3)") and _bounds(cell)[0] > 0
    for metric in ("concentration", "my_error"):  # the linear scale, by registry, not by name
        table = mean_std_table(frame, metric=metric, ci=True)
        assert table.attrs["scale"] == "linear" and " ± " in table.iloc[0, 0]
    write_summary([tmp_path], plots=False)
    text = (tmp_path / "summary.md").read_text()
    for metric in ("l2_rel_error", "wall_time_s", "peak_cpu_rss_increase_mb"):
        assert f"## `{metric}` (log scale)" in text
    write_summary([tmp_path], metric="concentration", plots=False)
    assert "## `concentration` (linear scale)" in (tmp_path / "summary.md").read_text()


def test_a_positive_metric_with_a_zero_is_linear_and_says_why(tmp_path):
    for seed, error in enumerate([0.0, 1e-3, 2e-3]):
        _run(tmp_path / f"rs{seed}", error, seed=seed)
    table = mean_std_table(collect_runs([tmp_path]), ci=True)
    assert (
        table.attrs["scale"] == "linear"
        and "1 of its values is 0 or below" in (table.attrs["scale_note"])
    )
    write_summary([tmp_path], plots=False)
    assert "this table is on the linear scale" in (tmp_path / "summary.md").read_text()


def test_which_columns_are_positive_comes_from_the_registry_and_the_record():
    from pinn_exp.io import record

    positive = ["l2_rel_error", "max_abs_error", "wall_time_s", "time_train_s", "peak_gpu_mem_mb"]
    assert all(record.is_positive(c) for c in [*positive, "peak_cpu_rss_increase_mb_train"])
    for column in ("concentration", "fluctuation", "n_residual_evals", "seed", "my_error"):
        assert not record.is_positive(column), column
    assert record.is_time("wall_time_s") and not record.is_time("peak_cpu_rss_mb")


# ----------------------------------------------------------------------------- few seeds


def test_two_seeds_say_once_what_they_can_show(tmp_path):
    for sampler, factor in (("rad", 1.0), ("rsmote", 30.0), ("uniform", 80.0)):
        for seed, (error, memory, time) in enumerate([(1e-3, 200.0, 60.0), (7e-3, 30.0, 5.0)]):
            run = _run(tmp_path / f"{sampler}{seed}", factor * error, sampler=sampler, seed=seed)
            _set(run, peak_cpu_rss_increase_mb=memory * factor, wall_time_s=time)
    write_summary([tmp_path], plots=False)
    text = (tmp_path / "summary.md").read_text()
    prose = [line for line in text.splitlines() if line and not line.startswith(("|", "#"))]
    repeated = {line for line in prose if prose.count(line) > 1}
    assert not repeated, repeated
    assert text.count("## What 2 seeds can show") == 1
    section = text.split("## What 2 seeds can show", 1)[1].split("\n## ", 1)[0]
    assert "t = 12.7 at n = 2" in section  # t(0.975, 1) = 12.706
    assert "0.5 with 2 pairs" in section and "fewer than 6 such pairs" in section
    cells = [c for line in text.splitlines() if line.startswith("|") for c in line.split("|")]
    bounds = [_bounds(c) for c in cells if re.search(r"\[[^\]]*, [^\]]*\]", c)]
    assert len(bounds) == 3 * 3 + 2  # three tables of three rows, two paired rows
    assert all(low > 0 for low, _ in bounds)


# ----------------------------------------------------------------------------- review findings


def test_a_report_without_ok_runs_says_so_without_a_traceback(tmp_path, capsys):
    for seed in range(2):  # every job failed (or a sweep was killed before one finished)
        _set(_run(tmp_path / f"rs{seed}", 1e-2, seed=seed), status="failed", l2_rel_error=None)
    assert main([str(tmp_path), "--no-plots"]) == 0
    captured = capsys.readouterr()
    assert "no ok runs (failed: 2)" in captured.out and "Traceback" not in captured.err
    text = (tmp_path / "summary.md").read_text()
    assert text.count("_no ok runs (failed: 2)_") == 3 and "could not build" not in text


def test_a_time_shared_by_an_ensemble_counts_once_per_ensemble(tmp_path):
    """Two ensembles of two members each: one time per ensemble (n = 2, not 4), and no pair of
    times whose run is a member, however the baseline ran."""
    for seed in range(4):
        ensemble = f"e{seed // 2}"
        for sampler in ("rsmote", "rad"):
            _set(
                _run(tmp_path / f"{sampler}{seed}", 1e-2, sampler=sampler, seed=seed),
                wall_time_s=2.0 if ensemble == "e0" else 8.0,
                batched="loop",
                ensemble_size=4,
                time_shared=True,
                ensemble_id=ensemble,
            )
    frame = collect_runs([tmp_path])
    cell = mean_std_table(frame, metric="wall_time_s", ci=True).droplevel("final N")
    cell = cell.loc["rsmote", "burgers"]
    gstd = math.exp(np.std(np.log([2.0, 8.0]), ddof=1))  # of the 2 ensembles' times
    assert cell.startswith(f"{math.sqrt(2.0 * 8.0):.1f} ×/÷ {gstd:.3g} ")
    assert "(2 ensembles)" in cell
    errors = mean_std_table(frame).droplevel("final N").loc["rsmote", "burgers"]
    assert "(4)" in errors  # errors are each run's own
    times = paired.paired_comparison(frame, "rad", metric="wall_time_s")
    row = times.table.iloc[0]
    assert (row["pairs"], row["left_out_time_shared"]) == (0, 4)
    assert any("4 pair(s) left out" in n and "`time_shared`" in n for n in times.notes)
    write_summary([tmp_path], metric="wall_time_s", baseline="rad", plots=False)
    assert "counted once per ensemble (`ensemble_id`)" in (tmp_path / "summary.md").read_text()


def test_values_that_are_not_numbers_are_counted_and_named(tmp_path):
    errors = [1e-2 * (seed + 1) for seed in range(4)]
    for seed, error in enumerate(errors):
        _set(_run(tmp_path / f"rs{seed}", error, seed=seed), wall_time_s=2.0)
    _set(tmp_path / "rs0", l2_rel_error="abc")
    _set(tmp_path / "rs1", wall_time_s=True, l2_rel_error_per_round=[math.inf, errors[1]])
    _set(tmp_path / "rs2", l2_rel_error_per_round=[None, errors[2]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = collect_runs([tmp_path], relative_to=tmp_path)
        text = summary_module.summary_markdown(frame)
    table = mean_std_table(frame).droplevel("final N")
    assert "(3; 1 not finite)" in table.loc["rsmote", "burgers"]
    times = mean_std_table(frame, metric="wall_time_s").droplevel("final N")
    assert times.loc["rsmote", "burgers"].startswith("2.0 ×/÷ 1 (3; 1 not finite)")  # not 1.0
    section = text.split("## Ok runs without a finite value", 1)[1].split("\n## ", 1)[0]
    for line in (
        '`rs0`: `l2_rel_error` = "abc"',
        "`rs1`: `wall_time_s` = true, `l2_rel_error_per_round[0]` = inf",
        "`rs2`: `l2_rel_error_per_round[0]` = NaN",
    ):
        assert line in section, line


def test_a_metric_without_a_better_direction_is_described_neutrally(tmp_path):
    for seed in range(3):
        _set(_run(tmp_path / f"rs{seed}", 1e-2, seed=seed), concentration=3.0)
        _set(_run(tmp_path / f"rad{seed}", 1e-2, sampler="rad", seed=seed), concentration=2.0)
    assert registry.METRICS["concentration"].better is None
    write_summary([tmp_path], metric="concentration", baseline="rad", plots=False)
    section = (tmp_path / "summary.md").read_text().split("## Paired comparison", 1)[1]
    assert "below 1 the sampler is better" not in section and "| wins |" not in section
    assert "has no better direction" in section and "| below 1 |" in section
    write_summary([tmp_path], baseline="rad", plots=False)  # errors: lower is better
    assert "below 1 the sampler is better" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--rows", "bogus"], ("--rows bogus", "no run has a column named bogus")),
        (["--cols", "pde,bogus"], ("--cols pde,bogus", "bogus")),
        (["--metric", "status"], ("--metric status", "not a numeric column", "l2_rel_error")),
    ],
)
def test_unknown_rows_and_a_non_numeric_metric_are_refused(tmp_path, capsys, args, words):
    for seed in range(2):
        _run(tmp_path / f"rs{seed}", 1e-2, seed=seed)
    assert main([str(tmp_path), "--no-plots", *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and all(w in err for w in words), err
    assert not (tmp_path / "summary.md").exists()


def test_the_floor_of_one_pair_reads_as_a_sentence(tmp_path):
    _run(tmp_path / "rs0", 1e-2, seed=0)
    _run(tmp_path / "rad0", 2e-2, sampler="rad", seed=0)
    write_summary([tmp_path], baseline="rad", plots=False)
    text = (tmp_path / "summary.md").read_text()
    assert "at 1 pairs" not in text and "(here the smallest p is 1 with 1 pair)" in text
