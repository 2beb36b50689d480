"""Reads the files of one run folder into its row of the runs' frame: the record
(``metrics.json``) as flat columns and the config as dotted keys.

A run without a readable ``metrics.json`` is listed with status ``incomplete`` and the columns
its config can give. The record's fields and file names come from :mod:`pinn_exp.io.record`;
records written before a field existed read as missing values there.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import yaml

from pinn_exp.hydra_adapter import flatten
from pinn_exp.io import record
from pinn_exp.io.storage import read_json
from pinn_exp.metrics import registry

log = logging.getLogger(__name__)

CONFIG_FILES = (record.CONFIG, record.HYDRA_CONFIG)
HYDRA_FILE = ".hydra/hydra.yaml"
INCOMPLETE = "incomplete"
#: the order of the status counts: the record's final statuses, then runs without one
STATUS_ORDER = (*(s for s in record.STATUSES if s != "running"), INCOMPLETE)
#: Hydra's instantiation flags, left out of the flattened config (``_target_`` is kept: the
#: frame drops the classes that the option names already tell apart)
HYDRA_SPECIAL_KEYS = {"_partial_", "_convert_", "_recursive_", "_args_"}
# Record columns an incomplete run can take from its config: column -> dotted config key.
CONFIG_FALLBACKS = {"dim": "pde.dim", "ratio": "sampler.ratio"}
#: the size of the collocation set after the last round (RAR-D grows from N/2)
FINAL_N = "final_n_points"


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _read_metrics(run_dir: Path) -> tuple[dict, str | None]:
    """The metrics record, or an empty dict and the reason the run counts as incomplete."""
    path = run_dir / record.METRICS
    if not path.is_file():
        return {}, f"no {record.METRICS} (run not finished)"
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        return {}, f"unreadable {record.METRICS}: {type(exc).__name__}: {exc}"
    if not isinstance(data, dict):
        return {}, f"unreadable {record.METRICS}: not a JSON object"
    return data, None


def per_round_values(value) -> list[float] | None:
    """A per-round field (``l2_rel_error_per_round``) as a list of floats.

    Args:
        value: the field as read from ``metrics.json``.

    Returns:
        The floats (nulls and non-numbers become NaN), or None when ``value`` is not a list.
    """
    if not isinstance(value, (list, tuple)):
        return None
    out = []
    for item in value:
        try:
            out.append(float(item) if item is not None else math.nan)
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


def _metric_scalars(data: dict) -> dict:
    """The flat part of a metrics record; nested values dropped except the per-round lists."""
    row = {str(k): v for k, v in data.items() if _is_scalar(v)}
    for name in record.per_round_fields():
        row[name] = per_round_values(data.get(name))
    # metrics of the per-round history (``fluctuation``), derived here for every run
    row.update(registry.history_all(row))
    return row


def _read_config_tree(run_dir: Path) -> dict:
    """The first readable config of the run as a nested dict (empty when there is none)."""
    for name in CONFIG_FILES:
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            tree = yaml.safe_load(path.read_text())
        except (OSError, ValueError, yaml.YAMLError) as exc:
            log.warning("cannot read %s: %s", path, exc)
            continue
        if isinstance(tree, dict):
            return tree
    return {}


def _hydra_choices(run_dir: Path) -> dict:
    """``hydra.runtime.choices`` (config group -> option) of the run, if recorded."""
    path = run_dir / HYDRA_FILE
    try:
        tree = yaml.safe_load(path.read_text()) if path.is_file() else None
        choices = tree["hydra"]["runtime"]["choices"]
    except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError):
        return {}
    return choices if isinstance(choices, dict) else {}


def _group_name(group: str, tree: dict, choices: dict) -> str | None:
    """The option chosen for config group ``group`` (``pde``, ``sampler``), best guess."""
    if isinstance(choices.get(group), str):
        return choices[group]
    node = tree.get(group)
    if not isinstance(node, dict):
        return node if isinstance(node, str) else None
    if isinstance(node.get("name"), str):
        return node["name"]
    target = node.get("_target_")
    return str(target).rsplit(".", 1)[-1].lower() if target else None


def _fill_from_config(row: dict, tree: dict, flat: dict, run_dir: Path) -> None:
    """Fills the record columns that an incomplete run lacks from its config."""
    choices = _hydra_choices(run_dir) if tree else {}
    for group in ("pde", "sampler"):
        if row.get(group) is None:
            row[group] = _group_name(group, tree, choices)
    for column, key in CONFIG_FALLBACKS.items():
        if row.get(column) is None and flat.get(key) is not None:
            row[column] = flat[key]


def _last_round_size(path: Path) -> int | None:
    """The number of points of the last ``round_K`` array of a ``collocation.npz``."""
    try:
        with np.load(path) as data:
            rounds = [k for k in data.files if k.startswith("round_") and k[6:].isdigit()]
            if not rounds:
                return None
            return int(data[max(rounds, key=lambda k: int(k[6:]))].shape[0])
    except (OSError, ValueError, EOFError, IndexError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None


def final_n_points(data: dict, run_dir: Path) -> int | None:
    """The size of the collocation set after the run's last round.

    Args:
        data: the run's record.
        run_dir: the run's folder.

    Returns:
        ``n_points`` of the record's last ``round_stats`` entry; for records without it, the
        size of the last round of ``collocation.npz``; None when neither is there.
    """
    stats = data.get("round_stats")
    if isinstance(stats, list) and stats and isinstance(stats[-1], dict):
        size = stats[-1].get("n_points")
        if isinstance(size, int) and not isinstance(size, bool):
            return size
    path = run_dir / record.COLLOCATION
    return _last_round_size(path) if path.is_file() else None


def read_record_and_config(run_dir: Path) -> tuple[dict, dict]:
    """The record and the config of one run folder, as the columns of its row.

    Args:
        run_dir: the run's folder.

    Returns:
        ``(metrics, config)``: the flat record columns (with ``status``; ``incomplete`` and an
        ``error`` message when ``metrics.json`` is missing or unreadable; ``final_n_points``)
        and the flattened config.
    """
    data, problem = _read_metrics(run_dir)
    row = _metric_scalars(data)
    if problem is None:
        row[FINAL_N] = final_n_points(data, run_dir)
    tree = _read_config_tree(run_dir)
    flat = flatten(tree, skip=HYDRA_SPECIAL_KEYS, lists_as_json=True)
    if problem is not None:
        row.update(status=INCOMPLETE, error=problem)
        _fill_from_config(row, tree, flat, run_dir)
    elif row.get("status") == "running":  # killed before it could write its final record
        row.update(status=INCOMPLETE, error=row.get("error") or "the run did not finish")
    elif row.get("status") is None:
        row["status"] = "unknown"
    return row, flat
