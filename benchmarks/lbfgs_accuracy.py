"""The device L-BFGS (``optimizer.lbfgs_impl=device``) against torch's (``torch``), from the
same starting networks: is a table made with one as good as a table made with the other?

    python benchmarks/lbfgs_accuracy.py curves --json curves.json [-- OVERRIDES]
    python benchmarks/lbfgs_accuracy.py seeds --seeds 0-7 --pdes burgers,allen_cahn \
        --parallel 2 --json seeds.json [-- OVERRIDES]
    python benchmarks/lbfgs_accuracy.py directions --dtype float32 --json d.json [-- OVERRIDES]

``curves`` (deterministic): for each PDE (``--pdes``, default burgers, allen_cahn, laplace),
the default job's network (seed 0) after its initial Adam training, then one L-BFGS stage of
``--iterations`` iterations (and a stage's budget of evaluations, 5/4 of them) of each
implementation from that same network on the same points: the iterations done, the
evaluations used, the loss at the point each ends at (``loss_final``), every evaluation's loss
(the lowest after 50, 100, ... evaluations is tabled) and the evaluations over which the two
agree to 1e-6, in float64 unless ``--dtype``.

``seeds`` (statistical): the default job (``python run.py``, whole commands, one thread each,
``--parallel`` at a time) for every seed, PDE and implementation; the final relative L2
errors paired by seed and PDE, with the report's statistics: the geometric mean of the
error ratios device/torch with its 95 % t-interval (of the logs) and the Wilcoxon
signed-rank p-value. Rows (one per run, with its command) and the summary go to ``--json``.
``--with EARLIER.json`` adds the rows of ``--pdes`` in an earlier ``seeds`` result (the same
overrides; its seeds are not run again, a failed one stays failed) to the summary and to
``--json``: a study grows by seeds. Each row keeps its date, and new rows their commit.

``directions`` (round-off of the direction): for each PDE, the default job's network after
its initial Adam training, then torch's L-BFGS in blocks of 50 iterations (``--iterations``
in all); after each block, from torch's own history and gradient, the direction -H g in the
parameters' dtype by torch's two-loop recursion and by the device L-BFGS's ``History``
(compact form, its m x m algebra in float64), each against the two-loop recursion in float64
(relative error of the vector).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pinn_exp.config import compose_config  # noqa: E402
from pinn_exp.factory import build  # noqa: E402
from pinn_exp.report.stats import geometric_mean_ci, wilcoxon_p  # noqa: E402
from pinn_exp.training.trainer import Trainer  # noqa: E402

IMPLS = ("torch", "device")


def _device_name() -> str:
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


# ----------------------------------------------------------------------------------- curves
def _pretrained(pde: str, dtype: str, extra: list[str]) -> tuple[Trainer, torch.Tensor, dict]:
    """The default job's trainer (seed 0; ``extra`` overrides) after its initial Adam
    training, its points and a copy of its network's state."""
    cfg = compose_config(
        [
            f"pde={pde}",
            "seed=0",
            f"device.dtype={dtype}",
            "optimizer.compile=false",
            "progress=false",
            "device=cpu",
            *extra,
        ]
    )
    trainer = Trainer(build(cfg), progress=False)
    trainer.start()
    trainer.begin_round(0)
    x = trainer.state.points.detach().clone().requires_grad_(True)
    trainer._adam(x, 0, trainer.schedule.pretrain_steps)
    state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    return trainer, x, state


def _curve(trainer: Trainer, x: torch.Tensor, state: dict, impl: str, iterations: int):
    """Every evaluation's loss of one L-BFGS stage of ``iterations`` iterations from
    ``state``, run by the trainer's own stage (``Stages._lbfgs`` or ``_lbfgs_device``, with
    the stage's budget), the host's check after every step so that none is spent after the
    optimizer stops."""
    trainer.model.load_state_dict(state)
    trainer.schedule = dataclasses.replace(trainer.schedule, check_every=1)
    inner = trainer._evaluate_fn(x)
    losses: list[float] = []  # every evaluation's loss, trial points included, for both

    def evaluate() -> torch.Tensor:
        terms = inner()
        losses.append(float(terms[0]))
        return terms

    trainer._evaluate_fn = lambda points, residual=False: evaluate
    stage = trainer._lbfgs if impl == "torch" else trainer._lbfgs_device
    before = len(trainer.state.history)
    began = time.perf_counter()
    try:
        stage(x, 0, iterations)
    finally:
        del trainer._evaluate_fn  # the class's again
    seconds = time.perf_counter() - began
    done = sum(row["phase"] == "lbfgs" for row in trainer.state.history[before:])
    final = float(inner()[0])  # at the parameters the optimizer left: not counted
    return {
        "iterations": done,
        "evaluations": len(losses),
        "final": final,
        "losses": losses,
        "best": list(itertools.accumulate(losses, min)),
        "seconds": seconds,
    }


