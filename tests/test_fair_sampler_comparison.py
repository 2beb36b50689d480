"""What makes a comparison of samplers fair and visible: runs of one seed start from the same
network and points, a sampler can act within a training stage (``period``), and every run of
a 1-D or 2-D PDE records where its residual is and where its points go."""

from __future__ import annotations

import json

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
    built = {
        name: build(compose([*tiny, f"pde={pde}", f"sampler={name}", "seed=3"]))
        for name in ("rad", "rsmote", "uniform", "r3")
    }
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
    metrics = runner.run(
        build(compose([*tiny, "pde=laplace", "pde.dim=3"])), tmp_path, progress=False
    )
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
    # per round: one update at the round's start (rounds 1, 2); with period 4 also after Adam
    # steps 4 and 8 of every stage (10 steps in round 0, 9 in rounds 1 and 2)
    per_stage = 0 if period is None else 2
    expected = [per_stage, 1 + per_stage, 1 + per_stage]
    got = [s.get("n_stage_updates", 0) for s in state.round_stats]
    assert got == [per_stage] * 3
    assert built.sampler.calls == sum(expected)
    # only the rounds' updates score: one within a stage reuses the Adam step's residual
    assert trainer.scorer.n_evals == 2 * built.n_points
    # every update moved the points by 0.99, and the recorded set is the last one
    moved = torch.as_tensor(state.collocation["round_2"], dtype=start.dtype)
    torch.testing.assert_close(moved, start * 0.99 ** sum(expected), rtol=1e-5, atol=1e-6)


def _counting_residual(pde) -> list[int]:
    """Counts the PDE's residual evaluations (forward passes over the points), scoring and
    training alike: one entry per call, its number of points."""
    calls: list[int] = []
    residual = pde.residual

    def counted(u, x, laplacian):
        calls.append(len(x))
        return residual(u, x, laplacian)

    pde.residual = counted
    return calls


@pytest.mark.parametrize("steps", [1, 6])
def test_r3_reuses_the_training_steps_residual(compose, tiny, steps):
    """R3 within a stage (period 1) costs no forward pass of its own: each update gets the
    residual the Adam step computed at the same points before its parameter update, as Daw et
    al. do (one evaluation a step, not two)."""
    built = build(compose([*tiny, "sampler=r3"]))
    calls = _counting_residual(built.pde)
    trainer = Trainer(built, progress=False)
    trainer.state.points = built.sampler.initial().points
    x = trainer.state.points.clone().requires_grad_(True)
    before: list[torch.Tensor] = []  # |residual| at the step's points with the step's parameters
    trainer.step_hook = lambda r, s, phase: before.append(
        trainer.uncounted_residual(trainer.state.points)
    )
    seen: list[torch.Tensor] = []
    update = built.sampler.update

    def recording(points, residual, round_index):
        seen.append(residual(points))
        return update(points, residual, round_index)

    built.sampler.update = recording
    start = len(calls)
    trainer._adam(x, 1, steps)
    training = [n for n in calls[start:] if n == built.n_points]
    assert len(training) == steps + len(before)  # one per step; the hook's are the test's own
    assert trainer.scorer.n_evals == 0 and trainer._stage_updates == steps == len(seen)
    for eps_before, eps_used in zip(before, seen, strict=True):
        torch.testing.assert_close(eps_used, eps_before, rtol=1e-4, atol=1e-6)
    # the set the last update made is the stage's (and L-BFGS's) set
    assert torch.equal(x.detach(), trainer.state.points)


def test_r3_records_only_the_rounds_scoring(compose, tiny):
    built = build(compose([*tiny, "sampler=r3", "rounds=1"]))
    state = Trainer(built, progress=False).run()
    n, steps = built.n_points, built.schedule.adam_steps
    assert [s["n_residual_evals"] for s in state.round_stats] == [0, n]
    stage_updates = [s["n_stage_updates"] for s in state.round_stats]
    assert stage_updates == [built.schedule.pretrain_steps, steps]


