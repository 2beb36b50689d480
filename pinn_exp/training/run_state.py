"""What a run's checkpoint holds: :class:`RunState` (the records so far, the points) and, in
:func:`snapshot`, everything else a resumed run needs to continue as if uninterrupted (the
model, every generator, the meters, the counters); :func:`restore` loads it back."""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from pinn_exp.metrics import registry as metrics

if TYPE_CHECKING:
    from pinn_exp.training.trainer import Trainer


@dataclass
class RunState:
    """Everything that a checkpoint restores."""

    round_index: int = -1
    points: torch.Tensor | None = None
    #: every registered metric after each round: name -> one value per round
    metrics: dict[str, list[float]] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    round_stats: list[dict] = field(default_factory=list)
    collocation: dict[str, np.ndarray] = field(default_factory=dict)
    #: |residual| on a regular grid after each round (1-D and 2-D domains)
    residual_maps: dict[str, np.ndarray] = field(default_factory=dict)
    #: wall time of the run up to its last checkpoint (:func:`snapshot`), earlier sessions
    #: included: what a resume starts from
    elapsed_s: float = 0.0


def snapshot(trainer: Trainer) -> dict:
    """The state a resumed run needs (model, points, generators, records so far)."""
    now = time.perf_counter()  # one reading: no time falls between the two clocks
    trainer.state.elapsed_s, trainer.started = trainer.elapsed_s(now), now
    return {
        "state": copy.deepcopy({k: v for k, v in vars(trainer.state).items()}),
        "model": trainer.model.state_dict(),
        "generator": trainer.generator.get_state(),
        "laplacian_generator": trainer.laplacian.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        "meter": trainer.meter.state_dict(),
        "n_evals": trainer.scorer.n_evals,
        "config": trainer.run_config,  # the resume guard compares it
    }


def restore(trainer: Trainer, snap: dict) -> None:
    """Loads a :func:`snapshot` into ``trainer``."""
    state = dict(snap["state"])
    if "errors" in state:  # a checkpoint of an earlier version: the L2 error only
        state["metrics"] = {metrics.PRIMARY: state.pop("errors")}
    trainer.state = RunState(**state)
    trainer.state.points = trainer.state.points.to(trainer.device)
    trainer.model.load_state_dict(snap["model"])
    trainer.generator.set_state(snap["generator"])
    trainer.laplacian.generator.set_state(snap["laplacian_generator"])
    torch.set_rng_state(snap["torch_rng"])
    np.random.set_state(snap["numpy_rng"])
    random.setstate(snap["python_rng"])
    trainer.meter.load_state_dict(snap["meter"])
    trainer.scorer.n_evals = snap["n_evals"]
