"""Whether ``resume=true`` can start: the checkpoint reads and is a checkpoint, and the config
equals the recorded one (``config_resolved.yaml`` and the checkpoint's own copy) except for
the keys a resume may change (``RESUMABLE``; ``rounds`` only upwards); a finished run is left
alone, and said to be finished (unless its plots are missing: then the resume writes them)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from pinn_exp.guard.refusal import Refused
from pinn_exp.hydra_adapter import flatten
from pinn_exp.io.record import CHECKPOINT, CONFIG, METRICS, PLOTS

#: keys that may differ between a run and its resumption
RESUMABLE = {"resume", "progress", "rounds", "report", "logger"}


#: what a resume needs of a checkpoint (pinn_exp.training.trainer.Trainer.snapshot)
CHECKPOINT_KEYS = (
    "state",
    "model",
    "generator",
    "laplacian_generator",
    "torch_rng",
    "numpy_rng",
    "python_rng",
    "meter",
    "n_evals",
)


#: the plots a finished run has (residual.png only on 1-D and 2-D boxes)
FINISHED_PLOTS = ("loss", "error", "points", "solution")


def job_config(config: DictConfig) -> dict:
    """The config a run records in config_resolved.yaml (everything but ``hydra``)."""
    job = copy.deepcopy(config)
    with read_write(job), open_dict(job):
        del job["hydra"]
    try:
        return OmegaConf.to_container(job, resolve=True)
    except Exception as exc:  # noqa: BLE001 - an interpolation that does not resolve
        raise Refused(f"the config cannot be resolved: {exc}".replace("\n", " ")) from None


def differences(before: dict, after: dict) -> list[str]:
    """Keys of ``before`` (flattened) whose value differs in ``after``, resumable keys aside;
    keys the recorded config lacks were added to the project after the run started."""
    before, after = flatten(before), flatten(after)
    return [
        f"{k} ({before.get(k)!r} -> {after.get(k)!r})"
        for k in sorted(before)
        if k.split(".")[0] not in RESUMABLE and before.get(k) != after.get(k)
    ]


#: the defaults that changed (key, the value before): a run started before resumes with
#: these on its command line
CHANGED_DEFAULTS = {"optimizer.compile": False}


def old_defaults_hint(before: dict, after: dict) -> str:
    """How to resume a run or sweep started before the defaults changed, where it had an old
    default (``before``, flattened) that the resumed config (``after``) does not."""
    keys = [
        k for k, old in CHANGED_DEFAULTS.items() if before.get(k) == old and after.get(k) != old
    ]
    if not keys:
        return ""
    overrides = " ".join(f"{k}={str(CHANGED_DEFAULTS[k]).lower()}" for k in keys)
    return (
        f" (the default of {', '.join(keys)} changed: a run started before resumes with "
        f"{overrides})"
    )


#: what a run or sweep started with ``optimizer.lbfgs_impl=sync_free`` is told on resume
REMOVED_LBFGS = (
    "ran with optimizer.lbfgs_impl=sync_free, an L-BFGS that no longer exists (replaced by "
    "device: the same stepping on the device with torch's strong-Wolfe line search, "
    "docs/performance.md), so it cannot be continued; start a new run or sweep"
)


def _compare(run_dir: Path, recorded: dict, job: dict, source: str) -> None:
    if flatten(recorded).get("optimizer.lbfgs_impl") == "sync_free":
        raise Refused(f"cannot resume {run_dir}: it {REMOVED_LBFGS}")
    changed = differences(recorded, job)
    if changed:
        raise Refused(
            f"cannot resume {run_dir}: the config differs from the run's ({source}) in "
            f"{', '.join(changed)}; only {', '.join(sorted(RESUMABLE))} may change on resume"
            + old_defaults_hint(flatten(recorded), flatten(job))
        )
    if (job.get("rounds") or 0) < (recorded.get("rounds") or 0):
        raise Refused(
            f"cannot resume {run_dir}: rounds={job.get('rounds')} is below the run's "
            f"rounds={recorded.get('rounds')}; a resume may only raise it"
        )


def read_checkpoint(run_dir: Path) -> dict | None:
    """The run's checkpoint (None if there is none); :class:`Refused` if it cannot be read or
    is not a checkpoint of this project."""
    path = run_dir / CHECKPOINT
    if not path.is_file():
        return None
    import torch

    try:
        snapshot = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is refused
        raise Refused(
            f"cannot resume {run_dir}: {CHECKPOINT} cannot be read ({type(exc).__name__}: "
            f"{exc}); nothing was changed".replace("\n", " ")
        ) from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(snapshot, dict) or k not in snapshot]
    if missing or not isinstance(snapshot["state"], dict) or "round_index" not in snapshot["state"]:
        raise Refused(
            f"cannot resume {run_dir}: {CHECKPOINT} is not a checkpoint of a run (it lacks "
            f"{', '.join(missing) or 'state.round_index'}); nothing was changed"
        )
    return snapshot


def check_resume(run_dir: Path, job: dict) -> None:
    """Raises :class:`Refused` unless resuming ``run_dir`` with config ``job`` can start."""
    record_file = run_dir / METRICS
    record: dict = {}
    if record_file.is_file():
        try:
            record = json.loads(record_file.read_text())
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise Refused(f"cannot resume {run_dir}: {METRICS} is unreadable ({exc})") from None
    old_config = run_dir / CONFIG
    if old_config.is_file():
        try:
            recorded = OmegaConf.to_container(OmegaConf.load(old_config), resolve=True)
            if not isinstance(recorded, dict):
                raise ValueError("not a mapping")
        except Exception as exc:  # noqa: BLE001 - malformed YAML, unresolvable values
            raise Refused(
                f"cannot resume {run_dir}: {CONFIG} is unreadable ({type(exc).__name__}: "
                f"{exc})".replace("\n", " ")
            ) from None
        _compare(run_dir, recorded, job, CONFIG)
    snapshot = read_checkpoint(run_dir)
    if snapshot is not None and isinstance(snapshot.get("config"), dict):
        _compare(run_dir, snapshot["config"], job, CHECKPOINT)
    elif snapshot is not None and not old_config.is_file():
        # nothing says what the run was: it would go on under any config (fail closed)
        raise Refused(
            f"cannot resume {run_dir}: neither {CONFIG} nor {CHECKPOINT} holds the run's "
            "config, so this command's config cannot be compared with it; nothing was changed"
        )
    finished = record.get("status") == "ok" and record.get("rounds") == job.get("rounds")
    plotted = all((run_dir / PLOTS[name]).is_file() for name in FINISHED_PLOTS)
    if finished and (plotted or snapshot is None):
        _check_keys(run_dir, job)
        raise Refused(
            f"{run_dir} finished already (status ok, {record.get('rounds')} rounds): nothing "
            "to resume; raise rounds=... to train further",
            code=0,
        )


def _check_keys(run_dir: Path, job: dict) -> None:
    """A finished run's resume builds nothing, so a key added with ``+`` that nothing reads
    (``+sampler.ratoi=0.2``) is refused here as building refuses it, not passed over."""
    from pinn_exp.factory import ConfigError, check_keys  # torch: only on this path

    try:
        check_keys(OmegaConf.create(job))
    except ConfigError as exc:
        raise Refused(f"cannot resume {run_dir}: {exc}") from None
