"""The device L-BFGS: its direction equals the two-loop recursion's, its iterations are
torch's (the same evaluations, iterations and losses from the same start), S problems at once
follow their separate runs bit for bit, and a step reads nothing on the host;
torch's L-BFGS: its line search's evaluation limit and its evaluation budget."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.optim.lbfgs as torch_lbfgs

from pinn_exp import runner
from pinn_exp.factory import build
from pinn_exp.training import stages as stages_module
from pinn_exp.training.lbfgs import (
    DeviceLBFGS,
    History,
    StrongWolfeLBFGS,
    flat_grad_stacked,
    load,
    load_stacked,
)
from pinn_exp.training.lbfgs.line_search import cubic_minimiser
from pinn_exp.training.schedule import Schedule, lbfgs_max_eval
from pinn_exp.training.trainer import Trainer

F64 = torch.float64


def two_loop(g: torch.Tensor, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """-H g by Nocedal's two-loop recursion (pairs oldest first), H0 = (s.y / y.y) I."""
    q, alphas = g.clone(), []
    for s, y in reversed(pairs):
        a = s.dot(q) / s.dot(y)
        alphas.append(a)
        q -= a * y
    s, y = pairs[-1]
    r = q * s.dot(y) / y.dot(y)
    for (s, y), a in zip(pairs, reversed(alphas)):
        b = y.dot(r) / s.dot(y)
        r += s * (a - b)
    return -r


# --------------------------------------------------------------------------------------------
# the history: the compact form is the two-loop recursion
# --------------------------------------------------------------------------------------------


def test_direction_equals_two_loop_per_problem():
    """Problems with different numbers of pairs: none, fewer than the slots, a full ring, a
    ring that has wrapped around."""
    gen = torch.Generator().manual_seed(3)
    n, m, pairs_per_problem = 9, 4, [0, 2, 4, 7, 13]
    size = len(pairs_per_problem)
    a = torch.randn(size, n, n, generator=gen, dtype=F64)
    hessian = a @ a.mT + n * torch.eye(n, dtype=F64)  # s.y > 0 for every pair
    history = History(size, m, n, F64, torch.device("cpu"))
    pairs: list[list] = [[] for _ in range(size)]
    for i in range(max(pairs_per_problem)):
        push = torch.tensor([i < p for p in pairs_per_problem])
        s = torch.randn(size, n, generator=gen, dtype=F64)
        y = (hessian @ s.unsqueeze(2)).squeeze(2)
        history.push(push, s, y)
        for k in range(size):
            if push[k]:
                pairs[k].append((s[k], y[k]))
    assert history.count.tolist() == pairs_per_problem
    g = torch.randn(size, n, generator=gen, dtype=F64)
    d = history.direction(g)
    torch.testing.assert_close(d[0], -g[0], rtol=0, atol=0)
    for k in range(1, size):
        torch.testing.assert_close(d[k], two_loop(g[k], pairs[k][-m:]), rtol=1e-10, atol=1e-12)


def test_a_push_not_asked_for_changes_nothing():
    history = History(1, 3, 4, F64, torch.device("cpu"))
    s, y = torch.ones(1, 4, dtype=F64), 2 * torch.ones(1, 4, dtype=F64)
    history.push(torch.tensor([True]), s, y)
    state = (history.S, history.Y, history.StY, history.YtY, history.count)
    before = [t.clone() for t in state]
    history.push(torch.tensor([False]), 3 * s, y)
    for old, new in zip(before, state):
        assert torch.equal(old, new)


def test_cubic_minimiser_is_torchs():
    """Element-wise, torch's ``_cubic_interpolate`` with and without bounds, the midpoint
    where the cubic has no minimiser or the result is not a number."""
    cases = [
        (0.0, 1.0, -2.0, 1.0, 0.5, 1.0, None),
        (1.0, 0.5, 1.0, 0.0, 1.0, -2.0, None),
        (0.0, 1.0, -1.0, 1.0, 0.9, -0.5, (1.01, 10.0)),
        (0.0, 1.0, -1.0, 2.0, 0.0, 3.0, None),
        (0.0, 1.0, 1.0, 1.0, 0.0, 5.0, None),  # no real minimiser: the midpoint
    ]
    for x1, f1, g1, x2, f2, g2, bounds in cases:
        lo, hi = bounds or (min(x1, x2), max(x1, x2))
        values = [torch.tensor(v, dtype=F64) for v in (x1, f1, g1, x2, f2, g2, lo, hi)]
        ours = cubic_minimiser(*values)
        theirs = torch_lbfgs._cubic_interpolate(*values[:6], bounds=bounds)
        assert float(ours) == pytest.approx(float(theirs), rel=1e-14, abs=1e-15)
    nan = torch.tensor(float("nan"), dtype=F64)
    one, two = torch.tensor(1.0, dtype=F64), torch.tensor(2.0, dtype=F64)
    assert float(cubic_minimiser(one, nan, nan, two, one, one, one, two)) == 1.5


