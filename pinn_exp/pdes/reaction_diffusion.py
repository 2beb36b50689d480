"""Fisher-KPP reaction-diffusion with an exact travelling wave (SPEC §4.5)."""

from __future__ import annotations

import math

import numpy as np
import torch

from pinn_exp.domains import Box
from pinn_exp.ops.laplacian import Laplacian
from pinn_exp.pdes.base import PDE, BoundaryTerm, Fn, fixed_dimension

D = 0.01
RHO = 6.0


class ReactionDiffusion(PDE):
    """u_t = D u_xx + rho u (1 - u), D = 0.01, rho = 6, on [-1, 1] x [0, 1].

    Exact solution (Ablowitz-Zeppetella): u = (1 + exp(sqrt(rho / (6 D)) x - 5 rho t / 6))^-2,
    a front of width ~0.1 moving from x = 0 to x = 0.5. Initial and boundary data from it, as
    soft terms.

    Args:
        dim: must be 2 (x, t) if given.
        n_initial: points on t = 0.
        n_boundary: points on x = -1 and x = 1 together.
        initial_weight: weight of the initial-condition loss.
        boundary_weight: weight of the boundary loss.
        laplacian: how u_t, u_x and u_xx are computed (``forward``: one forward pass through
            the network; any other method: autograd).
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
        laplacian: Laplacian | None = None,
    ):
        super().__init__(laplacian)
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
        self.domain = Box([-1.0, 0.0], [1.0, 1.0])
        self.n_initial, self.n_boundary = int(n_initial), int(n_boundary)
        self.initial_weight, self.boundary_weight = float(initial_weight), float(boundary_weight)

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        speed = math.sqrt(RHO / (6 * D))
        return (1 + torch.exp(speed * x[:, :1] - 5 * RHO * x[:, 1:2] / 6)) ** -2

    def residual(self, u: Fn, x: torch.Tensor) -> torch.Tensor:
        y, u_t, _, u_xx = self.laplacian.space_time(u, x)
        return u_t - D * u_xx - RHO * y * (1 - y)

    def boundary_terms(self, generator, device, dtype) -> list[BoundaryTerm]:
        x0 = torch.rand(self.n_initial, generator=generator, dtype=torch.float64) * 2 - 1
        initial = torch.stack([x0, torch.zeros_like(x0)], dim=1)
        tb = torch.rand(self.n_boundary, generator=generator, dtype=torch.float64)
        side = torch.where(torch.arange(self.n_boundary) % 2 == 0, -1.0, 1.0).double()
        boundary = torch.stack([side, tb], dim=1)
        return [
            BoundaryTerm(
                "initial",
                initial.to(device, dtype),
                self.exact(initial).to(device, dtype),
                self.initial_weight,
            ),
            BoundaryTerm(
                "boundary",
                boundary.to(device, dtype),
                self.exact(boundary).to(device, dtype),
                self.boundary_weight,
            ),
        ]

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        x = np.linspace(-1.0, 1.0, 201)
        t = np.linspace(0.0, 1.0, 101)
        tt, xx = np.meshgrid(t, x, indexing="ij")
        points = torch.as_tensor(np.stack([xx.ravel(), tt.ravel()], axis=1))
        return points.numpy(), self.exact(points).numpy().ravel()