def _agree_until(a: list[float], b: list[float], rtol: float = 1e-6) -> int:
    """The evaluations the two sequences of losses agree on to ``rtol``, from the first."""
    for i, (x, y) in enumerate(zip(a, b)):
        if abs(x - y) > rtol * abs(x):
            return i
    return min(len(a), len(b))


def curves(args, extra: list[str]) -> list[dict]:
    rows = []
    for pde in args.pdes.split(","):
        trainer, x, state = _pretrained(pde, args.dtype, extra)
        losses = {}
        for impl in IMPLS:
            out = _curve(trainer, x, state, impl, args.iterations)
            losses[impl] = out["losses"]
            marks = list(range(50, len(out["best"]) + 1, 50))
            row = {
                "pde": pde,
                "lbfgs_impl": impl,
                "dtype": args.dtype,
                "iterations": out["iterations"],
                "evaluations": out["evaluations"],
                "loss_start": out["best"][0],
                "loss_final": out["final"],
                "lowest_loss_evaluated": out["best"][-1],
                "best_at": {str(k): out["best"][k - 1] for k in marks},
                "seconds": out["seconds"],
                "device": _device_name(),
                "losses": out["losses"],
            }
            if impl == "device":
                row["agrees_with_torch_until"] = _agree_until(losses["torch"], out["losses"])
            rows.append(row)
            print(
                f"{pde:12s} {impl:7s} {row['iterations']:4d} iterations "
                f"{row['evaluations']:4d} evaluations  loss {row['loss_start']:.4e} -> "
                f"{row['loss_final']:.4e}  ({row['seconds']:.1f} s)"
                + (
                    f"  same losses as torch's for {row['agrees_with_torch_until']} evaluations"
                    if impl == "device"
                    else ""
                ),
                flush=True,
            )
    return rows


# ------------------------------------------------------------------------------------ seeds
def _two_loop(g, steps, grads, h_diag: float, dtype: torch.dtype) -> torch.Tensor:
    """-H g by the two-loop recursion, torch's ``LBFGS.step`` written out, in ``dtype``."""
    q = g.to(dtype).neg()
    steps, grads = [s.to(dtype) for s in steps], [y.to(dtype) for y in grads]
    ro = [1.0 / y.dot(s) for s, y in zip(steps, grads)]
    al = [None] * len(steps)
    for i in range(len(steps) - 1, -1, -1):
        al[i] = steps[i].dot(q) * ro[i]
        q.add_(grads[i], alpha=-al[i])
    r = q * h_diag
    for i in range(len(steps)):
        b = grads[i].dot(r) * ro[i]
        r.add_(steps[i], alpha=al[i] - b)
    return r


