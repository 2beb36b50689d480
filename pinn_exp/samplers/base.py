"""The sampler interface.

A sampler owns the interior collocation set. The training loop calls :meth:`Sampler.bind` once
(domain, size N, number of rounds, random generator, device), :meth:`Sampler.initial` for the
first set, and :meth:`Sampler.update` after each training stage with the current points and a
residual scorer. A sampler never imports a PDE: it sees only the :class:`Domain` and the scorer.

To add a sampler: subclass :class:`Sampler`, implement ``update`` (and ``initial`` if the first
set is not N uniform points), then write ``conf/sampler/NAME.yaml`` whose ``_target_`` names the
class.
"""

from __future__ import annotations

import inspect
import warnings
from abc import ABC, abstractmethod
from typing import Protocol

import numpy as np
import torch
from scipy.stats import qmc

from pinn_exp.domains import Domain

UNIFORM_METHODS = ("pseudo", "sobol", "halton", "lhs")


class ResidualScorer(Protocol):
    """eps(x) = |PDE residual at x|, detached, shape (n,); scored in chunks of ``chunk_size``."""

    def __call__(self, x: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor: ...


class Sampler(ABC):
    """Base class of every sampler.

    Attributes:
        name: short name used in records.
        stats: what the last call did (for instance ``n_dense``), merged into the round record.
    """

    name: str = "sampler"
    #: the value recorded as ``ratio`` in metrics.json (RSmote's lambda), None where unused
    ratio: float | None = None

    def __init__(self) -> None:
        self.stats: dict[str, float | int] = {}

    def bind(
        self,
        domain: Domain,
        n_points: int,
        rounds: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        """Gives the sampler what it needs to draw points. Called once per run."""
        self.domain = domain
        self.n_points = int(n_points)
        self.rounds = int(rounds)
        self.generator = generator
        self.device = torch.device(device)
        self.dtype = dtype

    def check(self, n_points: int, rounds: int) -> None:
        """Raises ValueError (naming the key) if the sampler cannot work with this N or rounds."""
        return None

    def initial(self) -> torch.Tensor:
        """The first interior set; by default N uniform (pseudo-random) points."""
        return self.fresh(self.n_points)

    @abstractmethod
    def update(self, points: torch.Tensor, residual: ResidualScorer, round_index: int):
        """Returns the next interior set from the current ``points`` and the residual scorer.

        Args:
            points: the current interior set, (N, dim), on the run's device.
            residual: scorer of |residual|; every call counts towards ``n_residual_evals``.
            round_index: 1 for the first sampling round, up to ``rounds``.
        """

    def fresh(self, n: int) -> torch.Tensor:
        """``n`` fresh pseudo-random uniform points of the domain, on the run's device."""
        return self.domain.sample(n, self.generator, self.device, self.dtype)

    def integer_seed(self) -> int:
        """A seed for NumPy-based libraries, drawn from the run's generator (so reproducible)."""
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))

    def __repr__(self) -> str:
        """The class and every constructor argument's current value, e.g. for the run header:
        ``RAD(n_dense=100000, k=1.0, c=1.0, chunk_size=None)``."""
        params = inspect.signature(type(self).__init__).parameters
        shown = [
            f"{name}={getattr(self, name)!r}"
            for name in params
            if name != "self" and hasattr(self, name)
        ]
        return f"{type(self).__name__}({', '.join(shown)})"


def qmc_points(domain: Domain, n: int, method: str, seed: int) -> np.ndarray:
    """``n`` points of ``domain`` from a scipy.stats.qmc sequence (or pseudo-random).

    Args:
        domain: where the points go; the unit-cube points are mapped by ``domain.from_unit``.
        n: number of points.
        method: ``pseudo``, ``sobol`` (scrambled), ``halton`` (scrambled) or ``lhs``.
        seed: seed of the scrambling / the pseudo-random generator.

    Returns:
        Array of shape (n, domain.dim), float64.
    """
    d = domain.unit_dim
    if method == "pseudo":
        u = np.random.default_rng(seed).random((n, d))
    elif method == "sobol":
        with warnings.catch_warnings():  # balance properties need n = 2^m; any n is fine here
            warnings.simplefilter("ignore", UserWarning)
            u = qmc.Sobol(d, scramble=True, seed=seed).random(n)
    elif method == "halton":
        u = qmc.Halton(d, scramble=True, seed=seed).random(n)
    elif method == "lhs":
        u = qmc.LatinHypercube(d, seed=seed).random(n)
    else:
        raise ValueError(
            f"sampler.method={method!r} is not allowed; choose one of {UNIFORM_METHODS}"
        )
    return domain.from_unit(u)


def rad_probabilities(eps: torch.Tensor, k: float, c: float) -> torch.Tensor:
    """RAD density on a dense set: p(x) proportional to eps^k / mean(eps^k) + c (Wu et al. 2023).

    Computed in float64 on the CPU so the draw that follows is device-independent.
    """
    w = eps.detach().to("cpu", torch.float64) ** k
    mean = w.mean()
    w = w / mean if mean > 0 else torch.zeros_like(w)
    p = w + c
    return p if p.sum() > 0 else torch.ones_like(p)
