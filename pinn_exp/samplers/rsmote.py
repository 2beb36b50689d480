"""RSmote: residual-based SMOTE (Luo, Yang, Yuan, Xu and Hao, arXiv 2501.11222).

One update on the current N points:

1. score eps on the N points; the ceil(lambda N) largest form the positive (minority) class P;
2. SMOTE creates N - floor(N/2) - |P| synthetic points, each on the segment between a positive
   point and one of its ``k_neighbors`` nearest positive neighbours;
3. floor(N/2) negatives are kept at random (of which a fraction ``refresh`` of N is replaced by
   fresh uniform points, an option beyond the paper);
4. the new set is P + synthetic + kept negatives: N points, the two classes balanced.

The oversampling itself is imbalanced-learn's (``smote``, ``borderline_smote``, ``adasyn``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from imblearn.over_sampling import ADASYN, SMOTE, BorderlineSMOTE

from pinn_exp.samplers.base import ResidualScorer, Sampler

OVERSAMPLERS = ("smote", "borderline_smote", "adasyn")
MAX_REDRAWS = 10


class RSmote(Sampler):
    """Residual-based SMOTE with a fixed set size.

    Args:
        ratio: lambda, the fraction of points that form the positive class; in (0, 0.5).
        k_neighbors: neighbours searched inside the positive class.
        oversampler: ``smote`` (the paper), ``borderline_smote`` or ``adasyn``.
        refresh: fraction of each new set drawn fresh and uniform (0 = the paper), in [0, 0.5).
    """

    name = "rsmote"

    def __init__(
        self,
        ratio: float = 0.45,
        k_neighbors: int = 5,
        oversampler: str = "smote",
        refresh: float = 0.0,
    ):
        super().__init__()
        if not 0.0 < ratio < 0.5:
            raise ValueError(
                f"sampler.ratio={ratio!r} is not allowed: RSmote needs 0 < ratio < 0.5"
            )
        if int(k_neighbors) < 1:
            raise ValueError(f"sampler.k_neighbors={k_neighbors!r} is not allowed; it must be >= 1")
        if oversampler not in OVERSAMPLERS:
            raise ValueError(
                f"sampler.oversampler={oversampler!r} is not allowed; choose one of {OVERSAMPLERS}"
            )
        if not 0.0 <= refresh < 0.5:
            raise ValueError(f"sampler.refresh={refresh!r} is not allowed; it must be in [0, 0.5)")
        self.ratio = float(ratio)
        self.k_neighbors = int(k_neighbors)
        self.oversampler = oversampler
        self.refresh = float(refresh)

    def counts(self, n: int) -> dict[str, int]:
        """How many positive, synthetic, kept-negative and fresh points a set of ``n`` gets."""
        n_positive = math.ceil(self.ratio * n)
        n_negative = n // 2
        n_fresh = min(round(self.refresh * n), n_negative)
        return {
            "positive": n_positive,
            "synthetic": n - n_negative - n_positive,
            "kept": n_negative - n_fresh,
            "fresh": n_fresh,
        }

    def check(self, n_points: int, rounds: int) -> None:
        n_positive = self.counts(n_points)["positive"]
        if n_positive <= self.k_neighbors:
            raise ValueError(
                f"n_points={n_points} is too small for sampler.k_neighbors={self.k_neighbors} "
                f"with sampler.ratio={self.ratio}: the positive class has {n_positive} points and "
                f"SMOTE needs more than k_neighbors; raise n_points or lower k_neighbors"
            )

    def update(self, points: torch.Tensor, residual: ResidualScorer, round_index: int):
        eps = residual(points)
        counts = self.counts(len(points))
        order = torch.argsort(eps, descending=True)
        positive = points[order[: counts["positive"]]]
        negative = points[order[counts["positive"] :]]
        keep = torch.randperm(len(negative), generator=self.generator)[: counts["kept"]]
        synthetic = self.synthesise(positive, negative, counts["synthetic"])
        parts = [
            positive,
            synthetic,
            negative[keep.to(negative.device)],
            self.fresh(counts["fresh"]),
        ]
        return torch.cat(parts)

    def synthesise(self, positive: torch.Tensor, negative: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` synthetic points inside the domain, oversampled from the positive class."""
        self.stats = {"n_redrawn": 0, "n_topped_up": 0}
        pos = positive.detach().cpu().double().numpy()
        neg = negative.detach().cpu().double().numpy()
        synthetic = self._oversample(pos, neg, n, self.oversampler)
        if len(synthetic) < n:  # borderline/ADASYN may find too few samples to work on
            self.stats["n_topped_up"] = n - len(synthetic)
            synthetic = np.concatenate([synthetic, self._oversample(pos, neg, n - len(synthetic))])
        out = torch.as_tensor(synthetic[:n], dtype=positive.dtype, device=positive.device)
        return self._redraw_outside(out, pos, neg)

    def _redraw_outside(self, synthetic: torch.Tensor, pos: np.ndarray, neg: np.ndarray):
        # A segment between two points of a non-convex domain may leave it: redraw those points.
        for _ in range(MAX_REDRAWS):
            outside = ~self.domain.contains(synthetic)
            n_out = int(outside.sum())
            if n_out == 0:
                return synthetic
            self.stats["n_redrawn"] += n_out
            new = self._oversample(pos, neg, n_out)
            synthetic[outside] = torch.as_tensor(
                new, dtype=synthetic.dtype, device=synthetic.device
            )
        # Still outside after MAX_REDRAWS tries: fall back to copies of positive points.
        outside = ~self.domain.contains(synthetic)
        pick = torch.randint(0, len(pos), (int(outside.sum()),), generator=self.generator)
        synthetic[outside] = torch.as_tensor(
            pos[pick.numpy()], dtype=synthetic.dtype, device=synthetic.device
        )
        return synthetic

    def _oversample(self, pos: np.ndarray, neg: np.ndarray, n: int, method: str = "smote"):
        """Synthetic minority points from imbalanced-learn; may return fewer than ``n``."""
        if n <= 0:
            return np.empty((0, pos.shape[1]))
        x = np.concatenate([pos, neg])
        y = np.concatenate([np.ones(len(pos), dtype=int), np.zeros(len(neg), dtype=int)])
        seed = self.integer_seed()
        strategy = {1: len(pos) + n}
        if method == "smote":
            sampler = SMOTE(
                sampling_strategy=strategy, k_neighbors=self.k_neighbors, random_state=seed
            )
        elif method == "borderline_smote":
            sampler = BorderlineSMOTE(
                sampling_strategy=strategy, k_neighbors=self.k_neighbors, random_state=seed
            )
        else:
            sampler = ADASYN(
                sampling_strategy=strategy, n_neighbors=self.k_neighbors, random_state=seed
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                x_res, _ = sampler.fit_resample(x, y)
        except (RuntimeError, ValueError):  # ADASYN: no negative among a point's neighbours
            if method == "smote":
                raise
            return np.empty((0, pos.shape[1]))
        generated = x_res[len(x) :]
        if len(generated) > n:
            pick = torch.randperm(len(generated), generator=self.generator)[:n].numpy()
            generated = generated[np.sort(pick)]
        return generated