# --------------------------------------------------------------------------------------------
# one problem: torch's iterations
# --------------------------------------------------------------------------------------------


def _rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (100 * (x[1::2] - x[::2] ** 2) ** 2 + (1 - x[::2]) ** 2).sum()


def _kinked(x: torch.Tensor) -> torch.Tensor:
    """Not differentiable at its minimum: the zoom's bracket narrows to nothing there."""
    return (torch.tensor([1.0, 2.0], dtype=F64) * x).abs().sum()


def _quartic(x: torch.Tensor) -> torch.Tensor:
    return (torch.arange(1.0, len(x) + 1, dtype=F64) * x**2 + 0.3 * x**4).sum()


def _run(kind: str, fn, start, iters: int, **kwargs) -> tuple[list[float], int, int]:
    """Every evaluation's loss, the iterations and the evaluations of ``kind``'s L-BFGS
    (``torch`` or ``device``) from ``start``."""
    x = torch.tensor(start, dtype=F64, requires_grad=True)
    losses: list[float] = []

    def evaluate() -> torch.Tensor:
        x.grad = None
        loss = fn(x)
        loss.backward()
        losses.append(float(loss.detach()))
        return loss.detach().reshape(1)

    max_ls, lr = kwargs.pop("max_ls", None), kwargs.pop("lr", 1.0)
    kwargs.setdefault("tolerance_grad", 1e-9)
    if kind == "torch":
        opt = StrongWolfeLBFGS(
            [x],
            max_ls=max_ls,
            lr=lr,
            max_iter=iters,
            max_eval=lbfgs_max_eval(iters),
            tolerance_change=0.0,
            **kwargs,
        )
        opt.step(lambda: evaluate()[0])
        return losses, opt.state[x]["n_iter"], opt.state[x]["func_evals"]
    opt = DeviceLBFGS(
        [x],
        evaluate,
        lr=lr,
        max_iter=iters,
        max_eval=lbfgs_max_eval(iters),
        max_ls=max_ls,
        **kwargs,
    )
    opt.start()
    while bool(opt.running()):
        opt.step()
    opt.finish()
    return losses, int(opt.iterations), int(opt.evaluations)


@pytest.mark.parametrize(
    "problem, settings",
    [
        ("rosenbrock", {}),
        ("rosenbrock", {"lr": 10.0}),  # zoom: the first steps are far too long
        ("rosenbrock", {"lr": 0.05}),  # extrapolation: too short
        ("rosenbrock", {"lr": 10.0, "max_ls": 2}),
        ("rosenbrock", {"history_size": 3}),
        ("quartic", {"lr": 0.01}),
        ("quartic", {"lr": 100.0, "max_ls": 3}),
        ("kinked", {"lr": 3.0}),  # the zoom ends where its bracket is narrower than 1e-9
    ],
)
def test_takes_torchs_iterations(problem, settings):
    """From the same start, the device L-BFGS evaluates the loss at torch's trial points: the
    same number of evaluations and iterations, every evaluation's loss equal to round-off
    (the compact form and the two-loop recursion round differently), in float64."""
    fn, start = {
        "rosenbrock": (_rosenbrock, [-1.2, 1.0] * 5),
        "quartic": (_quartic, [2.0, -1.0, 0.5, 3.0]),
        "kinked": (_kinked, [1.0, -0.7]),
    }[problem]
    settings = {"history_size": 10, **settings}
    theirs, iterations, evals = _run("torch", fn, start, 60, **settings)
    ours, our_iterations, our_evals = _run("device", fn, start, 60, **settings)
    assert (our_iterations, our_evals, len(ours)) == (iterations, evals, len(theirs))
    assert len(theirs) > iterations + 2  # the line search took more than one trial at times
    # the Rosenbrock valley amplifies round-off about twofold an iteration
    ours, theirs = torch.tensor(ours), torch.tensor(theirs)
    torch.testing.assert_close(ours[:20], theirs[:20], rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-12)


