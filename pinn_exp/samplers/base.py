"""The sampler interface.

A sampler owns the interior collocation set. A run calls :meth:`Sampler.bind` once (domain,
size N, number of rounds, random generator, device; it refuses settings the sampler cannot
work with), :meth:`Sampler.initial` for the first set, and :meth:`Sampler.update` after each
training stage with the current points and a residual scorer. ``initial`` and ``update`` return
an :class:`Update`: the new set and what the call did. A sampler never imports a PDE: it sees
only the :class:`Domain` and the scorer.

To add a sampler: subclass :class:`Sampler`, implement ``update`` (and ``initial`` if the first
set is not N uniform points), then write ``conf/sampler/NAME.yaml`` whose ``_target_`` names the
class.
"""

from __future__ import annotations

import inspect
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from scipy.stats import qmc

from pinn_exp.domains import Domain

UNIFORM_METHODS = ("pseudo", "sobol", "halton", "lhs")


class ResidualScorer(Protocol):
    """eps(x) = |PDE residual at x|, detached, shape (n,); scored in chunks of ``chunk_size``."""

    def __call__(self, x: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor: ...


class Update(NamedTuple):
    """What :meth:`Sampler.initial` and :meth:`Sampler.update` return.

    Attributes:
        points: the new interior set, (n, dim), on the run's device.
        stats: what the call did (for instance ``{"n_dense": 100000}``), merged into the
            round's record (``metrics.json: round_stats``); empty by default.
    """

    points: torch.Tensor
    stats: Mapping[str, float | int] = MappingProxyType({})


class Sampler(ABC):
    """Base class of every sampler. The constructor's arguments are the config keys of
    ``sampler.*`` (``pinn_exp/config.py`` derives the schema from the signature).

    Attributes:
        name: short name used in records.
    """

    name: str = "sampler"
    #: Adam steps between updates within a training stage (the trainer copies the new set
    #: into the stage's points, so it must keep N); None: once per round, before the stage
    period: int | None = None
    #: the sampler's recipe is one training stage (Adam with its in-stage updates, then one
    #: L-BFGS run of ``optimizer.single_stage_lbfgs_steps``): the run's rounds are not run
    single_stage: bool = False

    def bind(
        self,
        domain: Domain,
        n_points: int,
        rounds: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        """Gives the sampler what it needs to draw points. Called once per run, before any
        training (:func:`pinn_exp.factory.build`); draws no random number.

        A sampler that cannot work with every N or number of rounds extends this method: it
        calls ``super().bind(...)`` and raises ValueError naming the key.

        Args:
            domain: where the points go.
            n_points: the size N of the interior set.
            rounds: the sampling rounds after the initial training.
            generator: the run's generator (seeded by ``seed``, saved in checkpoints); every
                random number of the sampler comes from it.
            device: where the points live.
            dtype: their floating point type.

        Raises:
            ValueError: the sampler cannot work with this ``n_points`` or ``rounds``.
        """
        self.domain = domain
        self.n_points = int(n_points)
        self.rounds = int(rounds)
        self.generator = generator
        self.device = torch.device(device)
        self.dtype = dtype

    def initial(self) -> Update:
        """The first interior set; by default N uniform (pseudo-random) points."""
        return Update(self.fresh(self.n_points))

    @abstractmethod
    def update(self, points: torch.Tensor, residual: ResidualScorer, round_index: int) -> Update:
        """The next interior set from the current ``points`` and the residual scorer.

        Args:
            points: the current interior set, (N, dim), on the run's device.
            residual: scorer of |residual|; every call counts towards ``n_residual_evals``.
            round_index: 1 for the first sampling round, up to ``rounds``.

        Returns:
            The new set and what the call did (:class:`Update`).
        """

    def record_fields(self) -> dict[str, Any]:
        """The sampler's parameters that the run's record (``metrics.json``) keeps as fields of
        their own, e.g. RSmote's ``{"ratio": 0.1}``; none by default. A key that is not a
        field of :class:`pinn_exp.io.record.RunRecord` is written after the declared fields."""
        return {}

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
