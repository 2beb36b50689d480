"""|residual| without a graph: the samplers' scorer and the metrics' uncounted one."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from pinn_exp.model import Solution
from pinn_exp.ops import Laplacian, graph_free
from pinn_exp.pdes.base import PDE

#: points per chunk when the metrics score residuals
EVAL_CHUNK = 4096


@contextmanager
def frozen(module: torch.nn.Module):
    """Parameters stop requiring grad: residuals are scored without a graph over them."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class Scorer:
    """|residual| at given points, in chunks, without a graph: the parameters are frozen and
    the derivatives are values only (:func:`pinn_exp.ops.graph_free`).

    Counts every scored point in ``n_evals``.
    """

    def __init__(self, pde: PDE, model: Solution, laplacian: Laplacian):
        self.pde, self.model, self.laplacian = pde, model, laplacian
        self.n_evals = 0

    def __call__(
        self, x: torch.Tensor, chunk_size: int | None = None, count: bool = True
    ) -> torch.Tensor:
        out = []
        with frozen(self.model), graph_free():
            for chunk in torch.split(x, chunk_size or max(len(x), 1)):
                chunk = chunk.detach().requires_grad_(True)
                residual = self.pde.residual(self.model, chunk, self.laplacian)
                out.append(residual.detach().abs())
        if count:  # the samplers' scoring; a metric's is not counted
            self.n_evals += len(x)
        return torch.cat(out)


class StepResidual:
    """The scorer of an update within a stage: at the stage's points it returns the
    |residual| that the last Adam step computed there, before its parameter update (no second
    forward pass, not counted; Daw et al.'s R3 reuses the training step's residual so); other
    points are scored by ``scorer``.

    Args:
        scorer: the run's :class:`Scorer`.
        points: the stage's current points, the tensor the update is given.
        residual: |residual| at ``points`` from the last Adam step, (N,).
    """

    def __init__(self, scorer: Scorer, points: torch.Tensor, residual: torch.Tensor):
        self.scorer, self.points, self.residual = scorer, points, residual

    def __call__(self, x: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        if x is self.points:
            return self.residual.clone()  # a captured step overwrites its outputs
        return self.scorer(x, chunk_size)
