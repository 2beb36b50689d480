"""The PDE interface.

A PDE knows its interior domain (where the collocation points live), its residual for any
callable u, an optional hard constraint u = A + B N, its soft boundary/initial terms, and its
reference solution. It never imports a sampler; samplers see only its :class:`Domain`. It holds
no derivative operator: the trainer passes the run's :class:`~pinn_exp.ops.Laplacian` to
``residual``.

To add a PDE: subclass :class:`PDE`, set ``name`` and ``domain`` in ``__init__``, implement
``residual`` and ``reference``, then write ``conf/pde/NAME.yaml`` whose ``_target_`` names the
class (docs/extending.md, "Add your own PDE").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from pinn_exp.domains import Domain
from pinn_exp.ops import Fn, HardConstraint, Laplacian


@dataclass
class BoundaryTerm:
    """A soft constraint: ``weight * mean((u(x) - target)^2)`` on fixed points ``x``.

    With ``partner`` points it ties u to itself, ``weight * mean((u(x) - u(partner) -
    target)^2)`` (a periodic boundary: ``x`` on one side, ``partner`` on the other, target 0).
    """

    name: str
    x: torch.Tensor
    target: torch.Tensor
    weight: float = 1.0
    partner: torch.Tensor | None = None

    def misfit(self, u: Fn) -> torch.Tensor:
        """u(x) - target, or u(x) - u(partner) - target; shape (n,)."""
        misfit = u(self.x).reshape(-1) - self.target.reshape(-1)
        if self.partner is not None:
            misfit = misfit - u(self.partner).reshape(-1)
        return misfit


class PDE(ABC):
    """Base class of every PDE.

    Attributes:
        name: short name used in records (``burgers``, ...).
        domain: the interior domain of the collocation points.
        constraint: the hard constraint u = A + B N (:class:`~pinn_exp.ops.HardConstraint`),
            or None where the network is the solution and the data are soft terms.
    """

    name: str = "pde"
    domain: Domain
    constraint: HardConstraint | None = None
    #: True where ``dim`` is a free parameter (``pde.dim`` may be set).
    free_dimension: bool = False

    @property
    def dim(self) -> int:
        """Number of input coordinates (space and time)."""
        return self.domain.dim

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        """The inputs' names, for plot axes: x_1 ... x_d (space-time PDEs: x and t)."""
        return tuple(f"x_{i + 1}" for i in range(self.dim))

    @abstractmethod
    def residual(self, u: Fn, x: torch.Tensor, laplacian: Laplacian) -> torch.Tensor:
        """PDE residual at ``x`` for a callable ``u``; shape (n,).

        Args:
            u: the solution, any callable from (n, dim) to (n, 1).
            x: the points, shape (n, dim), requiring grad.
            laplacian: the run's derivative operator (the ``laplacian`` config group):
                ``laplacian(u, x, dims)`` is the Laplacian of u, ``laplacian.space_time(u, x)``
                gives (u, u_t, u_x, u_xx) for inputs (x, t). A PDE without second derivatives
                ignores it (first derivatives: :func:`pinn_exp.ops.partials`). While the
                samplers score residuals its outputs are values only
                (:func:`pinn_exp.ops.graph_free`): take further derivatives from ``u``, not
                from them.
        """

    @abstractmethod
    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        """The test set: ``(X_test of shape (m, dim), u_test of shape (m,))``."""

    def effective_settings(self) -> dict[str, int | float]:
        """Constructor arguments that this PDE does not use as given, with the value in effect
        (``{"n_test": 10201}`` where the reference is a fixed grid); the run's record holds
        them as ``pde.NAME``. Default: none."""
        return {}

    def boundary_terms(
        self, generator: torch.Generator, device: torch.device, dtype: torch.dtype
    ) -> list[BoundaryTerm]:
        """Fixed soft boundary/initial terms, built once per run. Default: none (hard)."""
        return []

    def exact(self, x: torch.Tensor) -> torch.Tensor | None:
        """The closed-form solution, where one exists, shape (n, 1)."""
        return None

    def soft_term(
        self, name: str, x: torch.Tensor, weight: float, device: torch.device, dtype: torch.dtype
    ) -> BoundaryTerm:
        """A :class:`BoundaryTerm` u = ``exact`` on the points ``x`` (float64, from the
        domain's ``sample_boundary`` or ``sample_initial``), moved to ``device`` and ``dtype``."""
        return BoundaryTerm(name, x.to(device, dtype), self.exact(x).to(device, dtype), weight)

    def exact_reference(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A test set from the closed-form solution: ``points`` (m, dim) and :meth:`exact`
        there, shape (m,)."""
        return points, self.exact(torch.as_tensor(points)).numpy().ravel()

    def uniform_reference(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The test set of ``self.n_test`` uniform points of the domain (unit-cube points from
        a generator seeded with ``seed``, mapped by ``from_unit``) and :meth:`exact` there."""
        u = np.random.default_rng(seed).random((self.n_test, self.domain.unit_dim))
        return self.exact_reference(self.domain.from_unit(u))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


class SoftBoundaryPDE(PDE):
    """A PDE whose boundary data are one soft term, ``boundary``: u = :meth:`exact` on
    ``n_boundary`` points of its domain's boundary (:meth:`Domain.sample_boundary`), with the
    weight ``boundary_weight``; the subclass sets both in ``__init__``."""

    n_boundary: int
    boundary_weight: float

    def boundary_terms(
        self, generator: torch.Generator, device: torch.device, dtype: torch.dtype
    ) -> list[BoundaryTerm]:
        x = self.domain.sample_boundary(self.n_boundary, generator, dtype=torch.float64)
        return [self.soft_term("boundary", x, self.boundary_weight, device, dtype)]


def fixed_dimension(name: str, dim: int | None, expected: int) -> None:
    """Refuses ``pde.dim`` for a PDE whose dimension is fixed."""
    if dim is not None and dim != expected:
        raise ValueError(
            f"pde.dim={dim!r} is not allowed for pde={name}: its dimension is fixed "
            f"({expected} inputs); remove pde.dim or choose pde=laplace, pde=elliptic or "
            "pde=heat"
        )


def check_n_test(n_test: int) -> int:
    """Refuses a ``pde.n_test`` that is not an integer >= 1; returns it."""
    if isinstance(n_test, bool) or not isinstance(n_test, int) or n_test < 1:
        raise ValueError(f"pde.n_test={n_test!r} is not allowed; it must be an integer >= 1")
    return int(n_test)


def check_boundary_weight(boundary_weight: float) -> float:
    """Refuses a negative (or NaN) ``pde.boundary_weight``; returns it as a float."""
    if not boundary_weight >= 0:
        raise ValueError(f"pde.boundary_weight={boundary_weight!r} must be >= 0")
    return float(boundary_weight)


def grid(*axes: np.ndarray) -> np.ndarray:
    """The points of the grid ``axes[0] x axes[1] x ...``, one row a point, the first axis
    varying slowest."""
    meshes = np.meshgrid(*axes, indexing="ij")
    return np.stack([mesh.ravel() for mesh in meshes], axis=1)


def time_major_grid(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The points (x, t) of the grid of ``x`` and ``t``, time varying slowest (all of ``x`` at
    the first time, then at the next): the order of a solution indexed [t, x]."""
    tt, xx = np.meshgrid(t, x, indexing="ij")
    return np.stack([xx.ravel(), tt.ravel()], axis=1)
