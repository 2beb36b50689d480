"""Paired comparison of samplers against a baseline sampler.

Runs with the same seed share the initial network and the first collocation set across
samplers, so two samplers can be compared run by run: for each group of the table's columns
(the PDE and the other column keys) and each sampler, its runs are paired with the baseline's
runs of the same seed and the same value of every other config key that differs across the
group (``n_points`` in a table over two set sizes), apart from the sampler's own keys. Of each
pair the report gives the error ratio sampler / baseline; over the pairs the geometric mean of
the ratios with a 95 % Student-t confidence interval (on the log ratios), the number of pairs
where the sampler's error is smaller (ratio < 1), and a two-sided Wilcoxon signed-rank p-value
on the log ratios, exact (sign-flip distribution, ties sharing their average rank, pairs with a
ratio of exactly 1 dropped). A difference is called significant only when p is below the level
and the number of pairs whose ratio is not 1 can reach such a p. Runs without a partner are left
out and counted; so are ok runs whose value is not finite or not positive (a ratio needs two
positive numbers).

A member of a vectorized ensemble (``runs.COMPUTATION``) pairs only with runs of its kind. A
time or memory value (``record.unit``) is compared only between runs that measured their own:
a pair with a member of a batched ensemble whose time and memory are the ensemble's
(``time_shared``) is left out and counted in ``left_out_time_shared``, as its value is one
per ensemble, not per run.

``pairing`` pairs the runs and computes each row's statistics; ``paired_text`` writes the
comparison into ``summary.md`` and ``summary_paired.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pinn_exp.io import record
from pinn_exp.report.pairing import (
    better_direction,
    compare_pairs,
    is_sampler_key,
    pairing_keys,
    run_arms,
    seed_count,
    shared_labels,
    usable_runs,
    values_by_pair,
)
from pinn_exp.report.runs import COMPUTATION, config_columns, not_finite, numeric, ok_runs
from pinn_exp.report.tables import group_labels, sort_key, split_keys

#: the baseline when none is configured, if it has runs
DEFAULT_BASELINE = "rad"
#: the columns of ``PairedComparison.table`` after the group keys
COLUMNS = (
    "sampler",
    "baseline",
    "metric",
    "paired_by",
    "pairs",
    "nonzero",
    "seeds",
    "unpaired_sampler",
    "unpaired_baseline",
    "left_out_time_shared",
    "ratios",
    "geo_mean_ratio",
    "ci_low",
    "ci_high",
    "wins",
    "p_value",
    "significant",
)


@dataclass
class PairedComparison:
    """The paired comparison of every sampler against one baseline.

    Attributes:
        baseline: the baseline sampler; None when there is none (see ``notes``).
        metric: the compared column.
        group_keys: the columns that split the runs into groups (``pde`` first).
        table: one row per (group, sampler): the group keys, then ``COLUMNS``; ``ratios``
            maps each pair's label (its seed, or the values of ``paired_by``) to its ratio;
            ``left_out_time_shared``: pairs of a time or memory metric with a run whose value
            is its ensemble's (``time_shared``), left out.
        notes: why the comparison, or a group of it, was skipped.
    """

    baseline: str | None
    metric: str
    group_keys: list[str]
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def choose_baseline(
    frame: pd.DataFrame, baseline: str | None, metric: str = "l2_rel_error"
) -> tuple[str | None, str | None]:
    """The baseline sampler: ``baseline`` when given, else ``rad`` if it has runs.

    Args:
        frame: the runs.
        baseline: the configured baseline (``report.baseline``, ``--baseline``), or None.
        metric: the compared column.

    Returns:
        ``(name, None)``, or ``(None, note)`` saying why there is no baseline.
    """
    runs = usable_runs(frame, metric)
    present = set(runs["sampler"].dropna().astype(str)) if "sampler" in runs.columns else set()
    if baseline is not None:
        if baseline in present:
            return baseline, None
        return None, (
            f"No paired comparison: the baseline `{baseline}` has no ok run with a value of "
            f"`{metric}`."
        )
    if DEFAULT_BASELINE in present:
        return DEFAULT_BASELINE, None
    return None, (
        f"No paired comparison: no baseline set (`report.baseline`, `--baseline`) and the "
        f"default `{DEFAULT_BASELINE}` has no ok run with a value of `{metric}`."
    )


def paired_comparison(
    frame: pd.DataFrame,
    baseline: str | None = None,
    cols: str | list[str] = "pde",
    metric: str = "l2_rel_error",
    pair_keys: list[str] | None = None,
) -> PairedComparison:
    """Every sampler against ``baseline``, run by run, per group of the table's columns.

    Args:
        frame: the runs (as from ``runs.collect_runs``).
        baseline: the baseline sampler (a value of the ``sampler`` column); None: ``rad`` when
            it has runs, else no comparison (a note says so).
        cols: the table's column keys; the groups are ``pde`` and these (the sampler's own
            keys and ``seed`` aside).
        metric: the compared column (smaller is better).
        pair_keys: the keys runs are paired on besides ``seed``; None: every config key
            (``runs.config_columns``) that differs across the group, except the sampler's own
            keys, the group keys and the keys that do not change a run (``progress``,
            ``resume``, ``report.*``).

    Returns:
        The comparison; its table is empty when there is no baseline.
    """
    group_keys = ["pde"] + [
        k for k in split_keys(cols) if k not in ("pde", "seed") and not is_sampler_key(k)
    ]
    name, note = choose_baseline(frame, baseline, metric)
    empty = pd.DataFrame(columns=[*group_keys, *COLUMNS])
    if name is None:
        return PairedComparison(None, metric, group_keys, empty, [note] if note else [])
    runs = usable_runs(frame, metric)
    configs = config_columns(frame)
    sampler_keys = [c for c in configs if c.startswith("sampler.")]
    if "seed" not in runs.columns:
        notes = ["No paired comparison: the runs have no `seed`."]
        return PairedComparison(name, metric, group_keys, empty, notes)
    runs = runs.assign(_arm=run_arms(runs, sampler_keys), _group=group_labels(runs, group_keys))
    if COMPUTATION in runs.columns:  # vmap members pair with vmap members only
        configs = [*configs, COMPUTATION]
    rows, notes = [], [note for note in [_left_out_note(frame, metric)] if note]
    for group in sorted(set(runs["_group"]), key=sort_key):
        head = {**dict(zip(group_keys, group)), "baseline": name, "metric": metric}
        part = runs[runs["_group"] == group]
        keys = ["seed", *pairing_keys(part, configs, group_keys, pair_keys)]
        found, skipped = _group_rows(part, head, keys)
        rows += found
        if skipped:
            where = ", ".join(f"{k} = {v}" for k, v in zip(group_keys, group))
            notes.append(f"{where}: {skipped}")
    table = pd.DataFrame(rows, columns=[*group_keys, *COLUMNS]) if rows else empty
    time_note = _time_shared_note(table, group_keys, metric)
    return PairedComparison(name, metric, group_keys, table, notes + time_note)


def _group_rows(part: pd.DataFrame, head: dict, keys: list[str]) -> tuple[list[dict], str | None]:
    """The rows of one group (``head``: its keys, the baseline and the metric), each arm
    against the baseline's one arm paired on ``keys``; or none and why the group is skipped."""
    name, metric = head["baseline"], head["metric"]
    arms = sorted(set(part["_arm"]))
    base_arms = [a for a in arms if a == name or a.startswith(f"{name} (")]
    if not base_arms:
        return [], f"no ok run of `{name}`, not compared."
    if len(base_arms) > 1:
        return [], f"`{name}` has several variants ({', '.join(base_arms)}), not compared."
    base_runs = part[part["_arm"] == base_arms[0]]
    base = values_by_pair(base_runs, keys)
    rows = []
    for arm in arms:
        if arm == base_arms[0]:
            continue
        arm_runs = part[part["_arm"] == arm]
        mine, theirs, drop = values_by_pair(arm_runs, keys), base, set()
        if record.unit(metric):  # memory and times
            drop = shared_labels(arm_runs, base_runs, keys)
            mine = {k: v for k, v in mine.items() if k not in drop}
            theirs = {k: v for k, v in base.items() if k not in drop}
        stats = compare_pairs(mine, theirs, better_direction(metric))
        rows.append(
            {
                **head,
                "sampler": arm,
                "paired_by": ", ".join(keys),
                "seeds": seed_count(stats["ratios"]),
                "left_out_time_shared": len(drop),
                **stats,
            }
        )
    return rows, None


