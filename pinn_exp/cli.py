"""The command line: ``python run.py [overrides]`` in a checkout, ``pinn-exp [overrides]``
where the package is installed; ``-m`` for a sweep.

This module and ``pinn_exp/factory.py`` are the only places that touch Hydra. The flow:
compose the config, build every object (all checks happen here, before training), train,
write the run's record into its Hydra output directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
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


def _refuse(out_dir: Path, exc: guard.Refused, multirun: bool, started: bool = False) -> None:
    """Says ``exc``; a single run exits with its code, a sweep goes on with its other jobs.
    ``started``: the run was admitted, so what Hydra rewrote is put back."""
    if started:
        guard.refuse_started(out_dir, exc)
    else:
        guard.say(exc)
    if not multirun:
        sys.exit(exc.code)


def main() -> None:
    """The command line (``python run.py``, ``pinn-exp``): Hydra's main, with the errors of
    composing the config refused in one line and exit status 2, for a run and for every job
    of a sweep (:func:`composition_line`): an unknown key given without ``+``
    (``sampler.ratoi=0.2``, with the nearest key, as a key added with ``+`` is:
    pinn_exp.factory.check_keys), a value of the wrong type (``pde.dim=2.5``), an option that
    does not exist (``budget=bogus``). Hydra's other errors as Hydra reports them
    (``HYDRA_FULL_ERROR=1``: Hydra's full traceback, unchanged)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        _main()
        return
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors here instead of printing
    try:
        try:
            _main()
        except Exception as exc:  # noqa: BLE001 - a key of a swept group: checked per option
            argv = swept_group_key(exc, sys.argv)
            if argv is None:
                raise
            sys.argv = argv
            _main()
    except Exception as exc:  # noqa: BLE001 - reported below as Hydra would, or in one line
        _restore_env("HYDRA_FULL_ERROR", before)
        line = composition_line(exc)
        if line is not None:
            print(line, file=sys.stderr)
            sys.exit(2)
        from hydra._internal.utils import run_and_report

        def again(error: Exception = exc) -> None:
            raise error

        run_and_report(again)  # Hydra's own report of the error; exits 1
        raise
    finally:
        _restore_env("HYDRA_FULL_ERROR", before)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def unknown_key_line(exc: BaseException) -> str | None:
    """The one line for an override of a key the config does not have (Hydra's "Could not
    override"), with the nearest key; None for any other error."""
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    cause = exc.__cause__
    if not isinstance(exc, ConfigCompositionException) or not isinstance(
        cause, (ConfigAttributeError, ConfigKeyError)
    ):
        return None
    name, key, parent = str(cause.full_key or ""), str(cause.key or ""), cause.parent_node
    if not name or not isinstance(parent, DictConfig):
        return None
    known = [str(k) for k in parent.keys() if str(k) != "hydra" and not str(k).startswith("_")]
    match = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {name[: -len(key)]}{match[0]}?)" if match else ""
    where = f"the keys of {name[: -len(key) - 1]}" if "." in name else "the top-level keys"
    return f"error: {name} is not a config key{hint}; {where} are {', '.join(known)}"


