"""Viscous Burgers' equation, the default problem."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from pinn_exp.domains import SpaceTime
from pinn_exp.ops import HardConstraint, Jet, Laplacian, space_time_jet
from pinn_exp.pdes.base import PDE, Fn, fixed_dimension, grid
from pinn_exp.pdes.references import burgers_cole_hopf

NU = 0.01 / np.pi


@functools.lru_cache(maxsize=1)
def _reference_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.linspace(-1.0, 1.0, 256)
    t = np.linspace(0.0, 0.99, 100)
    return x, t, burgers_cole_hopf(x, t, NU)


class BurgersConstraint(HardConstraint):
    """u = -sin(pi x) + (1 - x^2) t N(x, t), with closed-form jets of A and B."""

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xs, t = x[:, :1], x[:, 1:2]
        return -torch.sin(torch.pi * xs), (1 - xs**2) * t

    def jets(self, x: torch.Tensor, dims: Sequence[int] | None) -> tuple[Jet, Jet]:
        xs, t = x[:, 0], x[:, 1]
        sin, cos = torch.sin(torch.pi * xs), torch.cos(torch.pi * xs)
        zero = torch.zeros_like(xs)
        a = space_time_jet(-sin, -torch.pi * cos, zero, torch.pi**2 * sin, 0.0, dims)
        b = space_time_jet((1 - xs**2) * t, -2 * xs * t, 1 - xs**2, -2 * t, 0.0, dims)
        return a, b


class Burgers(PDE):
    """u_t + u u_x - (0.01/pi) u_xx = 0 on [-1, 1] x [0, 1], u(x, 0) = -sin(pi x), u(+-1, t) = 0.

    Hard constraint u = -sin(pi x) + (1 - x^2) t N(x, t). Reference: the Cole-Hopf solution by
    quadrature on 256 x 100 points (x in [-1, 1], t in [0, 0.99]).

    u_t, u_x and u_xx come from ``laplacian.space_time`` (``forward``: one forward pass
    through the network; any other method: autograd).

    Args:
        dim: must be 2 (x, t) if given; the problem has no free dimension.
    """

    name = "burgers"
    coordinate_names = ("x", "t")

    def __init__(self, dim: int | None = None):
        fixed_dimension(self.name, dim, 2)
        self.domain = SpaceTime([-1.0], [1.0], 0.0, 1.0)
        self.constraint = BurgersConstraint()

    def residual(self, u: Fn, x: torch.Tensor, laplacian: Laplacian) -> torch.Tensor:
        y, u_t, u_x, u_xx = laplacian.space_time(u, x)
        return u_t + y * u_x - NU * u_xx

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        x, t, usol = _reference_grid()
        return grid(x, t), usol.ravel()
