"""Derivatives of a solution u(x) with respect to its inputs by autograd, and graph-free mode.

Training differentiates the residual with respect to the network's parameters, so every
derivative is taken with ``create_graph=True``. Scoring (the samplers' |residual| on large
candidate sets, with the parameters frozen) only needs values: under :func:`graph_free` the
last derivative of each chain is taken without a graph, the forward-mode paths run under
``torch.no_grad``, and what the Laplacian methods and the space-time derivatives return
carries no graph (no ``grad_fn``): do not differentiate their outputs again (take a first
derivative from ``u`` with :func:`partials` or :func:`gradient` instead). The first derivative
of a chain that is differentiated again still needs its graph; it is freed as soon as the
chain ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

Fn = Callable[[torch.Tensor], torch.Tensor]

# Process-wide, not per thread: a plain module global, which torch.compile reads (and guards
# on) without a graph break, unlike a ContextVar. Nothing in this project scores and trains
# in two threads of one process at once.
_graph_free = False


@contextlib.contextmanager
def graph_free() -> Iterator[None]:
    """Derivatives computed inside are values only: nothing in them can be differentiated.

    Used by the residual scorer (:class:`pinn_exp.training.trainer.Scorer`): without it, the
    autograd Laplacian of a dense candidate set keeps the graph of every second derivative
    alive until the sum is complete (docs/performance.md, "Graph-free scoring").
    """
    global _graph_free
    previous, _graph_free = _graph_free, True
    try:
        yield
    finally:
        _graph_free = previous


def is_graph_free() -> bool:
    """True inside :func:`graph_free`."""
    return _graph_free


def forward_mode_context() -> contextlib.AbstractContextManager:
    """``torch.no_grad()`` inside :func:`graph_free` (a forward-mode pass then records
    nothing), otherwise a context that changes nothing."""
    return torch.no_grad() if is_graph_free() else contextlib.nullcontext()


def settled(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The tensors detached inside :func:`graph_free` (their graphs can go), else unchanged."""
    if not is_graph_free():
        return tensors
    return tuple(t.detach() for t in tensors)


def gradient(y: torch.Tensor, x: torch.Tensor, final: bool = False) -> torch.Tensor:
    """dy/dx for a per-point scalar y.

    Args:
        y: values of shape (n,) or (n, 1), computed from ``x``.
        x: the points, shape (n, dim), requiring grad.
        final: this derivative ends its chain (it is not differentiated again); inside
            :func:`graph_free` it is then taken without a graph. Outside, and when False, it
            keeps its graph (``create_graph=True``) so it can be trained through.

    Returns:
        Tensor of shape (n, dim).
    """
    keep = not (final and is_graph_free())
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=keep, retain_graph=True)
    return g


def partials(u: Fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``(u(x) as (n,), grad u as (n, dim))`` with graph, for first-order terms."""
    y = u(x).reshape(-1)
    return y, gradient(y, x)


def space_time_derivatives(
    u: Fn, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For inputs (x, t): returns u, u_t, u_x and u_xx, each of shape (n,), by autograd."""
    y, g = partials(u, x)
    u_xx = gradient(g[:, 0], x, final=True)[:, 0]
    y, g = settled(y, g)
    return y, g[:, 1], g[:, 0], u_xx
