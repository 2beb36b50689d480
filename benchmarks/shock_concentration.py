"""How many points of a sampler's final set lie in the Burgers shock, |x| < 0.05 and t > 0.4.

    python benchmarks/shock_concentration.py --seeds 0 1 2 -- sampler=rsmote \\
        optimizer.pretrain_steps=2000 optimizer.adam_steps=0 optimizer.lbfgs_steps=300

Each seed is one run (N = 1000, 3 rounds unless overridden) through the same Trainer as
``run.py``, on the CPU with one thread. Prints, per seed, the count in the shock region, the
count in |x| < 0.05 at any t, the errors per round, and with ``--histogram`` where the points
lie (x in bins of 0.1, t in bins of 0.2). Uniform points put about 3 % of N in the region.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from pinn_exp.config import compose_config
from pinn_exp.factory import build
from pinn_exp.training.trainer import Trainer


def final_points(overrides: list[str]) -> tuple[np.ndarray, list[float]]:
    # the settings its documented figures were measured with (docs/samplers.md): torch's
    # L-BFGS, eager; overrides may change them
    cfg = compose_config(
        [
            "device=cpu",
            "n_points=1000",
            "rounds=3",
            "progress=false",
            "optimizer.lbfgs_impl=torch",
            "optimizer.compile=false",
            *overrides,
        ]
    )
    b = build(cfg)
    b.device.apply()
    trainer = Trainer(b, progress=False)
    state = trainer.run()
    return state.points.cpu().numpy(), list(state.metrics["l2_rel_error"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--histogram", action="store_true")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. sampler=rad")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for seed in args.seeds:
        points, errors = final_points([*args.overrides, f"seed={seed}"])
        x, t = points[:, 0], points[:, 1]
        row = {
            "overrides": args.overrides,
            "seed": seed,
            "n_shock": int(((np.abs(x) < 0.05) & (t > 0.4)).sum()),
            "n_center_any_t": int((np.abs(x) < 0.05).sum()),
            "errors": [round(e, 4) for e in errors],
        }
        print(json.dumps(row), flush=True)
        if args.histogram:
            counts, edges, _ = np.histogram2d(x, t, bins=[20, 5], range=[[-1, 1], [0, 1]])
            print("x from | t: 0-.2 .2-.4 .4-.6 .6-.8 .8-1")
            for lo, line in zip(edges[:-1], counts.astype(int)):
                print(f"{lo:+.1f}   | " + " ".join(f"{c:4d}" for c in line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
