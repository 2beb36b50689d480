"""Geometry shared by PDEs and samplers.

A sampler never imports a PDE; both meet through a :class:`Domain`: it draws uniform points,
maps points of the unit cube onto itself (for quasi-Monte Carlo sequences) and tells whether a
point lies inside. PDEs with soft boundary (and initial) terms draw those points from their
domain too (:meth:`Domain.sample_boundary`, :meth:`SpaceTime.sample_initial`).
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

    def sample_boundary(
        self,
        n: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Draws ``n`` points on the boundary, for soft boundary terms: those of
        :meth:`boundary_points`, drawn on the CPU in float64 and moved, as :meth:`sample`'s
        (the same arguments); shape (n, dim)."""
        return self.boundary_points(n, generator).to(device=device, dtype=dtype)

    def boundary_points(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The points of :meth:`sample_boundary`, in float64 on the CPU: what a domain with
        soft boundary terms implements."""
        raise NotImplementedError(
            f"{type(self).__name__} has no sample_boundary: implement it to use soft boundary "
            "terms on this domain"
        )


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

    def boundary_points(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` points on the 2 dim faces, every face its share: point i is a uniform point of
        the box moved onto face ``i mod (2 dim)`` (the coordinate ``face // 2`` set to the lower
        bound for an even face, the upper for an odd one). In one dimension the boundary is the
        two end points, in turn, and nothing is drawn."""
        lower = torch.as_tensor(self.lower)
        upper = torch.as_tensor(self.upper)
        face = torch.arange(n) % (2 * self.dim)
        axis, high = face // 2, face % 2 == 1
        if self.dim == 1:
            x = torch.where(high, upper[0], lower[0]).unsqueeze(1)
        else:
            u = torch.rand(n, self.dim, generator=generator, dtype=torch.float64)
            x = lower + u * (upper - lower)
            x[torch.arange(n), axis] = torch.where(high, upper[axis], lower[axis])
        return x

    def __repr__(self) -> str:
        return f"Box(lower={self.lower.tolist()}, upper={self.upper.tolist()})"


class SpaceTime(Box):
    """A space box times a time interval, [lower, upper] x [t0, t1]; time is the last input.

    For samplers it is the box; for soft terms its boundary is the spatial one (x on a face
    of the space box, t in [t0, t1]) and its initial slice is t = t0.

    Args:
        lower: the space box's lower corner.
        upper: its upper corner.
        t0: the initial time.
        t1: the final time.
    """

    def __init__(self, lower: Sequence[float], upper: Sequence[float], t0: float, t1: float):
        super().__init__([*lower, t0], [*upper, t1])
        self.space = Box(lower, upper)
        self.t0, self.t1 = float(t0), float(t1)

    def boundary_points(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` points on the spatial boundary (:meth:`Box.sample_boundary` of the space box,
        drawn first) at uniform times in [t0, t1]; shape (n, dim)."""
        x = self.space.boundary_points(n, generator)
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        t = self.t0 + u * (self.t1 - self.t0)
        return torch.cat([x, t.unsqueeze(1)], dim=1)

    def sample_initial(
        self,
        n: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """``n`` uniform points of the space box at t = t0, shape (n, dim)."""
        x = self.space.sample(n, generator, dtype=torch.float64)
        t = torch.full((n, 1), self.t0, dtype=torch.float64)
        return torch.cat([x, t], dim=1).to(device=device, dtype=dtype)

    def __repr__(self) -> str:
        return (
            f"SpaceTime(lower={self.space.lower.tolist()}, upper={self.space.upper.tolist()}, "
            f"t0={self.t0}, t1={self.t1})"
        )


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

    def boundary_points(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Uniform points on the boundary sphere (normalised Gaussian vectors), shape (n, dim)."""
        g = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.radius * g / g.norm(dim=1, keepdim=True)

    def __repr__(self) -> str:
        return f"Ball(dim={self.dim}, radius={self.radius})"


class LShape(Domain):
    """The L-shaped domain (-1, 1)^2 minus the quadrant [0, 1) x (-1, 0], with the re-entrant
    corner at the origin (the closed domain keeps the two edges that meet there).

    It is the union of three unit squares, [-1, 0] x [-1, 0], [-1, 0] x [0, 1] and
    [0, 1] x [0, 1]. :meth:`from_unit` takes three unit coordinates per point: the first picks
    a square (each a third of the area), the other two place the point in it. The map is exact
    and measure-preserving, so :meth:`sample` gives exactly ``n`` uniform points without
    rejection, and quasi-random points stay well spread; the unit-cube map is not affine, so
    no regular residual grid is drawn for this domain.

    The boundary is the six edges, counter-clockwise from the corner: (0,0)-(1,0), (1,0)-(1,1),
    (1,1)-(-1,1), (-1,1)-(-1,-1), (-1,-1)-(0,-1), (0,-1)-(0,0), of lengths 1, 1, 2, 2, 1, 1.
    """

    dim = 2
    #: the lower-left corners of the three unit squares
    SQUARES = np.array([[-1.0, -1.0], [-1.0, 0.0], [0.0, 0.0]])
    #: the polygon's vertices, counter-clockwise from the re-entrant corner
    VERTICES = np.array(
        [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [0.0, -1.0]]
    )

    @property
    def unit_dim(self) -> int:
        return 3

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        square = np.minimum((u[:, 0] * 3).astype(np.int64), 2)
        return self.SQUARES[square] + u[:, 1:3]

    def contains(self, x: torch.Tensor, tol: float = 1e-9) -> torch.Tensor:
        in_box = (x.abs() <= 1 + tol).all(dim=1)
        cut = (x[:, 0] > tol) & (x[:, 1] < -tol)  # the open removed quadrant
        return in_box & ~cut

    def boundary_points(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` points on the six edges, stratified along the perimeter (length 8): point i
        is at arc length (i + U_i) 8 / n from the corner, so every edge gets its share of the
        points in proportion to its length (to within one point); shape (n, 2)."""
        start = torch.as_tensor(self.VERTICES)
        end = torch.roll(start, -1, dims=0)
        length = (end - start).norm(dim=1)
        cumulative = torch.cat([torch.zeros(1, dtype=torch.float64), length.cumsum(0)])
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        s = (torch.arange(n, dtype=torch.float64) + u) * cumulative[-1] / n
        edge = (torch.searchsorted(cumulative, s, right=True) - 1).clamp(0, len(length) - 1)
        along = ((s - cumulative[edge]) / length[edge]).unsqueeze(1)
        x = start[edge] + along * (end[edge] - start[edge])
        return x

    def __repr__(self) -> str:
        return "LShape()"
