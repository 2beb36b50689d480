"""The network N(x) and the PINN solution u(x) = A(x) + B(x) N(x) built from it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pinn_exp.ops.constraints import HardConstraint
from pinn_exp.ops.forward import ACTIVATIONS, forward_jet, forward_laplacian


class MLP(nn.Module):
    """A fully connected network ``in_dim -> width x depth -> out_dim``, Glorot-normal weights.

    Args:
        in_dim: input dimension (set by the PDE).
        width: neurons per hidden layer.
        depth: number of hidden layers.
        activation: one of ``tanh``, ``sin``, ``silu``.
        out_dim: output dimension.
    """

    def __init__(
        self, in_dim: int, width: int = 64, depth: int = 3, activation: str = "tanh", out_dim=1
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"model.activation={activation!r} is not allowed; choose one of "
                f"{tuple(ACTIVATIONS)}"
            )
        if int(width) < 1 or int(depth) < 1:
            raise ValueError(f"model.width={width} and model.depth={depth} must both be >= 1")
        sizes = [in_dim] + [int(width)] * int(depth) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = activation
        self._act = ACTIVATIONS[activation]
        for layer in self.layers:
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self._act(layer(x))[0]
        return self.layers[-1](x)

    def forward_laplacian(
        self, x: torch.Tensor, dims: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Value, gradient and Laplacian over ``dims`` in one forward pass
        (:func:`pinn_exp.ops.forward.forward_laplacian`).

        Returns:
            (N of shape (n, out), gradient of shape (n, out, k), Laplacian of shape (n, out)),
            k = len(dims).
        """
        return forward_laplacian(self.layers, self._act, x, dims)

    def forward_jet(
        self, x: torch.Tensor, dims: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Value, gradient over every input and Laplacian over ``dims`` in one forward pass
        (:func:`pinn_exp.ops.forward.forward_jet`, for low-dimensional inputs).

        Returns:
            (N of shape (n, out), gradient of shape (n, out, d), Laplacian of shape (n, out)).
        """
        return forward_jet(self.layers, self._act, x, dims)


class Solution(nn.Module):
    """The PINN's approximation u(x) = A(x) + B(x) N(x) (a hard constraint), or N(x).

    Args:
        net: the network N.
        constraint: gives (A, B) and their jets (:class:`pinn_exp.ops.HardConstraint`); None
            for the plain network u = N.
    """

    def __init__(self, net: MLP, constraint: HardConstraint | None = None):
        super().__init__()
        self.net = net
        self.constraint = constraint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net(x)
        if self.constraint is None:
            return n
        return self.constraint.apply(x, n)

    def value_and_laplacian(
        self, x: torch.Tensor, dims: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """u and its Laplacian over ``dims`` by the forward Laplacian; both of shape (n,)."""
        n, grad_n, lap_n = self.net.forward_laplacian(x, dims)
        n, grad_n, lap_n = n[:, 0], grad_n[:, 0], lap_n[:, 0]
        if self.constraint is None:
            return n, lap_n
        return self.constraint.value_and_laplacian(x, dims, n, grad_n, lap_n)

    def jet(
        self, x: torch.Tensor, dims: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """u (n,), its gradient over every input (n, d) and its Laplacian over ``dims`` (n,),
        by forward propagation (:meth:`MLP.forward_jet`); for low-dimensional inputs."""
        n, grad_n, lap_n = self.net.forward_jet(x, dims)
        n, grad_n, lap_n = n[:, 0], grad_n[:, 0], lap_n[:, 0]
        if self.constraint is None:
            return n, grad_n, lap_n
        return self.constraint.jet(x, dims, n, grad_n, lap_n)
