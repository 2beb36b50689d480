"""Forward-mode derivatives of an MLP: value, Jacobian and Laplacian carried through its layers.

The kernel of the ``forward`` Laplacian method (the "forward Laplacian" of Li et al., 2023) and
of the space-time jets: functions over a network's linear layers and the derivative table of
its activation (:data:`ACTIVATIONS`). :class:`pinn_exp.model.MLP` calls them from its
``forward_laplacian`` and ``forward_jet`` methods.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

#: an activation s: h -> (s(h), s'(h), s''(h))
ActivationDerivatives = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


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


#: Each activation with its first and second derivative, for the forward-mode kernel.
ACTIVATIONS: dict[str, ActivationDerivatives] = {
    "tanh": _tanh_derivatives,
    "sin": _sin_derivatives,
    "silu": _silu_derivatives,
}

# Relative size of R's smallest diagonal entry below which the reduced basis is not used.
_RANK_TOL = {torch.float32: 1e-4, torch.float64: 1e-10}


class JacobianStep(torch.autograd.Function):
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


def forward_laplacian(
    layers: Sequence[nn.Linear],
    act: ActivationDerivatives,
    x: torch.Tensor,
    dims: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Value, gradient and Laplacian over ``dims`` of an MLP in one forward pass.

    Carries (h, J = dh/dx, L = Laplacian of h) through the layers: a linear layer maps all
    three by W (the bias only shifts h); an activation s gives s(h), s'(h) J and
    s'(h) L + s''(h) sum_i J_i^2.

    When k exceeds the first layer's width w, J is carried in a w-dimensional basis: with
    the reduced QR factorisation W_0^T = Q R (Q of shape (k, w) with orthonormal columns),
    every later J equals Q J~ with J~ carried from R, and sum_i J_i^2 = sum_j J~_j^2 since
    Q^T Q = I. The Laplacian is unchanged and exact; the Jacobians shrink from k to w rows
    (8x at d = 1000, width 128), and the gradient is Q J~ at the end.

    Args:
        layers: the network's linear layers, input layer first; an activation follows every
            layer but the last.
        act: the activation's derivative table (an entry of :data:`ACTIVATIONS`).
        x: points of shape (n, d).
        dims: the coordinates of the Laplacian (all if None).

    Returns:
        (N of shape (n, out), gradient of shape (n, out, k), Laplacian of shape (n, out)),
        k = len(dims).
    """
    first = layers[0]
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
    for layer in layers[1:]:
        h, d1, d2 = act(h)
        lap = d1 * lap + d2 * sq
        h = layer(h)
        jac, sq = JacobianStep.apply(jac, d1, layer.weight)
        lap = lap @ layer.weight.T
    if basis is not None:
        jac = basis @ jac  # back to the coordinates: (k, w) @ (n, w, out) -> (n, k, out)
    return h, jac.transpose(1, 2), lap


def forward_jet(
    layers: Sequence[nn.Linear],
    act: ActivationDerivatives,
    x: torch.Tensor,
    dims: Sequence[int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Value, gradient over every input and Laplacian over ``dims`` of an MLP in one pass.

    The low-dimensional sibling of :func:`forward_laplacian` for space-time PDEs (u_t, u_x
    and u_xx of Burgers): the Jacobian of every input is carried, laid out (d, n, width) so
    that a layer is one matrix product for all inputs, with plain tensor operations only,
    so ``torch.compile`` can fuse the whole step and autograd differentiates it once
    (no graph of a graph, as nested ``autograd.grad`` calls build).

    Args:
        layers: the network's linear layers, input layer first.
        act: the activation's derivative table.
        x: points of shape (n, d).
        dims: the coordinates of the Laplacian.

    Returns:
        (N of shape (n, out), gradient of shape (n, out, d), Laplacian of shape (n, out)).
    """
    first = layers[0]
    h = first(x)
    jac = first.weight.T.unsqueeze(1)  # (d, 1, width): the same for every point
    lap = None
    for layer in layers[1:]:
        h, d1, d2 = act(h)
        sq = sum(jac[i].square() for i in dims)  # int indices: views, nothing copied
        lap = d2 * sq if lap is None else d1 * lap + d2 * sq
        h = layer(h)
        jac = (d1 * jac) @ layer.weight.T
        lap = lap @ layer.weight.T
    return h, jac.permute(1, 2, 0), lap
