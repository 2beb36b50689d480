"""RSmote with a small scored global candidate set (an answer to RSmote's open problem of
missing high-residual regions that no current point lies in).

One update on the current N points, every ``every`` rounds (the other rounds are RSmote's):

1. draw M = ``n_candidates`` fresh uniform points of the domain (default 2N, against RAD's
   100,000) and score eps on them graph-free, in chunks of ``chunk_size``, as RAD scores its
   dense set; score eps on the N current points;
2. the ceil(lambda N) points of the union (current points and candidates) with the largest eps
   form the positive class P; the current points outside P are the negatives, the candidates
   outside P are dropped;
3. then as RSmote: SMOTE makes synthetic points between positive neighbours, negatives are kept
   at random (a fraction ``refresh`` of N replaced by fresh uniform points), N points in all.

So a candidate enters the set only if its eps beats the lambda-quantile of the union; where the
current set already covers the large residuals the update is RSmote's with M more scored points.
"""

from __future__ import annotations

import torch

from pinn_exp.samplers.base import ResidualScorer, Update
from pinn_exp.samplers.rsmote import RSmote


class RSmoteHybrid(RSmote):
    """RSmote plus a scored global candidate set each ``every`` rounds.

    Args:
        ratio, k_neighbors, oversampler, refresh, synthetic: as :class:`RSmote` (the class
            defaults are the paper's; ``sampler=rsmote_hybrid`` sets those of ``sampler=rsmote``).
        n_candidates: size M of the candidate set, >= 1; None: 2N.
        every: the candidates are drawn in rounds 1, 1 + every, 1 + 2 every, ...; >= 1.
        chunk_size: candidates scored per pass; None scores them in one pass.
    """

    name = "rsmote_hybrid"

    def __init__(
        self,
        ratio: float = 0.45,
        k_neighbors: int = 5,
        oversampler: str = "smote",
        refresh: float = 0.0,
        synthetic: float | None = None,
        n_candidates: int | None = None,
        every: int = 1,
        chunk_size: int | None = None,
    ):
        super().__init__(ratio, k_neighbors, oversampler, refresh, synthetic)
        if n_candidates is not None and int(n_candidates) < 1:
            raise ValueError(
                f"sampler.n_candidates={n_candidates!r} is not allowed; use null (2 n_points) or "
                "an integer >= 1"
            )
        if int(every) < 1:
            raise ValueError(f"sampler.every={every!r} is not allowed; it must be an integer >= 1")
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(
                f"sampler.chunk_size={chunk_size!r} is not allowed; use null or an integer >= 1"
            )
        self.n_candidates = None if n_candidates is None else int(n_candidates)
        self.every = int(every)
        self.chunk_size = None if chunk_size is None else int(chunk_size)

    #: the key of the scored set's size, for the factory's memory refusals
    DENSE_KEY = "n_candidates"

    @property
    def n_dense(self) -> int | None:
        """The candidate-set size M once bound (what the factory's memory checks read)."""
        if self.n_candidates is not None:
            return self.n_candidates
        return 2 * self.n_points if hasattr(self, "n_points") else None

    def uses_candidates(self, round_index: int) -> bool:
        """True in the rounds that draw candidates: 1, 1 + every, 1 + 2 every, ..."""
        return (round_index - 1) % self.every == 0

    def update(self, points: torch.Tensor, residual: ResidualScorer, round_index: int) -> Update:
        if not self.uses_candidates(round_index):
            points, stats = super().update(points, residual, round_index)
            return Update(points, {**stats, "n_dense": 0, "n_candidates_positive": 0})
        n = len(points)
        eps = residual(points)
        candidates = self.fresh(self.n_dense)
        eps_candidates = residual(candidates, self.chunk_size)
        counts = self.counts(n)
        union_eps = torch.cat([eps, eps_candidates.to(eps.device, eps.dtype)])
        top = torch.argsort(union_eps, descending=True)[: counts["positive"]]
        from_points = top[top < n]
        from_candidates = top[top >= n] - n
        positive = torch.cat(
            [points[from_points.to(points.device)], candidates[from_candidates.to(points.device)]]
        )
        is_negative = torch.ones(n, dtype=torch.bool, device=points.device)
        is_negative[from_points.to(points.device)] = False
        new, stats = self.rebuild(positive, points[is_negative], counts)
        stats = {**stats, "n_dense": self.n_dense, "n_candidates_positive": len(from_candidates)}
        return Update(new, stats)
