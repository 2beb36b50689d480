"""Checks that run before anything is written into a run's directory, so that no command can
damage a run on disk (a Hydra callback, :class:`RunGuard`, registered in conf/config.yaml, and
the task function in pinn_exp/cli.py, which refuses a run the callback did not claim):

* a run's directory is claimed for the run's lifetime (``.run.lock``, created exclusively,
  holding the process id): two commands started at once into one directory, or a resume of a
  run that is still running, cannot both go on; a claim whose process died is taken over
  (:mod:`.claim`);
* a run never writes into a directory that holds another run's record, unless it resumes it
  (a record of a run that failed at its configuration has nothing to lose and protects
  nothing); a run never writes into a sweep's directory, nor a sweep into a run's
  (:mod:`.paths`);
* a sweep never writes into a sweep directory that another sweep claimed (``.sweep``, created
  exclusively); a sweep whose jobs map to one directory is refused; a resumed sweep must have
  the config of the sweep it resumes (its ``multirun.yaml``) (:mod:`.sweeps`);
* ``resume=true`` starts only when it can: the checkpoint reads and is a checkpoint, and the
  config equals the recorded one (``config_resolved.yaml`` and the checkpoint's own copy)
  except for the keys a resume may change (``RESUMABLE``; ``rounds`` only upwards); a finished
  run is left alone, and said to be finished (unless its plots are missing: then the resume
  writes them) (:mod:`.resume`).

A refusal prints one line and exits (status 2; 0 for a finished run). A single run is checked
before Hydra writes ``.hydra/`` or the log; what the task function finds wrong later (a config
that does not build) restores ``.hydra/`` and the log as they were (:mod:`.admission`). A
sweep's job is checked inside the job, after Hydra has rewritten its ``.hydra/*.yaml``; its
records, history, points and checkpoint stay as they were. The checks fail closed: an error
inside them refuses.
"""

from pinn_exp.guard.admission import (
    claim_and_check,
    is_claimed,
    refuse_started,
    release,
    release_all,
)
from pinn_exp.guard.callback import RunGuard
from pinn_exp.guard.claim import RUN_CLAIM, Claim, claim_run_dir, requeued
from pinn_exp.guard.paths import (
    MIN_FREE_MB,
    check_job_dir,
    check_job_link,
    check_not_in_run,
    check_not_in_sweep,
    check_path,
    check_run_dir,
    check_subdir,
    check_sweep_not_in_sweep,
    check_writable,
    has_links,
)
from pinn_exp.guard.refusal import Refused, print_refusal
from pinn_exp.guard.resume import CHECKPOINT_KEYS, RESUMABLE, check_resume, read_checkpoint
from pinn_exp.guard.sweeps import (
    check_distinct_jobs,
    check_same_sweep,
    claim_sweep_dir,
)

__all__ = [
    "CHECKPOINT_KEYS",
    "MIN_FREE_MB",
    "RESUMABLE",
    "RUN_CLAIM",
    "Claim",
    "Refused",
    "RunGuard",
    "check_distinct_jobs",
    "check_job_dir",
    "check_job_link",
    "check_not_in_run",
    "check_not_in_sweep",
    "check_path",
    "check_resume",
    "check_run_dir",
    "check_same_sweep",
    "check_subdir",
    "check_sweep_not_in_sweep",
    "check_writable",
    "claim_and_check",
    "claim_run_dir",
    "claim_sweep_dir",
    "has_links",
    "is_claimed",
    "print_refusal",
    "read_checkpoint",
    "refuse_started",
    "release",
    "release_all",
    "requeued",
]
