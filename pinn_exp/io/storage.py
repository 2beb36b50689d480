"""Atomic writers for a run's files. Every file is written to a temporary name in the same
folder and renamed, so a job killed while writing never leaves a corrupt file."""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

METRICS = "metrics.json"
HISTORY = "history.csv"
COLLOCATION = "collocation.npz"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Calls ``write(file)`` on a temporary file beside ``path``, then renames it to ``path``.

    The file gets the permissions of any file the user creates (0666 less the umask), not
    the 0600 of a temporary file, so colleagues on a shared cluster can read the results.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _clean(value):
    """JSON-safe: NaN and infinities become None, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, record: dict) -> None:
    """Writes ``record`` as indented JSON, atomically."""
    text = json.dumps(_clean(record), indent=2, sort_keys=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def write_json_in_place(path: Path, record: dict) -> None:
    """Writes ``record`` over ``path`` without a temporary file: the last resort where the
    disk is full (truncating the old file frees its blocks first)."""
    text = json.dumps(_clean(record), indent=2) + "\n"
    with open(path, "w") as f:
        f.write(text)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def write_history(path: Path, rows: list[dict]) -> None:
    """One row per optimizer step: round, step, phase, loss and its components."""
    columns = ["round", "step", "phase", "loss"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=columns)
    frame = frame[columns + sorted(c for c in frame.columns if c not in columns)]
    atomic_write(path, lambda f: f.write(frame.to_csv(index=False).encode()))


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Named arrays as a compressed ``.npz`` (the points after each round, ``round_0``,
    ``round_1``, ...; the residual maps)."""
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def save_checkpoint(path: Path, snapshot: dict) -> None:
    """Writes ``snapshot`` atomically. It is serialised in memory first: torch's writer turns
    a failed write (a full disk, a quota) into an opaque ``RuntimeError``, while the file's
    own write raises the ``OSError`` that says it (and that the run reports as such)."""
    buffer = io.BytesIO()
    torch.save(snapshot, buffer)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def load_checkpoint(path: Path, device: torch.device) -> dict:
    return torch.load(path, map_location=device, weights_only=False)
