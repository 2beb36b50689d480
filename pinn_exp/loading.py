"""A run back from its directory: ``pinn_exp.load_run(DIR)``.

run = pinn_exp.load_run("outputs/2026-11-27/10-00-00-000000_burgers_rsmote")
run.metrics["l2_rel_error"], run.evaluate()      # the recorded error, and recomputed
u = run.model(torch.rand(100, 2) * 2 - 1)         # u(x, t) at any (n, d) points
run.config.sampler, run.history, run.collocation["round_6"]
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from pinn_exp.io import records
from pinn_exp.io.record import CHECKPOINT, COLLOCATION, CONFIG, HISTORY, METRICS
from pinn_exp.metrics.error import l2_relative_error
from pinn_exp.model import Solution
from pinn_exp.pdes.base import PDE


@dataclass
class LoadedRun:
    """A run's config, records and trained model.

    Attributes:
        path: the run's directory.
        config: the resolved config the run was made with.
        metrics: its ``metrics.json``.
        model: the solution u(x) from ``checkpoint.pt`` (the last completed round), in eval
            mode on ``device``; call it on an (n, d) tensor of the run's dtype.
        pde: the PDE, with its test set.
        device: where the model is.
    """

    path: Path
    config: DictConfig
    metrics: dict
    model: Solution
    pde: PDE
    device: torch.device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def history(self) -> pd.DataFrame:
        """``history.csv``: one row per optimizer step."""
        return pd.read_csv(self.path / HISTORY)

    @property
    def collocation(self) -> dict[str, np.ndarray]:
        """The interior points after each round (``round_0``, ``round_1``, ...)."""
        with np.load(self.path / COLLOCATION) as data:
            return {key: data[key] for key in data.files}

    @torch.no_grad()
    def predict(self, x: torch.Tensor | np.ndarray, chunk_size: int = 65536) -> torch.Tensor:
        """u at the points ``x`` (n, d), as (n,), in chunks and without a graph."""
        x = torch.as_tensor(x, dtype=self.dtype, device=self.device)
        return torch.cat([self.model(c).reshape(-1) for c in torch.split(x, chunk_size)])

    def evaluate(self) -> float:
        """The relative L2 error on the PDE's test set, as the run computed it."""
        x_test, u_test = self.pde.reference()
        u = torch.as_tensor(u_test, dtype=torch.float64, device=self.device)
        return l2_relative_error(self.predict(x_test), u)


def load_run(path: str | Path, device: str = "cpu") -> LoadedRun:
    """Loads the run in ``path``: its config, records and the model of its checkpoint.

    Args:
        path: the run's directory (the one with ``metrics.json``).
        device: where to put the model: ``cpu`` (default), ``cuda`` or ``auto``.

    Raises:
        FileNotFoundError: naming the missing file, when ``path`` is not a run's directory
            or the run finished no round (no ``checkpoint.pt``).
    """
    from pinn_exp.factory import build  # the factory imports every PDE and sampler

    path = Path(path)
    for name in (CONFIG, METRICS, CHECKPOINT):
        if not (path / name).is_file():
            raise FileNotFoundError(
                f"{path / name} does not exist: load_run needs a run directory with "
                f"{CONFIG}, {METRICS} and {CHECKPOINT} (written after the first round)"
            )
    config = OmegaConf.load(path / CONFIG)
    config.device.name = device
    # building seeds the global generators (the initial weights); the caller's stay as they were
    states = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        built = build(config)
    random.setstate(states[0])
    np.random.set_state(states[1])
    snapshot = records.load_checkpoint(path / CHECKPOINT, built.device.device)
    built.model.load_state_dict(snapshot["model"])
    built.model.eval()
    return LoadedRun(path, config, records.read_json(path / METRICS), built.model,
                     built.pde, built.device.device)  # fmt: skip
