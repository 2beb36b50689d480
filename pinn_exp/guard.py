"""Checks that run before anything is written into a run's directory, so that no command can
damage a run on disk (a Hydra callback, registered in conf/config.yaml, and the task function
in pinn_exp/cli.py, which refuses a run the callback did not admit):

* a run's directory is claimed for the run's lifetime (``.run.lock``, created exclusively,
  holding the process id): two commands started at once into one directory, or a resume of a
  run that is still running, cannot both go on; a claim whose process died is taken over;
* a run never writes into a directory that holds another run's record, unless it resumes it
  (a record of a run that failed at its configuration has nothing to lose and protects
  nothing); a run never writes into a sweep's directory, nor a sweep into a run's;
* a sweep never writes into a sweep directory that another sweep claimed (``.sweep``, created
  exclusively); a sweep whose jobs map to one directory is refused; a resumed sweep must have
  the config of the sweep it resumes (its ``multirun.yaml``);
* ``resume=true`` starts only when it can: the checkpoint reads and is a checkpoint, and the
  config equals the recorded one (``config_resolved.yaml`` and the checkpoint's own copy)
  except for the keys a resume may change (``RESUMABLE``; ``rounds`` only upwards); a finished
  run is left alone, and said to be finished (unless its plots are missing: then the resume
  writes them).

A refusal prints one line and exits (status 2; 0 for a finished run). A single run is checked
before Hydra writes ``.hydra/`` or the log; what the task function finds wrong later (a config
that does not build) restores ``.hydra/`` and the log as they were. A sweep's job is checked
inside the job, after Hydra has rewritten its ``.hydra/*.yaml``; its records, history, points
and checkpoint stay as they were. The checks fail closed: an error inside them refuses.
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.errors import ConfigCompositionException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from pinn_exp.io.record import CHECKPOINT, CONFIG, HISTORY, METRICS, PLOTS
from pinn_exp.sweep import SWEEP_CLAIM, check_job_values, watch

#: a run directory's claim: created exclusively, holds ``pid PID host HOST``
RUN_CLAIM = ".run.lock"
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


class Refused(Exception):
    """The command would damage a run on disk; the message says why and what to do."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def _job_config(config: DictConfig) -> dict:
    """The config a run records in config_resolved.yaml (everything but ``hydra``)."""
    job = copy.deepcopy(config)
    with read_write(job), open_dict(job):
        del job["hydra"]
    try:
        return OmegaConf.to_container(job, resolve=True)
    except Exception as exc:  # noqa: BLE001 - an interpolation that does not resolve
        raise Refused(f"the config cannot be resolved: {exc}".replace("\n", " ")) from None


def _differences(before: dict, after: dict) -> list[str]:
    """Keys of ``before`` (flattened) whose value differs in ``after``, resumable keys aside;
    keys the recorded config lacks were added to the project after the run started."""
    before, after = _flat(before), _flat(after)
    return [
        f"{k} ({before.get(k)!r} -> {after.get(k)!r})"
        for k in sorted(before)
        if k.split(".")[0] not in RESUMABLE and before.get(k) != after.get(k)
    ]


#: the defaults that changed (key, the value before): a run started before resumes with
#: these on its command line
CHANGED_DEFAULTS = {"optimizer.compile": False}


def _old_defaults_hint(before: dict, after: dict) -> str:
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


