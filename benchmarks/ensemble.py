"""Batched ensembles (``hydra/launcher=batched``): time per optimizer step per member as the
ensemble grows, against one single run, and whole jobs against the same runs one by one.

    python benchmarks/ensemble.py --device cpu --sizes 1,2,4,8 --json ens.json
    python benchmarks/ensemble.py --device cuda --sizes 1,2,4,8,16,32,64,128 --json ens.json
    python benchmarks/ensemble.py --device cpu --whole-run --sizes 1,4 -- rounds=1
    python benchmarks/ensemble.py --count-ops --sizes 1,8,64

Per size S and mode (``loop``: the members' losses one after the other in one backward pass,
the launcher's default, exactly each single run; ``vmap``: ``hydra.launcher.vectorize=true``)
the ensemble of seeds 0..S-1 takes ``--adam`` Adam steps and ``--lbfgs`` device L-BFGS
iterations after ``--warmup`` untimed ones; the row gives ms per step of the ensemble and per
member, and the speedup per member over ``single`` (S = 1: one run of the same config, the
device L-BFGS, trained alone).
With ``--whole-run`` each size runs whole jobs (as configured by the overrides after ``--``):
the ensemble against its members' single runs one after the other, wall time and final
errors. With ``--count-ops`` each size and mode counts the operations torch dispatches per
device L-BFGS iteration (``TorchDispatchMode``), the evaluation's and the update's apart
(also without views and aliases): a machine-independent figure of the kernel launches a GPU
pays. The base config is the default job with ``optimizer.lbfgs_impl=device``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import pandas as pd
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pinn_exp.config import compose_config
from pinn_exp.factory import build
from pinn_exp.training.ensemble import EnsembleTrainer
from pinn_exp.training.trainer import Trainer

BASE = ["optimizer.lbfgs_impl=device", "optimizer.compile=false", "progress=false"]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _trainers(size: int, overrides: list[str]) -> list[Trainer]:
    return [
        Trainer(build(compose_config([*BASE, *overrides, f"seed={s}"])), progress=False)
        for s in range(size)
    ]


def _timed(device: str, fn) -> float:
    _sync(device)
    began = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - began


def _host(size: int, mode: str, overrides: list[str]):
    """The trainer a stage runs on (one single run for ``mode`` single, else the ensemble of
    seeds 0..size-1) with its first points, and the points a stage trains on."""
    trainers = _trainers(size, overrides)
    for t in trainers:
        t.state.points = t.sampler.initial().points
    if mode != "single":
        host = EnsembleTrainer(trainers, progress=False, vectorize=mode == "vmap")
        return host, host.prepare_stage()
    host = trainers[0]
    host._params = [p for p in host.model.parameters() if p.requires_grad]
    return host, host.state.points.detach().clone().requires_grad_(True)


def phase_rows(size: int, mode: str, args, overrides: list[str]) -> list[dict]:
    """ms per Adam step and per L-BFGS iteration of an ensemble of ``size`` (or one single
    run: ``mode`` single)."""
    host, x = _host(size, mode, overrides)
    rows = []
    for phase, steps, run in (
        ("adam", args.adam, host._adam),
        ("lbfgs", args.lbfgs, host._lbfgs_device),
    ):
        if args.warmup:
            _timed(args.device, lambda run=run: run(x, 0, args.warmup))
        seconds = _timed(args.device, lambda run=run, steps=steps: run(x, 0, steps))
        rows.append(
            {
                "size": size,
                "mode": mode,
                "phase": phase,
                "steps": steps,
                "seconds": seconds,
                "ms_per_step": 1e3 * seconds / steps,
                "ms_per_step_per_member": 1e3 * seconds / steps / size,
            }
        )
    return rows


class _Count(TorchDispatchMode):
    """Counts the operations dispatched inside it: all, and those that are not views."""

    def __init__(self):
        super().__init__()
        self.all = self.computed = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.all += 1
        name = func.__name__.split(".")[0]
        if not (getattr(func, "is_view", False) or name in _NOT_COMPUTED):
            self.computed += 1
        return func(*args, **(kwargs or {}))


_NOT_COMPUTED = ("empty", "detach", "alias", "lift_fresh")


def ops_rows(size: int, mode: str, args, overrides: list[str]) -> list[dict]:
    """Operations per device L-BFGS iteration of an ensemble of ``size`` (or one single
    run), over ``args.lbfgs`` iterations after ``args.warmup`` uncounted ones."""
    host, x = _host(size, mode, overrides)
    optimizer = host._device_lbfgs(x, args.lbfgs + args.warmup + 1)
    optimizer.start()
    for _ in range(args.warmup):
        optimizer.step()
    n = max(args.lbfgs, 1)
    with _Count() as step:
        for _ in range(n):
            optimizer.step()
    with _Count() as evaluation:
        for _ in range(n):
            optimizer.evaluate()
    return [
        {
            "size": size,
            "mode": mode,
            "phase": "lbfgs_ops",
            "steps": n,
            "ops_per_iteration": step.all / n,
            "ops_evaluation": evaluation.all / n,
            "ops_update": (step.all - evaluation.all) / n,
            "ops_update_computed": (step.computed - evaluation.computed) / n,
        }
    ]


def whole_rows(size: int, args, overrides: list[str]) -> list[dict]:
    """The ensemble's whole job against its members' single runs one after the other."""
    singles = _trainers(size, overrides)
    began = time.perf_counter()
    for t in singles:
        t.run()
    single_s = time.perf_counter() - began
    members = _trainers(size, overrides)
    ensemble = EnsembleTrainer(members, progress=False, vectorize=args.vectorize)
    began = time.perf_counter()
    ensemble.run()
    ensemble_s = time.perf_counter() - began
    same = all(
        a.state.metrics["l2_rel_error"] == b.state.metrics["l2_rel_error"]
        for a, b in zip(singles, members)
    )
    return [
        {
            "size": size,
            "mode": "vmap" if args.vectorize else "loop",
            "singles_s": single_s,
            "ensemble_s": ensemble_s,
            "speedup": single_s / ensemble_s,
            "errors_equal": same,
            "errors": [m.state.metrics["l2_rel_error"][-1] for m in members],
        }
    ]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    overrides = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sizes", default="1,2,4,8", help="ensemble sizes S")
    parser.add_argument("--modes", default="loop,vmap", help="loop and/or vmap")
    parser.add_argument("--adam", type=int, default=50)
    parser.add_argument("--lbfgs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--whole-run", action="store_true")
    parser.add_argument("--vectorize", action="store_true", help="whole runs: vmap")
    parser.add_argument(
        "--count-ops", action="store_true", help="operations per L-BFGS iteration instead of times"
    )
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args(argv)
    if args.count_ops and args.whole_run:
        parser.error("--count-ops and --whole-run measure different things: choose one")
    overrides = [f"device={args.device}", *overrides]
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[dict] = []
    for size in sizes:
        if args.whole_run:
            rows += whole_rows(size, args, overrides)
            continue
        if args.count_ops:
            modes = ["single"] if size == 1 else []
            for mode in [*modes, *args.modes.split(",")]:
                rows += ops_rows(size, mode, args, overrides)
            continue
        if size == 1:
            rows += phase_rows(1, "single", args, overrides)
        for mode in args.modes.split(","):
            rows += phase_rows(size, mode, args, overrides)
        print(
            pd.DataFrame(rows).tail(2 * len(args.modes.split(","))).to_string(index=False),
            flush=True,
        )
    frame = pd.DataFrame(rows)
    if not (args.whole_run or args.count_ops):
        single = frame[frame["mode"] == "single"].set_index("phase")["ms_per_step"]
        per_member = zip(frame["phase"], frame["ms_per_step_per_member"])
        frame["speedup_per_member"] = [single.get(p, float("nan")) / v for p, v in per_member]
    device = torch.cuda.get_device_name() if args.device == "cuda" else platform.machine()
    print(
        f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"overrides {overrides}"
    )
    print(frame.to_string(index=False))
    if args.json:
        meta = {
            "device": device,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "overrides": overrides,
        }
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": frame.to_dict(orient="records")}, f, indent=1)


if __name__ == "__main__":
    main()
