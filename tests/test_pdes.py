"""The PDE suite: configs instantiate, references have the right shape, points lie in
the domains, exact solutions make the residuals vanish, hard constraints hold exactly, and the
reference solutions of Burgers and Allen-Cahn satisfy the residual as implemented.

(Agreement of the references with the published data is tested in test_references.py.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from support import compose_config

from pinn_exp.domains import Ball, Box, SpaceTime
from pinn_exp.model import MLP, Solution
from pinn_exp.ops import (
    HardConstraint,
    Laplacian,
    gradient,
    laplacian_autograd,
    space_time_derivatives,
)
from pinn_exp.pdes import PDE, AllenCahn, Burgers, Elliptic, Laplace, ReactionDiffusion
from pinn_exp.pdes.references import burgers_cole_hopf

F64 = torch.float64
NU = 0.01 / np.pi  # Burgers' viscosity

# (config option, overrides, class, dim, test-set size)
CASES = [
    ("burgers", [], Burgers, 2, 25_600),
    ("allen_cahn", [], AllenCahn, 2, 20_301),
    ("laplace", ["pde.dim=2"], Laplace, 2, 10_201),
    ("laplace", ["pde.dim=5"], Laplace, 5, 10_000),
    ("elliptic", ["pde.dim=2"], Elliptic, 2, 10_000),
    ("elliptic", ["pde.dim=10"], Elliptic, 10, 10_000),
    ("elliptic", ["pde.dim=100"], Elliptic, 100, 10_000),
    ("reaction_diffusion", [], ReactionDiffusion, 2, 20_301),
]
IDS = [f"{name}-{dim}" for name, _, _, dim, _ in CASES]


def _instantiate(name: str, overrides: list[str]) -> PDE:
    return instantiate(compose_config([f"pde={name}", *overrides]).pde)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _interior(pde: PDE, n: int, seed: int = 0) -> torch.Tensor:
    return pde.domain.sample(n, _gen(seed), dtype=F64).requires_grad_(True)


# ------------------------------------------------------------------ config and reference


@pytest.mark.parametrize(("name", "overrides", "cls", "dim", "m"), CASES, ids=IDS)
def test_instantiate_and_reference(name, overrides, cls, dim, m):
    pde = _instantiate(name, overrides)
    assert type(pde) is cls
    assert pde.name == name
    assert pde.dim == dim
    # a hard constraint where the problem has one, soft terms otherwise
    hard = cls in (Burgers, AllenCahn, Elliptic)
    assert isinstance(pde.constraint, HardConstraint) if hard else pde.constraint is None
    assert bool(pde.boundary_terms(_gen(), torch.device("cpu"), F64)) is not hard

    x, u = pde.reference()
    assert x.shape == (m, dim)
    assert u.shape == (m,)
    assert np.isfinite(x).all() and np.isfinite(u).all()
    assert np.abs(u).max() > 1e-2  # not a trivial zero solution
    assert pde.domain.contains(torch.as_tensor(x)).all()
    exact = pde.exact(torch.as_tensor(x))
    if exact is not None:
        np.testing.assert_allclose(u, exact.numpy().ravel(), rtol=1e-13, atol=1e-13)


def _grid_axes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.unique(x[:, 0]), np.unique(x[:, 1])


def test_burgers_reference_grid():
    x, _ = Burgers().reference()
    xs, ts = _grid_axes(x)
    np.testing.assert_allclose(xs, np.linspace(-1, 1, 256), atol=1e-15)
    np.testing.assert_allclose(ts, np.linspace(0, 0.99, 100), atol=1e-15)


def test_allen_cahn_reference_grid():
    x, u = AllenCahn().reference()
    xs, ts = _grid_axes(x)
    np.testing.assert_allclose(xs, np.linspace(-1, 1, 201), atol=1e-15)
    np.testing.assert_allclose(ts, np.linspace(0, 1, 101), atol=1e-15)
    # the initial slice is the initial condition, the boundaries are -1
    at0 = x[:, 1] == 0
    np.testing.assert_allclose(u[at0], x[at0, 0] ** 2 * np.cos(np.pi * x[at0, 0]), atol=1e-12)
    np.testing.assert_allclose(u[np.abs(x[:, 0]) == 1], -1.0, atol=1e-10)


def test_elliptic_reference_in_ball_and_spread():
    pde = Elliptic(dim=10)
    x, _ = pde.reference()
    r = np.linalg.norm(x, axis=1)
    assert r.max() <= 1
    # uniform in volume: r^d is uniform on [0, 1]
    assert abs((r**10).mean() - 0.5) < 0.02
    assert np.array_equal(x, Elliptic(dim=10).reference()[0])  # a fixed test set


@pytest.mark.parametrize(("name", "overrides", "cls", "dim", "m"), CASES, ids=IDS)
def test_domain_samples_lie_in_the_domain(name, overrides, cls, dim, m):
    pde = _instantiate(name, overrides)
    x = pde.domain.sample(4000, _gen(1), dtype=F64)
    assert x.shape == (4000, dim)
    assert pde.domain.contains(x, tol=0.0).all()
    if isinstance(pde.domain, Box):
        lower = torch.as_tensor(pde.domain.lower)
        upper = torch.as_tensor(pde.domain.upper)
        width = upper - lower
        # they fill the box: every coordinate reaches both ends, the mean is the centre
        assert ((x.min(dim=0).values - lower) / width).max() < 0.01
        assert ((upper - x.max(dim=0).values) / width).max() < 0.01
        assert ((x.mean(dim=0) - (lower + upper) / 2) / width).abs().max() < 0.03
    else:
        assert isinstance(pde.domain, Ball)
        r = x.norm(dim=1)
        assert abs((r**dim).mean().item() - 0.5) < 0.02  # uniform in volume
        assert x.mean(dim=0).abs().max() < 0.1
    # float32 by default, reproducible with the same seed
    x32 = pde.domain.sample(10, _gen(1))
    assert x32.dtype == torch.float32
    assert torch.equal(x32, pde.domain.sample(10, _gen(1)))


@pytest.mark.parametrize("name", ["burgers", "allen_cahn", "reaction_diffusion"])
def test_fixed_dimension_refuses_dim(name):
    with pytest.raises(InstantiationException) as info:
        _instantiate(name, ["pde.dim=3"])
    cause = info.value.__cause__
    assert isinstance(cause, ValueError)
    assert "pde.dim=3" in str(cause)
    cls = {"burgers": Burgers, "allen_cahn": AllenCahn, "reaction_diffusion": ReactionDiffusion}
    with pytest.raises(ValueError, match=r"pde\.dim=3"):
        cls[name](dim=3)
    assert cls[name](dim=2).dim == 2  # the right dimension is accepted


@pytest.mark.parametrize("cls", [Laplace, Elliptic])
@pytest.mark.parametrize("dim", [1, 0, 2.5])
def test_free_dimension_refuses_bad_dim(cls, dim):
    with pytest.raises(ValueError, match=r"pde\.dim"):
        cls(dim=dim)


# ---------------------------------------------------------- exact solutions: zero residual


def _second_derivative_terms(u, x: torch.Tensor) -> torch.Tensor:
    """sum_i |d^2u/dx_i^2| at each point, the size of the terms of a Laplacian."""
    g = gradient(u(x).reshape(-1), x)
    return sum(gradient(g[:, i], x)[:, i].abs() for i in range(x.shape[1]))


@pytest.mark.parametrize("method", ["autograd", "forward", "func"])
@pytest.mark.parametrize("dim", [2, 5])
def test_laplace_exact_solution(dim, method):
    pde = Laplace(dim=dim)
    x = _interior(pde, 256)
    res = pde.residual(pde.exact, x, Laplacian(method))
    assert res.shape == (256,)
    scale = _second_derivative_terms(pde.exact, x).max()
    assert scale > 0.1
    assert (res.abs().max() / scale).item() <= 1e-6  # measured ~1e-16


ELLIPTIC_CASES = [
    (dim, method)
    for dim in (2, 10, 100)
    for method in ("autograd", "forward", "func")
    if (dim, method) != (100, "autograd")  # 100 backward passes: 4 s, adds nothing
]


@pytest.mark.parametrize(("dim", "method"), ELLIPTIC_CASES)
def test_elliptic_exact_solution(dim, method):
    pde = Elliptic(dim=dim)
    x = _interior(pde, 64)
    res = pde.residual(pde.exact, x, Laplacian(method))
    assert res.shape == (64,)
    f = pde.source(x)
    assert f.abs().max() > 0.1
    assert (res.abs().max() / f.abs().max()).item() <= 1e-6  # measured ~1e-15


def test_reaction_diffusion_exact_solution():
    pde = ReactionDiffusion()
    x = _interior(pde, 2000)
    res = pde.residual(pde.exact, x, Laplacian("autograd"))
    assert res.shape == (2000,)
    u = pde.exact(x).reshape(-1)
    g = gradient(u, x)
    u_xx = gradient(g[:, 0], x)[:, 0]
    scale = (g[:, 1].abs() + 0.01 * u_xx.abs() + 6 * (u * (1 - u)).abs()).max()
    assert scale > 1
    assert (res.abs().max() / scale).item() <= 1e-6  # measured ~1e-16
    # the exact solution is the published travelling wave
    xx, tt = x[:, 0], x[:, 1]
    wave = (1 + torch.exp(np.sqrt(6 / 0.06) * xx - 5 * tt)) ** -2
    assert torch.allclose(u, wave, rtol=1e-14, atol=1e-15)


# ------------------------------------------------------------------------------- elliptic


@pytest.mark.parametrize("dim", [2, 3, 8])
def test_elliptic_source_is_minus_laplacian_of_exact(dim):
    pde = Elliptic(dim=dim)
    x = _interior(pde, 256, seed=dim)
    _, lap = laplacian_autograd(pde.exact, x)
    f = pde.source(x)
    assert f.shape == (256,)
    assert (((f + lap).abs().max()) / f.abs().max()).item() <= 1e-10  # measured ~1e-15


def test_elliptic_exact_solution_formula():
    pde = Elliptic(dim=4, coefficient_seed=3)
    x = _interior(pde, 50).detach()
    c = pde.coefficients
    xn = x.numpy()
    g = sum(
        c[i] * np.sin(xn[:, i] + np.cos(xn[:, i + 1]) + xn[:, i + 1] * np.cos(xn[:, i]))
        for i in range(3)
    )
    expected = (1 - (xn**2).sum(axis=1)) * g
    np.testing.assert_allclose(pde.exact(x).numpy().ravel(), expected, rtol=1e-13, atol=1e-14)
    # zero on the sphere (the boundary condition)
    sphere = pde.domain.sample_boundary(100, _gen(0), dtype=F64)
    assert pde.exact(sphere).abs().max() < 1e-14


@pytest.mark.parametrize("dims", [None, [0, 2]])
def test_elliptic_constraint_jets_match_autograd(dims):
    pde = Elliptic(dim=5)
    x = _interior(pde, 64)
    index = list(range(5)) if dims is None else dims
    (a, grad_a, lap_a), (b, grad_b, lap_b) = pde.constraint.jets(x, dims)
    a_ref, b_ref = pde.constraint(x)
    a_ref, b_ref = a_ref[:, 0], b_ref[:, 0]
    torch.testing.assert_close(a, a_ref, rtol=0, atol=1e-15)
    torch.testing.assert_close(b, b_ref, rtol=1e-15, atol=1e-15)
    assert torch.count_nonzero(a) == 0 and torch.count_nonzero(grad_a) == 0
    assert torch.count_nonzero(lap_a) == 0
    g = gradient(b_ref, x)
    lap = sum(gradient(g[:, i], x)[:, i] for i in index)
    assert grad_a.shape == grad_b.shape == (64, 5)  # over every input; the Laplacian over dims
    torch.testing.assert_close(grad_b, g, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(lap_b, lap, rtol=1e-14, atol=1e-14)
    # and the generic autograd jets of the base class agree
    (_, ga, la), (_, gb, lb) = HardConstraint.jets(pde.constraint, x, dims)
    assert torch.count_nonzero(ga) == 0 and torch.count_nonzero(la) == 0
    torch.testing.assert_close(gb, grad_b, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(lb, lap_b, rtol=1e-14, atol=1e-14)


def test_elliptic_coefficients_fixed_and_seeded():
    c1, c2 = Elliptic(dim=20).coefficients, Elliptic(dim=20).coefficients
    assert c1.shape == (19,)
    assert np.array_equal(c1, c2)
    c3 = Elliptic(dim=20, coefficient_seed=1).coefficients
    assert np.abs(c1 - c3).min() > 0
    # the default config uses the same generator
    assert np.array_equal(_instantiate("elliptic", ["pde.dim=20"]).coefficients, c1)
    # N(0, 1)
    c = Elliptic(dim=4001).coefficients
    assert abs(c.mean()) < 0.05 and abs(c.std() - 1) < 0.05


# ---------------------------------------------------------------- soft terms: laplace, RD


@pytest.mark.parametrize("dim", [2, 5])
def test_laplace_boundary_terms_on_the_faces(dim):
    pde = Laplace(dim=dim, n_boundary=1000, boundary_weight=2.5)
    terms = pde.boundary_terms(_gen(0), torch.device("cpu"), F64)
    assert [t.name for t in terms] == ["boundary"]
    (term,) = terms
    x = term.x
    assert x.shape == (1000, dim) and x.dtype == F64
    assert term.weight == 2.5
    assert ((x >= 0) & (x <= 1)).all()
    on_face = (x == 0) | (x == 1)  # (n, dim)
    assert on_face.any(dim=1).all()  # every point is on a face
    for i in range(dim):
        for side in (0.0, 1.0):
            count = int((x[:, i] == side).sum())
            assert count >= 1000 // (2 * dim), (i, side, count)  # every face gets its share
    torch.testing.assert_close(term.target.reshape(-1), pde.exact(x).reshape(-1), rtol=0, atol=0)
    # dtype and device are honoured
    (t32,) = pde.boundary_terms(_gen(0), torch.device("cpu"), torch.float32)
    assert t32.x.dtype == t32.target.dtype == torch.float32


def test_reaction_diffusion_boundary_terms():
    pde = ReactionDiffusion(n_initial=300, n_boundary=200, initial_weight=3.0, boundary_weight=0.5)
    terms = {t.name: t for t in pde.boundary_terms(_gen(0), torch.device("cpu"), F64)}
    assert set(terms) == {"initial", "boundary"}
    ini, bnd = terms["initial"], terms["boundary"]
    assert ini.x.shape == (300, 2) and bnd.x.shape == (200, 2)
    assert (ini.weight, bnd.weight) == (3.0, 0.5)
    # initial points on t = 0 spread over [-1, 1]
    assert torch.count_nonzero(ini.x[:, 1]) == 0
    assert ini.x[:, 0].min() < -0.9 and ini.x[:, 0].max() > 0.9
    assert ini.x[:, 0].abs().max() <= 1
    # boundary points on x = -1 and x = 1, both sides, t spread over [0, 1]
    assert (bnd.x[:, 0].abs() == 1).all()
    assert (bnd.x[:, 0] == -1).sum() == 100 and (bnd.x[:, 0] == 1).sum() == 100
    assert bnd.x[:, 1].min() >= 0 and bnd.x[:, 1].max() <= 1
    assert bnd.x[:, 1].min() < 0.05 and bnd.x[:, 1].max() > 0.95
    for term in (ini, bnd):
        torch.testing.assert_close(term.target.reshape(-1), pde.exact(term.x).reshape(-1))
    # the targets are not trivial: the front is visible in the initial data
    assert ini.target.min() < 0.01 and ini.target.max() > 0.99


# ---------------------------------------------------------- boundary points of the domains


def _old_laplace_boundary(n: int, d: int, generator: torch.Generator) -> torch.Tensor:
    """The points Laplace drew itself before the domains sampled their boundaries."""
    x = torch.rand(n, d, generator=generator, dtype=F64)
    face = torch.arange(n) % (2 * d)
    x[torch.arange(n), face // 2] = (face % 2).double()
    return x


def _old_reaction_diffusion_points(n_initial: int, n_boundary: int, generator):
    """The initial and boundary points ReactionDiffusion drew itself before."""
    x0 = torch.rand(n_initial, generator=generator, dtype=F64) * 2 - 1
    initial = torch.stack([x0, torch.zeros_like(x0)], dim=1)
    tb = torch.rand(n_boundary, generator=generator, dtype=F64)
    side = torch.where(torch.arange(n_boundary) % 2 == 0, -1.0, 1.0).double()
    return initial, torch.stack([side, tb], dim=1)


@pytest.mark.parametrize("dim", [2, 5])
def test_box_boundary_draws_the_points_of_before(dim):
    """The same generator state gives bit-identical boundary points to the PDEs' own sampling
    of before, and leaves the generator in the same state."""
    gen_new, gen_old = _gen(4), _gen(4)
    (term,) = Laplace(dim=dim, n_boundary=300).boundary_terms(gen_new, torch.device("cpu"), F64)
    assert torch.equal(term.x, _old_laplace_boundary(300, dim, gen_old))
    assert torch.equal(gen_new.get_state(), gen_old.get_state())


def test_space_time_initial_and_boundary_draw_the_points_of_before():
    gen_new, gen_old = _gen(5), _gen(5)
    pde = ReactionDiffusion(n_initial=70, n_boundary=50)
    terms = {t.name: t.x for t in pde.boundary_terms(gen_new, torch.device("cpu"), F64)}
    initial, boundary = _old_reaction_diffusion_points(70, 50, gen_old)
    assert torch.equal(terms["initial"], initial) and torch.equal(terms["boundary"], boundary)
    assert torch.equal(gen_new.get_state(), gen_old.get_state())


def test_box_boundary_of_a_general_box():
    box = Box([-1.0, 2.0, 0.5], [3.0, 2.5, 4.0])
    x = box.sample_boundary(600, _gen(0), dtype=F64)
    assert x.shape == (600, 3) and box.contains(x, tol=0.0).all()
    lower, upper = torch.as_tensor(box.lower), torch.as_tensor(box.upper)
    on = (x == lower) | (x == upper)
    assert on.any(dim=1).all()
    for i in range(3):  # every face gets its share
        assert int((x[:, i] == lower[i]).sum()) >= 100 and int((x[:, i] == upper[i]).sum()) >= 100
    # float32 by default, reproducible
    assert box.sample_boundary(4, _gen(1)).dtype == torch.float32
    assert torch.equal(box.sample_boundary(8, _gen(1)), box.sample_boundary(8, _gen(1)))
    # one dimension: the two end points in turn, nothing drawn
    gen = _gen(2)
    state = gen.get_state()
    ends = Box([-2.0], [5.0]).sample_boundary(5, gen, dtype=F64)
    assert ends.reshape(-1).tolist() == [-2.0, 5.0, -2.0, 5.0, -2.0]
    assert torch.equal(gen.get_state(), state)


def test_ball_boundary_is_on_the_sphere():
    ball = Ball(6, radius=2.0)
    x = ball.sample_boundary(500, _gen(0), dtype=F64)
    assert x.shape == (500, 6)
    torch.testing.assert_close(x.norm(dim=1), torch.full((500,), 2.0, dtype=F64))
    assert x.mean(dim=0).abs().max() < 0.25  # spread over the sphere


def test_space_time_domain():
    domain = SpaceTime([-1.0, 0.0], [1.0, 2.0], 0.5, 3.0)
    assert isinstance(domain, Box) and domain.dim == 3
    assert domain.lower.tolist() == [-1.0, 0.0, 0.5] and domain.upper.tolist() == [1.0, 2.0, 3.0]
    initial = domain.sample_initial(400, _gen(0), dtype=F64)
    assert (initial[:, 2] == 0.5).all() and domain.contains(initial, tol=0.0).all()
    boundary = domain.sample_boundary(400, _gen(0), dtype=F64)
    assert domain.contains(boundary, tol=0.0).all()
    space = boundary[:, :2]
    lower, upper = torch.tensor([-1.0, 0.0], dtype=F64), torch.tensor([1.0, 2.0], dtype=F64)
    assert ((space == lower) | (space == upper)).any(dim=1).all()  # on the spatial boundary
    assert boundary[:, 2].min() < 0.6 and boundary[:, 2].max() > 2.9  # at every time


def test_a_domain_without_boundary_sampling_says_so():
    from pinn_exp.domains import Domain

    class Half(Domain):
        dim = 1

        def from_unit(self, u):
            return u / 2

        def contains(self, x, tol=1e-9):
            return (x >= -tol).all(dim=1) & (x <= 0.5 + tol).all(dim=1)

    with pytest.raises(NotImplementedError, match="sample_boundary"):
        Half().sample_boundary(3, _gen())


# ------------------------------------------------------ hard constraints: Burgers, Allen-Cahn


def _initial(cls, x: torch.Tensor) -> torch.Tensor:
    if cls is Burgers:
        return -torch.sin(torch.pi * x)
    return x**2 * torch.cos(torch.pi * x)


@pytest.mark.parametrize(("cls", "boundary_value"), [(Burgers, 0.0), (AllenCahn, -1.0)])
def test_hard_constraint_satisfies_initial_and_boundary_data(cls, boundary_value):
    pde = cls()
    torch.manual_seed(0)
    model = Solution(MLP(2, 32, 3, "tanh"), pde.constraint).double()
    xs = torch.linspace(-1, 1, 101, dtype=F64)
    ts = torch.linspace(0, 1, 101, dtype=F64)
    with torch.no_grad():
        u0 = model(torch.stack([xs, torch.zeros_like(xs)], dim=1)).reshape(-1)
        torch.testing.assert_close(u0, _initial(cls, xs), rtol=0, atol=1e-15)
        for side in (-1.0, 1.0):
            ub = model(torch.stack([torch.full_like(ts, side), ts], dim=1)).reshape(-1)
            torch.testing.assert_close(ub, torch.full_like(ub, boundary_value), rtol=0, atol=1e-15)
        # the network does act inside the domain
        inside = pde.domain.sample(200, _gen(0), dtype=F64)
        a, _ = pde.constraint(inside)
        assert (model(inside) - a).abs().max() > 1e-3


# ------------------------------------------------- residual of the reference solutions


def _local_quadratic(base: torch.Tensor, u0, u_x, u_t, u_xx):
    """A smooth callable whose value, gradient and u_xx at each ``base`` point are the given
    (finite-difference) values: its Taylor polynomial in (x, t) around that point. Passing it
    to ``pde.residual`` evaluates the PDE's own residual on those derivatives."""
    as_t = [torch.as_tensor(np.ravel(v), dtype=F64) for v in (u0, u_x, u_t, u_xx)]
    base = base.detach().clone()  # a constant: z - base must carry z's gradient only

    def u(z: torch.Tensor) -> torch.Tensor:
        dx, dt = z[:, 0] - base[:, 0], z[:, 1] - base[:, 1]
        return (as_t[0] + as_t[1] * dx + as_t[2] * dt + 0.5 * as_t[3] * dx**2).unsqueeze(1)

    return u


