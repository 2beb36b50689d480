"""The PDE interface.

A PDE knows its interior domain (where the collocation points live), its residual for any
callable u, an optional hard constraint u = A + B N, its soft boundary/initial terms, and its
reference solution. It never imports a sampler; samplers see only its :class:`Domain`.

To add a PDE: subclass :class:`PDE`, set ``name`` and ``domain`` in ``__init__``, implement
``residual`` and ``reference``, then write ``conf/pde/NAME.yaml`` whose ``_target_`` names the
class (see README, "Add your own PDE").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pinn_exp.domains import Domain
from pinn_exp.ops.laplacian import (  # noqa: F401  (partials, space_time_derivatives: re-exported)
    Laplacian,
    gradient,
    partials,
    space_time_derivatives,
)

Fn = Callable[[torch.Tensor], torch.Tensor]
Jet = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class BoundaryTerm:
    """A soft constraint: ``weight * mean((u(x) - target)^2)`` on fixed points ``x``."""

    name: str
    x: torch.Tensor
    target: torch.Tensor
    weight: float = 1.0


class PDE(ABC):
    """Base class of every PDE.

    Attributes:
        name: short name used in records (``burgers``, ...).
        domain: the interior domain of the collocation points.
        laplacian: the Laplacian operator (method chosen by the ``laplacian`` config group).
    """

    name: str = "pde"
    domain: Domain
    #: True where ``dim`` is a free parameter (``pde.dim`` may be set).
    free_dimension: bool = False

    def __init__(self, laplacian: Laplacian | None = None):
        self.laplacian = laplacian or Laplacian("autograd")

    @property
    def dim(self) -> int:
        """Number of input coordinates (space and time)."""
        return self.domain.dim

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        """The inputs' names, for plot axes: x_1 ... x_d (space-time PDEs: x and t)."""
        return tuple(f"x_{i + 1}" for i in range(self.dim))

    @abstractmethod
    def residual(self, u: Fn, x: torch.Tensor) -> torch.Tensor:
        """PDE residual at ``x`` (which requires grad) for a callable ``u``; shape (n,)."""

    @abstractmethod
    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        """The test set: ``(X_test of shape (m, dim), u_test of shape (m,))``."""

    def hard_constraint(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(A, B) of shape (n, 1) each with u = A + B N, or None for a plain network."""
        return None

    def constraint_jets(self, x: torch.Tensor, dims: Sequence[int] | None) -> tuple[Jet, Jet]:
        """Value (n,), gradient over every input (n, d) and Laplacian over ``dims`` (n,) of A
        and of B.

        The default differentiates ``hard_constraint`` with autograd (fine in low dimension);
        high-dimensional PDEs override it with closed forms.
        """
        if self.hard_constraint(x) is None:
            return None
        index = list(range(x.shape[1])) if dims is None else list(dims)
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        a, b = self.hard_constraint(x)
        return _jet(a[:, 0], x, index), _jet(b[:, 0], x, index)

    def boundary_terms(
        self, generator: torch.Generator, device: torch.device, dtype: torch.dtype
    ) -> list[BoundaryTerm]:
        """Fixed soft boundary/initial terms, built once per run. Default: none (hard)."""
        return []

    def exact(self, x: torch.Tensor) -> torch.Tensor | None:
        """The closed-form solution, where one exists, shape (n, 1)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


def _jet(y: torch.Tensor, x: torch.Tensor, index: list[int]) -> Jet:
    if not y.requires_grad:  # constant in x
        return y, torch.zeros_like(x), torch.zeros_like(y)
    g = gradient(y, x)
    lap = torch.zeros_like(y)
    for i in index:
        lap = lap + gradient(g[:, i], x)[:, i]
    return y, g, lap


def space_time_jet(
    value: torch.Tensor,
    u_x: torch.Tensor,
    u_t: torch.Tensor,
    u_xx: torch.Tensor,
    u_tt: torch.Tensor | float,
    dims: Sequence[int] | None,
) -> Jet:
    """A closed-form jet of a function of (x, t): value, gradient (n, 2), Laplacian over
    ``dims`` (the second derivatives u_xx and u_tt summed over the chosen coordinates)."""
    index = [0, 1] if dims is None else list(dims)
    second = (u_xx, u_tt)
    lap = sum((second[i] for i in index), torch.zeros_like(value))
    return value, torch.stack([u_x, u_t], dim=1), lap


def fixed_dimension(name: str, dim: int | None, expected: int) -> None:
    """Refuses ``pde.dim`` for a PDE whose dimension is fixed."""
    if dim is not None and dim != expected:
        raise ValueError(
            f"pde.dim={dim!r} is not allowed for pde={name}: its dimension is fixed "
            f"({expected} inputs); remove pde.dim or choose pde=laplace or pde=elliptic"
        )
