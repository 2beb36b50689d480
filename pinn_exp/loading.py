"""A run back from its directory: ``pinn_exp.load_run(DIR)``.

run = pinn_exp.load_run("outputs/DATE/TIME_burgers_rsmote")
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

from pinn_exp.io import storage
from pinn_exp.io.record import CHECKPOINT, COLLOCATION, CONFIG, HISTORY, METRICS
from pinn_exp.metrics.error import l2_relative_error
from pinn_exp.model import Solution
from pinn_exp.pdes.base import PDE


class RunLoadError(ValueError):
    """A run's file is there but cannot be used: the message names the file and what is
    wrong with it."""


def _what(exc: BaseException) -> str:
    """An exception in one line: its type and its message's first line (two where the first
    only introduces the second, as load_state_dict's does)."""
    text = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not text:
        return type(exc).__name__
    first = " ".join(text[:2]) if text[0].endswith(":") else text[0]
    return f"{type(exc).__name__}: {first}"


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
        RunLoadError: naming the file, when one is there but empty, unreadable, not written
            by pinn-exp, or not matching the run's config.
    """
    from pinn_exp.factory import ConfigError, build  # the factory imports every PDE, sampler

    path = Path(path)
    for name in (CONFIG, METRICS, CHECKPOINT):
        if not (path / name).is_file():
            raise FileNotFoundError(
                f"{path / name} does not exist: load_run needs a run directory with "
                f"{CONFIG}, {METRICS} and {CHECKPOINT} (written after the first round)"
            )
    for name in (CONFIG, METRICS, CHECKPOINT):
        if (path / name).stat().st_size == 0:
            raise RunLoadError(f"{path / name} is empty (0 bytes): the run's files are damaged")
    try:
        config = OmegaConf.load(path / CONFIG)
        if not isinstance(config, DictConfig) or "device" not in config:
            raise ValueError("it is not a run's config (no device key)")
        config.device.name = device
    except Exception as exc:  # noqa: BLE001 - any unreadable config is said the same way
        raise RunLoadError(
            f"{path / CONFIG} cannot be read as a run's config ({_what(exc)})"
        ) from None
    try:
        metrics = storage.read_json(path / METRICS)
    except ValueError as exc:
        raise RunLoadError(f"{path / METRICS} cannot be read as JSON ({_what(exc)})") from None
    # building seeds the global generators (the initial weights); the caller's stay as they were
    states = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            built = build(config, training=False)  # it scores no dense set
    except ConfigError as exc:
        raise RunLoadError(f"{path / CONFIG} cannot be built: {exc}") from None
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    _load_weights(path / CHECKPOINT, built.device.device, built.model)
    built.model.eval()
    return LoadedRun(path, config, metrics, built.model, built.pde, built.device.device)


def _load_weights(file: Path, device: torch.device, model: torch.nn.Module) -> None:
    """Loads the weights of the checkpoint ``file`` into ``model``."""
    try:
        snapshot = storage.load_checkpoint(file, device)
    except Exception as exc:  # noqa: BLE001 - truncated, garbage, another format: one message
        raise RunLoadError(
            f"{file} cannot be read as a checkpoint ({_what(exc)}): it is damaged or not a "
            "torch file"
        ) from None
    state = snapshot.get("model") if isinstance(snapshot, dict) else None
    if not isinstance(state, dict):
        held = sorted(map(str, snapshot))[:8] if isinstance(snapshot, dict) else type(snapshot)
        raise RunLoadError(
            f"{file} is not a pinn-exp checkpoint: it holds no model weights under 'model' "
            f"(it holds {held})"
        )
    try:
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - missing, extra or mis-shaped weights
        raise RunLoadError(
            f"{file} does not fit the run's config ({_what(exc)}); it was written by another "
            "run or another version"
        ) from None