def _compare(run_dir: Path, recorded: dict, job: dict, source: str) -> None:
    changed = _differences(recorded, job)
    if changed:
        raise Refused(
            f"cannot resume {run_dir}: the config differs from the run's ({source}) in "
            f"{', '.join(changed)}; only {', '.join(sorted(RESUMABLE))} may change on resume"
            + _old_defaults_hint(_flat(recorded), _flat(job))
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


#: free disk space below which a run or a sweep does not start (its files take a few MB)
MIN_FREE_MB = 50


def check_path(value: Any, key: str) -> Path:
    """The directory ``key=value`` names, absolute; :class:`Refused` for an empty value (it
    would be the current directory), a dangling symbolic link or a loop of links."""
    text = "" if value is None else str(value)
    if not text.strip():
        raise Refused(f"{key} is empty: give the directory the output goes to ({key}=DIR)")
    path = Path(os.path.abspath(text))
    for part in [path, *path.parents]:
        if part.is_symlink():
            try:
                part.resolve(strict=True)
            except RuntimeError:
                raise Refused(f"{key}={text}: {part} is a loop of symbolic links") from None
            except OSError as exc:
                if exc.errno == 40:  # ELOOP
                    raise Refused(f"{key}={text}: {part} is a loop of symbolic links") from None
                raise Refused(
                    f"{key}={text}: {part} is a symbolic link to {os.readlink(part)}, which "
                    "does not exist; create its target or choose another directory"
                ) from None
    return path


def check_writable(folder: Path, key: str) -> None:
    """Raises :class:`Refused` unless ``folder`` (created if need be) takes a file and its
    disk has ``MIN_FREE_MB`` free: a read-only or full disk is said in one line, up front."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise Refused(f"{key}={folder} cannot be written: {exc.strerror or exc}") from None
    free_mb = shutil.disk_usage(folder).free / 2**20
    if free_mb < MIN_FREE_MB:
        raise Refused(
            f"{key}={folder}: only {free_mb:.0f} MiB are free on its disk (a run needs at "
            f"least {MIN_FREE_MB} MiB); free some space or choose another {key}"
        )


def _is_sweep_dir(folder: Path) -> bool:
    return (folder / SWEEP_CLAIM).exists() or (folder / "multirun.yaml").exists()


def _is_run_dir(folder: Path) -> bool:
    return any((folder / name).exists() for name in (METRICS, CHECKPOINT, RUN_CLAIM))


def _enclosing(folder: Path) -> list[Path]:
    """``folder`` and every folder above it, as given and with symbolic links resolved (a link
    into a sweep's or a run's folder is inside it)."""
    out: list[Path] = []
    for path in (Path(os.path.abspath(folder)), Path(os.path.realpath(folder))):
        for part in (path, *path.parents):
            if part not in out:
                out.append(part)
    return out


def _same(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def check_not_in_sweep(run_dir: Path) -> None:
    """A single run neither writes into a sweep's directory nor anywhere below one (a job's
    folder or a folder in it, also through a symbolic link)."""
    for folder in _enclosing(run_dir):
        if _is_sweep_dir(folder):
            inside = "" if _same(folder, run_dir) else "inside "
            raise Refused(
                f"hydra.run.dir={run_dir} is {inside}a sweep's directory ({folder}); a "
                f"sweep's jobs are resumed with -m ... resume=true hydra.sweep.dir={folder}, "
                "a single run goes elsewhere"
            )


def check_not_in_run(sweep_dir: Path) -> None:
    """A sweep neither writes into a run's directory nor anywhere below one (also through a
    symbolic link)."""
    for folder in _enclosing(sweep_dir):
        if _is_run_dir(folder):
            inside = "" if _same(folder, sweep_dir) else "inside "
            raise Refused(
                f"hydra.sweep.dir={sweep_dir} is {inside}a run's directory ({folder}); choose "
                "another hydra.sweep.dir"
            )


def check_sweep_not_in_sweep(sweep_dir: Path) -> None:
    """A sweep does not write below another sweep's folder (its report would take the new
    sweep's runs for its own)."""
    for folder in _enclosing(sweep_dir):
        if not _same(folder, sweep_dir) and _is_sweep_dir(folder):
            raise Refused(
                f"hydra.sweep.dir={sweep_dir} is inside another sweep's directory ({folder}); "
                "choose another hydra.sweep.dir"
            )


def _nothing_to_lose(run_dir: Path) -> bool:
    """True for a run that failed before training (a bad value, an allocation while
    building): a corrected command may take its directory."""
    try:
        record = json.loads((run_dir / METRICS).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("status") in ("failed", "oom")
        and record.get("phase") in ("config", "build")
        and not (run_dir / CHECKPOINT).exists()
        and not (run_dir / HISTORY).exists()
    )


