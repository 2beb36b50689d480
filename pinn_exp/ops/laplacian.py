"""The Laplacian methods and :class:`Laplacian`, the derivative operator of a run.

The Laplacian is the cost centre of high-dimensional PINNs. :class:`Laplacian` offers:

* ``autograd``: the reference, one backward pass per coordinate through the gradient's graph.
* ``forward``: exact; value, Jacobian and Laplacian are carried forward through the layers of
  the MLP in one pass (the "forward Laplacian" of Li et al., 2023; :mod:`pinn_exp.ops.forward`).
  Used when ``u`` offers ``value_and_laplacian``; any other callable falls back to ``func``.
* ``func``: exact; forward-over-reverse with ``torch.func`` (a vmapped jvp of the gradient along
  each coordinate), for any callable.
* ``hutchinson``: the unbiased stochastic estimate E[v^T H v] with ``probes`` Rademacher vectors.

Every method works on a subset ``dims`` of the input coordinates (e.g. only x, not t, for a
space-time PDE) and keeps the graph, so the result can be trained through; inside
:func:`pinn_exp.ops.graph_free` every method gives values only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from pinn_exp.ops.derivatives import (
    Fn,
    forward_mode_context,
    gradient,
    is_graph_free,
    settled,
    space_time_derivatives,
)

METHODS = ("autograd", "forward", "func", "hutchinson")
STOCHASTIC = {"hutchinson"}


def _as_index(dims: Sequence[int] | None, dim: int) -> list[int]:
    return list(range(dim)) if dims is None else list(dims)


def laplacian_autograd(
    u: Fn, x: torch.Tensor, dims: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference Laplacian: a backward pass per coordinate. Returns (u as (n,), lap as (n,))."""
    y = u(x).reshape(-1)
    g = gradient(y, x)
    lap = torch.zeros_like(y)
    for i in _as_index(dims, x.shape[1]):
        lap = lap + gradient(g[:, i], x, final=True)[:, i]
    (y,) = settled(y)
    return y, lap


def laplacian_func(u: Fn, x: torch.Tensor, dims: Sequence[int] | None = None) -> torch.Tensor:
    """Exact Laplacian by forward-over-reverse (``torch.func``), vmapped over points and dims.

    ``torch.func`` differentiates by itself: inside :func:`pinn_exp.ops.graph_free` it runs
    under ``torch.no_grad`` and records nothing.
    """
    index = _as_index(dims, x.shape[1])
    basis = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)[index]

    def scalar(z: torch.Tensor) -> torch.Tensor:
        return u(z.unsqueeze(0)).reshape(())

    grad_fn = torch.func.grad(scalar)

    def per_point(z: torch.Tensor) -> torch.Tensor:
        def curvature(e: torch.Tensor) -> torch.Tensor:
            return torch.func.jvp(grad_fn, (z,), (e,))[1] @ e

        return torch.func.vmap(curvature)(basis).sum()

    with forward_mode_context():
        return torch.func.vmap(per_point)(x)


