"""The Hydra callback (registered in conf/config.yaml) that runs the guard's checks before
Hydra touches a run's or a sweep's directory."""

from __future__ import annotations

import atexit
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pinn_exp.guard.admission import claim_and_check, release_all
from pinn_exp.guard.claim import requeued
from pinn_exp.guard.paths import (
    check_not_in_run,
    check_not_in_sweep,
    check_path,
    check_sweep_not_in_sweep,
    check_writable,
)
from pinn_exp.guard.refusal import Refused, exit_refused, unchecked
from pinn_exp.guard.resume import job_config
from pinn_exp.guard.sweeps import check_distinct_jobs, check_same_sweep, claim_sweep_dir
from pinn_exp.hydra_adapter import composition_line
from pinn_exp.sweep import watch


class RunGuard(Callback):
    """The guard's checks, before Hydra touches a run's or a sweep's directory; and,
    for a sweep cut short, its summary and the command that finishes it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            run_dir = check_path(config.hydra.run.dir, "hydra.run.dir")
            job = job_config(config)
            check_not_in_sweep(run_dir)
            check_writable(run_dir, "hydra.run.dir")
            log = f"{config.hydra.job.name}.log"
            keep = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", log)
            claim_and_check(run_dir, job, keep=keep)
            atexit.register(release_all)
        except Refused as exc:
            exit_refused(exc)
        except Exception as exc:  # noqa: BLE001 - the checks fail closed
            exit_refused(unchecked(exc, "hydra.run.dir"))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            sweep_dir = check_path(config.hydra.sweep.dir, "hydra.sweep.dir")
            check_not_in_run(sweep_dir)
            check_sweep_not_in_sweep(sweep_dir)
            # a whole sweep requeued by SLURM goes on: its jobs resume (pinn_exp/cli.py)
            resume = bool(config.get("resume")) or requeued()
            if resume:
                check_same_sweep(sweep_dir, config)
            check_distinct_jobs(config, sweep_dir)
            check_writable(sweep_dir, "hydra.sweep.dir")
            claim_sweep_dir(sweep_dir, resume)
        except Refused as exc:
            exit_refused(exc)
        except Exception as exc:  # noqa: BLE001 - the checks fail closed
            line = composition_line(exc)  # a job's value that Hydra cannot take
            if line is None:
                exit_refused(unchecked(exc, "hydra.sweep.dir"))
            print(line, file=sys.stderr)  # Hydra swallows a callback's error
            sys.exit(2)
        watch(config)