def check_run_dir(run_dir: Path, job: dict) -> None:
    """Raises :class:`Refused` unless a run may write into ``run_dir``."""
    if job.get("resume"):
        check_resume(run_dir, job)
    elif (run_dir / METRICS).exists() and not _nothing_to_lose(run_dir):
        raise Refused(
            f"{run_dir} holds another run's record ({METRICS}); choose another "
            "hydra.run.dir, or add resume=true to continue that run"
        )
    elif (run_dir / CHECKPOINT).exists() and not (run_dir / METRICS).exists():
        raise Refused(
            f"{run_dir} holds another run's {CHECKPOINT}; choose another hydra.run.dir, or "
            "add resume=true to continue that run"
        )


# ------------------------------------------------------------------ a run directory's claim
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _holder(text: str) -> tuple[int, str, str | None] | None:
    """(pid, host, SLURM job id or None) of a claim's text."""
    match = re.fullmatch(r"pid (\d+) host (\S+)(?: slurm (\S+))?\s*", text)
    return (int(match.group(1)), match.group(2), match.group(3)) if match else None


def _slurm_job() -> str | None:
    """This process's SLURM job (an array task: its own id), or None outside SLURM."""
    return os.environ.get("SLURM_JOB_ID") or None


def _gone(holder: tuple[int, str, str | None], host: str) -> bool:
    """The claim's process has ended: it ran on this host and is not alive, or it was an
    earlier start of this same SLURM job (SLURM runs one instance of a job at a time, and a
    requeued job may start on another node)."""
    pid, where, job = holder
    if job is not None and job == _slurm_job() and (pid, where) != (os.getpid(), host):
        return True
    return where == host and not _alive(pid)


def _take_over(path: Path, stale: str) -> None:
    """Removes a claim whose process died, unless another process renewed it meanwhile."""
    moved = path.with_name(f"{path.name}.{os.getpid()}.stale")
    try:
        os.replace(path, moved)
    except FileNotFoundError:
        return
    try:
        if moved.read_text() != stale:  # a fresh claim was moved: put it back
            try:
                os.link(moved, path)
            except FileExistsError:
                pass
    finally:
        moved.unlink(missing_ok=True)


class Claim:
    """A run directory's claim (``.run.lock``), held until :meth:`release`."""

    def __init__(self, path: Path, text: str):
        self.path, self.text = path, text

    def release(self) -> None:
        try:
            if self.path.read_text() == self.text:
                self.path.unlink()
        except OSError:
            pass


def claim_run_dir(run_dir: Path) -> Claim:
    """Claims ``run_dir`` for this process, or raises :class:`Refused` if a live process holds
    it; a claim of a process that ended (killed, crashed) on this host is taken over."""
    import time

    path = run_dir / RUN_CLAIM
    host = socket.gethostname()
    job = _slurm_job()
    text = f"pid {os.getpid()} host {host}" + (f" slurm {job}" if job else "") + "\n"
    deadline = time.monotonic() + 3
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if path.is_symlink():
                # not a claim this project writes (it creates a plain file): a dangling link
                # would never open, and a link elsewhere is not this folder's to take over
                target = os.readlink(path)
                raise Refused(
                    f"{run_dir} cannot be claimed: its {RUN_CLAIM} is a symbolic link to "
                    f"{target}, not a claim; delete {path} if no run uses {run_dir}"
                ) from None
            try:
                held, age = path.read_text(), time.time() - path.stat().st_mtime
            except FileNotFoundError:
                if time.monotonic() < deadline:
                    continue  # released meanwhile
                raise Refused(
                    f"{run_dir} cannot be claimed: its {RUN_CLAIM} neither opens nor can be "
                    f"created; delete {path} if no run uses {run_dir}"
                ) from None
            holder = _holder(held)
            if holder is None and age < 5 and time.monotonic() < deadline:
                time.sleep(0.1)  # being written by the process that created it
                continue
            if holder is None or _gone(holder, host):
                _take_over(path, held)
                if time.monotonic() < deadline:
                    continue
            who = f"process {holder[0]} on {holder[1]}" if holder else "another process"
            raise Refused(
                f"{run_dir} is in use by {who} (its {RUN_CLAIM}); wait until it ends, or "
                f"delete {path} if that process is gone"
            ) from None
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return Claim(path, text)


