""":class:`StrongWolfeSearch`: torch's strong-Wolfe line search (``torch.optim.lbfgs.
_strong_wolfe``) for S problems at once, as a state machine that takes one trial per call and
never reads a value on the host.

torch's search is a Python loop: it evaluates the loss at a trial step, decides (accept,
bracket, extrapolate, zoom) from Python numbers and evaluates again. Here each problem's
search is a state (its phase, its bracket, its trial step, its count of trials) and one call
of :meth:`StrongWolfeSearch.judge` is one turn of torch's loop for every problem at once, each
decision a per-problem ``torch.where``. The decisions and the interpolation are torch's, in
the same order:

* bracketing: a trial that fails the Armijo condition (or, from the third trial on, is not
  lower than the previous one) or whose slope is uphill brackets a step with the previous
  trial; one that meets the curvature condition is accepted; otherwise the next trial is the
  cubic interpolation's minimiser within [t + 0.01 (t - t_prev), 10 t] (extrapolation);
* zoom: the cubic's minimiser in the bracket, moved 0.1 of the bracket's width away from an
  end it comes too close to (torch's "insufficient progress" rule); the trial replaces the
  high end, or becomes the low end, as torch decides;
* a search that has used its trials (``max_ls``, at most the evaluations left in the stage's
  budget, as torch 2.13 passes) accepts its bracket's low end (after bracketing, the better
  of the start and the last trial), and so does a zoom whose bracket has become narrower
  than ``tolerance_change`` / max |d| (torch's ``_strong_wolfe`` default, 1e-9, which
  ``LBFGS.step`` does not override).

Two differences, each where torch would raise or stall: a trial whose loss or gradient is not
finite counts as a failed Armijo test (torch's caller raises; here the bracket shrinks away
from it), and an interpolation that is not a finite number falls back to the bracket's
midpoint. The line search's numbers (steps, losses, slopes) are in the parameters' dtype:
torch's tests compare a Python float with a tensor of that dtype, so they are made in it too
(in float32, a step that leaves the loss unchanged passes the sufficient-decrease test).
"""

from __future__ import annotations

import torch


def cubic_minimiser(x1, f1, g1, x2, f2, g2, lo, hi) -> torch.Tensor:
    """torch's ``_cubic_interpolate`` element-wise: the minimiser of the cubic through
    (x1, f1, f'1 = g1) and (x2, f2, g2), clamped to [lo, hi]; the midpoint of [lo, hi] where
    the cubic has no minimiser or the result is not a number."""
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 * d1 - g1 * g2
    d2 = d2_square.clamp(min=0).sqrt()
    ascending = x1 <= x2
    min_pos = torch.where(
        ascending,
        x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2)),
        x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2)),
    )
    t = torch.minimum(torch.maximum(min_pos, lo), hi)
    return torch.where((d2_square >= 0) & torch.isfinite(t), t, (lo + hi) / 2)


