"""R3 sampling (retain, resample, release; Daw, Bu, Wang, Perdikaris and Karpatne, ICML 2023)."""

from __future__ import annotations

import torch

from pinn_exp.samplers.base import ResidualScorer, Sampler, Update


class R3(Sampler):
    """Keeps the points whose residual is above the mean and replaces the rest by fresh
    uniform points, so the set keeps N points and accumulates where the residual is large.

    Within a stage the trainer's scorer gives the residual that the Adam step just computed
    at the points (before its parameter update), as Daw et al.'s code reuses the training
    step's residual: an update costs no forward pass of its own.

    Args:
        period: Adam steps between updates within a training stage. Daw et al. retain and
            resample during training, every optimizer step (1, the default) or every few;
            None updates once per round only, as the other samplers do.
    """

    name = "r3"

    def __init__(self, period: int | None = 1):
        super().__init__()
        if period is not None and (isinstance(period, bool) or int(period) < 1):
            raise ValueError(
                f"sampler.period={period!r} is not allowed; use null (once per round) or an "
                "integer >= 1 (Adam steps)"
            )
        self.period = None if period is None else int(period)

    def update(self, points: torch.Tensor, residual: ResidualScorer, round_index: int) -> Update:
        eps = residual(points)
        retained = points[eps > eps.mean()]
        new = torch.cat([retained, self.fresh(self.n_points - len(retained))])
        return Update(new, {"n_retained": len(retained)})
