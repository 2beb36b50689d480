"""Every option of every config group composes and instantiates; bad input is refused."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import ValidationError
from support import CONF

from pinn_exp.config import GROUPS as SCHEMA_GROUPS
from pinn_exp.config import schema_of
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
def test_every_option_composes_and_builds(group, option, compose):
    overrides = [f"{group}={option}", "n_points=200"]
    cfg = compose(overrides)
    built = build(cfg)
    assert type(built).__name__ == "Built"
    if group == "pde":
        assert built.pde.name == option
    if group == "sampler":
        assert option.startswith(built.sampler.name)


def test_experiment_files_exist(conf_dir):
    names = {p.stem for p in (conf_dir / "experiment").glob("*.yaml")}
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


EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml") if p.stem[0] != "_")
TABLES = ["burgers_table", "allen_cahn_table", "laplace_table", "reaction_diffusion_table"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_builds(name, compose):
    cfg = compose([f"+experiment={name}"])
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
        (["optimizer.compile=maybe"], "optimizer.compile"),
        (["optimizer.compile=1"], "optimizer.compile"),
    ],
)
def test_bad_values_are_refused_before_training(overrides, key, compose):
    cfg = compose(overrides)
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
def test_wrong_types_fail_at_composition(override, key, compose):
    with pytest.raises((ConfigCompositionException, ValidationError), match=key):
        compose([override])


def test_conf_dir_has_every_group(conf_dir):
    for group in GROUPS + ["experiment"]:
        assert (Path(conf_dir) / group).is_dir()


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
def test_non_finite_and_out_of_range_values_are_refused_before_training(override, key, compose):
    with pytest.raises(ConfigError) as info:
        build(compose(override.split()))
    message = str(info.value)
    assert message.startswith(f"{key}=") and "not allowed" in message


def test_arrays_larger_than_the_free_memory_are_refused_before_training(compose):
    with pytest.raises(ConfigError, match=r"^pde.n_test=10000 at pde.dim=1000000 is not allowed"):
        build(compose(["pde=elliptic", "pde.dim=1000000"]))
    with pytest.raises(ConfigError, match=r"^sampler.n_dense=10000000000000 at pde.dim=2"):
        build(compose(["sampler=rad", "sampler.n_dense=10000000000000"]))


def test_memory_limit_on_a_cpu_warns_that_it_applies_to_cuda_only(compose):
    with pytest.warns(UserWarning, match="device.memory_limit_gb=2.0 applies to CUDA only"):
        build(compose(["device=cpu", "device.memory_limit_gb=2"]))


def _schemas():
    for group, (supplied, targets) in SCHEMA_GROUPS.items():
        for name, target in targets.items():
            yield pytest.param(target, supplied, id=f"{group}/{name}")


@pytest.mark.parametrize(("target", "supplied"), list(_schemas()))
def test_schemas_are_the_class_signatures(target, supplied):
    """Every key of a schema is a constructor argument with the constructor's default."""
    fields = {f.name: f.default for f in dataclasses.fields(schema_of(target, supplied))}
    assert fields.pop("_target_") == target
    params = inspect.signature(get_class(target)).parameters.values()
    expected = {
        p.name: MISSING if p.default is p.empty else p.default
        for p in params
        if p.name not in supplied
    }
    assert fields == expected


def _option_files():
    for group in GROUPS:
        for path in sorted((CONF / group).glob("*.yaml")):
            yield pytest.param(path, id=f"{group}/{path.stem}")


CONTRIBUTE = (
    "an option contributed to conf/ extends its schema: start it with `defaults: "
    "[/schema/{group}/NAME@_here_, _self_]` and register NAME and its class in GROUPS of "
    'pinn_exp/config.py (docs/extending.md, "Contributing an option to conf/"); a file '
    "with its own `_target_` belongs in a folder of your own on the search path"
)


def option_file_problems(path: Path, compose) -> list[str]:
    """What an option file of conf/ does wrong: no schema to extend, its own ``_target_``,
    or a key restating the class's default."""
    own = OmegaConf.to_container(OmegaConf.load(path))
    defaults = own.pop("defaults", None)
    if not defaults or defaults[-1] != "_self_" or "_target_" in own:
        return [f"{path.parent.name}/{path.name}: " + CONTRIBUTE.format(group=path.parent.name)]
    parent = defaults[0]
    if parent.startswith("/schema/"):  # compare with the class's defaults
        group, name = parent.removeprefix("/schema/").removesuffix("@_here_").split("/")
        supplied, targets = SCHEMA_GROUPS[group]
        node = OmegaConf.structured(schema_of(targets[name], supplied))
    else:  # extends another option of the group
        node = compose([f"{path.parent.name}={parent}"])[path.parent.name]
    return [
        f"{path.name} restates {key}={value!r}, the default"
        for key, value in own.items()
        if node[key] == value
    ]


@pytest.mark.parametrize("path", list(_option_files()))
def test_option_files_state_only_what_differs_from_the_class_defaults(path, compose):
    assert option_file_problems(path, compose) == []


def test_an_option_with_only_its_target_in_conf_is_told_where_it_belongs(tmp_path, compose):
    path = tmp_path / "sampler" / "mine.yaml"
    path.parent.mkdir()
    path.write_text("_target_: my_samplers.Mine\n")
    (problem,) = option_file_problems(path, compose)
    assert "/schema/sampler/NAME@_here_" in problem and "GROUPS of pinn_exp/config.py" in problem
    assert "a folder of your own on the search path" in problem


