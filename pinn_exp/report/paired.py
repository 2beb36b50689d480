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
time (``record.is_time``) is compared only between runs whose times are of one kind
(``runs.time_kinds``: each its own, or each a share of an ensemble of one size); the other
pairs are left out and counted in ``left_out_time_shared``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pinn_exp.io import record
from pinn_exp.report.runs import (
    COMPUTATION,
    config_columns,
    ignored,
    not_finite,
    numeric,
    ok_runs,
    time_kinds,
)
from pinn_exp.report.stats import (
    ALPHA,
    nonzero_count,
    smallest_exact_p,
    t_mean_ci,
    wilcoxon_p,
)
from pinn_exp.report.tables import (
    group_labels,
    md_escape,
    norm_label,
    sort_key,
    split_keys,
)

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
            ``left_out_time_shared``: pairs of a time metric whose runs' times are of
            different kinds (``runs.time_kinds``), left out.
        notes: why the comparison, or a group of it, was skipped.
    """

    baseline: str | None
    metric: str
    group_keys: list[str]
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def _is_sampler_key(column: str) -> bool:
    return column == "sampler" or column.startswith("sampler.")


def usable_runs(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The ok runs with a finite, positive ``metric`` (a ratio needs both).

    Args:
        frame: the runs.
        metric: the compared column.

    Returns:
        Those rows, with the value as float in column ``_value``.
    """
    ok = ok_runs(frame)
    values = numeric(ok, metric)
    keep = values.notna() & np.isfinite(values) & (values > 0)
    return ok[keep].assign(_value=values[keep])


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


def _arms(runs: pd.DataFrame, sampler_keys: list[str]) -> pd.Series:
    """Each run's arm: its sampler, with the sampler keys that vary among that sampler's runs
    (``rsmote (sampler.ratio=0.3)``), so variants of one sampler are not mixed."""
    names = pd.Series([str(norm_label(v)) for v in runs["sampler"]], index=runs.index, dtype=object)
    arms = names.copy()
    for name in names.unique():
        mine = runs[names == name]
        varying = [k for k in sampler_keys if len({norm_label(v) for v in mine[k]}) > 1]
        if varying:
            labels = group_labels(mine, varying)
            arms[mine.index] = [
                f"{name} ({', '.join(f'{k}={v}' for k, v in zip(varying, label))})"
                for label in labels
            ]
    return arms


def _kinds_by_pair(runs: pd.DataFrame, keys: list[str]) -> dict[tuple, frozenset]:
    """The kinds of time (``runs.time_kinds``) of the runs of each pairing label."""
    kinds: dict[tuple, set] = {}
    for label, kind in zip(group_labels(runs, keys), time_kinds(runs)):
        kinds.setdefault(label, set()).add(kind)
    return {label: frozenset(k) for label, k in kinds.items()}


def _mixed_kinds_of_time(
    sampler: pd.DataFrame, baseline: pd.DataFrame, keys: list[str]
) -> set[tuple]:
    """The pairing labels where a time cannot be compared: the sampler's and the baseline's
    runs of that label are not all of one kind of time (``runs.time_kinds``)."""
    mine, theirs = _kinds_by_pair(sampler, keys), _kinds_by_pair(baseline, keys)
    return {label for label in set(mine) & set(theirs) if len(mine[label] | theirs[label]) > 1}


def _pair_label(label: tuple) -> str:
    """The text of a pair's label: ``0`` for seed 0, ``0, 2000`` with more keys."""
    return ", ".join(str(v) for v in label)


def _by_pair(runs: pd.DataFrame, keys: list[str]) -> dict[tuple, float]:
    """The value of each pairing label; repeated runs of one label by their geometric mean (a
    single run by its value as recorded: exp(log(x)) may differ from x in the last digit, and
    equal ratios must stay equal for the test's ties)."""
    values: dict[tuple, list[float]] = {}
    for label, value in zip(group_labels(runs, keys), runs["_value"]):
        values.setdefault(label, []).append(float(value))
    return {
        label: v[0] if len(v) == 1 else math.exp(float(np.mean(np.log(v))))
        for label, v in values.items()
    }


