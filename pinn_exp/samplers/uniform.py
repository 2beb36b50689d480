"""Non-adaptive samplers: a fixed uniform set and a fresh one every round (Random-R)."""

from __future__ import annotations

import torch

from pinn_exp.samplers.base import UNIFORM_METHODS, ResidualScorer, Sampler, Update, qmc_points


class Uniform(Sampler):
    """A fixed set of N points, pseudo-random or from a low-discrepancy sequence. The
    pseudo-random set is the first set of every other sampler run with the same seed, so
    uniform is a paired baseline.

    Args:
        method: ``pseudo``, ``sobol``, ``halton`` or ``lhs`` (scipy.stats.qmc).
    """

    name = "uniform"

    def __init__(self, method: str = "pseudo"):
        super().__init__()
        if method not in UNIFORM_METHODS:
            raise ValueError(
                f"sampler.method={method!r} is not allowed; choose one of {UNIFORM_METHODS}"
            )
        self.method = method

    def initial(self) -> Update:
        if self.method == "pseudo":  # the first set every other sampler of this seed starts from
            return super().initial()
        x = qmc_points(self.domain, self.n_points, self.method, self.integer_seed())
        return Update(torch.as_tensor(x, dtype=self.dtype, device=self.device))

    def update(self, points: torch.Tensor, residual: ResidualScorer, round_index: int) -> Update:
        return Update(points)


class RandomR(Sampler):
    """Random resampling (Random-R): N fresh uniform points every round; no residual used."""

    name = "random_r"

    def update(self, points: torch.Tensor, residual: ResidualScorer, round_index: int) -> Update:
        return Update(self.fresh(self.n_points))
