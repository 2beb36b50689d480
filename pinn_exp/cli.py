"""The command line: ``python run.py [overrides]`` in a checkout, ``pinn-exp [overrides]``
where the package is installed; ``-m`` for a sweep.

This module and ``pinn_exp/factory.py`` are the only places that touch Hydra. The flow:
compose the config, build every object (all checks happen here, before training), train,
write the run's record into its Hydra output directory.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pinn_exp import guard, runner
from pinn_exp.config import CONF_DIR
from pinn_exp.factory import ConfigError, build
from pinn_exp.io import record as record_files
from pinn_exp.io.records import atomic_write
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


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    # a sweep job that SLURM requeued (submitit's hydra.launcher.max_num_timeout) continues
    # from its checkpoint instead of starting again
    requeued = multirun and guard.requeued()
    resume = bool(cfg.resume) or (requeued and (out_dir / record_files.CHECKPOINT).is_file())
    if multirun and resume:  # a single run was checked before Hydra wrote anything
        try:
            job = OmegaConf.to_container(cfg, resolve=True)
            guard.check_resume(out_dir, {**job, "resume": True})
        except guard.Refused as exc:
            guard.say(exc)
            return None  # the sweep goes on with its other jobs
    text = OmegaConf.to_yaml(cfg, resolve=True)
    atomic_write(out_dir / record_files.CONFIG, lambda f: f.write(text.encode()))
    meta = _meta(cfg, hydra_cfg)
    try:
        built = build(cfg)
    except ConfigError as exc:
        runner.write_failure(out_dir, meta, str(exc))
        print(f"error: {exc}", file=sys.stderr)
        if multirun:  # the sweep goes on; the summary lists this run as failed
            return None
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - an allocation that failed while building
        if not is_allocation_failure(exc):
            raise
        message = f"{type(exc).__name__}: {exc}"
        runner.write_failure(out_dir, meta, message, status="oom", phase="build")
        print(f"run oom while building: {message}", file=sys.stderr)
        if multirun:
            return None
        sys.exit(1)
    log.info(
        "%s | %s | N=%d | rounds=%d | %s %s | out: %s",
        built.pde,
        built.sampler,
        built.n_points,
        built.rounds,
        built.device.description,
        built.device.dtype_name,
        out_dir,
    )
    record = runner.run(
        built, out_dir, resume=resume, progress=cfg.progress and not multirun, meta=meta
    )
    if record["status"] == "ok":
        print(
            f"final relative L2 error: {record[PRIMARY]:.4e}  "
            f"({record['wall_time_s']:.1f} s)\noutputs: {out_dir}"
        )
    else:
        print(
            f"run {record['status']}: {record['error']}\n"
            f"record: {out_dir / record_files.METRICS}",
            file=sys.stderr,
        )
        if not multirun:
            sys.exit(1)
    return record[PRIMARY]


if __name__ == "__main__":
    main()
