"""Checks that a change left a run's numbers as they were: the same job at one thread, run
by this checkout and by an older commit (a ``git worktree`` of it), must give byte-equal
per-round metrics, ``history.csv`` and ``collocation.npz``.

    python benchmarks/same_numbers.py --commit 9da95f4
    python benchmarks/same_numbers.py --commit HEAD --old-tree /tmp/base -- budget=short

The job is the short job (1000 Adam + 300 L-BFGS steps, 2 rounds, seed 0, CPU, one thread)
with the overrides after ``--``. Exit status 0 when everything is equal, 1 with the
differences listed otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
JOB = [
    "optimizer.pretrain_steps=1000",
    "optimizer.lbfgs_steps=300",
    "rounds=2",
    "seed=0",
    "device=cpu",
    "device.threads=1",
    "progress=false",
]


def differences(old: Path, new: Path) -> list[str]:
    """What differs between two run folders: per-round metrics, history, points."""
    out = []
    records = [json.loads((d / "metrics.json").read_text()) for d in (old, new)]
    for key in sorted(set(records[0]) | set(records[1])):
        if key.endswith("_per_round") and records[0].get(key) != records[1].get(key):
            out.append(f"{key}: {records[0].get(key)} != {records[1].get(key)}")
    if (old / "history.csv").read_bytes() != (new / "history.csv").read_bytes():
        out.append("history.csv differs")
    with np.load(old / "collocation.npz") as a, np.load(new / "collocation.npz") as b:
        if sorted(a.files) != sorted(b.files):
            out.append(f"collocation.npz: arrays {a.files} != {b.files}")
        for name in sorted(set(a.files) & set(b.files)):
            x, y = a[name], b[name]
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                out.append(f"collocation.npz: {name} differs")
    return out


def _run(tree: Path, out: Path, extra: list[str]) -> None:
    command = [sys.executable, str(tree / "run.py"), *JOB, *extra, f"hydra.run.dir={out}"]
    proc = subprocess.run(command, cwd=tree, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{tree}: exit {proc.returncode}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commit", default="HEAD", help="the code before the change")
    parser.add_argument("--old-tree", default=None, help="a checkout of it (else a worktree)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tree = Path(args.old_tree) if args.old_tree else tmp / "old_tree"
        if not args.old_tree:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.commit],
                check=True,
                capture_output=True,
            )
        try:
            _run(tree, tmp / "old", extra)
            _run(ROOT, tmp / "new", extra)
        finally:
            if not args.old_tree:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    capture_output=True,
                )
        found = differences(tmp / "old", tmp / "new")
    print("\n".join(found) if found else "equal: per-round metrics, history.csv, collocation.npz")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
