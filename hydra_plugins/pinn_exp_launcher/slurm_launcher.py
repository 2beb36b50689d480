"""``hydra/launcher=slurm``: submitit's SLURM launcher for sweeps whose jobs may be killed.

Hydra's ``submitit_slurm`` collects the jobs' results in order and raises at the first job
that SLURM ended (``scancel``, a time limit without requeue, a node failure): the sweep exits
with a traceback while later jobs still run, and no summary is written. This launcher takes
the same keys, submits the same job array, and then:

* waits for every job, so that each writes its record whatever happened to the others;
* says in one line per job which ones SLURM ended and where their logs are, then exits with
  status 1; the sweep's exit handler (:mod:`pinn_exp.sweep`) writes the summary of what is on
  disk and prints the command that finishes the sweep (``resume=true``);
* refuses to submit (status 2, before any job exists) where ``sacct`` does not answer
  (``require_accounting``): submitit learns that a job ended from SLURM's accounting, and
  without it a job killed before it wrote its result keeps the sweep waiting forever.
"""

import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    SlurmLauncher as SubmititSlurmLauncher,
)
from omegaconf import OmegaConf

log = logging.getLogger(__name__)

#: the keys that configure submitit's executor rather than sbatch (as the plugin has them)
_INIT_KEYS = {"submitit_folder", "max_num_timeout"}


@dataclass
class SafeSlurmQueueConf(SlurmQueueConf):
    """``hydra/launcher=submitit_slurm``'s keys, plus ``require_accounting``."""

    _target_: str = "hydra_plugins.pinn_exp_launcher.slurm_launcher.SlurmLauncher"
    #: refuse to submit where ``sacct`` does not answer
    require_accounting: bool = True


ConfigStore.instance().store(
    group="hydra/launcher", name="slurm", node=SafeSlurmQueueConf, provider="pinn_exp"
)


class AccountingMissing(Exception):
    """``sacct`` does not answer: SLURM keeps no job accounting here."""


def check_accounting(timeout_s: float = 30) -> None:
    """Raises :class:`AccountingMissing`, with what ``sacct`` said, unless it answers."""
    try:
        proc = subprocess.run(
            ["sacct", "--noheader", "-X", "--format=JobID", "--starttime=now"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AccountingMissing(f"sacct could not be run ({exc})") from None
    if proc.returncode != 0:
        said = " ".join((proc.stderr or proc.stdout).split()) or f"exit status {proc.returncode}"
        raise AccountingMissing(f"sacct answered: {said}")


def accounting_message(exc: AccountingMissing) -> str:
    """The refusal a user sees where SLURM keeps no job accounting."""
    return (
        f"error: hydra/launcher=slurm needs SLURM's job accounting, and {exc}. submitit learns "
        "from sacct that a job ended; without it a job killed before it wrote its result "
        "(scancel, a node failure, the OOM killer) keeps the sweep waiting forever. Ask the "
        "cluster's administrators for accounting (slurmdbd), or add "
        "hydra.launcher.require_accounting=false to submit anyway: then watch the jobs with "
        "squeue, stop a sweep that waits for a job that is gone with Ctrl-C, and run "
        "python -m pinn_exp.report on its directory"
    )


def time_limit_problem(params: dict[str, Any]) -> str | None:
    """Why the jobs' time limit and submitit's warning signal do not fit together, or None:
    SLURM sends USR2 ``signal_delay_s`` seconds before the end of ``timeout_min`` minutes
    (sbatch ``--signal=USR2@delay``); at a delay of the whole limit or more it arrives as the
    job starts, before the job's handlers exist, and ends the job without a record."""
    timeout_min, delay = params.get("timeout_min"), params.get("signal_delay_s")
    if not isinstance(timeout_min, int) or not isinstance(delay, int):
        return None
    if delay < 60 * timeout_min:
        return None
    return (
        f"error: hydra.launcher.signal_delay_s={delay} is not allowed with "
        f"hydra.launcher.timeout_min={timeout_min}: SLURM sends the job's warning signal "
        f"(USR2) signal_delay_s seconds before its time limit, here at or before its start; "
        f"signal_delay_s must be below 60 * timeout_min = {60 * timeout_min} (raise "
        "hydra.launcher.timeout_min, or lower hydra.launcher.signal_delay_s)"
    )


class SlurmLauncher(SubmititSlurmLauncher):
    """submitit's SLURM launcher that waits for every job and survives the loss of some."""

    def __init__(self, require_accounting: bool = True, **params: Any) -> None:
        super().__init__(**params)
        self.require_accounting = require_accounting

    def executor(self):
        """The submitit executor with this launcher's parameters, as the plugin builds it."""
        import submitit

        init = {"folder": self.params["submitit_folder"]}
        if "max_num_timeout" in self.params:
            init["slurm_max_num_timeout"] = self.params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                key if key in shared else f"{self._EXECUTOR}_{key}": value
                for key, value in self.params.items()
                if key not in _INIT_KEYS
            }
        )
        return executor

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        assert self.config is not None and len(job_overrides) > 0
        problem = time_limit_problem(self.params)
        if problem is not None:
            print(problem, file=sys.stderr)
            raise SystemExit(2)
        if self.require_accounting:
            try:
                check_accounting()
            except AccountingMissing as exc:
                print(accounting_message(exc), file=sys.stderr)
                raise SystemExit(2) from None
        executor = self.executor()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
        calls = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            calls.append(
                (
                    list(overrides),
                    "hydra.sweep.dir",
                    idx,
                    f"job_id_for_{idx}",
                    Singleton.get_state(),
                )
            )
        jobs = executor.map_array(self, *zip(*calls))
        for job in jobs:  # every job ends (or is ended by SLURM) before any result is read
            job.wait()
        returns, lost = [], []
        for idx, (job, call) in enumerate(zip(jobs, calls), start=initial_job_idx):
            outcome = _outcome(job)
            if isinstance(outcome, JobReturn) and outcome.status != JobStatus.FAILED:
                returns.append(outcome)
            else:
                lost.append(_lost_line(idx, job, call[0], outcome))
        if lost:
            print(
                f"sweep: {len(lost)} of {len(jobs)} jobs did not end normally on SLURM:\n"
                + "\n".join(lost),
                file=sys.stderr,
            )
            # the sweep's exit handler (pinn_exp.sweep) writes the summary and the finish command
            raise SystemExit(1)
        return returns


def _outcome(job) -> Any:
    """The job's JobReturn, or the exception submitit raised for it."""
    try:
        return job.results()[0]
    except Exception as exc:  # noqa: BLE001 - UncompletedJobError, FailedJobError, ...
        return exc


def _lost_line(idx: int, job, overrides: list[str], outcome: Any) -> str:
    """One line on a job that did not end normally: its overrides, SLURM id, why, its log."""
    if isinstance(outcome, JobReturn):  # the job's code raised: Hydra kept the exception
        error = outcome._return_value
        what = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    else:
        what = f"SLURM state {job.state}"
    swept = " ".join(shlex.quote(o) for o in filter_overrides(overrides))
    return f"  #{idx} ({swept}; SLURM job {job.job_id}): {what}; log: {job.paths.stderr}"
