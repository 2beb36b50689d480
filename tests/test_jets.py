"""Forward jets of the space-time PDEs (u, u_t, u_x, u_xx in one forward pass) against autograd."""

from __future__ import annotations

import pytest
import torch

from pinn_exp.model import MLP, Solution
from pinn_exp.ops.laplacian import Laplacian, space_time_derivatives
from pinn_exp.pdes import AllenCahn, Burgers, ReactionDiffusion
from pinn_exp.pdes.base import PDE

F64 = torch.float64


def _points(pde: PDE, n: int = 64, seed: int = 0) -> torch.Tensor:
    return pde.domain.sample(n, torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("pde_cls", [Burgers, AllenCahn])
@pytest.mark.parametrize("dims", [None, [0], [1], [0, 1]])
def test_closed_form_constraint_jets_match_autograd(pde_cls, dims):
    pde = pde_cls()
    x = _points(pde)
    got = pde.constraint_jets(x, dims)
    want = PDE.constraint_jets(pde, x, dims)  # the base class differentiates hard_constraint
    for (g_val, g_grad, g_lap), (w_val, w_grad, w_lap) in zip(got, want):
        assert g_grad.shape == (64, 2)
        torch.testing.assert_close(g_val, w_val, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(g_grad, w_grad, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(g_lap, w_lap, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pde_cls", [Burgers, AllenCahn, ReactionDiffusion])
@pytest.mark.parametrize("activation", ["tanh", "sin", "silu"])
def test_forward_space_time_derivatives_match_autograd(pde_cls, activation):
    pde = pde_cls(laplacian=Laplacian("forward"))
    torch.manual_seed(1)
    model = Solution(MLP(2, 16, 3, activation), pde).double()
    x = _points(pde).requires_grad_(True)
    forward = pde.laplacian.space_time(model, x)
    reference = space_time_derivatives(model, x)
    for got, want in zip(forward, reference):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    # and the residual and its parameter gradient agree
    r_fwd = pde.residual(model, x)
    r_ref = pde_cls(laplacian=Laplacian("autograd")).residual(model, x)
    torch.testing.assert_close(r_fwd, r_ref, rtol=1e-10, atol=1e-10)
    g_fwd = torch.autograd.grad(r_fwd.square().mean(), list(model.parameters()))
    g_ref = torch.autograd.grad(r_ref.square().mean(), list(model.parameters()))
    for a, b in zip(g_fwd, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_forward_jet_needs_no_input_gradient():
    """The forward path differentiates nothing with respect to x: scoring runs without grad."""
    pde = Burgers(laplacian=Laplacian("forward"))
    model = Solution(MLP(2, 8, 2), pde).double()
    x = _points(pde)
    with torch.no_grad():
        r = pde.residual(model, x)
    ref = Burgers(laplacian=Laplacian("autograd")).residual(model, x.requires_grad_(True))
    torch.testing.assert_close(r, ref.detach(), rtol=1e-10, atol=1e-12)
