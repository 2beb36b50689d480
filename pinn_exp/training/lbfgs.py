"""An L-BFGS whose iterations never read a value on the host.

``torch.optim.LBFGS`` turns tensors into Python numbers many times per iteration (the step
sizes of the two-loop recursion, every decision of the strong-Wolfe line search, the
convergence tests), and each such read waits for the GPU to drain its queue. Here the whole
state is tensors on the parameters' device and every decision is a ``torch.where``:

* the search direction comes from the compact representation of the L-BFGS matrix (Byrd,
  Nocedal and Schnabel 1994, eq. 2.6): a handful of matrix products and two m x m triangular
  solves per iteration, whatever the history size m, instead of the 4m small operations of
  the two-loop recursion;
* the line search is backtracking on the Armijo condition with one trial per iteration: a
  trial that fails is rejected (the parameters stay at the last accepted point) and the next
  iteration tries a shorter step (the minimiser of the quadratic through f(0), f'(0) and f(t),
  kept within [0.1 t, 0.5 t]); an accepted trial updates the history (when s.y > 0) and the
  next iteration starts at step ``lr``;
* a budget of accepted iterations and a gradient tolerance switch further iterations off on
  the device; the caller reads the state only every few iterations to stop early.

So one iteration is one loss-and-gradient evaluation and a fixed sequence of kernels, which
a CUDA graph can capture. :func:`load` and :func:`flat_grad` move between the parameters and
one flat vector.

:class:`BatchedSyncFreeLBFGS` is the same algorithm for S independent problems at once (the
members of an ensemble, parameters stacked ``[S, ...]``): every piece of state has a leading
member dimension, every decision is a per-member mask, and the matrix products are batched,
so an iteration's update is the same fixed sequence of kernels whatever S, instead of S
updates one after the other. :func:`load_stacked` and :func:`flat_grad_stacked` move between
the stacked parameters and one flat vector per member, ``[S, n]``.

:class:`StrongWolfeLBFGS` is torch's L-BFGS (``optimizer.lbfgs_impl=torch``) with the line
search's evaluation limit as an argument.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.optim.lbfgs as torch_lbfgs

Evaluate = Callable[[], torch.Tensor]


def flat_grad(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The parameters' gradients as one flat vector (zeros where a gradient is None)."""
    return torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
    )


