"""The sync-free L-BFGS: its direction equals the two-loop recursion's, and it minimises; the
batched one follows separate runs member by member;
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
    BatchedSyncFreeLBFGS,
    StrongWolfeLBFGS,
    SyncFreeLBFGS,
    flat_grad_stacked,
    load,
    load_stacked,
)
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


@pytest.mark.parametrize("n_pairs", [1, 3, 5, 8, 13])
def test_compact_direction_equals_two_loop(n_pairs):
    """With fewer pairs than slots, a full ring and a ring that has wrapped around."""
    gen = torch.Generator().manual_seed(n_pairs)
    n, m = 12, 5
    a = torch.randn(n, n, generator=gen, dtype=F64)
    hessian = a @ a.T + n * torch.eye(n, dtype=F64)  # s.y > 0 for every pair
    param = torch.zeros(n, dtype=F64, requires_grad=True)
    opt = SyncFreeLBFGS([param], evaluate=lambda: None, history_size=m)
    pairs = []
    for _ in range(n_pairs):
        s = torch.randn(n, generator=gen, dtype=F64)
        y = hessian @ s
        opt._push(torch.tensor(True), s, y)
        pairs.append((s, y))
    g = torch.randn(n, generator=gen, dtype=F64)
    torch.testing.assert_close(opt.direction(g), two_loop(g, pairs[-m:]), rtol=1e-10, atol=1e-12)


def test_rejected_pushes_change_nothing():
    param = torch.zeros(4, dtype=F64, requires_grad=True)
    opt = SyncFreeLBFGS([param], evaluate=lambda: None, history_size=3)
    s, y = torch.ones(4, dtype=F64), 2 * torch.ones(4, dtype=F64)
    opt._push(torch.tensor(True), s, y)
    before = [t.clone() for t in (opt.S, opt.Y, opt.StY, opt.YtY, opt.count)]
    opt._push(torch.tensor(False), 3 * s, y)
    for old, new in zip(before, (opt.S, opt.Y, opt.StY, opt.YtY, opt.count)):
        assert torch.equal(old, new)


def _rosenbrock_run(optimizer: str, iters: int) -> tuple[float, int]:
    x = torch.tensor([-1.2, 1.0] * 5, dtype=F64, requires_grad=True)
    evals = 0

    def f() -> torch.Tensor:
        nonlocal evals
        evals += 1
        return (100 * (x[1::2] - x[::2] ** 2) ** 2 + (1 - x[::2]) ** 2).sum()

    if optimizer == "torch":
        opt = torch.optim.LBFGS(
            [x],
            max_iter=iters,
            history_size=10,
            line_search_fn="strong_wolfe",
            tolerance_change=0.0,
        )

        def closure():
            opt.zero_grad()
            loss = f()
            loss.backward()
            return loss

        opt.step(closure)
        return f().item(), evals

    def evaluate() -> torch.Tensor:
        x.grad = None
        loss = f()
        loss.backward()
        return loss.detach().reshape(1)

    opt = SyncFreeLBFGS([x], evaluate, history_size=10, max_iter=iters)
    opt.start()
    for _ in range(3 * iters):
        opt.step()
    opt.finish()
    return f().item(), evals


def test_minimises_rosenbrock_like_torch_lbfgs():
    ours, _ = _rosenbrock_run("sync_free", 200)
    reference, _ = _rosenbrock_run("torch", 200)
    assert reference < 1e-12
    assert ours < 1e-12


def test_accepted_iterations_stop_at_the_budget_and_the_point_is_the_last_accepted():
    x = torch.tensor([3.0, -2.0], dtype=F64, requires_grad=True)
    scale = torch.tensor([1.0, 50.0], dtype=F64)

    def evaluate() -> torch.Tensor:
        x.grad = None
        loss = (scale * x**2).sum()
        loss.backward()
        return loss.detach().reshape(1)

    opt = SyncFreeLBFGS([x], evaluate, history_size=5, max_iter=3)
    opt.start()
    accepted = [bool(opt.step()[1]) for _ in range(30)]
    assert sum(accepted) == 3
    opt.finish()
    # the parameters hold the accepted point, whose loss is the one reported
    assert torch.allclose((scale * x.detach() ** 2).sum(), opt.f)
    assert torch.equal(x.detach(), opt.x)


def test_load_keeps_parameter_storage():
    p = torch.nn.Parameter(torch.zeros(2, 3))
    ptr = p.data_ptr()
    load([p], torch.arange(6.0))
    assert p.data_ptr() == ptr and p[1, 2] == 5.0


@pytest.mark.parametrize("pde", ["burgers", "reaction_diffusion"])
def test_sync_free_stage_records_accepted_iterations_and_lowers_the_loss(
    tmp_path, pde, tiny, compose
):
    cfg = compose(
        [
            *tiny,
            f"pde={pde}",
            "optimizer.lbfgs_impl=sync_free",
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
        # accepted iterations only: the loss never rises, and ends below Adam's last
        assert (lbfgs["loss"].diff().dropna() <= 0).all()
        assert lbfgs["loss"].iloc[-1] < adam["loss"].iloc[-1]


def test_captured_step_runs_eagerly_off_cuda():
    from pinn_exp.training.cuda_graphs import CapturedStep

    calls = []
    step = CapturedStep(lambda: calls.append(1) or len(calls), torch.device("cpu"), warmup=1)
    assert [step() for _ in range(4)] == [1, 2, 3, 4] and not step.captured


def test_reset_history_is_ignored_until_overwritten():
    gen = torch.Generator().manual_seed(7)
    n, m = 10, 4
    a = torch.randn(n, n, generator=gen, dtype=F64)
    hessian = a @ a.T + n * torch.eye(n, dtype=F64)
    param = torch.zeros(n, dtype=F64, requires_grad=True)
    opt = SyncFreeLBFGS([param], evaluate=lambda: None, history_size=m)

    def pair():
        s = torch.randn(n, generator=gen, dtype=F64)
        return s, hessian @ s

    for _ in range(6):
        opt._push(torch.tensor(True), *pair())
    opt._reset(torch.tensor(True))
    fresh = [pair(), pair()]
    for s, y in fresh:
        opt._push(torch.tensor(True), s, y)
    g = torch.randn(n, generator=gen, dtype=F64)
    torch.testing.assert_close(opt.direction(g), two_loop(g, fresh), rtol=1e-10, atol=1e-12)


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


def test_an_iteration_reads_nothing_on_the_host():
    """The update after each evaluation traces as one graph (``fullgraph=True`` fails at any
    ``.item()``, ``bool()`` or Python number taken from a tensor), so it needs no host sync
    and a CUDA graph can capture it."""
    x = torch.tensor([3.0, -2.0, 1.0], requires_grad=True)

    def evaluate() -> torch.Tensor:
        x.grad = None
        loss = (torch.tensor([1.0, 30.0, 5.0]) * x**2).sum()
        loss.backward()
        return loss.detach().reshape(1)

    opt = SyncFreeLBFGS([x], evaluate, history_size=4, max_iter=100)
    opt._update = torch.compile(opt._update_eager, fullgraph=True, backend="eager")
    opt.start()
    for _ in range(12):
        opt.step()
    assert opt.f < 1e-6


def test_the_compiled_update_follows_the_eager_one():
    """``compile=True`` (torch.compile's default backend, as ``optimizer.compile=true`` runs
    it) takes the same steps as the eager update, to round-off in float64, where torch.compile
    drops in-place writes to 0-d float64 tensors reached through an attribute (the step size
    and the loss then stayed at their first values). Its integer state (accepted iterations,
    pairs pushed) follows too, up to the iteration budget and past it."""
    dtype = F64

    def run(compile: bool) -> list[tuple[float, bool, float, int, int]]:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(64, 2, generator=generator, dtype=dtype)
        target = torch.sin(x.sum(1, keepdim=True))
        w1 = torch.randn(2, 16, generator=generator, dtype=dtype).requires_grad_(True)
        w2 = (torch.randn(16, 1, generator=generator, dtype=dtype) / 4).requires_grad_(True)

        def evaluate() -> torch.Tensor:
            w1.grad = w2.grad = None
            loss = (torch.tanh(x @ w1) @ w2 - target).square().mean()
            loss.backward()
            return loss.detach().reshape(1)

        opt = SyncFreeLBFGS([w1, w2], evaluate, history_size=10, max_iter=24, compile=compile)
        opt.start()
        out = []
        for _ in range(30):
            terms, accepted = opt.step()
            out.append(
                (float(terms[0]), bool(accepted), float(opt.t), int(opt.accepted), int(opt.count))
            )
        return out

    eager, compiled = run(False), run(True)
    assert any(not row[1] for row in eager[:20])  # a rejected trial is in the test
    assert eager[-1][3] == 24 and not eager[-1][1]  # the budget was spent before the end
    for (f, ok, t, *counts), (f_c, ok_c, t_c, *counts_c) in zip(eager, compiled):
        assert ok == ok_c and counts == counts_c
        assert f_c == pytest.approx(f, rel=1e-10) and t_c == pytest.approx(t, rel=1e-10)


# --------------------------------------------------------------------------------------------
# the batched sync-free L-BFGS: S problems at once, each as its own SyncFreeLBFGS
# --------------------------------------------------------------------------------------------

#: member 0: a small tanh network fitted to a few points, still progressing after 50
#: iterations, frozen at iteration FREEZE as the ensemble freezes a diverged member; member 1:
#: a well-conditioned quadratic, which meets the gradient tolerance early; member 2: the
#: chained Rosenbrock function with a budget of 12 accepted iterations, whose trial at
#: evaluation POISON is not a number. Each member's six numbers are a [2, 2] and a [2]
#: parameter. (No member comes near a minimum other than 0 at 0, where the losses would be
#: round-off, not comparable to 1e-10; the Rosenbrock valley amplifies round-off by about 2
#: per iteration, so it stops early.)
STARTS = [
    [0.05, -0.03, 0.02, 0.08, 0.01, -0.01],
    [2.0, -1.5, 1.0, 0.5, -1.0, 1.0],
    [-1.5, 2.0, -1.2, 1.0, 0.5, -0.5],
]
MAX_ITER, FREEZE, POISON, ITERATIONS = [100, 100, 12], 45, 5, 55
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


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _separate_runs(poisoned, **kwargs) -> tuple[list[SyncFreeLBFGS], list[tuple]]:
    """One SyncFreeLBFGS per member, on its own parameters; member k's trial at its
    evaluation c is not a number where ``poisoned(k, c)``."""
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

        singles.append(SyncFreeLBFGS([a_k, b_k], evaluate, max_iter=MAX_ITER[k], **kwargs))
        params.append((a_k, b_k))
    return singles, params


def _members_together(poisoned, trials: list | None = None, **kwargs):
    """The three members in one BatchedSyncFreeLBFGS over stacked parameters (a, b); each
    evaluation's losses are appended to ``trials``. Returns (optimizer, a, b)."""
    a, b = (torch.stack(list(ts)).requires_grad_(True) for ts in zip(*map(_start, range(3))))
    calls = [0]

    def evaluate_all() -> torch.Tensor:
        a.grad = b.grad = None
        calls[0] += 1
        terms = torch.stack([_problem(k, a[k], b[k], poisoned(k, calls[0])) for k in range(3)])
        terms[:, 0].sum().backward()
        if trials is not None:
            trials.append(terms[:, 0].detach())
        return terms.detach()

    return BatchedSyncFreeLBFGS([a, b], evaluate_all, max_iter=MAX_ITER, **kwargs), a, b


