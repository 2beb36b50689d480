"""Laplace's equation in the unit cube with a harmonic exact solution."""

from __future__ import annotations

import numpy as np
import torch

from pinn_exp.domains import Box
from pinn_exp.ops import Laplacian
from pinn_exp.pdes.base import Fn, SoftBoundaryPDE, check_boundary_weight, check_n_test, grid

TEST_SEED = 20250101
#: points per side of the test grid at d = 2
GRID = 101


class Laplace(SoftBoundaryPDE):
    """Delta u = 0 on [0, 1]^d, u = g on the boundary, with the harmonic solution
    u(x) = 1/(d-1) sum_{i=1}^{d-1} exp(x_i) sin(x_{i+1}); soft boundary loss.

    Args:
        dim: d >= 2.
        n_boundary: points on the faces of the cube (spread over all 2d faces).
        boundary_weight: weight of the boundary loss.
        n_test: test points, uniform from a fixed generator; at d = 2 the test set is a
            101 x 101 grid instead and ``n_test`` is not used (:meth:`effective_settings`).
    """

    name = "laplace"
    free_dimension = True

    def __init__(
        self,
        dim: int = 2,
        n_boundary: int = 1000,
        boundary_weight: float = 1.0,
        n_test: int = 10_000,
    ):
        if not isinstance(dim, int) or dim < 2:
            raise ValueError(
                f"pde.dim={dim!r} is not allowed for pde=laplace; it must be an integer >= 2"
            )
        if int(n_boundary) < 2 * dim:
            raise ValueError(
                f"pde.n_boundary={n_boundary!r} is not allowed; it must be >= 2 * "
                f"pde.dim = {2 * dim} (a point per face)"
            )
        self.boundary_weight = check_boundary_weight(boundary_weight)
        self.domain = Box([0.0] * dim, [1.0] * dim)
        self.n_boundary = int(n_boundary)
        self.n_test = check_n_test(n_test)

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        terms = torch.exp(x[:, :-1]) * torch.sin(x[:, 1:])
        return terms.sum(dim=1, keepdim=True) / (x.shape[1] - 1)

    def residual(self, u: Fn, x: torch.Tensor, laplacian: Laplacian) -> torch.Tensor:
        return laplacian(u, x)

    def effective_settings(self) -> dict[str, int | float]:
        return {"n_test": GRID * GRID} if self.dim == 2 else {}

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        if self.dim == 2:
            g = np.linspace(0.0, 1.0, GRID)
            return self.exact_reference(grid(g, g))
        return self.uniform_reference(TEST_SEED)
