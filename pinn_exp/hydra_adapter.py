"""Every use of Hydra's internals and every reading of an override's text, in one place.

The rest of the package takes plain Python values from here:

* overrides: :func:`override_key` and :func:`split_override` (``+a.b=1``, ``~a``, ``++a=2``);
* configs: :func:`flatten` (a nested config as dotted keys);
* sweeps: :func:`expand_sweep` and :func:`sweep_jobs` (the jobs of Hydra's basic sweeper),
  :func:`check_job_values` (every swept value composes), :func:`job_subdirs` (each job's folder);
* errors: :func:`composition_line` and :func:`unknown_key_line` (composition errors in one
  line), :func:`swept_group_key` and :func:`run_main` (error handling around Hydra's main).

This module imports only Hydra, OmegaConf and the standard library.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import sys
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import fields, is_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

#: the class path of Hydra's basic sweeper (``hydra.sweeper._target_``)
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


# ------------------------------------------------------------------------------- overrides
def override_key(text: str) -> str:
    """The key of an override: ``a.b`` for ``+a.b=1``, ``++a.b=1``, ``~a.b`` or ``a.b=1``."""
    return split_override(text)[0]


def split_override(text: str) -> tuple[str, str]:
    """``(key, value)`` of an override (``+``/``~`` dropped from the key; value as written)."""
    key, _, value = str(text).partition("=")
    return key.lstrip("+~"), value


# --------------------------------------------------------------------------------- configs
def flatten(
    config: Mapping,
    prefix: str = "",
    *,
    skip: Collection[str] = (),
    lists_as_json: bool = False,
) -> dict:
    """A nested config as dotted keys: ``{"pde": {"dim": 10}}`` -> ``{"pde.dim": 10}``.

    Args:
        config: the nested config (plain dicts).
        prefix: prepended to every key.
        skip: keys left out at any depth (e.g. Hydra's ``_partial_``).
        lists_as_json: lists and tuples as JSON strings (else as they are).

    Returns:
        The flat dict; an empty mapping adds no key.
    """
    flat: dict = {}
    for key, value in config.items():
        key = str(key)
        if key in skip:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}.", skip=skip, lists_as_json=lists_as_json))
        elif lists_as_json and isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value, default=str)
        else:
            flat[name] = value
    return flat


# ---------------------------------------------------------------------------------- sweeps
def expand_sweep(
    params: Mapping, overrides: Sequence[str], config_loader: Any = None
) -> list[list[str]]:
    """The overrides of every job of a sweep, as Hydra's basic sweeper expands them.

    Args:
        params: the sweeper's parameters (``hydra.sweeper.params``: key -> value text).
        overrides: the command line's overrides (``hydra.overrides.task``).
        config_loader: Hydra's config loader, where one is at hand.

    Returns:
        One list of overrides per job, in job-number order.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    arguments = [f"{k}={v}" for k, v in params.items()] + [str(o) for o in overrides]
    parsed = OverridesParser.create(config_loader=config_loader).parse_overrides(arguments)
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def sweep_jobs(config: DictConfig, config_loader: Any = None) -> list[list[str]]:
    """:func:`expand_sweep` of a sweep's config (its ``hydra`` node, or ``multirun.yaml``)."""
    params = config.hydra.sweeper.get("params") or {}
    overrides = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    return expand_sweep(params, overrides, config_loader)


def sweep_config_loader() -> Any:
    """Hydra's config loader of the sweep that is starting."""
    from hydra.core.global_hydra import GlobalHydra

    return GlobalHydra.instance().config_loader()


def check_job_values(config: DictConfig, loader: Any, jobs: list[list[str]]) -> None:
    """Composes each option the sweep gives a config group and sets each value it gives a key
    (once, in a job that has it) before any job runs, so that a value Hydra cannot take
    (``pde.beta=1,abc``, ``budget=short,bogus``) stops the sweep before its first job. One job
    is composed per combination of group options met; a key's other values are set on it.

    Args:
        config: the sweep's config.
        loader: Hydra's config loader.
        jobs: every job's overrides, in the sweeper's order.

    Raises:
        hydra.errors.ConfigCompositionException: the first value that cannot be composed
            (:func:`composition_line` says it in one line).
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create(config_loader=loader)
    parsed: dict[str, Any] = {}
    chooses: dict[str, bool] = {}  # an override whose key is a config group (pde=heat)
    composed: dict[tuple[str, ...], DictConfig] = {}
    done: set[str] = set()
    for overrides in jobs:
        for line in overrides:
            if line not in parsed:
                parsed[line] = parser.parse_override(line)
                group = parsed[line].key_or_group.replace(".", "/")
                chooses[line] = bool(loader.get_group_options(group))
        groups = tuple(line for line in overrides if chooses[line])
        values = [line for line in overrides if line not in groups]
        if groups not in composed:
            composed[groups] = loader.load_sweep_config(config, list(overrides))
            done.update(values)
            continue
        new = [parsed[line] for line in values if line not in done]
        if new:
            # a plain change is checked in place (a later value replaces it); an addition or
            # a deletion on a copy, where it cannot meet the key it added or deleted
            plain = all(not (o.is_add() or o.is_force_add() or o.is_delete()) for o in new)
            target = composed[groups] if plain else copy.deepcopy(composed[groups])
            ConfigLoaderImpl._apply_overrides_to_config(new, target)
            done.update(values)


def job_subdirs(config: DictConfig, loader: Any, jobs: list[list[str]]) -> Iterator[str]:
    """The ``hydra.sweep.subdir`` of each job (in order), as Hydra composes it with the job's
    ``hydra.job.num`` and ``hydra.job.id``; Hydra's current config is put back after."""
    from hydra.core.hydra_config import HydraConfig

    before = HydraConfig.instance().cfg
    try:
        for num, overrides in enumerate(jobs):
            job_config = loader.load_sweep_config(config, list(overrides))
            with open_dict(job_config):
                job_config.hydra.job.id, job_config.hydra.job.num = str(num), num
            HydraConfig.instance().set_config(job_config)
            yield str(OmegaConf.select(job_config, "hydra.sweep.subdir"))
    finally:
        HydraConfig.instance().cfg = before


def no_callbacks() -> Any:
    """Hydra's callbacks object with no callback in it."""
    from hydra._internal.callbacks import Callbacks

    return Callbacks()


# ---------------------------------------------------------------------------------- errors
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
    if name.startswith("hydra.launcher.") and name.count(".") == 2:
        from hydra_plugins.pinn_exp_launcher.batched_launcher import BatchedLauncherConf

        batched = [f.name for f in fields(BatchedLauncherConf) if not f.name.startswith("_")]
        if key in batched and key not in known:
            return (
                f"error: {name} is a key of the batched launcher only; choose that launcher "
                f"with hydra/launcher=batched (its keys: {', '.join(batched)})"
            )
    match = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {name[: -len(key)]}{match[0]}?)" if match else ""
    where = f"the keys of {name[: -len(key) - 1]}" if "." in name else "the top-level keys"
    if not known:
        return f"error: {name} is not a config key{hint}; {where[len('the keys of ') :]} has none"
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
    """The one line for Hydra's ``ConfigCompositionException``; None for any other error.

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
        return _validation_line(cause, message)
    return "error: " + "; ".join(part.strip() for part in message.splitlines() if part.strip())


def _validation_line(cause: Any, message: str) -> str:
    """The one line for a value the schema does not take (``pde.dim=2.5``)."""
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


def _optional(schema: object, key: str) -> bool:
    """True where the schema's field ``key`` may be null."""
    if not is_dataclass(schema):
        return False
    kinds = {f.name: f.type for f in fields(schema)}
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