def test_batched_follows_separate_runs_member_by_member():
    kwargs = {"history_size": 4, "tolerance_grad": 1e-9}

    def poisoned(k: int, call: int) -> bool:
        return k == 2 and call == POISON

    singles, single_params = _separate_runs(poisoned, **kwargs)
    trials: list[torch.Tensor] = []
    batched, a, b = _members_together(poisoned, trials, **kwargs)
    start = batched.start()
    for k, single in enumerate(singles):
        assert torch.equal(start[k], single.start())
    stopped: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # member -> where it stopped
    flags = []
    for iteration in range(ITERATIONS):
        if iteration == FREEZE:
            batched.freeze(0)
            singles[0].limit.fill_(0)
        terms, ok = batched.step()
        flags.append(ok.tolist())
        for k, single in enumerate(singles):
            terms_k, ok_k = single.step()
            assert bool(ok[k]) == bool(ok_k), (iteration, k)
            assert _rel(terms[k], terms_k) <= 1e-10 and _rel(batched.x[k], single.x) <= 1e-10
            if k in stopped:  # a member that stopped does not move
                assert torch.equal(a[k], stopped[k][0]) and torch.equal(b[k], stopped[k][1])
            elif single.accepted >= single.limit or single.converged():
                stopped[k] = (a[k].detach().clone(), b[k].detach().clone())
    accepted, converged = batched.accepted.tolist(), batched.converged().tolist()
    assert accepted == [int(s.accepted) for s in singles]
    assert converged == [bool(s.converged()) for s in singles] == [False, True, False]
    assert 40 < accepted[0] <= FREEZE and accepted[1] < 30 and accepted[2] == 12
    assert sorted(stopped) == [0, 1, 2]
    # the poisoned trial (evaluation POISON: iteration POISON - 2) is rejected, alone
    trial = torch.stack(trials)[POISON - 1]
    assert trial[2].isnan() and trial[:2].isfinite().all()
    assert flags[POISON - 2] == [True, True, False]
    batched.finish()
    for k, single in enumerate(singles):
        single.finish()
        for p, q in zip((a[k], b[k]), single_params[k]):
            assert _rel(p.detach(), q.detach()) <= 1e-10