@pytest.mark.parametrize(("steps", "expected"), [(250, 2), (300, 3)])
def test_random_r_as_published_resamples_every_100_adam_steps_in_one_stage(
    compose, tiny, steps, expected
):
    """sampler=random_r (src/burgers/Random_R.py): every 100 Adam steps all N points are
    replaced, in one Adam stage (the set after the last step included, as DeepXDE's resampler
    does), then one L-BFGS run of optimizer.single_stage_lbfgs_steps on the last set; the
    run's rounds are not run."""
    cfg = compose(
        [
            *tiny,
            "sampler=random_r",
            f"optimizer.pretrain_steps={steps}",
            "optimizer.single_stage_lbfgs_steps=7",
            "rounds=2",
        ]
    )
    built = build(cfg)
    trainer = Trainer(built, progress=False)
    used: list[torch.Tensor] = []  # the set each Adam step trains on
    trainer.step_hook = lambda r, s, phase: (
        used.append(trainer.state.points) if phase == "adam" else None
    )
    sets: list[torch.Tensor] = []
    update = built.sampler.update

    def recording(points, residual, round_index):
        out = update(points, residual, round_index)
        sets.append(out.points)
        return out

    built.sampler.update = recording
    lbfgs_runs: list[int] = []
    for name in ("_lbfgs", "_lbfgs_device"):  # torch's L-BFGS stage or the device one
        stage = getattr(trainer, name)
        setattr(trainer, name, lambda x, r, n, stage=stage: (lbfgs_runs.append(n), stage(x, r, n)))
    state = trainer.run()
    assert len(state.round_stats) == 1 and trainer.rounds == 0  # one stage, no rounds
    assert state.round_stats[0]["n_stage_updates"] == expected == len(sets)
    assert state.round_stats[0]["n_residual_evals"] == 0
    changes = [s for s in range(1, steps) if used[s] is not used[s - 1]]
    assert changes == list(range(100, steps, 100))
    previous = [used[0], *(used[s] for s in changes)]
    for old, new in zip(previous[: len(sets)], sets, strict=True):  # every point replaced
        assert len(new) == built.n_points
        assert not set(map(tuple, new.tolist())) & set(map(tuple, old.tolist()))
    # one L-BFGS run, on the last set, of single_stage_lbfgs_steps iterations (lbfgs_steps: 5)
    assert np.array_equal(state.collocation["round_0"], sets[-1].numpy())
    assert lbfgs_runs == [7]


def test_random_r_round_draws_a_fresh_set_once_per_round(compose, tiny):
    built = build(compose([*tiny, "sampler=random_r_round"]))
    assert built.sampler.period is None and not built.sampler.single_stage
    state = Trainer(built, progress=False).run()
    assert len(state.round_stats) == built.rounds + 1
    assert all("n_stage_updates" not in s for s in state.round_stats)
    sets = [set(map(tuple, state.collocation[f"round_{r}"].tolist())) for r in range(3)]
    assert not sets[0] & sets[1] and not sets[1] & sets[2]


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
    sampler.bind(
        Box([0.0, 0.0], [1.0, 1.0]), n, 3, torch.Generator().manual_seed(0), "cpu", torch.float64
    )
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


def test_concentration_is_one_division_of_counts_without_float_noise():
    from pinn_exp.metrics.residual import concentration

    probes = torch.linspace(0, 1, 2001, dtype=torch.float64)[:, None]  # top 5 %: x >= 0.95
    points = torch.cat([torch.full((4, 1), 0.99), torch.full((96, 1), 0.1)]).double()
    value = concentration(lambda x: x[:, 0], points, probes)
    assert value == 0.8 and repr(value) == "0.8"  # (4 / 100) / 0.05 gives 0.7999999999999999
    assert json.dumps(concentration(lambda x: x[:, 0], points[:25], probes)) == "3.2"