class SweptKeyError(Exception):
    """A key that one of the options of a swept group lacks; the message is its one line."""


def swept_group_key(
    exc: BaseException, argv: list[str], compose: Callable[[list[str]], Any]
) -> list[str] | None:
    """A sweep over a group's options (``sampler=rad,rsmote_hybrid``) with a key of that group
    (``sampler.chunk_size=1000``) that its default option lacks, which Hydra refuses although
    the swept options may have it: each swept option is composed with the key.

    Args:
        exc: the error of composing the sweep's config.
        argv: the command line (``sys.argv``).
        compose: composes the project's config with a list of overrides.

    Returns:
        The command line with the key as ``++KEY=VALUE`` (set in every job) where every swept
        option has the key; None where ``exc`` is another error.

    Raises:
        SweptKeyError: a swept option lacks the key.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if "-m" not in argv and "--multirun" not in argv:
        return None
    if unknown_key_line(exc) is None:
        return None
    key = str(exc.__cause__.full_key)
    try:
        parsed = OverridesParser.create().parse_overrides(_overrides(argv))
    except Exception:  # noqa: BLE001 - Hydra reports a command line it cannot parse
        return None
    group = key.split(".", 1)[0]
    swept = [o for o in parsed if o.key_or_group == group and o.is_sweep_override()]
    given = [o for o in parsed if o.key_or_group == key and not o.is_sweep_override()]
    if len(swept) != 1 or len(given) != 1 or not given[0].input_line.startswith(f"{key}="):
        return None
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    _check_swept_options(key, group, list(swept[0].sweep_string_iterator()), fixed, compose)
    plain = given[0].input_line
    return [f"++{plain}" if arg == plain else arg for arg in argv]


def _check_swept_options(
    key: str, group: str, options: list[str], fixed: list[str], compose: Callable
) -> None:
    """Composes each swept option with ``fixed``; :class:`SweptKeyError` where one lacks ``key``."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException

    GlobalHydra.instance().clear()  # the failed composition's
    for option in options:
        try:
            compose([*fixed, f"{group}={option}"])
        except ConfigCompositionException as error:
            line = unknown_key_line(error)
            if line is None or str(error.__cause__.full_key) != key:
                raise
            raise SweptKeyError(
                line.replace(" is not a config key", f" is not a config key of {group}={option}")
            ) from None
    GlobalHydra.instance().clear()


def run_main(main: Callable[[], Any], compose: Callable[[list[str]], Any]) -> None:
    """Runs Hydra's ``main``: an error of composing the config refused in one line with exit
    status 2 (:func:`composition_line`; a key of a swept group checked per option:
    :func:`swept_group_key`), any other as Hydra reports it (``HYDRA_FULL_ERROR=1``: unchanged)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        main()
        return
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors here instead of printing
    try:
        try:
            main()
        except Exception as exc:  # noqa: BLE001 - a key of a swept group: checked per option
            argv = swept_group_key(exc, sys.argv, compose)
            if argv is None:
                raise
            sys.argv = argv
            main()
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
