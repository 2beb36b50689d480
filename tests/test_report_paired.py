"""The report's paired comparison against a baseline sampler, its confidence intervals, and
the layout of the report package. The expected numbers are computed here from the formulas
(ratio, geometric mean, t-interval, exact Wilcoxon distribution by enumeration), not by the
report's code."""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report import _config, _metrics, _write_run

from pinn_exp.report import paired, paired_text, plots, png, run_plots, stats, summary, tables
from pinn_exp.report.__main__ import main
from pinn_exp.report.runs import collect_runs
from pinn_exp.report.summary import write_summary

# the baseline's error per seed, and each sampler's error as a multiple of it
BASE = {
    "poisson": {0: 1e-2, 1: 2e-2, 2: 4e-2, 3: 1e-2},
    "burgers": {s: 1e-2 * (s + 1) for s in range(6)},
}
FACTORS = {
    ("poisson", "rsmote"): {0: 0.5, 1: 1.5, 2: 0.25, 3: 0.2},  # 3 wins of 4, no ties
    ("poisson", "uniform"): {0: 2.0, 1: 3.0, 2: 0.4},  # seed 3 missing ...
    ("burgers", "rsmote"): {0: 0.5, 1: 0.6, 2: 0.7, 3: 0.8, 4: 0.9, 5: 0.4},  # 6 wins of 6
}
UNIFORM_SEED_5 = 1e-2  # ... and a seed the baseline did not run
CLASSES = {"rad": "RAD", "rsmote": "RSmote", "uniform": "Uniform"}
# the 0.975 quantile of Student's t by degrees of freedom (printed tables)
T975 = {2: 4.302652729749464, 3: 3.182446305284263, 5: 2.570581835636314}


def _runs() -> list[tuple[str, str, int, float]]:
    """(pde, sampler, seed, error) of every run."""
    runs = [(pde, "rad", seed, e) for pde, by_seed in BASE.items() for seed, e in by_seed.items()]
    for (pde, sampler), factors in FACTORS.items():
        runs += [(pde, sampler, s, f * BASE[pde][s]) for s, f in factors.items()]
    return [*runs, ("poisson", "uniform", 5, UNIFORM_SEED_5)]


def _write(root: Path, runs, extra: dict | None = None) -> Path:
    """Run folders in an order unrelated to the seeds (pairing must not rely on it)."""
    order = np.random.default_rng(7).permutation(len(runs))
    for i, k in enumerate(order):
        pde, sampler, seed, error = runs[k]
        record = _metrics(2, sampler, None, seed, "ok", error, 100.0, "x")
        record.update(pde=pde, sampler_class=CLASSES[sampler], **(extra or {}))
        _write_run(root / f"{i:02d}_{sampler}", _config(2, sampler, None, seed), json.dumps(record))
    return root


