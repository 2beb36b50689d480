"""torch's L-BFGS with the strong-Wolfe line search (``optimizer.lbfgs_impl=torch``), its
evaluations per iteration limited by an argument."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.optim.lbfgs as torch_lbfgs


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
