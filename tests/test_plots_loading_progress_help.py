"""The solution plots, loading a run, progress in the log, and what the command line shows
(the sampler header, option lists, --help)."""

from __future__ import annotations

import logging
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from support import patient

import pinn_exp
from pinn_exp import runner
from pinn_exp.factory import build
from pinn_exp.report import run_plots
from pinn_exp.samplers import RAD
from pinn_exp.training import progress


@pytest.fixture
def figures(monkeypatch):
    """The figures the run plots save, by file name (closed after the test)."""
    saved: dict[str, object] = {}

    def keep(fig, path, title=""):
        saved[path.name] = fig
        if title:
            fig.suptitle(title)

    monkeypatch.setattr(run_plots, "_save", keep)
    yield saved
    plt.close("all")


def _labels(fig) -> list[tuple[str, str]]:
    return [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes if ax.get_title()]


def test_space_time_solution_plot_uses_x_and_t_and_names_the_run(tmp_path, figures, tiny, compose):
    record = runner.run(build(compose([*tiny, "seed=3"])), tmp_path, progress=False)
    assert record["status"] == "ok"
    fig = figures["solution.png"]
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["reference", "prediction", "|prediction - reference|"]
    assert _labels(fig) == [("x", "t")] * 3
    suptitle = fig._suptitle.get_text()
    assert suptitle.startswith("burgers · rsmote · seed 3 · relative L2 error")
    assert f"{record['l2_rel_error']:.3e}" in suptitle
    # the final collocation set is drawn on the error panel
    assert len(fig.axes[4].collections) == 2
    assert {"x", "t"} <= {label for pair in _labels(figures["points.png"]) for label in pair}
    for name in ("loss.png", "error.png"):
        assert figures[name]._suptitle.get_text() == suptitle


def test_high_dimensional_solution_plot_shows_error_against_radius(
    tmp_path, figures, tiny, compose
):
    overrides = [*tiny, "pde=elliptic", "pde.dim=5", "pde.n_test=500", "rounds=1"]
    assert runner.run(build(compose(overrides)), tmp_path, progress=False)["status"] == "ok"
    fig = figures["solution.png"]
    assert [ax.get_xlabel() for ax in fig.axes] == ["reference", "|x| (d = 5)"]


def test_solution_png_is_written(tmp_path, tiny, compose):
    runner.run(build(compose([*tiny, "rounds=1"])), tmp_path, progress=False)
    assert (tmp_path / "solution.png").stat().st_size > 10_000


def test_load_run_returns_config_records_and_the_trained_model(tmp_path, tiny, compose):
    cfg = compose([*tiny, "seed=2"])
    (tmp_path / "config_resolved.yaml").write_text(
        OmegaConf.to_yaml(cfg, resolve=True)
    )  # as run.py
    record = runner.run(build(cfg), tmp_path, progress=False)
    state = torch.get_rng_state()
    run = pinn_exp.load_run(tmp_path)
    assert torch.equal(torch.get_rng_state(), state)  # loading leaves the caller's seeds alone
    assert run.config.seed == 2 and run.config.n_points == 200
    assert run.metrics["l2_rel_error"] == record["l2_rel_error"]
    assert run.evaluate() == record["l2_rel_error"]  # the same model, the same test set
    x = torch.tensor([[0.0, 0.5], [0.5, 0.25]])
    u = run.model(x)
    assert u.shape == (2, 1) and torch.allclose(run.predict(x), u.reshape(-1).detach())
    # Burgers' hard constraint: u(x, 0) = -sin(pi x) whatever the network
    assert run.predict(np.array([[0.5, 0.0]])).item() == pytest.approx(-1.0, abs=1e-6)
    assert set(run.history["round"]) == {0, 1, 2}
    assert set(run.collocation) == {"round_0", "round_1", "round_2"}


def test_load_run_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="config_resolved.yaml"):
        pinn_exp.load_run(tmp_path)


def test_stages_log_progress_when_there_is_no_terminal(
    tmp_path, monkeypatch, caplog, tiny, compose
):
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="pinn_exp"):
        runner.run(build(compose([*tiny, "rounds=1"])), tmp_path, progress=True)
    lines = [r.getMessage() for r in caplog.records if "steps" in r.getMessage()]
    assert any(line.startswith("round 0 adam: 30/30 steps") for line in lines)
    assert any(line.startswith("round 1 lbfgs:") and "loss" in line for line in lines)


def test_header_shows_every_sampler_setting():
    header = "RAD(n_dense=5000, k=2.0, c=0.0, chunk_size=None)"
    assert repr(RAD(n_dense=5000, k=2.0, c=0.0)) == header


def test_option_lists_show_options_not_schemas(tmp_path, root):
    proc = subprocess.run(
        [sys.executable, str(root / "run.py"), "sampler=nope"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=patient(120),
    )
    assert proc.returncode == 2
    said = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(said) == 1 and said[0].startswith("error: sampler=nope is not allowed"), said
    options = said[0].split("choose one of ")[1].split(", ")
    assert "rsmote" in options and "rad_50k" in options
    assert not any("schema" in option for option in options)


def test_help_lists_the_groups_a_user_chooses_from(tmp_path, root):
    proc = subprocess.run(
        [sys.executable, str(root / "run.py"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=patient(120),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    groups = proc.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    lines = {line.split(":")[0]: line for line in groups.splitlines() if ":" in line}
    assert {"pde", "sampler", "optimizer", "budget", "experiment"} <= set(lines)
    experiments = lines["experiment"].split(": ", 1)[1].split(", ")
    assert "burgers_table" in experiments and "_table" not in experiments  # not the tables' base
    assert not any(group.startswith("schema") for group in lines)
    assert "pinn_exp.pdes.Burgers" in proc.stdout  # the composed config follows