def directions(args, extra: list[str]) -> list[dict]:
    from pinn_exp.training.lbfgs.history import History
    from pinn_exp.training.lbfgs.strong_wolfe import StrongWolfeLBFGS

    rows = []
    for pde in args.pdes.split(","):
        trainer, x, _ = _pretrained(pde, args.dtype, extra)
        params = [p for p in trainer.model.parameters() if p.requires_grad]
        evaluate = trainer._evaluate_fn(x)  # fills the parameters' .grad, as a stage's
        m = trainer.schedule.history_size
        block = min(50, args.iterations)
        optimizer = StrongWolfeLBFGS(
            params,
            lr=trainer.schedule.lbfgs_lr,
            max_iter=block,
            max_eval=10**9,
            history_size=m,
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )
        for _ in range(args.iterations // block):
            optimizer.step(lambda evaluate=evaluate: evaluate()[0])
            state = optimizer.state[params[0]]
            steps, grads = state["old_stps"], state["old_dirs"]
            g = torch.cat([p.grad.reshape(-1) for p in params]).detach()
            h64 = float(
                grads[-1].double().dot(steps[-1].double()) / grads[-1].double().square().sum()
            )
            reference = _two_loop(g, steps, grads, h64, torch.float64)
            history = History(1, m, g.numel(), g.dtype, g.device)
            for s, y in zip(steps, grads):
                history.push(torch.ones(1, dtype=torch.bool), s.unsqueeze(0), y.unsqueeze(0))
            found = {
                "two_loop": _two_loop(g, steps, grads, state["H_diag"], g.dtype),
                "device": history.direction(g.unsqueeze(0))[0],
            }
            error = {
                k: float((v.double() - reference).norm() / reference.norm())
                for k, v in found.items()
            }
            rows.append(
                {
                    "pde": pde,
                    "dtype": args.dtype,
                    "iteration": state["n_iter"],
                    "pairs": len(steps),
                    "rel_error_two_loop": error["two_loop"],
                    "rel_error_device": error["device"],
                    "device": _device_name(),
                }
            )
            print(
                f"{pde:12s} iteration {state['n_iter']:4d} pairs {len(steps):3d}  direction's "
                f"relative error: two-loop {error['two_loop']:.2e}, device {error['device']:.2e}",
                flush=True,
            )
    return rows


def _seeds(text: str) -> list[int]:
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(s) for s in text.split(",")]


def _one_job(pde: str, seed: int, impl: str, extra: list[str], root: Path) -> dict:
    out = root / f"{pde}_{impl}_{seed}"
    command = [
        sys.executable,
        str(ROOT / "run.py"),
        f"pde={pde}",
        f"seed={seed}",
        f"optimizer.lbfgs_impl={impl}",
        "device.threads=1",
        "progress=false",
        *extra,
        f"hydra.run.dir={out}",
    ]
    began = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - began
    record = (
        json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else {}
    )
    errors = record.get("l2_rel_error_per_round") or [math.nan]
    return {
        "pde": pde,
        "seed": seed,
        "lbfgs_impl": impl,
        "status": record.get("status"),
        "returncode": proc.returncode,
        "l2_rel_error": errors[-1],
        "l2_rel_error_per_round": errors,
        "wall_s": wall,
        "command": " ".join(["python", "run.py", *command[2:-1]]),
    }


def summarise(rows: list[dict]) -> list[dict]:
    """Per PDE: the seeds' error ratios device/torch and the report's statistics."""
    out = []
    for pde in sorted({r["pde"] for r in rows}):
        mine = [r for r in rows if r["pde"] == pde]
        failed = [
            f"{r['lbfgs_impl']} seed {r['seed']}: {r['status']}"
            for r in mine
            if r["status"] != "ok"
            or not (math.isfinite(r["l2_rel_error"]) and r["l2_rel_error"] > 0)
        ]
        by = {(r["lbfgs_impl"], r["seed"]): r["l2_rel_error"] for r in mine}
        seeds = sorted(s for impl, s in by if impl == "torch" and ("device", s) in by)
        ratios = [by[("device", s)] / by[("torch", s)] for s in seeds]
        ratios = [r for r in ratios if math.isfinite(r) and r > 0]
        gm, gsd, ci = geometric_mean_ci(ratios) if ratios else (math.nan, math.nan, None)
        logs = [math.log(r) for r in ratios]
        out.append(
            {
                "pde": pde,
                "pairs": len(ratios),
                "failed_runs": failed,
                "ratios": ratios,
                "geometric_mean_ratio": gm,
                "geometric_sd": gsd,
                "ci95": list(ci) if ci else None,
                "device_lower": sum(r < 1 for r in ratios),
                "wilcoxon_p": wilcoxon_p(logs) if len(logs) > 1 else math.nan,
                # the bar for the default: no run failed, the geometric mean within [0.8, 1.25]
                # and its interval holding 1 (no difference found; not a proof of equivalence,
                # which would need the whole interval within [0.8, 1.25])
                "within_0.8_1.25_and_ci_holds_1": bool(
                    not failed and ci and 0.8 <= gm <= 1.25 and ci[0] <= 1 <= ci[1]
                ),
                "ci_within_0.8_1.25": bool(ci and 0.8 <= ci[0] and ci[1] <= 1.25),
            }
        )
    return out


