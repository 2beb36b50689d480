"""The recipes of docs/architecture.md, each done from outside the package as a user would:
add a sampler (a module and a YAML file on Hydra's search path) and add a metric (one
function and its ``@metric`` line). "Add a PDE" is tests/test_example_pde.py
(examples/poisson_peak)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from support import patient

from pinn_exp import runner
from pinn_exp.factory import build
from pinn_exp.io import record
from pinn_exp.metrics import registry
from pinn_exp.metrics.residual import TOP_SHARE
from pinn_exp.report.runs import collect_runs
from pinn_exp.report.tables import mean_std_table

SAMPLER = '''
import torch
from pinn_exp.samplers import Sampler, Update


class Shrink(Sampler):
    """Moves every point halfway to the domain's first corner point drawn at bind time."""

    name = "shrink"

    def __init__(self, factor: float = 0.5):
        super().__init__()
        if not 0 < factor <= 1:
            raise ValueError(f"sampler.factor={factor!r} is not allowed; it must be in (0, 1]")
        self.factor = factor

    def record_fields(self):
        return {"factor": self.factor}

    def update(self, points, residual, round_index):
        eps = residual(points)
        target = points[torch.argmax(eps)]
        return Update(target + self.factor * (points - target), {"max_eps": float(eps.max())})
'''


def test_add_a_sampler_from_outside_the_package(tmp_path, tiny, root):
    (tmp_path / "my_samplers.py").write_text(textwrap.dedent(SAMPLER))
    (tmp_path / "conf" / "sampler").mkdir(parents=True)
    (tmp_path / "conf" / "sampler" / "shrink.yaml").write_text(
        "_target_: my_samplers.Shrink\nfactor: 0.5\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{root}"}
    base = [
        sys.executable,
        str(root / "run.py"),
        "sampler=shrink",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        *tiny,
    ]
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [*base, f"hydra.run.dir={run_dir}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=patient(300),
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((run_dir / record.METRICS).read_text())
    assert metrics["status"] == "ok" and metrics["sampler"] == "shrink"
    assert metrics["sampler_class"] == "Shrink"
    assert metrics["factor"] == 0.5 and metrics["ratio"] is None  # its own field; no lambda
    # what update returned is in each sampling round's statistics, and the points moved
    stats = metrics["round_stats"]
    assert [("max_eps" in s) for s in stats] == [False] + [True] * (len(stats) - 1)
    assert all(s["max_eps"] > 0 for s in stats[1:])
    points = np.load(run_dir / record.COLLOCATION)
    first, last = points["round_0"], points[f"round_{len(stats) - 1}"]
    assert np.ptp(last, axis=0).max() < 0.3 * np.ptp(first, axis=0).max()  # 0.5^2 of the spread

    # a bad value of the new key is refused before training, naming it
    bad = subprocess.run(
        [*base, "sampler.factor=2", f"hydra.run.dir={tmp_path / 'bad'}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=patient(300),
    )
    assert bad.returncode == 2 and "sampler.factor=2" in bad.stderr


@pytest.fixture
def rms_metric():
    """A user's metric: the root-mean-square error; unregistered afterwards."""

    @registry.metric("rms_error")
    def rms_error(ev: registry.Evaluation) -> float:
        """Root-mean-square error on the test set."""
        return float((ev.prediction - ev.reference).square().mean().sqrt())

    yield rms_error
    registry.METRICS.pop("rms_error")


def test_add_a_metric(tmp_path, compose, tiny, rms_metric):
    for seed in (0, 1):
        built = build(compose([*tiny, f"seed={seed}"]))
        metrics = runner.run(built, tmp_path / f"run{seed}", progress=False)
        assert metrics["status"] == "ok"
        # the record holds the final value and one per round, and each round's statistics
        per_round = metrics["rms_error_per_round"]
        assert len(per_round) == built.rounds + 1
        assert metrics["rms_error"] == per_round[-1]
        assert [s["rms_error"] for s in metrics["round_stats"]] == per_round
        # RMS error = L2 error * ||u_ref|| / sqrt(m): check it against the L2 error
        x_test, u_test = built.pde.reference()
        ref = np.asarray(u_test, dtype=np.float64).reshape(-1)
        expected = metrics["l2_rel_error"] * np.linalg.norm(ref) / math.sqrt(len(ref))
        assert metrics["rms_error"] == pytest.approx(expected, rel=1e-9)
    # the report shows it as a column, in the registry's format
    frame = collect_runs([tmp_path])
    assert "rms_error" in frame.columns and record.is_scientific("rms_error")
    table = mean_std_table(frame, rows="sampler", cols="pde", metric="rms_error")
    assert "e-" in str(table.iloc[0, 0])


def test_every_registered_metric_is_a_column_with_a_format():
    assert registry.PRIMARY in record.columns()
    for name, metric in registry.METRICS.items():
        assert name in record.columns() and record.is_scientific(name) == metric.scientific
        assert metric.description  # the docs' one line


def test_concentration_counts_points_in_the_top_region():
    """1 for points spread like the probes, 1 / TOP_SHARE when all sit where eps is largest."""
    probes = torch.linspace(0, 1, 10_001).reshape(-1, 1)
    eps = lambda x: x.reshape(-1)  # noqa: E731 - the residual grows along x
    ev = registry.Evaluation(
        prediction=torch.zeros(1),
        reference=torch.ones(1),
        x_test=probes,
        points=probes,
        probes=probes,
        residual=eps,
    )
    # the threshold is the 0.95 quantile, 0.95: 501 of the 10,001 points reach it
    assert registry.get("concentration").fn(ev) == pytest.approx(501 / 10_001 / 0.05)
    ev.points = torch.full((100, 1), 0.99)
    assert registry.get("concentration").fn(ev) == pytest.approx(1 / TOP_SHARE)
    ev.points = torch.full((100, 1), 0.5)
    assert registry.get("concentration").fn(ev) == 0.0
