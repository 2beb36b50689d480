"""Laplace's equation on the L-shaped domain: the corner singularity r^(2/3)."""

from __future__ import annotations

import math

import numpy as np
import torch

from pinn_exp.domains import LShape
from pinn_exp.ops import Laplacian
from pinn_exp.pdes.base import PDE, BoundaryTerm, Fn, fixed_dimension


class PoissonLShape(PDE):
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
        if not boundary_weight >= 0:
            raise ValueError(f"pde.boundary_weight={boundary_weight!r} must be >= 0")
        self.domain = LShape()
        self.n_boundary = int(n_boundary)
        self.boundary_weight = float(boundary_weight)

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        r = x.norm(dim=1, keepdim=True)
        theta = torch.atan2(x[:, 1:2], x[:, :1])
        theta = torch.where(theta < 0, theta + 2 * math.pi, theta)  # (-pi, 0) -> (pi, 2 pi)
        return r ** (2 / 3) * torch.sin(2 * theta / 3)

    def residual(self, u: Fn, x: torch.Tensor, laplacian: Laplacian) -> torch.Tensor:
        return -laplacian(u, x)

    def boundary_terms(self, generator, device, dtype) -> list[BoundaryTerm]:
        x = self.domain.sample_boundary(self.n_boundary, generator, dtype=torch.float64)
        return [self.soft_term("boundary", x, self.boundary_weight, device, dtype)]

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact solution on the 7,701 points of a 101 x 101 grid of [-1, 1]^2 that lie
        in the closed domain."""
        g = np.linspace(-1.0, 1.0, 101)
        xx, yy = np.meshgrid(g, g, indexing="ij")
        points = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], axis=1))
        points = points[self.domain.contains(points, tol=0.0)]
        return points.numpy(), self.exact(points).numpy().ravel()
