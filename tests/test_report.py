"""Checks of the report: fake run folders with known numbers -> tables, listings, plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from support import patient

from pinn_exp.report import tables
from pinn_exp.report.__main__ import main
from pinn_exp.report.runs import collect_runs
from pinn_exp.report.summary import write_summary
from pinn_exp.report.tables import mean_std_table

# (name, pde dim, sampler, ratio, seed, status, error value, gpu memory)
RUNS = [
    ("u2s0", 2, "uniform", None, 0, "ok", 1.0e-2, 110.0),
    ("u2s1", 2, "uniform", None, 1, "ok", 2.0e-2, 112.0),
    ("u2s2", 2, "uniform", None, 2, "ok", 1.5e-2, 111.0),
    ("r2s0", 2, "rsmote", 0.3, 0, "ok", 5.0e-3, 150.0),
    ("r2s1", 2, "rsmote", 0.3, 1, "ok", 6.0e-3, 155.0),
    ("r2s2", 2, "rsmote", 0.3, 2, "ok", 4.0e-3, 152.0),
    ("r2l6s0", 2, "rsmote", 0.6, 0, "ok", 8.0e-3, 180.0),
    ("r2l6s1", 2, "rsmote", 0.6, 1, "ok", 9.0e-3, 185.0),
    ("u5s0", 5, "uniform", None, 0, "ok", 3.0e-2, 300.0),
    ("r5s0", 5, "rsmote", 0.3, 0, "oom", None, None),
    ("u2s3", 2, "uniform", None, 3, "failed", None, 90.0),
]
INCOMPLETE = ("r2s4", 2, "rsmote", 0.3, 4)
CORRUPT = ("u2s4", 2, "uniform", None, 4)
ERRORS = {"u2s3": "RuntimeError: boom in training", "r5s0": "CUDA out of memory"}


def _config(dim: int, sampler: str, ratio, seed: int) -> dict:
    return {
        "pde": {"_target_": "pinn_exp.pdes.poisson.Poisson", "dim": dim},
        "sampler": {
            "_target_": f"pinn_exp.samplers.{sampler}.{sampler.title()}",
            "ratio": ratio,
            "n_dense": 100,
        },
        "seed": seed,
        "n_points": 500,
        "optimizer": {"adam_steps": 10},
        "model": {"layers": [20, 20]},
    }


def _metrics(dim, sampler, ratio, seed, status, error, memory, name) -> dict:
    per_round = [] if error is None else [2 * error, 1.5 * error, error]
    return {
        "status": status,
        "error": ERRORS.get(name),
        "pde": "poisson",
        "sampler": sampler,
        "dim": dim,
        "n_points": 500,
        "ratio": ratio,
        "seed": seed,
        "device": "cuda",
        "dtype": "float32",
        "l2_rel_error": error,
        "l2_rel_error_per_round": per_round,
        "peak_gpu_mem_mb": memory,
        "peak_gpu_mem_mb_train": memory,
        "peak_gpu_mem_mb_sampling": None,
        "peak_cpu_rss_mb": 500.0,
        "wall_time_s": 10.0 + seed,
        "time_train_s": 8.0,
        "time_sampling_s": 1.0,
        "n_residual_evals": 1000,
        "versions": {"torch": "2.3"},
        "overrides": [f"sampler={sampler}"],
        "round_stats": [{"n": 1}],
        "phase": "done",
    }


def _write_run(folder: Path, config: dict, metrics_text: str | None) -> None:
    folder.mkdir(parents=True)
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "config_resolved.yaml").write_text(yaml.safe_dump(config))
    (folder / ".metrics.json.abc.tmp").write_text("{half")  # a hidden temp file
    if metrics_text is not None:
        (folder / "metrics.json").write_text(metrics_text)


def _build_sweep(root: Path) -> Path:
    sweep = root / "sweep"
    for i, (name, dim, sampler, ratio, seed, status, error, memory) in enumerate(RUNS):
        folder = sweep / "multirun" / f"{i:02d}_{name}"
        record = _metrics(dim, sampler, ratio, seed, status, error, memory, name)
        _write_run(folder, _config(dim, sampler, ratio, seed), json.dumps(record))
        if name in ("u2s0", "r2s0"):
            rng = np.random.default_rng(seed)
            np.savez(
                folder / "collocation.npz",
                round_0=rng.random((50, dim)),
                round_1=rng.random((60, dim)),
            )
    name, dim, sampler, ratio, seed = INCOMPLETE
    folder = sweep / "multirun" / f"90_{name}"
    _write_run(folder, _config(dim, sampler, ratio, seed), None)
    choices = {"hydra": {"runtime": {"choices": {"sampler": "rsmote", "pde": "poisson"}}}}
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(choices))
    name, dim, sampler, ratio, seed = CORRUPT
    _write_run(sweep / "multirun" / f"91_{name}", _config(dim, sampler, ratio, seed), "{not js")
    return sweep


def _expected_cell(values: list[float]) -> str:
    """An error's cell on the log scale: geometric mean ×/÷ geometric std (n)."""
    logs = np.log(values)
    spread = f"{np.exp(logs.std(ddof=1)):.3g}" if len(logs) > 1 else "n/a"
    return f"{np.exp(logs.mean()):.2e} ×/÷ {spread} ({len(logs)})"