def test_batched_restarts_a_stalled_member_as_its_separate_run_does():
    """Member 0's trials are not numbers for 47 evaluations in a row: its step shrinks to
    nothing, it starts afresh from steepest descent with its history dropped (the reset),
    exactly when and as its separate run does, while the others go on undisturbed."""
    kwargs = {"history_size": 4, "tolerance_grad": 1e-9}

    def poisoned(k: int, call: int) -> bool:
        return k == 0 and 4 <= call <= 50

    singles, _ = _separate_runs(poisoned, **kwargs)
    batched, _, _ = _members_together(poisoned, **kwargs)
    resets, single_resets = [], []
    reset, single_reset = batched._reset, singles[0]._reset
    batched._reset = lambda fresh: (resets.append(fresh.clone()), reset(fresh))[1]
    singles[0]._reset = lambda fresh: (single_resets.append(bool(fresh)), single_reset(fresh))[1]
    batched.start()
    for single in singles:
        single.start()
    for iteration in range(80):
        _, ok = batched.step()
        for k, single in enumerate(singles):
            _, ok_k = single.step()
            assert bool(ok[k]) == bool(ok_k), (iteration, k)
            assert _rel(batched.x[k], single.x) <= 1e-8, (iteration, k)
    restarted = torch.stack(resets)
    assert restarted[:, 0].tolist() == single_resets and sum(single_resets) >= 1
    assert not restarted[:, 1:].any()  # the others never restarted
    assert batched.accepted.tolist() == [int(s.accepted) for s in singles]


