"""The Laplacian operator: every exact method equals the autograd reference, also in its
gradients with respect to the network's parameters; Hutchinson is unbiased; bad input is
refused with the key named."""

from __future__ import annotations

import pytest
import torch

from pinn_exp.model import MLP, Solution
from pinn_exp.ops import METHODS, JacobianStep, Laplacian, gradient, laplacian_autograd
from pinn_exp.pdes import PDE, Elliptic, Laplace

EXACT = ["autograd", "forward", "func"]
N_POINTS = 16


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return ((a - b).abs().max() / b.abs().max()).item()


def _solution(pde_cls, d: int, activation: str = "tanh", seed: int = 0) -> tuple[Solution, PDE]:
    """A float64 model with the PDE's hard constraint (None for Laplace), and the PDE."""
    torch.manual_seed(seed)
    pde = pde_cls(dim=d)
    return Solution(MLP(d, 32, 3, activation), pde.constraint).double(), pde


def _points(pde: PDE, n: int = N_POINTS, seed: int = 1) -> torch.Tensor:
    x = pde.domain.sample(n, torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x.requires_grad_(True)


def _param_grad(model: Solution, lap: torch.Tensor) -> torch.Tensor:
    """d sum(lap) / d parameters, flattened (unused parameters, e.g. the last bias when the
    Laplacian does not depend on it, count as zero)."""
    params = list(model.parameters())
    grads = torch.autograd.grad(lap.sum(), params, allow_unused=True)
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)]
    )


