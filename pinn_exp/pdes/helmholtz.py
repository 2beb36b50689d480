"""The 2-D Helmholtz equation with a high wavenumber in one direction."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from pinn_exp.domains import Box
from pinn_exp.ops import HardConstraint, Jet, Laplacian
from pinn_exp.pdes.base import PDE, Fn, fixed_dimension, grid


class SquareBubble(HardConstraint):
    """u = (1 - x^2)(1 - y^2) N(x, y): zero on the boundary of [-1, 1]^2, with closed-form
    jets (A = 0)."""

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bx, by = 1 - x[:, :1].square(), 1 - x[:, 1:2].square()
        return torch.zeros_like(bx), bx * by

    def jets(self, x: torch.Tensor, dims: Sequence[int] | None) -> tuple[Jet, Jet]:
        index = [0, 1] if dims is None else list(dims)
        p, q = x[:, 0], x[:, 1]
        bx, by = 1 - p.square(), 1 - q.square()
        zeros = torch.zeros_like(p)
        second = (-2 * by, -2 * bx)  # B_xx, B_yy
        lap = sum((second[i] for i in index), zeros)
        a = (zeros, torch.zeros_like(x), zeros)
        b = (bx * by, torch.stack([-2 * p * by, -2 * q * bx], dim=1), lap)
        return a, b


class Helmholtz(PDE):
    """Delta u + k^2 u = q on [-1, 1]^2, u = 0 on the boundary, with the exact solution
    u = sin(a1 pi x) sin(a2 pi y) (a1 = 1, a2 = 4: the gradient-pathology benchmark of Wang,
    Teng and Perdikaris, 2021); q = (k^2 - (a1 pi)^2 - (a2 pi)^2) u in closed form.

    Hard boundary condition, u = (1 - x^2)(1 - y^2) N (for integer a1, a2 the exact solution
    vanishes on the boundary).

    Args:
        dim: must be 2 if given.
        a1: wavenumber (in units of pi) along x.
        a2: wavenumber (in units of pi) along y.
        k: the Helmholtz wavenumber.
    """

    name = "helmholtz"
    coordinate_names = ("x", "y")

    def __init__(self, dim: int | None = None, a1: float = 1.0, a2: float = 4.0, k: float = 1.0):
        fixed_dimension(self.name, dim, 2)
        for key, value in (("a1", a1), ("a2", a2)):
            if not (math.isfinite(value) and value == int(value) and value != 0):
                raise ValueError(
                    f"pde.{key}={value!r} is not allowed; it must be a non-zero integer (so "
                    "that the exact solution vanishes on the boundary)"
                )
        if not math.isfinite(k):
            raise ValueError(f"pde.k={k!r} is not allowed; it must be a finite number")
        self.domain = Box([-1.0, -1.0], [1.0, 1.0])
        self.constraint = SquareBubble()
        self.a1, self.a2, self.k = float(a1), float(a2), float(k)

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.a1 * math.pi * x[:, :1]) * torch.sin(self.a2 * math.pi * x[:, 1:2])

    def source(self, x: torch.Tensor) -> torch.Tensor:
        """q = Delta u + k^2 u of the exact solution, in closed form; shape (n,)."""
        factor = self.k**2 - (self.a1 * math.pi) ** 2 - (self.a2 * math.pi) ** 2
        return factor * self.exact(x).reshape(-1)

    def residual(self, u: Fn, x: torch.Tensor, laplacian: Laplacian) -> torch.Tensor:
        value, lap = laplacian.value_and_laplacian(u, x)
        return lap + self.k**2 * value - self.source(x)

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact solution on a 101 x 101 grid of [-1, 1]^2."""
        g = np.linspace(-1.0, 1.0, 101)
        return self.exact_reference(grid(g, g))