def laplacian_hutchinson(
    u: Fn,
    x: torch.Tensor,
    dims: Sequence[int] | None = None,
    probes: int = 16,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unbiased Hutchinson estimate (1/P) sum_p v_p^T H v_p with Rademacher v_p.

    Returns:
        (u as (n,), the estimate as (n,)).
    """
    index = _as_index(dims, x.shape[1])
    signs = torch.randint(
        0, 2, (probes, x.shape[0], len(index)), generator=generator, dtype=torch.int8
    )
    v = torch.zeros(probes, *x.shape, dtype=x.dtype, device=x.device)
    v[:, :, index] = (2.0 * signs - 1.0).to(dtype=x.dtype, device=x.device)
    y = u(x).reshape(-1)
    g = gradient(y, x)
    (hv,) = torch.autograd.grad(
        g, x, grad_outputs=v, is_grads_batched=True, create_graph=not is_graph_free()
    )
    (y,) = settled(y)
    return y, (v * hv).sum(dim=2).mean(dim=0)


class Laplacian:
    """The Laplacian over coordinates ``dims`` with a configurable method: the derivative
    operator that the trainer passes to every PDE's ``residual``.

    Args:
        method: one of ``autograd``, ``forward``, ``func``, ``hutchinson``.
        probes: Hutchinson probe vectors per evaluation (ignored by exact methods).
        seed: seed of the Hutchinson probes' generator.
        compile: compile the forward Laplacian with ``torch.compile`` (fuses its elementwise
            work; pays a one-off compilation of tens of seconds, and one per new input shape).
        compile_mode: the ``torch.compile`` mode; ``reduce-overhead`` adds CUDA graphs.
    """

    def __init__(
        self,
        method: str = "forward",
        probes: int = 16,
        seed: int = 0,
        compile: bool = False,
        compile_mode: str = "default",
    ):
        if method not in METHODS:
            raise ValueError(f"laplacian.method={method!r} is not allowed; choose one of {METHODS}")
        if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
            raise ValueError(f"laplacian.probes={probes!r} is not allowed; it must be >= 1")
        self.method = method
        self.probes = int(probes)
        self.generator = torch.Generator().manual_seed(seed)
        self.compile = bool(compile)
        modes = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
        if compile_mode not in modes:
            raise ValueError(
                f"laplacian.compile_mode={compile_mode!r} is not allowed; choose one of {modes}"
            )
        self.compile_mode = compile_mode
        self._compiled: dict[int, Callable] = {}

    @property
    def stochastic(self) -> bool:
        return self.method in STOCHASTIC

    def __call__(self, u: Fn, x: torch.Tensor, dims: Sequence[int] | None = None) -> torch.Tensor:
        """Returns the Laplacian of ``u`` at ``x`` over ``dims`` (all coordinates if None), (n,)."""
        return self.value_and_laplacian(u, x, dims)[1]

    def value_and_laplacian(
        self, u: Fn, x: torch.Tensor, dims: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(u(x) as (n,), laplacian as (n,))``, sharing work where the method can."""
        if self.method == "forward" and hasattr(u, "value_and_laplacian"):
            with forward_mode_context():
                value, lap = self._forward_fn(u)(x, dims)
            return value.reshape(-1), lap
        if self.method == "autograd":
            return laplacian_autograd(u, x, dims)
        if self.method == "hutchinson":
            return laplacian_hutchinson(u, x, dims, self.probes, self.generator)
        # "func", and "forward" for callables without a forward-mode path
        with forward_mode_context():
            value = u(x).reshape(-1)
        return value, laplacian_func(u, x, dims)

    def space_time(
        self, u: Fn, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """For inputs (x, t): u, u_t, u_x and u_xx, each of shape (n,).

        ``forward`` carries them forward through the network (``u.jet``, one pass, no nested
        ``autograd.grad``: the form ``torch.compile`` can fuse, and fewer kernels on a GPU;
        docs/performance.md); every other method, and callables without ``jet``, use
        autograd (u_xx is one-dimensional, so all methods are exact here).
        """
        if self.method == "forward" and hasattr(u, "jet"):
            with forward_mode_context():
                y, g, u_xx = u.jet(x, [0])
            return y, g[:, 1], g[:, 0], u_xx
        return space_time_derivatives(u, x)

    def _forward_fn(self, u) -> Callable:
        if not self.compile:
            return u.value_and_laplacian
        if id(u) not in self._compiled:
            self._compiled[id(u)] = torch.compile(
                u.value_and_laplacian, dynamic=False, mode=self.compile_mode
            )
        return self._compiled[id(u)]

    def __repr__(self) -> str:
        mode = f", compile_mode={self.compile_mode!r}" if self.compile else ""
        return (
            f"Laplacian(method={self.method!r}, probes={self.probes}, compile={self.compile}{mode})"
        )
