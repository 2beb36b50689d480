"""Fisher-KPP reaction-diffusion with an exact travelling wave."""

from __future__ import annotations

import math

import numpy as np
import torch

from pinn_exp.domains import SpaceTime
from pinn_exp.ops import Laplacian
from pinn_exp.pdes.base import PDE, BoundaryTerm, Fn, fixed_dimension, time_major_grid

D = 0.01
RHO = 6.0


class ReactionDiffusion(PDE):
    """u_t = D u_xx + rho u (1 - u), D = 0.01, rho = 6, on [-1, 1] x [0, 1].

    Exact solution (Ablowitz-Zeppetella): u = (1 + exp(sqrt(rho / (6 D)) x - 5 rho t / 6))^-2,
    a front of width ~0.1 moving from x = 0 to x = 0.5. Initial and boundary data from it, as
    soft terms. u_t and u_xx come from ``laplacian.space_time`` (``forward``: one forward pass
    through the network; any other method: autograd).

    Args:
        dim: must be 2 (x, t) if given.
        n_initial: points on t = 0.
        n_boundary: points on x = -1 and x = 1 together.
        initial_weight: weight of the initial-condition loss.
        boundary_weight: weight of the boundary loss.
    """

    name = "reaction_diffusion"
    coordinate_names = ("x", "t")

    def __init__(
        self,
        dim: int | None = None,
        n_initial: int = 256,
        n_boundary: int = 256,
        initial_weight: float = 1.0,
        boundary_weight: float = 1.0,
    ):
        fixed_dimension(self.name, dim, 2)
        for key, value in (("n_initial", n_initial), ("n_boundary", n_boundary)):
            if int(value) < 2:
                raise ValueError(f"pde.{key}={value!r} is not allowed; it must be >= 2")
        for key, value in (
            ("initial_weight", initial_weight),
            ("boundary_weight", boundary_weight),
        ):
            if not value >= 0:
                raise ValueError(f"pde.{key}={value!r} is not allowed; it must be >= 0")
        self.domain = SpaceTime([-1.0], [1.0], 0.0, 1.0)
        self.n_initial, self.n_boundary = int(n_initial), int(n_boundary)
        self.initial_weight, self.boundary_weight = float(initial_weight), float(boundary_weight)

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        speed = math.sqrt(RHO / (6 * D))
        return (1 + torch.exp(speed * x[:, :1] - 5 * RHO * x[:, 1:2] / 6)) ** -2

    def residual(self, u: Fn, x: torch.Tensor, laplacian: Laplacian) -> torch.Tensor:
        y, u_t, _, u_xx = laplacian.space_time(u, x)
        return u_t - D * u_xx - RHO * y * (1 - y)

    def boundary_terms(self, generator, device, dtype) -> list[BoundaryTerm]:
        f64 = torch.float64
        # the initial points first, then x = -1 and x = 1 in turn (SpaceTime.sample_boundary)
        initial = self.domain.sample_initial(self.n_initial, generator, dtype=f64)
        boundary = self.domain.sample_boundary(self.n_boundary, generator, dtype=f64)
        return [
            self.soft_term("initial", initial, self.initial_weight, device, dtype),
            self.soft_term("boundary", boundary, self.boundary_weight, device, dtype),
        ]

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        x = np.linspace(-1.0, 1.0, 201)
        t = np.linspace(0.0, 1.0, 101)
        return self.exact_reference(time_major_grid(x, t))