@torch.no_grad()
def load(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Copies a flat vector into the parameters (in place: their storage stays the same)."""
    views = [v.view_as(p) for v, p in zip(flat.split([p.numel() for p in params]), params)]
    torch._foreach_copy_(list(params), views)


def flat_stacked(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stacked parameters (leading member dimension S) as one flat vector per member, [S, n]."""
    return torch.cat([p.detach().reshape(len(p), -1) for p in params], dim=1)


def flat_grad_stacked(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The stacked parameters' gradients as one flat vector per member, [S, n] (zeros where a
    gradient is None)."""
    return torch.cat(
        [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(len(p), -1)
            for p in params
        ],
        dim=1,
    )


@torch.no_grad()
def load_stacked(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Copies one flat vector per member, [S, n], into the stacked parameters (in place)."""
    columns = flat.split([p[0].numel() for p in params], dim=1)
    torch._foreach_copy_(list(params), [c.reshape(p.shape) for c, p in zip(columns, params)])


def _shorter_step(f: torch.Tensor, f0: torch.Tensor, gtd: torch.Tensor, t: torch.Tensor):
    """The step after a rejected trial at step ``t`` (element-wise, so for one problem or S):
    the minimiser of the quadratic through f(0) = ``f0``, f'(0) = ``gtd`` and f(t) = ``f``,
    kept within [0.1 t, 0.5 t]; 0.5 t where that is not a number."""
    curvature = 2 * (f - f0 - gtd * t)
    shorter = -gtd * t * t / curvature
    shorter = torch.minimum(torch.maximum(shorter, 0.1 * t), 0.5 * t)
    return torch.where(torch.isfinite(f) & ~torch.isnan(shorter), shorter, 0.5 * t)


@contextmanager
def _line_search_limit(max_ls: int) -> Iterator[None]:
    """torch's strong-Wolfe line search with ``max_ls`` evaluations at most. ``LBFGS.step``
    calls the module's ``_strong_wolfe`` with the evaluations left in the stage's budget as
    its limit (where torch passes none, the function's own default applies), so the smaller
    of the two applies (docs/results.md, "torch behaviour the code relies on")."""
    original = torch_lbfgs._strong_wolfe

    def limited(*args, **kwargs):
        left = kwargs.pop("max_ls", None)
        return original(*args, max_ls=max_ls if left is None else min(max_ls, left), **kwargs)

    torch_lbfgs._strong_wolfe = limited
    try:
        yield
    finally:
        torch_lbfgs._strong_wolfe = original


class StrongWolfeLBFGS(torch.optim.LBFGS):
    """``torch.optim.LBFGS`` with ``line_search_fn="strong_wolfe"`` whose line search evaluates
    the loss at most ``max_ls`` times per iteration. torch's own limit is the evaluations left
    in the stage's budget (``max_eval``); scipy's L-BFGS-B, which DeepXDE runs,
    takes ``maxls``, 50 in DeepXDE.

    Args:
        params: the parameters to optimise.
        max_ls: the line search's evaluations per iteration at most; None: torch's limit.
        **kwargs: ``torch.optim.LBFGS``'s arguments but ``line_search_fn``.
    """

    def __init__(self, params, max_ls: int | None = None, **kwargs):
        super().__init__(params, line_search_fn="strong_wolfe", **kwargs)
        self.max_ls = None if max_ls is None else int(max_ls)

    def step(self, closure):  # type: ignore[override]
        if self.max_ls is None:  # torch's own path, untouched
            return super().step(closure)
        with _line_search_limit(self.max_ls):
            return super().step(closure)


class SyncFreeLBFGS:
    """L-BFGS with a history of ``history_size`` pairs, one evaluation per iteration.

    Args:
        params: the parameters to optimise.
        evaluate: computes the loss terms at the current parameters and their gradient
            (``backward`` on the first term); returns the terms as one vector, loss first.
        lr: the step each new direction starts from (1 for L-BFGS).
        history_size: the number m of (s, y) pairs kept.
        max_iter: accepted iterations after which further iterations do nothing.
        tolerance_grad: iterations stop doing anything once max |gradient| is at most this.
        c1: the Armijo constant.
        compile: compile the update that follows each evaluation (some 250 small operations)
            with ``torch.compile``; on a CPU this cuts its dispatch cost (docs/results.md).
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        evaluate: Evaluate,
        lr: float = 1.0,
        history_size: int = 100,
        max_iter: int = 1000,
        tolerance_grad: float = 1e-9,
        c1: float = 1e-4,
        compile: bool = False,
    ):
        self.params = list(params)
        self.evaluate = evaluate
        self.lr, self.c1, self.tolerance_grad = float(lr), float(c1), float(tolerance_grad)
        first = self.params[0]
        self.device, self.dtype = first.device, first.dtype
        n, m = sum(p.numel() for p in self.params), int(history_size)
        self.m = m
        zeros = torch.zeros
        self.S = zeros(m, n, dtype=self.dtype, device=self.device)
        self.Y = zeros(m, n, dtype=self.dtype, device=self.device)
        # s_i . y_j and y_i . y_j in slot order, in float64 (the small algebra is all there is)
        self.StY = zeros(m, m, dtype=torch.float64, device=self.device)
        self.YtY = zeros(m, m, dtype=torch.float64, device=self.device)
        self.count = zeros((), dtype=torch.long, device=self.device)  # pairs pushed so far
        self.accepted = zeros((), dtype=torch.long, device=self.device)
        self.limit = torch.tensor(int(max_iter), device=self.device)
        self.arange = torch.arange(m, device=self.device)
        self.x = self.f = self.g = self.terms = self.d = self.gtd = self.t = None
        self._update = (
            torch.compile(self._update_eager, fullgraph=True) if compile else self._update_eager
        )

    # -------------------------------------------------------------------------------- state
    @torch.no_grad()
    def _steepest(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Direction -g, its slope, and torch's first step min(1, 1/|g|_1) * lr."""
        t = torch.clamp(1.0 / g.abs().sum(), max=1.0) * self.lr
        return -g, -g.dot(g), t

    def start(self) -> torch.Tensor:
        """Evaluates the starting point; returns its loss terms."""
        with torch.no_grad():
            self.x = torch.cat([p.detach().reshape(-1) for p in self.params])
        terms = self.evaluate().detach()
        with torch.no_grad():
            self.f, self.g, self.terms = terms[0].clone(), self.flat_grad(), terms.clone()
            self.d, self.gtd, self.t = self._steepest(self.g)
        return terms

    def converged(self) -> torch.Tensor:
        """True (a tensor) once the gradient tolerance is met."""
        return self.g.abs().max() <= self.tolerance_grad

    def finish(self) -> None:
        """Leaves the parameters at the last accepted point."""
        load(self.params, self.x)

    # ---------------------------------------------------------------------------- direction
    @torch.no_grad()
    def direction(self, g: torch.Tensor) -> torch.Tensor:
        """-H g with the compact form of the L-BFGS inverse Hessian H (gamma I plus rank 2m)."""
        m, count = self.m, self.count
        order = (count + self.arange) % m  # slots oldest to newest; empty slots come first
        valid = (self.arange < count) | (count >= m)
        newest = ((count - 1) % m).view(1)  # a 1-element index: a 0-d one would be read
        sy = torch.diagonal(self.StY).index_select(0, newest)[0]
        yy = torch.diagonal(self.YtY).index_select(0, newest)[0]
        gamma = torch.where(count > 0, sy / torch.where(yy > 0, yy, 1.0), 1.0)
        # rows of slots not (or no longer) in the history hold stale pairs: masked out
        valid_o = valid[order]
        pair = valid_o.unsqueeze(0) & valid_o.unsqueeze(1)
        sty = torch.where(pair, self.StY[order][:, order], 0.0)
        yty = torch.where(pair, self.YtY[order][:, order], 0.0)
        diag = torch.diagonal(sty)
        r = torch.triu(sty, diagonal=1) + torch.diag(torch.where(valid_o, diag, 1.0))
        p1 = torch.where(valid_o, (self.S @ g).double()[order], 0.0).unsqueeze(1)
        p2 = gamma * torch.where(valid_o, (self.Y @ g).double()[order], 0.0).unsqueeze(1)
        w = torch.linalg.solve_triangular(r, p1, upper=True)
        rhs = diag.unsqueeze(1) * w + gamma * (yty @ w) - p2
        top = torch.linalg.solve_triangular(r.T, rhs, upper=False)
        back = (self.arange - count) % m  # slot i sits at position back[i] of `order`
        coef_s = torch.where(valid, top[back, 0], 0.0).to(self.dtype)
        coef_y = torch.where(valid, -gamma * w[back, 0], 0.0).to(self.dtype)
        hg = gamma.to(self.dtype) * g + coef_s @ self.S + coef_y @ self.Y
        return -hg

    @torch.no_grad()
    def _push(self, push: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> None:
        slot = (self.count % self.m).view(1)
        self.S.index_copy_(0, slot, torch.where(push, s, self.S.index_select(0, slot)[0])[None])
        self.Y.index_copy_(0, slot, torch.where(push, y, self.Y.index_select(0, slot)[0])[None])
        row = (self.Y @ s).double()  # s_new . y_j
        col = (self.S @ y).double()  # s_i . y_new
        yyv = (self.Y @ y).double()
        for mat, r, c in ((self.StY, row, col), (self.YtY, yyv, yyv)):
            old_r, old_c = mat.index_select(0, slot)[0], mat.index_select(1, slot)[:, 0]
            mat.index_copy_(0, slot, torch.where(push, r, old_r)[None])
            mat.index_copy_(1, slot, torch.where(push, c, old_c)[:, None])
        self.count += push.long()

    @torch.no_grad()
    def _reset(self, reset: torch.Tensor) -> None:
        """Drops the history where ``reset`` (its rows stay, masked out until overwritten)."""
        self.count.mul_((~reset).long())

    # ---------------------------------------------------------------------------- iteration
    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One trial and its consequences, without reading anything on the host.

        Returns:
            (the loss terms at the current accepted point, whether this trial was accepted),
            both tensors on the device.
        """
        x_trial, active = self.propose()
        terms = self.evaluate().detach()
        return self.terms, self.accept(x_trial, active, terms)

    @torch.no_grad()
    def propose(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Loads the trial point into the parameters; returns it and whether the optimizer
        is still active (first half of :meth:`step`)."""
        active = (self.accepted < self.limit) & ~self.converged()
        x_trial = self.x + self.t * self.d
        load(self.params, x_trial)
        return x_trial, active

    @torch.no_grad()
    def accept(self, x_trial: torch.Tensor, active: torch.Tensor, terms: torch.Tensor):
        """Judges the evaluated trial (second half of :meth:`step`); returns whether it was
        accepted."""
        ok, f, gtd, t = self._update(
            x_trial, active, terms, self.flat_grad(), self.f, self.gtd, self.t
        )
        # the 0-d state is written here, outside the compiled update: torch.compile drops
        # in-place writes to 0-d float64 tensors that a compiled function reaches through an
        # attribute (docs/results.md, "torch behaviour the code relies on"); in place, so a
        # CUDA graph can capture the step
        self.f.copy_(f)
        self.gtd.copy_(gtd)
        self.t.copy_(t)
        return ok

    def flat_grad(self) -> torch.Tensor:
        """The gradient of the last evaluation as one flat vector."""
        return flat_grad(self.params)

    def _update_eager(
        self,
        x_trial: torch.Tensor,
        active: torch.Tensor,
        terms: torch.Tensor,
        g: torch.Tensor,
        f0: torch.Tensor,
        gtd: torch.Tensor,
        t: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Accepts or rejects the trial, updates the history and the direction; returns
        whether it was accepted and the new loss, slope and step (``f0``, ``gtd``, ``t``: the
        current ones), which :meth:`accept` stores."""
        f = terms[0]
        armijo = f <= f0 + self.c1 * t * gtd
        ok = active & torch.isfinite(f) & torch.isfinite(g).all() & armijo
        s, y = x_trial - self.x, g - self.g
        self._push(ok & (s.dot(y) > 1e-10), s, y)
        # the minimiser of the quadratic through f(0), f'(0) and f(t), within [0.1t, 0.5t]
        shorter = _shorter_step(f, f0, gtd, t)
        # in place: the state keeps its storage, so a CUDA graph can capture this step
        self.x.copy_(torch.where(ok, x_trial, self.x))
        new_f = torch.where(ok, f, f0)
        self.g.copy_(torch.where(ok, g, self.g))
        self.terms.copy_(torch.where(ok, terms, self.terms))
        d = self.direction(self.g)
        gd = self.g.dot(d)
        steep_d, steep_gtd, steep_t = self._steepest(self.g)
        # not a descent direction (or not finite): steepest descent, history dropped
        bad = ~(gd < 0)
        # the step shrank to nothing along this direction: start afresh from -g
        stalled = active & ~ok & (shorter * self.d.abs().max() < 1e-12)
        fresh = (ok & bad) | stalled
        self._reset(fresh)
        self.d.copy_(torch.where(fresh, steep_d, torch.where(ok, d, self.d)))
        new_gtd = torch.where(fresh, steep_gtd, torch.where(ok, gd, gtd))
        new_t = torch.where(ok, torch.full_like(t, self.lr), torch.where(active, shorter, t))
        self.accepted += ok.long()
        return ok, new_f, new_gtd, torch.where(fresh, steep_t, new_t)


# The batched products are written as a row times a transposed matrix: torch's CPU bmm takes
# a slow path (some 5x) for a contiguous [S, n, 1] right operand; on a GPU either is one call.


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of two [S, n] tensors, [S] (one batched matrix product)."""
    return (a.unsqueeze(1) @ b.unsqueeze(1).mT).view(-1)


def _matvec(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """[S, m, n] times [S, n]: [S, m] (one batched matrix product)."""
    return (v.unsqueeze(1) @ a.mT).squeeze(1)


class BatchedSyncFreeLBFGS:
    """:class:`SyncFreeLBFGS` for S independent problems at once, one evaluation per iteration
    for all of them.

    The parameters are stacked, ``[S, ...]`` (member k's are ``p[k]``), and ``evaluate``
    computes every member's loss terms, ``[S, T]`` (loss first), and sets the stacked
    gradients (member k's gradient is ``p.grad[k]``: the gradient of the sum of the members'
    losses when their parameters are disjoint). Every member follows exactly the algorithm of
    :class:`SyncFreeLBFGS` (its own history, step, budget and convergence; a decision is a
    per-member mask); the results equal S separate runs to round-off (batched matrix products
    instead of matrix-vector ones). A member that is not active (budget spent, converged, or
    frozen with :meth:`freeze`) is evaluated at its accepted point, so its parameters do not
    move.

    Args:
        params: the stacked parameters, each with leading dimension S.
        evaluate: computes the loss terms [S, T] and the stacked gradients.
        lr, history_size, tolerance_grad, c1, compile: as :class:`SyncFreeLBFGS`.
        max_iter: accepted iterations per member after which its iterations do nothing; an
            int or one per member.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        evaluate: Evaluate,
        lr: float = 1.0,
        history_size: int = 100,
        max_iter: int | Sequence[int] | torch.Tensor = 1000,
        tolerance_grad: float = 1e-9,
        c1: float = 1e-4,
        compile: bool = False,
    ):
        self.params = list(params)
        self.evaluate = evaluate
        self.lr, self.c1, self.tolerance_grad = float(lr), float(c1), float(tolerance_grad)
        first = self.params[0]
        self.device, self.dtype = first.device, first.dtype
        size, m = len(first), int(history_size)
        n = sum(p[0].numel() for p in self.params)
        self.size, self.m = size, m
        zeros = torch.zeros
        self.S = zeros(size, m, n, dtype=self.dtype, device=self.device)
        self.Y = zeros(size, m, n, dtype=self.dtype, device=self.device)
        self.StY = zeros(size, m, m, dtype=torch.float64, device=self.device)
        self.YtY = zeros(size, m, m, dtype=torch.float64, device=self.device)
        self.count = zeros(size, dtype=torch.long, device=self.device)
        self.accepted = zeros(size, dtype=torch.long, device=self.device)
        limit = torch.as_tensor(max_iter, dtype=torch.long, device=self.device)
        self.limit = limit.expand(size).clone()
        self.arange = torch.arange(m, device=self.device)
        self.x = self.f = self.g = self.terms = self.d = self.gtd = self.t = None
        self._update = (
            torch.compile(self._update_eager, fullgraph=True) if compile else self._update_eager
        )

    # -------------------------------------------------------------------------------- state
    @torch.no_grad()
    def _steepest(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per member: direction -g, its slope, and the first step min(1, 1/|g|_1) * lr."""
        t = torch.clamp(1.0 / g.abs().sum(1), max=1.0) * self.lr
        return -g, -_dot(g, g), t

    def start(self) -> torch.Tensor:
        """Evaluates the starting points; returns their loss terms, [S, T]."""
        with torch.no_grad():
            self.x = flat_stacked(self.params)
        terms = self.evaluate().detach()
        with torch.no_grad():
            self.f, self.g, self.terms = terms[:, 0].clone(), self.flat_grad(), terms.clone()
            self.d, self.gtd, self.t = self._steepest(self.g)
        return terms

    def converged(self) -> torch.Tensor:
        """Per member (a [S] bool tensor): the gradient tolerance is met."""
        return self.g.abs().amax(1) <= self.tolerance_grad

    def freeze(self, member: int) -> None:
        """Member ``member`` does nothing from now on (its budget becomes 0; no host read)."""
        self.limit[member] = 0

    def finish(self) -> None:
        """Leaves every member's parameters at its last accepted point."""
        load_stacked(self.params, self.x)

    def flat_grad(self) -> torch.Tensor:
        """The gradients of the last evaluation, one flat vector per member, [S, n]."""
        return flat_grad_stacked(self.params)

    # ---------------------------------------------------------------------------- direction
    @torch.no_grad()
    def direction(self, g: torch.Tensor) -> torch.Tensor:
        """-H g per member, [S, n] (:meth:`SyncFreeLBFGS.direction`, batched)."""
        size, m, dtype = self.size, self.m, self.dtype
        count = self.count.unsqueeze(1)  # [S, 1]
        order = (count + self.arange) % m  # [S, m]: slots oldest to newest, empty ones first
        valid = (self.arange < count) | (count >= m)
        newest = (count - 1) % m
        sy = torch.diagonal(self.StY, dim1=1, dim2=2).gather(1, newest)[:, 0]
        yy = torch.diagonal(self.YtY, dim1=1, dim2=2).gather(1, newest)[:, 0]
        gamma = torch.where(self.count > 0, sy / torch.where(yy > 0, yy, 1.0), 1.0)
        gamma3 = gamma.view(size, 1, 1)
        valid_o = valid.gather(1, order)
        pair = valid_o.unsqueeze(1) & valid_o.unsqueeze(2)
        rows = order.unsqueeze(2).expand(size, m, m)
        cols = order.unsqueeze(1).expand(size, m, m)
        sty = torch.where(pair, self.StY.gather(1, rows).gather(2, cols), 0.0)
        yty = torch.where(pair, self.YtY.gather(1, rows).gather(2, cols), 0.0)
        diag = torch.diagonal(sty, dim1=1, dim2=2)
        r = torch.triu(sty, diagonal=1) + torch.diag_embed(torch.where(valid_o, diag, 1.0))
        p1 = torch.where(valid_o, _matvec(self.S, g).double().gather(1, order), 0.0)
        p2 = gamma3 * torch.where(
            valid_o, _matvec(self.Y, g).double().gather(1, order), 0.0
        ).unsqueeze(2)
        w = torch.linalg.solve_triangular(r, p1.unsqueeze(2), upper=True)
        rhs = diag.unsqueeze(2) * w + gamma3 * (yty @ w) - p2
        top = torch.linalg.solve_triangular(r.mT, rhs, upper=False)
        back = (self.arange - count) % m  # slot i sits at position back[:, i] of `order`
        coef_s = torch.where(valid, top[:, :, 0].gather(1, back), 0.0).to(dtype)
        coef_y = torch.where(valid, -gamma.unsqueeze(1) * w[:, :, 0].gather(1, back), 0.0)
        hg = (
            gamma.to(dtype).unsqueeze(1) * g
            + (coef_s.unsqueeze(1) @ self.S).squeeze(1)
            + (coef_y.to(dtype).unsqueeze(1) @ self.Y).squeeze(1)
        )
        return -hg

    @torch.no_grad()
    def _push(self, push: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> None:
        """Stores (s, y), [S, n], in each member's next slot where ``push`` ([S])."""
        size, m, n = self.S.shape
        slot = (self.count % m).view(size, 1, 1)
        keep = push.view(size, 1, 1)
        at = slot.expand(size, 1, n)
        self.S.scatter_(1, at, torch.where(keep, s.unsqueeze(1), self.S.gather(1, at)))
        self.Y.scatter_(1, at, torch.where(keep, y.unsqueeze(1), self.Y.gather(1, at)))
        row = _matvec(self.Y, s).double()  # s_new . y_j
        col = _matvec(self.S, y).double()  # s_i . y_new
        yyv = _matvec(self.Y, y).double()
        at_row, at_col = slot.expand(size, 1, m), slot.expand(size, m, 1)
        for mat, r, c in ((self.StY, row, col), (self.YtY, yyv, yyv)):
            mat.scatter_(1, at_row, torch.where(keep, r.unsqueeze(1), mat.gather(1, at_row)))
            mat.scatter_(2, at_col, torch.where(keep, c.unsqueeze(2), mat.gather(2, at_col)))
        self.count += push.long()

    @torch.no_grad()
    def _reset(self, reset: torch.Tensor) -> None:
        """Drops the history of the members where ``reset`` ([S])."""
        self.count.mul_((~reset).long())

    # ---------------------------------------------------------------------------- iteration
    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One trial per member and its consequences, without reading anything on the host.

        Returns:
            (the loss terms at the members' current accepted points [S, T], whether each
            member's trial was accepted [S]), both tensors on the device.
        """
        x_trial, active = self.propose()
        terms = self.evaluate().detach()
        return self.terms, self.accept(x_trial, active, terms)

    @torch.no_grad()
    def propose(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Loads the trial points (an inactive member's accepted point) into the parameters;
        returns them and which members are active."""
        active = (self.accepted < self.limit) & ~self.converged()
        x_trial = torch.where(active.unsqueeze(1), self.x + self.t.unsqueeze(1) * self.d, self.x)
        load_stacked(self.params, x_trial)
        return x_trial, active

    @torch.no_grad()
    def accept(self, x_trial: torch.Tensor, active: torch.Tensor, terms: torch.Tensor):
        """Judges the evaluated trials; returns which were accepted, [S]."""
        return self._update(x_trial, active, terms, self.flat_grad())

    def _update_eager(
        self, x_trial: torch.Tensor, active: torch.Tensor, terms: torch.Tensor, g: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`SyncFreeLBFGS._update_eager` per member."""
        f = terms[:, 0]
        armijo = f <= self.f + self.c1 * self.t * self.gtd
        ok = active & torch.isfinite(f) & torch.isfinite(g).all(1) & armijo
        s, y = x_trial - self.x, g - self.g
        self._push(ok & (_dot(s, y) > 1e-10), s, y)
        t, gtd = self.t, self.gtd
        shorter = _shorter_step(f, self.f, gtd, t)
        ok1 = ok.unsqueeze(1)
        self.x.copy_(torch.where(ok1, x_trial, self.x))
        self.f.copy_(torch.where(ok, f, self.f))
        self.g.copy_(torch.where(ok1, g, self.g))
        self.terms.copy_(torch.where(ok1, terms, self.terms))
        d = self.direction(self.g)
        gd = _dot(self.g, d)
        steep_d, steep_gtd, steep_t = self._steepest(self.g)
        bad = ~(gd < 0)
        stalled = active & ~ok & (shorter * self.d.abs().amax(1) < 1e-12)
        fresh = (ok & bad) | stalled
        self._reset(fresh)
        self.d.copy_(torch.where(fresh.unsqueeze(1), steep_d, torch.where(ok1, d, self.d)))
        self.gtd.copy_(torch.where(fresh, steep_gtd, torch.where(ok, gd, self.gtd)))
        new_t = torch.where(ok, torch.full_like(t, self.lr), torch.where(active, shorter, t))
        self.t.copy_(torch.where(fresh, steep_t, new_t))
        self.accepted += ok.long()
        return ok
