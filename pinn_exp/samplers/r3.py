"""R3 sampling (retain, resample, release; Daw, Bu, Wang, Perdikaris and Karpatne, ICML 2023)."""

from __future__ import annotations

import torch

from pinn_exp.samplers.base import ResidualScorer, Sampler


class R3(Sampler):
    """Keeps the points whose residual is above the mean and replaces the rest by fresh
    uniform points, so the set keeps N points and accumulates where the residual is large."""

    name = "r3"

    def update(self, points: torch.Tensor, residual: ResidualScorer, round_index: int):
        eps = residual(points)
        retained = points[eps > eps.mean()]
        self.stats = {"n_retained": len(retained)}
        return torch.cat([retained, self.fresh(self.n_points - len(retained))])