def _residual_on(pde: PDE, base: torch.Tensor, u0, u_x, u_t, u_xx) -> np.ndarray:
    """``pde.residual`` at ``base`` of the local quadratic with these derivatives; checks first
    that the residual's derivatives (``space_time_derivatives``) see exactly those values."""
    u = _local_quadratic(base, u0, u_x, u_t, u_xx)
    seen = space_time_derivatives(u, base)
    for got, want in zip(seen, (u0, u_t, u_x, u_xx)):
        np.testing.assert_allclose(got.detach().numpy(), np.ravel(want), rtol=1e-14, atol=1e-14)
    return pde.residual(u, base, Laplacian("autograd")).detach().numpy()


def _d1(u: np.ndarray, h: float, axis: int) -> np.ndarray:
    """Fourth-order central first derivative on the interior (2 points lost at each end)."""
    u = np.moveaxis(u, axis, 0)
    return np.moveaxis((-u[4:] + 8 * u[3:-1] - 8 * u[1:-3] + u[:-4]) / (12 * h), 0, axis)


def _d2(u: np.ndarray, h: float, axis: int) -> np.ndarray:
    """Fourth-order central second derivative on the interior."""
    u = np.moveaxis(u, axis, 0)
    d = (-u[4:] + 16 * u[3:-1] - 30 * u[2:-2] + 16 * u[1:-3] - u[:-4]) / (12 * h * h)
    return np.moveaxis(d, 0, axis)


