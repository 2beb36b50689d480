"""What a run is made of: the objects :func:`pinn_exp.factory.build` builds from the config,
and the trainer, the ensemble and the runner take."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pinn_exp.device import DeviceSpec
from pinn_exp.model import Solution
from pinn_exp.ops.laplacian import Laplacian
from pinn_exp.pdes.base import PDE
from pinn_exp.samplers.base import Sampler
from pinn_exp.training.schedule import Schedule


@dataclass
class Built:
    """What a run needs, built from the config."""

    pde: PDE
    sampler: Sampler
    model: Solution
    schedule: Schedule
    device: DeviceSpec
    laplacian: Laplacian
    seed: int
    n_points: int
    rounds: int
    #: the run's generator, seeded by ``seed``: the sampler (bound to it here) and the PDE's
    #: soft-constraint points draw from it; checkpoints save its state
    generator: torch.Generator
    #: how ``optimizer.compile`` was decided (:meth:`Schedule.decide_compile`), for the log
    compile_note: str = ""
