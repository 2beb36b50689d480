"""The phase meter: wall time and peak memory per phase of a run (``train``, ``sampling``,
``evaluation``), what the record's ``time_*`` and per-phase memory fields hold. How memory is
measured is :mod:`pinn_exp.metrics.memory`'s.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

import torch

from pinn_exp.metrics.memory import HWM, MIB, hwm_mb


class PhaseMeter:
    """Accumulates wall time and peak memory per phase (``train``, ``sampling``, ...).

    Per phase, the largest over the phase's occurrences of: on CUDA, the allocated peak
    (``peak_mb``) and the reserve's growth (``reserved_growth_mb``); on every device, where
    :data:`HWM` can reset, the CPU peak RSS minus the run's starting RSS
    (``cpu_increase_mb``). The time between the run's start and the first phase is ``setup``.

    Args:
        device: the run's device; GPU memory is measured only on CUDA.
        cuda_api: the ``torch.cuda`` functions used (tests pass a fake); default ``torch.cuda``.
    """

    def __init__(self, device: torch.device, cuda_api=None):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.api = cuda_api if cuda_api is not None else torch.cuda
        self.time_s: dict[str, float] = defaultdict(float)
        self.peak_mb: dict[str, float] = defaultdict(float)
        #: the caching allocator's peak reserve per phase (``max_memory_reserved``)
        self.reserved_mb: dict[str, float] = defaultdict(float)
        #: the reserve's growth within the phase (peak reserve minus the reserve at its start)
        self.reserved_growth_mb: dict[str, float] = defaultdict(float)
        #: peak RSS within the phase minus the run's starting RSS
        self.cpu_increase_mb: dict[str, float] = defaultdict(float)
        self.last_peak_mb: float | None = None  # GPU peak of the most recent phase block
        self.last_cpu_increase_mb: float | None = None  # CPU increase of the most recent block
        self.current: str | None = None
        self._phases_begun = 0

    def _sync(self) -> None:
        if self.cuda:
            self.api.synchronize(self.device)

    @contextmanager
    def phase(self, name: str):
        """Times the block and records its peak memory under ``name``."""
        self._sync()
        if self.cuda:
            self.api.reset_peak_memory_stats(self.device)
            reserved_start = self.api.memory_reserved(self.device)
        before = HWM.reset()
        if not self._phases_begun:
            self._add_cpu("setup", before)
        self._phases_begun += 1
        self.current = name
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.time_s[name] += time.perf_counter() - start
            if self.cuda:
                peak = self.api.max_memory_allocated(self.device) / MIB
                self.peak_mb[name] = max(self.peak_mb[name], peak)
                self.last_peak_mb = peak
                reserved = self.api.max_memory_reserved(self.device)
                self.reserved_mb[name] = max(self.reserved_mb[name], reserved / MIB)
                growth = (reserved - reserved_start) / MIB
                self.reserved_growth_mb[name] = max(self.reserved_growth_mb[name], growth)
            self.last_cpu_increase_mb = self._add_cpu(name, hwm_mb())
            self.current = None

    def _add_cpu(self, name: str, peak_mb: float) -> float | None:
        if not HWM.per_phase:
            return None
        increase = peak_mb - HWM.start_mb
        self.cpu_increase_mb[name] = max(self.cpu_increase_mb.get(name, increase), increase)
        return increase

    def peak(self, name: str | None = None) -> float | None:
        """Peak GPU MiB of one phase, or of all phases; None on the CPU."""
        return self._largest(self.peak_mb, name)

    def reserved(self, name: str | None = None) -> float | None:
        """Peak MiB the caching allocator reserved in one phase, or in all; None on the CPU."""
        return self._largest(self.reserved_mb, name)

    def reserved_growth(self, name: str) -> float | None:
        """How much the caching allocator's reserve grew within one phase (MiB, its largest
        over the phase's occurrences); None on the CPU."""
        return self._largest(self.reserved_growth_mb, name)

    def cpu_increase(self, name: str) -> float | None:
        """Peak RSS in one phase minus the run's starting RSS (MiB, the largest over the
        phase's occurrences); None where the peak cannot be reset or the phase did not run."""
        if not HWM.per_phase:
            return None
        return self.cpu_increase_mb.get(name)

    def record_fields(self) -> dict[str, float | None]:
        """The record's per-phase memory fields beyond the allocated GPU peaks: the reserve's
        growth and the CPU peak increase per phase (``pinn_exp.io.record.RunRecord``)."""
        out: dict[str, float | None] = {"peak_gpu_mem_mb_evaluation": self.peak("evaluation")}
        for name in ("train", "sampling", "evaluation"):
            out[f"peak_gpu_reserved_growth_mb_{name}"] = self.reserved_growth(name)
        for name in ("setup", "train", "sampling", "evaluation"):
            out[f"peak_cpu_rss_increase_mb_{name}"] = self.cpu_increase(name)
        return out

    def _largest(self, per_phase: dict[str, float], name: str | None) -> float | None:
        if not self.cuda:
            return None
        if name is None:
            return max(per_phase.values(), default=0.0)
        return per_phase.get(name, 0.0)

    def state_dict(self) -> dict:
        return {
            "time_s": dict(self.time_s),
            "peak_mb": dict(self.peak_mb),
            "reserved_mb": dict(self.reserved_mb),
            "reserved_growth_mb": dict(self.reserved_growth_mb),
            "cpu_increase_mb": dict(self.cpu_increase_mb),
        }

    def load_state_dict(self, state: dict) -> None:
        self.time_s.update(state["time_s"])
        self.peak_mb.update(state["peak_mb"])
        self.reserved_mb.update(state.get("reserved_mb", {}))
        self.reserved_growth_mb.update(state.get("reserved_growth_mb", {}))
        self.cpu_increase_mb.update(state.get("cpu_increase_mb", {}))
