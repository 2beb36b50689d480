"""The benchmark scripts run end to end at tiny sizes and write the rows their docs promise."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from support import ROOT, patient


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=patient(300),
        cwd=ROOT,
    )


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_laplacian_benchmark_writes_one_row_per_method_and_dim(tmp_path):
    out = tmp_path / "lap.json"
    result = _run(
        "laplacian.py",
        "--dims",
        "3",
        "5",
        "--n-points",
        "20",
        "--device",
        "cpu",
        "--width",
        "8",
        "--depth",
        "2",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--methods",
        "autograd",
        "forward",
        "hutchinson",
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert [(r["method"], r["dim"]) for r in rows] == [
        (m, d) for d in (3, 5) for m in ("autograd", "forward", "hutchinson")
    ]
    for r in rows:
        assert {
            "method",
            "dim",
            "n_points",
            "device",
            "time_s",
            "peak_mem_mb",
            "stochastic",
        } <= set(r)
        assert r["n_points"] == 20 and r["device"] == "cpu" and r["time_s"] > 0
        assert r["stochastic"] == (r["method"] == "hutchinson")
    assert "time / autograd" in result.stdout  # the table with ratios


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_memory_phases_benchmark_records_each_sampler(tmp_path):
    out = tmp_path / "mem.json"
    result = _run(
        "memory_phases.py",
        "--dims",
        "3",
        "--n-points",
        "50",
        "--n-dense",
        "200",
        "--chunk-sizes",
        "64",
        "128",
        "--device",
        "cpu",
        "--width",
        "8",
        "--depth",
        "2",
        "--steps",
        "2",
        "--lbfgs",
        "1",
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert [(r["sampler"], r["chunk_size"]) for r in rows] == [
        ("rsmote", None),
        ("rad", None),
        ("rad", 64),
        ("rad", 128),
    ]
    assert all(r["status"] == "ok" and r["time_sampling_s"] is not None for r in rows)


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_shock_concentration_counts_points_in_the_region():
    result = _run(
        "shock_concentration.py",
        "--seeds",
        "0",
        "--",
        "sampler=uniform",
        "n_points=200",
        "rounds=1",
        "optimizer.pretrain_steps=2",
        "optimizer.lbfgs_steps=1",
    )
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout.splitlines()[0])
    assert row["seed"] == 0 and len(row["errors"]) == 2
    assert 0 <= row["n_shock"] <= row["n_center_any_t"] <= 200


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_shock_location_reads_the_runs_points_and_residual_maps(tmp_path, compose, tiny):
    from pinn_exp import runner
    from pinn_exp.factory import build

    run = tmp_path / "run"
    assert runner.run(build(compose(tiny)), run, progress=False)["status"] == "ok"
    # put every final point in the formed shock: enrichment = 1 / its share of the domain
    with np.load(run / "collocation.npz") as data:
        points = {k: data[k] for k in data.files}
    points["round_2"][:, 0] = 0.0
    points["round_2"][:, 1] = 0.5
    np.savez(run / "collocation.npz", **points)
    out = tmp_path / "rows.json"
    result = _run("shock_location.py", str(run), "--json", str(out))
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert rows[2]["points in formed shock / uniform"] == pytest.approx(1 / 0.03)
    assert rows[2]["points in formation zone / uniform"] == 0.0
    for r in rows:
        assert 0 <= r["top-5% residual in formed shock"] <= 1


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_throughput_benchmark_times_each_phase_per_variant(tmp_path):
    out = tmp_path / "tp.json"
    result = _run(
        "throughput.py",
        "--adam",
        "3",
        "--lbfgs",
        "4",
        "--warmup",
        "1",
        "--updates",
        "1",
        "--evals",
        "1",
        "--variants",
        "baseline,device",
        "--json",
        str(out),
        "--",
        "n_points=100",
        "model.width=8",
        "model.depth=1",
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert [(r["variant"], r["phase"]) for r in rows] == [
        (v, p) for v in ("baseline", "device") for p in ("adam", "lbfgs", "sampling", "evaluation")
    ]
    for r in rows:
        assert {"device", "torch", "threads", "n_points", "params", "ms_per_step"} <= set(r)
        assert r["n_points"] == 100 and r["params"] == 2 * 8 + 8 + 8 + 1 and r["seconds"] > 0
    lbfgs = [r for r in rows if r["phase"] == "lbfgs"]
    assert all(1 <= r["steps"] <= 4 and r["evaluations"] >= r["steps"] for r in lbfgs)
    assert "x first" in result.stdout


@pytest.mark.slow  # end-to-end and minutes long: `pytest -m slow` (run by .ci/run)
def test_throughput_benchmark_whole_run_reports_time_and_error(tmp_path):
    out = tmp_path / "run.json"
    result = _run(
        "throughput.py",
        "--whole-run",
        "--variants",
        "forward",
        "--json",
        str(out),
        "--",
        "n_points=100",
        "optimizer.pretrain_steps=5",
        "optimizer.lbfgs_steps=3",
        "rounds=1",
    )
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(out.read_text())
    assert row["status"] == "ok" and 0 < row["l2_rel_error"] < 2
    assert row["adam_steps"] == 5 and 1 <= row["lbfgs_iterations"] <= 6
    assert row["wall_time_s"] >= row["time_train_s"] > 0


def test_table_projection_costs_each_budget_from_the_measured_steps(tmp_path):
    """benchmarks/project_table.py: a table's runs from its sweep (burgers_table: 7 samplers
    × 2 N × 5 seeds), a run's steps from the budget's config, and hours = runs × steps × ms."""
    rows = [
        {"size": s, "mode": m, "phase": p, "ms_per_step_per_member": ms}
        for s, m, p, ms in [
            (1, "single", "adam", 10.0),
            (1, "single", "lbfgs", 20.0),
            (4, "loop", "adam", 8.0),
            (4, "loop", "lbfgs", 16.0),
            (4, "vmap", "adam", 2.0),
            (4, "vmap", "lbfgs", 5.0),
        ]
    ]
    measured = tmp_path / "ens.json"
    measured.write_text(json.dumps({"meta": {"device": "test"}, "rows": rows}))
    out = tmp_path / "projection.json"
    result = _run("project_table.py", str(measured), "--size", "4", "--json", str(out))
    assert result.returncode == 0, result.stderr
    got = {(r["budget"], r["mode"]): r for r in json.loads(out.read_text())["rows"]}
    assert len(got) == 9 and {r["runs"] for r in got.values()} == {70}
    paper = got[("paper", "vmap")]
    # budget=paper: 15,000 + 10 × 1,000 Adam steps, up to 11 × 1,000 L-BFGS iterations
    assert (paper["adam_steps"], paper["lbfgs_steps_max"]) == (25_000, 11_000)
    assert paper["hours_per_table"] == pytest.approx(70 * (25_000 * 2.0 + 11_000 * 5.0) / 3.6e6)
    assert got[("short", "single")]["hours_per_run"] < got[("reference", "single")]["hours_per_run"]
    refused = _run("project_table.py", str(measured), "--size", "8")
    assert refused.returncode == 2 and "--size 8 was not measured" in refused.stderr


@pytest.mark.slow  # end-to-end: `pytest -m slow` (run by .ci/run)
def test_bookkeeping_breakdown_adds_up_to_the_run(tmp_path):
    out = tmp_path / "bk.json"
    result = _run("bookkeeping.py", "--jobs", "smoke", "--json", str(out), "--", "rounds=1")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(out.read_text())
    assert row["job"] == "smoke" and row["status"] == "ok"
    assert not row["matplotlib_imported_at_startup"]
    components = {r["component"] for r in row["rows"]}
    assert {"steps", "sampler", "metric_l2_rel_error", "plot_solution", "checkpoint"} <= components
    # exclusive times: the components and the untimed rest make up the run
    assert sum(r["seconds"] for r in row["rows"]) == pytest.approx(row["run_s"])
    assert sum(r["share"] for r in row["rows"]) == pytest.approx(1.0)
    assert {r["round"] for r in row["rows"]} >= {"0", "1", "files"}
    assert 0 < row["bookkeeping_share"] < 1
    assert sum(r["cpu_share"] for r in row["rows"]) == pytest.approx(1.0)


@pytest.mark.slow  # end-to-end: `pytest -m slow` (run by .ci/run)
def test_default_job_repeats_cases_and_gives_medians(tmp_path):
    out = tmp_path / "rows.json"
    tiny = ["optimizer.pretrain_steps=5", "optimizer.lbfgs_steps=2", "rounds=1", "n_points=100"]
    cases = ["--job", "short", "--cases", "new,eager", "--pairs", "2"]
    result = _run("default_job.py", *cases, "--json", str(out), "--", *tiny)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert [(r["case"], r["repetition"]) for r in rows] == [
        ("new", 0),
        ("eager", 0),
        ("new", 1),
        ("eager", 1),
    ]
    assert all("optimizer.pretrain_steps=1000" in r["command"] for r in rows)  # the short job
    assert "median_wall_s" in result.stdout and "x_speed" in result.stdout


def test_lbfgs_accuracy_curves_start_from_one_network_and_agree_with_torch(tmp_path):
    """benchmarks/lbfgs_accuracy.py curves: both L-BFGS from the same pretrained network, in
    float64: the same start, and the device one's losses torch's for the first evaluations."""
    out = tmp_path / "curves.json"
    tiny = ["optimizer.pretrain_steps=30", "n_points=200", "model.width=16"]
    args = ["curves", "--pdes", "burgers", "--iterations", "20", "--json", str(out), "--", *tiny]
    result = _run("lbfgs_accuracy.py", *args)
    assert result.returncode == 0, result.stderr
    torch_row, device_row = json.loads(out.read_text())["rows"]
    assert (torch_row["lbfgs_impl"], device_row["lbfgs_impl"]) == ("torch", "device")
    assert torch_row["loss_start"] == device_row["loss_start"]
    assert torch_row["iterations"] == device_row["iterations"] == 20
    assert device_row["agrees_with_torch_until"] >= 10
    assert device_row["loss_final"] < device_row["loss_start"]
    assert device_row["lowest_loss_evaluated"] <= device_row["loss_final"]


def test_lbfgs_accuracy_directions_measure_both_against_float64(tmp_path):
    """benchmarks/lbfgs_accuracy.py directions: the direction from torch's own history by the
    two-loop recursion and by the device L-BFGS's History; in float64 both are the float64
    reference to round-off, in float32 to float32's."""
    tiny = ["optimizer.pretrain_steps=30", "n_points=200", "model.width=16"]
    for dtype, bound in (("float64", 1e-10), ("float32", 1e-2)):
        out = tmp_path / f"{dtype}.json"
        args = ["directions", "--pdes", "burgers", "--iterations", "40", "--dtype", dtype]
        result = _run("lbfgs_accuracy.py", *args, "--json", str(out), "--", *tiny)
        assert result.returncode == 0, result.stderr
        (row,) = json.loads(out.read_text())["rows"]
        assert (row["iteration"], row["pairs"], row["dtype"]) == (40, 39, dtype)
        for key in ("rel_error_two_loop", "rel_error_device"):
            assert 0 <= row[key] < bound, (dtype, key, row[key])
        if dtype == "float32":  # float32's round-off is there
            assert max(row["rel_error_two_loop"], row["rel_error_device"]) > 1e-9


