"""The five PDEs of the regularity suite (convection, helmholtz, poisson_lshape, heat, wave):
configs instantiate, references are the exact solutions on their grids, exact solutions make
the residuals vanish for every exact Laplacian method, hard constraints hold and their
closed-form jets match autograd, the L-shaped domain samples and bounds correctly, and every
PDE runs end to end with RSmote and RAD."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from scipy.stats import qmc
from support import TINY, compose_config

from pinn_exp import runner
from pinn_exp.domains import LShape
from pinn_exp.factory import ConfigError, build
from pinn_exp.model import MLP, Solution
from pinn_exp.ops import HardConstraint, Laplacian, gradient, graph_free
from pinn_exp.pdes import PDE, Convection, Heat, Helmholtz, PoissonLShape, Wave
from pinn_exp.samplers import RSmote

F64 = torch.float64
PI = math.pi

# (config option, overrides, class, dim, test-set size, hard constraint, soft term names)
CASES = [
    ("convection", [], Convection, 2, 25_600, True, ["periodic"]),
    ("helmholtz", [], Helmholtz, 2, 10_201, True, []),
    ("poisson_lshape", [], PoissonLShape, 2, 7_701, False, ["boundary"]),
    ("heat", [], Heat, 3, 10_000, True, ["boundary"]),
    ("heat", ["pde.dim=2"], Heat, 2, 20_301, True, ["boundary"]),
    ("heat", ["pde.dim=101"], Heat, 101, 10_000, True, ["boundary"]),
    ("wave", [], Wave, 2, 20_301, True, []),
]
IDS = [f"{c[0]}-{c[3]}" for c in CASES]


def _instantiate(name: str, overrides: list[str]) -> PDE:
    return instantiate(compose_config([f"pde={name}", *overrides]).pde)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _interior(pde: PDE, n: int, seed: int = 0) -> torch.Tensor:
    x = pde.domain.sample(n, _gen(seed), dtype=F64)
    if isinstance(pde, PoissonLShape):  # the exact solution's gradient is infinite at 0
        x = x[x.norm(dim=1) > 0.05]
    return x.requires_grad_(True)


# ------------------------------------------------------------------ config and reference


@pytest.mark.parametrize(("name", "overrides", "cls", "dim", "m", "hard", "soft"), CASES, ids=IDS)
def test_instantiate_and_reference(name, overrides, cls, dim, m, hard, soft):
    pde = _instantiate(name, overrides)
    assert type(pde) is cls and pde.name == name and pde.dim == dim
    assert len(pde.coordinate_names) == dim
    assert isinstance(pde.constraint, HardConstraint) if hard else pde.constraint is None
    terms = pde.boundary_terms(_gen(), torch.device("cpu"), F64)
    assert [t.name for t in terms] == soft
    x, u = pde.reference()
    assert x.shape == (m, dim) and u.shape == (m,)
    assert np.isfinite(x).all() and np.isfinite(u).all()
    assert np.abs(u).max() > 0.5
    assert pde.domain.contains(torch.as_tensor(x), tol=0.0).all()
    np.testing.assert_allclose(u, pde.exact(torch.as_tensor(x)).numpy().ravel(), rtol=0, atol=0)
    assert np.array_equal(x, pde.reference()[0])  # a fixed test set


def _grid(x: np.ndarray, n0: int, n1: int, lo0, hi0, lo1, hi1) -> None:
    np.testing.assert_allclose(np.unique(x[:, 0]), np.linspace(lo0, hi0, n0), atol=1e-15)
    np.testing.assert_allclose(np.unique(x[:, 1]), np.linspace(lo1, hi1, n1), atol=1e-15)


def test_references_are_the_formulas_on_their_grids():
    x, u = Convection().reference()
    _grid(x, 256, 100, 0, 2 * PI, 0, 1)
    np.testing.assert_allclose(u, np.sin(x[:, 0] - 30 * x[:, 1]), atol=1e-14)
    x, u = Convection(beta=5.0).reference()
    np.testing.assert_allclose(u, np.sin(x[:, 0] - 5 * x[:, 1]), atol=1e-14)

    x, u = Helmholtz().reference()
    _grid(x, 101, 101, -1, 1, -1, 1)
    np.testing.assert_allclose(u, np.sin(PI * x[:, 0]) * np.sin(4 * PI * x[:, 1]), atol=1e-14)

    x, u = Wave().reference()
    _grid(x, 201, 101, 0, 1, 0, 1)
    p, t = x[:, 0], x[:, 1]
    formula = np.sin(PI * p) * np.cos(2 * PI * t) + 0.5 * np.sin(4 * PI * p) * np.cos(8 * PI * t)
    np.testing.assert_allclose(u, formula, atol=1e-14)

    x, u = Heat(dim=2).reference()
    _grid(x, 201, 101, 0, 1, 0, 1)
    np.testing.assert_allclose(u, np.sin(PI * x[:, 0] / 2) * np.exp(-(PI**2) * x[:, 1] / 4))
    x, u = Heat(dim=11).reference()
    formula = np.sin(PI * x[:, :10] / 2).mean(axis=1) * np.exp(-(PI**2) * x[:, 10] / 4)
    np.testing.assert_allclose(u, formula, atol=1e-14)


def test_lshape_reference_is_the_corner_singularity():
    x, u = PoissonLShape().reference()
    _grid(x, 101, 101, -1, 1, -1, 1)
    assert not ((x[:, 0] > 0) & (x[:, 1] < 0)).any()
    r, theta = np.hypot(x[:, 0], x[:, 1]), np.arctan2(x[:, 1], x[:, 0]) % (2 * PI)
    np.testing.assert_allclose(u, r ** (2 / 3) * np.sin(2 * theta / 3), atol=1e-14)
    points = torch.tensor([[0.5, 0], [0, -0.5], [0, 1], [-1, 0], [-1, -1]], dtype=F64)
    expected = [0, 0, math.sin(PI / 3), math.sin(2 * PI / 3), 2 ** (1 / 3) * math.sin(5 * PI / 6)]
    np.testing.assert_allclose(PoissonLShape().exact(points).ravel(), expected, atol=1e-15)


# ------------------------------------------------------------------ exact residuals

RESIDUAL_CASES = [
    ("convection", []),
    ("helmholtz", []),
    ("helmholtz", ["pde.a1=2", "pde.a2=3", "pde.k=4"]),
    ("poisson_lshape", []),
    ("heat", ["pde.dim=3"]),  # d = 2 space dimensions
    ("heat", ["pde.dim=11"]),
    ("heat", ["pde.dim=101"]),
    ("wave", []),
    ("wave", ["pde.c=1.5"]),
]


@pytest.mark.parametrize("method", ["autograd", "forward", "func"])
@pytest.mark.parametrize(("name", "overrides"), RESIDUAL_CASES)
def test_exact_solution_makes_the_residual_vanish(name, overrides, method):
    pde = _instantiate(name, overrides)
    x = _interior(pde, 300)
    residual = pde.residual(pde.exact, x, Laplacian(method))
    assert residual.shape == (len(x),) and residual.dtype == F64
    assert residual.abs().max() < 1e-11


def test_a_wrong_solution_leaves_a_residual():
    for pde in (Convection(), Helmholtz(), PoissonLShape(), Heat(dim=4), Wave()):
        x = _interior(pde, 200)

        def wrong(z, pde=pde):
            return pde.exact(z) + 0.1 * z[:, :1] ** 3

        assert pde.residual(wrong, x, Laplacian("autograd")).abs().max() > 1e-2, pde.name


@pytest.mark.parametrize(("name", "overrides"), RESIDUAL_CASES)
def test_forward_and_autograd_residuals_of_a_network_agree(name, overrides):
    """The hard constraint's closed-form jets in the forward path give autograd's residual;
    graph-free scoring gives the same values, with no graph through the network."""
    pde = _instantiate(name, overrides)
    torch.manual_seed(0)
    model = Solution(MLP(pde.dim, width=16, depth=2), pde.constraint).double()
    x = _interior(pde, 100)
    reference = pde.residual(model, x, Laplacian("autograd"))
    forward = pde.residual(model, x, Laplacian("forward"))
    torch.testing.assert_close(forward, reference, rtol=1e-10, atol=1e-10)
    with graph_free():
        scored = pde.residual(model, x, Laplacian("forward"))
    if scored.requires_grad:  # through x only (a source term), never through the network
        params = list(model.parameters())
        assert all(g is None for g in torch.autograd.grad(scored.sum(), params, allow_unused=True))
    torch.testing.assert_close(scored, reference.detach(), rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ hard constraints

CONSTRAINED = [Convection(), Helmholtz(), Heat(dim=2), Heat(dim=6), Wave()]


@pytest.mark.parametrize("pde", CONSTRAINED, ids=lambda p: f"{p.name}-{p.dim}")
def test_closed_form_jets_match_autograd(pde):
    x = pde.domain.sample(50, _gen(3), dtype=F64)
    choices = [None, [0], [pde.dim - 1], list(range(pde.dim - 1))]
    for part in (0, 1):  # A, then B, differentiated by torch.func

        def scalar(z, part=part):
            return pde.constraint(z.unsqueeze(0))[part][0, 0]

        grad = torch.func.vmap(torch.func.grad(scalar))(x)
        hessian = torch.func.vmap(torch.func.hessian(scalar))(x)
        for dims in choices:
            index = list(range(pde.dim)) if dims is None else dims
            value, got_grad, lap = pde.constraint.jets(x, dims)[part]
            torch.testing.assert_close(value, pde.constraint(x)[part][:, 0], rtol=0, atol=0)
            torch.testing.assert_close(got_grad, grad, rtol=1e-12, atol=1e-12)
            want = hessian[:, index, index].sum(dim=1)
            torch.testing.assert_close(lap, want, rtol=1e-12, atol=1e-12)


def _random_net(pde: PDE) -> Solution:
    torch.manual_seed(1)
    return Solution(MLP(pde.dim, width=8, depth=2), pde.constraint).double()


def test_convection_initial_condition_is_hard():
    pde = Convection()
    model = _random_net(pde)
    x = torch.linspace(0, 2 * PI, 50, dtype=F64)
    at0 = torch.stack([x, torch.zeros_like(x)], dim=1)
    torch.testing.assert_close(model(at0).ravel(), torch.sin(x), rtol=0, atol=1e-15)


def test_helmholtz_boundary_is_hard():
    pde = Helmholtz()
    model = _random_net(pde)
    x = pde.domain.sample_boundary(200, _gen(), dtype=F64)
    assert model(x).abs().max() < 1e-14
    assert pde.exact(x).abs().max() < 1e-14


def test_heat_initial_condition_is_hard():
    pde = Heat(dim=6)
    model = _random_net(pde)
    x = pde.domain.sample_initial(100, _gen(), dtype=F64)
    torch.testing.assert_close(model(x), pde.exact(x), rtol=0, atol=1e-15)


def test_wave_boundary_initial_value_and_velocity_are_hard():
    pde = Wave()
    model = _random_net(pde)
    t = torch.rand(100, dtype=F64, generator=_gen())
    for side in (0.0, 1.0):
        x = torch.stack([torch.full_like(t, side), t], dim=1)
        assert model(x).abs().max() < 1e-14
    x0 = pde.domain.sample_initial(100, _gen(), dtype=F64).requires_grad_(True)
    torch.testing.assert_close(model(x0), pde.exact(x0), rtol=0, atol=1e-14)
    u_t = gradient(model(x0).ravel(), x0)[:, 1]
    assert u_t.abs().max() < 1e-14
    exact_t = gradient(pde.exact(x0).ravel(), x0)[:, 1]
    assert exact_t.abs().max() < 1e-12


# ------------------------------------------------------------------ soft terms


def test_convection_periodic_term_ties_the_two_sides():
    pde = Convection()
    (term,) = pde.boundary_terms(_gen(), torch.device("cpu"), torch.float32)
    assert term.x.dtype == term.partner.dtype == torch.float32
    assert (term.x[:, 0] == 0).all() and torch.allclose(term.partner[:, 0], torch.tensor(2 * PI))
    assert torch.equal(term.x[:, 1], term.partner[:, 1])
    assert ((term.x[:, 1] >= 0) & (term.x[:, 1] <= 1)).all() and len(term.x) == 256
    (term,) = pde.boundary_terms(_gen(), torch.device("cpu"), F64)
    assert term.misfit(pde.exact).abs().max() < 1e-12  # the exact solution is periodic
    assert term.misfit(lambda z: z[:, :1]).abs().min() > 6  # u = x is not
    again = pde.boundary_terms(_gen(), torch.device("cpu"), F64)[0]
    assert torch.equal(term.x, again.x)


@pytest.mark.parametrize("pde", [PoissonLShape(), Heat(dim=4)], ids=lambda p: p.name)
def test_boundary_terms_are_the_exact_solution_on_the_boundary(pde):
    (term,) = pde.boundary_terms(_gen(), torch.device("cpu"), F64)
    torch.testing.assert_close(term.target, pde.exact(term.x), rtol=0, atol=0)
    assert term.misfit(pde.exact).abs().max() == 0
    if isinstance(pde, Heat):
        space = term.x[:, :-1]
        on_face = ((space == 0) | (space == 1)).any(dim=1)
        assert on_face.all() and len(term.x) == 1000


# ------------------------------------------------------------------ the L-shaped domain


def test_lshape_samples_exactly_n_uniform_points_inside():
    domain = LShape()
    x = domain.sample(30_000, _gen(), dtype=F64)
    assert x.shape == (30_000, 2)
    assert domain.contains(x, tol=0.0).all()
    assert not ((x[:, 0] > 0) & (x[:, 1] < 0)).any()
    # uniform: a third of the points in each square, uniform along each axis within them
    quadrant = (x[:, 0] >= 0).long() + 2 * (x[:, 1] >= 0).long()
    share = torch.bincount(quadrant, minlength=4).double() / len(x)
    torch.testing.assert_close(
        share, torch.tensor([1 / 3, 0, 1 / 3, 1 / 3], dtype=F64), atol=0.01, rtol=0
    )
    assert abs(float(x[:, 0].mean()) + 1 / 6) < 0.01  # centroid (-1/6, 1/6)
    assert abs(float(x[:, 1].mean()) - 1 / 6) < 0.01
    assert torch.equal(x, domain.sample(30_000, _gen(), dtype=F64))
    assert domain.sample(7, _gen(), dtype=torch.float32).dtype == torch.float32


def test_lshape_maps_quasi_random_points_into_the_domain():
    domain = LShape()
    u = qmc.Sobol(domain.unit_dim, seed=0).random(1024)
    x = domain.from_unit(u)
    assert x.shape == (1024, 2)
    assert domain.contains(torch.as_tensor(x), tol=0.0).all()
    counts = np.bincount((x[:, 0] >= 0) + 2 * (x[:, 1] >= 0), minlength=4)
    assert abs(counts[0] - 1024 / 3) <= 2 and counts[1] == 0


def test_lshape_contains():
    domain = LShape()
    inside = torch.tensor(
        [
            [0, 0],
            [0.5, 0],
            [0, -0.5],
            [-1, -1],
            [1, 1],
            [-0.5, 0.5],
            [0.5, 0.5],
            [-0.5, -0.5],
            [1, 0],
            [0, -1],
        ],
        dtype=F64,
    )
    outside = torch.tensor(
        [[0.5, -0.5], [1e-3, -1e-3], [1.01, 0.5], [-0.5, -1.01], [0.9, -0.9]], dtype=F64
    )
    assert domain.contains(inside).all()
    assert not domain.contains(outside).any()
    assert domain.contains(torch.tensor([[1e-12, -1e-12]], dtype=F64)).all()  # within tol


def test_lshape_boundary_is_on_the_six_edges_in_proportion_to_length():
    domain = LShape()
    x = domain.sample_boundary(800, _gen(), dtype=F64)
    assert x.shape == (800, 2) and domain.contains(x, tol=1e-12).all()
    p, q = x[:, 0], x[:, 1]
    edges = [
        (q == 0) & (p >= 0) & (p <= 1),  # corner to (1, 0)
        p == 1,
        q == 1,
        p == -1,
        q == -1,
        (p == 0) & (q <= 0),  # (0, -1) to the corner
    ]
    on_edge = torch.stack(edges, dim=1)
    assert on_edge.any(dim=1).all()
    first = on_edge.double().argmax(dim=1)
    counts = torch.bincount(first, minlength=6).tolist()
    for count, length in zip(counts, [1, 1, 2, 2, 1, 1]):
        assert abs(count - 100 * length) <= 1
    assert torch.equal(x, domain.sample_boundary(800, _gen(), dtype=F64))


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["pde=convection", "pde.dim=3"], "pde.dim"),
        (["pde=helmholtz", "pde.dim=3"], "pde.dim"),
        (["pde=poisson_lshape", "pde.dim=3"], "pde.dim"),
        (["pde=wave", "pde.dim=3"], "pde.dim"),
        (["pde=heat", "pde.dim=1"], "pde.dim"),
        (["pde=heat", "pde.dim=11", "pde.n_boundary=10"], "pde.n_boundary"),
        (["pde=helmholtz", "pde.a2=4.5"], "pde.a2"),
        (["pde=wave", "pde.c=0"], "pde.c"),
        (["pde=convection", "pde.n_boundary=0"], "pde.n_boundary"),
        (["pde=poisson_lshape", "pde.boundary_weight=-1"], "pde.boundary_weight"),
    ],
)
def test_bad_values_are_refused(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build(compose_config([*overrides, "n_points=200"]))


# ------------------------------------------------------------------ end to end

SMOKE = [
    "optimizer.pretrain_steps=20",
    "optimizer.lbfgs_steps=5",
    "optimizer.adam_steps=0",
    "rounds=1",
    "n_points=100",
    "model.width=16",
    "model.depth=2",
]


@pytest.mark.parametrize("sampler", ["rsmote", "rad"])
@pytest.mark.parametrize("name", ["convection", "helmholtz", "poisson_lshape", "heat", "wave"])
def test_every_new_pde_runs_end_to_end(name, sampler, tmp_path):
    extra = ["sampler.n_dense=2000"] if sampler == "rad" else []
    cfg = compose_config([*TINY, *SMOKE, f"pde={name}", f"sampler={sampler}", *extra])
    built = build(cfg)
    record = runner.run(built, tmp_path, progress=False)
    assert record["status"] == "ok", record["error"]
    assert record["pde"] == name and 0 < record["l2_rel_error"] < 10
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "ok"
    if name == "convection":  # the periodic term is part of the loss
        assert "loss_periodic" in (tmp_path / "history.csv").read_text().splitlines()[0]
    points = np.load(tmp_path / "collocation.npz")
    for key in points.files:  # synthetic points outside the L are redrawn
        assert points[key].shape == (100, built.pde.dim)
        assert built.pde.domain.contains(torch.as_tensor(points[key]), tol=1e-6).all()


def test_rsmote_redraws_synthetic_points_that_leave_the_lshape():
    domain = LShape()
    sampler = RSmote(ratio=0.3, k_neighbors=5)
    sampler.bind(domain, 400, 1, _gen(5), dtype=F64)
    # the positive class on both sides of the cut: half of SMOTE's segments cross it
    s = torch.linspace(0.2, 0.8, 5, dtype=F64)
    positive = torch.cat(
        [
            torch.stack([s, torch.full_like(s, 0.01)], dim=1),
            torch.stack([torch.full_like(s, -0.01), -s], dim=1),
        ]
    )
    negative = domain.sample(200, _gen(6), dtype=F64)
    synthetic, stats = sampler.synthesise(positive, negative, 100)
    assert synthetic.shape == (100, 2)
    assert domain.contains(synthetic, tol=0.0).all()
    assert stats["n_redrawn"] > 0
