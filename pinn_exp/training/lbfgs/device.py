""":class:`DeviceLBFGS`: torch's L-BFGS (strong-Wolfe line search) with every decision on the
device, for one run or for the S members of an ensemble at once (``optimizer.lbfgs_impl=
device``).

``torch.optim.LBFGS`` turns tensors into Python numbers many times per iteration (the step
sizes of the two-loop recursion, every decision of the line search, the convergence tests),
and each read waits for the GPU to drain its queue. Here one call of :meth:`DeviceLBFGS.step`
is one loss-and-gradient evaluation (a trial of the line search) followed by a fixed sequence
of kernels, with no host read: the line search is a state machine (:class:`~.line_search.
StrongWolfeSearch`, torch's decisions and interpolation), the direction comes from the
compact form of the L-BFGS matrix (:class:`~.history.History`), and the stopping tests are
masks. So the step compiles as one graph (``torch.compile(fullgraph=True)``) and a CUDA graph
can capture it; the caller reads the state only every few steps, to record and to stop.

The iteration is torch's (``line_search_fn="strong_wolfe"``, ``tolerance_change=0``, as a
stage runs it): the first step min(1, 1/|g|_1) lr, then lr; the pair (s, y) = (t d, g+ - g)
kept when s.y > 1e-10; gamma = s.y / y.y of the newest pair; a problem stops after
``max_iter`` iterations, once max |g| <= ``tolerance_grad``, once it has used ``max_eval``
evaluations, when its line search returns step 0 or its direction goes uphill (g.d > 0).

Every piece of state has a leading problem dimension S (1 for a single run): problem k
follows exactly the algorithm it would follow alone, and a problem that is not active (done,
or frozen with :meth:`DeviceLBFGS.freeze`) is evaluated at its accepted point, so its
parameters do not move.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from pinn_exp.training.lbfgs.flat import (
    flat,
    flat_grad,
    flat_grad_stacked,
    flat_stacked,
    load,
    load_stacked,
)
from pinn_exp.training.lbfgs.history import History, dot
from pinn_exp.training.lbfgs.line_search import StrongWolfeSearch

Evaluate = Callable[[], torch.Tensor]

#: a problem's flat vectors are padded with zeros to a multiple of this many numbers, so that
#: every problem's row starts 64-byte aligned (torch's CPU allocator aligns the whole tensor
#: to 64 bytes): a BLAS kernel's result depends on its operands' alignment, and so each
#: member of an ensemble computes exactly what its single run computes
PAD = 16


class DeviceLBFGS:
    """L-BFGS with a strong-Wolfe line search whose steps never read a value on the host.

    Args:
        params: the parameters; with ``stacked``, each has a leading member dimension S.
        evaluate: computes the loss terms at the current parameters (loss first; [T], or
            [S, T] when stacked) and sets their gradient.
        stacked: S problems on stacked parameters (an ensemble) instead of one.
        lr: the step each iteration's line search starts from after the first (1).
        history_size: the number m of (s, y) pairs kept.
        max_iter: iterations after which a problem stops (an int, or one per member).
        max_eval: evaluations after which a problem stops (the start's included); None:
            5/4 of ``max_iter``.
        max_ls: trials of one line search after its first, at most; None: the evaluations
            left in the budget (torch's).
        tolerance_grad: a problem stops once max |gradient| is at most this.
        c1, c2: the strong-Wolfe constants.
        compile: compile the update that follows each evaluation with ``torch.compile``
            (``fullgraph=True``).
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        evaluate: Evaluate,
        *,
        stacked: bool = False,
        lr: float = 1.0,
        history_size: int = 100,
        max_iter: int | Sequence[int] = 1000,
        max_eval: int | None = None,
        max_ls: int | None = None,
        tolerance_grad: float = 1e-9,
        c1: float = 1e-4,
        c2: float = 0.9,
        compile: bool = False,
    ):
        self.params, self.evaluate, self.stacked = list(params), evaluate, stacked
        self.lr, self.tolerance_grad = float(lr), float(tolerance_grad)
        first = self.params[0]
        device, self.dtype = first.device, first.dtype
        size = len(first) if stacked else 1
        self.n = n = sum((p[0] if stacked else p).numel() for p in self.params)
        n_pad = -(-n // PAD) * PAD
        limit = torch.as_tensor(max_iter, dtype=torch.long, device=device)
        self.limit = limit.expand(size).clone()  # iterations allowed
        budget = self.limit * 5 // 4 if max_eval is None else torch.full_like(self.limit, max_eval)
        self.max_eval = budget
        self.max_ls = max_ls
        self.history = History(size, int(history_size), n_pad, self.dtype, device)
        self.size, self.n_pad, self.c1, self.c2 = size, n_pad, c1, c2
        self.search: StrongWolfeSearch | None = None
        long = torch.zeros(size, dtype=torch.long, device=device)
        self.iterations, self.evaluations = long, long.clone()
        self.stopped = torch.zeros(size, dtype=torch.bool, device=device)
        self.x = self.f = self.g = self.terms = self.d = self.gtd = None
        self._update = (
            torch.compile(self._update_eager, fullgraph=True) if compile else self._update_eager
        )

    # ------------------------------------------------------------------ parameters <-> flat
    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, self.n_pad - self.n))

    def _flat(self) -> torch.Tensor:
        return self._pad(flat_stacked(self.params) if self.stacked else flat(self.params)[None])

    def flat_grad(self) -> torch.Tensor:
        """The gradient of the last evaluation, one flat vector per problem, [S, n_pad]
        (zeros after the n numbers of the parameters)."""
        if self.stacked:
            return self._pad(flat_grad_stacked(self.params))
        return self._pad(flat_grad(self.params)[None])

    def _load(self, x: torch.Tensor) -> None:
        if self.stacked:
            load_stacked(self.params, x[:, : self.n])
        else:
            load(self.params, x[0, : self.n])

    def _terms(self, terms: torch.Tensor) -> torch.Tensor:
        return terms if self.stacked else terms.unsqueeze(0)

    def _out(self, terms: torch.Tensor, flags: torch.Tensor):
        return (terms, flags) if self.stacked else (terms[0], flags[0])

    # ---------------------------------------------------------------------------- the frame
    def start(self) -> torch.Tensor:
        """Evaluates the starting point; returns its loss terms ([T], or [S, T])."""
        with torch.no_grad():
            self.x = self._flat()
        terms = self._terms(self.evaluate().detach())
        with torch.no_grad():
            self.terms, self.g = terms.clone(), self.flat_grad().clone()
            self.f = terms[:, 0].clone()
            self.d = -self.g
            self.gtd = dot(self.g, self.d)
            self.evaluations += 1
            self.search = StrongWolfeSearch(
                self.size, self.n_pad, terms.shape[1], self.dtype, self.x.device, self.c1, self.c2
            )
            first_t = torch.clamp(1.0 / self.g.abs().sum(1), max=1.0) * self.lr
            everyone = torch.ones_like(self.stopped)
            self.search.begin(everyone, first_t, self.f, self.g, self.gtd, self.terms, self._ls())
            self.stopped |= ~(self.gtd <= 0)
        return terms if self.stacked else terms[0]

    def _ls(self) -> torch.Tensor:
        """The trials a search may take after its first: the evaluations left (torch's),
        at most ``max_ls``."""
        left = self.max_eval - self.evaluations
        return left if self.max_ls is None else left.clamp(max=self.max_ls)

    def running(self) -> torch.Tensor:
        """Per problem ([S] bools): still iterating (neither stopped, frozen, converged nor
        out of iterations)."""
        converged = self.g.abs().amax(1) <= self.tolerance_grad
        return ~self.stopped & ~converged & (self.iterations < self.limit)

    def freeze(self, member: int) -> None:
        """Problem ``member`` does nothing from now on (no host read)."""
        self.stopped[member] = True

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One trial of every running problem's line search and its consequences.

        Returns:
            (the loss terms at the accepted points, which problems completed an iteration
            with this trial), on the device ([T] and a 0-d bool for one problem).
        """
        with torch.no_grad():
            active = self.running()
            trial = self.x + (self.search.t.to(self.dtype) * active).unsqueeze(1) * self.d
            self._load(trial)
        terms = self._terms(self.evaluate().detach())
        done = self._update(active, terms, self.flat_grad())
        return self._out(self.terms, done)

    def finish(self) -> None:
        """Leaves the parameters at the last accepted points."""
        self._load(self.x)

    @torch.no_grad()
    def _update_eager(self, active: torch.Tensor, terms: torch.Tensor, g_new: torch.Tensor):
        """Judges every active problem's trial; where its line search is done, takes the
        step, updates the history and starts the next iteration's search. Returns where an
        iteration was completed."""
        f_new = terms[:, 0]
        finite = torch.isfinite(f_new) & torch.isfinite(g_new).all(1)
        f_new = torch.where(finite, f_new, torch.inf)
        gtd_new = dot(g_new, self.d)
        start = (self.f, self.gtd, self.g, self.terms)
        d_norm = self.d.abs().amax(1)
        done, step, f, g, terms = self.search.judge(
            active, start, d_norm, f_new, g_new, gtd_new, terms
        )
        self.evaluations.add_(active.long())
        s, y = step.to(self.dtype).unsqueeze(1) * self.d, g - self.g
        self.history.push(done & (dot(s, y) > 1e-10), s, y)
        done1 = done.unsqueeze(1)
        self.x.copy_(torch.where(done1, self.x + s, self.x))
        self.f.copy_(torch.where(done, f, self.f))
        self.g.copy_(torch.where(done1, g, self.g))
        self.terms.copy_(torch.where(done1, terms, self.terms))
        self.iterations.add_(done.long())
        d = self.history.direction(self.g)
        gtd = dot(self.g, d)
        self.d.copy_(torch.where(done1, d, self.d))
        self.gtd.copy_(torch.where(done, gtd, self.gtd))
        # torch's ends of a stage: no step taken, an uphill direction, the budget spent
        out = (step == 0) | ~(gtd <= 0) | (self.evaluations >= self.max_eval)
        self.stopped.copy_(self.stopped | (done & out))
        t = torch.full_like(step, self.lr)
        self.search.begin(done, t, self.f, self.g, self.gtd, self.terms, self._ls())
        return done
