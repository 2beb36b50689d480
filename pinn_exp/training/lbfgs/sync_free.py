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
a CUDA graph can capture. :class:`SyncFreeBase` holds what :class:`SyncFreeLBFGS` (one
problem) and :class:`~pinn_exp.training.lbfgs.batched.BatchedSyncFreeLBFGS` (S problems, a
leading member dimension on every piece of state) share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from pinn_exp.training.lbfgs.flat import flat, flat_grad, load

Evaluate = Callable[[], torch.Tensor]


def shorter_step(f: torch.Tensor, f0: torch.Tensor, gtd: torch.Tensor, t: torch.Tensor):
    """The step after a rejected trial at step ``t`` (element-wise, so for one problem or S):
    the minimiser of the quadratic through f(0) = ``f0``, f'(0) = ``gtd`` and f(t) = ``f``,
    kept within [0.1 t, 0.5 t]; 0.5 t where that is not a number."""
    curvature = 2 * (f - f0 - gtd * t)
    shorter = -gtd * t * t / curvature
    shorter = torch.minimum(torch.maximum(shorter, 0.1 * t), 0.5 * t)
    return torch.where(torch.isfinite(f) & ~torch.isnan(shorter), shorter, 0.5 * t)


class SyncFreeBase:
    """The state and the iteration's frame that the sync-free optimizers share; a subclass
    supplies the algebra (``direction``, ``_push``, ``_update_eager``), :meth:`start_terms`,
    its half-steps (``propose``, ``accept``) and the moves between the parameters and the
    flat vectors (``_flat``, ``_flat_grad``, ``_load``: :mod:`.flat`).

    Args:
        params: the parameters to optimise.
        evaluate: computes the loss terms at the current parameters and sets their gradient.
        lr, tolerance_grad, c1, compile: as :class:`SyncFreeLBFGS`.
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
        self.x = self.f = self.g = self.terms = self.d = self.gtd = self.t = None
        self._update = (
            torch.compile(self._update_eager, fullgraph=True) if compile else self._update_eager
        )
        self._allocate_state(int(history_size), max_iter)

    def _allocate(self, lead: tuple[int, ...], m: int, n: int) -> None:
        """The history of ``m`` pairs of length ``n``, with leading dimensions ``lead``."""
        zeros, device = torch.zeros, self.device
        self.m = m
        self.S = zeros(*lead, m, n, dtype=self.dtype, device=device)
        self.Y = zeros(*lead, m, n, dtype=self.dtype, device=device)
        # s_i . y_j and y_i . y_j in slot order, in float64 (the small algebra is all there is)
        self.StY = zeros(*lead, m, m, dtype=torch.float64, device=device)
        self.YtY = zeros(*lead, m, m, dtype=torch.float64, device=device)
        self.count = zeros(lead, dtype=torch.long, device=device)  # pairs pushed so far
        self.accepted = zeros(lead, dtype=torch.long, device=device)
        self.arange = torch.arange(m, device=device)

    def start(self) -> torch.Tensor:
        """Evaluates the starting point; returns its loss terms."""
        self.start_point()
        terms = self.evaluate().detach()
        self.start_terms(terms)
        return terms

    @torch.no_grad()
    def start_point(self) -> None:
        """Reads the starting point from the parameters (first half of :meth:`start`)."""
        self.x = self._flat(self.params)

    def start_terms(self, terms: torch.Tensor) -> None:
        """Takes the loss terms evaluated at the starting point, and the gradient (second
        half of :meth:`start`)."""
        raise NotImplementedError

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One trial and its consequences, without reading anything on the host.

        Returns:
            (the loss terms at the current accepted point, whether this trial was accepted),
            both tensors on the device (one row and one flag per member when batched).
        """
        x_trial, active = self.propose()
        terms = self.evaluate().detach()
        return self.terms, self.accept(x_trial, active, terms)

    def finish(self) -> None:
        """Leaves the parameters at the last accepted point."""
        self._load(self.params, self.x)

    def flat_grad(self) -> torch.Tensor:
        """The gradient of the last evaluation as one flat vector (one per member, [S, n],
        when batched)."""
        return self._flat_grad(self.params)

    @torch.no_grad()
    def _reset(self, reset: torch.Tensor) -> None:
        """Drops the history where ``reset`` (its rows stay, masked out until overwritten)."""
        self.count.mul_((~reset).long())


class SyncFreeLBFGS(SyncFreeBase):
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

    _flat, _flat_grad, _load = staticmethod(flat), staticmethod(flat_grad), staticmethod(load)

    def _allocate_state(self, history_size: int, max_iter: int) -> None:
        self._allocate((), history_size, sum(p.numel() for p in self.params))
        self.limit = torch.tensor(int(max_iter), device=self.device)

    # -------------------------------------------------------------------------------- state
    @torch.no_grad()
    def _steepest(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Direction -g, its slope, and torch's first step min(1, 1/|g|_1) * lr."""
        t = torch.clamp(1.0 / g.abs().sum(), max=1.0) * self.lr
        return -g, -g.dot(g), t

    @torch.no_grad()
    def start_terms(self, terms: torch.Tensor) -> None:
        self.f, self.g, self.terms = terms[0].clone(), self.flat_grad(), terms.clone()
        self.d, self.gtd, self.t = self._steepest(self.g)

    def converged(self) -> torch.Tensor:
        """True (a tensor) once the gradient tolerance is met."""
        return self.g.abs().max() <= self.tolerance_grad

    def freeze(self) -> None:
        """Does nothing from now on (the budget becomes 0, in place; no host read)."""
        self.limit.fill_(0)

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

    # ---------------------------------------------------------------------------- iteration
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
        shorter = shorter_step(f, f0, gtd, t)
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
