"""Allen-Cahn equation."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from pinn_exp.domains import SpaceTime
from pinn_exp.ops import HardConstraint, Jet, Laplacian, space_time_jet
from pinn_exp.pdes.base import PDE, Fn, fixed_dimension, time_major_grid
from pinn_exp.pdes.references import allen_cahn_reference

D = 0.001
K = 5.0


@functools.lru_cache(maxsize=1)
def _reference_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chebyshev/ETDRK4 solution on x: 201 points, t: 101 points (computed once, then cached)."""
    x = np.linspace(-1.0, 1.0, 201)
    t = np.linspace(0.0, 1.0, 101)
    return x, t, allen_cahn_reference(x, t, D, K)


class AllenCahnConstraint(HardConstraint):
    """u = x^2 cos(pi x) + t (1 - x^2) N(x, t), with closed-form jets of A and B."""

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xs, t = x[:, :1], x[:, 1:2]
        return xs**2 * torch.cos(torch.pi * xs), t * (1 - xs**2)

    def jets(self, x: torch.Tensor, dims: Sequence[int] | None) -> tuple[Jet, Jet]:
        xs, t = x[:, 0], x[:, 1]
        sin, cos = torch.sin(torch.pi * xs), torch.cos(torch.pi * xs)
        zero = torch.zeros_like(xs)
        a_x = 2 * xs * cos - torch.pi * xs**2 * sin
        a_xx = 2 * cos - 4 * torch.pi * xs * sin - torch.pi**2 * xs**2 * cos
        a = space_time_jet(xs**2 * cos, a_x, zero, a_xx, 0.0, dims)
        b = space_time_jet(t * (1 - xs**2), -2 * xs * t, 1 - xs**2, -2 * t, 0.0, dims)
        return a, b


class AllenCahn(PDE):
    """u_t - 0.001 u_xx + 5 (u^3 - u) = 0 on [-1, 1] x [0, 1], u(x, 0) = x^2 cos(pi x),
    u(+-1, t) = -1.

    Hard constraint u = x^2 cos(pi x) + t (1 - x^2) N(x, t). Reference: the project's own
    Chebyshev/ETDRK4 solver on 201 x 101 points.

    u_t and u_xx come from ``laplacian.space_time`` (``forward``: one forward pass through
    the network; any other method: autograd).

    Args:
        dim: must be 2 (x, t) if given.
    """

    name = "allen_cahn"
    coordinate_names = ("x", "t")

    def __init__(self, dim: int | None = None):
        fixed_dimension(self.name, dim, 2)
        self.domain = SpaceTime([-1.0], [1.0], 0.0, 1.0)
        self.constraint = AllenCahnConstraint()

    def residual(self, u: Fn, x: torch.Tensor, laplacian: Laplacian) -> torch.Tensor:
        y, u_t, _, u_xx = laplacian.space_time(u, x)
        return u_t - D * u_xx + K * (y**3 - y)

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        x, t, usol = _reference_grid()  # usol indexed [t, x]
        return time_major_grid(x, t), usol.ravel()
