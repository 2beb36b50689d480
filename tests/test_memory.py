"""Per-phase memory: CPU peaks reset at each phase (VmHWM through /proc/self/clear_refs),
counted from the run's starting RSS; GPU reserve growth per phase (with a fake CUDA API)."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pytest
import torch

from pinn_exp import runner
from pinn_exp.device import retain_cpu_memory
from pinn_exp.factory import build
from pinn_exp.metrics import memory
from pinn_exp.metrics.memory import MIB
from pinn_exp.metrics.phases import PhaseMeter

ALLOCATED_MB = 200


def _touch(mb: int) -> mmap.mmap:
    """``mb`` MiB of anonymous memory, every page written (resident). An mmap of its own, so
    that closing it returns the pages to the OS whatever malloc keeps (``retain_cpu_memory``)."""
    block = mmap.mmap(-1, mb * MIB)
    np.frombuffer(block, dtype=np.uint8)[:] = 1
    return block


def _clear_refs_unavailable() -> str | None:
    """Why VmHWM cannot be reset here, or None where it can."""
    status = memory._status_mb("VmHWM", "VmRSS")
    if status is None:
        return "no /proc/self/status (not Linux): only the lifetime peak (ru_maxrss) exists"
    _touch(64).close()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError as exc:
        return f"writing 5 to /proc/self/clear_refs is refused: {exc}"
    status = memory._status_mb("VmHWM", "VmRSS")
    if status["VmHWM"] > status["VmRSS"] + 32:
        return "the kernel ignores /proc/self/clear_refs: VmHWM did not drop after a reset"
    return None


UNAVAILABLE = _clear_refs_unavailable()
needs_clear_refs = pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))


@needs_clear_refs
def test_a_phase_peak_is_its_own_and_counted_from_the_run_start():
    assert memory.reset_peak_rss()
    start = memory.HWM.start_mb
    meter = PhaseMeter(torch.device("cpu"))
    with meter.phase("alloc"):
        block = _touch(ALLOCATED_MB)
        block.close()
    with meter.phase("idle"):  # allocates nothing: its peak is the RSS after the free
        pass
    alloc, idle = meter.cpu_increase("alloc"), meter.cpu_increase("idle")
    assert abs(alloc - ALLOCATED_MB) < 0.1 * ALLOCATED_MB, alloc
    assert abs(idle) < 10, idle  # without the reset it would be the 200 MiB of "alloc"
    assert meter.last_cpu_increase_mb == idle
    # the run's peak keeps the phase's peak across the reset that followed it
    assert memory.peak_rss_mb() - start == pytest.approx(alloc, abs=5)
    assert memory.HWM.increase_mb() == pytest.approx(alloc, abs=5)
    assert memory.HWM.method == memory.CLEAR_REFS
    fields = meter.record_fields()
    assert fields["peak_cpu_rss_increase_mb_setup"] is not None
    assert fields["peak_gpu_mem_mb_evaluation"] is None  # no GPU figures on the CPU


@needs_clear_refs
def test_the_largest_occurrence_of_a_phase_is_kept():
    memory.reset_peak_rss()
    meter = PhaseMeter(torch.device("cpu"))
    for mb in (100, 20):
        with meter.phase("sampling"):
            _touch(mb).close()
        assert abs(meter.last_cpu_increase_mb - mb) < 0.1 * mb + 5
    assert abs(meter.cpu_increase("sampling") - 100) < 15
    assert meter.cpu_increase("train") is None  # never ran


@needs_clear_refs
@pytest.mark.skipif(memory._MALLOC_TRIM is None, reason="malloc is not glibc's: no malloc_trim")
def test_memory_an_earlier_phase_freed_into_the_heap_is_not_carried():
    assert retain_cpu_memory()  # freed blocks stay in the heap (the CPU default of a run)
    memory.reset_peak_rss()
    assert memory.HWM.label == "clear_refs+malloc_trim"
    meter = PhaseMeter(torch.device("cpu"))
    with meter.phase("train"):
        x = torch.ones(ALLOCATED_MB * MIB // 4)  # float32: 200 MiB from malloc's heap
        del x
    with meter.phase("sampling"):
        pass
    assert abs(meter.cpu_increase("train") - ALLOCATED_MB) < 0.1 * ALLOCATED_MB
    assert abs(meter.cpu_increase("sampling")) < 10  # the heap was trimmed at its start


def test_a_refused_reset_leaves_per_phase_figures_empty(monkeypatch, tmp_path):
    monkeypatch.setattr(memory, "_CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    assert not memory.reset_peak_rss()
    assert memory.HWM.method in (memory.LIFETIME_VMHWM, memory.LIFETIME_RU_MAXRSS)
    assert memory.HWM.reason
    meter = PhaseMeter(torch.device("cpu"))
    with meter.phase("train"):
        pass
    assert meter.cpu_increase("train") is None and memory.HWM.increase_mb() is None
    assert memory.peak_rss_mb() > 0  # the lifetime peak is still known


@needs_clear_refs
def test_a_reset_without_effect_is_detected(monkeypatch, tmp_path):
    ignored = tmp_path / "clear_refs"  # writable, but writing it resets nothing
    monkeypatch.setattr(memory, "_CLEAR_REFS", ignored)
    Path("/proc/self/clear_refs").write_text("5")  # a real reset: VmHWM is the RSS now
    _touch(64).close()  # VmHWM is now 64 MiB above the RSS
    assert not memory.reset_peak_rss()
    assert memory.HWM.method == memory.LIFETIME_VMHWM
    assert "stayed" in memory.HWM.reason


class FakeCuda:
    """The torch.cuda memory functions the meter uses, over a scripted reserve (bytes)."""

    def __init__(self):
        self.reserved = 0  # the caching allocator's reserve now
        self.max_reserved = 0
        self.allocated = 0
        self.max_allocated = 0

    def synchronize(self, device):
        pass

    def reset_peak_memory_stats(self, device):
        self.max_reserved, self.max_allocated = self.reserved, self.allocated

    def memory_reserved(self, device):
        return self.reserved

    def max_memory_reserved(self, device):
        return self.max_reserved

    def max_memory_allocated(self, device):
        return self.max_allocated

    def use(self, allocated_mb: float, reserved_mb: float):
        """A phase's work: peaks of ``allocated_mb`` and a reserve of ``reserved_mb``."""
        self.reserved = max(self.reserved, int(reserved_mb * MIB))  # the cache keeps blocks
        self.max_reserved = max(self.max_reserved, self.reserved)
        self.max_allocated = max(self.max_allocated, int(allocated_mb * MIB))


