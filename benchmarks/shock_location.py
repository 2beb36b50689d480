"""Where a Burgers run's points and residual are, round by round: in the formed shock
(|x| < 0.05, t > 0.4) or where it forms (|x| < 0.1, 0.25 < t < 0.4, around t = 1/pi).

    python benchmarks/shock_location.py outputs/RUN_A outputs/RUN_B ... [--figure F.png]

Reads each run's collocation.npz and residual.npz (written by every Burgers run) and prints,
per round, the enrichment of the collocation points in each region (their share there divided
by the region's share of the domain: 1 is what uniform points give) and the share of the
top-5 % residual region (on the grid) that lies in each region, with the run's concentration
metric. ``--figure`` draws, per run, the last residual map with the last points and the two
regions outlined.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pinn_exp.io import record

#: (name, predicate on x and t, the region's share of [-1, 1] x [0, 1])
REGIONS = (
    ("formed shock", lambda x, t: (np.abs(x) < 0.05) & (t > 0.4), 0.1 * 0.6 / 2),
    ("formation zone", lambda x, t: (np.abs(x) < 0.1) & (t > 0.25) & (t < 0.4), 0.2 * 0.15 / 2),
)


def rows(run: Path) -> list[dict]:
    """One row per round of the run in ``run``."""
    metrics = json.loads((run / record.METRICS).read_text())
    points = np.load(run / record.COLLOCATION)
    maps = np.load(run / record.RESIDUAL)
    grid = maps["grid"].reshape(-1, 2)
    out = []
    for k in range(len(points.files)):
        p = points[f"round_{k}"]
        eps = maps[f"residual_round_{k}"].reshape(-1)
        top = eps >= np.quantile(eps, 0.95)
        row = {
            "run": run.name,
            "seed": metrics["seed"],
            "round": k,
            "l2_rel_error": metrics["l2_rel_error_per_round"][k],
            "concentration": metrics["concentration_per_round"][k],
        }
        for name, inside, area in REGIONS:
            row[f"points in {name} / uniform"] = float(inside(p[:, 0], p[:, 1]).mean() / area)
            row[f"top-5% residual in {name}"] = float(inside(*grid[top].T).mean())
        out.append(row)
    return out


def figure(runs: list[Path], path: Path) -> None:
    """One panel per run: |residual| after the last round (log colours), the last points on
    top, the formed shock and the formation zone outlined."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from pinn_exp.report.png import save_png
    from pinn_exp.report.run_plots import draw_residual_map

    fig, axes = plt.subplots(1, len(runs), figsize=(4.6 * len(runs), 4), squeeze=False)
    for ax, run in zip(axes[0], runs):
        maps, points = np.load(run / record.RESIDUAL), np.load(run / record.COLLOCATION)
        last = len(points.files) - 1
        draw_residual_map(
            ax, maps["grid"], maps[f"residual_round_{last}"], points[f"round_{last}"], ("x", "t")
        )
        ax.add_patch(Rectangle((-0.05, 0.4), 0.1, 0.6, fill=False, ec="r", lw=1))
        ax.add_patch(Rectangle((-0.1, 0.25), 0.2, 0.15, fill=False, ec="orange", lw=1))
        seed = json.loads((run / record.METRICS).read_text())["seed"]
        ax.set_title(f"seed {seed}, round {last}")
    save_png(fig, path, "|residual| and points; red: formed shock, orange: formation zone")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args(argv)
    table = [row for run in args.runs for row in rows(run)]
    keys = list(table[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + " --- |" * len(keys))
    for row in table:
        print(
            "| "
            + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values())
            + " |"
        )
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    if args.figure:
        figure(args.runs, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