def _left_out_note(frame: pd.DataFrame, metric: str, limit: int = 10) -> str | None:
    """The note naming the ok runs left out because their ``metric`` is not a finite positive
    number (None when there are none)."""
    ok = ok_runs(frame)
    values = numeric(ok, metric)
    bad = not_finite(ok, metric).to_numpy()
    low = (np.isfinite(values) & (values <= 0)).to_numpy()
    if not (bad.any() or low.any()):
        return None
    names = ok["run_dir"].astype(str).tolist() if "run_dir" in ok.columns else [""] * len(ok)
    parts = []
    for mask, what in ((bad, "not finite"), (low, "0 or below")):
        listed = [f"`{n}`" for n, m in zip(names, mask) if m]
        if listed:
            more = f" and {len(listed) - limit} more" if len(listed) > limit else ""
            parts.append(f"{what} in {', '.join(listed[:limit])}{more}")
    count = int(bad.sum() + low.sum())
    return (
        f"{count} ok run(s) left out, as a ratio needs two positive numbers: `{metric}` "
        + "; ".join(parts)
        + "."
    )


def _time_shared_note(table: pd.DataFrame, group_keys: list[str], metric: str) -> list[str]:
    """The note on the pairs of a time or memory metric left out because a run's value is its
    ensemble's (empty when none were)."""
    if table.empty or not table["left_out_time_shared"].any():
        return []
    rows = table[table["left_out_time_shared"] > 0]
    where = [
        f"`{row['sampler']}` ({', '.join(f'{k} = {row[k]}' for k in group_keys)}): "
        f"{int(row['left_out_time_shared'])}"
        for _, row in rows.iterrows()
    ]
    total = int(rows["left_out_time_shared"].sum())
    return [
        f"{total} pair(s) left out of the comparison of `{metric}` ({'; '.join(where)}): a run "
        "of the pair is a member of a batched ensemble whose time and memory are the "
        "ensemble's (`time_shared`), one value shared by all its members; compared per member, "
        "it would count as several independent pairs."
    ]
