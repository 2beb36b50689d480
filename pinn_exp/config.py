"""The config schemas, derived from the classes they configure, registered in Hydra's
ConfigStore.

A class's constructor signature is the one place that states an option's keys, types and
defaults: :func:`schema_of` turns it into a structured-config dataclass (``_target_`` plus one
typed field per argument). Each ``conf/GROUP/OPTION.yaml`` starts from its schema
(``defaults: [/schema/GROUP/NAME@_here_, _self_]``) and states only what differs from the
class's defaults, so a value of the wrong type (``sampler.ratio=abc``) or an unknown key
(``sampler.ration=0.3``) fails when the config is composed, before anything runs; a key added
with ``+`` that nothing reads fails in :func:`check_keys`. Range checks live in the
constructors.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.utils import get_class
from omegaconf import MISSING, DictConfig, OmegaConf

# The configs: pinn_exp/conf in an installed wheel (the build copies conf/ there), else the
# checkout's conf/ beside the package.
_PACKAGED = Path(__file__).resolve().parent / "conf"
CONF_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parents[1] / "conf"

#: the types a structured-config field may have as they are; anything else becomes ``Any``
_PRIMITIVES = (int, float, str, bool)


class Group(NamedTuple):
    """The schemas of one config group."""

    #: constructor arguments that pinn_exp.factory.build passes itself: not config keys
    supplied: tuple[str, ...]
    #: schema name -> import path of the class it configures (also the schema's ``_target_``)
    targets: dict[str, str]


#: the Adam-only schedule (``optimizer=adam``): a budget's ``${lbfgs:N}`` is 0 for it
ADAM_ONLY = "pinn_exp.training.schedule.AdamOnly"

GROUPS: dict[str, Group] = {
    "pde": Group(
        (),
        {
            "burgers": "pinn_exp.pdes.Burgers",
            "allen_cahn": "pinn_exp.pdes.AllenCahn",
            "laplace": "pinn_exp.pdes.Laplace",
            "elliptic": "pinn_exp.pdes.Elliptic",
            "reaction_diffusion": "pinn_exp.pdes.ReactionDiffusion",
            "convection": "pinn_exp.pdes.Convection",
            "helmholtz": "pinn_exp.pdes.Helmholtz",
            "poisson_lshape": "pinn_exp.pdes.PoissonLShape",
            "heat": "pinn_exp.pdes.Heat",
            "wave": "pinn_exp.pdes.Wave",
        },
    ),
    "sampler": Group(
        (),
        {
            "uniform": "pinn_exp.samplers.Uniform",
            "random_r": "pinn_exp.samplers.RandomR",
            "rad": "pinn_exp.samplers.RAD",
            "rar_d": "pinn_exp.samplers.RARD",
            "rar_g": "pinn_exp.samplers.RARG",
            "r3": "pinn_exp.samplers.R3",
            "rsmote": "pinn_exp.samplers.RSmote",
            "rsmote_hybrid": "pinn_exp.samplers.RSmoteHybrid",
        },
    ),
    "optimizer": Group(
        (),
        {"schedule": "pinn_exp.training.schedule.Schedule", "adam": ADAM_ONLY},
    ),
    "device": Group((), {"device": "pinn_exp.device.DeviceSpec"}),
    # in_dim: the PDE's dimension; out_dim: 1, the solution is scalar
    "model": Group(("in_dim", "out_dim"), {"mlp": "pinn_exp.model.MLP"}),
    # seed: the run's seed
    "laplacian": Group(("seed",), {"laplacian": "pinn_exp.ops.laplacian.Laplacian"}),
    # logger=none (the default) is no node at all: nothing is tracked, nothing imported
    "logger": Group((), {"mlflow": "pinn_exp.io.tracker.MLflowLogger"}),
}


def config_type(annotation: Any, default: Any = MISSING) -> Any:
    """The structured-config type of a constructor argument.

    Args:
        annotation: the argument's annotation (evaluated), or ``inspect.Parameter.empty``.
        default: the argument's default; a None default makes the type optional.

    Returns:
        ``int``, ``float``, ``str`` or ``bool`` as they are, one of them ``| None``
        (annotated so, or annotated without None but with a None default), else ``Any``.
    """
    if annotation in _PRIMITIVES:
        return annotation | None if default is None else annotation
    args = typing.get_args(annotation)
    if len(args) == 2 and type(None) in args:
        inner = args[0] if args[1] is type(None) else args[1]
        if inner in _PRIMITIVES:
            return inner | None
    return Any


def constructor_parameters(cls: type) -> list[inspect.Parameter]:
    """The parameters of ``cls``'s constructor, with their annotations evaluated.

    An annotation that cannot be evaluated at run time (a name imported for type checkers
    only) becomes ``Any`` instead of failing the import of the configs.
    """
    try:
        return list(inspect.signature(cls, eval_str=True).parameters.values())
    except NameError:
        namespace = getattr(cls.__init__, "__globals__", {})

        def evaluate(annotation: Any) -> Any:
            if not isinstance(annotation, str):
                return annotation
            try:
                return eval(annotation, namespace)
            except NameError:
                return Any

        parameters = inspect.signature(cls).parameters.values()
        return [p.replace(annotation=evaluate(p.annotation)) for p in parameters]


def schema_of(target: str, supplied: tuple[str, ...] = ()) -> type:
    """A structured-config dataclass from the constructor of the class at ``target``.

    Args:
        target: the class's import path, e.g. ``pinn_exp.samplers.RSmote``; it is also the
            schema's ``_target_``, the class that ``hydra.utils.instantiate`` builds.
        supplied: constructor arguments that the factory passes itself, left out of the schema.

    Returns:
        A dataclass named ``<Class>Conf`` with ``_target_`` and, in the signature's order, one
        field per remaining argument: its name, :func:`config_type` of its annotation, its
        default (``???``, i.e. required, where it has none).
    """
    cls = get_class(target)
    fields: list[tuple[str, Any, Any]] = [("_target_", str, field(default=target))]
    for p in constructor_parameters(cls):
        if p.name in supplied or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = MISSING if p.default is p.empty else p.default
        if isinstance(default, (list, dict)):
            spec = field(default_factory=lambda value=default: copy.deepcopy(value))
        else:
            spec = field(default=default)
        fields.append((p.name, config_type(p.annotation, default), spec))
    return dataclasses.make_dataclass(f"{cls.__name__}Conf", fields)


@dataclass
class ReportConf:
    """How the end-of-sweep summary groups its table (``python -m pinn_exp.report`` options)."""

    rows: str = "sampler"
    cols: str = "pde"
    metric: str = "l2_rel_error"
    baseline: str | None = None


@dataclass
class Config:
    """The primary config: one option of each group plus the run's top-level keys."""

    pde: Any = MISSING
    sampler: Any = MISSING
    optimizer: Any = MISSING
    device: Any = MISSING
    model: Any = MISSING
    laplacian: Any = MISSING
    #: the experiment tracker the run mirrors its record into (conf/logger); None: none
    logger: Any = None
    #: seeds the network's weights, the sampler's generator and the Laplacian's probes
    seed: int = 0
    #: size N of the interior collocation set (the paper's #Sampling)
    n_points: int = 2000
    #: sampling rounds after the initial training
    rounds: int = 6
    #: continue from checkpoint.pt in hydra.run.dir
    resume: bool = False
    #: progress bar over the optimizer steps
    progress: bool = True
    report: ReportConf = field(default_factory=ReportConf)


