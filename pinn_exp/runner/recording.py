"""A run's record (``metrics.json``): the fields known before training, what the trainer
measured, and writing it, on a full disk too."""

from __future__ import annotations

import importlib.metadata
import logging
import platform
from pathlib import Path

import torch

from pinn_exp.io import storage
from pinn_exp.io.record import CHECKPOINT, METRICS, RunRecord
from pinn_exp.metrics.memory import HWM, peak_rss_mb
from pinn_exp.training.parts import Built
from pinn_exp.training.trainer import Trainer

log = logging.getLogger(__package__)


def versions() -> dict[str, str | None]:
    """Versions of Python, the main libraries and CUDA, for the record."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for package in (
        "pinn-exp",
        "torch",
        "numpy",
        "scipy",
        "scikit-learn",
        "imbalanced-learn",
        "hydra-core",
    ):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    out["cuda"] = torch.version.cuda
    return out


#: the record fields that the command line can fill from the config alone
META_FIELDS = (
    "pde",
    "sampler",
    "dim",
    "n_points",
    "ratio",
    "seed",
    "device",
    "dtype",
    "rounds",
    "laplacian",
    "overrides",
)


def base_record(built: Built | None, meta: dict) -> RunRecord:
    """The fields known before training; ``meta`` supplies them when nothing could be built."""
    known = {key: meta.get(key) for key in META_FIELDS}
    known["overrides"] = list(meta.get("overrides") or [])
    record = RunRecord(versions=versions(), **known)
    if built is not None:
        record.update(
            # the config option's name (rad_50k, rsmote_paper) where known, so failed and
            # finished runs of one option share a row in summaries
            pde=meta.get("pde") or built.pde.name,
            sampler=meta.get("sampler") or built.sampler.name,
            sampler_class=type(built.sampler).__name__,
            dim=built.pde.dim,
            n_points=built.n_points,
            **{"ratio": None, **built.sampler.record_fields()},  # the report reads ratio
            seed=built.seed,
            device=built.device.description,
            dtype=built.device.dtype_name,
            threads=built.device.threads,
            rounds=built.rounds,
            laplacian=built.laplacian.method,
            lbfgs_impl=built.schedule.lbfgs_impl,
            compiled=built.schedule.compile,
            # the values in effect of pde keys the PDE does not use as given (pde.n_test at a
            # grid reference): the report reads them in place of the config's
            **{f"pde.{k}": v for k, v in built.pde.effective_settings().items()},
        )
    return record


def write(out_dir: Path, record: RunRecord) -> None:
    """Writes ``record`` to the run's ``metrics.json``, atomically."""
    storage.write_json(Path(out_dir) / METRICS, record.to_json())


def write_failure(
    out_dir: Path, meta: dict, message: str, status: str = "failed", phase: str = "config"
) -> dict:
    """Record of a run that could not even be built: status ``failed`` in phase ``config``
    (a bad value), or ``oom`` in phase ``build`` (an allocation that failed)."""
    record = base_record(None, meta).update(status=status, error=message, phase=phase)
    write(out_dir, record)
    return record.to_json()


def write_final(out_dir: Path, record: RunRecord) -> None:
    """Writes the final record; where the disk is full, in place (the old record's blocks
    are freed first), with the write's failure as the error, so no record stays running."""
    try:
        write(out_dir, record)
        return
    except OSError as exc:
        failure = f"{type(exc).__name__}: {exc}"
    if record.status in ("ok", "running"):
        record.update(status="failed", error=f"the record could not be written ({failure})")
    log.error("writing %s failed: %s", METRICS, failure)
    for content in (record.to_json(), {"status": record.status, "error": record.error}):
        try:
            storage.write_json_in_place(Path(out_dir) / METRICS, content)
            return
        except OSError:
            continue


def host_memory() -> dict:
    """The process's peak resident memory and where it started, as record fields."""
    return {
        "peak_cpu_rss_mb": peak_rss_mb(),
        "cpu_rss_start_mb": HWM.start_mb,
        "peak_cpu_rss_increase_mb": HWM.increase_mb(),
        "cpu_peak_method": HWM.label,
    }


#: what a run resumed alone keeps from the record of its earlier sessions in an ensemble
ENSEMBLE_FIELDS = ("batched", "ensemble_size", "ensemble_id")


def resumed_fields(out_dir: Path) -> dict:
    """The fields a resumed run keeps from its previous record: where that record is a
    batched member's and its checkpoint is there (the rounds it kept trained in the
    ensemble), how it ran (``batched``, ``ensemble_size``, ``ensemble_id``) and
    ``time_shared`` true (its time is partly a share of the ensemble's); else nothing."""
    try:
        previous = storage.read_json(Path(out_dir) / METRICS)
    except (OSError, ValueError):
        return {}
    if not isinstance(previous, dict) or previous.get("batched") not in ("loop", "vmap"):
        return {}
    if not (Path(out_dir) / CHECKPOINT).exists():  # it starts again from scratch, alone
        return {}
    return {**{k: previous.get(k) for k in ENSEMBLE_FIELDS}, "time_shared": True}


def record_results(record: RunRecord, trainer: Trainer) -> None:
    """What ``trainer`` measured, into ``record``: the metrics (final ones only where the run
    ended ok), the device memory peaks, the phases' times, the rounds completed."""
    state, meter = trainer.state, trainer.meter
    # the last round whose end is complete (its checkpoint written): a failure after its
    # evaluation but before its checkpoint belongs to the round, not to the next one
    completed = trainer.saved_round
    if record.round is None and record.status != "ok":
        record.round = completed + 1
    ok = record.status == "ok"  # a diverged or failed run has no final metrics
    record.metrics = {
        name: values[-1] if ok and values else None for name, values in state.metrics.items()
    }
    record.metrics_per_round = dict(state.metrics)
    record.update(
        peak_gpu_mem_mb=meter.peak(),
        peak_gpu_mem_mb_train=meter.peak("train"),
        peak_gpu_mem_mb_sampling=meter.peak("sampling"),
        peak_gpu_reserved_mb=meter.reserved(),
        **meter.record_fields(),
        time_train_s=meter.time_s.get("train", 0.0),
        time_sampling_s=meter.time_s.get("sampling", 0.0),
        n_residual_evals=trainer.scorer.n_evals,
        round_stats=state.round_stats,
        last_completed_round=completed,
        compiled=trainer.schedule.compile,  # false where a loss torch.compile refused ran eager
    )
