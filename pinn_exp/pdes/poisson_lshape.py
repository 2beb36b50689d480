"""Laplace's equation on the L-shaped domain: the corner singularity r^(2/3)."""

from __future__ import annotations

import math

import numpy as np
import torch

from pinn_exp.domains import LShape
from pinn_exp.ops import Laplacian
from pinn_exp.pdes.base import Fn, SoftBoundaryPDE, check_boundary_weight, fixed_dimension, grid


class PoissonLShape(SoftBoundaryPDE):
    """-Delta u = 0 on the L-shaped domain (-1, 1)^2 minus [0, 1) x (-1, 0]
    (:class:`~pinn_exp.domains.LShape`), with the exact solution u = r^(2/3) sin(2 theta / 3),
    theta in [0, 3 pi / 2] measured counter-clockwise from the positive x-axis: harmonic,
    zero on the two edges that meet at the re-entrant corner (theta = 0 and 3 pi / 2), and
    with a gradient that is infinite there (u is in H^(5/3 - eps) only).

    Boundary data from the exact solution, as a soft loss on the six edges.

    Args:
        dim: must be 2 if given.
        n_boundary: points on the edges (stratified along the perimeter).
        boundary_weight: weight of the boundary loss.
    """

    name = "poisson_lshape"
    coordinate_names = ("x", "y")

    def __init__(self, dim: int | None = None, n_boundary: int = 800, boundary_weight: float = 1.0):
        fixed_dimension(self.name, dim, 2)
        if int(n_boundary) < 6:
            raise ValueError(
                f"pde.n_boundary={n_boundary!r} is not allowed; it must be >= 6 (a point per edge)"
            )
        self.boundary_weight = check_boundary_weight(boundary_weight)
        self.domain = LShape()
        self.n_boundary = int(n_boundary)

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        r = x.norm(dim=1, keepdim=True)
        theta = torch.atan2(x[:, 1:2], x[:, :1])
        theta = torch.where(theta < 0, theta + 2 * math.pi, theta)  # (-pi, 0) -> (pi, 2 pi)
        return r ** (2 / 3) * torch.sin(2 * theta / 3)

    def residual(self, u: Fn, x: torch.Tensor, laplacian: Laplacian) -> torch.Tensor:
        return -laplacian(u, x)

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact solution on the 7,701 points of a 101 x 101 grid of [-1, 1]^2 that lie
        in the closed domain."""
        g = np.linspace(-1.0, 1.0, 101)
        points = grid(g, g)
        inside = self.domain.contains(torch.as_tensor(points), tol=0.0).numpy()
        return self.exact_reference(points[inside])