def _log_ratio(a: float, b: float) -> float:
    """log(a / b), exactly antisymmetric: log(a / b) and -log(b / a) differ in the last digit
    half of the time (the rounding of the quotient), which broke the tie of two pairs whose
    errors are swapped and changed the test's p. Taken from the quotient that is >= 1, so
    equal quotients stay equal too (and a = b gives exactly 0)."""
    return math.log(a / b) if a >= b else -math.log(b / a)


def compare_pairs(sampler: dict[tuple, float], baseline: dict[tuple, float]) -> dict:
    """The statistics of one sampler against the baseline, paired by label.

    Args:
        sampler: the sampler's value per pairing label.
        baseline: the baseline's value per pairing label.

    Returns:
        ``pairs``, ``nonzero`` (pairs whose ratio is not exactly 1: those the Wilcoxon test
        uses), ``unpaired_sampler``, ``unpaired_baseline``, ``ratios`` (label -> ratio, in
        label order), ``geo_mean_ratio``, ``ci_low``, ``ci_high`` (the 95 % t-interval of the
        mean log ratio, exponentiated; NaN below 2 pairs), ``wins`` (ratios < 1) and
        ``p_value`` (exact; NaN below 2 pairs or when every ratio is 1) and ``significant``
        (``is_significant`` at ``ALPHA``).
    """
    common = sorted(set(sampler) & set(baseline), key=sort_key)
    ratios = {label: sampler[label] / baseline[label] for label in common}
    logs = np.array([_log_ratio(sampler[label], baseline[label]) for label in common], dtype=float)
    interval = t_mean_ci(logs)
    p_value = wilcoxon_p(logs)
    return {
        "pairs": len(common),
        "nonzero": nonzero_count(logs),
        "unpaired_sampler": len(set(sampler) - set(baseline)),
        "unpaired_baseline": len(set(baseline) - set(sampler)),
        "ratios": ratios,
        "geo_mean_ratio": math.exp(float(np.mean(logs))) if len(logs) else math.nan,
        "ci_low": math.exp(interval[0]) if interval else math.nan,
        "ci_high": math.exp(interval[1]) if interval else math.nan,
        "wins": int(np.sum(logs < 0)),
        "p_value": p_value,
        "significant": is_significant(p_value, nonzero_count(logs)),
    }


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
        k for k in split_keys(cols) if k not in ("pde", "seed") and not _is_sampler_key(k)
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
    runs = runs.assign(_arm=_arms(runs, sampler_keys), _group=group_labels(runs, group_keys))
    if COMPUTATION in runs.columns:  # vmap members pair with vmap members only
        configs = [*configs, COMPUTATION]
    rows, notes = [], [note for note in [_left_out_note(frame, metric)] if note]
    for group in sorted(set(runs["_group"]), key=sort_key):
        part = runs[runs["_group"] == group]
        where = ", ".join(f"{k} = {v}" for k, v in zip(group_keys, group))
        arms = sorted(set(part["_arm"]))
        base_arms = [a for a in arms if a == name or a.startswith(f"{name} (")]
        if len(base_arms) != 1:
            notes.append(
                f"{where}: no ok run of `{name}`, not compared."
                if not base_arms
                else f"{where}: `{name}` has several variants ({', '.join(base_arms)}), "
                "not compared."
            )
            continue
        keys = ["seed", *_pairing_keys(part, configs, group_keys, pair_keys)]
        base_runs = part[part["_arm"] == base_arms[0]]
        base = _by_pair(base_runs, keys)
        for arm in arms:
            if arm == base_arms[0]:
                continue
            mine, theirs, drop = _by_pair(part[part["_arm"] == arm], keys), base, set()
            if record.is_time(metric):
                drop = _mixed_kinds_of_time(part[part["_arm"] == arm], base_runs, keys)
                mine = {k: v for k, v in mine.items() if k not in drop}
                theirs = {k: v for k, v in base.items() if k not in drop}
            stats = compare_pairs(mine, theirs)
            rows.append(
                {
                    **dict(zip(group_keys, group)),
                    "sampler": arm,
                    "baseline": name,
                    "metric": metric,
                    "paired_by": ", ".join(keys),
                    "seeds": _seed_count(stats["ratios"]),
                    "left_out_time_shared": len(drop),
                    **stats,
                }
            )
    table = pd.DataFrame(rows, columns=[*group_keys, *COLUMNS]) if rows else empty
    time_note = _time_shared_note(table, group_keys, metric)
    return PairedComparison(name, metric, group_keys, table, notes + time_note)


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
    """The note on the pairs of a time metric left out because their runs' times are of
    different kinds (empty when none were)."""
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
        f"{total} pair(s) left out of the comparison of `{metric}` ({'; '.join(where)}): one "
        "run's time is a share of a batched ensemble's time (`time_shared`) and the other's is "
        "its own, or they are shares of ensembles of different sizes (`ensemble_size`); such "
        "times are not compared."
    ]


