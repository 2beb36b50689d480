"""The one place that turns a composed config into objects (``hydra.utils.instantiate``).

Everything is built and checked here before any training starts, so bad input fails early
with a message naming the key, the value and what is allowed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from pinn_exp.device import DeviceSpec
from pinn_exp.metrics.memory import is_allocation_failure
from pinn_exp.model import MLP, Solution
from pinn_exp.ops.laplacian import Laplacian
from pinn_exp.pdes.base import PDE
from pinn_exp.samplers.base import Sampler
from pinn_exp.training.schedule import Schedule
from pinn_exp.training.trainer import seed_everything

MIN_POINTS = 10


class ConfigError(ValueError):
    """A user error in the config: the message names the key, the value and what is allowed."""


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


def _build(node: DictConfig, key: str, **kwargs):
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if cause is not None and is_allocation_failure(cause):
            raise cause from None  # not a bad value: the caller records it as oom
        if isinstance(cause, (ValueError, TypeError)):
            raise ConfigError(str(cause)) from None
        raise ConfigError(f"{key}: {exc}") from None


def check_finite(node: DictConfig, prefix: str = "") -> None:
    """Refuses NaN and infinite numbers anywhere in the config: no key of this project has a
    use for them (``sampler.k=nan`` would silently turn RAD into uniform sampling)."""
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, DictConfig):
            check_finite(value, f"{name}.")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name}={value!r} is not allowed; it must be a finite number")


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (CUDA: the driver's count; CPU: the kernel's available
    pages), or None where it cannot be told."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:  # MemAvailable counts the page cache the kernel can give back; MemFree does not
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_sizes(pde: PDE, sampler: Sampler, device: DeviceSpec) -> None:
    """Refuses, before training, arrays whose size is known and exceeds the free memory: the
    PDE's test set (float64, built on the host) and a dense sampler's candidate set."""
    gib = 2**30
    host = available_bytes(torch.device("cpu"))
    n_test = getattr(pde, "n_test", None)
    if host is not None and n_test:
        need = 2 * n_test * pde.dim * 8  # the points and NumPy's draw they come from
        if need > host:
            raise ConfigError(
                f"pde.n_test={n_test} at pde.dim={pde.dim} is not allowed here: the test set "
                f"needs about {need / gib:.1f} GiB and {host / gib:.1f} GiB are free; lower "
                "pde.n_test or pde.dim"
            )
    n_dense = getattr(sampler, "n_dense", None)
    free = available_bytes(device.device)
    if free is not None and n_dense:
        need = n_dense * pde.dim * device.dtype.itemsize
        if need > free:
            raise ConfigError(
                f"sampler.n_dense={n_dense} at pde.dim={pde.dim} is not allowed here: the "
                f"dense set alone needs {need / gib:.1f} GiB and {free / gib:.1f} GiB are "
                f"free on {device.device}; lower sampler.n_dense"
            )


def check_top_level(cfg: DictConfig) -> None:
    """Range checks for ``seed``, ``n_points`` and ``rounds``."""
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not 0 <= cfg.seed < 2**63:
        raise ConfigError(f"seed={cfg.seed!r} is not allowed; it must be an integer in [0, 2^63)")
    if not isinstance(cfg.n_points, int) or cfg.n_points < MIN_POINTS:
        raise ConfigError(
            f"n_points={cfg.n_points!r} is not allowed; it must be an integer >= {MIN_POINTS}"
        )
    if not isinstance(cfg.rounds, int) or cfg.rounds < 0:
        raise ConfigError(f"rounds={cfg.rounds!r} is not allowed; it must be an integer >= 0")


def build(cfg: DictConfig) -> Built:
    """Builds and checks every object of a run.

    Args:
        cfg: the composed config (``conf/config.yaml`` plus overrides).

    Returns:
        The :class:`Built` objects, with the model on the run's device and dtype.

    Raises:
        ConfigError: for any value that is not allowed.
    """
    check_finite(cfg)
    check_top_level(cfg)
    device = _build(cfg.device, "device")
    laplacian = _build(cfg.laplacian, "laplacian", seed=cfg.seed)
    pde = _build(cfg.pde, "pde")
    sampler = _build(cfg.sampler, "sampler")
    generator = torch.Generator().manual_seed(cfg.seed)
    try:  # the sampler refuses an n_points or rounds it cannot work with
        sampler.bind(pde.domain, cfg.n_points, cfg.rounds, generator, device.device, device.dtype)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    check_sizes(pde, sampler, device)
    schedule = _build(cfg.optimizer, "optimizer")
    seed_everything(cfg.seed)  # the network's initial weights depend on the seed only
    net: MLP = _build(cfg.model, "model", in_dim=pde.dim)
    model = Solution(net, pde.constraint).to(device=device.device, dtype=device.dtype)
    return Built(
        pde=pde,
        sampler=sampler,
        model=model,
        schedule=schedule,
        device=device,
        laplacian=laplacian,
        seed=cfg.seed,
        n_points=cfg.n_points,
        rounds=cfg.rounds,
        generator=generator,
    )