def test_contributing_an_option_to_conf_as_the_recipe_says(tmp_path, monkeypatch):
    """docs/extending.md, "Contributing an option to conf/": a class registered in GROUPS
    and a YAML file extending its schema compose, build and pass the option-file check."""
    import shutil

    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.config_store import ConfigStore

    from pinn_exp import config as config_module

    supplied, targets = SCHEMA_GROUPS["sampler"]
    monkeypatch.setitem(
        SCHEMA_GROUPS,
        "sampler",
        config_module.Group(supplied, {**targets, "my_uniform": "pinn_exp.samplers.Uniform"}),
    )
    config_module.register_configs()
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    option = conf / "sampler" / "my_uniform.yaml"
    option.write_text(
        "defaults:\n  - /schema/sampler/my_uniform@_here_\n  - _self_\nmethod: sobol\n"
    )
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(conf)):
            cfg = hydra_compose(config_name="config", overrides=["sampler=my_uniform"])
            assert cfg.sampler._target_ == "pinn_exp.samplers.Uniform"
            assert cfg.sampler.method == "sobol"
            built = build(cfg)
            assert type(built.sampler).__name__ == "Uniform" and built.sampler.method == "sobol"

            def local_compose(overrides):
                return hydra_compose(config_name="config", overrides=overrides)

            assert option_file_problems(option, local_compose) == []
    finally:
        ConfigStore.instance().repo["schema"]["sampler"].pop("my_uniform.yaml", None)


def test_rsmote_option_is_the_framework_default_and_rsmote_paper_the_class_defaults(compose):
    sampler = compose([]).sampler
    assert (sampler.ratio, sampler.refresh) == (0.1, 0.1)
    paper = compose(["sampler=rsmote_paper"]).sampler
    params = inspect.signature(get_class(paper._target_)).parameters
    assert {key: paper[key] for key in params} == {k: p.default for k, p in params.items()}
    assert (paper.ratio, paper.refresh) == (0.45, 0.0)


def test_the_paper_tables_differ_only_in_their_pde(compose):
    configs = {name: OmegaConf.to_container(compose([f"+experiment={name}"])) for name in TABLES}
    pdes = {name: cfg.pop("pde")["_target_"] for name, cfg in configs.items()}
    assert len(set(pdes.values())) == len(TABLES)
    first = configs[TABLES[0]]
    assert all(cfg == first for cfg in configs.values())
    assert first["sampler"]["_target_"].endswith("RSmote") and first["rounds"] == 10  # paper


def test_compile_auto_compiles_long_cpu_runs_where_a_compiler_is_found(compose, monkeypatch):
    """optimizer.compile=auto (the default): the default job on the CPU is compiled; a short
    run, a GPU run and a machine without a C++ compiler stay eager, each saying why; an
    explicit true or false is kept."""
    from pinn_exp.training import schedule as schedule_module

    monkeypatch.setattr(schedule_module, "_cxx", lambda: "g++")
    default = build(compose(["device=cpu"]), training=False)
    assert default.schedule.compile is True and default.schedule.steps(6) == 9000
    assert default.compile_note == "optimizer.compile=auto: compiled (CPU, 9,000 steps)"
    short = build(
        compose(["device=cpu", "optimizer.pretrain_steps=1000", "rounds=2"]), training=False
    )
    assert short.schedule.compile is False and "4,000 steps, below 5,000" in short.compile_note
    decided, note = default.schedule.__class__(compile="auto").decide_compile("cuda", 6)
    assert decided.compile is False and "not on the CPU (cuda)" in note
    for kept in (True, False):
        built = build(
            compose(["device=cpu", f"optimizer.compile={str(kept).lower()}"]), training=False
        )
        assert built.schedule.compile is kept
        assert built.compile_note == f"optimizer.compile={str(kept).lower()}"
    random_r = build(compose(["device=cpu", "sampler=random_r"]), training=False)
    assert random_r.schedule.compile is False and "3,000 steps" in random_r.compile_note
    monkeypatch.setattr(schedule_module, "_cxx", lambda: None)
    bare = build(compose(["device=cpu"]), training=False)
    assert bare.schedule.compile is False and "no C++ compiler" in bare.compile_note


def test_a_resumed_run_keeps_the_compile_decision_its_record_holds(compose, tmp_path, monkeypatch):
    """optimizer.compile=auto decides by rounds and by the machine; a resume (which may raise
    rounds, or run on another node) keeps what the run's record says it started with, and the
    record says it (``compiled``, ``lbfgs_impl``)."""
    from pinn_exp import cli, runner
    from pinn_exp.training import schedule as schedule_module

    monkeypatch.setattr(schedule_module, "_cxx", lambda: "g++")
    built = build(compose(["device=cpu"]), training=False)
    record = runner.base_record(built, {}).to_json()
    assert (record["compiled"], record["lbfgs_impl"]) == (True, "torch")
    (tmp_path / "metrics.json").write_text(json.dumps({**record, "compiled": False}))
    kept = cli._first_compile_decision(built, tmp_path)
    assert kept.schedule.compile is False and "as the run's record says" in kept.compile_note
    (tmp_path / "metrics.json").write_text(json.dumps(record))
    assert cli._first_compile_decision(built, tmp_path) is built
    explicit = build(compose(["device=cpu", "optimizer.compile=true"]), training=False)
    (tmp_path / "metrics.json").write_text(json.dumps({**record, "compiled": False}))
    assert cli._first_compile_decision(explicit, tmp_path) is explicit  # asked for: kept