def test_lbfgs_accuracy_seeds_pairs_the_runs_by_seed(tmp_path):
    """benchmarks/lbfgs_accuracy.py seeds: whole runs of both L-BFGS per seed, paired, with
    the report's statistics of the error ratios."""
    out = tmp_path / "seeds.json"
    tiny = ["optimizer.pretrain_steps=5", "optimizer.lbfgs_steps=5", "rounds=0", "n_points=100"]
    args = ["seeds", "--seeds", "0-1", "--pdes", "burgers", "--json", str(out), "--", *tiny]
    result = _run("lbfgs_accuracy.py", *args)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert {(r["lbfgs_impl"], r["seed"], r["status"]) for r in data["rows"]} == {
        (impl, seed, "ok") for impl in ("torch", "device") for seed in (0, 1)
    }
    (summary,) = data["summary"]
    by = {(r["lbfgs_impl"], r["seed"]): r["l2_rel_error"] for r in data["rows"]}
    expected = [by[("device", s)] / by[("torch", s)] for s in (0, 1)]
    assert summary["pairs"] == 2 and summary["ratios"] == pytest.approx(expected)
    assert summary["failed_runs"] == []
    assert summary["ci95"][0] <= summary["geometric_mean_ratio"] <= summary["ci95"][1]
    # a study grows by seeds: the earlier rows are pooled, their seeds not run again
    grown = tmp_path / "grown.json"
    args = ["seeds", "--seeds", "1-2", "--pdes", "burgers", "--with", str(out)]
    result = _run("lbfgs_accuracy.py", *args, "--json", str(grown), "--", *tiny)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("seed 1 ") == 0 and result.stdout.count("seed 2 ") == 2
    pooled = json.loads(grown.read_text())
    assert sorted((r["seed"], r["lbfgs_impl"]) for r in pooled["rows"]) == sorted(
        (seed, impl) for seed in (0, 1, 2) for impl in ("torch", "device")
    )
    assert pooled["rows"][0] == {"date": data["date"], **data["rows"][0]}
    assert all(r["commit"] for r in pooled["rows"] if r["seed"] == 2)
    assert pooled["summary"][0]["pairs"] == 3 and pooled["pooled_with"] == str(out)
    # pairs of another job, or rows that are not a seeds result, are not pooled
    refused = _run("lbfgs_accuracy.py", *args, "--", *tiny, "rounds=1")
    assert refused.returncode != 0 and "cannot be pooled" in refused.stderr
    (tmp_path / "other.json").write_text(json.dumps({"rows": [{"pde": "burgers"}]}))
    args[-1] = str(tmp_path / "other.json")
    refused = _run("lbfgs_accuracy.py", *args, "--", *tiny)
    assert refused.returncode != 0 and "not the --json of a `seeds` run" in refused.stderr
