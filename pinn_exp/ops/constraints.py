"""Jets of hard constraints: u = A(x) + B(x) N(x) and its derivatives from those of N.

A jet of a scalar field f at n points is (f as (n,), grad f over every input as (n, d),
Laplacian of f over the coordinates ``dims`` as (n,)). A :class:`HardConstraint` gives (A, B)
and their jets (by autograd unless a subclass gives closed forms), and combines them with the
network's value, gradient and Laplacian by the product rule.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

from pinn_exp.ops.derivatives import gradient, settled

#: (value (n,), gradient over every input (n, d), Laplacian over the chosen dims (n,))
Jet = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def autograd_jet(y: torch.Tensor, x: torch.Tensor, index: Sequence[int]) -> Jet:
    """The jet of ``y`` (shape (n,), computed from ``x``) by autograd, Laplacian over ``index``.

    Inside :func:`pinn_exp.ops.graph_free` the second derivatives are taken without a graph
    and the jet is detached.
    """
    if not y.requires_grad:  # constant in x
        return y, torch.zeros_like(x), torch.zeros_like(y)
    g = gradient(y, x)
    lap = torch.zeros_like(y)
    for i in index:
        lap = lap + gradient(g[:, i], x, final=True)[:, i]
    y, g = settled(y, g)
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


@torch.compiler.disable
def _autograd_jets(
    constraint: HardConstraint, x: torch.Tensor, index: list[int]
) -> tuple[Jet, Jet]:
    """The jets of A and B of ``constraint`` by autograd, run eagerly inside a compiled loss.

    ``torch.compile`` breaks its graph at each ``autograd.grad`` and compiles what precedes it
    with AOT autograd, whose backward cannot be differentiated again: the Laplacian's second
    derivative through a compiled (A, B) fails inside torch (a leaf variable used in an
    in-place operation, or "does not currently support double backward"). Kept out of the
    graph, (A, B) and their derivatives enter the compiled loss as inputs, which the
    parameters' gradient differentiates once.
    """
    with torch.enable_grad():
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        a, b = constraint(x)
        return autograd_jet(a[:, 0], x, index), autograd_jet(b[:, 0], x, index)


class HardConstraint(ABC):
    """A hard constraint u = A(x) + B(x) N(x): A carries the boundary (and initial) data, B
    vanishes where it is imposed, so u satisfies it for every network N.

    Implement :meth:`__call__`; override :meth:`jets` where A and B have closed-form
    derivatives (the default differentiates :meth:`__call__` with autograd, fine in low
    dimension; under ``optimizer.compile`` it runs eagerly, outside the compiled graph). The
    model (:class:`pinn_exp.model.Solution`) only calls :meth:`apply`,
    :meth:`value_and_laplacian` and :meth:`jet`.
    """

    @abstractmethod
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, B) at points ``x`` of shape (n, d), each of shape (n, 1)."""

    def jets(self, x: torch.Tensor, dims: Sequence[int] | None) -> tuple[Jet, Jet]:
        """The jets of A and of B: values (n,), gradients over every input (n, d) and
        Laplacians over ``dims`` (n,), all coordinates if None.

        The default differentiates :meth:`__call__` with autograd; it enables grad locally,
        so it also works inside ``torch.no_grad`` (the graph-free forward path) and for
        points that do not require grad.
        """
        index = list(range(x.shape[1])) if dims is None else list(dims)
        return _autograd_jets(self, x, index)

    def apply(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """u = A + B N at ``x`` for network outputs ``n`` of shape (n, 1); shape (n, 1)."""
        a, b = self(x)
        return a + b * n

    def value_and_laplacian(
        self,
        x: torch.Tensor,
        dims: Sequence[int] | None,
        n: torch.Tensor,
        grad_n: torch.Tensor,
        lap_n: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """u and its Laplacian over ``dims`` from N's value (n,), gradient over ``dims``
        (n, k) and Laplacian (n,): Lap u = Lap A + B Lap N + 2 grad B . grad N + N Lap B.

        Returns:
            (u as (n,), Laplacian of u as (n,)).
        """
        (a, _, lap_a), (b, grad_b, lap_b) = self.jets(x, dims)
        if dims is not None:
            grad_b = grad_b[:, list(dims)]
        value = a + b * n
        lap = lap_a + b * lap_n + 2 * (grad_b * grad_n).sum(dim=1) + n * lap_b
        return value, lap

    def jet(
        self,
        x: torch.Tensor,
        dims: Sequence[int],
        n: torch.Tensor,
        grad_n: torch.Tensor,
        lap_n: torch.Tensor,
    ) -> Jet:
        """The jet of u from N's value (n,), gradient over every input (n, d) and Laplacian
        over ``dims`` (n,): grad u = grad A + N grad B + B grad N and
        Lap u = Lap A + B Lap N + 2 grad B . grad N + N Lap B (the dot over ``dims``)."""
        (a, grad_a, lap_a), (b, grad_b, lap_b) = self.jets(x, dims)
        value = a + b * n
        grad = grad_a + grad_b * n.unsqueeze(1) + b.unsqueeze(1) * grad_n
        cross = sum(grad_b[:, i] * grad_n[:, i] for i in dims)
        lap = lap_a + b * lap_n + 2 * cross + n * lap_b
        return value, grad, lap
