""":class:`History`: the L-BFGS history of S independent problems (the members of an ensemble,
or one run, S = 1) and the direction -H g it defines, with no host read.

The direction comes from the compact representation of the L-BFGS matrix (Byrd, Nocedal and
Schnabel 1994, eq. 2.6): a handful of batched matrix products and two m x m triangular solves
per problem, whatever the history size m, instead of the 4m small operations of the two-loop
recursion that ``torch.optim.LBFGS`` runs. Algebraically the two are the same matrix (tested
against the two-loop recursion); every piece of state has a leading problem dimension S and
every decision is a per-problem mask, so the sequence of kernels is the same for any S.
"""

from __future__ import annotations

import torch

# Every product is a batched matrix product whose rows are each problem's alone, written in
# the forms whose result for one problem does not depend on S with torch's CPU kernels
# (tested): a member of an ensemble then takes its single run's steps bit for bit. Other forms
# (a row times [S, m, n], or [S, n, m] stored) round differently for S = 1 and S > 1.


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of two [S, n] tensors, [S] (one batched matrix product)."""
    return (a.unsqueeze(1) @ b.unsqueeze(1).mT).view(-1)


def matvec(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """[S, m, n] times [S, n]: [S, m] (one batched matrix product)."""
    return (v.unsqueeze(1) @ a.mT).squeeze(1)


def combine(c: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """[S, m] times [S, m, n]: [S, n], the combinations of each problem's m rows."""
    return (a.mT @ c.unsqueeze(2)).squeeze(2)


class History:
    """Up to ``m`` pairs (s, y) per problem, in a ring of slots, and their inner products.

    Args:
        size: the number S of problems.
        m: the pairs kept per problem (``optimizer.history_size``).
        n: the length of a problem's flat parameter vector.
        dtype, device: the parameters' (the m x m algebra runs in float64).
    """

    def __init__(self, size: int, m: int, n: int, dtype: torch.dtype, device: torch.device):
        zeros = torch.zeros
        self.m, self.dtype = m, dtype
        self.S = zeros(size, m, n, dtype=dtype, device=device)
        self.Y = zeros(size, m, n, dtype=dtype, device=device)
        # s_i . y_j and y_i . y_j in slot order, in float64 (the small algebra is all there is)
        self.StY = zeros(size, m, m, dtype=torch.float64, device=device)
        self.YtY = zeros(size, m, m, dtype=torch.float64, device=device)
        self.count = zeros(size, dtype=torch.long, device=device)  # pairs pushed so far
        self.arange = torch.arange(m, device=device)

    @torch.no_grad()
    def push(self, push: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> None:
        """Stores (s, y), [S, n], in each problem's next slot where ``push`` ([S])."""
        size, m, n = self.S.shape
        slot = (self.count % m).view(size, 1, 1)
        keep = push.view(size, 1, 1)
        at = slot.expand(size, 1, n)
        self.S.scatter_(1, at, torch.where(keep, s.unsqueeze(1), self.S.gather(1, at)))
        self.Y.scatter_(1, at, torch.where(keep, y.unsqueeze(1), self.Y.gather(1, at)))
        row = matvec(self.Y, s).double()  # s_new . y_j
        col = matvec(self.S, y).double()  # s_i . y_new
        yyv = matvec(self.Y, y).double()
        at_row, at_col = slot.expand(size, 1, m), slot.expand(size, m, 1)
        for mat, r, c in ((self.StY, row, col), (self.YtY, yyv, yyv)):
            mat.scatter_(1, at_row, torch.where(keep, r.unsqueeze(1), mat.gather(1, at_row)))
            mat.scatter_(2, at_col, torch.where(keep, c.unsqueeze(2), mat.gather(2, at_col)))
        self.count += push.long()

    @torch.no_grad()
    def direction(self, g: torch.Tensor) -> torch.Tensor:
        """-H g per problem, [S, n]: H is gamma I plus a rank-2k correction from the k pairs
        held, gamma = s.y / y.y of the newest pair (1 with none), as torch's ``H_diag``."""
        m, dtype = self.m, self.dtype
        size = len(g)
        count = self.count.unsqueeze(1)  # [S, 1]
        order = (count + self.arange) % m  # [S, m]: slots oldest to newest, empty ones first
        valid = (self.arange < count) | (count >= m)
        newest = (count - 1) % m
        sy = torch.diagonal(self.StY, dim1=1, dim2=2).gather(1, newest)[:, 0]
        yy = torch.diagonal(self.YtY, dim1=1, dim2=2).gather(1, newest)[:, 0]
        gamma = torch.where(self.count > 0, sy / torch.where(yy > 0, yy, 1.0), 1.0)
        gamma3 = gamma.view(size, 1, 1)
        # rows of slots not (or no longer) in the history hold stale pairs: masked out
        valid_o = valid.gather(1, order)
        pair = valid_o.unsqueeze(1) & valid_o.unsqueeze(2)
        rows = order.unsqueeze(2).expand(size, m, m)
        cols = order.unsqueeze(1).expand(size, m, m)
        sty = torch.where(pair, self.StY.gather(1, rows).gather(2, cols), 0.0)
        yty = torch.where(pair, self.YtY.gather(1, rows).gather(2, cols), 0.0)
        diag = torch.diagonal(sty, dim1=1, dim2=2)
        r = torch.triu(sty, diagonal=1) + torch.diag_embed(torch.where(valid_o, diag, 1.0))
        p1 = torch.where(valid_o, matvec(self.S, g).double().gather(1, order), 0.0)
        p2 = gamma3 * torch.where(
            valid_o, matvec(self.Y, g).double().gather(1, order), 0.0
        ).unsqueeze(2)
        w = torch.linalg.solve_triangular(r, p1.unsqueeze(2), upper=True)
        rhs = diag.unsqueeze(2) * w + gamma3 * matvec(yty, w[:, :, 0]).unsqueeze(2) - p2
        top = torch.linalg.solve_triangular(r.mT, rhs, upper=False)
        back = (self.arange - count) % m  # slot i sits at position back[:, i] of `order`
        coef_s = torch.where(valid, top[:, :, 0].gather(1, back), 0.0).to(dtype)
        coef_y = torch.where(valid, -gamma.unsqueeze(1) * w[:, :, 0].gather(1, back), 0.0)
        hg = gamma.to(dtype).unsqueeze(1) * g + combine(coef_s, self.S)
        hg = hg + combine(coef_y.to(dtype), self.Y)
        return -hg