def is_significant(p_value: float, nonzero: int, alpha: float = ALPHA) -> bool:
    """Whether a row's difference is called significant: p below ``alpha``, and ``nonzero``
    differences can reach such a p at all (with the exact test they always can when p is
    below ``alpha``; the second condition keeps the verdict from ever contradicting the floor).

    Args:
        p_value: the Wilcoxon p-value (NaN: no test).
        nonzero: the number of pairs whose ratio is not 1.
        alpha: the significance level.

    Returns:
        True when significant.
    """
    return bool(math.isfinite(p_value) and p_value < alpha and smallest_exact_p(nonzero) < alpha)


def _pairing_keys(
    part: pd.DataFrame, configs: list[str], group_keys: list[str], given: list[str] | None
) -> list[str]:
    """The keys besides ``seed`` that pair runs within one group."""
    if given is not None:
        return [k for k in given if k != "seed"]
    return [
        c
        for c in configs
        if c != "seed"
        and c not in group_keys
        and not _is_sampler_key(c)
        and not ignored(c)  # keys that change nothing a run computes (runs.IGNORED)
        and len({norm_label(v) for v in part[c]}) > 1
    ]


def _seed_count(ratios: dict[tuple, float]) -> int:
    """The number of distinct seeds among the pairs (the first value of each label)."""
    return len({label[0] for label in ratios})


# ----------------------------------------------------------------------------- text


