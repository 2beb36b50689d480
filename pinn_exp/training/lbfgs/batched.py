""":class:`BatchedSyncFreeLBFGS`: the sync-free L-BFGS (:mod:`.sync_free`) for S independent
problems at once (the members of an ensemble, parameters stacked ``[S, ...]``): every piece of
state has a leading member dimension, every decision is a per-member mask, and the matrix
products are batched, so an iteration's update is the same fixed sequence of kernels whatever
S, instead of S updates one after the other."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pinn_exp.training.lbfgs.flat import flat_grad_stacked, flat_stacked, load_stacked
from pinn_exp.training.lbfgs.sync_free import SyncFreeBase, shorter_step

# The batched products are written as a row times a transposed matrix: torch's CPU bmm takes
# a slow path (some 5x) for a contiguous [S, n, 1] right operand; on a GPU either is one call.


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of two [S, n] tensors, [S] (one batched matrix product)."""
    return (a.unsqueeze(1) @ b.unsqueeze(1).mT).view(-1)


def _matvec(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """[S, m, n] times [S, n]: [S, m] (one batched matrix product)."""
    return (v.unsqueeze(1) @ a.mT).squeeze(1)


class BatchedSyncFreeLBFGS(SyncFreeBase):
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

    _flat, _flat_grad, _load = (
        staticmethod(flat_stacked),
        staticmethod(flat_grad_stacked),
        staticmethod(load_stacked),
    )

    def _allocate_state(
        self, history_size: int, max_iter: int | Sequence[int] | torch.Tensor
    ) -> None:
        first = self.params[0]
        self.size = len(first)
        self._allocate((self.size,), history_size, sum(p[0].numel() for p in self.params))
        limit = torch.as_tensor(max_iter, dtype=torch.long, device=self.device)
        self.limit = limit.expand(self.size).clone()

    # -------------------------------------------------------------------------------- state
    @torch.no_grad()
    def _steepest(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per member: direction -g, its slope, and the first step min(1, 1/|g|_1) * lr."""
        t = torch.clamp(1.0 / g.abs().sum(1), max=1.0) * self.lr
        return -g, -_dot(g, g), t

    @torch.no_grad()
    def start_terms(self, terms: torch.Tensor) -> None:
        """Takes the loss terms at the starting points, [S, T], and the gradients."""
        self.f, self.g, self.terms = terms[:, 0].clone(), self.flat_grad(), terms.clone()
        self.d, self.gtd, self.t = self._steepest(self.g)

    def converged(self) -> torch.Tensor:
        """Per member (a [S] bool tensor): the gradient tolerance is met."""
        return self.g.abs().amax(1) <= self.tolerance_grad

    def freeze(self, member: int) -> None:
        """Member ``member`` does nothing from now on (its budget becomes 0; no host read)."""
        self.limit[member] = 0

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

    # ---------------------------------------------------------------------------- iteration
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
        shorter = shorter_step(f, self.f, gtd, t)
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
