"""Between the parameters and one flat vector: :func:`flat`, :func:`load` and
:func:`flat_grad` for one problem; :func:`flat_stacked`, :func:`load_stacked` and
:func:`flat_grad_stacked` for stacked parameters (leading member dimension S), one flat vector
per member, ``[S, n]``."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def flat(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The parameters as one flat vector (detached)."""
    return torch.cat([p.detach().reshape(-1) for p in params])


def flat_grad(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The parameters' gradients as one flat vector (zeros where a gradient is None)."""
    return torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
    )


@torch.no_grad()
def load(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Copies a flat vector into the parameters (in place: their storage stays the same)."""
    views = [v.view_as(p) for v, p in zip(flat.split([p.numel() for p in params]), params)]
    torch._foreach_copy_(list(params), views)


def flat_stacked(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stacked parameters (leading member dimension S) as one flat vector per member, [S, n]."""
    return torch.cat([p.detach().reshape(len(p), -1) for p in params], dim=1)


def flat_grad_stacked(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The stacked parameters' gradients as one flat vector per member, [S, n] (zeros where a
    gradient is None)."""
    return torch.cat(
        [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(len(p), -1)
            for p in params
        ],
        dim=1,
    )


@torch.no_grad()
def load_stacked(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Copies one flat vector per member, [S, n], into the stacked parameters (in place)."""
    columns = flat.split([p[0].numel() for p in params], dim=1)
    torch._foreach_copy_(list(params), [c.reshape(p.shape) for c, p in zip(columns, params)])
