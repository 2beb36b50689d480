"""Where a run's time goes, round by round: the optimizer steps, the sampler, each metric, the
residual maps, the memory accounting, the checkpoint and the final files, for one job run
in this process exactly as ``python run.py`` runs it (the same Hydra entry point).

    python benchmarks/bookkeeping.py --jobs short,budget_short,smoke --json bk.json
    python benchmarks/bookkeeping.py --jobs default -- device.threads=1

Jobs (``--jobs``; overrides after ``--`` go to every job): ``default`` (the project's
defaults), ``short`` (1000 Adam + 300 L-BFGS steps, 2 rounds), ``budget_short``
(``budget=short``) and ``smoke`` (one run at the sizes of ``+experiment=smoke``). Each runs
on the CPU, seed 0, progress bar off.

The times are exclusive (a component's own time, without the components it calls), so they
add up to the run's time; both wall and CPU time (this process's) are kept, and the shares of
the run's CPU time are what to compare on a busy machine, where wall times follow the other
processes' load. Rows: job, component, round (``files``: after training, ``-``:
outside the rounds), seconds, share of the run. Start-up (imports, config) is timed apart
as ``startup_s``, with whether those imports brought in matplotlib.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["optimizer.pretrain_steps=1000", "optimizer.lbfgs_steps=300", "rounds=2"]
SMOKE = [
    "n_points=200",
    "rounds=1",
    "optimizer.pretrain_steps=10",
    "optimizer.adam_steps=5",
    "optimizer.lbfgs_steps=3",
    "model.width=16",
    "model.depth=2",
]
JOBS = {"default": [], "short": SHORT, "budget_short": ["budget=short"], "smoke": SMOKE}
COMMON = ["seed=0", "device=cpu", "progress=false"]


def _now() -> tuple[float, float]:
    """(wall, this process's CPU) seconds."""
    return time.perf_counter(), time.process_time()


class Clock:
    """Exclusive wall and CPU time per (component, round): a timed call's own time, its timed
    callees' subtracted."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.cpu_seconds: dict[tuple[str, str], float] = defaultdict(float)
        #: per open call: wall and CPU at its start, its callees' wall and CPU
        self.stack: list[list[float]] = []
        self.round = "-"

    def wrap(self, component: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.stack.append([*_now(), 0.0, 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                wall, cpu, children_wall, children_cpu = self.stack.pop()
                now_wall, now_cpu = _now()
                key = (component, self.round)
                self.seconds[key] += now_wall - wall - children_wall
                self.cpu_seconds[key] += now_cpu - cpu - children_cpu
                if self.stack:
                    self.stack[-1][2] += now_wall - wall
                    self.stack[-1][3] += now_cpu - cpu

        return timed

    def patch(self, owner, name: str, component: str) -> None:
        setattr(owner, name, self.wrap(component, getattr(owner, name)))


def instrument(clock: Clock) -> None:
    """Wraps the run's components (class attributes, so every instance is timed)."""
    from pinn_exp import runner
    from pinn_exp.io import storage
    from pinn_exp.metrics import memory
    from pinn_exp.metrics import registry as metrics
    from pinn_exp.training import trainer as trainer_mod
    from pinn_exp.training.trainer import Trainer

    def rounds(name):
        original = getattr(Trainer, name)

        @functools.wraps(original)
        def set_round(self, round_index, *args, **kwargs):
            clock.round = str(round_index)
            return original(self, round_index, *args, **kwargs)

        setattr(Trainer, name, set_round)

    clock.patch(Trainer, "run", "round_other")
    rounds("begin_round")
    clock.patch(Trainer, "train_stage", "steps")
    clock.patch(trainer_mod, "concentration", "concentration_at_sampling")
    for metric in list(metrics.METRICS.values()):
        metrics.METRICS[metric.name] = dataclasses.replace(
            metric, fn=clock.wrap(f"metric_{metric.name}", metric.fn)
        )
    clock.patch(Trainer, "predict_test", "predict_test")
    clock.patch(Trainer, "residual_map", "residual_map")
    clock.patch(memory.HWM, "reset", "memory_reset")
    clock.patch(trainer_mod, "save_checkpoint", "checkpoint")
    clock.patch(Trainer, "snapshot", "checkpoint")
    for sampler_cls in _sampler_classes():
        for name in ("initial", "update"):
            if name in vars(sampler_cls):
                clock.patch(sampler_cls, name, "sampler")

    original_files = runner.files.write_files

    def files(*args, **kwargs):
        clock.round = "files"
        return original_files(*args, **kwargs)

    runner.files.write_files = clock.wrap("files_other", files)
    for name in ("write_history", "write_arrays"):
        clock.patch(storage, name, f"files_{name}")
    from pinn_exp.report import run_plots

    for name in dir(run_plots):
        if name.startswith("plot_"):
            clock.patch(run_plots, name, name)


def _sampler_classes():
    import pinn_exp.samplers as samplers
    from pinn_exp.samplers.base import Sampler

    seen, todo = [], [Sampler]
    del samplers
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


def run_job(job: str, out: Path, extra: list[str]) -> dict:
    """Runs ``job`` in this process through the command line's entry point; the breakdown."""
    began = time.perf_counter()
    from pinn_exp import cli, runner

    startup_s = time.perf_counter() - began
    matplotlib_at_start = "matplotlib" in sys.modules
    clock = Clock()
    instrument(clock)
    run_began = {}
    original_run = runner.run

    def timed_run(*args, **kwargs):
        run_began["t"], run_began["cpu"] = _now()
        try:
            return original_run(*args, **kwargs)
        finally:
            now_wall, now_cpu = _now()
            run_began["s"] = now_wall - run_began["t"]
            run_began["cpu_s"] = now_cpu - run_began["cpu"]

    runner.run = timed_run
    overrides = [*COMMON, *JOBS[job], *extra, f"hydra.run.dir={out}"]
    argv, sys.argv = sys.argv, ["run.py", *overrides]
    try:
        cli.main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        sys.argv = argv
    record = json.loads((out / "metrics.json").read_text())
    total, total_cpu = run_began["s"], run_began["cpu_s"]
    # the runner's own work (the record, building the trainer)
    clock.seconds[("untimed", "-")] += total - sum(clock.seconds.values())
    clock.cpu_seconds[("untimed", "-")] += total_cpu - sum(clock.cpu_seconds.values())
    rows = [
        {
            "component": c,
            "round": r,
            "seconds": s,
            "share": s / total,
            "cpu_seconds": clock.cpu_seconds[(c, r)],
            "cpu_share": clock.cpu_seconds[(c, r)] / total_cpu,
        }
        for (c, r), s in sorted(clock.seconds.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]
    return {
        "job": job,
        "command": "python run.py " + " ".join(overrides[:-1]),
        "date": datetime.date.today().isoformat(),
        "device": f"{platform.machine()} CPU, torch {__import__('torch').__version__}",
        "threads": __import__("torch").get_num_threads(),
        "startup_s": startup_s,
        "matplotlib_imported_at_startup": matplotlib_at_start,
        "run_s": total,
        "run_cpu_s": total_cpu,
        "status": record["status"],
        "l2_rel_error_per_round": record.get("l2_rel_error_per_round"),
        "rows": rows,
    }


def summary(result: dict, share: str = "cpu_share") -> dict[str, float]:
    """Component -> share of the run's CPU time (``share``: or of its wall time), all rounds
    together."""
    shares: dict[str, float] = defaultdict(float)
    for row in result["rows"]:
        shares[row["component"]] += row[share]
    return dict(shares)


#: the components that are not training (what the issue calls bookkeeping)
TRAINING = ("steps", "sampler")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", default="short,budget_short,smoke")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    jobs = args.jobs.split(",")
    unknown = sorted(set(jobs) - set(JOBS))
    if unknown:
        parser.error(f"--jobs: {unknown} unknown; choose from {list(JOBS)}")
    if len(jobs) > 1:  # one job per process: the instrumentation and Hydra are per process
        import subprocess

        results = []
        with tempfile.TemporaryDirectory() as tmp:
            for job in jobs:
                path = Path(tmp) / f"{job}.json"
                command = [sys.executable, __file__, "--jobs", job, "--json", str(path)]
                subprocess.run([*command, "--", *extra], check=True, cwd=ROOT)
                results.extend(json.loads(path.read_text()))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
        return
    with tempfile.TemporaryDirectory() as tmp:
        result = run_job(jobs[0], Path(tmp) / "run", extra)
    shares, wall = summary(result), summary(result, "share")
    bookkeeping = sum(v for k, v in shares.items() if k not in TRAINING)
    print(
        f"{result['job']}: run {result['run_s']:.2f} s wall, {result['run_cpu_s']:.2f} s CPU; "
        f"start-up {result['startup_s']:.2f} s\n  {'share of the run':34s}    CPU    wall"
    )
    for name, share in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"  {name:34s} {100 * share:6.2f} % {100 * wall[name]:6.2f} %")
    print(f"  {'bookkeeping (all but steps, sampler)':34s} {100 * bookkeeping:6.2f} %")
    result["bookkeeping_share"] = bookkeeping
    if args.json:
        Path(args.json).write_text(json.dumps([result], indent=1) + "\n")


if __name__ == "__main__":
    main()
