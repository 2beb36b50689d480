"""1-D convection with a large speed: the propagation failure of PINNs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from pinn_exp.domains import SpaceTime
from pinn_exp.ops import HardConstraint, Jet, Laplacian, gradient
from pinn_exp.pdes.base import (
    PDE,
    BoundaryTerm,
    Fn,
    check_boundary_weight,
    fixed_dimension,
    time_major_grid,
)


class SineStart(HardConstraint):
    """u = sin(x) + t N(x, t): the initial condition u(x, 0) = sin(x) for every N, with
    closed-form jets (A = sin x, B = t)."""

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.sin(x[:, :1]), x[:, 1:2]

    def jets(self, x: torch.Tensor, dims: Sequence[int] | None) -> tuple[Jet, Jet]:
        index = [0, 1] if dims is None else list(dims)
        s, zeros = torch.sin(x[:, 0]), torch.zeros_like(x[:, 0])
        a = (s, torch.stack([torch.cos(x[:, 0]), zeros], dim=1), -s if 0 in index else zeros)
        b = (x[:, 1], torch.stack([zeros, torch.ones_like(zeros)], dim=1), zeros)
        return a, b


class Convection(PDE):
    """u_t + beta u_x = 0 on [0, 2 pi] x [0, 1], periodic in x, u(x, 0) = sin(x), with the
    exact solution u = sin(x - beta t) (Krishnapriyan et al., 2021: PINNs fail to propagate the
    initial condition from beta of about 10 on; beta = 30 by default).

    The initial condition is hard, u = sin(x) + t N; periodicity is a soft term
    ``weight * mean((u(0, t) - u(2 pi, t))^2)`` on ``n_boundary`` uniform times (the network
    sees x itself, not periodic features of it).

    Args:
        dim: must be 2 (x, t) if given.
        beta: the speed.
        n_boundary: pairs of points (0, t) and (2 pi, t) of the periodic term.
        boundary_weight: weight of the periodic term.
    """

    name = "convection"
    coordinate_names = ("x", "t")

    def __init__(
        self,
        dim: int | None = None,
        beta: float = 30.0,
        n_boundary: int = 256,
        boundary_weight: float = 1.0,
    ):
        fixed_dimension(self.name, dim, 2)
        if not math.isfinite(beta):
            raise ValueError(f"pde.beta={beta!r} is not allowed; it must be a finite number")
        if int(n_boundary) < 1:
            raise ValueError(f"pde.n_boundary={n_boundary!r} is not allowed; it must be >= 1")
        self.boundary_weight = check_boundary_weight(boundary_weight)
        self.domain = SpaceTime([0.0], [2 * math.pi], 0.0, 1.0)
        self.constraint = SineStart()
        self.beta = float(beta)
        self.n_boundary = int(n_boundary)

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x[:, :1] - self.beta * x[:, 1:2])

    def residual(self, u: Fn, x: torch.Tensor, laplacian: Laplacian) -> torch.Tensor:
        g = gradient(u(x).reshape(-1), x, final=True)
        return g[:, 1] + self.beta * g[:, 0]

    def boundary_terms(self, generator, device, dtype) -> list[BoundaryTerm]:
        d = self.domain
        u = torch.rand(self.n_boundary, generator=generator, dtype=torch.float64)
        t = (d.t0 + u * (d.t1 - d.t0)).unsqueeze(1)
        left = torch.cat([torch.full_like(t, d.space.lower[0]), t], dim=1)
        right = torch.cat([torch.full_like(t, d.space.upper[0]), t], dim=1)
        zero = torch.zeros(self.n_boundary, dtype=dtype, device=device)
        periodic = BoundaryTerm(
            "periodic",
            left.to(device, dtype),
            zero,
            self.boundary_weight,
            partner=right.to(device, dtype),
        )
        return [periodic]

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact solution on the grid x: 256 points in [0, 2 pi], t: 100 in [0, 1]."""
        x = np.linspace(0.0, 2 * math.pi, 256)
        t = np.linspace(0.0, 1.0, 100)
        return self.exact_reference(time_major_grid(x, t))