def test_gpu_reserve_growth_excludes_the_blocks_an_earlier_phase_cached():
    fake = FakeCuda()
    meter = PhaseMeter(torch.device("cuda"), cuda_api=fake)
    with meter.phase("sampling"):  # RAD's dense scoring: a large reserve, kept in the cache
        fake.use(allocated_mb=900, reserved_mb=1000)
    fake.allocated = 0
    with meter.phase("train"):  # needs 300 MiB: served from the cached blocks
        fake.use(allocated_mb=300, reserved_mb=400)
    with meter.phase("sampling"):  # the second scoring grows the reserve by 200 MiB
        fake.use(allocated_mb=1100, reserved_mb=1200)
    assert meter.reserved("train") == 1000  # the raw peak reserve carries sampling's blocks
    assert meter.reserved_growth("train") == 0
    assert meter.reserved_growth("sampling") == 1000  # the largest growth, the first scoring
    assert meter.peak("train") == 300 and meter.peak("sampling") == 1100
    assert meter.last_peak_mb == 1100
    fields = meter.record_fields()
    assert fields["peak_gpu_reserved_growth_mb_train"] == 0
    assert fields["peak_gpu_reserved_growth_mb_sampling"] == 1000
    # a resumed run keeps the figures
    again = PhaseMeter(torch.device("cuda"), cuda_api=fake)
    again.load_state_dict(meter.state_dict())
    assert again.reserved_growth("sampling") == 1000


def test_gpu_figures_are_none_on_the_cpu():
    meter = PhaseMeter(torch.device("cpu"), cuda_api=FakeCuda())
    with meter.phase("train"):
        pass
    assert meter.peak() is None and meter.reserved_growth("train") is None


@needs_clear_refs
def test_a_run_records_its_starting_rss_and_per_phase_increases(tmp_path, compose, tiny):
    record = runner.run(
        build(compose([*tiny, "sampler=rad", "sampler.n_dense=20000"])), tmp_path, progress=False
    )
    assert record["status"] == "ok" and record["cpu_peak_method"].startswith(memory.CLEAR_REFS)
    start, peak = record["cpu_rss_start_mb"], record["peak_cpu_rss_mb"]
    assert 0 < start <= peak
    assert record["peak_cpu_rss_increase_mb"] == pytest.approx(peak - start)
    phases = ["setup", "train", "sampling", "evaluation"]
    increases = [record[f"peak_cpu_rss_increase_mb_{name}"] for name in phases]
    assert all(value is not None for value in increases), increases
    assert max(increases) <= record["peak_cpu_rss_increase_mb"] + 1e-6
    assert record["peak_gpu_reserved_growth_mb_train"] is None  # CPU run
    per_round = [r["peak_cpu_rss_increase_mb_sampling"] for r in record["round_stats"]]
    assert len(per_round) == 3 and max(per_round) == increases[2]
