"""Whole default jobs as a user runs them (``python run.py ...`` in a subprocess), timed
from the command's start to its end, with every run's final relative L2 error: the project's
defaults against an older commit's, and a 5-seed sweep one run after the other against the
same seeds as one batched job.

    python benchmarks/default_job.py --json default_job.json
    python benchmarks/default_job.py --cases old,fast_cold,fast_warm --old-commit 9214f4a
    python benchmarks/default_job.py --cases sequential,batched -- pde=allen_cahn
    python benchmarks/default_job.py --job short --cases old,new --pairs 3 --old-commit 9214f4a

Cases (``--cases``, in the order given; overrides after ``--`` go to every command):

- ``old``: the job at ``--old-commit`` (a ``git worktree`` of it in a temporary
  directory, its own ``run.py`` and package), seed 0.
- ``new``: today's code with its defaults, seed 0 (the case to set against ``old``).
- ``torch``: today's code with torch's L-BFGS named (``optimizer.lbfgs_impl=torch``, the
  default), seed 0.
- ``device``: today's code with the device L-BFGS (``optimizer.lbfgs_impl=device``), seed 0.
- ``eager``: today's code, seed 0, with the settings before compilation was the default
  (``optimizer.lbfgs_impl=torch optimizer.compile=false``).
- ``fast_cold``: today's code with its defaults, seed 0, torch.compile's cache empty (a fresh
  ``TORCHINDUCTOR_CACHE_DIR``): what the first run on a machine pays.
- ``fast_warm``: the same again with that cache filled by ``fast_cold``.
- ``sequential``: ``--seeds`` as one sweep of the basic launcher (one run after the other) at
  the settings of ``eager``.
- ``batched``: the same seeds as one batched job (``hydra/launcher=batched``) with today's
  defaults but the ensemble's L-BFGS (``optimizer.lbfgs_impl=device``); ``batched_vmap``:
  the same with ``hydra.launcher.vectorize=true``.

The job (``--job``): ``default`` (the project's defaults), ``short`` (1000 Adam + 300 L-BFGS
steps, 2 rounds, on the CPU) or ``budget_short`` (``budget=short`` on the CPU). ``--pairs N``
runs the cases N times over, alternating (old, new, old, new, ...), and prints each case's
median wall time and its speed relative to the first case's median (``x_speed``).

Each row: case, command, wall time, runs, runs per hour, the seeds' errors. The table printed
at the end gives runs per hour relative to ``sequential`` (or to the first case).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
EAGER = ["optimizer.lbfgs_impl=torch", "optimizer.compile=false"]
#: single runs (seed 0) and sweeps (``--seeds``): each case's overrides
SINGLE = {
    "old": [],
    "new": [],
    "torch": ["optimizer.lbfgs_impl=torch"],
    "device": ["optimizer.lbfgs_impl=device"],
    "eager": EAGER,
    "fast_cold": [],
    "fast_warm": [],
}
SWEEP = {
    "sequential": EAGER,
    "batched": ["hydra/launcher=batched", "optimizer.lbfgs_impl=device"],
    "batched_vmap": [
        "hydra/launcher=batched",
        "optimizer.lbfgs_impl=device",
        "hydra.launcher.vectorize=true",
    ],
}
CASES = (*SINGLE, *SWEEP)
#: the jobs (``--job``): overrides of every case
JOBS = {
    "default": [],
    "short": [
        "optimizer.pretrain_steps=1000",
        "optimizer.lbfgs_steps=300",
        "rounds=2",
        "device=cpu",
    ],
    "budget_short": ["budget=short", "device=cpu"],
}


def _errors(out: Path) -> dict[int, float]:
    """seed -> final relative L2 error of every run under ``out``."""
    errors = {}
    for metrics in sorted(out.rglob("metrics.json")):
        record = json.loads(metrics.read_text())
        errors[int(record["seed"])] = record.get("l2_rel_error")
    return errors


def _run(case: str, argv: list[str], out: Path, env: dict, cwd: Path) -> dict:
    began = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"{case}: exit {proc.returncode}")
    errors = _errors(out)
    return {
        "case": case,
        "command": " ".join(argv[1:]),
        "wall_s": wall,
        "runs": len(errors),
        "runs_per_hour": 3600 * len(errors) / wall,
        "errors": errors,
        "device": f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)",
        "log_tail": (proc.stdout + proc.stderr)[-1500:],
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--old-commit", default="9214f4a")
    parser.add_argument("--json", default=None, help="write the rows here")
    parser.add_argument("--job", default="default", choices=sorted(JOBS))
    parser.add_argument("--pairs", type=int, default=1, help="repetitions, alternating")
    args = parser.parse_args(argv)
    cases = args.cases.split(",")
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"--cases: {unknown} unknown; choose from {list(CASES)}")
    base = ["progress=false", *JOBS[args.job], *extra]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp / "inductor")}
        tree = tmp / "old_tree"  # the old commit's checkout, beside the run directories
        if "old" in cases:
            git = ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree)]
            subprocess.run([*git, args.old_commit], check=True, capture_output=True)
            # its bytecode compiled once, as today's is: no run pays for it
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "pinn_exp")])
        try:
            for repetition in range(args.pairs):
                for case in cases:
                    out = tmp / f"{case}_{repetition}"
                    run, cwd = [sys.executable, str(ROOT / "run.py")], ROOT
                    if case == "old":
                        run, cwd = [sys.executable, str(tree / "run.py")], tree
                    if case in SINGLE:
                        command = [*run, *base, *SINGLE[case], "seed=0", f"hydra.run.dir={out}"]
                    else:
                        sweep = [*run, "-m", *base, f"seed={args.seeds}"]
                        command = [*sweep, f"hydra.sweep.dir={out}", *SWEEP[case]]
                    if case == "fast_cold":  # an empty cache: the first compilation on a machine
                        cold = tmp / f"inductor_cold_{repetition}"
                        env = {**env, "TORCHINDUCTOR_CACHE_DIR": str(cold)}
                    rows.append({**_run(case, command, out, env, cwd), "repetition": repetition})
                    print(json.dumps(rows[-1]), flush=True)
                    if args.json:
                        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
        finally:
            if "old" in cases:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    capture_output=True,
                )
    table = pd.DataFrame(rows)
    reference = table[table.case == "sequential"] if "sequential" in cases else table.iloc[:1]
    table["x_runs_per_hour"] = table.runs_per_hour / float(reference.runs_per_hour.iloc[0])
    print(
        table[["case", "wall_s", "runs", "runs_per_hour", "x_runs_per_hour"]].to_string(
            index=False, float_format=lambda v: f"{v:.2f}"
        )
    )
    if args.pairs > 1:  # medians over the repetitions; speed relative to the first case
        medians = table.groupby("case", sort=False).wall_s.median()
        speed = pd.DataFrame({"median_wall_s": medians, "x_speed": medians.iloc[0] / medians})
        print(speed.to_string(float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
