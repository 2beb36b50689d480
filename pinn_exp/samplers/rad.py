"""Residual-based adaptive distribution and refinement (Wu, Zhu, Tan, Kartha and Lu, 2023)."""

from __future__ import annotations

import math
from typing import Any

import torch

from pinn_exp.samplers.base import ResidualScorer, Sampler, Update

#: torch.multinomial draws from at most 2^24 categories; larger dense sets are drawn by keys
MULTINOMIAL_CATEGORIES = 2**24


def rad_log_weights(eps: torch.Tensor, k: float, c: float) -> torch.Tensor:
    """log(eps^k / mean(eps^k) + c), in float64 on the CPU and in log space, for any finite k.

    eps^k / mean(eps^k) is computed as exp(k (log eps - log max eps)) over the mean of the
    same: every exponent is <= 0, so nothing overflows (k log eps alone is infinite from
    k log max eps > 1.8e308 on, e.g. k = 1e308 with a residual above 10, and inf - inf made
    the weights NaN), and a large k puts all the weight of the first term on the largest eps.
    -inf where the weight is 0 (eps = 0 with c = 0)."""
    # in place where it can be: a dense set of 10^8 points takes 0.8 GB per float64 copy
    log_eps = eps.detach().to("cpu", torch.float64, copy=True).abs_().log_()
    log_c = torch.tensor(math.log(c) if c > 0 else -math.inf, dtype=torch.float64)
    if len(log_eps) == 0:
        return log_eps
    top = log_eps.max()
    if k == 0:  # eps^0 = 1, also at eps = 0
        z = log_eps.zero_()
    elif top == -math.inf:  # every eps is 0: the first term vanishes
        return torch.logaddexp(log_eps, log_c, out=log_eps)
    else:
        z = log_eps.sub_(top).mul_(k)  # <= 0, and 0 at the largest eps
    z.sub_(torch.logsumexp(z, 0)).add_(math.log(len(z)))
    return torch.logaddexp(z, log_c, out=z)


def rad_probabilities(eps: torch.Tensor, k: float, c: float) -> torch.Tensor:
    """RAD density on a dense set: p(x) proportional to eps^k / mean(eps^k) + c (Wu et al.
    2023), from :func:`rad_log_weights`; uniform where every weight is 0."""
    p = rad_log_weights(eps, k, c).exp_()
    return p if p.sum() > 0 else torch.ones_like(p)


def _check_dense(n_dense: int, chunk_size: int | None, k: float, c: float) -> None:
    if int(n_dense) < 1:
        raise ValueError(f"sampler.n_dense={n_dense!r} is not allowed; it must be >= 1")
    if chunk_size is not None and int(chunk_size) < 1:
        raise ValueError(
            f"sampler.chunk_size={chunk_size!r} is not allowed; use null or an integer >= 1"
        )
    if k < 0 or c < 0:
        raise ValueError(f"sampler.k={k!r} and sampler.c={c!r} must both be >= 0")