#: runs admitted in this process: run directory -> its claim and its files before the run
_ADMITTED: dict[str, dict[str, Any]] = {}


def admitted(run_dir: Path) -> bool:
    """True if this process claimed and checked ``run_dir`` (:func:`admit`)."""
    return str(Path(run_dir).absolute()) in _ADMITTED


def admit(run_dir: Path, job: dict, sweep: bool = False, keep: tuple[str, ...] = ()) -> None:
    """Claims ``run_dir`` and checks that the run ``job`` may write there (raises
    :class:`Refused` otherwise, the claim released). ``keep``: files (relative) whose
    content is kept in memory, for :func:`refuse_started` to put back."""
    run_dir = Path(run_dir).absolute()
    if admitted(run_dir):
        return
    if not sweep:
        check_not_in_sweep(run_dir)
    claim = claim_run_dir(run_dir)
    try:
        check_run_dir(run_dir, job)
        files = {
            name: (run_dir / name).read_bytes() if (run_dir / name).is_file() else None
            for name in keep
        }
    except BaseException:
        claim.release()
        raise
    _ADMITTED[str(run_dir)] = {"claim": claim, "files": files}


def release(run_dir: Path) -> None:
    """Releases the claim of ``run_dir`` (at the end of its run)."""
    entry = _ADMITTED.pop(str(Path(run_dir).absolute()), None)
    if entry is not None:
        entry["claim"].release()


def _release_all() -> None:
    for run_dir in list(_ADMITTED):
        release(Path(run_dir))


def refuse_started(run_dir: Path, exc: Refused) -> None:
    """A run admitted by :func:`admit` that cannot start after all: puts back the kept files
    (``.hydra/``, the log, which Hydra rewrote), releases the claim, says ``exc``."""
    run_dir = Path(run_dir).absolute()
    entry = _ADMITTED.get(str(run_dir), {"files": {}})
    for name, content in entry["files"].items():
        try:
            if content is None:
                (run_dir / name).unlink(missing_ok=True)
            else:
                from pinn_exp.io.records import atomic_write

                atomic_write(run_dir / name, lambda f, c=content: f.write(c))
        except OSError:
            pass
    hydra_dir = run_dir / ".hydra"
    if hydra_dir.is_dir() and not any(hydra_dir.iterdir()):
        hydra_dir.rmdir()
    release(run_dir)
    say(exc)


