"""Group labels of runs: the label of each run under some grouping keys, and the settings
that differ inside a group, added to its label so that a group holds runs of one setting only
(``rsmote (n_points=300, rounds=3)``). Missing values are labelled ``"none"``; labels sort
numbers first (by value), then strings, then missing values."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from pinn_exp.report.settings import SETTING_NAMES, cell_label, setting_keys

MISSING_LABEL = "none"


def split_keys(spec: str | Sequence[str]) -> list[str]:
    """Grouping keys from ``"a,b"`` or ``["a", "b"]``.

    Args:
        spec: comma-separated names or a list of names.

    Returns:
        ``["a", "b"]`` (blanks dropped).
    """
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    return [p.strip() for p in parts if p and p.strip()]


def norm_label(value):
    """A hashable, comparable group label of one value.

    Args:
        value: a cell of the runs' frame.

    Returns:
        ``"none"`` for NaN/None/NA, ``10`` for ``10.0``, numpy scalars as Python values, else
        ``value``.
    """
    label = cell_label(value)
    return MISSING_LABEL if label is None else label


def sort_key(label: tuple) -> tuple:
    """Sorts group labels: numbers first (by value), then strings, then missing values.

    Args:
        label: a group label (one value per key).

    Returns:
        A key for ``sorted``.
    """
    out = []
    for value in label:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((0, float(value), ""))
        elif value == MISSING_LABEL:
            out.append((2, 0.0, ""))
        else:
            out.append((1, 0.0, str(value)))
    return tuple(out)


def group_labels(frame: pd.DataFrame, keys: list[str]) -> list[tuple]:
    """The group label (one value per key) of every row; absent columns count as missing.

    Args:
        frame: the runs.
        keys: the grouping columns.

    Returns:
        One tuple per row, in row order; ``("all",)`` for every row when ``keys`` is empty.
    """
    if not keys:
        return [("all",)] * len(frame)
    columns = [frame[k].tolist() if k in frame.columns else [None] * len(frame) for k in keys]
    return [tuple(norm_label(v) for v in values) for values in zip(*columns)]


def _differing(labels: dict[str, list], members: list[int], candidates: list[str]) -> set[str]:
    """The candidate keys whose values differ among the runs ``members``; a key of a group
    (``sampler.n_dense``) counts only among runs of one option of that group (``sampler``)."""
    out = set()
    for key in candidates:
        group = key.split(".", 1)[0]
        by = labels.get(group) if "." in key and group in SETTING_NAMES else None
        seen: dict = {}
        for i in members:
            seen.setdefault(by[i] if by is not None else None, set()).add(labels[key][i])
        if any(len(values) > 1 for values in seen.values()):
            out.add(key)
    return out


def setting_labels(
    runs: pd.DataFrame,
    keys: list[str],
    cell_keys: Sequence[str] = (),
    candidates: Sequence[str] | None = None,
) -> list[tuple[tuple, tuple]]:
    """Each run's group label, split further by the settings that differ inside a group.

    The runs are grouped by ``keys`` and ``cell_keys`` (a table's rows and columns); every
    candidate key whose value differs inside some group of one ``keys`` label is added to all
    labels of that ``keys`` label, so that a group holds runs of one setting only.

    Args:
        runs: the runs.
        keys: the grouping columns that get the extra settings (a table's rows).
        cell_keys: further grouping columns (a table's columns).
        candidates: the setting keys; None: ``runs.setting_keys`` of ``runs`` without
            ``keys`` and ``cell_keys``.

    Returns:
        Per run, ``(label, settings)``: the ``keys`` label and a tuple of ``(key, value)``
        pairs (empty when nothing differs).
    """
    base = group_labels(runs, keys)
    cells = list(zip(base, group_labels(runs, list(cell_keys))))
    if candidates is None:
        candidates = setting_keys(runs)
    candidates = [c for c in candidates if c in runs.columns and c not in (*keys, *cell_keys)]
    if not candidates or runs.empty:
        return [(label, ()) for label in base]
    needed = set(candidates) | {g for g in SETTING_NAMES if g in runs.columns}
    labels = {k: [norm_label(v) for v in runs[k].tolist()] for k in needed}
    members: dict[tuple, list[int]] = {}
    for i, cell in enumerate(cells):
        members.setdefault(cell, []).append(i)
    extra: dict[tuple, set[str]] = {}
    for (label, _), rows in members.items():
        extra.setdefault(label, set()).update(_differing(labels, rows, candidates))
    out = []
    for i, label in enumerate(base):
        shown = [k for k in candidates if k in extra[label]]
        out.append((label, tuple((k, labels[k][i]) for k in shown)))
    return out


def display_label(label: tuple, settings: tuple) -> tuple:
    """A label with its settings appended to its last value: ``("rsmote (n_points=300)",)``.

    Args:
        label: the group label.
        settings: ``(key, value)`` pairs; missing values are not shown.

    Returns:
        The label unchanged when there is nothing to show.
    """
    shown = [f"{k}={v}" for k, v in settings if v != MISSING_LABEL]
    if not shown:
        return label
    return (*label[:-1], f"{label[-1]} ({', '.join(shown)})")
