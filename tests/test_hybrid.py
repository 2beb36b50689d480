"""RSmote with a scored global candidate set (``sampler=rsmote_hybrid``), the ``fluctuation``
history metric, and the regularity experiments."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_config import EXPERIMENTS
from test_report import _config, _metrics, _write_run

from pinn_exp.domains import Box
from pinn_exp.factory import build
from pinn_exp.metrics import registry
from pinn_exp.report.paired import paired_comparison
from pinn_exp.report.runs import collect_runs
from pinn_exp.samplers import RSmote, RSmoteHybrid

N = 200


def _bound(sampler, seed: int = 0):
    domain = Box([0.0, 0.0], [1.0, 1.0])
    sampler.bind(domain, N, 3, torch.Generator().manual_seed(seed))
    return sampler


class Counting:
    """eps(x) = exp(-|x - (0.9, 0.9)|^2 / 0.001): a peak in a corner; counts scored points."""

    def __init__(self):
        self.n = 0
        self.chunks = []

    def __call__(self, x, chunk_size=None):
        self.n += len(x)
        self.chunks.append(chunk_size)
        return torch.exp(-((x - 0.9) ** 2).sum(1) / 1e-3)


def test_candidates_enter_the_positive_class_and_the_set_keeps_its_size():
    sampler = _bound(RSmoteHybrid(ratio=0.1, refresh=0.1, chunk_size=50))
    # the current set stays away from the peak: only candidates can reach it
    points = torch.rand(N, 2, generator=torch.Generator().manual_seed(1)) * 0.5
    scorer = Counting()
    new, stats = sampler.update(points, scorer, 1)
    assert new.shape == (N, 2) and bool(sampler.domain.contains(new).all())
    assert stats["n_dense"] == 2 * N and scorer.n == N + 2 * N and 50 in scorer.chunks
    assert 0 < stats["n_candidates_positive"] <= math.ceil(0.1 * N)
    near = ((new - 0.9) ** 2).sum(1) < 0.01
    assert int(near.sum()) >= stats["n_candidates_positive"]  # positives and synthetic there
    assert int((((points - 0.9) ** 2).sum(1) < 0.01).sum()) == 0


def test_rounds_without_candidates_are_rsmote_bit_for_bit():
    hybrid = _bound(RSmoteHybrid(ratio=0.1, refresh=0.1, every=2, n_candidates=50), seed=3)
    plain = _bound(RSmote(ratio=0.1, refresh=0.1), seed=3)
    points = torch.rand(N, 2, generator=torch.Generator().manual_seed(2))
    new_h, stats_h = hybrid.update(points, Counting(), 2)  # rounds 1, 3, ... use candidates
    new_p, stats_p = plain.update(points, Counting(), 2)
    assert torch.equal(new_h, new_p)
    assert stats_h == {**stats_p, "n_dense": 0, "n_candidates_positive": 0}
    assert [hybrid.uses_candidates(r) for r in range(1, 6)] == [True, False, True, False, True]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_candidates": 0}, "sampler.n_candidates=0 is not allowed"),
        ({"every": 0}, "sampler.every=0 is not allowed"),
        ({"chunk_size": 0}, "sampler.chunk_size=0 is not allowed"),
        ({"ratio": 0.5}, "sampler.ratio=0.5 is not allowed"),
    ],
)
def test_bad_parameters_are_refused_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}") as info:
        RSmoteHybrid(**kwargs)
    assert "\n" not in str(info.value)


def test_option_composes_with_rsmote_settings_and_reports_its_dense_size(compose):
    cfg = compose(["sampler=rsmote_hybrid", "pde=laplace", "n_points=300"])
    built = build(cfg)
    sampler = built.sampler
    assert isinstance(sampler, RSmoteHybrid) and sampler.name == "rsmote_hybrid"
    assert (sampler.ratio, sampler.refresh, sampler.every) == (0.1, 0.1, 1)
    assert sampler.n_dense == 600  # null: 2 n_points, what the factory's memory checks read


def test_fluctuation_by_hand():
    # changes from round 2 on: |log10(0.02/0.1)|, log10 2, log10 4, 0 -> median of the middle two
    values = [0.5, 0.1, 0.02, 0.04, 0.01, 0.01]
    expected = (math.log10(2) + math.log10(4)) / 2  # 0.451545
    assert registry.fluctuation(values) == pytest.approx(expected, rel=1e-12)
    assert registry.fluctuation([1.0, 0.1, 0.01, 0.1]) == pytest.approx(1.0)
    assert math.isnan(registry.fluctuation([1.0, 0.1]))  # no change from round 2 on
    assert math.isnan(registry.fluctuation([1.0, 0.1, float("nan")]))


def test_fluctuation_is_a_report_column_and_a_paired_metric(tmp_path):
    histories = {
        "rad": [[1.0, 0.1, 0.1, 0.01], [1.0, 0.1, 0.01, 0.01]],
        "rsmote": [[1.0, 0.1, 0.01, 0.1], [1.0, 0.1, 0.1, 0.001]],
    }
    for sampler, runs in histories.items():
        for seed, per_round in enumerate(runs):
            record = _metrics(2, sampler, None, seed, "ok", per_round[-1], 1.0, "x")
            record.update(l2_rel_error_per_round=per_round, sampler_class=sampler)
            _write_run(
                tmp_path / f"{sampler}{seed}", _config(2, sampler, None, seed), json.dumps(record)
            )
    frame = collect_runs([tmp_path])
    by_run = dict(zip(frame["run_dir"].map(lambda p: p.split("/")[-1]), frame["fluctuation"]))
    # rad0: changes 0, 1 -> 0.5; rad1: 1, 0 -> 0.5; rsmote0: 1, 1 -> 1; rsmote1: 0, 2 -> 1
    assert by_run == pytest.approx({"rad0": 0.5, "rad1": 0.5, "rsmote0": 1.0, "rsmote1": 1.0})
    result = paired_comparison(frame, "rad", metric="fluctuation")
    row = result.table[result.table["sampler"] == "rsmote"].iloc[0]
    assert row["pairs"] == 2 and row["geo_mean_ratio"] == pytest.approx(2.0)


@pytest.mark.parametrize("name", ["regularity_table", "lambda_regularity"])
@pytest.mark.parametrize("budget", ["short", "paper"])
def test_regularity_experiments_compose_at_both_budgets(name, budget, compose):
    assert name in EXPERIMENTS  # so test_config's experiment test builds it too
    cfg = compose([f"+experiment={name}", f"budget={budget}"])
    assert cfg.rounds == {"short": 3, "paper": 10}[budget]
    assert build(cfg).n_points == 2000
    params = cfg.hydra.sweeper.params if "hydra" in cfg else None
    assert params is None or "seed" in params


def test_regularity_table_sweeps_every_pde_and_four_samplers(conf_dir):
    import yaml

    text = yaml.safe_load((conf_dir / "experiment" / "regularity_table.yaml").read_text())
    params = text["hydra"]["sweeper"]["params"]
    assert set(params["pde"].split(",")) == {p.stem for p in (conf_dir / "pde").glob("*.yaml")}
    assert params["sampler"].split(",") == ["uniform", "rad", "rsmote", "rsmote_hybrid"]
    assert text["report"]["baseline"] == "rad"
    lam = yaml.safe_load((conf_dir / "experiment" / "lambda_regularity.yaml").read_text())
    ratios = lam["hydra"]["sweeper"]["params"]["sampler.ratio"]
    assert [float(r) for r in ratios.split(",")] == [0.1, 0.15, 0.25, 0.35, 0.45]