def _errors(sampler: str, dim: int | None = None) -> list[float]:
    return [r[6] for r in RUNS if r[2] == sampler and r[5] == "ok" and (dim is None or r[1] == dim)]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return _build_sweep(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def summary(sweep) -> pd.DataFrame:
    """The default report of the sweep, with plots."""
    return write_summary([sweep])


def test_csv_lists_every_run_including_incomplete(sweep, summary):
    csv = pd.read_csv(sweep / "summary.csv")
    assert len(csv) == len(RUNS) + 2  # .hydra folders and temp files are not runs
    status = csv.set_index(csv["run_dir"].map(lambda p: Path(p).name.split("_", 1)[1]))["status"]
    assert status["r2s4"] == "incomplete" and status["u2s4"] == "incomplete"
    assert status["u2s3"] == "failed" and status["r5s0"] == "oom"
    assert (status == "ok").sum() == sum(r[5] == "ok" for r in RUNS)
    assert list(csv.columns[:3]) == ["run_dir", "status", "error"]
    for column in ("pde.dim", "sampler.ratio", "sampler.n_dense", "optimizer.adam_steps"):
        assert column in csv.columns
    assert not any("_target_" in c for c in csv.columns)
    assert not {"versions", "round_stats", "overrides"} & set(csv.columns)
    assert all(not Path(p).is_absolute() for p in csv["run_dir"])
    incomplete = csv[csv["run_dir"].str.endswith("r2s4")].iloc[0]
    assert incomplete["pde.dim"] == 2 and incomplete["seed"] == 4 and incomplete["dim"] == 2
    assert incomplete["sampler"] == "rsmote" and incomplete["pde"] == "poisson"  # Hydra choices
    corrupt = csv[csv["run_dir"].str.endswith("u2s4")].iloc[0]
    assert corrupt["sampler"] == "uniform"  # guessed from the _target_ class


def test_markdown_mean_std_matches_numpy(sweep, summary):
    text = (sweep / "summary.md").read_text()
    assert "ddof=1" in text
    assert "ok: 9, failed: 1, oom: 1, incomplete: 2" in text
    # a cell pools runs that differ in seed alone: lambda and the dimension label the rows
    for sampler, key, value in [
        ("rsmote", "sampler.ratio", 0.3),
        ("rsmote", "sampler.ratio", 0.6),
        ("uniform", "pde.dim", 2),
    ]:
        head = f"| {sampler} ({key}={value}) |"
        row = next(line for line in text.splitlines() if line.startswith(head))
        index = 3 if key == "sampler.ratio" else 1
        errors = [r[6] for r in RUNS if r[2] == sampler and r[5] == "ok" and r[index] == value]
        assert _expected_cell(errors) in row
    assert "## `peak_gpu_mem_mb`" in text and "## `wall_time_s`" in text


def test_failed_runs_are_listed(sweep, summary):
    text = (sweep / "summary.md").read_text()
    failures = text.split("## Runs that did not finish ok", 1)[1]
    assert "u2s3`: **failed**: RuntimeError: boom in training" in failures
    assert "r5s0`: **oom**: CUDA out of memory" in failures
    assert "r2s4`: **incomplete**" in failures
    assert "u2s4`: **incomplete**: unreadable metrics.json" in failures


def test_grouping_by_config_columns(sweep):
    frame = collect_runs([sweep])
    table = mean_std_table(frame, "sampler,sampler.ratio", "pde.dim", "l2_rel_error")
    assert list(table.columns) == [2, 5]
    assert table.index.names == ["sampler", "sampler.ratio", "final N"]
    table = table.droplevel("final N")
    assert table.loc[("uniform", "none"), 2] == _expected_cell(_errors("uniform", 2))
    assert table.loc[("uniform", "none"), 5] == _expected_cell([3e-2])
    assert table.loc[("rsmote", 0.3), 5] == "-"  # the only dim-5 rsmote run ran out of memory
    multi = mean_std_table(frame, "sampler,sampler.ratio", "pde", "l2_rel_error")
    multi = multi.droplevel("final N")
    expected = [r[6] for r in RUNS if r[2] == "rsmote" and r[3] == 0.6]
    assert multi.loc[("rsmote", 0.6), "poisson"] == _expected_cell(expected)
    # uniform ran at two dimensions: not pooled, the dimension labels the rows
    assert multi.loc[("uniform", "none (pde.dim=2)"), "poisson"] == _expected_cell(
        _errors("uniform", 2)
    )
    assert multi.loc[("uniform", "none (pde.dim=5)"), "poisson"] == _expected_cell([3e-2])


def test_plots_written_when_data_supports_them(sweep, summary):
    for name in (
        "error_per_round.png",
        "error_vs_lambda.png",
        "memory_vs_lambda.png",
        "memory_vs_dim.png",
        "points_by_sampler.png",
    ):
        assert (sweep / name).stat().st_size > 0, name
    assert not list(sweep.glob(".*.tmp"))


def test_plots_skipped_without_data(tmp_path):
    name, dim, sampler, ratio, seed, status, error, memory = RUNS[0]
    record = _metrics(dim, sampler, ratio, seed, status, error, memory, name)
    _write_run(tmp_path / "runs" / "a", _config(dim, sampler, ratio, seed), json.dumps(record))
    write_summary([tmp_path / "runs"], tmp_path / "out")
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert written == {"summary.csv", "summary.md", "error_per_round.png"}


def test_main_cols_dim_latex_and_exit_codes(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(sweep), "--cols", "pde.dim", "--latex", "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert str(out / "summary.md") in printed
    lambda_03 = [r[6] for r in RUNS if r[2] == "rsmote" and r[3] == 0.3 and r[5] == "ok"]
    assert f"| rsmote (sampler.ratio=0.3) | 60 | {_expected_cell(lambda_03)}" in printed
    assert _expected_cell(lambda_03) in (out / "summary.md").read_text()
    tex = (out / "summary.tex").read_text()
    assert r"\times/\div" in tex and "rsmote" in tex
    assert not list(out.glob("*.png"))
    csv = pd.read_csv(out / "summary.csv")
    assert all(p.startswith("..") for p in csv["run_dir"])  # relative to the output folder
    assert main([str(tmp_path / "does_not_exist")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_no_runs_found(tmp_path):
    frame = write_summary([tmp_path])
    assert frame.empty
    assert "no runs found" in (tmp_path / "summary.md").read_text()
    header = (tmp_path / "summary.csv").read_text().splitlines()
    assert header[0].startswith("run_dir,status,")


def _fake_run(folder: Path, seed: int, error: float) -> None:
    folder.mkdir(parents=True)
    record = {
        "status": "ok",
        "pde": "burgers",
        "sampler": "rad",
        "seed": seed,
        "l2_rel_error": error,
    }
    (folder / "metrics.json").write_text(json.dumps(record))
    (folder / "config_resolved.yaml").write_text(f"seed: {seed}\nn_points: 200\n")


def test_report_refuses_an_empty_out_or_dir(tmp_path, capsys, monkeypatch):
    _fake_run(tmp_path / "runs" / "a", 0, 0.1)
    monkeypatch.chdir(tmp_path)
    assert main([str(tmp_path / "runs"), "--out", "", "--no-plots"]) == 2
    assert main(["", "--no-plots"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    said = "is empty: give the folder by name ('.' for the current one)"
    assert err == [f"error: --out {said}", f"error: DIR {said}"]
    assert not list(tmp_path.glob("summary*"))  # nothing written into the current folder


def test_report_refuses_a_metric_no_run_records(tmp_path, capsys):
    _fake_run(tmp_path / "a", 0, 0.1)
    _fake_run(tmp_path / "b", 1, 0.2)
    assert main([str(tmp_path), "--metric", "l2_rel_eror", "--no-plots"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean l2_rel_error" in err[0]
    assert not (tmp_path / "summary.md").exists()
    assert main([str(tmp_path), "--no-plots"]) == 0
    assert (tmp_path / "summary.md").exists()
    (tmp_path / "summary.md").unlink()


def test_bad_config_and_odd_metrics_do_not_crash(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config_resolved.yaml").write_text("pde: [unclosed\n")
    (run / "metrics.json").write_text(json.dumps({"status": "ok", "l2_rel_error": "oops"}))
    (tmp_path / "s" / ".hydra").mkdir(parents=True)
    (tmp_path / "s" / ".hydra" / "config.yaml").write_text("seed: 3\npde: {dim: 4}\n")
    frame = write_summary([tmp_path])
    assert sorted(frame["status"]) == ["incomplete", "ok"]
    assert frame.loc[frame["status"] == "incomplete", "dim"].iloc[0] == 4


def test_latex_without_jinja2(monkeypatch):
    frame = pd.DataFrame(
        {
            "status": ["ok", "ok"],
            "sampler": ["a_b", "a_b"],
            "pde": ["p", "p"],
            "l2_rel_error": [1e-2, 4e-2],
            "concentration": [1.0, 3.0],
        }
    )
    table = mean_std_table(frame, "sampler", "pde", "l2_rel_error")
    linear = mean_std_table(frame, "sampler", "pde", "concentration")

    def no_jinja(*args, **kwargs):
        raise ImportError("jinja2")

    monkeypatch.setattr(pd.DataFrame, "to_latex", no_jinja)
    tex = tables.to_latex(table)
    assert r"\begin{tabular}" in tex and r"a\_b" in tex
    # geometric mean 2e-2, geometric std exp(ln(4) / sqrt(2)) = 2.665
    assert r"2.00e-02 $\times/\div$ 2.67 (2)" in tex
    assert r"2.0 $\pm$ 1.4 (2)" in tables.to_latex(linear)


def test_summary_rows_add_the_swept_keys():
    from pinn_exp.sweep import summary_rows

    assert summary_rows("sampler", "pde", ["sampler.ratio", "seed"]) == "sampler,sampler.ratio"
    assert summary_rows("sampler.ratio", "n_points", ["sampler.ratio"]) == "sampler.ratio"
    assert summary_rows("sampler", "pde.dim", ["pde.dim"]) == "sampler"


def test_points_by_sampler_says_which_seed_it_shows(sweep, summary):
    from pinn_exp.report.plots import plot_points_by_sampler

    frame = collect_runs([sweep])
    fig = plot_points_by_sampler(frame, sweep)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) >= 2
    ok = frame[frame["status"] == "ok"]
    for title in titles:
        sampler, rest = title.split(", seed ", 1)
        name, _, settings = sampler.partition(" (")
        mine = ok["sampler"] == name
        for pair in filter(None, settings.rstrip(")").split(", ")):  # a panel per setting
            key, value = pair.split("=")
            mine &= ok[key] == float(value)
        lowest = int(ok.loc[mine, "seed"].min())
        assert rest.startswith(f"{lowest}:"), title
    assert "lowest seed" in fig._suptitle.get_text()


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_jobs_that_never_started_are_listed_as_incomplete(tmp_path, root, tiny):
    """A sweep killed after its first job: the report lists the three jobs that never ran."""
    import shutil
    import subprocess
    import sys

    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "run.py"),
            "-m",
            *tiny,
            "rounds=1",
            "sampler=uniform,rad",
            "seed=0,1",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=patient(600),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for job in sorted(sweep.glob("[1-3]_*")):
        shutil.rmtree(job)  # as if the sweep had died after job 0
    frame = collect_runs([sweep])
    assert len(frame) == 4
    missing = frame[frame["run_dir"].str.endswith("(not started)")]
    assert sorted(missing["status"]) == ["incomplete"] * 3
    assert sorted(zip(missing["sampler"], missing["seed"])) == [
        ("rad", 0),
        ("rad", 1),
        ("uniform", 1),
    ]
    assert all(e.startswith("not started: ") and " sampler=" in e for e in missing["error"])


def test_sweep_plots_name_the_metric_and_memory_in_mib(sweep, summary):
    from pinn_exp.report.plots import plot_error_vs_lambda, plot_memory_vs_lambda

    frame = collect_runs([sweep])
    error = plot_error_vs_lambda(frame, sweep)
    assert error.axes[0].get_ylabel() == "relative L2 error"
    memory = plot_memory_vs_lambda(frame, sweep)
    assert memory.axes[0].get_ylabel().endswith("[MiB]")


def test_points_by_sampler_keeps_its_title_inside_a_single_panel(sweep, summary):
    from pinn_exp.report.plots import plot_points_by_sampler

    frame = collect_runs([sweep])
    one = frame[frame["sampler"] == "uniform"]
    fig = plot_points_by_sampler(one, sweep)
    assert len(fig.axes) == 1
    fig.canvas.draw()
    title = fig._suptitle.get_window_extent(renderer=fig.canvas.get_renderer())
    frame_box = fig.bbox
    assert title.x0 >= frame_box.x0 and title.x1 <= frame_box.x1