def _num(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _ratios_text(ratios: dict[tuple, float]) -> str:
    return "; ".join(f"{_pair_label(label)}: {_num(r)}" for label, r in ratios.items()) or "-"


def _pairs_text(row: dict | pd.Series) -> str:
    """``6``, or ``6 (1 at ratio 1)`` when some pairs have a ratio of exactly 1."""
    pairs = int(row["pairs"])
    at_one = pairs - int(row.get("nonzero", pairs))
    return f"{pairs} ({at_one} at ratio 1)" if at_one else str(pairs)


def _n_text(pairs: int, seeds: int) -> str:
    """``n = 3 seeds``, or ``n = 6 pairs (3 seeds)`` when a seed pairs more than once."""
    noun = "seed" if seeds == 1 else "seeds"
    if pairs == seeds:
        return f"n = {pairs} {noun}"
    return f"n = {pairs} pair{'s' if pairs != 1 else ''} ({seeds} {noun})"


def pairs_needed(alpha: float = ALPHA) -> int:
    """The fewest pairs with which a two-sided exact Wilcoxon test can reach p < ``alpha``
    (pairs whose ratio is not 1: the test drops the others).

    Args:
        alpha: the significance level.

    Returns:
        The smallest n with 2 / 2**n < alpha (6 at 5 %).
    """
    n = 1
    while smallest_exact_p(n) >= alpha:
        n += 1
    return n


def significance_sentence(row: dict | pd.Series, where: str, alpha: float = ALPHA) -> str | None:
    """The sentence on a row whose difference is not significant at ``alpha``.

    Args:
        row: a row of ``PairedComparison.table``.
        where: the group in words (``pde = burgers``).
        alpha: the significance level.

    Returns:
        The sentence, or None when the difference is significant (``is_significant``).
    """
    pairs, seeds, p = int(row["pairs"]), int(row["seeds"]), float(row["p_value"])
    nonzero = int(row.get("nonzero", pairs))
    head = f"`{row['sampler']}` against `{row['baseline']}` ({where})"
    level = f"{alpha * 100:g} %"
    if pairs == 0:
        return f"{head}: no pairs; no run of the two has the same {row['paired_by']}."
    if pairs < 2:
        return (
            f"{head}: not significant at {_n_text(pairs, seeds)}: a Wilcoxon test needs at "
            "least 2 pairs."
        )
    if not math.isfinite(p):
        return f"{head}: no test at {_n_text(pairs, seeds)}: every ratio is 1."
    if is_significant(p, nonzero, alpha):
        return None
    smallest = smallest_exact_p(nonzero)
    text = f"{head}: not significant at {level} (p = {_num(p)}) at {_n_text(pairs, seeds)}"
    if smallest < alpha:
        return f"{text}."
    # what so few pairs can show is said once, in the summary's section on the seeds
    if nonzero == pairs:
        floor = f"the smallest p the exact test can reach with {pairs} pairs is {_num(smallest)}"
        return f"{text}: {floor}."
    dropped = pairs - nonzero
    return (
        f"{text}: {dropped} of the {pairs} pairs {'has' if dropped == 1 else 'have'} a ratio "
        f"of exactly 1, which the test drops; the smallest p it can reach with the other "
        f"{nonzero} is {_num(smallest)}."
    )


def markdown_section(result: PairedComparison) -> list[str]:
    """The section ``Paired comparison against BASELINE`` of ``summary.md``.

    Args:
        result: the comparison.

    Returns:
        The lines (a one-line note when there is no baseline).
    """
    if result.baseline is None:
        return ["## Paired comparison", "", *result.notes, ""]
    metric, base = result.metric, result.baseline
    lines = [
        f"## Paired comparison against `{base}`",
        "",
        f"Ratio: `{metric}` of the sampler's run divided by that of `{base}`'s run with the same "
        "seed (and the same value of each key in *paired by*); below 1 the sampler is better. "
        "Geometric mean of the ratios with the 95 % t-interval on the log ratios (Student-t "
        "interval of the mean log ratio, exponentiated; n/a below 2 pairs); wins: pairs with "
        "a ratio below 1; p: two-sided Wilcoxon signed-rank test on the log ratios, exact "
        "(all sign flips of the ranks, ties at their average rank; pairs with a ratio of "
        "exactly 1 dropped, shown in *pairs* as *at ratio 1*; n/a below 2 pairs). Below 5 % a "
        "difference is significant; a sentence under the table names every row that is not. "
        "unpaired: ok runs of the sampler / of the baseline without a partner, left out. Only "
        "runs with status `ok` counted.",
        "",
    ]
    table = result.table
    if table.empty:
        return [*lines, "_no sampler to compare_", "", *[f"- {n}" for n in result.notes], ""]
    keys = result.group_keys
    header = [
        *keys,
        "sampler",
        "paired by",
        "pairs",
        "ratio per pair",
        "geometric mean [95 % t-interval]",
        "wins",
        "p",
        "unpaired",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    sentences = []
    for _, row in table.iterrows():
        ci = f"[{_num(row['ci_low'])}, {_num(row['ci_high'])}]"
        ci = "[n/a]" if ci == "[n/a, n/a]" else ci
        cells = [
            *(str(row[k]) for k in keys),
            str(row["sampler"]),
            str(row["paired_by"]),
            _pairs_text(row),
            _ratios_text(row["ratios"]),
            f"{_num(row['geo_mean_ratio'])} {ci}",
            f"{row['wins']}/{row['pairs']}",
            _num(row["p_value"]),
            f"{row['unpaired_sampler']} / {row['unpaired_baseline']}",
        ]
        lines.append("| " + " | ".join(map(md_escape, cells)) + " |")
        where = ", ".join(f"{k} = {row[k]}" for k in keys)
        sentence = significance_sentence(row, where)
        if sentence:
            sentences.append(f"- {sentence}")
    lines.append("")
    if sentences or result.notes:
        lines += [*sentences, *[f"- {n}" for n in result.notes], ""]
    return lines


def csv_text(result: PairedComparison) -> str:
    """``summary_paired.csv``: the comparison's table, ``ratios`` as a JSON object.

    Args:
        result: the comparison.

    Returns:
        The CSV text.
    """
    out = result.table.copy()
    out["ratios"] = [
        json.dumps({_pair_label(label): r for label, r in ratios.items()})
        for ratios in out["ratios"]
    ]
    return out.to_csv(index=False)