def test_minimises_rosenbrock_to_round_off():
    losses, iterations, _ = _run("device", _rosenbrock, [-1.2, 1.0] * 5, 200, history_size=10)
    assert losses[-1] < 1e-20 and iterations < 200  # stopped on the gradient tolerance


def test_a_trial_that_is_not_a_number_is_a_step_too_long():
    """torch's L-BFGS takes a non-finite loss as the loss (the stage raises); the device one
    shrinks the step away from it and goes on."""

    def walled(x: torch.Tensor) -> torch.Tensor:  # not a number beyond |x| > 1.5
        loss = ((x - 1) ** 2).sum()
        return torch.where((x.abs() > 1.5).any(), torch.tensor(float("nan"), dtype=F64), loss)

    losses, iterations, _ = _run("device", walled, [-1.0, 0.2], 30, lr=50.0)
    assert any(loss != loss for loss in losses) and losses[-1] < 1e-20


def test_iterations_stop_at_the_budget_and_the_point_is_the_last_accepted():
    x = torch.tensor([3.0, -2.0], dtype=F64, requires_grad=True)
    scale = torch.tensor([1.0, 50.0], dtype=F64)

    def evaluate() -> torch.Tensor:
        x.grad = None
        loss = (scale * x**2 + x**4).sum()
        loss.backward()
        return loss.detach().reshape(1)

    opt = DeviceLBFGS([x], evaluate, history_size=5, max_iter=3, max_eval=100)
    opt.start()
    done = [bool(opt.step()[1]) for _ in range(30)]
    assert sum(done) == 3 and not bool(opt.running())
    opt.finish()
    # the parameters hold the accepted point, whose loss is the one reported
    assert torch.allclose((scale * x.detach() ** 2 + x.detach() ** 4).sum(), opt.terms[0, 0])
    assert torch.equal(x.detach(), opt.x[0, :2])


def test_load_keeps_parameter_storage():
    p = torch.nn.Parameter(torch.zeros(2, 3))
    ptr = p.data_ptr()
    load([p], torch.arange(6.0))
    assert p.data_ptr() == ptr and p[1, 2] == 5.0


@pytest.mark.parametrize("pde", ["burgers", "reaction_diffusion"])
def test_device_stage_records_iterations_and_lowers_the_loss(tmp_path, pde, tiny, compose):
    cfg = compose(
        [
            *tiny,
            f"pde={pde}",
            "optimizer.lbfgs_impl=device",
            "optimizer.lbfgs_steps=40",
            "optimizer.check_every=7",
        ]
    )
    record = runner.run(build(cfg), tmp_path, progress=False)
    assert record["status"] == "ok"
    history = pd.read_csv(tmp_path / "history.csv")
    for _, stage in history.groupby("round"):
        lbfgs = stage[stage["phase"] == "lbfgs"]
        adam = stage[stage["phase"] == "adam"]
        assert 0 < len(lbfgs) <= 40
        assert lbfgs["step"].tolist() == list(range(len(lbfgs)))
        # iterations only: the loss never rises, and ends below Adam's last
        assert (lbfgs["loss"].diff().dropna() <= 0).all()
        assert lbfgs["loss"].iloc[-1] < adam["loss"].iloc[-1]


def test_captured_step_runs_eagerly_off_cuda():
    from pinn_exp.training.cuda_graphs import CapturedStep

    calls = []
    step = CapturedStep(lambda: calls.append(1) or len(calls), torch.device("cpu"), warmup=1)
    assert [step() for _ in range(4)] == [1, 2, 3, 4] and not step.captured


def test_compiled_loss_trains_like_the_eager_one(tmp_path, tiny, compose):
    """optimizer.compile=true compiles the loss and its gradient (torch.compile); the run
    follows the eager one to float32 rounding."""
    base = [*tiny, "rounds=1", "model.width=16", "model.depth=2"]
    eager = runner.run(build(compose(base)), tmp_path / "eager", progress=False)
    compiled = runner.run(
        build(compose([*base, "optimizer.compile=true"])), tmp_path / "compiled", progress=False
    )
    assert eager["status"] == compiled["status"] == "ok"
    assert compiled["l2_rel_error_per_round"] == pytest.approx(
        eager["l2_rel_error_per_round"], rel=1e-3
    )


def _stacked_quadratics(size: int):
    x = torch.tensor(
        [[3.0, -2.0, 1.0], [1.0, 1.0, -4.0], [0.5, 2.0, 2.0]][:size], requires_grad=True
    )
    scale = torch.tensor([1.0, 30.0, 5.0])

    def evaluate() -> torch.Tensor:
        x.grad = None
        loss = (scale * x**2 + 0.1 * x**4).sum(1)
        loss.sum().backward()
        return loss.detach().unsqueeze(1)

    return x, evaluate