class DenseSetSampler(Sampler):
    """Shared parts of the samplers that score a fresh dense set S every round.

    Args:
        n_dense: size of S.
        k: exponent of the residual in the density.
        c: constant added to the normalised density.
        chunk_size: points scored per pass; None scores S in one pass (the reference code).
    """

    def __init__(
        self, n_dense: int = 100_000, k: float = 1.0, c: float = 1.0, chunk_size: int | None = None
    ):
        super().__init__()
        _check_dense(n_dense, chunk_size, k, c)
        self.n_dense = int(n_dense)
        self.k = float(k)
        self.c = float(c)
        self.chunk_size = None if chunk_size is None else int(chunk_size)

    def score_dense(self, residual: ResidualScorer) -> tuple[torch.Tensor, torch.Tensor]:
        """Draws S and scores it; returns (S, eps on S)."""
        dense = self.fresh(self.n_dense)
        return dense, residual(dense, self.chunk_size)

    def dense_stats(self) -> dict[str, int]:
        """What a round that scored S records."""
        return {"n_dense": self.n_dense}

    def draw_rad(self, dense: torch.Tensor, eps: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` points of S drawn without replacement with the RAD density."""
        p = rad_probabilities(eps, self.k, self.c)
        if int((p > 0).sum()) >= n and len(p) <= MULTINOMIAL_CATEGORIES:
            index = torch.multinomial(p, n, replacement=False, generator=self.generator)
        else:  # c = 0 with a large k or zero residuals (too few weights are representable), or
            # a dense set beyond torch.multinomial's categories: the same law, by keys
            index = self._draw_by_keys(rad_log_weights(eps, self.k, self.c), n)
        return dense[index.to(dense.device)]

    def _draw_by_keys(self, log_p: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` indices drawn without replacement with weights exp(``log_p``), from the log
        weights: the largest log p + Gumbel noise (Efraimidis and Spirakis' keys), exact where
        exp underflows; points of weight 0 come last, in random order."""
        positive = torch.isfinite(log_p).nonzero().reshape(-1)
        u = torch.rand(len(positive), generator=self.generator, dtype=torch.float64)
        keys = log_p[positive] - torch.log(-torch.log(u))
        first = positive[torch.argsort(keys, descending=True)]
        zero = (~torch.isfinite(log_p)).nonzero().reshape(-1)
        rest = zero[torch.randperm(len(zero), generator=self.generator)]
        return torch.cat([first, rest])[:n]


class RAD(DenseSetSampler):
    """RAD: every round, replace the whole set by N points of a fresh dense set S drawn without
    replacement with p(x) proportional to eps(x)^k / mean_S(eps^k) + c."""

    name = "rad"

    def bind(self, *args: Any, **kwargs: Any) -> None:
        """:meth:`Sampler.bind`; refuses a dense set smaller than N."""
        super().bind(*args, **kwargs)
        if self.n_dense < self.n_points:
            raise ValueError(
                f"sampler.n_dense={self.n_dense} is not allowed with n_points={self.n_points}: "
                "RAD draws N points from the dense set without replacement, so n_dense >= "
                "n_points"
            )

    def update(self, points: torch.Tensor, residual: ResidualScorer, round_index: int) -> Update:
        dense, eps = self.score_dense(residual)
        return Update(self.draw_rad(dense, eps, self.n_points), self.dense_stats())


class _Refinement(DenseSetSampler):
    """RAR: start from N/2 uniform points and add points every round from a fresh dense set.

    Args:
        add_fraction: points added per round as a fraction of N: the published recipe's
            N/200 (0.005; 10 points a round for N = 2000, so N is reached after 100 rounds,
            the reference budget); None adds N/(2 rounds) a round, reaching N after the
            run's last round whatever the budget.
        n_dense, k, c, chunk_size: as :class:`DenseSetSampler`.
    """

    def __init__(
        self,
        add_fraction: float | None = 0.005,
        n_dense: int = 100_000,
        k: float = 1.0,
        c: float = 1.0,
        chunk_size: int | None = None,
    ):
        super().__init__(n_dense, k, c, chunk_size)
        if add_fraction is not None and not 0 < add_fraction <= 0.5:
            raise ValueError(
                f"sampler.add_fraction={add_fraction!r} is not allowed; use null or a number "
                "in (0, 0.5]"
            )
        self.add_fraction = None if add_fraction is None else float(add_fraction)

    def bind(self, *args: Any, **kwargs: Any) -> None:
        """:meth:`Sampler.bind`; refuses ``rounds`` 0 and a dense set smaller than a round's
        draw."""
        super().bind(*args, **kwargs)
        n_points, rounds = self.n_points, self.rounds
        if rounds < 1:
            raise ValueError(
                f"rounds={rounds} is not allowed for sampler={self.name}: it adds "
                "points during the rounds, so rounds >= 1"
            )
        largest = max(self.n_added(r) for r in range(1, rounds + 1))
        if self.n_dense < largest:
            raise ValueError(
                f"sampler.n_dense={self.n_dense} is too small for n_points={n_points} and "
                f"rounds={rounds}: a round draws up to {largest} points from the dense set"
            )

    def n_added(self, round_index: int) -> int:
        """Points added in round ``round_index`` (1 to ``rounds``); the set never exceeds N."""
        start, n = self.n_points // 2, self.n_points
        if self.add_fraction is None:  # N/(2 rounds) a round: round ``rounds`` ends at N
            grow = n - start
            return grow * round_index // self.rounds - grow * (round_index - 1) // self.rounds
        step = max(1, round(self.add_fraction * n))
        before = min(start + step * (round_index - 1), n)
        return min(start + step * round_index, n) - before

    def initial(self) -> Update:
        return Update(self.fresh(self.n_points // 2))

    def update(self, points: torch.Tensor, residual: ResidualScorer, round_index: int) -> Update:
        n_new = self.n_added(min(round_index, self.rounds))
        if round_index > self.rounds or n_new == 0:
            return Update(points)
        dense, eps = self.score_dense(residual)
        return Update(torch.cat([points, self.select(dense, eps, n_new)]), self.dense_stats())

    def select(self, dense: torch.Tensor, eps: torch.Tensor, n: int) -> torch.Tensor:
        raise NotImplementedError


class RARD(_Refinement):
    """RAR-D: add points drawn with the RAD density from a fresh dense set."""

    name = "rar_d"

    def select(self, dense, eps, n):
        return self.draw_rad(dense, eps, n)


class RARG(_Refinement):
    """RAR-G (Lu et al., 2021): add the points of a fresh dense set with the largest residual."""

    name = "rar_g"

    def select(self, dense, eps, n):
        return dense[torch.topk(eps, n).indices.to(dense.device)]
