"""The command line: ``python run.py [overrides]`` in a checkout, ``pinn-exp [overrides]``
where the package is installed; ``-m`` for a sweep.

Hydra's entry point (``hydra.main``); its internals and its errors are read in
``pinn_exp/hydra_adapter.py``. The flow:
compose the config, build every object (all checks happen here, before training), train,
write the run's record into its Hydra output directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pinn_exp import guard, hydra_adapter, runner
from pinn_exp.config import CONF_DIR, compose_config
from pinn_exp.factory import ConfigError, build
from pinn_exp.io import record as record_files
from pinn_exp.io.storage import atomic_write
from pinn_exp.metrics.memory import is_allocation_failure
from pinn_exp.metrics.registry import PRIMARY

log = logging.getLogger("pinn_exp")


def _meta(cfg: DictConfig, hydra_cfg) -> dict:
    """Record fields readable from the config alone (used when building fails)."""
    choices = hydra_cfg.runtime.choices
    return {
        "pde": choices.get("pde"),
        "sampler": choices.get("sampler"),
        "dim": cfg.pde.get("dim"),
        "n_points": cfg.get("n_points"),
        "seed": cfg.get("seed"),
        "ratio": cfg.sampler.get("ratio"),
        "dtype": cfg.device.get("dtype"),
        "device": cfg.device.get("name"),
        "rounds": cfg.get("rounds"),
        "laplacian": cfg.laplacian.get("method"),
        "overrides": list(hydra_cfg.overrides.task),
    }


def _refuse(out_dir: Path, exc: guard.Refused, multirun: bool, started: bool = False) -> None:
    """Says ``exc``; a single run exits with its code, a sweep goes on with its other jobs.
    ``started``: the run was claimed, so what Hydra rewrote is put back."""
    if started:
        guard.refuse_started(out_dir, exc)
    else:
        guard.print_refusal(exc)
    if not multirun:
        sys.exit(exc.code)


def main() -> None:
    """The command line (``python run.py``, ``pinn-exp``): Hydra's main, with the errors of
    composing the config refused in one line and exit status 2, for a run and for every job
    of a sweep (:func:`pinn_exp.hydra_adapter.composition_line`): an unknown key given without
    ``+`` (``sampler.ratoi=0.2``, with the nearest key, as a key added with ``+`` is:
    pinn_exp.factory.check_keys), a value of the wrong type (``pde.dim=2.5``), an option that
    does not exist (``budget=bogus``). Hydra's other errors as Hydra reports them
    (``HYDRA_FULL_ERROR=1``: Hydra's full traceback, unchanged)."""
    hydra_adapter.run_main(_main, compose_config)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    # a sweep job that SLURM requeued (submitit's hydra.launcher.max_num_timeout) continues
    # from its checkpoint instead of starting again
    requeued = multirun and guard.requeued()
    # a single run was claimed and checked before Hydra wrote anything (guard.RunGuard); a
    # sweep's job, or a run whose guard did not run, is claimed and checked here, before
    # this function writes anything; an error in the checks refuses (they fail closed)
    try:
        job = OmegaConf.to_container(cfg, resolve=True)
        if multirun:
            guard.check_job_dir(out_dir, Path(hydra_cfg.sweep.dir))
        guard.claim_and_check(
            out_dir, {**job, "resume": bool(cfg.resume) or requeued}, sweep=multirun
        )
    except guard.Refused as exc:
        _refuse(out_dir, exc, multirun)
        return None
    except Exception as exc:  # noqa: BLE001
        _refuse(
            out_dir,
            guard.Refused(
                f"{out_dir} could not be checked ({type(exc).__name__}: {exc}); nothing was started"
            ),
            multirun,
        )
        return None
    deferred = False
    try:
        return _run(cfg, hydra_cfg, out_dir, job, multirun, requeued)
    except runner.Deferred:
        # its training comes later, with its group's (hydra/launcher=batched): the directory
        # stays claimed until the launcher has written the run's files
        deferred = True
        raise
    finally:
        if not deferred:
            guard.release(out_dir)


def _first_compile_decision(built, out_dir: Path):
    """A resumed run keeps the ``optimizer.compile=auto`` decision its record holds: the
    decision depends on ``rounds`` and the machine, both of which a resume may change."""
    if not built.compile_note.startswith("optimizer.compile=auto"):
        return built
    try:
        recorded = json.loads((out_dir / record_files.METRICS).read_text()).get("compiled")
    except (OSError, ValueError, AttributeError):  # the guard has read the record already
        return built
    if not isinstance(recorded, bool) or recorded == built.schedule.compile:
        return built
    schedule = dataclasses.replace(built.schedule, compile=recorded)
    how = "compiled" if recorded else "eager"
    note = f"optimizer.compile=auto: {how} (as the run's record says it started)"
    return dataclasses.replace(built, schedule=schedule, compile_note=note)


def _resume_mode(cfg: DictConfig, out_dir: Path, multirun: bool, requeued: bool):
    """``(resume, resuming)``: whether the run resumes, and whether a run on disk is being
    resumed (it is left as it was until everything has been built)."""
    has_checkpoint = (out_dir / record_files.CHECKPOINT).is_file()
    resume = bool(cfg.resume) or (requeued and has_checkpoint)
    if multirun and resume and not has_checkpoint:
        if (out_dir / record_files.METRICS).is_file():  # it started, killed before round 0 ended
            log.info(
                "%s has no checkpoint (the job started but ended before its first checkpoint): "
                "it starts again from the beginning",
                out_dir,
            )
        else:
            log.info("%s has no checkpoint (the job had not started): it starts now", out_dir)
        resume = False
    resuming = resume and (has_checkpoint or (out_dir / record_files.METRICS).is_file())
    return resume, resuming


def _build(cfg: DictConfig, out_dir: Path, job: dict, meta: dict, multirun: bool, resuming: bool):
    """The run's objects (:func:`pinn_exp.factory.build`); a config that does not build or an
    allocation that fails is refused (a run being resumed: its files put back) or recorded as
    a failed run: None for a sweep's job (the sweep goes on), else the process exits."""
    try:
        return build(cfg)
    except ConfigError as exc:
        if resuming:
            _refuse(out_dir, guard.Refused(f"cannot resume {out_dir}: {exc}"), multirun, True)
            return None
        _write_config(out_dir, job)
        runner.write_failure(out_dir, meta, str(exc))
        print(f"error: {exc}", file=sys.stderr)
        if multirun:  # the sweep goes on; the summary lists this run as failed
            return None
        sys.exit(2)
    except KeyboardInterrupt:
        if resuming:
            guard.refuse_started(out_dir, guard.Refused("interrupted before the run started"))
        else:
            print("error: interrupted before the run started", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - an allocation that failed while building
        if not is_allocation_failure(exc):
            raise
        message = f"{type(exc).__name__}: {exc}"
        if resuming:
            refusal = guard.Refused(
                f"cannot resume {out_dir}: out of memory while building ({message})", code=1
            )
            _refuse(out_dir, refusal, multirun, True)
            return None
        _write_config(out_dir, job)
        runner.write_failure(out_dir, meta, message, status="oom", phase="build")
        print(f"run oom while building: {message}", file=sys.stderr)
        if multirun:
            return None
        sys.exit(1)


def _run(
    cfg: DictConfig, hydra_cfg, out_dir: Path, job: dict, multirun: bool, requeued: bool
) -> float | None:
    resume, resuming = _resume_mode(cfg, out_dir, multirun, requeued)
    meta = _meta(cfg, hydra_cfg)
    built = _build(cfg, out_dir, job, meta, multirun, resuming)
    if built is None:
        return None
    if resuming:
        built = _first_compile_decision(built, out_dir)
    log.info(
        "%s | %s | N=%d | rounds=%d | %s %s | %s | out: %s",
        built.pde,
        built.sampler,
        built.n_points,
        built.rounds,
        built.device.description,
        built.device.dtype_name,
        built.compile_note,
        out_dir,
    )
    try:
        _write_config(out_dir, job)
        record = runner.run(
            built,
            out_dir,
            resume=resume,
            progress=cfg.progress and not multirun,
            meta=meta,
            config=job,
        )
    except runner.Interrupted as exc:
        print(
            f"run {exc}; record: {out_dir / record_files.METRICS} (resume=true continues it)",
            file=sys.stderr,
        )
        sys.exit(exc.code)
    except OSError as exc:  # the run's files could not be written (a full disk, a quota)
        print(f"error: cannot write the run's files in {out_dir}: {exc}", file=sys.stderr)
        if multirun:
            return None
        sys.exit(1)
    return _say_result(record, out_dir, multirun)


def _say_result(record: dict, out_dir: Path, multirun: bool) -> float | None:
    """The run's last line: its final error, or its status (a single run that did not end ok
    exits with status 1); returns the primary metric."""
    if record["status"] == "ok":
        print(
            f"final relative L2 error: {record[PRIMARY]:.4e}  "
            f"({record['wall_time_s']:.1f} s)\noutputs: {out_dir}"
        )
    else:
        print(
            f"run {record['status']}: {record['error']}; record: {out_dir / record_files.METRICS}",
            file=sys.stderr,
        )
        if not multirun:
            sys.exit(1)
    return record[PRIMARY]


def _write_config(out_dir: Path, job: dict) -> None:
    text = OmegaConf.to_yaml(job)
    atomic_write(out_dir / record_files.CONFIG, lambda f: f.write(text.encode()))


if __name__ == "__main__":
    main()