def _earlier_rows(path: str | None, extra: list[str], pdes: list[str]) -> list[dict]:
    """The rows of ``pdes`` in an earlier ``seeds`` result, refused where it is not one or
    its overrides differ. Each row keeps its day (and its commit where it has one); a failed
    run stays in the summary (its seed is not run again)."""
    if path is None:
        return []
    earlier = json.loads(Path(path).read_text())
    rows = earlier.get("rows") if isinstance(earlier, dict) else None
    if "summary" not in earlier or not rows or not all("seed" in row for row in rows):
        raise SystemExit(f"--with {path}: not the --json of a `seeds` run")
    if earlier.get("extra_overrides") != extra:
        raise SystemExit(
            f"--with {path}: its runs had the overrides {earlier.get('extra_overrides')}, "
            f"these have {extra}: pairs of different jobs cannot be pooled"
        )
    return [{"date": earlier.get("date"), **row} for row in rows if row["pde"] in pdes]


def _commit() -> str | None:
    """The commit of the code that runs (``+`` where the tree differs from it)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD"]).returncode
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+" if dirty else "")


def seeds(args, extra: list[str]) -> tuple[list[dict], list[dict]]:
    earlier = _earlier_rows(args.with_, extra, args.pdes.split(","))
    commit = _commit()
    done = {(r["pde"], r["seed"], r["lbfgs_impl"]) for r in earlier}
    jobs = [
        (pde, seed, impl)
        for seed in _seeds(args.seeds)
        for pde in args.pdes.split(",")
        for impl in IMPLS
        if (pde, seed, impl) not in done
    ]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.parallel) as pool:
        futures = [pool.submit(_one_job, *job, extra, Path(tmp)) for job in jobs]
        rows = []
        for future in futures:
            row = future.result()
            row["device"] = f"cpu ({platform.machine()}, 1 thread)"
            row["date"], row["commit"] = time.strftime("%Y-%m-%d"), commit
            rows.append(row)
            print(
                f"{row['pde']:12s} seed {row['seed']} {row['lbfgs_impl']:7s} "
                f"{row['status']} error {row['l2_rel_error']:.4e} ({row['wall_s']:.0f} s)",
                flush=True,
            )
    rows = earlier + rows
    summary = summarise(rows)
    for s in summary:
        ci = s["ci95"] or [math.nan, math.nan]
        print(
            f"{s['pde']}: {s['pairs']} pairs, device/torch geometric mean "
            f"{s['geometric_mean_ratio']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}], device lower on "
            f"{s['device_lower']}, Wilcoxon p {s['wilcoxon_p']:.3f}"
            + (f"; FAILED: {', '.join(s['failed_runs'])}" if s["failed_runs"] else "")
        )
    return rows, summary


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["curves", "seeds", "directions"])
    parser.add_argument("--pdes", default=None)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--seeds", default="0-7")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--json", default=None)
    parser.add_argument("--with", dest="with_", default=None, metavar="EARLIER.json")
    args = parser.parse_args(argv)
    if args.with_ and args.what != "seeds":
        parser.error("--with pools the rows of an earlier `seeds` run: `seeds` only")
    began = time.strftime("%Y-%m-%d")
    if args.what != "seeds":  # in this process (seeds: one thread per run)
        torch.set_num_threads(int(os.environ.get("THREADS", torch.get_num_threads())))
    if args.what == "curves":
        args.pdes = args.pdes or "burgers,allen_cahn,laplace"
        result = {"date": began, "extra_overrides": extra, "rows": curves(args, extra)}
    elif args.what == "directions":
        args.pdes = args.pdes or "burgers,allen_cahn"
        result = {"date": began, "extra_overrides": extra, "rows": directions(args, extra)}
    else:
        args.pdes = args.pdes or "burgers,allen_cahn"
        rows, summary = seeds(args, extra)
        result = {
            "date": began,
            "pooled_with": args.with_,  # an earlier result whose rows are in these
            "extra_overrides": extra,
            "rows": rows,
            "summary": summary,
        }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
