"""A test-only PDE for the SLURM tests (importable with PYTHONPATH=tests): a job that holds
still once its first checkpoint is on disk, until a signal ends it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pinn_exp.io.record import CHECKPOINT
from pinn_exp.pdes import Burgers


class HeldBurgers(Burgers):
    """Burgers that, with ``PINN_EXP_HOLD`` naming a folder, stops in its first training step
    after the run's first checkpoint (initial training done) and waits for up to 10 minutes:
    it writes ``HOLD/RUN_DIR_NAME`` (holding the SLURM job id) and sleeps, so a test can signal or
    requeue the job at a known point. A run that finds its file there already (the requeued
    job, resumed) does not wait; without ``PINN_EXP_HOLD`` it is plain Burgers, so the held
    run and an uninterrupted one have the same config."""

    def residual(self, u, x, laplacian):
        hold = os.environ.get("PINN_EXP_HOLD")
        if hold and any(p.requires_grad for p in u.parameters()):
            self._hold(Path(hold))
        return super().residual(u, x, laplacian)

    def _hold(self, folder: Path) -> None:
        from hydra.core.hydra_config import HydraConfig

        run_dir = Path(HydraConfig.get().runtime.output_dir)
        mark = folder / run_dir.name
        if mark.exists() or not (run_dir / CHECKPOINT).exists():
            return
        # a job of an array by its array name (ARRAY_TASK): the raw SLURM_JOB_ID of one task
        # can be the array's own id, which scancel would take for the whole array
        array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
        job = f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "")
        mark.with_suffix(".tmp").write_text(job)
        mark.with_suffix(".tmp").rename(mark)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            time.sleep(0.2)