def requeued() -> bool:
    """True in a SLURM job that SLURM restarted (``--requeue``, submitit's timeouts)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0


# --------------------------------------------------------------------------------- sweeps
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
        key, _, value = str(override).partition("=")
        out[key.lstrip("+~")] = value
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
    try:
        old = OmegaConf.load(path)
        before, after = _overrides(old), _overrides(config)
        old_job = _unresolved_job(old)
    except Exception as exc:  # noqa: BLE001 - a damaged multirun.yaml
        raise Refused(
            f"cannot resume the sweep {sweep_dir}: multirun.yaml is unreadable "
            f"({type(exc).__name__}: {exc})".replace("\n", " ")
        ) from None
    old_values, new_values = _flat(old_job), _flat(_unresolved_job(config))
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
        d for d in _differences(old_job, _unresolved_job(config)) if d.split(" ")[0] not in given
    ]
    if changed:
        raise Refused(
            f"cannot resume the sweep {sweep_dir}: its config differs from the sweep's "
            f"(multirun.yaml) in {', '.join(changed)}; only {', '.join(sorted(RESUMABLE))} may "
            "change on resume; start a new sweep in another hydra.sweep.dir"
            + _old_defaults_hint(old_values, new_values)
        )
    if "optimizer.lbfgs_impl" not in given:
        _check_same_lbfgs(sweep_dir, old, config, old_values, new_values)


#: the launcher that adds optimizer.lbfgs_impl=sync_free to its jobs (hydra/launcher=batched)
BATCHED_LAUNCHER = "hydra_plugins.pinn_exp_launcher.batched_launcher.BatchedLauncher"


def _jobs_lbfgs(config: DictConfig, values: dict) -> Any:
    """The L-BFGS of a sweep's jobs where its command line chooses none: ``sync_free`` where
    the batched launcher adds it (its ``sync_free`` key), else the composed value."""
    launcher = config.hydra.get("launcher") or {}
    if launcher.get("_target_") == BATCHED_LAUNCHER and launcher.get("sync_free", True):
        return "sync_free"
    return values.get("optimizer.lbfgs_impl")


def _check_same_lbfgs(
    sweep_dir: Path, old: DictConfig, config: DictConfig, old_values: dict, new_values: dict
) -> None:
    """A resumed sweep runs its jobs not yet started with the L-BFGS its started jobs had: a
    change of launcher must not change it (the batched launcher adds
    optimizer.lbfgs_impl=sync_free), or one sweep would compare two optimizers."""
    before, after = _jobs_lbfgs(old, old_values), _jobs_lbfgs(config, new_values)
    if before == after:
        return
    if after == "sync_free":  # the batched launcher, after a launcher that did not add it
        fix = "hydra.launcher.sync_free=false (the jobs then run one after the other)"
    else:
        fix = "hydra/launcher=batched (as the sweep ran)"
    raise Refused(
        f"cannot resume the sweep {sweep_dir}: its jobs ran with optimizer.lbfgs_impl={before} "
        f"and this launcher would run those not yet started with optimizer.lbfgs_impl={after} "
        f"(one sweep, two optimizers); resume it with {fix}"
    )


BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def _check_subdir(name: str, subdir: str, sweep_dir: Path) -> None:
    """A job's folder is a folder strictly inside the sweep's: not absolute, no ``..`` out of
    it, not the sweep's folder itself (Hydra would write the job's ``.hydra/`` and log there,
    into another run's folder or the sweep's own)."""
    normal = os.path.normpath(name)
    if os.path.isabs(name) or normal == "." or normal == ".." or normal.startswith("../"):
        raise Refused(
            f"hydra.sweep.subdir={subdir} gives a job the folder {name!r}, which is not a "
            f"folder inside hydra.sweep.dir={sweep_dir}: use a relative path without '..' "
            "(e.g. the default ${hydra.job.num}_...)"
        )


def has_links(sweep_dir: Path, depth: int) -> bool:
    """True if a symbolic link is among the entries of ``sweep_dir`` down to ``depth`` levels
    (where a job's folder, or a folder on the way to it, could be one)."""
    level = [Path(sweep_dir)]
    for _ in range(max(depth, 1)):
        below = []
        for folder in level:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if entry.is_symlink():
                    return True
                if entry.is_dir(follow_symlinks=False):
                    below.append(Path(entry.path))
        level = below
    return False


def check_job_link(sweep_dir: Path, name: str) -> None:
    """A job's folder (``name``, relative to ``sweep_dir``) and every folder between it and
    the sweep's are real folders, not symbolic links: Hydra writes the job's ``.hydra/`` and
    log into it before any check of the job, so a link to another run's folder would have that
    run's files rewritten."""
    part = Path(sweep_dir)
    for piece in Path(os.path.normpath(name)).parts:
        part = part / piece
        if part.is_symlink():
            where = "" if part == Path(sweep_dir) / os.path.normpath(name) else "inside "
            raise Refused(
                f"the sweep's job folder {Path(sweep_dir) / name} is {where}a symbolic link "
                f"({part} -> {os.readlink(part)}): the job would write into another folder; "
                "remove the link or choose another hydra.sweep.dir; nothing was started"
            )


def check_distinct_jobs(config: DictConfig, sweep_dir: Path) -> None:
    """Refuses a sweep whose jobs' folders are not folders inside the sweep's (an absolute
    ``hydra.sweep.subdir``, or one with ``..``), and a sweep of Hydra's basic sweeper whose
    jobs map to one directory (a ``hydra.sweep.subdir`` that does not tell them apart) or
    whose job folder is a symbolic link (:func:`check_job_link`). Other sweepers are left to
    the jobs' own checks (pinn_exp/cli.py) and the batched launcher's."""
    subdir = str(OmegaConf.to_container(config.hydra.sweep)["subdir"])
    _check_subdir(subdir, subdir, sweep_dir)  # as written: '/x/${seed}', '${seed}/..'
    distinct = "hydra.job.num" in subdir or "hydra.job.id" in subdir
    if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        return
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    loader = GlobalHydra.instance().config_loader()
    arguments = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    arguments += OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(arguments)
    jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    check_job_values(config, loader, jobs)  # every swept value composes, before any job runs
    linked = has_links(sweep_dir, len(Path(subdir).parts))
    if distinct and not linked:  # distinct by construction: the first job's folder says where
        jobs = jobs[:1]
    seen: dict[str, int] = {}
    before = HydraConfig.instance().cfg
    try:
        for num, overrides in enumerate(jobs):
            job_config = loader.load_sweep_config(config, list(overrides))
            with open_dict(job_config):
                job_config.hydra.job.id, job_config.hydra.job.num = str(num), num
            HydraConfig.instance().set_config(job_config)
            name = str(OmegaConf.select(job_config, "hydra.sweep.subdir"))
            _check_subdir(name, subdir, sweep_dir)
            check_job_link(sweep_dir, name)
            name = os.path.normpath(name)
            if name in seen:
                raise Refused(
                    f"jobs {seen[name]} and {num} of the sweep both write into "
                    f"{sweep_dir / name}: hydra.sweep.subdir={subdir} must differ between "
                    "jobs (add ${hydra.job.num} to it)"
                )
            seen[name] = num
    finally:
        HydraConfig.instance().cfg = before


def check_job_dir(job_dir: Path, sweep_dir: Path) -> None:
    """A sweep's job writes into a folder strictly inside the sweep's folder (any sweeper)."""
    job, sweep = os.path.realpath(job_dir), os.path.realpath(sweep_dir)
    if job == sweep or not job.startswith(sweep.rstrip(os.sep) + os.sep):
        raise Refused(
            f"the sweep's job folder {job_dir} is not a folder inside hydra.sweep.dir="
            f"{sweep_dir}: hydra.sweep.subdir must be a relative path without '..'"
        )


def say(exc: Refused) -> None:
    """The refusal's one line on stderr (``error:`` unless it is no error)."""
    print(("" if exc.code == 0 else "error: ") + str(exc), file=sys.stderr)


def _refuse(exc: Refused) -> None:
    say(exc)
    sys.exit(exc.code)


def _unchecked(exc: Exception, key: str) -> Refused:
    """A check that failed: the run does not start (the checks fail closed)."""
    message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return Refused(
        f"the output directory ({key}) could not be checked ({message}); nothing was started"
    )


class RunGuard(Callback):
    """The checks of this module, before Hydra touches a run's or a sweep's directory; and,
    for a sweep cut short, its summary and the command that finishes it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            run_dir = check_path(config.hydra.run.dir, "hydra.run.dir")
            job = _job_config(config)
            check_not_in_sweep(run_dir)
            check_writable(run_dir, "hydra.run.dir")
            log = f"{config.hydra.job.name}.log"
            keep = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", log)
            admit(run_dir, job, keep=keep)
            atexit.register(_release_all)
        except Refused as exc:
            _refuse(exc)
        except Exception as exc:  # noqa: BLE001 - the checks fail closed
            _refuse(_unchecked(exc, "hydra.run.dir"))

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
            _refuse(exc)
        except ConfigCompositionException as exc:  # a job's value that Hydra cannot take
            from pinn_exp.cli import composition_line

            print(composition_line(exc), file=sys.stderr)  # Hydra swallows a callback's error
            sys.exit(2)
        except Exception as exc:  # noqa: BLE001 - the checks fail closed
            _refuse(_unchecked(exc, "hydra.sweep.dir"))
        watch(config)