def test_burgers_residual_of_the_cole_hopf_solution():
    """Away from the shock (|x| >= 0.2), 4th-order differences with step 1e-3 of the Cole-Hopf
    solution give a residual of 6e-10 relative to max(|u_t| + |u u_x| + nu |u_xx|)."""
    h = 1e-3
    xs = np.concatenate([np.linspace(-0.95, -0.2, 16), np.linspace(0.2, 0.95, 16)])
    ts = np.linspace(0.05, 0.95, 19)
    off = np.arange(-2, 3) * h
    grid = burgers_cole_hopf((xs[:, None] + off).ravel(), (ts[:, None] + off).ravel(), NU)
    grid = grid.reshape(xs.size, 5, ts.size, 5)  # [x, x-offset, t, t-offset]
    u0 = grid[:, 2, :, 2]
    u_x = _d1(grid[:, :, :, 2], h, 1)[:, 0]
    u_xx = _d2(grid[:, :, :, 2], h, 1)[:, 0]
    u_t = _d1(grid[:, 2, :, :], h, 2)[:, :, 0]
    xx, tt = np.meshgrid(xs, ts, indexing="ij")
    base = torch.as_tensor(np.stack([xx.ravel(), tt.ravel()], axis=1)).requires_grad_(True)

    res = _residual_on(Burgers(), base, u0, u_x, u_t, u_xx)
    scale = (np.abs(u_t) + np.abs(u0 * u_x) + NU * np.abs(u_xx)).max()
    assert scale > 1
    assert np.abs(res).max() / scale < 2e-9  # measured 6.1e-10
    # the check has power: a doubled viscosity would be seen
    assert np.abs(res.reshape(u_xx.shape) - NU * u_xx).max() / scale > 1e-3


