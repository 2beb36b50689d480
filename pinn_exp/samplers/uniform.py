"""Non-adaptive samplers: a fixed uniform set and fresh uniform sets (Random-R)."""

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
    """Random resampling (Random-R, Wu et al. 2023): all N points replaced by fresh uniform
    points; no residual used.

    The defaults are the published recipe (lu-group/pinn-sampling ``src/burgers/Random_R.py``):
    a new set every 100 Adam steps of one Adam stage, then one L-BFGS run on the last set, and
    no sampling rounds (``single_stage``). ``period: null, single_stage: false`` draws a new
    set once per round instead (option ``random_r_round``).

    Args:
        period: Adam steps between new sets within a training stage; None: once per round.
        single_stage: the run is one training stage; its rounds are not run. Needs a period.
    """

    name = "random_r"

    def __init__(self, period: int | None = 100, single_stage: bool = True):
        super().__init__()
        if period is not None and (isinstance(period, bool) or int(period) < 1):
            raise ValueError(
                f"sampler.period={period!r} is not allowed; use null (once per round) or an "
                "integer >= 1 (Adam steps)"
            )
        if single_stage and period is None:
            raise ValueError(
                "sampler.single_stage=true needs sampler.period (without rounds a set drawn "
                "once per round is never redrawn); set a period or single_stage=false"
            )
        self.period = None if period is None else int(period)
        self.single_stage = bool(single_stage)

    def update(self, points: torch.Tensor, residual: ResidualScorer, round_index: int) -> Update:
        return Update(self.fresh(self.n_points))
