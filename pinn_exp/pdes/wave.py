"""The 1-D wave equation with a two-scale exact solution."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from pinn_exp.domains import SpaceTime
from pinn_exp.ops import HardConstraint, Jet, Laplacian
from pinn_exp.pdes.base import PDE, Fn, fixed_dimension, time_major_grid

PI = math.pi


class WaveStart(HardConstraint):
    """u = u0(x) + x (1 - x) t^2 N(x, t) with u0 = sin(pi x) + 0.5 sin(4 pi x): the boundary
    values u(0, t) = u(1, t) = 0, the initial value u(x, 0) = u0 and the initial velocity
    u_t(x, 0) = 0 hold for every N. Closed-form jets."""

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p, t = x[:, :1], x[:, 1:2]
        return torch.sin(PI * p) + 0.5 * torch.sin(4 * PI * p), p * (1 - p) * t.square()

    def jets(self, x: torch.Tensor, dims: Sequence[int] | None) -> tuple[Jet, Jet]:
        index = [0, 1] if dims is None else list(dims)
        p, t = x[:, 0], x[:, 1]
        zeros = torch.zeros_like(p)
        a = torch.sin(PI * p) + 0.5 * torch.sin(4 * PI * p)
        a_x = PI * torch.cos(PI * p) + 2 * PI * torch.cos(4 * PI * p)
        a_xx = -(PI**2) * torch.sin(PI * p) - 8 * PI**2 * torch.sin(4 * PI * p)
        b = p * (1 - p) * t.square()
        b_x, b_t = (1 - 2 * p) * t.square(), 2 * p * (1 - p) * t
        b_second = (-2 * t.square(), 2 * p * (1 - p))  # B_xx, B_tt
        lap_a = a_xx if 0 in index else zeros
        lap_b = sum((b_second[i] for i in index), zeros)
        jet_a = (a, torch.stack([a_x, zeros], dim=1), lap_a)
        return jet_a, (b, torch.stack([b_x, b_t], dim=1), lap_b)


class Wave(PDE):
    """u_tt = c^2 u_xx on [0, 1] x [0, 1], u(0, t) = u(1, t) = 0, with the two-scale exact
    solution u = sin(pi x) cos(c pi t) + 0.5 sin(4 pi x) cos(4 c pi t) (c = 2: the 1-D wave
    benchmark of PINNacle), so u(x, 0) = sin(pi x) + 0.5 sin(4 pi x) and u_t(x, 0) = 0.

    Hard boundary and initial conditions, u = u0(x) + x (1 - x) t^2 N (:class:`WaveStart`).
    u_tt and u_xx are the Laplacians over t and over x of the run's Laplacian method.

    Args:
        dim: must be 2 (x, t) if given.
        c: the wave speed.
    """

    name = "wave"
    coordinate_names = ("x", "t")

    def __init__(self, dim: int | None = None, c: float = 2.0):
        fixed_dimension(self.name, dim, 2)
        if not (math.isfinite(c) and c > 0):
            raise ValueError(f"pde.c={c!r} is not allowed; it must be a number > 0")
        self.domain = SpaceTime([0.0], [1.0], 0.0, 1.0)
        self.constraint = WaveStart()
        self.c = float(c)

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        p, t = x[:, :1], x[:, 1:2]
        slow = torch.sin(PI * p) * torch.cos(self.c * PI * t)
        return slow + 0.5 * torch.sin(4 * PI * p) * torch.cos(4 * self.c * PI * t)

    def residual(self, u: Fn, x: torch.Tensor, laplacian: Laplacian) -> torch.Tensor:
        return laplacian(u, x, [1]) - self.c**2 * laplacian(u, x, [0])

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact solution on the grid x: 201 points in [0, 1], t: 101 in [0, 1]."""
        x = np.linspace(0.0, 1.0, 201)
        t = np.linspace(0.0, 1.0, 101)
        return self.exact_reference(time_major_grid(x, t))
