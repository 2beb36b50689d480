"""Peak memory per phase (training vs sampling) of RSmote and RAD on the elliptic problem.

    python benchmarks/memory_phases.py --dims 10 50 100 200 1000 --device cuda --json mem.json

Each configuration is one short run (initial training plus one sampling round) through the
same Trainer as ``run.py``, with the run record's memory accounting
(``pinn_exp.metrics.memory``). On a GPU, per phase: ``torch.cuda.max_memory_allocated`` reset
at the phase's start, and the growth of the caching allocator's reserve within the phase
(MiB). On every device, per phase: the peak resident set size minus the RSS at the run's start
(``VmHWM`` reset at each phase's start, the heap trimmed; ``cpu_peak_method`` says how, and
where the OS allows no reset the CPU columns stay empty). RAD is run unchunked (``chunk_size``
null, the reference code) and chunked. An out-of-memory error is recorded as ``oom`` with its
phase and the benchmark goes on.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from pinn_exp.config import compose_config
from pinn_exp.factory import build
from pinn_exp.metrics.memory import HWM, is_allocation_failure, reset_peak_rss
from pinn_exp.training.trainer import Trainer


def one_run(sampler_name: str, chunk: int | None, dim: int, args) -> dict:
    """A short run; returns its phases' peak memory and times."""
    rad = [
        "sampler=rad",
        f"sampler.n_dense={args.n_dense}",
        f"sampler.chunk_size={chunk or 'null'}",
    ]
    built = build(
        compose_config(
            [
                "pde=elliptic",
                f"pde.dim={dim}",
                "pde.n_test=2000",
                *(rad if sampler_name == "rad" else ["sampler=rsmote_paper"]),
                f"n_points={args.n_points}",
                "rounds=1",
                f"device.name={args.device}",
                f"device.dtype={args.dtype}",
                f"device.memory_limit_gb={args.memory_limit_gb or 'null'}",
                f"laplacian={args.laplacian}",
                f"model.width={args.width}",
                f"model.depth={args.depth}",
                f"optimizer.pretrain_steps={args.steps}",
                f"optimizer.adam_steps={args.steps}",
                f"optimizer.lbfgs_steps={args.lbfgs}",
                "progress=false",
            ]
        )
    )
    device = built.device
    reset_peak_rss()  # the run's start, as in pinn_exp.runner
    device.apply()
    row = {
        "sampler": sampler_name,
        "chunk_size": chunk,
        "dim": dim,
        "n_points": args.n_points,
        "n_dense": args.n_dense if sampler_name == "rad" else None,
        "laplacian": args.laplacian,
        "device": device.description,
        "status": "ok",
    }
    trainer = None
    try:
        trainer = Trainer(built, progress=False)
        trainer.run()
    except Exception as exc:  # recorded, and the benchmark goes on with the next configuration
        status = "oom" if is_allocation_failure(exc) else "failed"
        row.update(status=status, phase=trainer.phase if trainer else "setup")
        if status == "failed":
            row.update(error=repr(exc))
    device.release()
    row.update(
        cpu_peak_method=HWM.label,
        cpu_rss_start_mb=HWM.start_mb,
        peak_cpu_increase_mb=HWM.increase_mb(),
    )
    if trainer is not None:
        meter = trainer.meter
        row.update(
            peak_train_mb=meter.peak("train"),
            peak_sampling_mb=meter.peak("sampling"),
            reserved_train_mb=meter.reserved("train"),
            reserved_sampling_mb=meter.reserved("sampling"),
            reserved_growth_train_mb=meter.reserved_growth("train"),
            reserved_growth_sampling_mb=meter.reserved_growth("sampling"),
            **{
                f"cpu_increase_{name}_mb": meter.cpu_increase(name)
                for name in ("setup", "train", "sampling", "evaluation")
            },
            time_train_s=meter.time_s.get("train"),
            time_sampling_s=trainer.meter.time_s.get("sampling"),
            l2_rel_error=(trainer.state.metrics.get("l2_rel_error") or [None])[-1],
        )
    del trainer, built
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return row


def _cell(row: dict, key: str, fmt: str = "{:.0f}") -> str:
    return fmt.format(row[key]) if row.get(key) is not None else "n/a"


def table(rows: list[dict]) -> str:
    lines = [
        "| dim | sampler | chunk | status | GPU peak train / sampling (MiB) | "
        "GPU reserve growth train / sampling (MiB) | CPU peak increase train / sampling "
        "(MiB) | sampling time (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        pairs = [
            f"{_cell(r, f'{what}_train{unit}')} / {_cell(r, f'{what}_sampling{unit}')}"
            for what, unit in (("peak", "_mb"), ("reserved_growth", "_mb"), ("cpu_increase", "_mb"))
        ]
        cells = [*pairs, _cell(r, "time_sampling_s", "{:.2f}")]
        head = f"| {r['dim']} | {r['sampler']} | {r['chunk_size']} | {r['status']} | "
        lines.append(head + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 50, 100, 200, 1000])
    parser.add_argument("--n-points", type=int, default=5000)
    parser.add_argument("--n-dense", type=int, default=100_000)
    parser.add_argument(
        "--chunk-sizes",
        type=int,
        nargs="+",
        default=[10_000, 20_000],
        help="RAD's chunked runs (besides the unchunked one)",
    )
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
        runs = [("rsmote", None), ("rad", None), *(("rad", c) for c in args.chunk_sizes)]
        for sampler, chunk in runs:
            rows.append(one_run(sampler, chunk, dim, args))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
