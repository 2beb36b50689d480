"""The paired comparison as text: its section of ``summary.md`` (the table, and a sentence on
every row whose difference is not significant, saying why when the number of pairs is the
reason) and ``summary_paired.csv``."""

from __future__ import annotations

import json
import math

import pandas as pd

from pinn_exp.metrics.registry import HIGHER
from pinn_exp.report.paired import PairedComparison
from pinn_exp.report.pairing import better_direction, pair_label
from pinn_exp.report.stats import ALPHA, is_significant, smallest_exact_p
from pinn_exp.report.tables import md_escape


def _num(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _ratios_text(ratios: dict[tuple, float]) -> str:
    return "; ".join(f"{pair_label(label)}: {_num(r)}" for label, r in ratios.items()) or "-"


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


def _direction_text(metric: str, better: str | None) -> str:
    """Which side of 1 is better, or, for a metric without a better direction, that a ratio
    says only which value is the larger."""
    if better == HIGHER:
        return "above 1 the sampler is better."
    if better is None:
        return (
            f"`{metric}` has no better direction (`better=None` in the metric registry, or a "
            "column it does not know): a ratio below 1 says only that the sampler's value is "
            "the smaller, not that the sampler is better."
        )
    return "below 1 the sampler is better."


def _intro_lines(metric: str, base: str, better: str | None, wins: str) -> list[str]:
    """The heading and the paragraph that explains the paired-comparison table."""
    return [
        f"## Paired comparison against `{base}`",
        "",
        f"Ratio: `{metric}` of the sampler's run divided by that of `{base}`'s run with the same "
        f"seed (and the same value of each key in *paired by*); {_direction_text(metric, better)}"
        " Geometric mean of the ratios with the 95 % t-interval on the log ratios (Student-t "
        f"interval of the mean log ratio, exponentiated; n/a below 2 pairs); {wins}: pairs with "
        f"a ratio {'above' if better == HIGHER else 'below'} 1; p: two-sided Wilcoxon "
        "signed-rank test on the log ratios, exact "
        "(all sign flips of the ranks, ties at their average rank; pairs with a ratio of "
        "exactly 1 dropped, shown in *pairs* as *at ratio 1*; n/a below 2 pairs). Below 5 % a "
        "difference is significant; a sentence under the table names every row that is not. "
        "unpaired: ok runs of the sampler / of the baseline without a partner, left out. Only "
        "runs with status `ok` counted.",
        "",
    ]


def _table_row(row: pd.Series, keys: list[str]) -> str:
    """One markdown table row of the paired comparison (``keys``: the group columns)."""
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
    return "| " + " | ".join(map(md_escape, cells)) + " |"


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
    better = better_direction(metric)
    wins = "wins" if better else "below 1"
    lines = _intro_lines(metric, base, better, wins)
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
        wins,
        "p",
        "unpaired",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    sentences = []
    for _, row in table.iterrows():
        lines.append(_table_row(row, keys))
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
        json.dumps({pair_label(label): r for label, r in ratios.items()})
        for ratios in out["ratios"]
    ]
    return out.to_csv(index=False)
