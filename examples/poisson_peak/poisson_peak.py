"""Worked example "Add your own PDE": a Poisson problem with a sharp Gaussian peak.

    -Delta u = f  on [0, 1]^2,   u = g on the boundary,

with the exact solution u(x) = exp(-|x - c|^2 / (2 sigma^2)), c = (0.5, 0.5), so that

    f(x) = -Delta u = u(x) (d - |x - c|^2 / sigma^2) / sigma^2     (d = 2).

The boundary data is imposed softly (one :class:`BoundaryTerm` on points of the domain's
boundary), the reference is the exact solution on a 101 x 101 grid. Copy this file, change the
formulas, and point a YAML file's ``_target_`` at the class (see ``conf/pde/poisson_peak.yaml``
and README.md next to it).
"""

from __future__ import annotations

import numpy as np
import torch

from pinn_exp.domains import Box
from pinn_exp.ops import Laplacian
from pinn_exp.pdes.base import PDE, BoundaryTerm, Fn, fixed_dimension


class PoissonPeak(PDE):
    """-Delta u = f on the unit square with a Gaussian peak of width ``sigma`` at its centre.

    Args:
        sigma: width of the peak (smaller is sharper and harder).
        n_boundary: points on the boundary, spread evenly over the four edges.
        boundary_weight: weight of the boundary loss.
        dim: must be 2 if given (``pde.dim`` is refused otherwise).
    """

    name = "poisson_peak"  # the ``pde`` field of metrics.json

    def __init__(
        self,
        sigma: float = 0.05,
        n_boundary: int = 400,
        boundary_weight: float = 1.0,
        dim: int | None = None,
    ):
        fixed_dimension(self.name, dim, 2)
        if not sigma > 0:
            raise ValueError(f"pde.sigma={sigma!r} is not allowed; it must be > 0")
        if int(n_boundary) < 4:
            raise ValueError(f"pde.n_boundary={n_boundary!r} is not allowed; it must be >= 4")
        self.domain = Box([0.0, 0.0], [1.0, 1.0])  # where the collocation points live
        self.sigma = float(sigma)
        self.n_boundary = int(n_boundary)
        self.boundary_weight = float(boundary_weight)

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        """u(x) = exp(-|x - c|^2 / (2 sigma^2)), shape (n, 1)."""
        r2 = (x - 0.5).square().sum(dim=1, keepdim=True)
        return torch.exp(-r2 / (2 * self.sigma**2))

    def source(self, x: torch.Tensor) -> torch.Tensor:
        """f = -Delta u in closed form, shape (n,)."""
        s2 = self.sigma**2
        r2 = (x - 0.5).square().sum(dim=1)
        return self.exact(x)[:, 0] * (self.dim - r2 / s2) / s2

    def residual(self, u: Fn, x: torch.Tensor, laplacian: Laplacian) -> torch.Tensor:
        """-Delta u - f for any callable u at points x (which require grad); shape (n,).

        ``laplacian`` is the run's operator (the ``laplacian`` config group), so the method can
        be switched on the command line.
        """
        return -laplacian(u, x) - self.source(x)

    def boundary_terms(self, generator, device, dtype) -> list[BoundaryTerm]:
        """Soft boundary loss: u = exact on ``n_boundary`` fixed points of the four edges."""
        # x=0, x=1, y=0, y=1 in turn, drawn in float64 for the targets
        x = self.domain.sample_boundary(self.n_boundary, generator, dtype=torch.float64)
        return [self.soft_term("boundary", x, self.boundary_weight, device, dtype)]

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact solution on a 101 x 101 grid: X of shape (10201, 2), u of shape (10201,)."""
        g = np.linspace(0.0, 1.0, 101)
        xx, yy = np.meshgrid(g, g, indexing="ij")
        x = np.stack([xx.ravel(), yy.ravel()], axis=1)
        return x, self.exact(torch.as_tensor(x)).numpy().ravel()
