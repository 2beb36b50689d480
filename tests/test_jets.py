"""Forward jets of the space-time PDEs (u, u_t, u_x, u_xx in one forward pass) against autograd."""

from __future__ import annotations

import pytest
import torch

from pinn_exp.model import MLP, Solution
from pinn_exp.ops import HardConstraint, Laplacian, graph_free, space_time_derivatives
from pinn_exp.pdes import PDE, AllenCahn, Burgers, Elliptic, ReactionDiffusion

F64 = torch.float64


def _points(pde: PDE, n: int = 64, seed: int = 0) -> torch.Tensor:
    return pde.domain.sample(n, torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("pde_cls", [Burgers, AllenCahn])
@pytest.mark.parametrize("dims", [None, [0], [1], [0, 1]])
def test_closed_form_constraint_jets_match_autograd(pde_cls, dims):
    pde = pde_cls()
    x = _points(pde)
    got = pde.constraint.jets(x, dims)
    want = HardConstraint.jets(pde.constraint, x, dims)  # the default: autograd of (A, B)
    for (g_val, g_grad, g_lap), (w_val, w_grad, w_lap) in zip(got, want):
        assert g_grad.shape == (64, 2)
        torch.testing.assert_close(g_val, w_val, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(g_grad, w_grad, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(g_lap, w_lap, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pde_cls", [Burgers, AllenCahn, ReactionDiffusion])
@pytest.mark.parametrize("activation", ["tanh", "sin", "silu"])
def test_forward_space_time_derivatives_match_autograd(pde_cls, activation):
    pde = pde_cls()
    torch.manual_seed(1)
    model = Solution(MLP(2, 16, 3, activation), pde.constraint).double()
    x = _points(pde).requires_grad_(True)
    forward = Laplacian("forward").space_time(model, x)
    reference = space_time_derivatives(model, x)
    for got, want in zip(forward, reference):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    # and the residual and its parameter gradient agree
    r_fwd = pde.residual(model, x, Laplacian("forward"))
    r_ref = pde.residual(model, x, Laplacian("autograd"))
    torch.testing.assert_close(r_fwd, r_ref, rtol=1e-10, atol=1e-10)
    g_fwd = torch.autograd.grad(r_fwd.square().mean(), list(model.parameters()))
    g_ref = torch.autograd.grad(r_ref.square().mean(), list(model.parameters()))
    for a, b in zip(g_fwd, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_forward_jet_needs_no_input_gradient():
    """The forward path differentiates nothing with respect to x: scoring runs without grad."""
    pde = Burgers()
    model = Solution(MLP(2, 8, 2), pde.constraint).double()
    x = _points(pde)
    with torch.no_grad():
        r = pde.residual(model, x, Laplacian("forward"))
    ref = pde.residual(model, x.requires_grad_(True), Laplacian("autograd"))
    torch.testing.assert_close(r, ref.detach(), rtol=1e-10, atol=1e-12)


class _AutogradOnly(HardConstraint):
    """A constraint with the default (autograd) jets only."""

    def __init__(self, inner: HardConstraint):
        self.inner = inner

    def __call__(self, x):
        return self.inner(x)


@pytest.mark.parametrize("pde_cls", [Burgers, AllenCahn])
def test_default_constraint_jets_in_the_forward_path_and_graph_free(pde_cls):
    """A constraint without closed forms: its autograd jets enable grad by themselves, so the
    forward path works for points without grad, under no_grad and inside graph_free (scoring),
    and agrees with the closed-form jets."""
    pde = pde_cls()
    torch.manual_seed(2)
    net = MLP(2, 16, 3).double()
    closed = Solution(net, pde.constraint)
    generic = Solution(net, _AutogradOnly(pde.constraint))
    x = _points(pde)
    want = Laplacian("forward").space_time(closed, x.requires_grad_(True))
    with torch.no_grad():
        got = Laplacian("forward").space_time(generic, x.detach())
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w.detach(), rtol=1e-12, atol=1e-12)
    with graph_free():
        free = Laplacian("forward").space_time(generic, x)
    for g, w in zip(free, want):
        assert g.grad_fn is None
        torch.testing.assert_close(g, w.detach(), rtol=1e-12, atol=1e-12)


def test_elliptic_bubble_is_a_hard_constraint():
    pde = Elliptic(dim=4, n_test=10)
    assert isinstance(pde.constraint, HardConstraint)
    sphere = pde.domain.sample_boundary(50, torch.Generator().manual_seed(0), dtype=F64)
    a, b = pde.constraint(sphere)
    assert a.shape == b.shape == (50, 1)
    assert a.abs().max() == 0 and b.abs().max() < 1e-14


def test_a_plain_network_has_no_constraint():
    torch.manual_seed(0)
    net = MLP(3, 8, 2).double()
    x = torch.rand(5, 3, dtype=F64)
    assert torch.equal(Solution(net)(x), net(x))
    assert Solution(net, None).constraint is None
    assert isinstance(PDE.constraint, type(None))  # the base class: soft terms only
