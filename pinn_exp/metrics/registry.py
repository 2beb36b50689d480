"""The metrics a run records after every round, in one registry (as DeepXDE's
``metrics.get``).

A metric is a function of an :class:`Evaluation` (the model's prediction and the reference on
the PDE's test set, the collocation set, a residual scorer) that returns one number. Adding a
metric is one function and its ``@metric`` line; it then appears in ``metrics.json`` (final
value and ``NAME_per_round``), in each round's statistics, and in the report's columns, formatted
as the registry says.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pinn_exp.metrics.error import l2_relative_error
from pinn_exp.metrics.residual import concentration

#: the metric of a run's headline number, the report's default table and ``run.py``'s return
PRIMARY = "l2_rel_error"
#: the values of a metric's ``better``: which direction is better (None: neither)
LOWER, HIGHER = "lower", "higher"


def _check_better(name: str, better: str | None) -> None:
    if better not in (LOWER, HIGHER, None):
        raise ValueError(f"metric {name!r}: better={better!r}; allowed: 'lower', 'higher', None")


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
        positive: never zero or negative and spread across seeds by a factor (errors): the
            report gives its intervals on the log scale (geometric mean), else linearly.
        better: ``"lower"`` when a smaller value is better (errors), ``"higher"`` when a larger
            one is, None when neither is (``concentration``): the report's paired comparison
            then says which value is the smaller, not which sampler is better.
    """

    name: str
    fn: Callable[[Evaluation], float]
    scientific: bool = True
    description: str = ""
    positive: bool = False
    better: str | None = LOWER


METRICS: dict[str, Metric] = {}


def metric(name: str, scientific: bool = True, positive: bool = False, better: str | None = LOWER):
    """Registers the decorated ``fn(evaluation) -> float`` as metric ``name`` (``positive``,
    ``better``: see :class:`Metric`)."""
    _check_better(name, better)

    def register(fn: Callable[[Evaluation], float]) -> Callable[[Evaluation], float]:
        doc = (fn.__doc__ or "").strip().splitlines()
        METRICS[name] = Metric(name, fn, scientific, doc[0] if doc else "", positive, better)
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


@metric(PRIMARY, positive=True)
def _l2_rel_error(ev: Evaluation) -> float:
    """Relative L2 error on the test set, ||u - u_ref|| / ||u_ref|| (DeepXDE's definition)."""
    return l2_relative_error(ev.prediction, ev.reference)


@metric("max_abs_error", positive=True)
def _max_abs_error(ev: Evaluation) -> float:
    """Largest absolute error on the test set, max |u - u_ref|."""
    return float((ev.prediction - ev.reference).abs().max())


@metric("concentration", scientific=False, better=None)
def _concentration(ev: Evaluation) -> float:
    """Share of the collocation points in the top-5 % residual region, over 5 % (1: uniform)."""
    return concentration(ev.residual, ev.points, ev.probes)


# ----------------------------------------------------------------------- history metrics


@dataclass(frozen=True)
class HistoryMetric:
    """A number computed from a metric's per-round values (``NAME_per_round`` of the record),
    not from one round's :class:`Evaluation`: the report derives it for each run and shows it
    as a column (``python -m pinn_exp.report DIR --metric NAME``, paired statistics included).

    Attributes:
        name: the column's name.
        fn: ``fn(values) -> float``, ``values[r]`` being the metric after round r (round 0: the
            initial training); NaN when the values are too few.
        source: the per-round metric it reads.
        scientific: shown in scientific notation in tables.
        description: one line for the docs.
        positive: as :class:`Metric`'s.
        better: as :class:`Metric`'s.
    """

    name: str
    fn: Callable[[list[float]], float]
    source: str = PRIMARY
    scientific: bool = False
    description: str = ""
    positive: bool = False
    better: str | None = None


HISTORY_METRICS: dict[str, HistoryMetric] = {}


def history_metric(
    name: str, source: str = PRIMARY, scientific: bool = False, better: str | None = None
):
    """Registers the decorated ``fn(per_round_values) -> float`` as history metric ``name``
    (``better``: see :class:`Metric`)."""
    _check_better(name, better)

    def register(fn: Callable[[list[float]], float]) -> Callable[[list[float]], float]:
        doc = (fn.__doc__ or "").strip().splitlines()
        HISTORY_METRICS[name] = HistoryMetric(
            name, fn, source, scientific, doc[0] if doc else "", better=better
        )
        return fn

    return register


def history_all(per_round_values: dict[str, list[float] | None]) -> dict[str, float]:
    """Every history metric of one run, from its per-round lists (``NAME_per_round`` -> list);
    NaN where the source list is missing."""
    out = {}
    for name, m in HISTORY_METRICS.items():
        values = per_round_values.get(per_round(m.source))
        out[name] = float(m.fn(list(values))) if values is not None else math.nan
    return out


#: the first round whose change from the round before counts in ``fluctuation``
FLUCTUATION_FROM = 2


@history_metric("fluctuation", better=LOWER)  # steadier errors from round to round
def fluctuation(values: list[float]) -> float:
    """Median |log10 e_r - log10 e_(r-1)| over rounds r >= 2 (e: l2_rel_error after round r)."""
    changes = [
        abs(math.log10(b) - math.log10(a))
        for a, b in zip(values[FLUCTUATION_FROM - 1 : -1], values[FLUCTUATION_FROM:])
        if a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)
    ]
    return statistics.median(changes) if changes else math.nan
