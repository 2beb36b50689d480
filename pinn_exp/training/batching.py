"""What decides whether runs can be trained as one ensemble (:func:`unbatchable_reason`), and
one member's loss in the form that ``torch.func.functional_call`` and ``vmap`` batch
(:class:`MemberLoss`); :class:`~pinn_exp.training.ensemble.EnsembleTrainer` uses both."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from pinn_exp.training.trainer import RunParts, Trainer

#: relative difference allowed between a member's batched loss terms and its own, checked
#: once before training
CHECK_RTOL = {torch.float64: 1e-10, torch.float32: 1e-4}


class Unbatchable(ValueError):
    """The members cannot be trained as one; the message says why."""


def unbatchable_reason(parts: list[RunParts]) -> str | None:
    """Why these runs (built as single runs: :class:`RunParts`) cannot share their training
    stages, or None."""
    first = parts[0]
    schedule, sampler = first.schedule, first.sampler
    if schedule.lbfgs_steps and schedule.lbfgs_impl != "device":
        return (
            f"optimizer.lbfgs_impl={schedule.lbfgs_impl}: an ensemble's L-BFGS is the device "
            "one; add optimizer.lbfgs_impl=device to batch these jobs, another optimizer whose "
            "errors were not shown to be torch's (docs/performance.md)"
        )
    if sampler.period:
        return f"sampler {sampler.name} updates within a stage (sampler.period)"
    if sampler.single_stage:
        return f"sampler {sampler.name} trains in one stage"
    if first.laplacian.method == "hutchinson":
        return "laplacian.method=hutchinson draws probes from a generator of its own"
    for part in parts[1:]:
        if (part.n_points, part.rounds, type(part.sampler), part.schedule) != (
            first.n_points,
            first.rounds,
            type(sampler),
            schedule,
        ):
            return "the jobs differ in more than their seed"
    return None


class MemberLoss(nn.Module):
    """One member's loss terms and |residual|, for ``functional_call`` under ``vmap``: the
    :meth:`Trainer.loss_and_residual` of ``trainer`` with the soft terms' points as inputs."""

    def __init__(self, trainer: Trainer):
        super().__init__()
        self.model = trainer.model
        self.pde, self.laplacian = trainer.pde, trainer.laplacian
        self.boundary, self.term_names = trainer.boundary, trainer.term_names

    def forward(self, x: torch.Tensor, *soft: torch.Tensor):
        residual = self.pde.residual(self.model, x, self.laplacian)
        terms = {"loss_pde": residual.square().mean()}
        for i, term in enumerate(self.boundary):
            x_b, target = soft[3 * i], soft[3 * i + 1]
            partner = soft[3 * i + 2] if term.partner is not None else None
            member = dataclasses.replace(term, x=x_b, target=target, partner=partner)
            terms[f"loss_{term.name}"] = term.weight * member.misfit(self.model).square().mean()
        terms["loss"] = sum(terms.values())
        return torch.stack([terms[name] for name in self.term_names]), residual.detach().abs()
