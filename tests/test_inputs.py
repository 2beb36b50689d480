"""Hostile input: extreme values of RAD's exponent, budgets over an Adam-only optimizer,
mistyped keys added with ``+``, damaged checkpoints, and a dense set whose scoring does not
fit in memory. Each is refused in one line naming the key (or file) before anything trains,
or works as a user expects."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from support import CONF, patient

from pinn_exp import factory
from pinn_exp.domains import Box
from pinn_exp.factory import ConfigError, build
from pinn_exp.samplers import RAD, RARD
from pinn_exp.samplers.rad import rad_probabilities

BOX = Box([-1.0, 0.0], [1.0, 1.0])


def _old_rad_probabilities(eps: torch.Tensor, k: float, c: float) -> torch.Tensor:
    """The density as it was computed before (eps^k overflows from k of about 500 on)."""
    w = eps.to(torch.float64) ** k
    mean = w.mean()
    w = w / mean if mean > 0 else torch.zeros_like(w)
    p = w + c
    return p if p.sum() > 0 else torch.ones_like(p)


@pytest.mark.parametrize(("k", "c"), [(1.0, 1.0), (2.0, 0.0), (0.5, 0.3), (0.0, 1.0), (7.0, 2.0)])
def test_rad_density_matches_the_direct_formula_where_that_is_finite(k, c):
    eps = torch.rand(5000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    eps[:10] = 0.0  # zero residuals keep weight c
    torch.testing.assert_close(
        rad_probabilities(eps, k, c), _old_rad_probabilities(eps, k, c), rtol=1e-12, atol=1e-12
    )


def test_rad_density_with_a_huge_exponent_puts_its_first_term_on_the_largest_residual():
    eps = torch.rand(1000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    old = _old_rad_probabilities(eps, 1e9, 1.0)
    assert torch.equal(old, torch.ones_like(old))  # eps^k underflowed: uniform sampling
    p = rad_probabilities(eps, 1e9, 1.0)
    assert torch.isfinite(p).all()
    top = int(eps.argmax())
    assert p[top] == pytest.approx(len(eps) + 1.0)  # eps^k / mean(eps^k) = |S| at the top
    others = torch.cat([p[:top], p[top + 1 :]])
    assert torch.allclose(others, torch.ones_like(others))


def _bound(sampler, n: int, seed: int = 0):
    sampler.bind(BOX, n, 3, torch.Generator().manual_seed(seed), "cpu", torch.float64)
    return sampler


@pytest.mark.parametrize("cls", [RAD, RARD])
def test_rad_draw_with_a_huge_exponent_and_no_constant_takes_the_largest_residuals(cls):
    sampler = _bound(cls(n_dense=2000, k=1e9, c=0.0), 200)
    dense = sampler.fresh(2000)
    eps = (dense - torch.tensor([0.3, 0.5], dtype=dense.dtype)).square().sum(1).neg().exp()
    drawn = sampler.draw_rad(dense, eps, 100)
    top = dense[torch.topk(eps, 100).indices]
    assert sorted(map(tuple, drawn.tolist())) == sorted(map(tuple, top.tolist()))


def test_rad_draw_with_a_huge_exponent_keeps_c_s_uniform_share():
    """k = 1e9, c = 1: the top point carries half the mass, the rest is uniform over S."""
    sampler = _bound(RAD(n_dense=4000, k=1e9, c=1.0), 400)
    dense = sampler.fresh(4000)
    eps = dense[:, 0] + 2.0  # largest at x = 1
    drawn = sampler.draw_rad(dense, eps, 400)
    assert len(drawn) == 400 and len(torch.unique(drawn, dim=0)) == 400
    assert dense[eps.argmax()].tolist() in drawn.tolist()
    assert abs(drawn[:, 0].mean().item()) < 0.15  # not all at the top: c's share is uniform


def test_rad_draw_with_zero_residuals_and_no_constant_draws_n_points():
    sampler = _bound(RAD(n_dense=500, k=2.0, c=0.0), 100)
    dense = sampler.fresh(500)
    eps = torch.zeros(500, dtype=dense.dtype)
    eps[:30] = torch.linspace(1, 2, 30, dtype=dense.dtype)
    drawn = sampler.draw_rad(dense, eps, 100)
    assert len(torch.unique(drawn, dim=0)) == 100
    assert {tuple(x) for x in dense[:30].tolist()} <= {tuple(x) for x in drawn.tolist()}


OPTIMIZERS = sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml"))
BUDGETS = [None, *sorted(p.stem for p in (CONF / "budget").glob("*.yaml"))]


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_under_every_budget_composes_what_it_names(optimizer, budget, compose):
    overrides = [f"optimizer={optimizer}", "n_points=200"]
    cfg = compose(overrides + ([f"budget={budget}"] if budget else []))
    plain = compose(overrides)
    if budget:  # the budget's own L-BFGS iterations, as its file states them
        own = OmegaConf.to_container(OmegaConf.load(CONF / "budget" / f"{budget}.yaml"))
        own = own["optimizer"]
        lbfgs = int(own["lbfgs_steps"].removeprefix("${lbfgs:").removesuffix("}"))
    else:
        lbfgs = plain.optimizer.lbfgs_steps
    schedule = build(cfg).schedule
    if optimizer == "adam":  # Adam only, whatever the budget
        assert cfg.optimizer.lbfgs_steps == 0 and schedule.lbfgs_steps == 0
        assert not cfg.optimizer.get("single_stage_lbfgs_steps")
    else:
        assert cfg.optimizer.lbfgs_steps == lbfgs == schedule.lbfgs_steps > 0
    if budget:
        assert schedule.adam_steps == own["adam_steps"]
        assert schedule.pretrain_steps == own["pretrain_steps"]


@pytest.mark.parametrize("key", ["lbfgs_steps", "single_stage_lbfgs_steps"])
def test_lbfgs_steps_given_to_the_adam_only_optimizer_are_refused(key, compose):
    if key not in compose([]).optimizer:
        pytest.skip(f"optimizer.{key} is not a key of this version")
    cfg = compose(["optimizer=adam", f"optimizer.{key}=5", "budget=short", "n_points=200"])
    with pytest.raises(ConfigError) as info:
        build(cfg)
    message = str(info.value)
    assert message.startswith(f"optimizer.{key}=5 is not allowed") and "adam_lbfgs" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("override", "said"),
    [
        (
            "+n_point=500",
            "n_point=500 is not allowed: n_point is not a config key (did you mean "
            "n_points?); the top-level keys are",
        ),
        ("+foo=1", "foo=1 is not allowed: foo is not a config key; the top-level keys are"),
        ("+foo.bar=1", "foo={'bar': 1} is not allowed: foo is not a config key"),
        (
            "+sampler.ration=0.3",
            "sampler.ration=0.3 is not allowed: sampler.ration is not a "
            "config key (did you mean sampler.ratio?); the keys of sampler are ratio,",
        ),
        ("+sampler.foo=2", "sampler.foo=2 is not allowed: sampler.foo is not a config key;"),
        ("+optimizer.lbfgs_step=5", "(did you mean optimizer.lbfgs_steps?)"),
        ("+report.metrik=x", "(did you mean report.metric?); the keys of report are rows,"),
        ("+model.in_dim=3", "model.in_dim=3 is not allowed: the run sets model.in_dim itself"),
        ("+laplacian.seed=3", "laplacian.seed=3 is not allowed: the run sets laplacian.seed"),
    ],
)
def test_keys_added_with_plus_that_nothing_reads_are_refused(override, said, compose):
    with pytest.raises(ConfigError) as info:
        build(compose([override, "n_points=200"]))
    assert said in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["smoke", "lambda_ablation"])
def test_experiment_files_added_with_plus_still_build(name, compose):
    assert build(compose([f"+experiment={name}", "n_points=200"])).n_points == 200


def test_a_mistyped_key_on_the_command_line_exits_2_in_one_line_before_training(
    root, tmp_path, tiny
):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(root / "run.py"), *tiny, "+n_point=500", f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
        timeout=patient(300),
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    said = [line for line in proc.stderr.splitlines() if "n_point=500" in line]
    assert len(said) == 1 and "did you mean n_points?" in said[0]
    assert "Traceback" not in proc.stderr and not (run_dir / "history.csv").exists()


@pytest.fixture
def saved_run(tmp_path, compose):
    """A run directory as run.py leaves it after a round, without the training: its config,
    a record, and a checkpoint of the initial network."""
    cfg = compose(["n_points=200", "device=cpu"])
    (tmp_path / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (tmp_path / "metrics.json").write_text('{"status": "ok"}\n')
    torch.save({"model": build(cfg).model.state_dict()}, tmp_path / "checkpoint.pt")
    return tmp_path


def _width_32_weights(compose):
    return {"model": build(compose(["n_points=200", "model.width=32"])).model.state_dict()}


@pytest.mark.parametrize(
    ("file", "damage", "said"),
    [
        ("checkpoint.pt", b"", "is empty (0 bytes)"),
        ("checkpoint.pt", b"not a checkpoint\n" * 10, "cannot be read as a checkpoint"),
        ("checkpoint.pt", {"weights": torch.zeros(2)}, "is not a pinn-exp checkpoint"),
        ("checkpoint.pt", torch.zeros(3), "is not a pinn-exp checkpoint"),
        ("checkpoint.pt", _width_32_weights, "does not fit the run's config"),
        ("config_resolved.yaml", b"{unclosed: [", "cannot be read as a run's config"),
        ("config_resolved.yaml", b"- a list\n", "cannot be read as a run's config"),
        ("config_resolved.yaml", b"", "is empty (0 bytes)"),
        ("metrics.json", b"{oops", "cannot be read as JSON"),
    ],
)
def test_load_run_on_a_damaged_or_foreign_file_names_the_file(
    saved_run, compose, file, damage, said
):
    import pinn_exp

    pinn_exp.load_run(saved_run)  # as written, it loads
    target = saved_run / file
    if isinstance(damage, bytes):
        target.write_bytes(damage)
    else:
        torch.save(damage(compose) if callable(damage) else damage, target)
    with pytest.raises(pinn_exp.loading.RunLoadError) as info:
        pinn_exp.load_run(saved_run)
    message = str(info.value)
    assert message.startswith(str(target)) and said in message and "\n" not in message


GIB = 2**30


def _refusal(compose, overrides):
    with pytest.raises(ConfigError) as info:
        build(compose(["sampler=rad", "device=cpu", "device.dtype=float32", *overrides]))
    return str(info.value)


def test_a_dense_set_whose_one_pass_scoring_does_not_fit_is_refused_with_a_chunk_size(
    compose, monkeypatch
):
    monkeypatch.setattr(factory, "available_bytes", lambda device: GIB)  # 1 GiB free
    # 4e6 points of d = 2 take 61 MiB, a pass over them about 11 GiB (measured), 22 estimated
    message = _refusal(compose, ["sampler.n_dense=4000000"])
    assert re.match(
        r"sampler.n_dense=4000000 at pde.dim=2 is not allowed here: scoring the dense set in "
        r"one pass needs about (1\d|2\d)\.\d GiB",
        message,
    )
    assert "1.0 GiB are free on cpu; set sampler.chunk_size=" in message and "\n" not in message
    chunk = int(message.split("sampler.chunk_size=")[1].split()[0])
    assert 50_000 <= chunk <= 150_000  # half of 1 GiB at 5,888 bytes a point
    built = build(
        compose(
            [
                "sampler=rad",
                "device=cpu",
                "device.dtype=float32",
                "sampler.n_dense=4000000",
                f"sampler.chunk_size={chunk}",
            ]
        )
    )
    assert built.sampler.chunk_size == chunk
    # a chunk too large for the memory is refused under its own key
    message = _refusal(compose, ["sampler.n_dense=4000000", "sampler.chunk_size=1000000"])
    assert message.startswith("sampler.chunk_size=1000000 at pde.dim=2 is not allowed here")
    # the defaults (RAD's 100,000 points in one pass, about 0.5 GiB) fit
    build(compose(["sampler=rad", "device=cpu", "device.dtype=float32"]))


def test_the_scoring_estimate_grows_with_width_depth_dim_and_graph_methods(compose):
    def estimate(*overrides):
        built = build(compose(["sampler=rad", "n_points=200", *overrides]))
        args = (built.pde.dim, built.model, built.laplacian, built.device.dtype.itemsize)
        return factory.scoring_bytes(10**6, 10**6, *args)

    base = estimate("pde=elliptic", "pde.dim=10", "device.dtype=float32")
    assert estimate("pde=elliptic", "pde.dim=10", "device.dtype=float64") > 1.9 * base
    assert estimate("pde=elliptic", "pde.dim=20", "device.dtype=float32") > 1.7 * base
    assert estimate("pde=elliptic", "pde.dim=10", "device.dtype=float32", "model.width=128") > (
        1.9 * base
    )
    assert estimate("pde=elliptic", "pde.dim=10", "device.dtype=float32", "model.depth=8") > base
    assert (
        estimate("pde=elliptic", "pde.dim=10", "device.dtype=float32", "laplacian=autograd")
        > 1.5 * base
    )


MEASURE = """
import resource, sys, torch
torch.set_num_threads(1)
from pinn_exp.config import compose_config
from pinn_exp.factory import build, scoring_bytes
from pinn_exp.training.trainer import Scorer
n = int(sys.argv[1])
built = build(compose_config(["sampler=rad", "device=cpu", "device.dtype=float32",
                              "n_points=200", *sys.argv[2:]]))