#: how Hydra names a value's type in "could not be converted to TYPE", and what is allowed
_TYPE_NAMES = {
    "Integer": "an integer",
    "Float": "a number",
    "Boolean": "true or false",
    "String": "a string",
}
#: Hydra's flags that take the next argument as their value
_FLAGS_WITH_VALUE = {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir"}


def composition_line(exc: BaseException) -> str | None:
    """The one line for an error of composing the config (Hydra's
    ``ConfigCompositionException``), naming the key, the value and what is allowed; None for
    any other error.

    Args:
        exc: the error that Hydra raised.

    Returns:
        ``error: KEY=VALUE is not allowed; ...``: an unknown key (:func:`unknown_key_line`), a
        value of the wrong type (``it must be an integer``), an option a group does not have
        (``choose one of ...``); any other composition error as Hydra says it, on one line.
    """
    from hydra.errors import ConfigCompositionException, MissingConfigException
    from omegaconf.errors import ValidationError

    if isinstance(exc, SweptKeyError):
        return str(exc)
    if not isinstance(exc, ConfigCompositionException):
        return None
    line = unknown_key_line(exc)
    if line is not None:
        return line
    if isinstance(exc, MissingConfigException) and exc.options:
        group, _, option = str(exc.missing_cfg_file).rpartition("/")
        options = ", ".join(o for o in exc.options if not o.startswith("_"))
        return f"error: {group}={option} is not allowed; choose one of {options}"
    cause = exc.__cause__
    message = str(exc).strip()
    if isinstance(cause, ValidationError) and cause.full_key:
        key = str(cause.full_key)
        given = message.split("=", 1)[1] if message.startswith("Error merging override") else ""
        words = str(cause.msg).splitlines()[0] if cause.msg else ""
        kind = next((v for k, v in _TYPE_NAMES.items() if words.endswith(f"to {k}")), None)
        if kind is None and "is not a valid bool" in words:
            kind = _TYPE_NAMES["Boolean"]
        if kind is not None:
            if _optional(cause.object_type, str(cause.key)):
                kind += ", or null"
            return f"error: {key}={given} is not allowed; it must be {kind}"
        return f"error: {key}={given} is not allowed: {words}"
    return "error: " + "; ".join(part.strip() for part in message.splitlines() if part.strip())


def _optional(schema: object, key: str) -> bool:
    """True where the schema's field ``key`` may be null."""
    import dataclasses

    if not dataclasses.is_dataclass(schema):
        return False
    kinds = {f.name: f.type for f in dataclasses.fields(schema)}
    return "None" in str(kinds.get(key, ""))


def _overrides(argv: list[str]) -> list[str]:
    """The overrides among the command line's arguments (Hydra's flags and theirs left out)."""
    out, skip = [], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg in _FLAGS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            out.append(arg)
    return out


def swept_group_key(exc: BaseException, argv: list[str]) -> list[str] | None:
    """A sweep over a group's options (``sampler=rad,rsmote_hybrid``) with a key of that group
    (``sampler.chunk_size=1000``) that the group's default option lacks: Hydra composes the
    sweep's config with the default option first, and refuses the key although the swept
    options may have it. Each swept option is composed with the key: where one lacks it, the
    line of that option's keys is raised (:class:`SweptKeyError`); where all have it, the
    command line with the key as ``++KEY=VALUE`` (set where it exists: in every job) is
    returned, to run the sweep with. None where ``exc`` is another error.

    Args:
        exc: the error of composing the sweep's config.
        argv: the command line (``sys.argv``).

    Raises:
        SweptKeyError: a swept option lacks the key.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import ConfigCompositionException

    if "-m" not in argv and "--multirun" not in argv:
        return None
    if unknown_key_line(exc) is None:
        return None
    key = str(exc.__cause__.full_key)
    overrides = _overrides(argv)
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except Exception:  # noqa: BLE001 - Hydra reports a command line it cannot parse
        return None
    group = key.split(".", 1)[0]
    swept = [o for o in parsed if o.key_or_group == group and o.is_sweep_override()]
    given = [o for o in parsed if o.key_or_group == key and not o.is_sweep_override()]
    if len(swept) != 1 or len(given) != 1 or not given[0].input_line.startswith(f"{key}="):
        return None
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    from hydra.core.global_hydra import GlobalHydra

    from pinn_exp.config import compose_config

    GlobalHydra.instance().clear()  # the failed composition's
    for option in swept[0].sweep_string_iterator():
        try:
            compose_config([*fixed, f"{group}={option}"])
        except ConfigCompositionException as error:
            line = unknown_key_line(error)
            if line is None or str(error.__cause__.full_key) != key:
                raise
            raise SweptKeyError(
                line.replace(" is not a config key", f" is not a config key of {group}={option}")
            ) from None
    GlobalHydra.instance().clear()
    plain = given[0].input_line
    return [f"++{plain}" if arg == plain else arg for arg in argv]


class SweptKeyError(Exception):
    """A key that one of the options of a swept group lacks; the message is its one line."""


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
        guard.admit(out_dir, {**job, "resume": bool(cfg.resume) or requeued}, sweep=multirun)
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


def _run(
    cfg: DictConfig, hydra_cfg, out_dir: Path, job: dict, multirun: bool, requeued: bool
) -> float | None:
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
    # a run being resumed is left as it was until everything below has been built
    resuming = resume and (has_checkpoint or (out_dir / record_files.METRICS).is_file())
    meta = _meta(cfg, hydra_cfg)
    try:
        built = build(cfg)
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