@pytest.mark.parametrize("size", [1, 3])
def test_a_step_reads_nothing_on_the_host(size):
    """The update after each evaluation traces as one graph (``fullgraph=True`` fails at any
    ``.item()``, ``bool()`` or Python number taken from a tensor), so it needs no host sync
    and a CUDA graph can capture it."""
    x, evaluate = _stacked_quadratics(size)
    opt = DeviceLBFGS([x], evaluate, stacked=True, history_size=4, max_iter=100)
    opt._update = torch.compile(opt._update_eager, fullgraph=True, backend="eager")
    opt.start()
    for _ in range(25):
        opt.step()
    assert (opt.f < 1e-6).all()


def test_the_compiled_update_follows_the_eager_one():
    """``compile=True`` (torch.compile's default backend, as ``optimizer.compile=true`` runs
    it) takes the same steps as the eager update, to round-off in float64, and its integer
    state (iterations, evaluations, pairs pushed) follows exactly, up to the iteration budget
    and past it."""

    def run(compile: bool) -> list[tuple]:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(64, 2, generator=generator, dtype=F64)
        target = torch.sin(x.sum(1, keepdim=True))
        w1 = torch.randn(2, 16, generator=generator, dtype=F64).requires_grad_(True)
        w2 = (torch.randn(16, 1, generator=generator, dtype=F64) / 4).requires_grad_(True)

        def evaluate() -> torch.Tensor:
            w1.grad = w2.grad = None
            loss = (torch.tanh(x @ w1) @ w2 - target).square().mean()
            loss.backward()
            return loss.detach().reshape(1)

        opt = DeviceLBFGS(
            [w1, w2], evaluate, history_size=10, max_iter=24, max_eval=1000, compile=compile
        )
        opt.start()
        out = []
        for _ in range(40):
            terms, done = opt.step()
            out.append(
                (
                    float(terms[0]),
                    bool(done),
                    float(opt.search.t[0]),
                    int(opt.iterations[0]),
                    int(opt.evaluations[0]),
                    int(opt.history.count[0]),
                )
            )
        return out

    eager, compiled = run(False), run(True)
    assert any(not row[1] for row in eager[:30])  # a search took more than one trial
    assert eager[-1][3] == 24 and not eager[-1][1]  # the budget was spent before the end
    for (f, ok, t, *counts), (f_c, ok_c, t_c, *counts_c) in zip(eager, compiled):
        assert ok == ok_c and counts == counts_c
        assert f_c == pytest.approx(f, rel=1e-10) and t_c == pytest.approx(t, rel=1e-10)


# --------------------------------------------------------------------------------------------
# S problems at once: each exactly its separate run
# --------------------------------------------------------------------------------------------

#: member 0: a small tanh network fitted to a few points, still progressing after 50
#: iterations, frozen at step FREEZE as the ensemble freezes a diverged member; member 1:
#: a well-conditioned quadratic, which meets the gradient tolerance early; member 2: the
#: chained Rosenbrock function with a budget of 12 iterations, whose trial at evaluation
#: POISON is not a number. Each member's six numbers are a [2, 2] and a [2] parameter.
STARTS = [
    [0.05, -0.03, 0.02, 0.08, 0.01, -0.01],
    [2.0, -1.5, 1.0, 0.5, -1.0, 1.0],
    [-1.5, 2.0, -1.2, 1.0, 0.5, -0.5],
]
MAX_ITER, FREEZE, POISON, STEPS = [100, 100, 12], 45, 5, 55
_X = torch.rand(40, 2, generator=torch.Generator().manual_seed(0), dtype=F64) * 4 - 2
_Y = torch.sin(2 * _X[:, 0]) * torch.cos(_X[:, 1]) + 0.3 * _X[:, 1]


def _problem(k: int, a: torch.Tensor, b: torch.Tensor, poison: bool = False) -> torch.Tensor:
    """Member k's loss terms (loss, then its two parts) at its parameters a, b."""
    x = torch.cat([a.reshape(-1), b])
    if k == 0:
        out = torch.tanh(_X @ a.T + b) @ torch.tensor([1.0, -0.5], dtype=F64)
        first, second = ((out - _Y) ** 2).mean(), 1e-3 * (x**2).sum()
    elif k == 1:
        first = (torch.arange(1, 7, dtype=F64) * x**2).sum()
        second = 0.5 * (x[:-1] * x[1:]).sum()
    else:
        first, second = 100 * ((x[1:] - x[:-1] ** 2) ** 2).sum(), ((1 - x[:-1]) ** 2).sum()
    terms = torch.stack([first + second, first, second])
    return terms * float("nan") if poison else terms


