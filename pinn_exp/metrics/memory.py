"""Peak memory and time per phase.

GPU memory is ``torch.cuda.max_memory_allocated`` (tensors allocated by PyTorch, not the
caching allocator's reserve), reset at the start of each phase, in MiB. CPU memory is the
process's peak resident set size (``VmHWM``), reset at the start of each run through
``/proc/self/clear_refs`` on Linux; elsewhere it is the process's lifetime peak (``ru_maxrss``).
"""

from __future__ import annotations

import resource
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import torch

MIB = 2**20


def reset_peak_rss() -> bool:
    """Resets the process's peak RSS counter; returns False where the OS does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (since the last reset, on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MIB if sys.platform == "darwin" else rss / 1024


class PhaseMeter:
    """Accumulates wall time and peak GPU memory per phase (``train``, ``sampling``).

    Args:
        device: the run's device; GPU memory is measured only on CUDA.
    """

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.time_s: dict[str, float] = defaultdict(float)
        self.peak_mb: dict[str, float] = defaultdict(float)
        #: the caching allocator's peak reserve per phase (``max_memory_reserved``)
        self.reserved_mb: dict[str, float] = defaultdict(float)
        self.last_peak_mb: float | None = None  # peak of the most recent phase block
        self.current: str | None = None

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    @contextmanager
    def phase(self, name: str):
        """Times the block and records its peak GPU memory under ``name``."""
        self._sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        self.current = name
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.time_s[name] += time.perf_counter() - start
            if self.cuda:
                peak = torch.cuda.max_memory_allocated(self.device) / MIB
                self.peak_mb[name] = max(self.peak_mb[name], peak)
                self.last_peak_mb = peak
                reserved = torch.cuda.max_memory_reserved(self.device) / MIB
                self.reserved_mb[name] = max(self.reserved_mb[name], reserved)
            self.current = None

    def peak(self, name: str | None = None) -> float | None:
        """Peak GPU MiB of one phase, or of all phases; None on the CPU."""
        return self._largest(self.peak_mb, name)

    def reserved(self, name: str | None = None) -> float | None:
        """Peak MiB the caching allocator reserved in one phase, or in all; None on the CPU."""
        return self._largest(self.reserved_mb, name)

    def _largest(self, per_phase: dict[str, float], name: str | None) -> float | None:
        if not self.cuda:
            return None
        if name is None:
            return max(per_phase.values(), default=0.0)
        return per_phase.get(name, 0.0)

    def state_dict(self) -> dict:
        return {"time_s": dict(self.time_s), "peak_mb": dict(self.peak_mb),
                "reserved_mb": dict(self.reserved_mb)}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.time_s.update(state["time_s"])
        self.peak_mb.update(state["peak_mb"])
        self.reserved_mb.update(state.get("reserved_mb", {}))


def is_allocation_failure(exc: BaseException) -> bool:
    """CUDA's and the host's out-of-memory errors (torch's and NumPy's ``MemoryError``)."""
    message = str(exc)
    return isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or any(
        text in message for text in ("out of memory", "can't allocate memory")
    )
