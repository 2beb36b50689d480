"""Typed schemas of every config group, registered in Hydra's ConfigStore.

Each ``conf/GROUP/OPTION.yaml`` starts from its schema
(``defaults: [/schema/GROUP/NAME@_here_, _self_]``),
so a value of the wrong type (``sampler.ratio=abc``) or an unknown key (``sampler.ration=0.3``)
fails when the config is composed, before anything runs. Range checks live in the
constructors of the classes the ``_target_`` names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

# The configs: pinn_exp/conf in an installed wheel (the build copies conf/ there), else the
# checkout's conf/ beside the package.
_PACKAGED = Path(__file__).resolve().parent / "conf"
CONF_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parents[1] / "conf"

# ---------------------------------------------------------------------------------------- pde


@dataclass
class BurgersConf:
    _target_: str = "pinn_exp.pdes.Burgers"
    dim: int | None = None


@dataclass
class AllenCahnConf:
    _target_: str = "pinn_exp.pdes.AllenCahn"
    dim: int | None = None


@dataclass
class LaplaceConf:
    _target_: str = "pinn_exp.pdes.Laplace"
    dim: int = 2
    n_boundary: int = 1000
    boundary_weight: float = 1.0
    n_test: int = 10_000


@dataclass
class EllipticConf:
    _target_: str = "pinn_exp.pdes.Elliptic"
    dim: int = 10
    coefficient_seed: int = 0
    n_test: int = 10_000


@dataclass
class ReactionDiffusionConf:
    _target_: str = "pinn_exp.pdes.ReactionDiffusion"
    dim: int | None = None
    n_initial: int = 256
    n_boundary: int = 256
    initial_weight: float = 1.0
    boundary_weight: float = 1.0


# ------------------------------------------------------------------------------------ sampler


@dataclass
class UniformConf:
    _target_: str = "pinn_exp.samplers.Uniform"
    method: str = "pseudo"


@dataclass
class RandomRConf:
    _target_: str = "pinn_exp.samplers.RandomR"


@dataclass
class DenseConf:
    _target_: str = MISSING
    n_dense: int = 100_000
    k: float = 1.0
    c: float = 1.0
    chunk_size: int | None = None


@dataclass
class R3Conf:
    _target_: str = "pinn_exp.samplers.R3"


@dataclass
class RSmoteConf:
    _target_: str = "pinn_exp.samplers.RSmote"
    ratio: float = 0.1
    k_neighbors: int = 5
    oversampler: str = "smote"
    refresh: float = 0.1


# ------------------------------------------------------------------------ other groups


@dataclass
class ScheduleConf:
    _target_: str = "pinn_exp.training.schedule.Schedule"
    pretrain_steps: int = 2000
    adam_steps: int = 0
    lbfgs_steps: int = 1000
    lr: float = 1e-3
    lbfgs_lr: float = 1.0
    history_size: int = 50
    check_every: int = 50
    lbfgs_impl: str = "torch"
    compile: bool = False
    cuda_graphs: bool = False


@dataclass
class DeviceConf:
    _target_: str = "pinn_exp.device.DeviceSpec"
    name: str = "auto"
    dtype: str = "float32"
    memory_limit_gb: float | None = None
    retain_cpu_memory: bool = True


@dataclass
class MLPConf:
    _target_: str = "pinn_exp.model.MLP"
    width: int = 64
    depth: int = 3
    activation: str = "tanh"


@dataclass
class LaplacianConf:
    _target_: str = "pinn_exp.ops.laplacian.Laplacian"
    method: str = "forward"
    probes: int = 16
    compile: bool = False
    compile_mode: str = "default"


@dataclass
class ReportConf:
    """How the end-of-sweep summary groups its table (``python -m pinn_exp.report`` options)."""

    rows: str = "sampler"
    cols: str = "pde"
    metric: str = "l2_rel_error"


@dataclass
class Config:
    """The primary config: groups plus the top-level keys of SPEC §2."""

    pde: Any = MISSING
    sampler: Any = MISSING
    optimizer: Any = MISSING
    device: Any = MISSING
    model: Any = MISSING
    laplacian: Any = MISSING
    seed: int = 0
    n_points: int = 2000
    rounds: int = 6
    resume: bool = False
    progress: bool = True
    report: ReportConf = field(default_factory=ReportConf)


SCHEMAS = {
    "pde": {
        "burgers": BurgersConf,
        "allen_cahn": AllenCahnConf,
        "laplace": LaplaceConf,
        "elliptic": EllipticConf,
        "reaction_diffusion": ReactionDiffusionConf,
    },
    "sampler": {
        "uniform": UniformConf,
        "random_r": RandomRConf,
        "dense": DenseConf,
        "r3": R3Conf,
        "rsmote": RSmoteConf,
    },
    "optimizer": {"schedule": ScheduleConf},
    "device": {"device": DeviceConf},
    "model": {"mlp": MLPConf},
    "laplacian": {"laplacian": LaplacianConf},
}


def register_configs() -> None:
    """Registers ``base_config`` and ``schema/GROUP/NAME`` for every schema. Idempotent.

    The schemas live in groups of their own, so that Hydra's lists of a group's options
    (``sampler=nope`` answers with them) show the YAML options only; an option extends its
    schema with ``defaults: [/schema/GROUP/NAME@_here_, _self_]``."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


register_configs()


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """Composes conf/config.yaml with ``overrides`` outside ``run.py`` (Hydra's compose API),
    for tests and scripts that build a run without the command line."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(config_name="config", overrides=overrides or [])
