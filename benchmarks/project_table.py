"""Projected device-hours of a paper table at each budget, from measured step times.

    python benchmarks/project_table.py ens.json              # the rows of benchmarks/ensemble.py
    python benchmarks/project_table.py ens.json --experiment burgers_table --size 4

A table (``+experiment=burgers_table``: its sweep's samplers × N × seeds) is projected as its
runs one after the other (``single``: S = 1 as ``python run.py`` trains it) and as batched
jobs of ``--size`` members (the seeds of one configuration; ``loop`` and ``vmap``), each from
the ms per Adam step and per L-BFGS iteration that ``benchmarks/ensemble.py`` measured per
member at that size. A run's steps come from the budget's config: ``pretrain_steps +
rounds × adam_steps`` Adam steps and ``(rounds + 1) × lbfgs_steps`` L-BFGS iterations (at
most: its full budget; L-BFGS may stop early). Every run is costed at the measured network and N
(the default job's unless the measurement said otherwise); sampling, evaluation and the
table's larger N are not in it: an estimate, not a bound.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math

import pandas as pd

from pinn_exp.config import compose_config

BUDGETS = ("short", "paper", "reference")


def budget_steps(budget: str) -> tuple[int, int]:
    """(Adam steps, L-BFGS iterations at most) of one run of the default job at ``budget``."""
    cfg = compose_config([f"budget={budget}"])
    opt = cfg.optimizer
    adam = int(opt.pretrain_steps) + int(cfg.rounds) * int(opt.adam_steps)
    return adam, (int(cfg.rounds) + 1) * int(opt.lbfgs_steps)


def table_runs(experiment: str) -> int:
    """The number of runs of ``+experiment=NAME``'s sweep."""
    from hydra import compose, initialize_config_dir

    from pinn_exp.config import CONF_DIR

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("config", [f"+experiment={experiment}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params or {}
    return math.prod(len(str(v).split(",")) for v in params.values())


def projection(rows: list[dict], runs: int, size: int) -> pd.DataFrame:
    """Device-hours per table for each budget and mode, from ``benchmarks/ensemble.py`` rows."""
    frame = pd.DataFrame(rows)
    out = []
    for budget, mode in itertools.product(BUDGETS, ("single", "loop", "vmap")):
        at = frame[(frame["mode"] == mode) & (frame["size"] == (1 if mode == "single" else size))]
        ms = at.set_index("phase")["ms_per_step_per_member"].to_dict()
        if not {"adam", "lbfgs"} <= set(ms):
            continue
        adam, lbfgs = budget_steps(budget)
        per_run_s = (adam * ms["adam"] + lbfgs * ms["lbfgs"]) / 1e3
        out.append(
            {
                "budget": budget,
                "mode": mode,
                "size": 1 if mode == "single" else size,
                "adam_steps": adam,
                "lbfgs_steps_max": lbfgs,
                "runs": runs,
                "hours_per_run": per_run_s / 3600,
                "hours_per_table": runs * per_run_s / 3600,
            }
        )
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rows", help="the JSON file benchmarks/ensemble.py wrote (--json)")
    parser.add_argument("--experiment", default="burgers_table")
    parser.add_argument("--size", type=int, default=4, help="members per batched job")
    parser.add_argument("--json", default=None, help="write the projection here")
    args = parser.parse_args(argv)
    with open(args.rows) as f:
        measured = json.load(f)
    sizes = {r["size"] for r in measured["rows"]}
    if args.size not in sizes:
        parser.error(f"--size {args.size} was not measured; the file has sizes {sorted(sizes)}")
    frame = projection(measured["rows"], table_runs(args.experiment), args.size)
    print(
        f"device: {measured['meta'].get('device')}, torch {measured['meta'].get('torch')}; "
        f"+experiment={args.experiment}: {frame['runs'].iloc[0]} runs"
    )
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "meta": measured["meta"],
                    "experiment": args.experiment,
                    "rows": frame.to_dict(orient="records"),
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