def register_configs() -> None:
    """Registers ``base_config`` and ``schema/GROUP/NAME`` for every schema. Idempotent.

    The schemas live in groups of their own, so that Hydra's lists of a group's options
    (``sampler=nope`` answers with them) show the YAML options only; an option extends its
    schema with ``defaults: [/schema/GROUP/NAME@_here_, _self_]``."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for group, (supplied, targets) in GROUPS.items():
        for name, target in targets.items():
            cs.store(group=f"schema/{group}", name=name, node=schema_of(target, supplied))


def lbfgs_budget(steps: int, *, _parent_: DictConfig) -> int:
    """``${lbfgs:N}`` in a budget file (conf/budget): N L-BFGS iterations for the optimizer
    node it sits in, or 0 where that optimizer is Adam only (``optimizer=adam``), so that a
    budget over ``optimizer=adam`` composes the Adam-only schedule it names."""
    target = _parent_.get("_target_")
    try:
        adam_only = target is not None and issubclass(get_class(target), get_class(ADAM_ONLY))
    except (ImportError, ValueError, TypeError):  # no class there: Hydra says so when building
        adam_only = False
    return 0 if adam_only else steps


def help_groups() -> str:
    """``${help_groups:}`` in ``--help`` (conf/config.yaml): the config groups a user chooses
    from, one line each, as Hydra lists them (user folders on the search path included),
    without the schemas the option files extend (``schema/...``) and the options whose name
    starts with ``_`` (bases that experiment files extend, not experiments)."""
    from hydra.core.global_hydra import GlobalHydra

    hydra = GlobalHydra.instance().hydra
    if hydra is None:
        return ""
    lines = []
    for group in sorted(hydra.list_all_config_groups()):
        if group == "hydra" or group.startswith(("hydra/", "schema/", "schema")):
            continue
        options = sorted(
            o for o in hydra.config_loader.get_group_options(group) if not o.startswith("_")
        )
        if options:
            lines.append(f"{group}: {', '.join(options)}")
    return "\n".join(lines)


register_configs()
OmegaConf.register_new_resolver("lbfgs", lbfgs_budget, replace=True)
OmegaConf.register_new_resolver("help_groups", help_groups, replace=True)


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """Composes conf/config.yaml with ``overrides`` outside ``run.py`` (Hydra's compose API),
    for tests and scripts that build a run without the command line."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(config_name="config", overrides=overrides or [])


class ConfigError(ValueError):
    """A user error in the config: the message names the key, the value and what is allowed."""


#: keys of a node with ``_target_`` that hydra.utils.instantiate reads itself
_INSTANTIATE_KEYS = ("_target_", "_recursive_", "_convert_", "_partial_", "_args_")


def _unknown_key(name: str, value, known: list[str], where: str) -> ConfigError:
    key = name.rsplit(".", 1)[-1]
    match = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {name[: -len(key)]}{match[0]}?)" if match else ""
    return ConfigError(
        f"{name}={value!r} is not allowed: {name} is not a config key{hint}; {where} are "
        f"{', '.join(known)}"
    )


