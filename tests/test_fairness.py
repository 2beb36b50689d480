"""What makes a comparison of samplers fair and visible: runs of one seed start from the same
network and points, a sampler can act within a training stage (``period``), and every run of
a 1-D or 2-D PDE records where its residual is and where its points go."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import pinn_exp
from pinn_exp import runner
from pinn_exp.factory import build
from pinn_exp.io import record
from pinn_exp.ops import graph_free
from pinn_exp.samplers import Sampler, Update
from pinn_exp.training.trainer import Trainer


@pytest.mark.parametrize("pde", ["burgers", "laplace"])
def test_one_seed_shares_the_initial_network_and_points_across_samplers(compose, tiny, pde):
    built = {name: build(compose([*tiny, f"pde={pde}", f"sampler={name}", "seed=3"]))
             for name in ("rad", "rsmote", "uniform", "r3")}  # fmt: skip
    first = {name: b.sampler.initial().points for name, b in built.items()}
    reference = built["rad"]
    for name, b in built.items():
        for p, q in zip(b.model.parameters(), reference.model.parameters(), strict=True):
            assert torch.equal(p, q), name
        assert torch.equal(first[name], first["rad"]), name
    other = build(compose([*tiny, f"pde={pde}", "sampler=rad", "seed=4"]))
    assert not torch.equal(other.sampler.initial().points, first["rad"])


def test_residual_maps_are_the_residual_on_the_grid(tmp_path, compose, tiny):
    cfg = compose(tiny)
    built = build(cfg)
    metrics = runner.run(built, tmp_path, progress=False)
    (tmp_path / record.CONFIG).write_text(OmegaConf.to_yaml(cfg, resolve=True))  # as run.py does
    assert metrics["status"] == "ok"
    with np.load(tmp_path / record.RESIDUAL) as data:
        maps = {k: data[k] for k in data.files}
    grid = maps.pop("grid")
    assert grid.shape == (101, 101, 2)
    assert sorted(maps) == [f"residual_round_{k}" for k in range(built.rounds + 1)]
    # the grid spans the domain: x in [-1, 1], t in [0, 1], 'ij' order
    assert grid[0, 0].tolist() == [-1.0, 0.0] and grid[-1, -1].tolist() == [1.0, 1.0]
    assert np.all(np.diff(grid[:, 0, 0]) > 0) and np.all(grid[:, 0, 1] == 0)
    # the last map is |residual| of the final model there, recomputed from the loaded run
    run = pinn_exp.load_run(tmp_path)
    x = torch.as_tensor(grid.reshape(-1, 2), dtype=run.dtype).requires_grad_(True)
    with graph_free():
        eps = run.pde.residual(run.model, x, built.laplacian).abs().detach()
    last = maps[f"residual_round_{built.rounds}"]
    np.testing.assert_allclose(last.reshape(-1), eps.numpy(), rtol=1e-4, atol=1e-6)
    assert (tmp_path / record.PLOTS["residual"]).is_file()
    # where the points go is recorded for every round
    assert len(metrics["concentration_per_round"]) == built.rounds + 1
    assert all(0 <= c <= 20 for c in metrics["concentration_per_round"])
    assert all(0 <= s["concentration_at_sampling"] <= 20 for s in metrics["round_stats"])


def test_no_residual_map_above_two_dimensions(tmp_path, compose, tiny):
    metrics = runner.run(build(compose([*tiny, "pde=laplace", "pde.dim=3"])), tmp_path,
                         progress=False)  # fmt: skip
    assert metrics["status"] == "ok" and not (tmp_path / record.RESIDUAL).exists()
    assert metrics["concentration"] is not None


class _Shift(Sampler):
    """Moves every point by a fixed step each update, so each update is visible; acts every
    ``period`` Adam steps."""

    name = "shift"

    def __init__(self, period: int | None = None):
        super().__init__()
        self.period = period
        self.calls = 0

    def update(self, points, residual, round_index):
        self.calls += 1
        residual(points)
        return Update(points * 0.99, {"calls": self.calls})


@pytest.mark.parametrize("period", [None, 4])
def test_a_sampler_with_a_period_acts_within_a_stage(compose, tiny, period):
    cfg = compose([*tiny, "optimizer.pretrain_steps=10", "optimizer.adam_steps=9", "rounds=2"])
    built = build(cfg)
    built.sampler = _Shift(period)
    built.sampler.bind(built.pde.domain, built.n_points, built.rounds, built.generator)
    trainer = Trainer(built, progress=False)
    start = built.sampler.initial().points.clone()
    # re-seed the generator: initial() above drew from it
    built.generator.manual_seed(built.seed)
    state = trainer.run()
    # per round: one update at the round's start (rounds 1, 2); with period 4 also at Adam
    # steps 4 and 8 of every stage (10 steps in round 0, 9 in rounds 1 and 2)
    per_stage = 0 if period is None else 2
    expected = [per_stage, 1 + per_stage, 1 + per_stage]
    got = [s.get("n_stage_updates", 0) for s in state.round_stats]
    assert got == [per_stage] * 3
    assert built.sampler.calls == sum(expected)
    assert trainer.scorer.n_evals == sum(expected) * built.n_points
    # every update moved the points by 0.99, and the recorded set is the last one
    moved = torch.as_tensor(state.collocation["round_2"], dtype=start.dtype)
    torch.testing.assert_close(moved, start * 0.99 ** sum(expected), rtol=1e-5, atol=1e-6)


def test_a_period_with_a_sampler_that_changes_the_size_is_refused(compose, tiny):
    built = build(compose([*tiny, "sampler=rar_d"]))
    built.sampler.period = 3
    trainer = Trainer(built, progress=False)
    with pytest.raises(ValueError, match="sampler.period=3"):
        trainer.run()


@pytest.mark.parametrize("ratio", [0.15, 0.25, 0.45])
@pytest.mark.parametrize("synthetic", [None, 0.05])
def test_rsmote_control_arm_moves_the_same_number_of_points_for_every_lambda(ratio, synthetic):
    """lambda_ablation's control arm: with ``synthetic`` fixed, an update replaces the same
    number of points whatever lambda is; the paper's arm replaces N/2 - ceil(lambda N)."""
    from pinn_exp.domains import Box
    from pinn_exp.samplers import RSmote

    n = 1000
    sampler = RSmote(ratio=ratio, synthetic=synthetic)
    sampler.bind(Box([0.0, 0.0], [1.0, 1.0]), n, 3, torch.Generator().manual_seed(0), "cpu",
                 torch.float64)  # fmt: skip
    x = sampler.initial().points
    new = sampler.update(x, lambda p, chunk_size=None: p[:, 0] + p[:, 1], 1).points
    assert len(new) == n
    old_rows = {tuple(r) for r in x.tolist()}
    moved = sum(tuple(r) not in old_rows for r in new.tolist())
    expected = n // 2 - int(np.ceil(ratio * n)) if synthetic is None else round(synthetic * n)
    assert moved == expected


def test_rsmote_synthetic_out_of_range_is_refused():
    from pinn_exp.samplers import RSmote

    with pytest.raises(ValueError, match="sampler.synthetic=0.6"):
        RSmote(ratio=0.45, synthetic=0.6)
