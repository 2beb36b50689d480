"""The settings of runs: which columns of the runs' frame are config keys, which of them make
two runs different settings (``setting_keys``), and the labels that compare their cells.

Two runs are the same *setting* when they agree on every key of ``setting_keys`` (the PDE and
sampler options, every config key except ``seed`` and the keys that do not change what a run
computes, ``IGNORED``, and whether the run was a member of a vectorized ensemble,
``computation``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

#: ``frame.attrs`` key of the flattened config keys of the runs (set by ``collect_runs``)
CONFIG_COLUMNS = "config_columns"
#: config keys (or prefixes ending in ".") that never make two runs different settings
IGNORED = ("seed", "resume", "progress", "report.", "hydra.")
#: the record's option names that are settings too, ahead of the config keys
SETTING_NAMES = ("pde", "sampler")
#: ``vmap`` for a member of a vectorized ensemble (record field ``batched``), missing for any
#: other run: a different computation from the single run of its config and seed (float32
#: round-off grows differently), so a setting of its own; a column only when such runs exist
COMPUTATION = "computation"
VMAP = "vmap"


def cell_label(value):
    """A hashable label of a cell (None for missing values, ``10`` for ``10.0``)."""
    if isinstance(value, np.generic):
        value = value.item()
    if (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and math.isnan(value))
    ):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def ignored(column: str) -> bool:
    """True for a config key that does not change what a run computes (``IGNORED``).

    Args:
        column: a config key.

    Returns:
        Whether two runs that differ in it alone are the same setting.
    """
    return any(column == k or (k.endswith(".") and column.startswith(k)) for k in IGNORED)


def config_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` that hold config keys (the experiment's settings).

    Args:
        frame: the runs; ``collect_runs`` names its config columns in ``frame.attrs``.

    Returns:
        Those columns; for a frame built otherwise, the dotted columns (``pde.dim``) and
        ``seed``, ``n_points`` and ``rounds``.
    """
    named = frame.attrs.get(CONFIG_COLUMNS)
    if named is None:
        named = [c for c in frame.columns if "." in str(c)] + ["seed", "n_points", "rounds"]
    return [c for c in named if c in frame.columns]


def setting_keys(frame: pd.DataFrame) -> list[str]:
    """The columns that define a run's setting: ``pde``, ``sampler``, every config key
    but ``seed`` and the ``IGNORED`` ones, and ``computation`` where present.

    Args:
        frame: the runs.

    Returns:
        The columns, in that order.
    """
    names = [c for c in SETTING_NAMES if c in frame.columns]
    keys = names + [c for c in config_columns(frame) if c not in names and not ignored(c)]
    return keys + ([COMPUTATION] if COMPUTATION in frame.columns else [])


def varying(runs: pd.DataFrame, keys: Sequence[str], by: Sequence[str] = ()) -> list[str]:
    """The ``keys`` whose values differ among ``runs``, or among the runs of one value of
    ``by`` (a missing value counts as a value of its own).

    Args:
        runs: some runs.
        keys: candidate columns (absent ones never vary).
        by: columns that split the runs first.

    Returns:
        The varying keys, in the order of ``keys``.
    """
    if runs.empty:
        return []
    if by:
        parts = [part for _, part in runs.groupby(list(by), dropna=False, sort=False)]
    else:
        parts = [runs]
    out = []
    for key in keys:
        if key in runs.columns and any(len({cell_label(v) for v in p[key]}) > 1 for p in parts):
            out.append(key)
    return out


def time_kinds(frame: pd.DataFrame) -> list[tuple]:
    """What each run's times are (record fields ``time_shared`` and ``ensemble_size``).

    Args:
        frame: the runs.

    Returns:
        Per row, ``("own",)`` for a run that timed itself (a single run, an older record) and
        ``("shared", S)`` for a member of an ensemble of S runs whose times are a share of the
        ensemble's; two times compare only when their kinds are equal.
    """
    shared = frame["time_shared"].tolist() if "time_shared" in frame.columns else []
    sizes = frame["ensemble_size"].tolist() if "ensemble_size" in frame.columns else []
    shared += [None] * (len(frame) - len(shared))
    sizes += [None] * (len(frame) - len(sizes))
    return [
        ("shared", cell_label(size)) if cell_label(flag) is True else ("own",)
        for flag, size in zip(shared, sizes)
    ]
