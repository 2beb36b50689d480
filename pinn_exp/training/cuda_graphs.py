"""One optimizer step replayed as a CUDA graph (``optimizer.cuda_graphs=true``).

A PINN step on a GPU is a few hundred small kernels; launched one by one from Python they
keep the GPU idle most of the time. A CUDA graph records the step's kernels once and replays
them with one launch. What the step reads and writes must keep its storage from one step to
the next: the collocation points of the stage, the parameters (updated in place by the
optimizers), Adam's state (``capturable=True``) and the device L-BFGS's state
(:class:`~pinn_exp.training.lbfgs.DeviceLBFGS`); and the step must not read a value on the
host, which is why only the device L-BFGS is captured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import torch

log = logging.getLogger(__name__)

T = TypeVar("T")

#: eager steps (on a side stream, as CUDA graphs require) before the capture
WARMUP = 3


class CapturedStep:
    """Calls ``step`` eagerly ``warmup`` times, then captures it and replays the graph.

    Every call performs exactly one step (the capture itself runs nothing; it is replayed at
    once). The returned tensors are the graph's static outputs: copy them before the next
    call. If the capture fails (the step reads a value on the host, or the method cannot be
    captured), the failure is logged and every later call runs ``step`` eagerly.

    Args:
        step: one optimizer step; returns tensors (the loss terms, ...).
        device: the step's device; on anything but CUDA the step always runs eagerly.
        warmup: eager calls before the capture.
    """

    def __init__(self, step: Callable[[], T], device: torch.device, warmup: int = WARMUP):
        self.step, self.device, self.warmup = step, torch.device(device), warmup
        self.enabled = self.device.type == "cuda"
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.out: T | None = None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self) -> T:
        self.calls += 1
        if self.graph is not None:
            self.graph.replay()
            return self.out
        if not self.enabled:
            return self.step()
        current = torch.cuda.current_stream(self.device)
        if self.calls <= self.warmup:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(current)
            with torch.cuda.stream(side):
                out = self.step()
            current.wait_stream(side)
            return out
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                out = self.step()
        except RuntimeError as exc:
            log.warning("CUDA graph capture failed, running eagerly: %s", exc)
            self.enabled = False
            torch.cuda.synchronize(self.device)
            return self.step()
        self.graph, self.out = graph, out
        graph.replay()
        return out