def test_batched_direction_equals_two_loop_per_member():
    """Members with different numbers of pairs: none, fewer than the slots, wrapped around."""
    gen = torch.Generator().manual_seed(3)
    n, m, pairs_per_member = 9, 4, [0, 2, 7]
    a = torch.randn(3, n, n, generator=gen, dtype=F64)
    hessian = a @ a.mT + n * torch.eye(n, dtype=F64)
    param = torch.zeros(3, n, dtype=F64, requires_grad=True)
    opt = BatchedSyncFreeLBFGS([param], evaluate=lambda: None, history_size=m)
    pairs: list[list] = [[], [], []]
    for i in range(max(pairs_per_member)):
        push = torch.tensor([i < p for p in pairs_per_member])
        s = torch.randn(3, n, generator=gen, dtype=F64)
        y = (hessian @ s.unsqueeze(2)).squeeze(2)
        opt._push(push, s, y)
        for k in range(3):
            if push[k]:
                pairs[k].append((s[k], y[k]))
    assert opt.count.tolist() == pairs_per_member
    g = torch.randn(3, n, generator=gen, dtype=F64)
    d = opt.direction(g)
    torch.testing.assert_close(d[0], -g[0], rtol=0, atol=0)
    for k in (1, 2):
        torch.testing.assert_close(d[k], two_loop(g[k], pairs[k][-m:]), rtol=1e-10, atol=1e-12)


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


def test_a_batched_iteration_reads_nothing_on_the_host():
    """As :func:`test_an_iteration_reads_nothing_on_the_host`, for the batched update."""
    x = torch.tensor([[3.0, -2.0, 1.0], [1.0, 1.0, -4.0]], requires_grad=True)
    scale = torch.tensor([1.0, 30.0, 5.0])

    def evaluate() -> torch.Tensor:
        x.grad = None
        loss = (scale * x**2).sum(1)
        loss.sum().backward()
        return loss.detach().unsqueeze(1)

    opt = BatchedSyncFreeLBFGS([x], evaluate, history_size=4, max_iter=100)
    opt._update = torch.compile(opt._update_eager, fullgraph=True, backend="eager")
    opt.start()
    for _ in range(20):
        opt.step()
    assert (opt.f < 1e-6).all()


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
