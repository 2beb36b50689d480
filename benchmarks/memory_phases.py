"""Peak memory per phase (training vs sampling) of RSmote and RAD on the elliptic problem.

    python benchmarks/memory_phases.py --dims 10 50 100 200 1000 --device cuda --json mem.json

Each configuration is one short run (initial training plus one sampling round) through the
same Trainer as ``run.py``; the phases' peaks are ``torch.cuda.max_memory_allocated`` reset at
the start of each phase (MiB). RAD is run unchunked (``chunk_size`` null, the reference code)
and chunked. On a CPU, GPU memory is not available and only times are reported. An
out-of-memory error is recorded as ``oom`` with its phase and the benchmark goes on.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from pinn_exp.device import DeviceSpec
from pinn_exp.model import MLP, Solution
from pinn_exp.ops.laplacian import Laplacian
from pinn_exp.pdes import Elliptic
from pinn_exp.samplers import RAD, RSmote
from pinn_exp.training.schedule import Schedule
from pinn_exp.training.trainer import Trainer, seed_everything


def one_run(sampler_name: str, chunk: int | None, dim: int, args) -> dict:
    """A short run; returns its phases' peak memory and times."""
    seed_everything(0)
    device = DeviceSpec(args.device, args.dtype, args.memory_limit_gb)
    device.apply()
    pde = Elliptic(dim=dim, n_test=2000, laplacian=Laplacian(args.laplacian))
    sampler = RSmote() if sampler_name == "rsmote" else RAD(n_dense=args.n_dense, chunk_size=chunk)
    model = Solution(MLP(dim, args.width, args.depth), pde).to(device.device, device.dtype)
    schedule = Schedule(pretrain_steps=args.steps, adam_steps=args.steps, lbfgs_steps=args.lbfgs)
    row = {"sampler": sampler_name, "chunk_size": chunk, "dim": dim, "n_points": args.n_points,
           "n_dense": args.n_dense if sampler_name == "rad" else None,
           "laplacian": args.laplacian, "device": device.description, "status": "ok"}  # fmt: skip
    trainer = None
    try:
        trainer = Trainer(pde, sampler, model, schedule, args.n_points, 1, 0, device.device,
                          device.dtype, progress=False)  # fmt: skip
        trainer.run()
    except torch.cuda.OutOfMemoryError:
        row.update(status="oom", phase=trainer.phase if trainer else "setup")
    except Exception as exc:  # recorded, and the benchmark goes on with the next configuration
        row.update(status="failed", error=repr(exc), phase=trainer.phase if trainer else "setup")
    if trainer is not None:
        row.update(
            peak_train_mb=trainer.meter.peak("train"),
            peak_sampling_mb=trainer.meter.peak("sampling"),
            time_train_s=trainer.meter.time_s.get("train"),
            time_sampling_s=trainer.meter.time_s.get("sampling"),
            l2_rel_error=trainer.state.errors[-1] if trainer.state.errors else None,
        )
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return row


def _cell(row: dict, key: str, fmt: str = "{:.0f}") -> str:
    return fmt.format(row[key]) if row.get(key) is not None else "n/a"


def table(rows: list[dict]) -> str:
    lines = ["| dim | sampler | chunk | status | peak train (MiB) | peak sampling (MiB) | "
             "sampling time (s) |", "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in rows:
        cells = [_cell(r, "peak_train_mb"), _cell(r, "peak_sampling_mb"),
                 _cell(r, "time_sampling_s", "{:.2f}")]  # fmt: skip
        head = f"| {r['dim']} | {r['sampler']} | {r['chunk_size']} | {r['status']} | "
        lines.append(head + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 50, 100, 200, 1000])
    parser.add_argument("--n-points", type=int, default=5000)
    parser.add_argument("--n-dense", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--memory-limit-gb", type=float, default=None)
    parser.add_argument("--laplacian", default="forward")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lbfgs", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    rows = []
    for dim in args.dims:
        for sampler, chunk in (("rsmote", None), ("rad", None), ("rad", args.chunk_size)):
            rows.append(one_run(sampler, chunk, dim, args))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