def test_allen_cahn_residual_of_the_reference():
    """4th-order differences on the 201 x 101 reference grid (dx = dt = 0.01): the residual is
    7e-3 of max(|u_t| + 0.001 |u_xx| + 5 |u^3 - u|), largest at the interfaces."""
    x, u = AllenCahn().reference()
    xs, ts = _grid_axes(x)
    usol = u.reshape(ts.size, xs.size)  # [t, x]
    dx, dt = xs[1] - xs[0], ts[1] - ts[0]
    u0 = usol[2:-2, 2:-2]
    u_t = _d1(usol, dt, 0)[:, 2:-2]
    u_x = _d1(usol, dx, 1)[2:-2]
    u_xx = _d2(usol, dx, 1)[2:-2]
    tt, xx = np.meshgrid(ts[2:-2], xs[2:-2], indexing="ij")
    base = torch.as_tensor(np.stack([xx.ravel(), tt.ravel()], axis=1)).requires_grad_(True)

    res = _residual_on(AllenCahn(), base, u0, u_x, u_t, u_xx)
    terms = np.abs(u_t) + 0.001 * np.abs(u_xx) + 5 * np.abs(u0**3 - u0)
    scale = terms.max()
    assert scale > 1
    assert np.abs(res).max() / scale < 2e-2  # measured 7.0e-3
    assert np.sqrt(np.mean(res**2)) / scale < 1e-3  # measured 3.1e-4 (rms)
    # the check has power: a 10 % error in the reaction rate would be seen
    wrong = res.reshape(u0.shape) - 0.5 * (u0**3 - u0)
    assert np.abs(wrong).max() / scale > 4e-2
