"""Peak memory (a phase's figures are kept by :mod:`pinn_exp.metrics.phases`) and what an
allocation failure is.

GPU memory is ``torch.cuda.max_memory_allocated`` (tensors allocated by PyTorch, not the
caching allocator's reserve), reset at the start of each phase, in MiB. The reserve is
reported as its growth within the phase (``max_memory_reserved`` minus the reserve at the
phase's start): the blocks an earlier phase left in the cache are not the phase's own.

CPU memory is the process's resident set size. A run records the RSS at its start and, per
phase, the peak RSS (``VmHWM``) during the phase minus that starting RSS: what the process held
before the run (the interpreter, torch, the config) is not counted. Linux resets ``VmHWM`` to
the current RSS when ``5`` is written to ``/proc/self/clear_refs``; each phase starts with such
a reset, and the run's peak is the largest of the phases' peaks and of the gaps between them.
Before each reset the heap's free pages are returned to the OS (glibc's ``malloc_trim``), as
``device.retain_cpu_memory`` keeps them resident: otherwise a phase's peak would include what
an earlier phase freed.
Where the reset is refused or has no effect (``VmHWM`` does not drop), or where there is no
``/proc`` (macOS: ``ru_maxrss``), only the process's lifetime peak is known: the record's
``cpu_peak_method`` says which, and the per-phase figures are then left empty.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import resource
import sys
from pathlib import Path

import torch

log = logging.getLogger(__name__)

MIB = 2**20

#: ``cpu_peak_method``: VmHWM reset at the run's start and at each phase's start
CLEAR_REFS = "clear_refs"
#: ``/proc`` is there but the reset was refused or had no effect: the process's lifetime peak
LIFETIME_VMHWM = "lifetime_vmhwm"
#: no ``/proc`` (macOS, BSD): ``getrusage``'s lifetime peak
LIFETIME_RU_MAXRSS = "lifetime_ru_maxrss"

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
#: VmHWM may exceed VmRSS by this much right after a reset (pages touched in between)
_RESET_SLACK_MB = 1.0


def _status_mb(*keys: str) -> dict[str, float] | None:
    """The named ``kB`` fields of ``/proc/self/status`` in MiB, read at once; None without it."""
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in keys:
            out[name] = int(value.split()[0]) / 1024
    return out if len(out) == len(keys) else None


def rss_mb() -> float | None:
    """The process's resident set size now, in MiB; None without ``/proc``."""
    status = _status_mb("VmRSS")
    return status["VmRSS"] if status else None


