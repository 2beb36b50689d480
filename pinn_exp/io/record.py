"""The run record: the fields of ``metrics.json`` and the names of a run's files, in one place.

The runner fills a :class:`RunRecord`, the report reads its columns and their formats from
here, and ``pinn_exp.load_run`` finds the files by these names. The metric fields (the final
value of every metric of :mod:`pinn_exp.metrics.registry` and its ``NAME_per_round`` list) are
added by :meth:`RunRecord.to_json` after ``dtype``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from pinn_exp.metrics import registry

# ---------------------------------------------------------------------------- a run's files
METRICS = "metrics.json"
HISTORY = "history.csv"
COLLOCATION = "collocation.npz"
#: |residual| on a regular grid after each round (``residual_round_k``), 1-D and 2-D domains
RESIDUAL = "residual.npz"
CHECKPOINT = "checkpoint.pt"
CONFIG = "config_resolved.yaml"
HYDRA_CONFIG = ".hydra/config.yaml"
#: the run's plots: loss per step, error per round, the points, the solution
PLOTS = {
    "loss": "loss.png",
    "error": "error.png",
    "points": "points.png",
    "solution": "solution.png",
    "residual": "residual.png",
}

#: every status a record can have (``running`` until the run ends)
STATUSES = ("running", "ok", "failed", "diverged", "oom")

PLAIN, SCIENTIFIC, TEXT = "plain", "scientific", "text"
#: the units of the record's measured quantities: memory and times, positive and skewed across
#: seeds (the report gives their intervals on the log scale)
MB, SECONDS = "MB", "s"


def _field(
    default: Any = None, fmt: str = TEXT, column: bool = False, unit: str | None = None, **kwargs
):
    """A record field; ``column``: a column of the report's per-run table, ``fmt``: how the
    report formats it, ``unit``: ``MB`` or ``s`` for memory and times."""
    metadata = {"format": fmt, "column": column, "unit": unit}
    return field(default=default, metadata=metadata, **kwargs)


@dataclass
class RunRecord:
    """``metrics.json``: written when a run starts (status ``running``), and again, whatever
    happens, when it ends."""

    status: str = _field("running")
    error: str | None = _field(column=True)  # the failure's message
    # what ran
    pde: str | None = _field(column=True)
    sampler: str | None = _field(column=True)  # the config option (rad_50k, rsmote_paper)
    sampler_class: str | None = _field()
    dim: int | None = _field(fmt=PLAIN, column=True)
    n_points: int | None = _field(fmt=PLAIN, column=True)
    ratio: float | None = _field(fmt=PLAIN, column=True)  # RSmote's lambda, None elsewhere
    seed: int | None = _field(fmt=PLAIN, column=True)
    device: str | None = _field(column=True)
    dtype: str | None = _field(column=True)
    threads: int | None = _field(fmt=PLAIN, column=True)  # torch's CPU threads (device.threads)
    # what it measured
    metrics: dict[str, float | None] = field(default_factory=dict)
    metrics_per_round: dict[str, list[float]] = field(default_factory=dict)
    peak_gpu_mem_mb: float | None = _field(fmt=PLAIN, unit=MB, column=True)
    peak_gpu_mem_mb_train: float | None = _field(fmt=PLAIN, unit=MB, column=True)
    peak_gpu_mem_mb_sampling: float | None = _field(fmt=PLAIN, unit=MB, column=True)
    peak_gpu_reserved_mb: float | None = _field(
        fmt=PLAIN, unit=MB, column=True
    )  # allocator's reserve
    # how much the reserve grew within each phase (peak reserve minus the reserve at its start)
    peak_gpu_reserved_growth_mb_train: float | None = _field(fmt=PLAIN, unit=MB, column=True)
    peak_gpu_reserved_growth_mb_sampling: float | None = _field(fmt=PLAIN, unit=MB, column=True)
    peak_gpu_mem_mb_evaluation: float | None = _field(fmt=PLAIN, unit=MB)
    peak_gpu_reserved_growth_mb_evaluation: float | None = _field(fmt=PLAIN, unit=MB)
    peak_cpu_rss_mb: float | None = _field(
        fmt=PLAIN, unit=MB, column=True
    )  # the process's, whole run
    cpu_rss_start_mb: float | None = _field(
        fmt=PLAIN, unit=MB, column=True
    )  # RSS when the run began
    # peak RSS minus the run's starting RSS: the whole run, then per phase (null where the
    # peak cannot be reset, see cpu_peak_method)
    peak_cpu_rss_increase_mb: float | None = _field(fmt=PLAIN, unit=MB, column=True)
    peak_cpu_rss_increase_mb_setup: float | None = _field(
        fmt=PLAIN, unit=MB
    )  # build to first phase
    peak_cpu_rss_increase_mb_train: float | None = _field(fmt=PLAIN, unit=MB, column=True)
    peak_cpu_rss_increase_mb_sampling: float | None = _field(fmt=PLAIN, unit=MB, column=True)
    peak_cpu_rss_increase_mb_evaluation: float | None = _field(fmt=PLAIN, unit=MB)
    #: how CPU peaks were taken (pinn_exp.metrics.memory): ``clear_refs`` (VmHWM reset per
    #: phase), ``lifetime_vmhwm`` or ``lifetime_ru_maxrss`` (no reset: the process's peak)
    cpu_peak_method: str | None = _field()
    #: the run's time over all its processes, each from its setup on: a resumed run's earlier
    #: ones up to their last checkpoint included (the work it kept), what a killed process did
    #: after it not; a run of one process: its ``wall_time_session_s``
    wall_time_s: float | None = _field(fmt=PLAIN, unit=SECONDS, column=True)
    #: the time of the process that wrote this record (a resume: the remainder alone)
    wall_time_session_s: float | None = _field(fmt=PLAIN, unit=SECONDS)
    time_train_s: float | None = _field(fmt=PLAIN, unit=SECONDS, column=True)
    time_sampling_s: float | None = _field(fmt=PLAIN, unit=SECONDS, column=True)
    n_residual_evals: int = _field(0, fmt=PLAIN, column=True)
    versions: dict[str, str | None] = field(default_factory=dict)
    # where it stopped
    rounds: int | None = _field(fmt=PLAIN)
    round: int | None = _field(fmt=PLAIN)
    step: int | None = _field(fmt=PLAIN)
    phase: str | None = _field()
    last_completed_round: int | None = _field(fmt=PLAIN)
    laplacian: str | None = _field()
    lbfgs_impl: str | None = _field()  # the L-BFGS that ran (optimizer.lbfgs_impl)
    compiled: bool | None = _field()  # optimizer.compile as decided (auto: per run)
    #: null for a single run; ``loop`` or ``vmap`` for a member of a batched ensemble
    #: (``hydra/launcher=batched``): the mode that ran (a loop member is its single run bit
    #: for bit, a vmap member agrees with it to round-off only: another computation)
    batched: str | None = _field()
    ensemble_size: int | None = _field(fmt=PLAIN)  # a member's: the ensemble's S; else null
    #: the same text in every member of one ensemble (its first member's folder and its start
    #: time), null for a single run: the members' shared values count once per ensemble
    ensemble_id: str | None = _field()
    #: true where ``wall_time_s``, ``wall_time_session_s`` and ``time_train_s`` are a fair
    #: share of a batched ensemble's times (the whole over S, a stage over its members), not
    #: the run's own, and the CPU memory peaks the ensemble's (one value for every member);
    #: a resumed member keeps it (its earlier rounds' time is a share)
    time_shared: bool = _field(False)
    overrides: list[str] = field(default_factory=list)
    #: the run's id in the experiment tracker (``logger=mlflow``): a resume continues that run
    mlflow_run_id: str | None = _field()
    #: fields of a user's sampler (``Sampler.record_fields``) that the record does not declare
    extra: dict[str, Any] = field(default_factory=dict)
    round_stats: list[dict] = field(default_factory=list)

    def update(self, **values: Any) -> RunRecord:
        """Sets fields by name; a metric's name sets that metric, any other name goes to
        ``extra`` (written as a field of its own). Returns the record."""
        for key, value in values.items():
            if key in registry.METRICS:
                self.metrics[key] = value
            elif key in _NAMES:
                setattr(self, key, value)
            else:
                self.extra[key] = value
        return self

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``metrics.json``: the fields in order, every registered metric
        (final value, then per round) after ``dtype``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "metrics":
                for name in registry.METRICS:
                    out[name] = self.metrics.get(name)
                    out[registry.per_round(name)] = list(self.metrics_per_round.get(name, []))
            elif f.name == "extra":
                out.update({k: v for k, v in self.extra.items() if k not in out})
            elif f.name != "metrics_per_round":
                out[f.name] = getattr(self, f.name)
        return out


_NAMES = {f.name for f in fields(RunRecord)} - {"metrics", "metrics_per_round", "extra"}


def columns() -> list[str]:
    """The record's scalar columns of the report's per-run table, in order (metrics after
    ``dtype``)."""
    out: list[str] = []
    for f in fields(RunRecord):
        if f.name == "metrics":
            out.extend(registry.METRICS)
        elif f.metadata.get("column"):
            out.append(f.name)
    return out


def per_round_fields() -> list[str]:
    """The fields that hold a list with one value per round (``l2_rel_error_per_round``)."""
    return [registry.per_round(name) for name in registry.METRICS]


def is_scientific(column: str) -> bool:
    """True for columns shown in scientific notation: the registered metrics that say so and
    the losses; the record's other numbers (memory, times, counts) are shown plainly.

    Columns that are neither (a user's own) are scientific when their name says error or loss.
    """
    if column in registry.METRICS:
        return registry.METRICS[column].scientific
    if column in _NAMES:
        return False
    return "error" in column or "loss" in column


_UNITS = {f.name: f.metadata.get("unit") for f in fields(RunRecord) if f.metadata.get("unit")}


def unit(column: str) -> str | None:
    """The unit of a record field: ``MB`` for memory, ``s`` for times, else None."""
    return _UNITS.get(column)


def is_time(column: str) -> bool:
    """True for the record's times (``wall_time_s``, ``time_train_s``, ...)."""
    return unit(column) == SECONDS


def is_positive(column: str) -> bool:
    """True for columns whose values are positive by nature, spread across seeds by a factor
    rather than by an amount: the metrics that the registry marks ``positive`` (errors) and the
    record's memory and times. The report gives their intervals on the log scale; other columns
    (a user's metric unless registered ``positive=True``, counts, ``concentration``) on the
    linear one."""
    if column in registry.METRICS:
        return registry.METRICS[column].positive
    if column in registry.HISTORY_METRICS:
        return registry.HISTORY_METRICS[column].positive
    return unit(column) is not None