def _pick(first: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a`` where ``first`` ([S]), else ``b``, for tensors with a leading dimension S."""
    return torch.where(first.view(-1, *([1] * (a.dim() - 1))), a, b)


class StrongWolfeSearch:
    """The line-search state of S problems: the bracket's two ends (step, loss, slope,
    gradient, loss terms), which end is low, the trial step, trials taken and allowed.

    While bracketing, end 0 is the previous trial (step 0, the start, at first).

    Args:
        size, n, n_terms: problems, parameters per problem, loss terms.
        dtype, device: the parameters' (also the dtype of the steps, losses and slopes).
        c1, c2: the sufficient-decrease and curvature constants (torch's 1e-4 and 0.9).
        tolerance_change: a zoom ends where its bracket's width times max |d| is below it.
    """

    def __init__(
        self,
        size,
        n,
        n_terms,
        dtype,
        device,
        c1: float = 1e-4,
        c2: float = 0.9,
        tolerance_change: float = 1e-9,
    ):
        self.c1, self.c2, self.tolerance_change = float(c1), float(c2), float(tolerance_change)
        zeros = torch.zeros
        self.t = zeros(size, dtype=dtype, device=device)  # the trial step
        self.trials = zeros(size, dtype=torch.long, device=device)  # torch's ls_iter
        self.limit = zeros(size, dtype=torch.long, device=device)  # torch's max_ls
        self.zoom = zeros(size, dtype=torch.bool, device=device)
        self.insufficient = zeros(size, dtype=torch.bool, device=device)
        self.low = zeros(size, dtype=torch.bool, device=device)  # end 1 is the low end
        self.bt = zeros(size, 2, dtype=dtype, device=device)
        self.bf = zeros(size, 2, dtype=dtype, device=device)
        self.bgtd = zeros(size, 2, dtype=dtype, device=device)
        self.bg = zeros(size, 2, n, dtype=dtype, device=device)
        self.bterms = zeros(size, 2, n_terms, dtype=dtype, device=device)

    @torch.no_grad()
    def begin(self, where, t, f, g, gtd, terms, limit) -> None:
        """Starts a search where ``where`` ([S]): first trial at step ``t``, from the point
        with loss ``f``, gradient ``g``, slope ``gtd`` and loss terms ``terms``; at most
        ``limit`` trials after the first."""
        self.t.copy_(torch.where(where, t, self.t))
        self.trials.copy_(torch.where(where, 0, self.trials))
        self.limit.copy_(torch.where(where, limit, self.limit))
        for flag in (self.zoom, self.insufficient, self.low):
            flag.copy_(flag & ~where)
        for end, value in zip(self._ends(), (torch.zeros_like(f), f, gtd, g, terms)):
            end[:, 0].copy_(_pick(where, value, end[:, 0]))

    def _ends(self) -> tuple[torch.Tensor, ...]:
        return self.bt, self.bf, self.bgtd, self.bg, self.bterms

    @torch.no_grad()
    def judge(self, active, start, d_norm, f_new, g_new, gtd_new, terms_new):
        """One turn of torch's loop for the problems ``active``, after their trial at
        :attr:`t` gave loss ``f_new`` (+inf where not finite), gradient ``g_new``, slope
        ``gtd_new`` and loss terms ``terms_new``. ``start``: the search's starting point's
        (loss, slope, gradient, terms); ``d_norm``: max |d| of the search's direction.
        Updates the state (the next trial step of a search that goes on).

        Returns:
            (done, step, f, g, terms): where ``done``, the search accepted the point at
            ``step`` (0: it stays at the start) with loss ``f``, gradient ``g`` and terms
            ``terms``.
        """
        f0, gtd0, g_start, terms_start = start
        t, trials, zoom, low1 = self.t, self.trials, self.zoom, self.low
        bt, bf, bgtd, _, _ = old = self._ends()
        armijo_fails = f_new > f0 + self.c1 * t * gtd0
        curvature = gtd_new.abs() <= -self.c2 * gtd0
        # --- bracketing (end 0 is the previous trial)
        spent = active & ~zoom & (trials >= self.limit)  # torch: the bracket is [0, t]
        going = active & ~zoom & ~spent
        high = going & (armijo_fails | ((trials > 1) & (f_new >= bf[:, 0])))
        accept_b = going & ~high & curvature
        uphill = going & ~high & ~accept_b & (gtd_new >= 0)
        extrapolate = going & ~high & ~accept_b & ~uphill
        bracketed = high | uphill
        # --- zoom
        zooming = active & zoom
        t_lo, t_hi = torch.where(low1, bt[:, 1], bt[:, 0]), torch.where(low1, bt[:, 0], bt[:, 1])
        replaces_high = zooming & (armijo_fails | (f_new >= torch.where(low1, bf[:, 1], bf[:, 0])))
        new_low = zooming & ~replaces_high
        accept_z = new_low & curvature
        flip = new_low & ~curvature & (gtd_new * (t_hi - t_lo) >= 0)  # the old low end: high
        # --- the bracket's ends after this trial: the trial, the other end's values, or kept
        takes_trial = (
            extrapolate | (replaces_high & low1) | (new_low & ~low1),
            bracketed | (replaces_high & ~low1) | (new_low & low1),
        )
        takes_other = (flip & low1, flip & ~low1)
        trial = (t, f_new, gtd_new, g_new, terms_new)
        ends = [
            [
                _pick(takes_trial[j], value, _pick(takes_other[j], end[:, 1 - j], end[:, j]))
                for j in (0, 1)
            ]
            for value, end in zip(trial, old)
        ]
        (t0, t1), (f0_end, f1_end), (s0, s1) = ends[0], ends[1], ends[2]
        low = torch.where(bracketed | replaces_high, f0_end > f1_end, low1)
        trials_after = trials + (extrapolate | zooming).long()
        # --- accepted: the trial, the start (bracketing out of trials), or the low end
        in_zoom = zooming | bracketed
        narrow = (t1 - t0).abs() * d_norm < self.tolerance_change
        done_zoom = in_zoom & (accept_z | (trials_after >= self.limit) | narrow)
        take = accept_b | (spent & (f_new < f0))
        stay = spent & ~(f_new < f0)
        done = take | stay | done_zoom
        low_end = [_pick(low, e1, e0) for e0, e1 in ends]
        step = torch.where(take, t, torch.where(stay, 0.0, low_end[0]))
        f = torch.where(take, f_new, torch.where(stay, f0, low_end[1]))
        g = _pick(take, g_new, _pick(stay, g_start, low_end[3]))
        terms = _pick(take, terms_new, _pick(stay, terms_start, low_end[4]))
        # --- the next trial of a search that goes on
        t_ext = cubic_minimiser(
            bt[:, 0], bf[:, 0], bgtd[:, 0], t, f_new, gtd_new, t + 0.01 * (t - bt[:, 0]), 10 * t
        )
        t_zoom, insufficient = self._zoom_trial(
            t0, f0_end, s0, t1, f1_end, s1, self.insufficient & zoom
        )
        go_on = active & ~done
        self.t.copy_(torch.where(go_on & extrapolate, t_ext, torch.where(go_on, t_zoom, t)))
        self.insufficient.copy_(torch.where(go_on & in_zoom, insufficient, self.insufficient))
        self.trials.copy_(trials_after)
        self.zoom.copy_(zoom | bracketed)
        self.low.copy_(low)
        for end, (e0, e1) in zip(old, ends):
            end[:, 0].copy_(e0)
            end[:, 1].copy_(e1)
        return done, step, f, g, terms

    @staticmethod
    def _zoom_trial(t0, f0, g0, t1, f1, g1, insufficient):
        """torch's next trial in a bracket [t0, t1] (slopes ``g0``, ``g1``) and its
        insufficient-progress flag."""
        lo, hi = torch.minimum(t0, t1), torch.maximum(t0, t1)
        t = cubic_minimiser(t0, f0, g0, t1, f1, g1, lo, hi)
        eps = 0.1 * (hi - lo)
        near = torch.minimum(hi - t, t - lo) < eps
        move = near & (insufficient | (t >= hi) | (t <= lo))
        moved = torch.where((t - hi).abs() < (t - lo).abs(), hi - eps, lo + eps)
        return torch.where(move, moved, t), near & ~move
