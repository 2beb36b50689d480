"""Graph-free residual scoring: the samplers' scorer gives the training path's |residual| for
every Laplacian method and PDE kind, and keeps no graph of second derivatives while it does."""

from __future__ import annotations

import pytest
import torch

from pinn_exp.model import MLP, Solution
from pinn_exp.ops import METHODS, Laplacian, gradient, graph_free, is_graph_free
from pinn_exp.pdes import PDE, Burgers, Elliptic, Laplace, ReactionDiffusion
from pinn_exp.training.trainer import Scorer, frozen

F64 = torch.float64
N = 24


def _setup(pde: PDE, seed: int = 0) -> tuple[Solution, torch.Tensor]:
    torch.manual_seed(seed)
    model = Solution(MLP(pde.dim, 16, 3), pde.constraint).double()
    x = pde.domain.sample(N, torch.Generator().manual_seed(seed + 1), dtype=F64)
    return model, x.requires_grad_(True)


def _saved_tensors(fn) -> int:
    """How many tensors autograd saves for backward while ``fn`` runs."""
    count = [0]

    def pack(t):
        count[0] += 1
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return count[0]


PDES = {
    "laplace": lambda: Laplace(dim=3),
    "elliptic": lambda: Elliptic(dim=4, n_test=1),
    "burgers": Burgers,
    "reaction_diffusion": ReactionDiffusion,
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(PDES))
def test_graph_free_scores_equal_the_training_residual(name, method):
    pde = PDES[name]()
    model, x = _setup(pde)
    want = pde.residual(model, x, Laplacian(method, probes=4, seed=3)).abs()
    assert want.grad_fn is not None  # the training path keeps its graph
    got = Scorer(pde, model, Laplacian(method, probes=4, seed=3))(x)  # the same probes
    assert got.grad_fn is None and got.shape == (N,)
    assert ((got - want.detach()).abs().max() / want.abs().max()).item() <= 1e-6
    assert all(p.requires_grad for p in model.parameters())  # unfrozen after scoring
    if method != "hutchinson":  # chunks draw other probes; the exact methods do not care
        chunked = Scorer(pde, model, Laplacian(method))(x, chunk_size=5)
        assert ((chunked - want.detach()).abs().max() / want.abs().max()).item() <= 1e-6


@pytest.mark.parametrize("method", METHODS)
def test_graph_free_derivatives_carry_no_graph(method):
    """Inside graph_free the Laplacian methods and the space-time derivatives return values
    only; outside they keep the graph that training differentiates."""
    lap = Laplacian(method, probes=4)
    elliptic = Elliptic(dim=4, n_test=1)
    model, x = _setup(elliptic)
    burgers = Burgers()
    st_model, st_x = _setup(burgers)
    with frozen(model), frozen(st_model), graph_free():
        value, laplacian = lap.value_and_laplacian(model, x)
        space_time = lap.space_time(st_model, st_x)
    for t in (value, laplacian, *space_time):
        assert t.grad_fn is None and not t.requires_grad
    value, laplacian = lap.value_and_laplacian(model, x)
    assert value.grad_fn is not None and laplacian.grad_fn is not None
    assert all(t.grad_fn is not None for t in lap.space_time(st_model, st_x))


@pytest.mark.parametrize("method", ["autograd", "forward", "hutchinson"])
@pytest.mark.parametrize("name", ["laplace", "burgers"])
def test_scoring_saves_no_more_than_a_first_derivative(name, method):
    """Structural check of the memory: while the scorer runs, autograd saves at most the
    tensors of one first derivative of u (none at all on the forward path), whereas the
    residual with graphs (the scorer before graph-free scoring) saves more.
    (``torch.func`` does not allow saved-tensor hooks, so ``func`` is checked by its result
    having no graph, above.)"""
    pde = PDES[name]()
    model, x = _setup(pde)
    lap = Laplacian(method, probes=4)

    def first_derivative():
        with frozen(model):
            gradient(model(x).reshape(-1), x)

    def with_graphs():
        with frozen(model):
            pde.residual(model, x, lap)

    first = _saved_tensors(first_derivative)
    scored = _saved_tensors(lambda: Scorer(pde, model, lap)(x))
    assert scored <= first
    if method == "forward":
        assert scored == 0  # under no_grad: nothing recorded
    assert _saved_tensors(with_graphs) > first  # the check has power


def _autograd_counts(d: int) -> tuple[int, int]:
    """Saved tensors of the autograd Laplacian's scoring at dimension d: (graph-free, with
    graphs)."""
    pde = Elliptic(dim=d, n_test=1)
    model, x = _setup(pde)
    lap = Laplacian("autograd")

    def with_graphs():
        with frozen(model):
            pde.residual(model, x, lap)

    return _saved_tensors(lambda: Scorer(pde, model, lap)(x)), _saved_tensors(with_graphs)


def test_autograd_scoring_does_not_grow_with_the_dimension():
    """The autograd Laplacian takes d second derivatives: with graphs the saved tensors grow
    with d, graph-free they stay those of the first derivative."""
    (free_4, graphs_4), (free_12, graphs_12) = _autograd_counts(4), _autograd_counts(12)
    assert free_4 == free_12
    assert graphs_12 > graphs_4 > free_4


def test_graph_free_is_scoped_and_final_derivatives_only():
    assert not is_graph_free()
    with graph_free():
        assert is_graph_free()
        with graph_free():
            assert is_graph_free()
        assert is_graph_free()
    assert not is_graph_free()
    with pytest.raises(RuntimeError), graph_free():
        raise RuntimeError
    assert not is_graph_free()
    # a derivative that is differentiated again keeps its graph inside graph_free; the last
    # of the chain does not
    x = torch.rand(5, 2, dtype=F64, requires_grad=True)
    with graph_free():
        g = gradient(x.pow(3).sum(dim=1), x)
        assert g.grad_fn is not None
        h = gradient(g[:, 0], x, final=True)
        assert h.grad_fn is None
    torch.testing.assert_close(h[:, 0], 6 * x[:, 0].detach())
    assert gradient(g[:, 0], x, final=True).grad_fn is not None  # outside: trainable
