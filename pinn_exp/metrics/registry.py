"""The metrics a run records after every round, in one registry (as DeepXDE's
``metrics.get``).

A metric is a function of an :class:`Evaluation` (the model's prediction and the reference on
the PDE's test set, the collocation set, a residual scorer) that returns one number. Adding a
metric is one function and its ``@metric`` line; it then appears in ``metrics.json`` (final
value and ``NAME_per_round``), in each round's statistics, and in the report's columns, formatted
as the registry says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pinn_exp.metrics.error import l2_relative_error
from pinn_exp.metrics.residual import concentration

#: the metric of a run's headline number, the report's default table and ``run.py``'s return
PRIMARY = "l2_rel_error"


@dataclass
class Evaluation:
    """What a metric may read at the end of a round.

    Attributes:
        prediction: u on the test set, (m,), float64.
        reference: the reference solution there, (m,), float64.
        x_test: the test points, (m, d).
        points: the current collocation set, (N, d).
        probes: a fixed uniform sample of the domain, the same every round (locates the
            top-residual region).
        residual: |PDE residual| at given points, without a graph; not counted in the
            run's ``n_residual_evals`` (that count is the samplers').
    """

    prediction: torch.Tensor
    reference: torch.Tensor
    x_test: torch.Tensor
    points: torch.Tensor
    probes: torch.Tensor
    residual: Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Metric:
    """A registered metric.

    Attributes:
        name: the record's field (and column) name.
        fn: ``fn(evaluation) -> float``.
        scientific: shown in scientific notation in tables (errors), else plainly.
        description: one line for the docs and ``--help``.
    """

    name: str
    fn: Callable[[Evaluation], float]
    scientific: bool = True
    description: str = ""


METRICS: dict[str, Metric] = {}


def metric(name: str, scientific: bool = True):
    """Registers the decorated ``fn(evaluation) -> float`` as metric ``name``."""

    def register(fn: Callable[[Evaluation], float]) -> Callable[[Evaluation], float]:
        doc = (fn.__doc__ or "").strip().splitlines()
        METRICS[name] = Metric(name, fn, scientific, doc[0] if doc else "")
        return fn

    return register


def get(name: str) -> Metric:
    """The metric ``name``; a KeyError names the registered ones."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"no metric {name!r}; registered: {sorted(METRICS)}") from None


def evaluate_all(evaluation: Evaluation) -> dict[str, float]:
    """Every registered metric of ``evaluation``, in registration order."""
    return {name: float(m.fn(evaluation)) for name, m in METRICS.items()}


def per_round(name: str) -> str:
    """The record field holding metric ``name`` after each round."""
    return f"{name}_per_round"


# ------------------------------------------------------------------------------- metrics


@metric(PRIMARY)
def _l2_rel_error(ev: Evaluation) -> float:
    """Relative L2 error on the test set, ||u - u_ref|| / ||u_ref|| (DeepXDE's definition)."""
    return l2_relative_error(ev.prediction, ev.reference)


@metric("max_abs_error")
def _max_abs_error(ev: Evaluation) -> float:
    """Largest absolute error on the test set, max |u - u_ref|."""
    return float((ev.prediction - ev.reference).abs().max())


@metric("concentration", scientific=False)
def _concentration(ev: Evaluation) -> float:
    """Share of the collocation points in the top-5 % residual region, over 5 % (1: uniform)."""
    return concentration(ev.residual, ev.points, ev.probes)
