"""Benchmark of the Laplacian methods: one training step (residual, loss, backward) on the
elliptic problem, per method and dimension, with ratios to ``autograd`` measured in one run.

    python benchmarks/laplacian.py --dims 10 100 --n-points 1000 --device cpu --json lap.json

``--phase score`` measures instead the residual scorer of the samplers (|residual| with the
parameters frozen and graph-free derivatives, ``pinn_exp.training.trainer.Scorer``), and
``--phase score-with-graph`` the same evaluation with every derivative keeping its graph (the
scorer before graph-free scoring), for comparison.

Time: median over ``--repeats`` steps after ``--warmup``. Memory: on CUDA the peak of
``torch.cuda.max_memory_allocated`` during the step (reset before it), in MiB; on a CPU the
increase of the process's peak RSS over its level before the first step, each method and
dimension in a fresh process; it also counts the allocator's caching, so it is coarser.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time

import torch

from pinn_exp.device import retain_cpu_memory
from pinn_exp.metrics.memory import MIB, peak_rss_mb, reset_peak_rss
from pinn_exp.model import MLP, Solution
from pinn_exp.ops import METHODS, STOCHASTIC, Laplacian
from pinn_exp.pdes import Elliptic
from pinn_exp.training.trainer import Scorer, frozen

PHASES = ("train", "score", "score-with-graph")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_fn(
    method: str,
    dim: int,
    n_points: int,
    width: int,
    depth: int,
    probes: int,
    device: torch.device,
    dtype: torch.dtype,
    phase: str = "train",
):
    """One closure performing a training step (or a scoring, see ``--phase``) with
    ``method``."""
    base, _, variant = method.partition("+")
    mode = "reduce-overhead" if variant == "cudagraphs" else "default"
    lap = Laplacian(base, probes=probes, compile=bool(variant), compile_mode=mode)
    pde = Elliptic(dim=dim, n_test=1)
    torch.manual_seed(0)
    model = Solution(MLP(dim, width, depth), pde.constraint).to(device=device, dtype=dtype)
    x = pde.domain.sample(n_points, torch.Generator().manual_seed(0), device, dtype)
    x.requires_grad_(True)
    scorer = Scorer(pde, model, lap)

    def step() -> None:
        if phase == "score":
            scorer(x)
        elif phase == "score-with-graph":
            with frozen(model):
                pde.residual(model, x, lap).detach().abs()
        else:
            model.zero_grad(set_to_none=True)
            loss = pde.residual(model, x, lap).square().mean()
            loss.backward()

    return step


def measure(method: str, args, dim: int, device: torch.device, dtype: torch.dtype) -> dict:
    """Median step time and peak memory of one method at one dimension."""
    step = step_fn(
        method, dim, args.n_points, args.width, args.depth, args.probes, device, dtype, args.phase
    )
    _sync(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        reset_peak_rss()
        base = peak_rss_mb()
    times = []
    for i in range(args.warmup + args.repeats):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / MIB
    else:
        peak = peak_rss_mb() - base
    return {
        "method": method,
        "phase": args.phase,
        "dim": dim,
        "n_points": args.n_points,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "time_s": statistics.median(times),
        "peak_mem_mb": peak,
        "stochastic": method.split("+")[0] in STOCHASTIC,
        "width": args.width,
        "depth": args.depth,
        "dtype": str(dtype).replace("torch.", ""),
        "memory_measure": "max_memory_allocated" if device.type == "cuda" else "peak_rss_delta",
        "torch": torch.__version__,
        "base_mem": base if device.type == "cuda" else None,
    }


def _child(method: str, args: argparse.Namespace, dim: int) -> dict:
    retained = args.retain_cpu_memory and retain_cpu_memory()  # as run.py does on a CPU
    row = measure(method, args, dim, torch.device("cpu"), getattr(torch, args.dtype))
    return {**row, "retain_cpu_memory": retained, "threads": torch.get_num_threads()}


def run_isolated(method: str, args: argparse.Namespace, dim: int) -> dict:
    """On a CPU each measurement runs in a fresh process, so its peak RSS is its own."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_child, (method, args, dim))


def table(rows: list[dict]) -> str:
    """Markdown table with time and memory ratios to autograd per dimension."""
    ref = {r["dim"]: r for r in rows if r["method"] == "autograd"}
    lines = [
        "| dim | method | time (s) | time / autograd | peak mem (MiB) | mem / autograd |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        a = ref.get(r["dim"])
        tr = f"{r['time_s'] / a['time_s']:.2f}" if a else "n/a"
        mr = f"{r['peak_mem_mb'] / a['peak_mem_mb']:.2f}" if a and a["peak_mem_mb"] > 0 else "n/a"
        name = r["method"] + (" (stochastic)" if r["stochastic"] else "")
        lines.append(
            f"| {r['dim']} | {name} | {r['time_s']:.4f} | {tr} | {r['peak_mem_mb']:.0f} | {mr} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--n-points", type=int, default=5000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        choices=[*METHODS, "forward+compile", "forward+cudagraphs"],
        help="forward+compile: the forward Laplacian under torch.compile; forward+cudagraphs: "
        "under torch.compile(mode='reduce-overhead'), which replays CUDA graphs",
    )
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--probes", type=int, default=16)
    parser.add_argument(
        "--phase",
        default="train",
        choices=PHASES,
        help="train: one training step; score: the samplers' residual scorer (graph-free); "
        "score-with-graph: the same evaluation keeping every derivative's graph",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed steps first (compilation happens there)"
    )
    parser.add_argument(
        "--no-retain-cpu-memory",
        dest="retain_cpu_memory",
        action="store_false",
        help="CPU: leave glibc's malloc as it is (device.retain_cpu_memory=false)",
    )
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    rows = []
    for dim in args.dims:
        for method in args.methods:
            try:
                rows.append(
                    run_isolated(method, args, dim)
                    if device.type == "cpu"
                    else measure(method, args, dim, device, dtype)
                )
            except torch.cuda.OutOfMemoryError:
                print(f"{method} d={dim}: out of memory", file=sys.stderr)
                continue
            except Exception as exc:  # one method failing must not lose the others' rows
                print(f"{method} d={dim}: failed: {exc!r}", file=sys.stderr)
                continue
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
