""":class:`PerMemberSyncFreeLBFGS`: one :class:`~.sync_free.SyncFreeLBFGS` per member of an
ensemble, over its slices (views) of the stacked parameters, driven as one optimizer: each
step proposes every member's trial, evaluates all of them in one batched pass, then lets each
member judge its own. Each member's update is exactly its single run's operations (bit for
bit), one member after the other; :class:`~.batched.BatchedSyncFreeLBFGS` is the batched
alternative."""

from __future__ import annotations

import torch

from pinn_exp.training.lbfgs.sync_free import Evaluate, SyncFreeLBFGS


class _MemberSyncFreeLBFGS(SyncFreeLBFGS):
    """A member's sync-free L-BFGS over its slices (views) of the stacked parameters; its
    gradient is its slice of the stacked gradients."""

    def __init__(self, stacked: list[torch.Tensor], index: int, evaluate, **kwargs):
        with torch.no_grad():
            views = [p[index] for p in stacked]
        super().__init__(views, evaluate, **kwargs)
        self.stacked, self.index = stacked, index

    def flat_grad(self) -> torch.Tensor:
        return torch.cat([p.grad[self.index].reshape(-1) for p in self.stacked])


class PerMemberSyncFreeLBFGS:
    """The members' sync-free L-BFGS as one optimizer, with the interface of
    :class:`~.batched.BatchedSyncFreeLBFGS`.

    Args:
        stacked: the stacked parameters, each with leading dimension S.
        evaluate: computes the loss terms [S, T] (detached) and the stacked gradients.
        **kwargs: :class:`SyncFreeLBFGS`'s arguments, for every member.
    """

    def __init__(self, stacked: list[torch.Tensor], evaluate: Evaluate, **kwargs):
        size = len(stacked[0])
        self.parts = [_MemberSyncFreeLBFGS(stacked, i, None, **kwargs) for i in range(size)]
        self.evaluate = evaluate

    def start(self) -> torch.Tensor:
        """Evaluates every member's starting point; returns their loss terms, [S, T]."""
        for part in self.parts:
            part.start_point()
        terms = self.evaluate()
        for i, part in enumerate(self.parts):
            part.start_terms(terms[i])
        return terms

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One trial per member: (the loss terms at the accepted points [S, T], which trials
        were accepted [S])."""
        trials = [part.propose() for part in self.parts]
        terms = self.evaluate()
        ok = [
            part.accept(x_trial, active, terms[i])
            for i, (part, (x_trial, active)) in enumerate(zip(self.parts, trials))
        ]
        return torch.stack([part.terms for part in self.parts]), torch.stack(ok)

    def converged(self) -> torch.Tensor:
        """Per member, [S]: the gradient tolerance is met."""
        return torch.stack([part.converged() for part in self.parts])

    def freeze(self, member: int) -> None:
        """Member ``member``'s L-BFGS does nothing from now on."""
        self.parts[member].freeze()

    def finish(self) -> None:
        """Leaves every member's parameters at its last accepted point."""
        for part in self.parts:
            part.finish()