def _exact_wilcoxon_p(differences: list[float]) -> float:
    """Two-sided exact signed-rank p-value by enumerating all 2**n sign patterns (no ties)."""
    n = len(differences)
    ranks = {d: r for r, d in enumerate(sorted(differences, key=abs), start=1)}
    w_plus = sum(ranks[d] for d in differences if d > 0)
    w = min(w_plus, n * (n + 1) // 2 - w_plus)
    sums = [sum(c) for k in range(n + 1) for c in itertools.combinations(range(1, n + 1), k)]
    return min(1.0, 2 * sum(s <= w for s in sums) / 2**n)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = _write(tmp_path_factory.mktemp("paired") / "sweep", _runs())
    write_summary([root], plots=False)
    return root


def _row(table: pd.DataFrame, pde: str, sampler: str) -> pd.Series:
    found = table[(table["pde"] == pde) & (table["sampler"] == sampler)]
    assert len(found) == 1, (pde, sampler)
    return found.iloc[0]


@pytest.mark.parametrize("pde, sampler", list(FACTORS))
def test_ratios_geometric_mean_wins_and_p_value(report, pde, sampler):
    frame = collect_runs([report])
    result = paired.paired_comparison(frame)  # no baseline set: rad, as it has runs
    assert result.baseline == "rad"
    row = _row(result.table, pde, sampler)
    factors = FACTORS[(pde, sampler)]
    assert list(row["ratios"]) == [(s,) for s in sorted(factors)]  # in seed order
    assert list(row["ratios"].values()) == pytest.approx([factors[s] for s in sorted(factors)])
    expected_gm = math.prod(factors.values()) ** (1 / len(factors))
    assert row["geo_mean_ratio"] == pytest.approx(expected_gm, rel=1e-12)
    logs = np.log([factors[s] for s in sorted(factors)])
    half = T975[len(logs) - 1] * np.std(logs, ddof=1) / math.sqrt(len(logs))
    assert row["ci_low"] == pytest.approx(expected_gm * math.exp(-half), rel=1e-9)
    assert row["ci_high"] == pytest.approx(expected_gm * math.exp(half), rel=1e-9)
    assert row["wins"] == sum(f < 1 for f in factors.values())
    assert row["pairs"] == row["seeds"] == len(factors)
    assert row["p_value"] == pytest.approx(_exact_wilcoxon_p(list(logs)), rel=1e-12)
    assert row["significant"] == (row["p_value"] < 0.05)
    assert row["nonzero"] == row["pairs"]
    assert row["paired_by"] == "seed"


def test_hand_computed_values():
    """The formulas above, written out once for the 4-seed case."""
    assert math.prod(FACTORS[("poisson", "rsmote")].values()) == pytest.approx(0.0375)
    assert 0.0375**0.25 == pytest.approx(0.44006, rel=1e-4)  # the geometric mean of the ratios
    # ranks of |log ratio|: 1.5 -> 1, 0.5 -> 2, 0.25 -> 3, 0.2 -> 4; W+ = 1; P(W+ <= 1) = 2/16
    assert _exact_wilcoxon_p([math.log(f) for f in (0.5, 1.5, 0.25, 0.2)]) == 0.25
    # 6 pairs of one sign: the smallest two-sided p, 2 / 2**6
    assert _exact_wilcoxon_p([math.log(f) for f in (0.5, 0.6, 0.7, 0.8, 0.9, 0.4)]) == 2 / 64


def test_missing_seeds_are_dropped_and_counted(report):
    row = _row(paired.paired_comparison(collect_runs([report])).table, "poisson", "uniform")
    assert [label[0] for label in row["ratios"]] == [0, 1, 2]
    assert row["unpaired_sampler"] == 1  # uniform's seed 5
    assert row["unpaired_baseline"] == 1  # rad's seed 3
    rsmote = _row(paired.paired_comparison(collect_runs([report])).table, "poisson", "rsmote")
    assert rsmote["unpaired_sampler"] == rsmote["unpaired_baseline"] == 0


def test_summary_section_says_what_is_not_significant(report):
    text = (report / "summary.md").read_text()
    section = text.split("## Paired comparison against `rad`", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in section.splitlines() if line.startswith("| poisson | rsmote |"))
    assert "0: 0.5; 1: 1.5; 2: 0.25; 3: 0.2" in row and "3/4" in row and "| 0.25 |" in row
    assert "| 0 / 0 |" in row
    uniform = next(line for line in section.splitlines() if line.startswith("| poisson | uniform"))
    assert "| 1 / 1 |" in uniform and "1/3" in uniform
    sentences = [line for line in section.splitlines() if line.startswith("- ")]
    rsmote = next(s for s in sentences if "`rsmote`" in s and "pde = poisson" in s)
    assert "not significant at 5 % (p = 0.25) at n = 4 seeds" in rsmote
    assert "can reach with 4 pairs is 0.125" in rsmote
    uniform = next(s for s in sentences if "`uniform`" in s)
    assert "at n = 3 seeds" in uniform and "can reach with 3 pairs is 0.25" in uniform
    # burgers: 6 wins of 6, p = 2/64 < 0.05: significant, so no sentence
    assert not any("burgers" in s for s in sentences)


def test_paired_csv(report):
    csv = pd.read_csv(report / "summary_paired.csv")
    assert len(csv) == 3
    row = csv[(csv["pde"] == "poisson") & (csv["sampler"] == "rsmote")].iloc[0]
    assert json.loads(row["ratios"]) == pytest.approx({"0": 0.5, "1": 1.5, "2": 0.25, "3": 0.2})
    assert row["baseline"] == "rad" and row["wins"] == 3 and row["pairs"] == 4
    assert row["p_value"] == pytest.approx(0.25)


def test_other_differing_config_keys_pair_too():
    """Two set sizes: runs pair on (seed, n_points); a size the sampler lacks is unpaired."""
    rows = []
    for seed, n_points in itertools.product((0, 1), (2000, 5000)):
        rows.append(("rad", seed, n_points, 0.01 * (seed + 1) * n_points / 1000))
        if (seed, n_points) != (1, 5000):
            rows.append(("rsmote", seed, n_points, 0.005 * (seed + 1) * n_points / 1000 + 1e-4))
    frame = pd.DataFrame(rows, columns=["sampler", "seed", "n_points", "l2_rel_error"])
    frame = frame.assign(status="ok", pde="burgers")
    row = paired.paired_comparison(frame, baseline="rad").table.iloc[0]
    assert row["paired_by"] == "seed, n_points"
    assert list(row["ratios"]) == [(0, 2000), (0, 5000), (1, 2000)]
    expected = [
        (0.005 * (s + 1) * n / 1000 + 1e-4) / (0.01 * (s + 1) * n / 1000) for s, n in row["ratios"]
    ]
    assert list(row["ratios"].values()) == pytest.approx(expected)
    assert (row["pairs"], row["seeds"], row["unpaired_baseline"]) == (3, 2, 1)
    sentence = paired_text.significance_sentence(row, "pde = burgers")
    assert "at n = 3 pairs (2 seeds)" in sentence


def test_no_baseline_skips_the_section_with_a_note(tmp_path):
    root = _write(tmp_path / "runs", [r for r in _runs() if r[1] != "rad"])
    write_summary([root], plots=False)
    text = (root / "summary.md").read_text()
    assert "No paired comparison: no baseline set" in text
    assert not (root / "summary_paired.csv").exists()
    # the command line names another baseline
    assert main([str(root), "--baseline", "uniform", "--no-plots"]) == 0
    text = (root / "summary.md").read_text()
    assert "## Paired comparison against `uniform`" in text
    row = pd.read_csv(root / "summary_paired.csv").iloc[0]
    assert (row["pde"], row["sampler"], row["pairs"]) == ("poisson", "rsmote", 3)
    assert main([str(root), "--baseline", "nope", "--no-plots"]) == 2  # refused in one line
    write_summary([root], baseline="nope", plots=False)  # a sweep's report.baseline: a note
    assert "the baseline `nope` has no ok run" in (root / "summary.md").read_text()


def test_fewer_than_two_pairs_is_not_a_test():
    frame = pd.DataFrame(
        {
            "status": "ok",
            "pde": "p",
            "sampler": ["rad", "x", "rad"],
            "seed": [0, 0, 1],
            "l2_rel_error": [0.1, 0.05, 0.2],
        }
    )
    row = paired.paired_comparison(frame).table.iloc[0]
    assert row["pairs"] == 1 and row["geo_mean_ratio"] == pytest.approx(0.5)
    assert math.isnan(row["p_value"]) and math.isnan(row["ci_low"])
    text = "\n".join(paired_text.markdown_section(paired.paired_comparison(frame)))
    assert "| 0.5 [n/a] | 1/1 | n/a |" in text
    assert "needs at least 2 pairs" in text


def _frame(ratios: list[float]) -> pd.DataFrame:
    """A baseline and one sampler ``x`` over seeds 0.., the sampler's error ``ratio`` times the
    baseline's (powers of two: each ratio is recovered exactly, so equal ratios tie)."""
    base = [2.0 ** -(s + 5) for s in range(len(ratios))]
    rows = [("rad", s, e) for s, e in enumerate(base)]
    rows += [("x", s, r * e) for s, (r, e) in enumerate(zip(ratios, base))]
    frame = pd.DataFrame(rows, columns=["sampler", "seed", "l2_rel_error"])
    return frame.assign(status="ok", pde="p")


def test_pairs_with_ratio_one_are_dropped_from_the_test_and_the_floor():
    """Six seeds, one with the same error in both: five wins of five non-zero differences,
    p = 2/32 exactly (not significant), and the floor said is that of 5, not of 6 pairs."""
    result = paired.paired_comparison(_frame([1.0, 0.5, 0.6, 0.7, 0.8, 0.9]))
    row = result.table.iloc[0]
    assert (row["pairs"], row["nonzero"], row["wins"]) == (6, 5, 5)
    assert row["p_value"] == pytest.approx(0.0625, rel=1e-12)
    assert not row["significant"]
    text = "\n".join(paired_text.markdown_section(result))
    assert "| 6 (1 at ratio 1) |" in text and "| 0.0625 |" in text
    sentence = paired_text.significance_sentence(row, "pde = p")
    assert "not significant at 5 % (p = 0.0625) at n = 6 seeds" in sentence
    assert "1 of the 6 pairs has a ratio of exactly 1" in sentence
    assert "with the other 5 is 0.0625" in sentence and "0.031" not in sentence


def test_tied_ratios_give_the_exact_p():
    """Five equal ratios (tied log ratios): p = 2/32, never the normal approximation's 0.025."""
    row = paired.paired_comparison(_frame([0.5] * 5)).table.iloc[0]
    assert row["p_value"] == pytest.approx(0.0625, rel=1e-12)
    assert not row["significant"]
    assert row["ci_low"] == row["ci_high"] == pytest.approx(0.5)  # no spread: a point
    # one ratio of 2 among four of 0.5: |log| all tied, W+ = 3 of 15, p = 2 * 6/32
    mixed = paired.paired_comparison(_frame([0.5, 0.5, 2.0, 0.5, 0.5])).table.iloc[0]
    assert mixed["p_value"] == pytest.approx(0.375, rel=1e-12)
    seven = paired.paired_comparison(_frame([1.0, 1.0, 0.5, 0.5, 0.6, 0.6, 0.7])).table.iloc[0]
    assert (seven["nonzero"], seven["p_value"]) == (5, pytest.approx(0.0625, rel=1e-12))
    assert not seven["significant"]


def test_significant_only_where_the_floor_allows():
    assert stats.is_significant(0.03, 6) and not stats.is_significant(0.03, 5)
    assert not stats.is_significant(0.06, 6) and not stats.is_significant(math.nan, 6)
    # a row whose p is below 5 % but whose non-zero pairs cannot reach it gets a sentence
    row = {
        "sampler": "x",
        "baseline": "rad",
        "paired_by": "seed",
        "pairs": 6,
        "seeds": 6,
        "nonzero": 5,
        "p_value": 0.04,
    }
    assert "not significant" in paired_text.significance_sentence(row, "pde = p")


def test_section_states_the_methods(report):
    section = (report / "summary.md").read_text().split("## Paired comparison", 1)[1]
    assert "95 % t-interval on the log ratios" in section
    assert "geometric mean [95 % t-interval]" in section
    assert "exact (all sign flips of the ranks" in section and "bootstrap" not in section


# ----------------------------------------------------------------------------- table cells


def test_cell_confidence_interval_is_the_t_interval_of_the_mean():
    values = [1e-2, 2e-2, 1.5e-2, 3e-2]
    cell = tables.format_cell(values, scientific=True, ci=True)
    low, high = (float(x) for x in cell.split("[", 1)[1].rstrip("]").split(", "))
    half = T975[3] * np.std(values, ddof=1) / 2  # t(0.975, 3) · s / √4
    expected = (np.mean(values) - half, np.mean(values) + half)
    assert (low, high) == pytest.approx(expected, abs=5e-4)  # printed to 2 digits
    assert low < min(values) and high > max(values)  # at n = 4 wider than the range
    assert "t-interval" in tables.CI_NOTE
    assert cell.startswith(f"{np.mean(values):.2e} ± {np.std(values, ddof=1):.1e} (4) [")
    assert tables.format_cell([3e-2], scientific=True, ci=True) == "3.00e-02 ± n/a (1) [n/a]"
    assert tables.format_cell([3e-2], scientific=True) == "3.00e-02 ± n/a (1)"


# ----------------------------------------------------------------------------- the record


def test_old_records_without_new_fields_read_as_missing(report):
    frame = collect_runs([report])
    assert "max_abs_error" in frame.columns and frame["max_abs_error"].isna().all()
    assert frame["max_abs_error_per_round"].isna().all()
    assert frame["l2_rel_error_per_round"].map(len).eq(3).all()


def test_rsmote_found_by_class_then_by_name():
    frame = pd.DataFrame(
        {
            "sampler": ["mine", "rsmote_x", "rsmote_old", "rad"],
            "sampler_class": ["RSmote", "RAD", None, "RAD"],
        }
    )
    assert plots.is_rsmote(frame).tolist() == [True, False, True, False]
    assert plots.is_rsmote(frame.drop(columns="sampler_class")).tolist() == [
        False,
        True,
        True,
        False,
    ]


def test_error_per_round_plot_draws_the_tables_metric(tmp_path):
    runs = [("p", s, seed, 0.1) for s in ("rad", "rsmote") for seed in range(3)]
    root = _write(tmp_path / "r", runs, extra={"max_abs_error_per_round": [0.5, 0.2, 0.1]})
    frame = collect_runs([root])
    fig = plots.plot_error_per_round(frame, root, "max_abs_error")
    assert fig.axes[0].get_ylabel() == "max_abs_error"
    assert plots.plot_error_per_round(frame, root).axes[0].get_ylabel() == "relative L2 error"
    assert plots.plot_error_per_round(frame, root, "wall_time_s").axes[0].get_ylabel() == (
        "relative L2 error"
    )


# ----------------------------------------------------------------------------- layout


def test_every_sweep_plot_has_one_signature_and_one_png_writer():
    for name, draw in plots.PLOTS.items():
        assert list(inspect.signature(draw).parameters) == ["frame", "base", "metric"], name
    assert run_plots._save is png.save_png
    assert not hasattr(plots, "_save")


def test_report_modules_import_each_other_without_cycles():
    folder = Path(summary.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        graph[path.stem] = {
            name
            for n in imports
            if (n.module or "").startswith("pinn_exp.report")
            for name in (
                [a.name for a in n.names]
                if n.module == "pinn_exp.report"
                else [n.module.rsplit(".", 1)[-1]]
            )
        }
    assert "aggregate" not in graph

    def reaches(a: str, b: str, seen=()) -> bool:
        return any(m == b or (m not in seen and reaches(m, b, (*seen, m))) for m in graph[a])

    assert not [m for m in graph if reaches(m, m)]
    assert {m for m in graph if "summary" in graph[m]} <= {"__main__", "callback"}
