"""The heat equation in d space dimensions with an exact solution."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from pinn_exp.domains import SpaceTime
from pinn_exp.ops import HardConstraint, Jet, Laplacian, gradient
from pinn_exp.pdes.base import (
    Fn,
    SoftBoundaryPDE,
    check_boundary_weight,
    check_n_test,
    time_major_grid,
)

TEST_SEED = 20250103
#: the test grid at d = 1: points in x and in t
GRID_X, GRID_T = 201, 101
#: the spatial wavenumber k of every mode sin(k x_i); each decays like exp(-k^2 t)
WAVENUMBER = math.pi / 2


def initial_value(x: torch.Tensor) -> torch.Tensor:
    """u(x, 0) = (1/d) sum_i sin(k x_i) over the d space coordinates (time last); (n,)."""
    return torch.sin(WAVENUMBER * x[:, :-1]).mean(dim=1)


class HeatStart(HardConstraint):
    """u = u0(x) + t N(x, t): the initial condition for every N, with closed-form jets in any
    dimension (A = u0 with gradient (k/d) cos(k x_i) and Laplacian -k^2 u0 over the space
    coordinates; B = t)."""

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return initial_value(x).unsqueeze(1), x[:, -1:]

    def jets(self, x: torch.Tensor, dims: Sequence[int] | None) -> tuple[Jet, Jet]:
        space = x.shape[1] - 1
        index = list(range(x.shape[1])) if dims is None else list(dims)
        index = [i for i in index if i < space]  # A is constant in t
        zeros = torch.zeros_like(x[:, :1])
        grad_a = torch.cat([WAVENUMBER / space * torch.cos(WAVENUMBER * x[:, :-1]), zeros], 1)
        lap_a = -(WAVENUMBER**2) / space * torch.sin(WAVENUMBER * x[:, index]).sum(dim=1)
        grad_b = torch.cat([torch.zeros_like(x[:, :-1]), torch.ones_like(zeros)], dim=1)
        return (initial_value(x), grad_a, lap_a), (x[:, -1], grad_b, zeros[:, 0])


class Heat(SoftBoundaryPDE):
    """u_t = Delta_x u on [0, 1]^d x [0, 1] (d space dimensions, time last), with the exact
    solution u = exp(-k^2 t) (1/d) sum_i sin(k x_i), k = pi / 2: every space coordinate
    contributes to the Laplacian, and u decays to exp(-pi^2 / 4), about 0.085 of its initial
    size, by t = 1.

    ``pde.dim`` counts every input, space and time, as for the other space-time PDEs:
    ``pde.dim=11`` is the heat equation in 10 space dimensions. The initial condition is hard,
    u = u0(x) + t N; the boundary data (the exact solution on the 2d faces of the space cube)
    are a soft loss. The Laplacian over the space coordinates comes from the run's Laplacian
    method (``laplacian(u, x, dims)``), u_t by autograd.

    Args:
        dim: number of inputs, d + 1 >= 2.
        n_boundary: points on the faces of the space cube (every face its share), at uniform
            times.
        boundary_weight: weight of the boundary loss.
        n_test: test points, uniform in space-time from a fixed generator; at d = 1 the test
            set is a 201 x 101 grid instead and ``n_test`` is not used
            (:meth:`effective_settings`).
    """

    name = "heat"
    free_dimension = True

    def __init__(
        self,
        dim: int = 3,
        n_boundary: int = 1000,
        boundary_weight: float = 1.0,
        n_test: int = 10_000,
    ):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
            raise ValueError(
                f"pde.dim={dim!r} is not allowed for pde=heat; it must be an integer >= 2 "
                "(the space dimensions plus time)"
            )
        space = dim - 1
        if int(n_boundary) < 2 * space:
            raise ValueError(
                f"pde.n_boundary={n_boundary!r} is not allowed; it must be >= 2 * (pde.dim - 1)"
                f" = {2 * space} (a point per face of the space cube)"
            )
        self.boundary_weight = check_boundary_weight(boundary_weight)
        self.n_test = check_n_test(n_test)
        self.domain = SpaceTime([0.0] * space, [1.0] * space, 0.0, 1.0)
        self.constraint = HeatStart()
        self.n_boundary = int(n_boundary)

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        space = self.dim - 1
        return ("x", "t") if space == 1 else (*(f"x_{i + 1}" for i in range(space)), "t")

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        decay = torch.exp(-(WAVENUMBER**2) * x[:, -1])
        return (decay * initial_value(x)).unsqueeze(1)

    def residual(self, u: Fn, x: torch.Tensor, laplacian: Laplacian) -> torch.Tensor:
        space = list(range(x.shape[1] - 1))
        lap = laplacian(u, x, space)
        u_t = gradient(u(x).reshape(-1), x, final=True)[:, -1]
        return u_t - lap

    def effective_settings(self) -> dict[str, int | float]:
        return {"n_test": GRID_X * GRID_T} if self.dim == 2 else {}

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        if self.dim == 2:
            x, t = np.linspace(0.0, 1.0, GRID_X), np.linspace(0.0, 1.0, GRID_T)
            return self.exact_reference(time_major_grid(x, t))
        return self.uniform_reference(TEST_SEED)