def _glibc_malloc_trim():
    """glibc's ``malloc_trim``, or None where the process's malloc is not glibc's."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        process, glibc = ctypes.CDLL(None), ctypes.CDLL("libc.so.6")
        in_use, glibc_malloc = (
            ctypes.cast(lib.malloc, ctypes.c_void_p).value for lib in (process, glibc)
        )
        trim = glibc.malloc_trim
    except (OSError, AttributeError):
        return None
    if in_use != glibc_malloc:  # jemalloc or tcmalloc preloaded
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_MALLOC_TRIM = _glibc_malloc_trim()


def trim_heap() -> bool:
    """Returns the heap's free pages to the OS (glibc's ``malloc_trim(0)``); False where the
    allocator is not glibc's.

    ``device.retain_cpu_memory`` keeps freed blocks resident, so without a trim a phase's peak
    RSS would hold what earlier phases freed. It costs time in proportion to the memory freed
    (docs/results.md), once per phase, and the next phase faults in again the pages it needs.
    """
    return bool(_MALLOC_TRIM is not None and _MALLOC_TRIM(0) >= 0)


def hwm_mb() -> float:
    """The process's peak RSS since the last reset (``VmHWM``), or its lifetime peak, in MiB."""
    status = _status_mb("VmHWM")
    if status:
        return status["VmHWM"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MIB if sys.platform == "darwin" else rss / 1024


class HighWaterMark:
    """The process's peak RSS over a run whose phases each reset ``VmHWM``.

    ``VmHWM`` belongs to the process, so there is one of these per process (:data:`HWM`): a
    reset for a phase folds the peak so far into the run's peak before clearing it.
    """

    def __init__(self) -> None:
        self.method: str | None = None  # one of CLEAR_REFS, LIFETIME_*; None before a run
        self.reason: str | None = None  # why the reset is not available
        self.start_mb: float | None = None  # RSS at the run's start
        self._folded_mb = 0.0  # the largest peak before the last reset, since the run's start
        self._warned = False  # the reset's failure is logged once per process
        self.trimmed = False  # the heap's free pages go back to the OS at each reset

    def start(self) -> bool:
        """Starts a run: resets ``VmHWM`` and records the RSS now. Returns True where the
        reset works."""
        self.method, self.reason = CLEAR_REFS, None
        self.trimmed = _MALLOC_TRIM is not None
        if not _STATUS.exists():  # no /proc (macOS, BSD): the lifetime peak, without a warning
            self.method, self.reason = LIFETIME_RU_MAXRSS, "no /proc/self/status"
            self._folded_mb, self.start_mb = 0.0, None
            return False
        self.reset()
        self._folded_mb = 0.0
        self.start_mb = rss_mb()
        if self.start_mb is None:
            self.method, self.reason = LIFETIME_RU_MAXRSS, "no /proc/self/status"
        return self.method == CLEAR_REFS

    def reset(self) -> float:
        """Folds the peak so far into the run's peak and resets ``VmHWM`` to the current RSS.

        Returns:
            The peak RSS (MiB) since the previous reset.
        """
        before = hwm_mb()
        self._folded_mb = max(self._folded_mb, before)
        if self.method != CLEAR_REFS:
            return before
        if self.trimmed:
            trim_heap()
        try:
            _CLEAR_REFS.write_text("5")
        except OSError as exc:  # a read-only /proc, a sandbox without it
            self._fail(f"writing /proc/self/clear_refs: {type(exc).__name__}: {exc}")
            return before
        after = _status_mb("VmHWM", "VmRSS")
        if after is None:
            self._fail("no VmHWM in /proc/self/status")
        elif (
            after["VmHWM"] > after["VmRSS"] + _RESET_SLACK_MB
            and after["VmHWM"] > before - _RESET_SLACK_MB
        ):
            # a reset sets VmHWM to VmRSS: one that stays at the old peak was ignored
            self._fail(
                f"VmHWM stayed at {after['VmHWM']:.0f} MiB after the reset, above "
                f"VmRSS {after['VmRSS']:.0f} MiB"
            )
        return before

    def _fail(self, reason: str) -> None:
        if self.reason is None and not self._warned:
            self._warned = True
            log.warning(
                "peak RSS cannot be reset (%s): per-phase CPU peaks are not measured, "
                "only the process's lifetime peak",
                reason,
            )
        self.method, self.reason = LIFETIME_VMHWM, reason

    def peak_mb(self) -> float:
        """The run's peak RSS so far (MiB): the lifetime peak where the reset does not work."""
        return max(self._folded_mb, hwm_mb())

    @property
    def label(self) -> str | None:
        """The record's ``cpu_peak_method``: the method, ``+malloc_trim`` where the heap's
        free pages are returned to the OS at each phase's start."""
        if self.method == CLEAR_REFS and self.trimmed:
            return f"{CLEAR_REFS}+malloc_trim"
        return self.method

    def increase_mb(self) -> float | None:
        """The run's peak RSS minus its starting RSS (MiB); None where the peak cannot be
        reset (it would include what the process held before the run)."""
        return self.peak_mb() - self.start_mb if self.per_phase else None

    @property
    def per_phase(self) -> bool:
        """True where phases' peaks are their own (the reset works and a run has started)."""
        return self.method == CLEAR_REFS and self.start_mb is not None


#: the process's one high-water mark (``VmHWM`` is per process)
HWM = HighWaterMark()


def reset_peak_rss() -> bool:
    """Starts a run's CPU memory accounting (:meth:`HighWaterMark.start`); returns False where
    the OS does not allow resetting the peak."""
    return HWM.start()


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB since :func:`reset_peak_rss` (on Linux;
    elsewhere the lifetime peak), phase resets included."""
    return HWM.peak_mb()


def is_allocation_failure(exc: BaseException) -> bool:
    """CUDA's and the host's out-of-memory errors (torch's and NumPy's ``MemoryError``)."""
    message = str(exc)
    return isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or any(
        text in message for text in ("out of memory", "can't allocate memory")
    )