def _constructor_keys(group: str, node: DictConfig) -> list[str] | None:
    """The keys a group's node may have: its class's constructor arguments less those the
    factory passes itself; None where the class takes any keyword (or cannot be imported:
    building says why)."""
    try:
        parameters = constructor_parameters(get_class(node._target_))
    except Exception:  # noqa: BLE001 - a bad _target_ is refused when it is instantiated
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    supplied = GROUPS[group].supplied if group in GROUPS else ()
    names = [p.name for p in parameters if p.kind is not p.VAR_POSITIONAL]
    return [name for name in names if name not in supplied]


def check_keys(cfg: DictConfig) -> None:
    """Refuses keys that nothing reads: a top-level key, or a key of a group's option, that
    was added with ``+`` (``+n_point=500``, ``+sampler.ration=0.3``) and would otherwise be
    ignored; the message suggests the nearest key. Hydra refuses such keys without ``+``."""
    top = [f.name for f in dataclasses.fields(Config)]
    for key, value in cfg.items():
        if key == "hydra":
            continue
        if key not in top:
            raise _unknown_key(str(key), value, top, "the top-level keys")
        if not isinstance(value, DictConfig):
            continue
        if "_target_" in value:  # a group's option: its class's arguments
            known = _constructor_keys(str(key), value)
            allowed = _INSTANTIATE_KEYS
        else:  # a nested schema of the primary config (report)
            schema = Config.__dataclass_fields__[key].default_factory
            known = [f.name for f in dataclasses.fields(schema)]
            allowed = ()
        supplied = GROUPS[key].supplied if key in GROUPS else ()
        for name, item in value.items() if known is not None else ():
            if name in supplied:
                raise ConfigError(
                    f"{key}.{name}={item!r} is not allowed: the run sets {key}.{name} itself; "
                    f"the keys of {key} are {', '.join(known)}"
                )
            if name not in known and name not in allowed:
                raise _unknown_key(f"{key}.{name}", item, known, f"the keys of {key}")