def _start(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor(STARTS[k], dtype=F64)
    return x[:4].reshape(2, 2), x[4:]


def _separate_runs(poisoned, **kwargs) -> tuple[list[DeviceLBFGS], list[tuple]]:
    """One DeviceLBFGS per member, on its own parameters; member k's trial at its evaluation
    c is not a number where ``poisoned(k, c)``."""
    singles, params = [], []
    for k in range(3):
        a_k, b_k = (t.clone().requires_grad_(True) for t in _start(k))
        calls = [0]

        def evaluate(k=k, a=a_k, b=b_k, calls=calls) -> torch.Tensor:
            a.grad = b.grad = None
            calls[0] += 1
            terms = _problem(k, a, b, poison=poisoned(k, calls[0]))
            terms[0].backward()
            return terms.detach()

        singles.append(DeviceLBFGS([a_k, b_k], evaluate, max_iter=MAX_ITER[k], **kwargs))
        params.append((a_k, b_k))
    return singles, params


def _members_together(poisoned, trials: list, **kwargs):
    """The three members in one stacked DeviceLBFGS over parameters (a, b); each
    evaluation's losses are appended to ``trials``. Returns (optimizer, a, b)."""
    a, b = (torch.stack(list(ts)).requires_grad_(True) for ts in zip(*map(_start, range(3))))
    calls = [0]

    def evaluate_all() -> torch.Tensor:
        a.grad = b.grad = None
        calls[0] += 1
        terms = torch.stack([_problem(k, a[k], b[k], poisoned(k, calls[0])) for k in range(3)])
        terms[:, 0].sum().backward()
        trials.append(terms[:, 0].detach())
        return terms.detach()

    opt = DeviceLBFGS([a, b], evaluate_all, stacked=True, max_iter=MAX_ITER, **kwargs)
    return opt, a, b


def test_members_follow_their_separate_runs_bit_for_bit():
    """Every step: the same completed iterations, loss terms and points as each member's
    own run, exactly; a member that stops (frozen, converged, out of iterations) does not
    move; a trial that is not a number is one member's alone."""
    kwargs = {"history_size": 4, "tolerance_grad": 1e-9, "max_eval": 1000}

    def poisoned(k: int, call: int) -> bool:
        return k == 2 and call == POISON

    singles, single_params = _separate_runs(poisoned, **kwargs)
    trials: list[torch.Tensor] = []
    together, a, b = _members_together(poisoned, trials, **kwargs)
    start = together.start()
    for k, single in enumerate(singles):
        assert torch.equal(start[k], single.start())
    stopped: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # member -> where it stopped
    for step in range(STEPS):
        if step == FREEZE:
            together.freeze(0)
            singles[0].freeze(0)
            stopped[0] = (a[0].detach().clone(), b[0].detach().clone())
        running = together.running().tolist()
        terms, done = together.step()
        for k, single in enumerate(singles):
            if not running[k]:  # a separate run that stopped is not stepped
                assert k in stopped and not bool(done[k])
                assert torch.equal(a[k], stopped[k][0]) and torch.equal(b[k], stopped[k][1])
                continue
            terms_k, done_k = single.step()
            assert bool(done[k]) == bool(done_k), (step, k)
            assert torch.equal(terms[k], terms_k) and torch.equal(together.x[k], single.x[0])
            if not bool(single.running()):
                stopped[k] = (a[k].detach().clone(), b[k].detach().clone())
    iterations = together.iterations.tolist()
    assert iterations == [int(s.iterations) for s in singles]
    assert 30 < iterations[0] <= FREEZE and iterations[1] < 30 and iterations[2] == 12
    assert sorted(stopped) == [0, 1, 2]
    converged = (together.g.abs().amax(1) <= 1e-9).tolist()
    assert converged == [False, True, False]
    trial = torch.stack(trials)[POISON - 1]  # the poisoned evaluation: member 2's alone
    assert trial[2].isnan() and trial[:2].isfinite().all()
    together.finish()
    for k, single in enumerate(singles):
        single.finish()
        for p, q in zip((a[k], b[k]), single_params[k]):
            assert torch.equal(p.detach(), q.detach())


def test_stacked_load_and_flat_grad_keep_storage_and_member_order():
    a = torch.zeros(2, 3, 2, requires_grad=True)
    b = torch.zeros(2, 4, requires_grad=True)
    pointers = a.data_ptr(), b.data_ptr()
    flat = torch.arange(20.0).reshape(2, 10)
    load_stacked([a, b], flat)
    assert (a.data_ptr(), b.data_ptr()) == pointers
    assert a[1].reshape(-1).tolist() == list(range(10, 16)) and b[0].tolist() == [6, 7, 8, 9]
    ((a * 2).sum() + (b * 3).sum()).backward()
    assert torch.equal(flat_grad_stacked([a, b]), torch.tensor([[2.0] * 6 + [3.0] * 4] * 2))


# --------------------------------------------------------------------------------------------
# torch's L-BFGS: the line search's evaluation limit and the evaluation budget
# --------------------------------------------------------------------------------------------


def _one_iteration(max_ls: int | None, lr: float = 1e6) -> int:
    """Evaluations of one StrongWolfeLBFGS iteration whose first trial step (``lr``) is far too
    long, so that the line search needs many trials to shorten it."""
    x = torch.tensor([3.0, -2.0], dtype=F64, requires_grad=True)
    opt = StrongWolfeLBFGS(
        [x],
        max_ls=max_ls,
        lr=lr,
        max_iter=1,
        max_eval=1000,
        tolerance_change=0.0,
        tolerance_grad=0.0,
    )
    evals = 0

    def closure():
        nonlocal evals
        evals += 1
        opt.zero_grad()
        loss = (torch.tensor([1.0, 50.0], dtype=F64) * x**2 + x**4).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return evals


def test_strong_wolfe_line_search_takes_max_ls(monkeypatch):
    """``optimizer.max_ls`` bounds torch's line search during the step only, together with the
    evaluations left in the budget (which torch 2.13 passes as its limit)."""
    seen = []
    original = torch_lbfgs._strong_wolfe

    def spy(*args, max_ls=25, **kwargs):
        seen.append(max_ls)
        return original(*args, max_ls=max_ls, **kwargs)

    monkeypatch.setattr(torch_lbfgs, "_strong_wolfe", spy)
    _one_iteration(None, lr=10.0)
    assert torch_lbfgs._strong_wolfe is spy and seen == [1000 - 1]  # torch's: the budget left
    _one_iteration(5, lr=10.0)
    assert seen[-1] == 5 and torch_lbfgs._strong_wolfe is spy  # restored after the step
    monkeypatch.undo()
    # the line search's first trial plus at most max_ls more, after the first evaluation
    assert [_one_iteration(k) for k in (1, 2, 5)] == [3, 4, 7]
    assert _one_iteration(None) > 7


def test_lbfgs_stage_gets_max_ls_and_five_quarters_of_its_iterations_as_evaluations(
    monkeypatch, tiny, compose
):
    assert lbfgs_max_eval(1000) == 1250  # DeepXDE's maxfun for maxiter=1,000
    made = []

    class Recording(StrongWolfeLBFGS):
        def __init__(self, params, **kwargs):
            made.append(kwargs)
            super().__init__(params, **kwargs)

    monkeypatch.setattr(stages_module, "StrongWolfeLBFGS", Recording)
    cfg = compose(
        [
            *tiny,
            "rounds=0",
            "optimizer.lbfgs_steps=8",
            "optimizer.max_ls=50",
            "optimizer.lbfgs_impl=torch",
        ]
    )
    Trainer(build(cfg), progress=False).run()
    assert [(k["max_iter"], k["max_eval"], k["max_ls"]) for k in made] == [(8, 10, 50)]


def test_reference_budget_runs_deepxdes_line_search_limit(compose):
    assert compose(["budget=reference"]).optimizer.max_ls == 50
    assert compose([]).optimizer.max_ls is None  # torch's own limit
    with pytest.raises(ValueError, match="optimizer.max_ls=0"):
        Schedule(max_ls=0)


def test_torchs_l_bfgs_is_the_default_and_sync_free_names_its_replacement(compose):
    assert Schedule().lbfgs_impl == compose([]).optimizer.lbfgs_impl == "torch"
    assert compose(["budget=reference"]).optimizer.lbfgs_impl == "torch"
    assert compose(["optimizer.lbfgs_impl=device"]).optimizer.lbfgs_impl == "device"
    with pytest.raises(ValueError, match="sync_free.*replaced by device"):
        Schedule(lbfgs_impl="sync_free")
