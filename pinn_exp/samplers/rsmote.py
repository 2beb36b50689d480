"""RSmote: residual-based SMOTE (Luo, Yang, Yuan, Xu and Hao, arXiv 2501.11222).

One update on the current N points:

1. score eps on the N points; the ceil(lambda N) largest form the positive (minority) class P;
2. SMOTE creates N - floor(N/2) - |P| synthetic points, each on the segment between a positive
   point and one of its ``k_neighbors`` nearest positive neighbours;
3. floor(N/2) negatives are kept at random (of which a fraction ``refresh`` of N is replaced by
   fresh uniform points, an option beyond the paper);
4. the new set is P + synthetic + kept negatives: N points, the two classes balanced.

So lambda sets both which points are positive and how many points move (N/2 - ceil(lambda N)
synthetic points replace as many negatives). ``synthetic`` fixes the second: a fraction of N
made synthetic whatever lambda is, the kept negatives filling the rest (the lambda ablation's
control arm).

The oversampling itself is imbalanced-learn's (``smote``, ``borderline_smote``, ``adasyn``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from imblearn.over_sampling import ADASYN, SMOTE, BorderlineSMOTE

from pinn_exp.samplers.base import ResidualScorer, Sampler, Update

OVERSAMPLERS = ("smote", "borderline_smote", "adasyn")
MAX_REDRAWS = 10


class RSmote(Sampler):
    """Residual-based SMOTE with a fixed set size. The defaults are the paper's; the
    ``sampler=rsmote`` option of this framework sets ``ratio`` 0.1 and ``refresh`` 0.1
    (conf/sampler/rsmote.yaml says why).

    Args:
        ratio: lambda, the fraction of points that form the positive class; in (0, 0.5).
        k_neighbors: neighbours searched inside the positive class.
        oversampler: ``smote`` (the paper), ``borderline_smote`` or ``adasyn``.
        refresh: fraction of each new set drawn fresh and uniform (0 = the paper), in [0, 0.5).
        synthetic: fraction of N made synthetic each update, in (0, 1 - ratio); None (the
            paper) balances the classes, N/2 - ceil(ratio N).
    """

    name = "rsmote"

    def __init__(
        self,
        ratio: float = 0.45,
        k_neighbors: int = 5,
        oversampler: str = "smote",
        refresh: float = 0.0,
        synthetic: float | None = None,
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
        if synthetic is not None and not 0.0 < synthetic < 1.0 - ratio:
            raise ValueError(
                f"sampler.synthetic={synthetic!r} is not allowed with sampler.ratio={ratio}: use "
                f"null (balanced classes) or a number in (0, 1 - ratio)"
            )
        self.synthetic = None if synthetic is None else float(synthetic)
        self.ratio = float(ratio)
        self.k_neighbors = int(k_neighbors)
        self.oversampler = oversampler
        self.refresh = float(refresh)

    def counts(self, n: int) -> dict[str, int]:
        """How many positive, synthetic, kept-negative and fresh points a set of ``n`` gets."""
        n_positive = math.ceil(self.ratio * n)
        if self.synthetic is None:  # the paper: the classes balanced
            n_synthetic = n - n // 2 - n_positive
        else:
            n_synthetic = min(max(round(self.synthetic * n), 1), n - n_positive)
        n_negative = n - n_positive - n_synthetic
        n_fresh = min(round(self.refresh * n), n_negative)
        return {
            "positive": n_positive,
            "synthetic": n_synthetic,
            "kept": n_negative - n_fresh,
            "fresh": n_fresh,
        }

    def bind(self, *args: Any, **kwargs: Any) -> None:
        """:meth:`Sampler.bind`; refuses an N whose positive class is too small for SMOTE."""
        super().bind(*args, **kwargs)
        n_positive = self.counts(self.n_points)["positive"]
        if n_positive <= self.k_neighbors:
            raise ValueError(
                f"n_points={self.n_points} is too small for sampler.k_neighbors={self.k_neighbors} "
                f"with sampler.ratio={self.ratio}: the positive class has {n_positive} points and "
                f"SMOTE needs more than k_neighbors; raise n_points or lower k_neighbors"
            )

    def record_fields(self) -> dict[str, Any]:
        """lambda, recorded as ``ratio``."""
        return {"ratio": self.ratio}

    def update(self, points: torch.Tensor, residual: ResidualScorer, round_index: int) -> Update:
        eps = residual(points)
        counts = self.counts(len(points))
        order = torch.argsort(eps, descending=True)
        positive = points[order[: counts["positive"]]]
        negative = points[order[counts["positive"] :]]
        return self.rebuild(positive, negative, counts)

    def rebuild(self, positive: torch.Tensor, negative: torch.Tensor, counts: dict) -> Update:
        """The new set from the classes: the positives, synthetic points oversampled from them,
        negatives kept at random and fresh uniform points, as many of each as ``counts``
        (:meth:`counts`) says, in that order; the stats of :meth:`synthesise`."""
        keep = torch.randperm(len(negative), generator=self.generator)[: counts["kept"]]
        synthetic, stats = self.synthesise(positive, negative, counts["synthetic"])
        parts = [
            positive,
            synthetic,
            negative[keep.to(negative.device)],
            self.fresh(counts["fresh"]),
        ]
        return Update(torch.cat(parts), stats)

    def synthesise(
        self, positive: torch.Tensor, negative: torch.Tensor, n: int
    ) -> tuple[torch.Tensor, dict[str, int]]:
        """``n`` synthetic points inside the domain, oversampled from the positive class.

        Returns:
            The points, (n, dim), and the counts ``n_redrawn`` (redraws of points that fell
            outside the domain) and ``n_topped_up`` (points made by plain SMOTE because
            Borderline-SMOTE or ADASYN made too few).
        """
        pos = positive.detach().cpu().double().numpy()
        neg = negative.detach().cpu().double().numpy()
        synthetic = self._oversample(pos, neg, n, self.oversampler)
        n_topped_up = n - len(synthetic)
        if n_topped_up > 0:  # borderline/ADASYN may find too few samples to work on
            synthetic = np.concatenate([synthetic, self._oversample(pos, neg, n_topped_up)])
        out = torch.as_tensor(synthetic[:n], dtype=positive.dtype, device=positive.device)
        out, n_redrawn = self._redraw_outside(out, pos, neg)
        return out, {"n_redrawn": n_redrawn, "n_topped_up": n_topped_up}

    def _redraw_outside(
        self, synthetic: torch.Tensor, pos: np.ndarray, neg: np.ndarray
    ) -> tuple[torch.Tensor, int]:
        """Redraws the synthetic points outside the domain; returns the points and how many
        redraws it made."""
        # A segment between two points of a non-convex domain may leave it: redraw those points.
        n_redrawn = 0
        for _ in range(MAX_REDRAWS):
            outside = ~self.domain.contains(synthetic)
            n_out = int(outside.sum())
            if n_out == 0:
                return synthetic, n_redrawn
            n_redrawn += n_out
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
        return synthetic, n_redrawn

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
