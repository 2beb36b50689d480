"""The high-dimensional elliptic problem in the unit ball."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pinn_exp.domains import Ball
from pinn_exp.ops import HardConstraint, Jet, Laplacian
from pinn_exp.pdes.base import PDE, Fn, check_n_test

TEST_SEED = 20250102


class Bubble(HardConstraint):
    """u = (1 - |x|^2) N(x): zero on the unit sphere, with closed-form jets in any dimension
    (A = 0; B has gradient -2x and Laplacian -2 k over k coordinates)."""

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros_like(x[:, :1]), 1 - x.square().sum(dim=1, keepdim=True)

    def jets(self, x: torch.Tensor, dims: Sequence[int] | None) -> tuple[Jet, Jet]:
        index = list(range(x.shape[1])) if dims is None else list(dims)
        zeros = torch.zeros_like(x[:, 0])
        a = (zeros, torch.zeros_like(x), zeros)
        b = (1 - x.square().sum(dim=1), -2 * x, torch.full_like(zeros, -2.0 * len(index)))
        return a, b


class Elliptic(PDE):
    """-Delta u = f in the unit ball of R^d, u = 0 on the sphere, with the "two-body" solution
    u(x) = (1 - |x|^2) sum_{i=1}^{d-1} c_i sin(x_i + cos(x_{i+1}) + x_{i+1} cos(x_i))
    of the SDGD and STDE papers, c_i ~ N(0, 1) from a fixed generator.

    Hard constraint u = (1 - |x|^2) N(x); f is computed in closed form.

    Args:
        dim: d >= 2.
        coefficient_seed: seed of the generator of the c_i (the same problem in every run).
        n_test: test points, uniform in the ball, from a fixed generator.
    """

    name = "elliptic"
    free_dimension = True

    def __init__(
        self,
        dim: int = 10,
        coefficient_seed: int = 0,
        n_test: int = 10_000,
    ):
        if not isinstance(dim, int) or dim < 2:
            raise ValueError(
                f"pde.dim={dim!r} is not allowed for pde=elliptic; it must be an integer >= 2"
            )
        self.n_test = check_n_test(n_test)
        if (
            isinstance(coefficient_seed, bool)
            or not isinstance(coefficient_seed, int)
            or not (0 <= coefficient_seed < 2**63)
        ):
            raise ValueError(
                f"pde.coefficient_seed={coefficient_seed!r} is not allowed; it must be an "
                "integer in [0, 2^63)"
            )
        self.domain = Ball(dim)
        self.constraint = Bubble()
        self.coefficients = np.random.default_rng(coefficient_seed).standard_normal(dim - 1)

    def _c(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.coefficients, dtype=x.dtype, device=x.device)

    def _theta(self, x: torch.Tensor):
        xi, xn = x[:, :-1], x[:, 1:]
        return xi + torch.cos(xn) + xn * torch.cos(xi), xi, xn

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        theta, _, _ = self._theta(x)
        g = (self._c(x) * torch.sin(theta)).sum(dim=1, keepdim=True)
        return (1 - x.square().sum(dim=1, keepdim=True)) * g

    def source(self, x: torch.Tensor) -> torch.Tensor:
        """f = -Delta u in closed form; shape (n,).

        With B = 1 - |x|^2 and g = sum_i c_i sin(theta_i):
        Delta u = -2 d g - 4 x . grad g + B Delta g, where for each term
        d theta/d x_i = 1 - x_{i+1} sin x_i, d theta/d x_{i+1} = cos x_i - sin x_{i+1},
        Delta theta = -x_{i+1} cos x_i - cos x_{i+1}, and
        Delta sin(theta) = cos(theta) Delta theta - sin(theta) |grad theta|^2.
        """
        c = self._c(x)
        theta, xi, xn = self._theta(x)
        a = 1 - xn * torch.sin(xi)
        b = torch.cos(xi) - torch.sin(xn)
        sin_t, cos_t = torch.sin(theta), torch.cos(theta)
        g = (c * sin_t).sum(dim=1)
        x_dot_grad_g = (c * cos_t * (xi * a + xn * b)).sum(dim=1)
        lap_theta = -xn * torch.cos(xi) - torch.cos(xn)
        lap_g = (c * (cos_t * lap_theta - sin_t * (a * a + b * b))).sum(dim=1)
        bubble = 1 - x.square().sum(dim=1)
        return 2 * self.dim * g + 4 * x_dot_grad_g - bubble * lap_g

    def residual(self, u: Fn, x: torch.Tensor, laplacian: Laplacian) -> torch.Tensor:
        return -laplacian(u, x) - self.source(x)

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        return self.uniform_reference(TEST_SEED)
