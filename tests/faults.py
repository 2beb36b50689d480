"""Test-only PDEs that fail on purpose (fault injection); importable with PYTHONPATH=tests."""

from __future__ import annotations

import os
import signal

import torch

from pinn_exp.pdes import Burgers


def scoring(u) -> bool:
    """True when ``u``'s parameters are frozen: a residual scored, not trained on."""
    return not any(p.requires_grad for p in u.parameters())


class CountingBurgers(Burgers):
    """Burgers that counts the residual evaluations of training (one per optimizer step and
    L-BFGS evaluation) and calls ``fault`` on each; scoring (parameters frozen: the sampler's
    and the metrics') is neither counted nor faulted."""

    def __init__(self, dim=None):
        super().__init__(dim)
        self.calls = 0

    def residual(self, u, x, laplacian):
        r = super().residual(u, x, laplacian)
        if scoring(u):
            return r
        self.calls += 1
        return self.fault(r)

    def fault(self, r):
        return r


class NanBurgers(CountingBurgers):
    """Burgers whose residual turns NaN from its ``NAN_AT``-th evaluation on."""

    NAN_AT = 25

    def fault(self, r):
        return r * float("nan") if self.calls >= self.NAN_AT else r


class OomBurgers(Burgers):
    """Burgers that raises CUDA's out-of-memory error when more than 20,000 points are scored
    in one pass: RAD's unchunked dense set (the metrics score in chunks of 4,096)."""

    def residual(self, u, x, laplacian):
        if scoring(u) and len(x) > 20_000:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return super().residual(u, x, laplacian)


class KilledBurgers(CountingBurgers):
    """Burgers whose process is killed (SIGKILL) at its N-th residual evaluation, N the value
    of the environment variable ``PINN_EXP_KILL``, and plain Burgers where it is not set: the
    killed run and its resumption then have the same config."""

    def fault(self, r):
        kill_at = int(os.environ.get("PINN_EXP_KILL") or 0)
        if kill_at and self.calls >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return r


class ReadyBurgers(CountingBurgers):
    """Burgers that creates the file named by ``PINN_EXP_READY`` at its ``READY_AT``-th
    residual evaluation: a test waits for it to know that training is under way."""

    READY_AT = 120

    def fault(self, r):
        if self.calls == self.READY_AT and os.environ.get("PINN_EXP_READY"):
            open(os.environ["PINN_EXP_READY"], "w").close()
        return r


class MemoryBurgers(CountingBurgers):
    """Burgers whose 5th residual evaluation fails as NumPy and torch do when the host has no
    memory left (``MemoryError``)."""

    def fault(self, r):
        if self.calls == 5:
            raise MemoryError("Unable to allocate 74.5 GiB for an array")
        return r


class TermOnWriteBurgers(Burgers):
    """Burgers whose process gets SIGTERM when its run's files are written (the plots ask for
    its coordinate names): a signal after training, while the files are written."""

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        os.kill(os.getpid(), signal.SIGTERM)
        return ("x", "t")


class NoisyBurgers(Burgers):
    """Burgers whose training residual carries noise from torch's global generator: the
    batched loss of an ensemble cannot equal each member's own, so the batched launcher runs
    its jobs one after the other."""

    def residual(self, u, x, laplacian):
        r = super().residual(u, x, laplacian)
        return r if scoring(u) else r + 1e-3 * torch.rand_like(r)
