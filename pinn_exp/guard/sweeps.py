"""A sweep's checks before its first job: its directory claimed (``.sweep``, created
exclusively), a resumed sweep with the config of the sweep it resumes (its
``multirun.yaml``), every swept value composes, and its jobs map to distinct real folders
inside the sweep's."""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pinn_exp.guard.paths import check_job_link, check_subdir, has_links
from pinn_exp.guard.refusal import Refused
from pinn_exp.guard.resume import REMOVED_LBFGS, RESUMABLE, differences, old_defaults_hint
from pinn_exp.hydra_adapter import (
    BASIC_SWEEPER,
    check_job_values,
    flatten,
    job_subdirs,
    split_override,
    sweep_config_loader,
    sweep_jobs,
)
from pinn_exp.io.record import METRICS
from pinn_exp.sweep import SWEEP_CLAIM


def claim_sweep_dir(sweep_dir: Path, resume: bool) -> None:
    """Claims ``sweep_dir`` for this sweep, or raises :class:`Refused` if another has it: its
    ``.sweep`` file, created exclusively (two sweeps started at once cannot both have it), or,
    for folders from before such files, a run's record in one of its job folders."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    claim = sweep_dir / SWEEP_CLAIM
    if resume:  # the jobs resume their own directories (each checked by check_resume)
        claim.touch()
        return
    earlier = any(sweep_dir.glob(f"*/{METRICS}"))
    try:
        if earlier:
            raise FileExistsError
        fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise Refused(
            f"{sweep_dir} holds another sweep; choose another hydra.sweep.dir, or add "
            "resume=true to continue that sweep's runs"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(f"pid {os.getpid()}\n")


def _overrides(config: DictConfig) -> dict[str, str]:
    """The sweep's overrides and sweeper parameters by key (``+``/``~`` dropped)."""
    out = {str(k): str(v) for k, v in (config.hydra.sweeper.get("params") or {}).items()}
    for override in OmegaConf.to_container(config.hydra.overrides.task, resolve=False):
        key, value = split_override(override)
        out[key] = value
    out["hydra.sweep.subdir"] = str(OmegaConf.to_container(config.hydra.sweep)["subdir"])
    return out


def _unresolved_job(config: DictConfig) -> dict:
    job = OmegaConf.to_container(config, resolve=False)
    job.pop("hydra", None)
    return job


def check_same_sweep(sweep_dir: Path, config: DictConfig) -> None:
    """A resumed sweep has the config of the sweep it resumes (its ``multirun.yaml``)."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return
    for overrides in sweep_dir.glob("*/.hydra/overrides.yaml"):
        if "optimizer.lbfgs_impl=sync_free" in overrides.read_text(errors="replace"):
            job = overrides.parts[-3]
            raise Refused(f"cannot resume the sweep {sweep_dir}: its job {job} {REMOVED_LBFGS}")
    try:
        old = OmegaConf.load(path)
        before, after = _overrides(old), _overrides(config)
        old_job = _unresolved_job(old)
    except Exception as exc:  # noqa: BLE001 - a damaged multirun.yaml
        raise Refused(
            f"cannot resume the sweep {sweep_dir}: multirun.yaml is unreadable "
            f"({type(exc).__name__}: {exc})".replace("\n", " ")
        ) from None
    old_values, new_values = flatten(old_job), flatten(_unresolved_job(config))
    not_set = object()

    def same(key: str) -> bool:
        """The key has the same value before and after: the same override, or an override
        on one side only whose composed value is the other side's (a default written out,
        e.g. optimizer.compile=false for a sweep started when it was the default; the values
        as Hydra composed them, not the override's text)."""
        if before.get(key) == after.get(key):
            return True
        one_side = key not in before or key not in after
        return one_side and key in old_values and old_values[key] == new_values.get(key, not_set)

    changed = [
        f"{k} ({before.get(k)!r} -> {after.get(k)!r})"
        for k in sorted(set(before) | set(after))
        if k.split(".")[0] not in RESUMABLE
        and not k.startswith(("hydra.sweep.dir", "hydra/launcher", "hydra.launcher"))
        and not same(k)
    ]
    given = set(before) | set(after)  # keys set on a command line: compared above already
    changed += [
        d for d in differences(old_job, _unresolved_job(config)) if d.split(" ")[0] not in given
    ]
    if changed:
        raise Refused(
            f"cannot resume the sweep {sweep_dir}: its config differs from the sweep's "
            f"(multirun.yaml) in {', '.join(changed)}; only {', '.join(sorted(RESUMABLE))} may "
            "change on resume; start a new sweep in another hydra.sweep.dir"
            + old_defaults_hint(old_values, new_values)
        )


def check_job_threads(jobs: list[list[str]]) -> None:
    """Refuses a sweep, before its first job, where a job's ``device.threads`` composes but
    no run could use it (below 1, above this process's CPUs: :func:`check_threads`)."""
    import yaml

    from pinn_exp.device import check_threads

    seen: set[str] = set()
    for overrides in jobs:
        for line in overrides:
            key, value = split_override(line)
            if key.lstrip("+~") != "device.threads" or value in seen:
                continue
            seen.add(value)
            try:
                threads = yaml.safe_load(value)
            except yaml.YAMLError:
                continue  # not a number: composing the job refuses it
            if threads is None or isinstance(threads, int):
                try:
                    check_threads(threads)
                except ValueError as exc:
                    raise Refused(str(exc)) from None


def check_distinct_jobs(config: DictConfig, sweep_dir: Path) -> None:
    """Refuses a sweep whose jobs' folders are not folders inside the sweep's (an absolute
    ``hydra.sweep.subdir``, or one with ``..``), and a sweep of Hydra's basic sweeper whose
    jobs map to one directory (a ``hydra.sweep.subdir`` that does not tell them apart) or
    whose job folder is a symbolic link (:func:`check_job_link`). Other sweepers are left to
    the jobs' own checks (pinn_exp/cli.py) and the batched launcher's."""
    subdir = str(OmegaConf.to_container(config.hydra.sweep)["subdir"])
    check_subdir(subdir, subdir, sweep_dir)  # as written: '/x/${seed}', '${seed}/..'
    distinct = "hydra.job.num" in subdir or "hydra.job.id" in subdir
    if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        return
    loader = sweep_config_loader()
    jobs = sweep_jobs(config, loader)
    check_job_values(config, loader, jobs)  # every swept value composes, before any job runs
    check_job_threads(jobs)
    linked = has_links(sweep_dir, len(Path(subdir).parts))
    if distinct and not linked:  # distinct by construction: the first job's folder says where
        jobs = jobs[:1]
    seen: dict[str, int] = {}
    with closing(job_subdirs(config, loader, jobs)) as names:  # Hydra's config put back
        for num, name in enumerate(names):
            check_subdir(name, subdir, sweep_dir)
            check_job_link(sweep_dir, name)
            name = os.path.normpath(name)
            if name in seen:
                raise Refused(
                    f"jobs {seen[name]} and {num} of the sweep both write into "
                    f"{sweep_dir / name}: hydra.sweep.subdir={subdir} must differ between "
                    "jobs (add ${hydra.job.num} to it)"
                )
            seen[name] = num
