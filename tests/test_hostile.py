"""Regression tests for defects found by attacking the guard, the command line, the report
and RAD's density: each test reproduces one defect and passes with its fix (in-process)."""

from __future__ import annotations

import json
import math
import os
import resource
from pathlib import Path

import pytest
import torch

from pinn_exp import guard
from pinn_exp.hydra_adapter import unknown_key_line
from pinn_exp.io.storage import save_checkpoint
from pinn_exp.report.__main__ import main as report_main
from pinn_exp.report.pairing import compare_pairs
from pinn_exp.report.stats import wilcoxon_p
from pinn_exp.samplers.rad import rad_log_weights, rad_probabilities
from pinn_exp.sweep import SWEEP_CLAIM


# ------------------------------------------------------------------ nesting of runs and sweeps
def _sweep(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / SWEEP_CLAIM).write_text("pid 1\n")
    return folder


def _run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text('{"status": "ok"}')
    return folder


def test_run_through_a_link_into_a_sweep_is_refused(tmp_path):
    sweep = _sweep(tmp_path / "sweep")
    (sweep / "empty").mkdir()
    (tmp_path / "link").symlink_to(sweep / "empty")
    with pytest.raises(guard.Refused, match="sweep's directory"):
        guard.check_not_in_sweep(tmp_path / "link")


def test_run_below_a_sweeps_job_is_refused(tmp_path):
    sweep = _sweep(tmp_path / "sweep")
    with pytest.raises(guard.Refused, match=f"inside a sweep's directory \\({sweep}\\)"):
        guard.check_not_in_sweep(sweep / "0_burgers_rsmote" / "sub")


def test_sweep_deep_inside_a_run_is_refused(tmp_path):
    run = _run(tmp_path / "run")
    with pytest.raises(guard.Refused, match="inside a run's directory"):
        guard.check_not_in_run(run / "x" / "y")


def test_sweep_inside_another_sweep_is_refused_but_resuming_itself_is_not(tmp_path):
    sweep = _sweep(tmp_path / "sweep")
    with pytest.raises(guard.Refused, match="inside another sweep's directory"):
        guard.check_sweep_not_in_sweep(sweep / "inner")
    guard.check_sweep_not_in_sweep(sweep)  # a resumed sweep is its own sweep directory


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


# ---------------------------------------------------------------------------------- resume
def test_resume_without_any_recorded_config_is_refused(tmp_path):
    snapshot = {key: {} for key in guard.CHECKPOINT_KEYS}
    snapshot["state"] = {"round_index": 1}  # an older checkpoint: no "config" in it
    torch.save(snapshot, tmp_path / "checkpoint.pt")
    with pytest.raises(guard.Refused, match="neither config_resolved.yaml nor checkpoint.pt"):
        guard.check_resume(tmp_path, {"seed": 5, "rounds": 3, "resume": True})


# ------------------------------------------------------------------------------ full disk
def test_checkpoint_write_on_a_full_disk_raises_the_os_error(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    big = {"weights": torch.zeros(64 * 1024)}  # 256 KiB, over the limit below
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, hard))
    try:
        with pytest.raises(OSError):  # not torch's opaque RuntimeError
            save_checkpoint(tmp_path / "checkpoint.pt", big)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert not (tmp_path / "checkpoint.pt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------- unknown keys (no +)
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("sampler.ratoi=0.2", "sampler.ratoi is not a config key (did you mean sampler.ratio?)"),
        ("n_point=5", "n_point is not a config key (did you mean n_points?)"),
        ("model.widht=3", "model.widht is not a config key (did you mean model.width?)"),
    ],
)
def test_unknown_key_without_plus_is_one_line_with_the_nearest_key(override, expected):
    from pinn_exp.config import compose_config

    with pytest.raises(Exception) as caught:
        compose_config([override])
    line = unknown_key_line(caught.value)
    assert line is not None and expected in line and "\n" not in line


def test_other_composition_errors_keep_hydras_report():
    from pinn_exp.config import compose_config

    with pytest.raises(Exception) as caught:
        compose_config(["sampler.ratio=abc"])
    assert unknown_key_line(caught.value) is None


# ------------------------------------------------------------------------------- RAD density
def test_rad_density_with_the_largest_finite_k_draws_the_largest_residual():
    eps = torch.tensor([0.5, 3.0, 20.0, 1e-3, 0.0])
    for c in (0.0, 1.0):
        log_w = rad_log_weights(eps, 1e308, c)
        assert not torch.isnan(log_w).any()
        p = rad_probabilities(eps, 1e308, c)
        assert int(p.argmax()) == 2 and p[2] > p[1]  # not the uniform fallback
        if c == 0.0:
            assert p[2] > 0 and float(p.sum()) == pytest.approx(float(p[2]))
    assert torch.equal(eps, torch.tensor([0.5, 3.0, 20.0, 1e-3, 0.0]))  # input untouched


def test_rad_density_matches_its_formula_for_ordinary_k():
    eps = torch.rand(100, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for k, c in ((1.0, 1.0), (2.0, 0.0), (0.0, 0.0), (0.5, 0.3)):
        ek = eps**k
        assert torch.allclose(rad_probabilities(eps, k, c), ek / ek.mean() + c, rtol=1e-12)


# --------------------------------------------------------------------------- paired test
def test_swapped_errors_tie_in_the_signed_rank_test():
    a, b = 0.6389971438592221, 0.41774516234970216  # log(a/b) != -log(b/a) in floating point
    assert abs(math.log(a / b)) != abs(math.log(b / a))
    others = [(0.2, 0.1), (0.15, 0.6), (0.3, 0.25)]
    sampler = {(0,): a, (1,): b, **{(i + 2,): x for i, (x, _) in enumerate(others)}}
    base = {(0,): b, (1,): a, **{(i + 2,): y for i, (_, y) in enumerate(others)}}
    d = math.log(a / b)  # the two swapped pairs tie: |d| each
    exact = wilcoxon_p([d, -d, *(math.log(x / y) for x, y in others)])
    assert compare_pairs(sampler, base)["p_value"] == exact


# ----------------------------------------------------------------------------------- report
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
    assert report_main([str(tmp_path / "runs"), "--out", "", "--no-plots"]) == 2
    assert report_main(["", "--no-plots"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    said = "is empty: give the folder by name ('.' for the current one)"
    assert err == [f"error: --out {said}", f"error: DIR {said}"]
    assert not list(tmp_path.glob("summary*"))  # nothing written into the current folder


def test_report_refuses_a_metric_no_run_records(tmp_path, capsys):
    _fake_run(tmp_path / "a", 0, 0.1)
    _fake_run(tmp_path / "b", 1, 0.2)
    assert report_main([str(tmp_path), "--metric", "l2_rel_eror", "--no-plots"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean l2_rel_error" in err[0]
    assert not (tmp_path / "summary.md").exists()
    assert report_main([str(tmp_path), "--no-plots"]) == 0
    assert (tmp_path / "summary.md").exists()
    os.remove(tmp_path / "summary.md")