def _second_derivatives(u, x: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """d^2 u / d x_i^2 for i in dims, by explicit autograd, shape (n, len(dims))."""
    g = gradient(u(x).reshape(-1), x)
    return torch.stack([gradient(g[:, i], x)[:, i] for i in dims], dim=1)


# ------------------------------------------------------------------- exact methods agree


@pytest.mark.parametrize("activation", ["tanh", "sin", "silu"])
@pytest.mark.parametrize("pde_cls", [Elliptic, Laplace], ids=["elliptic", "laplace"])
@pytest.mark.parametrize("d", [2, 7, 20])
def test_exact_methods_agree_with_autograd(d, pde_cls, activation, monkeypatch):
    model, pde = _solution(pde_cls, d, activation)
    x = _points(pde)
    # The forward method must really take the forward-mode path of the network.
    calls = []
    forward_laplacian = model.net.forward_laplacian

    def spy(*args, **kwargs):
        calls.append(1)
        return forward_laplacian(*args, **kwargs)

    monkeypatch.setattr(model.net, "forward_laplacian", spy)

    ref_value, ref_lap = Laplacian("autograd").value_and_laplacian(model, x)
    ref_grad = _param_grad(model, ref_lap)
    assert ref_value.shape == ref_lap.shape == (N_POINTS,)
    assert ref_lap.abs().max() > 1e-3  # a non-trivial Laplacian
    assert not calls

    for method in ("forward", "func"):
        value, lap = Laplacian(method).value_and_laplacian(model, x)
        assert value.shape == lap.shape == (N_POINTS,)
        assert _rel(value, ref_value) <= 1e-10, method
        assert _rel(lap, ref_lap) <= 1e-10, method  # measured <= 3e-15
        # training differentiates the Laplacian with respect to the parameters
        assert _rel(_param_grad(model, lap), ref_grad) <= 1e-8, method  # measured <= 6e-16
        # __call__ returns the same Laplacian
        assert _rel(Laplacian(method)(model, x), ref_lap) <= 1e-10, method
    assert calls, "method 'forward' did not use MLP.forward_laplacian"


def test_laplacian_matches_closed_form():
    """Delta exp(a . x) = |a|^2 exp(a . x) for every exact method, float64."""
    a = torch.tensor([0.3, -0.7, 1.1, 0.2], dtype=torch.float64)

    def u(x):
        return torch.exp(x @ a).unsqueeze(1)

    x = torch.rand(32, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x.requires_grad_(True)
    expected = a.square().sum() * torch.exp(x @ a)
    for method in EXACT:
        value, lap = Laplacian(method).value_and_laplacian(u, x)
        assert _rel(value, torch.exp(x @ a)) <= 1e-14, method
        assert _rel(lap, expected) <= 1e-12, method


# --------------------------------------------------------------------------- dims subsets


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pde_cls", [Elliptic, Laplace], ids=["elliptic", "laplace"])
def test_dims_subsets(pde_cls, method):
    model, pde = _solution(pde_cls, 7, "tanh")
    x = _points(pde)
    second = _second_derivatives(model, x, list(range(7))).detach()
    op = Laplacian(method, probes=8, seed=3)
    # over one coordinate every method (Hutchinson too: v^T H v = H_00) is d^2u/dx_0^2
    assert _rel(op(model, x, dims=[0]), second[:, 0]) <= 1e-10
    if not op.stochastic:
        assert _rel(op(model, x, dims=[1, 3, 4]), second[:, [1, 3, 4]].sum(dim=1)) <= 1e-10
        assert _rel(op(model, x, dims=None), second.sum(dim=1)) <= 1e-10
    # the subset really is a subset: the full Laplacian differs from d^2u/dx_0^2
    assert _rel(second.sum(dim=1), second[:, 0]) > 1e-2


# ------------------------------------------------------------------------------ Hutchinson


def test_hutchinson_is_unbiased():
    """The mean over seeds x probes is within 5 standard errors of the exact Laplacian, and
    the spread over seeds is the Rademacher one: Var(v^T H v) = 2 sum_{i != j} H_ij^2."""
    d, n, probes, seeds = 5, 6, 4096, 8
    model, pde = _solution(Laplace, d, "tanh")
    x = _points(pde, n)
    exact = Laplacian("autograd")(model, x).detach()
    estimates = torch.stack(
        [Laplacian("hutchinson", probes=probes, seed=s)(model, x).detach() for s in range(seeds)]
    )  # (seeds, n)
    assert estimates.shape == (seeds, n)
    # different seeds give different estimates: it is really stochastic
    assert (estimates[0] - estimates[1]).abs().min() > 0

    hessians = torch.stack(
        [torch.autograd.functional.hessian(lambda z: model(z[None])[0, 0], p) for p in x.detach()]
    )  # (n, d, d)
    off_diagonal = hessians - torch.diag_embed(torch.diagonal(hessians, dim1=1, dim2=2))
    var_one_probe = 2 * off_diagonal.square().sum(dim=(1, 2))  # (n,)
    assert torch.allclose(torch.diagonal(hessians, dim1=1, dim2=2).sum(dim=1), exact)

    std_error = (var_one_probe / (probes * seeds)).sqrt()
    z = (estimates.mean(dim=0) - exact) / std_error
    assert z.abs().max() < 5, z
    # the test has power: the standard error is small against the Laplacian itself
    assert (std_error / exact.abs()).max() < 0.05
    # the spread of each seed's estimate matches the theory (z^2 has mean 1)
    z_seed = (estimates - exact) / (var_one_probe / probes).sqrt()
    assert 0.5 < z_seed.square().mean().item() < 2.0


def test_hutchinson_seed_reproducible_and_generator_advances():
    model, pde = _solution(Laplace, 4)
    x = _points(pde)
    a = Laplacian("hutchinson", probes=4, seed=7)
    b = Laplacian("hutchinson", probes=4, seed=7)
    first = a(model, x)
    assert torch.equal(first, b(model, x))
    assert not torch.equal(first, a(model, x))  # fresh probes on every call


def test_stochastic_property():
    assert Laplacian("hutchinson").stochastic is True
    for method in EXACT:
        assert Laplacian(method).stochastic is False


# ------------------------------------------------------------------- non-Solution callables


def test_plain_callable_with_forward_falls_back_to_an_exact_method():
    torch.manual_seed(0)
    net = MLP(6, 16, 2, "sin").double()  # an MLP itself has no value_and_laplacian

    def closed(x):
        return torch.sin(x).prod(dim=1, keepdim=True)  # Delta = -d u

    x = torch.rand(20, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x.requires_grad_(True)
    for u in (net, closed):
        ref_value, ref_lap = laplacian_autograd(u, x)
        value, lap = Laplacian("forward").value_and_laplacian(u, x)
        assert _rel(value, ref_value) <= 1e-12
        assert _rel(lap, ref_lap) <= 1e-10
    lap = Laplacian("forward")(closed, x)
    assert _rel(lap, -6 * closed(x).reshape(-1)) <= 1e-12


# --------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("method", ["newton", "Forward", "", None])
def test_bad_method_is_refused(method):
    with pytest.raises(ValueError, match=r"laplacian\.method"):
        Laplacian(method)


@pytest.mark.parametrize("probes", [0, -4])
def test_bad_probes_are_refused(probes):
    with pytest.raises(ValueError, match=r"laplacian\.probes"):
        Laplacian("hutchinson", probes=probes)


def test_non_numeric_probes_name_the_key():
    with pytest.raises(ValueError, match=r"laplacian\.probes"):
        Laplacian("hutchinson", probes="many")


@pytest.mark.parametrize("shared_first_jacobian", [True, False])
def test_forward_laplacian_layer_step_gradients(shared_first_jacobian):
    """The forward Laplacian's hand-written backward (it recomputes instead of storing) is
    checked against finite differences for all its inputs, with the first layer's Jacobian
    shared by all points (1, k, width) or given per point."""
    g = torch.Generator().manual_seed(0)
    opts = dict(dtype=torch.float64, generator=g)
    jac = torch.randn(1 if shared_first_jacobian else 4, 3, 5, **opts).requires_grad_(True)
    d1 = torch.randn(4, 5, **opts).requires_grad_(True)
    weight = torch.randn(6, 5, **opts).requires_grad_(True)
    assert torch.autograd.gradcheck(JacobianStep.apply, (jac, d1, weight))
    # only one of the two outputs used: the other's gradient is None in backward
    assert torch.autograd.gradcheck(lambda *a: JacobianStep.apply(*a)[1], (jac, d1, weight))
    assert torch.autograd.gradcheck(lambda *a: JacobianStep.apply(*a)[0], (jac, d1, weight))
    # frozen inputs (scoring freezes the weights): the others' gradients are still right
    frozen = weight.detach()
    assert torch.autograd.gradcheck(lambda j, d: JacobianStep.apply(j, d, frozen), (jac, d1))
    assert torch.autograd.gradcheck(lambda d: JacobianStep.apply(jac.detach(), d, frozen), (d1,))


@pytest.mark.parametrize("pde_cls", [Elliptic, Laplace], ids=["elliptic", "laplace"])
def test_forward_laplacian_in_a_reduced_basis_when_dim_exceeds_width(pde_cls, monkeypatch):
    """d = 40 > width 8: the forward Laplacian carries the Jacobian in the QR basis of the
    first layer; values, gradient (used by the hard constraint), Laplacian and parameter
    gradients must still equal autograd's."""
    torch.manual_seed(0)
    pde = pde_cls(dim=40, n_test=10)
    model = Solution(MLP(40, 8, 3), pde.constraint).to(torch.float64)
    qr_calls = []
    qr = torch.linalg.qr
    monkeypatch.setattr(torch.linalg, "qr", lambda a: qr_calls.append(a.shape) or qr(a))
    x = pde.domain.sample(16, torch.Generator().manual_seed(1), "cpu", torch.float64)
    x.requires_grad_(True)
    _, grad, _ = model.net.forward_laplacian(x)
    assert grad.shape == (16, 1, 40)
    ref_grad_x = gradient(model.net(x).reshape(-1), x)
    assert _rel(grad[:, 0], ref_grad_x) <= 1e-10
    ref_value, ref_lap = Laplacian("autograd").value_and_laplacian(model, x)
    value, lap = Laplacian("forward").value_and_laplacian(model, x)
    assert _rel(value, ref_value) <= 1e-10
    assert _rel(lap, ref_lap) <= 1e-10
    assert _rel(_param_grad(model, lap), _param_grad(model, ref_lap)) <= 1e-8
    assert qr_calls and qr_calls[0] == (40, 8)  # the reduced basis was really used


def test_reduced_basis_falls_back_when_a_first_layer_unit_ignores_the_inputs():
    """A first-layer row of zeros makes R singular; QR's backward would then give infinite
    gradients, so the full Jacobian is carried instead and the gradients stay finite."""
    torch.manual_seed(0)
    pde = Elliptic(dim=40, n_test=10)
    model = Solution(MLP(40, 8, 3), pde.constraint).to(torch.float64)
    with torch.no_grad():
        model.net.layers[0].weight[3] = 0.0
    x = pde.domain.sample(16, torch.Generator().manual_seed(1), "cpu", torch.float64)
    x.requires_grad_(True)
    ref_lap = Laplacian("autograd").value_and_laplacian(model, x)[1]
    lap = Laplacian("forward").value_and_laplacian(model, x)[1]
    assert _rel(lap, ref_lap) <= 1e-10
    grads = _param_grad(model, lap)
    assert torch.isfinite(grads).all()
    assert _rel(grads, _param_grad(model, ref_lap)) <= 1e-8
