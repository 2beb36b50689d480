"""The recipes of docs/extending.md, each done from outside the package as a user would:
add a sampler (a module and a YAML file on Hydra's search path) and add a metric (one
function and its ``@metric`` line). "Add a PDE" is tests/test_example_pde.py
(examples/poisson_peak)."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

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


def _section(page, heading: str) -> str:
    """The text of the ``## heading`` section of a Markdown page (its subsections included)."""
    return page.read_text(encoding="utf-8").split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def test_the_documented_sampler_recipe_runs_as_written(tmp_path, root, tiny):
    """docs/extending.md, "Add your own sampler", done as written: its class in my_samplers.py,
    its YAML file where the file's first line says (a file with its own ``_target_`` belongs
    in a folder of your own, not in conf/, whose option files tests/test_config.py checks),
    and its command, run from that folder; a bad value of the key is refused before
    training."""
    text = _section(root / "docs" / "extending.md", "Add your own sampler")
    code = next(c for c in _blocks(text, "python") if "class " in c)
    (config,) = [c for c in _blocks(text, "yaml") if "_target_" in c]
    (command,) = [c for c in _blocks(text, "bash") if "run.py" in c]
    where = re.match(r"#\s*(\S+\.yaml)", config).group(1).rstrip(":")
    assert Path(where).parts[0] != "conf", f"{where} has its own _target_: not in conf/"
    assert Path(where).parent.name == "sampler"
    (tmp_path / "my_samplers.py").write_text(code)
    (tmp_path / where).parent.mkdir(parents=True)
    (tmp_path / where).write_text(config)
    words = shlex.split(command.replace("$PWD", str(tmp_path)))
    assert words[:3] == ["PYTHONPATH=.", "python", "run.py"]
    base = [sys.executable, str(root / "run.py"), *words[3:], *tiny]
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{root}"}

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*base, *extra],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=patient(300),
        )

    proc = run(f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / record.METRICS).read_text())
    assert metrics["status"] == "ok" and metrics["sampler_class"] == "TopFraction"
    keep = float(re.search(r"^keep:\s*(\S+)", config, flags=re.M).group(1))
    kept = [s["n_kept"] for s in metrics["round_stats"][1:]]
    assert kept == [int(keep * metrics["n_points"])] * metrics["rounds"]
    bad = run("sampler.keep=1.5", f"hydra.run.dir={tmp_path / 'bad'}")
    assert bad.returncode == 2 and "sampler.keep=1.5" in bad.stderr


HARD_PDE = '''
import math

import numpy as np
import torch
from pinn_exp.domains import Box
from pinn_exp.ops import HardConstraint
from pinn_exp.ops.constraints import autograd_jet
from pinn_exp.pdes.base import PDE, fixed_dimension


class ZeroOnTheEdges(HardConstraint):
    """u = A + B N with A = 0 and B = x (1 - x) y (1 - y); the jets by autograd (the default)."""

    def __call__(self, x):
        b = x[:, :1] * (1 - x[:, :1]) * x[:, 1:2] * (1 - x[:, 1:2])
        return 0 * b, b


class OwnJets(ZeroOnTheEdges):
    """The same, its jets by calls of autograd.grad of its own, which torch.compile cannot
    differentiate twice."""

    def jets(self, x, dims):
        index = list(range(x.shape[1])) if dims is None else list(dims)
        a, b = self(x)
        return autograd_jet(a[:, 0], x, index), autograd_jet(b[:, 0], x, index)


class SineBubble(PDE):
    """-Delta u = 2 pi^2 sin(pi x) sin(pi y) on the unit square, u = 0 on its edges (hard)."""

    name = "sine_bubble"

    def __init__(self, dim=None, own_jets=False):
        fixed_dimension(self.name, dim, 2)
        self.domain = Box([0.0, 0.0], [1.0, 1.0])
        self.constraint = OwnJets() if own_jets else ZeroOnTheEdges()

    def exact(self, x):
        return torch.sin(math.pi * x[:, :1]) * torch.sin(math.pi * x[:, 1:2])

    def residual(self, u, x, laplacian):
        return -laplacian(u, x) - 2 * math.pi**2 * self.exact(x)[:, 0]

    def reference(self):
        g = np.linspace(0.0, 1.0, 21)
        x = np.stack([a.ravel() for a in np.meshgrid(g, g, indexing="ij")], axis=1)
        return x, self.exact(torch.as_tensor(x)).numpy().ravel()
'''


def _hard_pde_runs(tmp_path, compose, tiny, monkeypatch, *extra: str) -> tuple[dict, dict]:
    """The records of the user's hard-constrained PDE of ``HARD_PDE`` trained eagerly and
    with ``optimizer.compile=true`` (float64, a small network)."""
    (tmp_path / "my_hard_pdes.py").write_text(textwrap.dedent(HARD_PDE))
    (tmp_path / "conf" / "pde").mkdir(parents=True)
    (tmp_path / "conf" / "pde" / "sine_bubble.yaml").write_text(
        "_target_: my_hard_pdes.SineBubble\ndim: null\nown_jets: false\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    base = [
        *tiny,
        "pde=sine_bubble",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        "device.dtype=float64",
        "model.width=16",
        "model.depth=2",
        *extra,
    ]
    eager, compiled = (
        runner.run(
            build(compose([*base, f"optimizer.compile={mode}"])), tmp_path / mode, progress=False
        )
        for mode in ("false", "true")
    )
    return eager, compiled


def test_a_hard_constrained_pde_of_your_own_trains_compiled(tmp_path, compose, tiny, monkeypatch):
    """A user's hard constraint whose jets autograd takes (the default of ``HardConstraint``)
    trains under ``optimizer.compile=true`` (the default job compiles on a CPU): compiled, it
    ended with "a leaf Variable that requires grad is being used in an in-place operation"
    from inside torch. It now compiles, and its error against the exact solution after every
    round is the eager run's to round-off (float64)."""
    eager, compiled = _hard_pde_runs(tmp_path, compose, tiny, monkeypatch)
    assert eager["status"] == "ok", eager["error"]
    assert compiled["status"] == "ok", compiled["error"]
    assert compiled["compiled"] is True and eager["compiled"] is False  # no eager fallback
    assert len(eager["l2_rel_error_per_round"]) == 3
    np.testing.assert_allclose(
        compiled["l2_rel_error_per_round"], eager["l2_rel_error_per_round"], rtol=1e-9, atol=0
    )


def test_a_loss_that_cannot_be_compiled_trains_eagerly_with_one_line(
    tmp_path, compose, tiny, monkeypatch, caplog
):
    """A user's constraint that calls autograd.grad in its own ``jets`` cannot be compiled
    (AOT autograd's backward is not differentiable again): the compiled loss is tried before
    the first step, and the run trains eagerly with one line saying why, its record saying
    ``compiled: false``, its numbers the eager run's exactly."""
    with caplog.at_level(logging.WARNING, logger="pinn_exp.training.trainer"):
        eager, compiled = _hard_pde_runs(tmp_path, compose, tiny, monkeypatch, "pde.own_jets=true")
    assert eager["status"] == "ok", eager["error"]
    assert compiled["status"] == "ok", compiled["error"]
    (line,) = [r.getMessage() for r in caplog.records if "cannot compile" in r.getMessage()]
    assert "\n" not in line and line.startswith("optimizer.compile=true: torch.compile")
    assert line.endswith("training eagerly")
    assert compiled["compiled"] is False
    assert compiled["l2_rel_error_per_round"] == eager["l2_rel_error_per_round"]


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
