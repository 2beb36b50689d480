"""Every option of every config group composes and instantiates; bad input is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONF, compose_config
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from pinn_exp.factory import ConfigError, build

GROUPS = ["pde", "sampler", "optimizer", "device", "model", "laplacian"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _cases():
    for group in GROUPS:
        for option in _options(group):
            if group == "device" and option == "cuda":
                continue  # covered by test_cuda_without_cuda_is_refused / the gpu tests
            yield group, option


@pytest.mark.parametrize(("group", "option"), list(_cases()))
def test_every_option_composes_and_builds(group, option):
    overrides = [f"{group}={option}", "n_points=200"]
    cfg = compose_config(overrides)
    built = build(cfg)
    assert type(built).__name__ == "Built"
    if group == "pde":
        assert built.pde.name == option
    if group == "sampler":
        assert option.startswith(built.sampler.name)


def test_experiment_files_exist():
    names = {p.stem for p in (CONF / "experiment").glob("*.yaml")}
    expected = {
        "burgers_table",
        "allen_cahn_table",
        "laplace_table",
        "reaction_diffusion_table",
        "memory_vs_dim",
        "lambda_ablation",
        "n_points_ablation",
        "smoke",
    }
    assert expected <= names


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_experiment_composes_and_builds(name):
    cfg = compose_config([f"+experiment={name}"])
    built = build(cfg)
    assert built.n_points == cfg.n_points


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["sampler.ratio=0.5"], "sampler.ratio"),
        (["sampler.ratio=0"], "sampler.ratio"),
        (["sampler.ratio=-0.1"], "sampler.ratio"),
        (["sampler.k_neighbors=0"], "sampler.k_neighbors"),
        (["n_points=3"], "n_points"),
        (["n_points=11", "sampler.k_neighbors=5"], "n_points"),
        (["rounds=-1"], "rounds"),
        (["seed=-3"], "seed"),
        (["pde=burgers", "pde.dim=7"], "pde.dim"),
        (["pde=allen_cahn", "pde.dim=3"], "pde.dim"),
        (["pde=elliptic", "pde.dim=0"], "pde.dim"),
        (["pde=laplace", "pde.dim=1"], "pde.dim"),
        (["sampler=rad", "sampler.n_dense=10"], "sampler.n_dense"),
        (["sampler=rad", "sampler.chunk_size=0"], "sampler.chunk_size"),
        (["sampler=rar_d", "rounds=0"], "rounds"),
        (["sampler=uniform", "sampler.method=grid"], "sampler.method"),
        (["sampler.oversampler=tomek"], "sampler.oversampler"),
        (["sampler.refresh=0.7"], "sampler.refresh"),
        (["optimizer.lr=-1"], "optimizer.lr"),
        (["optimizer.lr=nan"], "optimizer.lr"),
        (["optimizer.adam_steps=-5"], "optimizer.adam_steps"),
        (["device.dtype=float16x"], "device.dtype"),
        (["model.activation=relu6"], "model.activation"),
        (["model.width=0"], "model.width"),
        (["laplacian.method=magic"], "laplacian.method"),
        (["laplacian=hutchinson", "laplacian.probes=0"], "laplacian.probes"),
        (["laplacian.compile_mode=fastest"], "laplacian.compile_mode"),
    ],
)
def test_bad_values_are_refused_before_training(overrides, key):
    cfg = compose_config(overrides)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build(cfg)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("seed=abc", "seed"),
        ("sampler.ratio=abc", "ratio"),
        ("n_points=1.5", "n_points"),
        ("sampler.ration=0.3", "ration"),
        ("rounds=two", "rounds"),
        ("device.retain_cpu_memory=maybe", "retain_cpu_memory"),
    ],
)
def test_wrong_types_fail_at_composition(override, key):
    with pytest.raises((ConfigCompositionException, ValidationError), match=key):
        compose_config([override])


def test_conf_dir_has_every_group():
    for group in GROUPS + ["experiment"]:
        assert (Path(CONF) / group).is_dir()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("sampler=rad sampler.k=nan", "sampler.k"),
        ("sampler=rad sampler.c=inf", "sampler.c"),
        ("sampler=rad sampler.k=-inf", "sampler.k"),
        ("sampler.ratio=nan", "sampler.ratio"),
        ("optimizer.lr=inf", "optimizer.lr"),
        ("pde=laplace pde.boundary_weight=nan", "pde.boundary_weight"),
        ("device.memory_limit_gb=inf", "device.memory_limit_gb"),
        ("pde=laplace pde.dim=3 pde.n_test=0", "pde.n_test"),
        ("pde=laplace pde.dim=3 pde.n_test=-5", "pde.n_test"),
        ("pde=elliptic pde.n_test=0", "pde.n_test"),
        ("pde=elliptic pde.coefficient_seed=-1", "pde.coefficient_seed"),
        ("seed=18446744073709551616", "seed"),
        ("seed=-1", "seed"),
    ],
)
def test_non_finite_and_out_of_range_values_are_refused_before_training(override, key):
    with pytest.raises(ConfigError) as info:
        build(compose_config(override.split()))
    message = str(info.value)
    assert message.startswith(f"{key}=") and "not allowed" in message


def test_arrays_larger_than_the_free_memory_are_refused_before_training():
    with pytest.raises(ConfigError, match=r"^pde.n_test=10000 at pde.dim=1000000 is not allowed"):
        build(compose_config(["pde=elliptic", "pde.dim=1000000"]))
    with pytest.raises(ConfigError, match=r"^sampler.n_dense=10000000000000 at pde.dim=2"):
        build(compose_config(["sampler=rad", "sampler.n_dense=10000000000000"]))


def test_memory_limit_on_a_cpu_warns_that_it_applies_to_cuda_only():
    with pytest.warns(UserWarning, match="device.memory_limit_gb=2.0 applies to CUDA only"):
        build(compose_config(["device=cpu", "device.memory_limit_gb=2"]))
