"""The device and floating-point type of a run (the ``device`` config group)."""

from __future__ import annotations

import platform

import torch

DEVICES = ("auto", "cpu", "cuda")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class DeviceSpec:
    """Resolves ``device.name`` and ``device.dtype``; caps GPU memory where asked.

    Args:
        name: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda`` (``cuda:1`` too).
        dtype: ``float32`` or ``float64``.
        memory_limit_gb: cap on the GPU memory this process may allocate (GiB), or None.
    """

    def __init__(
        self, name: str = "auto", dtype: str = "float32", memory_limit_gb: float | None = None
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
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(name)
        self.dtype_name = dtype
        self.dtype = DTYPES[dtype]
        self.memory_limit_gb = memory_limit_gb

    def apply(self) -> None:
        """Caps GPU memory (``torch.cuda.set_per_process_memory_fraction``) where asked."""
        if self.device.type != "cuda" or self.memory_limit_gb is None:
            return
        index = self.device.index if self.device.index is not None else 0
        total = torch.cuda.get_device_properties(index).total_memory
        fraction = min(1.0, self.memory_limit_gb * 2**30 / total)
        torch.cuda.set_per_process_memory_fraction(fraction, index)

    def release(self) -> None:
        """Lifts the cap of :meth:`apply` (sweep jobs may share one process)."""
        if self.device.type == "cuda" and self.memory_limit_gb is not None:
            index = self.device.index if self.device.index is not None else 0
            torch.cuda.set_per_process_memory_fraction(1.0, index)

    @property
    def description(self) -> str:
        """A readable device name, e.g. 'NVIDIA H100 80GB HBM3' or 'cpu (x86_64, 2 threads)'."""
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"

    def __repr__(self) -> str:
        return f"DeviceSpec({self.device}, {self.dtype_name})"
