"""Where the residual is: a fixed uniform probe set of the domain (for the concentration
metric) and a regular grid for the residual maps of low-dimensional PDEs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from pinn_exp.domains import Domain

#: the share of the domain (by volume) that :func:`concentration` calls the top region
TOP_SHARE_PERCENT = 5
TOP_SHARE = TOP_SHARE_PERCENT / 100
#: size of the uniform probe set that locates the top-residual region
N_PROBE = 10_000
#: grid points per axis of a residual map: 1-D and 2-D domains
GRID_POINTS = {1: 401, 2: 101}
#: mixes the run's seed into the probe set's own, so the probes are not the sampler's points
_PROBE_SALT = 0x5EED_C0FF_EE


def probe_points(
    domain: Domain, seed: int, device: torch.device, dtype: torch.dtype, n: int = N_PROBE
) -> torch.Tensor:
    """``n`` uniform points of ``domain`` from a generator of their own (the sampler's and
    the network's random streams are untouched), the same for every round of a run."""
    generator = torch.Generator().manual_seed((seed ^ _PROBE_SALT) % 2**63)
    return domain.sample(n, generator, device, dtype)


def regular_grid(domain: Domain) -> tuple[np.ndarray, tuple[int, ...]] | None:
    """A regular grid of ``domain`` as points (m, d) in 'ij' order and the grid's shape, for
    domains of dimension 1 or 2 that map the unit cube affinely (boxes); None otherwise."""
    if domain.dim not in GRID_POINTS or domain.unit_dim != domain.dim:
        return None
    n = GRID_POINTS[domain.dim]
    axis = np.linspace(0.0, 1.0, n)
    unit = np.stack(np.meshgrid(*[axis] * domain.dim, indexing="ij"), axis=-1)
    return domain.from_unit(unit.reshape(-1, domain.dim)), (n,) * domain.dim


def concentration(
    residual: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, probes: torch.Tensor
) -> float:
    """The share of ``points`` in the top-``TOP_SHARE`` residual region of the domain (located
    on the uniform ``probes``), divided by ``TOP_SHARE``: 1 is what uniform points give,
    ``1 / TOP_SHARE`` means every point is there."""
    threshold = torch.quantile(residual(probes).double(), 1 - TOP_SHARE)
    inside = residual(points) >= threshold
    # one division of exact integers, count x 100 / (n x percent): 4 of 100 points gives
    # 0.8, not the 0.7999999999999999 of (4 / 100) / 0.05
    return int(inside.sum()) * 100 / (len(inside) * TOP_SHARE_PERCENT)
