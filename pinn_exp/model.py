"""The network N(x) and the PINN solution u(x) = A(x) + B(x) N(x) built from it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def _tanh_derivatives(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    t = torch.tanh(h)
    d1 = 1 - t * t
    return t, d1, -2 * t * d1


def _sin_derivatives(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    s = torch.sin(h)
    return s, torch.cos(h), -s


def _silu_derivatives(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    s = torch.sigmoid(h)
    d1 = s * (1 + h * (1 - s))
    d2 = s * (1 - s) * (2 + h * (1 - 2 * s))
    return h * s, d1, d2


# Relative size of R's smallest diagonal entry below which the reduced basis is not used.
_RANK_TOL = {torch.float32: 1e-4, torch.float64: 1e-10}


class _JacobianStep(torch.autograd.Function):
    """One linear layer of the forward Laplacian, J' = (s'(h) * J) W^T with S' = sum_k J'^2.

    J is the (n, k, width) Jacobian of a layer's pre-activation, s'(h) its activation's
    derivative (n, width). Autograd would keep both J and the scaled s'(h) * J, two tensors of
    the size of J, for the backward pass; this keeps only J (and J', which the next layer keeps
    anyway) and recomputes the product, which cuts the forward Laplacian's memory by about a
    third. J may be (1, k, width), shared by all points (the first layer's).
    """

    @staticmethod
    def forward(ctx, jac, d1, weight):
        jac_next = (d1.unsqueeze(1) * jac) @ weight.T
        ctx.save_for_backward(jac, d1, weight, jac_next)
        ctx.set_materialize_grads(False)
        return jac_next, torch.linalg.vecdot(jac_next, jac_next, dim=1)

    @staticmethod
    def backward(ctx, grad_jac_next, grad_sq):
        jac, d1, weight, jac_next = ctx.saved_tensors
        if grad_jac_next is None and grad_sq is None:
            return None, None, None
        if grad_sq is None:
            grad = grad_jac_next
        elif grad_jac_next is None:
            grad = 2 * jac_next * grad_sq.unsqueeze(1)
        else:
            grad = torch.addcmul(grad_jac_next, jac_next, grad_sq.unsqueeze(1), value=2)
        grad_jac = grad_d1 = grad_weight = None
        if ctx.needs_input_grad[2]:
            scaled = d1.unsqueeze(1) * jac
            grad_weight = grad.flatten(0, 1).T @ scaled.flatten(0, 1)
            del scaled
        grad_scaled = grad @ weight
        if ctx.needs_input_grad[1]:
            grad_d1 = torch.linalg.vecdot(grad_scaled, jac.expand_as(grad_scaled), dim=1)
        if ctx.needs_input_grad[0]:
            grad_jac = grad_scaled * d1.unsqueeze(1)
            if jac.shape[0] == 1 and grad_jac.shape[0] != 1:
                grad_jac = grad_jac.sum(dim=0, keepdim=True)
        return grad_jac, grad_d1, grad_weight


# Each activation with its first and second derivative, for the forward Laplacian.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], tuple[torch.Tensor, ...]]] = {
    "tanh": _tanh_derivatives,
    "sin": _sin_derivatives,
    "silu": _silu_derivatives,
}


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
        """Value, gradient and Laplacian over ``dims`` in one forward pass.

        Carries (h, J = dh/dx, L = Laplacian of h) through the layers: a linear layer maps all
        three by W (the bias only shifts h); an activation s gives s(h), s'(h) J and
        s'(h) L + s''(h) sum_i J_i^2.

        When k exceeds the first layer's width w, J is carried in a w-dimensional basis: with
        the reduced QR factorisation W_0^T = Q R (Q of shape (k, w) with orthonormal columns),
        every later J equals Q J~ with J~ carried from R, and sum_i J_i^2 = sum_j J~_j^2 since
        Q^T Q = I. The Laplacian is unchanged and exact; the Jacobians shrink from k to w rows
        (8x at d = 1000, width 128), and the gradient is Q J~ at the end.

        Returns:
            (N of shape (n, out), gradient of shape (n, out, k), Laplacian of shape (n, out)),
            k = len(dims).
        """
        first = self.layers[0]
        h = first(x)
        # jac is laid out (n, k, width) so that a linear layer is one matrix product jac @ W^T;
        # (k, width) at first, the same for every point (no list index when dims is None: a
        # list index is copied to the device, which a CUDA graph cannot capture)
        jac = first.weight.T if dims is None else first.weight[:, list(dims)].T
        basis = None
        if jac.shape[0] > jac.shape[1]:
            q, r = torch.linalg.qr(jac)  # (k, w) orthonormal columns, R of shape (w, w)
            diag = r.detach().diagonal().abs()
            # QR's backward solves with R: a (near-)singular R (a first-layer unit with no
            # weight on these coordinates) would give infinite gradients, so keep J then.
            if bool(diag.min() > _RANK_TOL[jac.dtype] * diag.max()):
                basis, jac = q, r
        jac = jac.unsqueeze(0)
        sq = jac.square().sum(dim=1)  # sum_k J_k^2 per unit
        lap = torch.zeros_like(h)
        for layer in self.layers[1:]:
            h, d1, d2 = self._act(h)
            lap = d1 * lap + d2 * sq
            h = layer(h)
            jac, sq = _JacobianStep.apply(jac, d1, layer.weight)
            lap = lap @ layer.weight.T
        if basis is not None:
            jac = basis @ jac  # back to the coordinates: (k, w) @ (n, w, out) -> (n, k, out)
        return h, jac.transpose(1, 2), lap

    def forward_jet(
        self, x: torch.Tensor, dims: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Value, gradient over every input and Laplacian over ``dims`` in one forward pass.

        The low-dimensional sibling of :meth:`forward_laplacian` for space-time PDEs (u_t, u_x
        and u_xx of Burgers): the Jacobian of every input is carried, laid out (d, n, width) so
        that a layer is one matrix product for all inputs, with plain tensor operations only,
        so ``torch.compile`` can fuse the whole step and autograd differentiates it once
        (no graph of a graph, as nested ``autograd.grad`` calls build).

        Returns:
            (N of shape (n, out), gradient of shape (n, out, d), Laplacian of shape (n, out)).
        """
        first = self.layers[0]
        h = first(x)
        jac = first.weight.T.unsqueeze(1)  # (d, 1, width): the same for every point
        lap = None
        for layer in self.layers[1:]:
            h, d1, d2 = self._act(h)
            sq = sum(jac[i].square() for i in dims)  # int indices: views, nothing copied
            lap = d2 * sq if lap is None else d1 * lap + d2 * sq
            h = layer(h)
            jac = (d1 * jac) @ layer.weight.T
            lap = lap @ layer.weight.T
        return h, jac.permute(1, 2, 0), lap


Constraint = Callable[[torch.Tensor], "tuple[torch.Tensor, torch.Tensor] | None"]


class Solution(nn.Module):
    """The PINN's approximation u(x) = A(x) + B(x) N(x) (a hard constraint), or N(x).

    Args:
        net: the network N.
        pde: the PDE; its ``hard_constraint(x)`` returns (A, B) or None, and its
            ``constraint_jets(x, dims)`` their values, gradients (over every input) and
            Laplacians (over ``dims``).
    """

    def __init__(self, net: MLP, pde):
        super().__init__()
        self.net = net
        self.pde = pde

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net(x)
        ab = self.pde.hard_constraint(x)
        if ab is None:
            return n
        a, b = ab
        return a + b * n

    def value_and_laplacian(
        self, x: torch.Tensor, dims: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """u and its Laplacian over ``dims`` by the forward Laplacian; both of shape (n,).

        With u = A + B N: Lap u = Lap A + B Lap N + 2 grad B . grad N + N Lap B.
        """
        n, grad_n, lap_n = self.net.forward_laplacian(x, dims)
        n, grad_n, lap_n = n[:, 0], grad_n[:, 0], lap_n[:, 0]
        jets = self.pde.constraint_jets(x, dims)
        if jets is None:
            return n, lap_n
        (a, grad_a, lap_a), (b, grad_b, lap_b) = jets
        if dims is not None:
            grad_b = grad_b[:, list(dims)]
        value = a + b * n
        lap = lap_a + b * lap_n + 2 * (grad_b * grad_n).sum(dim=1) + n * lap_b
        return value, lap

    def jet(
        self, x: torch.Tensor, dims: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """u (n,), its gradient over every input (n, d) and its Laplacian over ``dims`` (n,),
        by forward propagation (:meth:`MLP.forward_jet`); for low-dimensional inputs.

        With u = A + B N: grad u = grad A + N grad B + B grad N and
        Lap u = Lap A + B Lap N + 2 grad B . grad N + N Lap B (the dot over ``dims``).
        """
        n, grad_n, lap_n = self.net.forward_jet(x, dims)
        n, grad_n, lap_n = n[:, 0], grad_n[:, 0], lap_n[:, 0]
        jets = self.pde.constraint_jets(x, dims)
        if jets is None:
            return n, grad_n, lap_n
        (a, grad_a, lap_a), (b, grad_b, lap_b) = jets
        value = a + b * n
        grad = grad_a + grad_b * n.unsqueeze(1) + b.unsqueeze(1) * grad_n
        cross = sum(grad_b[:, i] * grad_n[:, i] for i in dims)
        lap = lap_a + b * lap_n + 2 * cross + n * lap_b
        return value, grad, lap
