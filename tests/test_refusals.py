"""Bad values refused before training: extreme values of RAD's exponent, budgets over an
Adam-only optimizer, mistyped keys (with or without ``+``), damaged checkpoints, and a dense
set whose scoring does not fit in memory. Each is refused in one line naming the key (or
file) before anything trains, or works as a user expects."""

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


# ------------------------------------------------------------- limits of the machine and dtype


def _one_line_refusal(proc: subprocess.CompletedProcess, *words: str) -> str:
    """The one ``error:`` line of a refused command (exit 2, no traceback) holding ``words``."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    said = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(said) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    for word in words:
        assert word in said[0], said[0]
    return said[0]


def _run(root: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(root / "run.py"), *args],
        capture_output=True,
        text=True,
        timeout=patient(300),
        cwd=cwd,
    )


def test_more_threads_than_the_process_may_use_are_refused():
    from pinn_exp.device import DeviceSpec, available_cpus

    cpus = available_cpus()
    assert DeviceSpec("cpu", threads=cpus).threads == cpus
    with pytest.raises(ValueError, match=rf"device.threads={cpus + 1} is not allowed here.*{cpus}"):
        DeviceSpec("cpu", threads=cpus + 1)


def test_a_huge_thread_count_exits_2_with_a_failed_record_and_no_lock(root, tmp_path, tiny):
    """``device.threads=100000`` crashed torch (a segmentation fault: the record stayed
    ``running``, the lock stayed); it is refused before anything trains."""
    run_dir = tmp_path / "run"
    proc = _run(root, tmp_path, *tiny, "device.threads=100000", f"hydra.run.dir={run_dir}")
    _one_line_refusal(proc, "device.threads=100000")
    record = OmegaConf.to_container(OmegaConf.load(run_dir / "metrics.json"))
    assert (record["status"], record["phase"]) == ("failed", "config")
    assert not (run_dir / ".run.lock").exists() and not (run_dir / "history.csv").exists()


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["pde=helmholtz", "pde.a1=1e300"], "pde.a1=1e+300"),  # sin(a1 pi x) in float32: inf
        (["pde=helmholtz", "pde.k=1e200"], "pde.k=1e+200"),  # k^2 overflows Python's float
        (["pde=convection", "pde.beta=1e308"], "pde.beta=1e+308"),
        (["pde=convection", "pde.beta=1e20"], "pde.beta=1e+20"),  # the residual^2 in float32
        (["pde=helmholtz", "pde.k=1e200", "device.dtype=float64"], "pde.k=1e+200"),
    ],
)
def test_pde_values_that_the_dtype_cannot_represent_are_refused(overrides, key, compose):
    with pytest.raises(ConfigError, match=re.escape(key)) as refused:
        build(compose(["device=cpu", *overrides]), training=False)
    assert "\n" not in str(refused.value)


def test_a_large_value_that_float64_represents_builds_in_float64(compose):
    """beta = 1e20: its squared residual overflows float32, not float64; the check lets it be."""
    built = build(
        compose(["device=cpu", "pde=convection", "pde.beta=1e20", "device.dtype=float64"])
    )
    assert built.pde.beta == 1e20


def test_the_representability_check_leaves_the_runs_probe_generator_as_it_was(compose):
    """The check evaluates the Laplacian on a copy: Hutchinson's probes start where the seed
    puts them, as without the check."""
    built = build(compose(["device=cpu", "pde=laplace", "pde.dim=5", "laplacian=hutchinson"]))
    fresh = torch.Generator().manual_seed(0)
    assert torch.equal(built.laplacian.generator.get_state(), fresh.get_state())


# ------------------------------------------------------------------ values a run does not use


def test_rounds_of_a_single_stage_sampler_are_recorded_as_the_zero_it_runs(compose, caplog):
    from pinn_exp.runner import base_record

    with caplog.at_level("WARNING"):
        built = build(compose(["device=cpu", "sampler=random_r", "rounds=2"]), training=False)
    assert built.rounds == 0
    assert base_record(built, {}).rounds == 0
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(said) == 1 and "rounds=2 is not used" in said[0]


@pytest.mark.parametrize(
    ("overrides", "grid"),
    [(["pde=laplace"], 101 * 101), (["pde=heat", "pde.dim=2"], 201 * 101)],
)
def test_n_test_at_a_grid_reference_is_recorded_as_the_grid_it_uses(
    overrides, grid, compose, caplog
):
    from pinn_exp.runner import base_record

    with caplog.at_level("WARNING"):
        built = build(compose(["device=cpu", *overrides, "pde.n_test=500"]), training=False)
    assert len(built.pde.reference()[0]) == grid
    assert base_record(built, {}).to_json()["pde.n_test"] == grid
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(said) == 1 and "pde.n_test=500 is not used" in said[0]
    # where the test set is drawn, n_test is used as given: no warning, no record field
    caplog.clear()
    with caplog.at_level("WARNING"):
        built = build(compose(["device=cpu", "pde=laplace", "pde.dim=3", "pde.n_test=500"]))
    assert len(built.pde.reference()[0]) == 500
    assert "pde.n_test" not in base_record(built, {}).to_json()
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_the_report_does_not_split_runs_by_an_n_test_they_did_not_use(tmp_path, compose):
    """Two runs of pde=laplace at d = 2 that differ only in pde.n_test computed the same
    thing: one setting, the later a duplicate of the earlier (same seed)."""
    from pinn_exp.io.storage import write_json
    from pinn_exp.report.runs import DUPLICATE_OF, collect_runs
    from pinn_exp.runner import base_record

    for n_test in (500, 10_000):
        cfg = compose(["device=cpu", "pde=laplace", f"pde.n_test={n_test}"])
        built = build(cfg, training=False)
        run_dir = tmp_path / f"n{n_test}"
        run_dir.mkdir()
        (run_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg))
        record = base_record(built, {"pde": "laplace", "sampler": "rsmote"})
        record.update(status="ok", l2_rel_error=0.1)
        write_json(run_dir / "metrics.json", record.to_json())
    frame = collect_runs([tmp_path])
    assert list(frame["pde.n_test"]) == [101 * 101, 101 * 101]
    assert frame[DUPLICATE_OF].notna().sum() == 1


# ------------------------------------------------------------ Hydra's errors, in one line


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ["pde=convection", "pde.beta=abc"],
            "error: pde.beta=abc is not allowed; it must be a number",
        ),
        (
            ["sampler=rsmote_hybrid", "sampler.every=1.5"],
            "error: sampler.every=1.5 is not allowed; it must be an integer",
        ),
        (["pde.dim=2.5"], "error: pde.dim=2.5 is not allowed; it must be an integer, or null"),
        (
            ["device.threads=abc"],
            "error: device.threads=abc is not allowed; it must be an integer, or null",
        ),
        (["resume=maybe"], "error: resume=maybe is not allowed; it must be true or false"),
        (
            ["budget=bogus"],
            "error: budget=bogus is not allowed; choose one of paper, reference, short",
        ),
    ],
)
def test_hydras_composition_errors_become_one_line(overrides, line, compose):
    from pinn_exp.hydra_adapter import composition_line

    with pytest.raises(Exception) as raised:
        compose(overrides)
    assert composition_line(raised.value) == line


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
    from pinn_exp.hydra_adapter import unknown_key_line

    with pytest.raises(Exception) as caught:
        compose_config([override])
    line = unknown_key_line(caught.value)
    assert line is not None and expected in line and "\n" not in line


def test_other_composition_errors_keep_hydras_report():
    from pinn_exp.config import compose_config
    from pinn_exp.hydra_adapter import unknown_key_line

    with pytest.raises(Exception) as caught:
        compose_config(["sampler.ratio=abc"])
    assert unknown_key_line(caught.value) is None


def test_a_wrong_type_on_the_command_line_exits_2_in_one_line(root, tmp_path, tiny):
    run_dir = tmp_path / "run"
    proc = _run(root, tmp_path, *tiny, "pde.dim=2.5", f"hydra.run.dir={run_dir}")
    _one_line_refusal(proc, "pde.dim=2.5", "an integer")
    assert not run_dir.exists()


def test_a_sweep_with_a_wrong_value_in_a_later_job_is_refused_before_its_first(
    root, tmp_path, tiny
):
    """``pde.beta=1,abc``: job 0 used to train before job 1 failed to compose (exit 1, Hydra's
    message); every swept value is composed before any job runs."""
    sweep = tmp_path / "sweep"
    args = ["-m", *tiny, "pde=convection", "pde.beta=1,abc", f"hydra.sweep.dir={sweep}"]
    _one_line_refusal(_run(root, tmp_path, *args), "pde.beta=abc", "a number")
    assert not sweep.exists() or not [p for p in sweep.iterdir() if p.is_dir()]


def test_a_key_of_a_swept_group_is_checked_in_each_swept_option(compose):
    """``sampler=rad,rsmote_hybrid sampler.chunk_size=1000``: Hydra composes the sweep with
    the default sampler (rsmote, without chunk_size) first. The key is checked in each swept
    option: one that lacks it is named with its own keys; where all have it the sweep runs
    with ``++sampler.chunk_size=1000``, which sets it in every job."""
    from pinn_exp.hydra_adapter import SweptKeyError, swept_group_key

    with pytest.raises(Exception) as raised:
        compose(["sampler.chunk_size=1000"])
    argv = ["run.py", "-m", "sampler=rad,rsmote", "sampler.chunk_size=1000", "seed=0"]
    with pytest.raises(SweptKeyError, match=r"sampler.chunk_size is not a config key of sampler="):
        swept_group_key(raised.value, argv, compose)
    with pytest.raises(SweptKeyError) as lacking:
        swept_group_key(raised.value, argv, compose)
    assert "of sampler=rsmote;" in str(lacking.value) and "k_neighbors" in str(lacking.value)
    argv[2] = "sampler=rad,rsmote_hybrid"
    rerun = swept_group_key(raised.value, argv, compose)
    assert rerun == ["run.py", "-m", argv[2], "++sampler.chunk_size=1000", "seed=0"]
    for option in ("rad", "rsmote_hybrid"):
        cfg = compose([f"sampler={option}", "++sampler.chunk_size=1000"])
        assert cfg.sampler.chunk_size == 1000
    assert swept_group_key(raised.value, ["run.py", "sampler.chunk_size=1000"], compose) is None


def test_a_sweep_over_options_that_all_have_the_key_gets_past_its_start(root, tmp_path, tiny):
    """The sweep of two samplers with chunk_size is composed (it then stops at a later
    check, ``budget=bogus``, before any job runs: no training here)."""
    sweep = tmp_path / "sweep"
    args = ["-m", *tiny, "sampler=rad,rsmote_hybrid", "sampler.chunk_size=1000"]
    proc = _run(root, tmp_path, *args, "budget=short,bogus", f"hydra.sweep.dir={sweep}")
    _one_line_refusal(proc, "budget=bogus")
    args = ["-m", *tiny, "sampler=rad,rsmote", "sampler.chunk_size=1000"]
    proc = _run(root, tmp_path, *args, f"hydra.sweep.dir={sweep}")
    _one_line_refusal(proc, "sampler.chunk_size", "sampler=rsmote", "k_neighbors")


def test_a_launcher_key_of_the_batched_launcher_names_it(root, tmp_path, tiny):
    """hydra.launcher.vectorize=true with the basic launcher: one line naming
    hydra/launcher=batched (it listed the basic launcher's keys: none)."""
    sweep_dir = tmp_path / "s"
    proc = _run(
        root,
        tmp_path,
        "-m",
        *tiny,
        "seed=0,1",
        "hydra.launcher.vectorize=true",
        f"hydra.sweep.dir={sweep_dir}",
    )
    said = _one_line_refusal(proc, "hydra.launcher.vectorize")
    assert "hydra/launcher=batched" in said
    assert not sweep_dir.exists() or not any(p.is_dir() for p in sweep_dir.iterdir())


def test_a_swept_thread_count_no_run_can_use_is_refused_before_any_job(root, tmp_path, tiny):
    """``-m device.threads=1,100000`` ran job 0, then recorded job 1 failed; like
    ``seed=0,abc`` it is refused before any job runs."""
    sweep_dir = tmp_path / "s"
    tiny = [o for o in tiny if not o.startswith("device.threads=")]
    proc = _run(
        root, tmp_path, "-m", *tiny, "device.threads=1,100000", f"hydra.sweep.dir={sweep_dir}"
    )
    _one_line_refusal(proc, "device.threads=100000")
    assert not sweep_dir.exists() or not any(p.is_dir() for p in sweep_dir.iterdir())
