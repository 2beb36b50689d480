"""Viscous Burgers' equation (SPEC §4.1)."""

from __future__ import annotations

import functools

import numpy as np
import torch

from pinn_exp.domains import Box
from pinn_exp.ops.laplacian import Laplacian
from pinn_exp.pdes.base import PDE, Fn, fixed_dimension, space_time_jet
from pinn_exp.pdes.references import burgers_cole_hopf

NU = 0.01 / np.pi


@functools.lru_cache(maxsize=1)
def _reference_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.linspace(-1.0, 1.0, 256)
    t = np.linspace(0.0, 0.99, 100)
    return x, t, burgers_cole_hopf(x, t, NU)


class Burgers(PDE):
    """u_t + u u_x - (0.01/pi) u_xx = 0 on [-1, 1] x [0, 1], u(x, 0) = -sin(pi x), u(+-1, t) = 0.

    Hard constraint u = -sin(pi x) + (1 - x^2) t N(x, t). Reference: the Cole-Hopf solution by
    quadrature on 256 x 100 points (x in [-1, 1], t in [0, 0.99]).

    Args:
        dim: must be 2 (x, t) if given; the problem has no free dimension.
        laplacian: how u_t, u_x and u_xx are computed (``forward``: one forward pass through
            the network; any other method: autograd).
    """

    name = "burgers"
    coordinate_names = ("x", "t")

    def __init__(self, dim: int | None = None, laplacian: Laplacian | None = None):
        super().__init__(laplacian)
        fixed_dimension(self.name, dim, 2)
        self.domain = Box([-1.0, 0.0], [1.0, 1.0])

    def hard_constraint(self, x):
        xs, t = x[:, :1], x[:, 1:2]
        return -torch.sin(torch.pi * xs), (1 - xs**2) * t

    def constraint_jets(self, x, dims):
        xs, t = x[:, 0], x[:, 1]
        sin, cos = torch.sin(torch.pi * xs), torch.cos(torch.pi * xs)
        zero = torch.zeros_like(xs)
        a = space_time_jet(-sin, -torch.pi * cos, zero, torch.pi**2 * sin, 0.0, dims)
        b = space_time_jet((1 - xs**2) * t, -2 * xs * t, 1 - xs**2, -2 * t, 0.0, dims)
        return a, b

    def residual(self, u: Fn, x: torch.Tensor) -> torch.Tensor:
        y, u_t, u_x, u_xx = self.laplacian.space_time(u, x)
        return u_t + y * u_x - NU * u_xx

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        x, t, usol = _reference_grid()
        xx, tt = np.meshgrid(x, t, indexing="ij")
        return np.stack([xx.ravel(), tt.ravel()], axis=1), usol.ravel()