scorer = Scorer(built.pde, built.model, built.laplacian)
x = built.sampler.fresh(n)
scorer(x[:100])
status = lambda key: [int(l.split()[1]) * 1024 for l in open("/proc/self/status")
                      if l.startswith(key)][0]
before = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # the peak from here on
scorer(x)
parts = (built.pde.dim, built.model, built.laplacian, 4)
print(status("VmHWM:") - before, scoring_bytes(n, n, *parts) - scoring_bytes(n, 0, *parts))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux peak RSS only")
@pytest.mark.parametrize("overrides", [["pde=burgers"], ["pde=laplace", "laplacian=autograd"]])
def test_the_scoring_estimate_bounds_the_measured_peak(root, overrides):
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, "50000", *overrides],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=patient(300),
    )
    if proc.returncode != 0 and "clear_refs" in proc.stderr:
        pytest.skip("the peak RSS cannot be reset here")
    assert proc.returncode == 0, proc.stderr[-2000:]
    measured, estimated = map(int, proc.stdout.split())
    assert measured < estimated < 4 * measured


def test_load_run_does_not_check_the_memory_of_a_scoring_it_does_not_do(
    tmp_path, compose, monkeypatch
):
    import pinn_exp

    monkeypatch.setattr(factory, "available_bytes", lambda device: GIB)
    cfg = compose(["sampler=rad", "sampler.n_dense=4000000", "n_points=200", "device=cpu"])
    (tmp_path / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (tmp_path / "metrics.json").write_text('{"status": "ok"}\n')
    with pytest.raises(ConfigError, match=r"^sampler.n_dense=4000000 at pde.dim=2"):
        build(cfg)  # a run of it is refused here
    model = build(cfg, training=False).model
    torch.save({"model": model.state_dict()}, tmp_path / "checkpoint.pt")
    assert pinn_exp.load_run(tmp_path).config.sampler.n_dense == 4_000_000


def test_rad_draw_beyond_multinomials_categories_follows_the_same_law(monkeypatch):
    """torch.multinomial takes at most 2^24 categories; a larger dense set is drawn by keys.
    Here the limit is lowered to 1000 so that a 4000-point set takes that path: the draw has
    N distinct points and follows p ∝ eps^k / mean + c (k = 1, c = 0: a point of the right
    half, where eps is 3x larger, is 3x as likely)."""
    from pinn_exp.samplers import rad

    monkeypatch.setattr(rad, "MULTINOMIAL_CATEGORIES", 1000)
    sampler = _bound(RAD(n_dense=4000, k=1.0, c=0.0), 400)
    dense = sampler.fresh(4000)
    eps = torch.where(dense[:, 0] > 0, 3.0, 1.0).to(dense.dtype)
    drawn = sampler.draw_rad(dense, eps, 400)
    assert len(torch.unique(drawn, dim=0)) == 400
    right = (drawn[:, 0] > 0).double().mean().item()
    assert 0.68 < right < 0.79  # without replacement from 2000 + 2000 points: ~0.74
