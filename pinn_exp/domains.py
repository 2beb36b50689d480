"""Geometry shared by PDEs and samplers.

A sampler never imports a PDE; both meet through a :class:`Domain`: it draws uniform points,
maps points of the unit cube onto itself (for quasi-Monte Carlo sequences) and tells whether a
point lies inside.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from scipy.special import ndtri


class Domain(ABC):
    """A bounded region of R^dim."""

    dim: int

    @property
    def unit_dim(self) -> int:
        """Number of unit-cube coordinates :meth:`from_unit` consumes per point."""
        return self.dim

    @abstractmethod
    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Maps points of [0, 1)^unit_dim (shape (n, unit_dim)) to uniform points of the domain."""

    @abstractmethod
    def contains(self, x: torch.Tensor, tol: float = 1e-9) -> torch.Tensor:
        """Boolean mask of the rows of ``x`` that lie in the closed domain."""

    def sample(
        self,
        n: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Draws ``n`` independent uniform points.

        Args:
            n: number of points.
            generator: a CPU generator; the points are drawn on the CPU in float64 and moved, so
                the same seed gives the same points on every device.
            device: where the points go.
            dtype: their dtype.

        Returns:
            Tensor of shape (n, dim).
        """
        u = torch.rand(n, self.unit_dim, generator=generator, dtype=torch.float64)
        x = self.from_unit(u.numpy())
        return torch.as_tensor(x, dtype=dtype, device=device)


class Box(Domain):
    """The axis-aligned box [lower_1, upper_1] x ... x [lower_d, upper_d]."""

    def __init__(self, lower: Sequence[float], upper: Sequence[float]):
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        if self.lower.shape != self.upper.shape or np.any(self.upper <= self.lower):
            raise ValueError(f"Box needs lower < upper, got {lower} and {upper}")
        self.dim = len(self.lower)

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        return self.lower + u * (self.upper - self.lower)

    def contains(self, x: torch.Tensor, tol: float = 1e-9) -> torch.Tensor:
        lower = torch.as_tensor(self.lower, dtype=x.dtype, device=x.device)
        upper = torch.as_tensor(self.upper, dtype=x.dtype, device=x.device)
        return ((x >= lower - tol) & (x <= upper + tol)).all(dim=1)

    def __repr__(self) -> str:
        return f"Box(lower={self.lower.tolist()}, upper={self.upper.tolist()})"


class Ball(Domain):
    """The closed ball of radius ``radius`` centred at the origin of R^dim.

    Uniform points: a uniform direction (a normalised Gaussian vector) times a radius
    ``radius * U^(1/dim)``, which is uniform in volume in any dimension.
    """

    def __init__(self, dim: int, radius: float = 1.0):
        if dim < 1:
            raise ValueError(f"Ball needs dim >= 1, got {dim}")
        self.dim = int(dim)
        self.radius = float(radius)

    @property
    def unit_dim(self) -> int:
        return self.dim + 1

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        # Clip away from 0 and 1 so the inverse normal CDF stays finite for QMC points.
        eps = np.finfo(np.float64).eps
        gauss = ndtri(np.clip(u[:, : self.dim], eps, 1 - eps))
        norm = np.linalg.norm(gauss, axis=1, keepdims=True)
        norm[norm == 0] = 1.0
        radius = self.radius * u[:, self.dim :] ** (1.0 / self.dim)
        return gauss / norm * radius

    def contains(self, x: torch.Tensor, tol: float = 1e-9) -> torch.Tensor:
        return x.norm(dim=1) <= self.radius + tol

    def sample_sphere(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """Uniform points on the boundary sphere, shape (n, dim)."""
        g = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.radius * g / g.norm(dim=1, keepdim=True)).to(dtype)

    def __repr__(self) -> str:
        return f"Ball(dim={self.dim}, radius={self.radius})"
