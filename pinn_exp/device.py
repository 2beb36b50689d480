"""The device and floating-point type of a run (the ``device`` config group)."""

from __future__ import annotations

import ctypes
import os
import platform
import warnings

import torch

DEVICES = ("auto", "cpu", "cuda")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


# glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def retain_cpu_memory() -> bool:
    """Makes glibc's malloc keep freed memory in the heap rather than unmapping it.

    By default glibc serves each block above 32 MiB with its own ``mmap`` and unmaps it on
    free, so every large tensor of a step (the forward Laplacian's (N, d, width) Jacobians) is
    page-faulted and zeroed again at every step, which made the forward Laplacian's step
    more than twice as slow on a CPU (docs/results.md). With ``mmap`` off for the heap and a
    2 GiB trim threshold the blocks are reused. The price is resident memory: freed blocks
    stay in the heap and fragment it (docs/performance.md). The setting is process-wide and
    stays for the life of the process. Returns False, changing nothing, where the C library
    is not glibc (musl, macOS, Windows) or another allocator is preloaded.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        process, glibc = ctypes.CDLL(None), ctypes.CDLL("libc.so.6")
        mallopt = glibc.mallopt
        # the malloc the process really calls (an LD_PRELOAD-ed one comes first)
        in_use, glibc_malloc = (
            ctypes.cast(lib.malloc, ctypes.c_void_p).value for lib in (process, glibc)
        )
    except (OSError, AttributeError):
        return False
    if in_use != glibc_malloc:
        return False  # jemalloc or tcmalloc preloaded: glibc's options would change nothing
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def available_cpus() -> int | None:
    """The CPUs this process may run on: its affinity mask where the system has one (a SLURM
    job's or a container's share of the node), else the machine's count; None where neither
    can be told."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count()


def check_threads(threads: int | None) -> None:
    """Raises ValueError, in one line, for a ``device.threads`` below 1 or above the CPUs
    this process may use (a sweep checks every job's before its first job runs)."""
    if threads is not None and (isinstance(threads, bool) or threads < 1):
        raise ValueError(
            f"device.threads={threads!r} is not allowed; it must be >= 1, or null for "
            "SLURM's cpus-per-task or torch's own choice"
        )
    cpus = available_cpus()
    if threads is not None and cpus is not None and threads > cpus:
        # torch starts that many OpenMP threads: far above the CPUs it crashes or hangs
        raise ValueError(
            f"device.threads={threads!r} is not allowed here: this process may use {cpus} "
            f"CPUs; it must be between 1 and {cpus}, or null for SLURM's cpus-per-task or "
            "torch's own choice"
        )


def default_threads() -> int:
    """The CPU threads a run uses when ``device.threads`` is null: in a SLURM job given
    ``--cpus-per-task`` that number (``SLURM_CPUS_PER_TASK``: without it torch would start a
    thread per core of the node, cores that other jobs were given); elsewhere torch's
    setting, which starts from ``OMP_NUM_THREADS`` (set by joblib for its workers to the
    job's share of the cores, cores // n_jobs) and otherwise is the number of cores."""
    given = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    return torch.get_num_threads()


class DeviceSpec:
    """Resolves ``device.name``, ``device.dtype`` and ``device.threads``; caps GPU memory where
    asked.

    Args:
        name: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda`` (``cuda:1`` too).
        dtype: ``float32`` or ``float64``.
        memory_limit_gb: cap on the GPU memory this process may allocate (GiB), or None.
        retain_cpu_memory: on a CPU, keep freed memory in the process's heap so that large
            tensors are not page-faulted anew at every step (:func:`retain_cpu_memory`).
        threads: torch's CPU threads for the run (``torch.set_num_threads``), or None for
            :func:`default_threads`. Results are bit-identical for a given number of threads,
            but differ (in the last digits, then in the trajectory) between numbers.
    """

    def __init__(
        self,
        name: str = "auto",
        dtype: str = "float32",
        memory_limit_gb: float | None = None,
        retain_cpu_memory: bool = True,
        threads: int | None = None,
    ):
        if name.split(":")[0] not in DEVICES:
            raise ValueError(f"device.name={name!r} is not allowed; choose one of {DEVICES}")
        if dtype not in DTYPES:
            raise ValueError(
                f"device.dtype={dtype!r} is not allowed; choose one of {tuple(DTYPES)}"
            )
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"device={name!r} is not allowed here: no CUDA device is available "
                f"(torch {torch.__version__}); use device=auto or device=cpu"
            )
        if memory_limit_gb is not None and memory_limit_gb <= 0:
            raise ValueError(
                f"device.memory_limit_gb={memory_limit_gb!r} is not allowed; it must be > 0 or null"
            )
        check_threads(threads)
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        if memory_limit_gb is not None and not name.startswith("cuda"):
            warnings.warn(
                f"device.memory_limit_gb={memory_limit_gb} applies to CUDA only; it has no "
                f"effect on device {name!r}",
                stacklevel=2,
            )
        self.device = torch.device(name)
        self.dtype_name = dtype
        self.dtype = DTYPES[dtype]
        self.memory_limit_gb = memory_limit_gb
        self.retain_cpu_memory = bool(retain_cpu_memory)
        #: the CPU threads the run uses (set by :meth:`apply`)
        self.threads = int(threads) if threads is not None else default_threads()
        self._threads_before: int | None = None

    def apply(self) -> None:
        """Sets torch's CPU threads to :attr:`threads`; caps GPU memory
        (``torch.cuda.set_per_process_memory_fraction``) where asked; on a CPU, keeps freed
        memory in the heap where asked (:func:`retain_cpu_memory`)."""
        self._threads_before = torch.get_num_threads()
        if self._threads_before != self.threads:
            torch.set_num_threads(self.threads)
        if self.device.type == "cpu" and self.retain_cpu_memory:
            retain_cpu_memory()
        if self.device.type != "cuda" or self.memory_limit_gb is None:
            return
        index = self.device.index if self.device.index is not None else 0
        total = torch.cuda.get_device_properties(index).total_memory
        fraction = min(1.0, self.memory_limit_gb * 2**30 / total)
        torch.cuda.set_per_process_memory_fraction(fraction, index)

    def release(self) -> None:
        """Undoes :meth:`apply`: the threads and the GPU cap (sweep jobs may share one
        process)."""
        if self._threads_before is not None and self._threads_before != self.threads:
            torch.set_num_threads(self._threads_before)
        self._threads_before = None
        if self.device.type == "cuda" and self.memory_limit_gb is not None:
            index = self.device.index if self.device.index is not None else 0
            torch.cuda.set_per_process_memory_fraction(1.0, index)

    @property
    def description(self) -> str:
        """A readable device name, the GPU's name, or e.g. 'cpu (x86_64, 2 threads)'."""
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        threads = f"{self.threads} thread" + ("s" if self.threads != 1 else "")
        return f"cpu ({platform.machine()}, {threads})"

    def __repr__(self) -> str:
        return f"DeviceSpec({self.device}, {self.dtype_name})"
