"""Throughput of the training loop, per phase and per run, for paths compared in one process.

    python benchmarks/throughput.py --device cpu --json tp.json                 # phases
    python benchmarks/throughput.py --device cpu --whole-run --json run.json    # whole runs
    python benchmarks/throughput.py --variants baseline,forward -- pde=allen_cahn seed=1

A *variant* is a named set of config overrides (``--variants``; ``VARIANTS`` below lists the
built-in ones; ``name=key=value;key=value`` defines another). Every variant runs on the same
base config (the default job unless overrides follow ``--``) on ``--device``.

Phase mode: per variant, ``--adam`` Adam steps, ``--lbfgs`` L-BFGS iterations (its function
evaluations counted), ``--updates`` sampler updates and ``--evals`` test-set evaluations, each
timed after ``--warmup`` untimed steps of the same kind (which pay compilation, when asked
for: its time is the row's ``warmup_s``). Each timed block is one stage, as in a run: with
``optimizer.cuda_graphs=true`` it includes its 3 eager warm-up steps and the capture. One
JSON row per variant and phase: device name, torch version, threads, N, parameter count,
steps, seconds, ms per step, steps per second.

Whole-run mode (``--whole-run``): per variant, one full run as ``python run.py`` makes it
(into a temporary directory): wall time, training time and the final relative L2 error, so
that a faster path is always checked against the error it reaches.

Ratios to the first variant are printed as a table. Timings on a GPU synchronise the device
around each timed block only.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from pinn_exp import runner
from pinn_exp.config import compose_config
from pinn_exp.factory import build
from pinn_exp.training.trainer import Trainer

# The paths compared by default: today's fastest first-class options against the old ones.
# Each sets optimizer.compile, whose default (auto) compiles the default job on a CPU.
VARIANTS = {
    # autograd derivatives (nested autograd.grad) and torch's L-BFGS: the code before jets
    "baseline": ["laplacian=autograd", "optimizer.lbfgs_impl=torch", "optimizer.compile=false"],
    # forward jets (u, u_t, u_x, u_xx in one pass) with torch's L-BFGS
    "forward": ["laplacian=forward", "optimizer.lbfgs_impl=torch", "optimizer.compile=false"],
    # forward jets and the device L-BFGS
    "device": ["laplacian=forward", "optimizer.lbfgs_impl=device", "optimizer.compile=false"],
    # forward jets and the device L-BFGS, each step replayed as a CUDA graph (CUDA only)
    "graphs": [
        "laplacian=forward",
        "optimizer.lbfgs_impl=device",
        "optimizer.cuda_graphs=true",
        "optimizer.compile=false",
    ],
    # forward jets, torch's L-BFGS, the loss and its gradient compiled by torch.compile
    "compiled_torch": ["laplacian=forward", "optimizer.lbfgs_impl=torch", "optimizer.compile=true"],
    # the same with the device L-BFGS
    "compiled": ["laplacian=forward", "optimizer.lbfgs_impl=device", "optimizer.compile=true"],
}


def parse_variants(text: str) -> dict[str, list[str]]:
    out = {}
    for item in text.split(","):
        name, _, overrides = item.partition("=")
        if overrides:
            out[name] = [o for o in overrides.split(";") if o]
        elif name in VARIANTS:
            out[name] = VARIANTS[name]
        else:
            raise SystemExit(f"--variants: unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe(built) -> dict:
    params = sum(p.numel() for p in built.model.parameters())
    return {
        "device": built.device.description,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "dtype": built.device.dtype_name,
        "pde": built.pde.name,
        "n_points": built.n_points,
        "params": params,
    }


def _timed(device, fn) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def phases(name: str, overrides: list[str], args) -> list[dict]:
    """Times the phases of one variant on one freshly built trainer."""
    built = build(compose_config(overrides))
    built.device.apply()
    device = built.device.device
    trainer = Trainer(built, progress=False)
    trainer.state.points = built.sampler.initial().points.detach()
    x = trainer.state.points.requires_grad_(True)  # as Trainer.train_stage does
    base = {"variant": name, "overrides": overrides, **describe(built)}
    rows = []

    def row(phase: str, steps: int, seconds: float, warmup_s: float, **extra) -> None:
        rows.append(
            {
                **base,
                "phase": phase,
                "steps": steps,
                "seconds": seconds,
                "ms_per_step": 1e3 * seconds / max(steps, 1),
                "steps_per_s": steps / seconds if seconds > 0 else None,
                "warmup_s": warmup_s,
                **extra,
            }
        )

    # Adam
    warm = _timed(device, lambda: trainer._adam(x, 0, args.warmup)) if args.warmup else 0.0
    seconds = _timed(device, lambda: trainer._adam(x, 0, args.adam))
    row("adam", args.adam, seconds, warm)
    # L-BFGS: iterations and function evaluations
    evaluate_fn = trainer._evaluate_fn
    calls = {"n": 0}

    def counting(x_):
        inner = evaluate_fn(x_)

        def evaluate():
            calls["n"] += 1
            return inner()

        return evaluate

    trainer._evaluate_fn = counting
    lbfgs = trainer._lbfgs_device if built.schedule.lbfgs_impl == "device" else trainer._lbfgs
    warm = _timed(device, lambda: lbfgs(x, 0, args.warmup)) if args.warmup else 0.0
    before, calls["n"] = len(trainer.state.history), 0
    seconds = _timed(device, lambda: lbfgs(x, 0, args.lbfgs))
    iterations = len(trainer.state.history) - before
    row(
        "lbfgs",
        iterations,
        seconds,
        warm,
        evaluations=calls["n"],
        ms_per_evaluation=1e3 * seconds / max(calls["n"], 1),
    )
    trainer._evaluate_fn = evaluate_fn
    # sampler updates (scoring included) and evaluation on the test set
    points = trainer.state.points

    def updates():
        p = points
        for i in range(args.updates):
            p = built.sampler.update(p, trainer.scorer, i + 1).points

    row("sampling", args.updates, _timed(device, updates), 0.0)
    trainer.evaluate()
    row(
        "evaluation",
        args.evals,
        _timed(device, lambda: [trainer.evaluate() for _ in range(args.evals)]),
        0.0,
    )
    return rows


def whole_run(name: str, overrides: list[str], args) -> list[dict]:
    built = build(compose_config(overrides + ["progress=false"]))
    info = describe(built)
    with tempfile.TemporaryDirectory() as tmp:
        record = runner.run(built, Path(tmp), progress=False)
        history = pd.read_csv(Path(tmp) / "history.csv")
    steps = history["phase"].value_counts().to_dict()
    return [
        {
            "variant": name,
            "overrides": overrides,
            **info,
            "phase": "run",
            "status": record["status"],
            "wall_time_s": record["wall_time_s"],
            "time_train_s": record["time_train_s"],
            "time_sampling_s": record["time_sampling_s"],
            "l2_rel_error": record["l2_rel_error"],
            "l2_rel_error_per_round": record["l2_rel_error_per_round"],
            "adam_steps": steps.get("adam", 0),
            "lbfgs_iterations": steps.get("lbfgs", 0),
        }
    ]


def table(rows: list[dict]) -> str:
    key = "wall_time_s" if rows and rows[0]["phase"] == "run" else "ms_per_step"
    first: dict[str, float] = {}
    lines = [f"{'variant':<12} {'phase':<11} {key:>12} {'x first':>8} {'extra':>28}"]
    for r in rows:
        value = r[key]
        first.setdefault(r["phase"], value)
        ratio = first[r["phase"]] / value if value else float("nan")
        extra = (
            f"L2 {r['l2_rel_error']:.3e}"
            if r.get("l2_rel_error") is not None
            else f"{r.get('evaluations', '')} evals"
            if r["phase"] == "lbfgs"
            else ""
        )
        lines.append(
            f"{r['variant']:<12} {r['phase']:<11} {value:>12.3f} {ratio:>8.2f} {extra:>28}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--variants",
        default="baseline,forward,device",
        help=f"comma-separated names ({', '.join(VARIANTS)}) or name=k=v;k=v",
    )
    parser.add_argument("--adam", type=int, default=200, help="timed Adam steps")
    parser.add_argument("--lbfgs", type=int, default=200, help="timed L-BFGS iterations")
    parser.add_argument("--updates", type=int, default=2, help="timed sampler updates")
    parser.add_argument("--evals", type=int, default=5, help="timed test-set evaluations")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps before each")
    parser.add_argument("--whole-run", action="store_true", help="full runs: time and error")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("overrides", nargs="*", help="config overrides after --")
    args = parser.parse_args(argv)
    variants = parse_variants(args.variants)
    rows: list[dict] = []
    for name, extra in variants.items():
        overrides = [*args.overrides, f"device={args.device}", *extra]
        try:
            rows += (whole_run if args.whole_run else phases)(name, overrides, args)
        except Exception as exc:  # noqa: BLE001 - one failing path must not hide the others
            rows.append(
                {
                    "variant": name,
                    "overrides": overrides,
                    "phase": "failed",
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
            print(f"{name}: failed: {exc}", file=sys.stderr)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    print(table([r for r in rows if r["phase"] != "failed"]))


if __name__ == "__main__":
    main()
