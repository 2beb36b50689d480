"""Several runs that differ only in their seed, trained as one (``hydra/launcher=batched``).

Each member is a full :class:`~pinn_exp.training.trainer.Trainer` built exactly as its single
run (its own initial network, generator, sampler, scorer, soft-term points, records and
checkpoints); the members' rounds (sampling, evaluation, checkpoints) run one member after the
other, and only the training stages are shared:

* the members' parameters are stacked, ``[S, ...]``, and one ``torch.func.vmap`` of
  ``functional_call`` computes every member's loss terms on its own points ``[S, N, d]``: the
  PDE's residual, the Laplacian methods and the hard constraint run unchanged, batched;
* the gradient of the sum of the members' losses is each member's own gradient (their
  parameters are disjoint), and Adam, element-wise, on the stacked tensors is each member's
  Adam;
* L-BFGS is one :class:`~pinn_exp.training.lbfgs.DeviceLBFGS` over the stacked parameters
  (a member's single run is the one with ``optimizer.lbfgs_impl=device``), around one batched
  evaluation per step: every member's update in one sequence of batched kernels whatever the
  number of members, each member's rows computed exactly as its single run's (bit for bit on
  the CPU). The default mode (``vectorize=False``) evaluates the members' losses one after the
  other, each exactly its single run's operations, so a member is its single run bit for bit;
  with ``vectorize=True`` one ``vmap`` evaluates them all (fewer, larger kernels), which
  rounds differently in the last bits, and L-BFGS amplifies that (docs/performance.md).

A member whose loss turns non-finite is recorded ``diverged`` (round, step, phase) and leaves
the ensemble; the others go on (in an L-BFGS stage its optimizer freezes it: its parameters
stay where they are).
"""

from __future__ import annotations

import logging
from contextlib import ExitStack

import torch
from torch.func import functional_call, vmap

from pinn_exp.training.batching import CHECK_RTOL, MemberLoss, Unbatchable, unbatchable_reason
from pinn_exp.training.lbfgs import DeviceLBFGS
from pinn_exp.training.progress import Progress
from pinn_exp.training.stages import Diverged, Stages
from pinn_exp.training.trainer import RunState, Trainer

log = logging.getLogger(__name__)


class EnsembleTrainer(Stages):
    """Trains ``members`` (one :class:`Trainer` each, built as their single runs) together.

    Args:
        members: the members' trainers, in the order of the jobs.
        progress: show a progress bar over the steps.
        step_hook: called as ``hook(round, step, phase)`` before each batched step.
        vectorize: one ``vmap`` over the members' losses (fewer, larger kernels: the GPU's
            gain); it rounds differently from the single run's in the last bits, which
            L-BFGS amplifies (docs/performance.md). False: the members' losses one after the
            other, each exactly its single run's operations (eager; compiled, the batched
            loss is one graph and agrees to round-off), in one backward pass. Either way one
            :class:`DeviceLBFGS` steps every member. Where ``vmap`` cannot compute the loss (a
            residual that calls ``torch.autograd.grad``, an ``autograd.Function`` without a
            vmap rule) the ensemble runs in the loop mode instead (:attr:`vectorize` says
            which ran), with a log line saying why.

    Raises:
        Unbatchable: the members cannot be trained as one (:func:`unbatchable_reason`, or the
            batched loss or gradient cannot be computed or does not equal a member's own);
            raised before anything is trained.
    """

    def __init__(
        self,
        members: list[Trainer],
        progress: bool = True,
        step_hook=None,
        vectorize: bool = False,
    ):
        reason = unbatchable_reason([m.parts for m in members])
        if reason:
            raise Unbatchable(reason)
        first = members[0]
        self.members = members
        self.schedule, self.sampler = first.schedule, first.sampler
        self.device, self.dtype = first.device, first.dtype
        self.term_names, self.rounds = first.term_names, first.rounds
        self.progress, self.step_hook, self.vectorize = progress, step_hook, vectorize
        self._graphs, self._period = first._graphs, None
        self._loss = MemberLoss(first)
        #: the batched loss, compiled once for the ensemble with ``optimizer.compile``
        self._terms_fn = (
            torch.compile(self.batched_terms) if self.schedule.compile else self.batched_terms
        )
        self._names = [
            f"model.{name}" for name, p in first.model.named_parameters() if p.requires_grad
        ]
        #: a member that diverged: index -> the exception its single run would have raised
        self.diverged: dict[int, Diverged] = {}
        self.phase = "setup"
        self.live: list[int] = list(range(len(members)))
        self._lbfgs_opt: DeviceLBFGS | None = None  # the stage's L-BFGS
        try:
            self._check()
        except Unbatchable as exc:
            if not vectorize:
                raise
            # vmap refuses what torch.func cannot transform (torch.autograd.grad inside the
            # loss, an autograd.Function without a vmap rule): the loop mode still batches it
            log.info("not vectorized (%s): the members' losses run one after the other", exc)
            self.vectorize = False
            self._check()
        for member in members:  # each member's clock (and checkpoints) keep its share
            member.time_share = 1.0 / len(members)

    # --------------------------------------------------------------------------- the batch
    def _stack(self, live: list[int]) -> list[torch.Tensor]:
        """The live members' trainable parameters, stacked into fresh leaves."""
        per_member = [
            [p for p in self.members[k].model.parameters() if p.requires_grad] for k in live
        ]
        return [
            torch.stack([ps[j].detach() for ps in per_member]).requires_grad_(True)
            for j in range(len(per_member[0]))
        ]

    def _soft(self, live: list[int]) -> list[torch.Tensor]:
        """The live members' soft-term tensors, stacked: (x, target, partner) per term."""
        out = []
        for i, term in enumerate(self.members[live[0]].boundary):
            for attr in ("x", "target", "partner"):
                if getattr(term, attr) is None:
                    out.append(torch.zeros(len(live), 1, dtype=self.dtype, device=self.device))
                    continue
                out.append(torch.stack([getattr(self.members[k].boundary[i], attr) for k in live]))
        return out

    def batched_terms(
        self, params: list[torch.Tensor], x: torch.Tensor, soft: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's loss terms (S, T) and |residual| (S, N) in one batched pass."""

        def member(flat, x_k, *soft_k):
            return functional_call(self._loss, dict(zip(self._names, flat)), (x_k, *soft_k))

        if self.vectorize:
            return vmap(member)(params, x, *soft)
        # one member after the other, each on its slices: the single run's operations exactly
        out = [member([p[i] for p in params], x[i], *(t[i] for t in soft)) for i in range(len(x))]
        return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])

    def _check(self) -> None:
        """The batched loss terms and gradients equal each member's own, at points drawn for
        the check only (no member's generator is used, no parameter or gradient is kept):
        whatever cannot be batched is found here, before anything is trained."""
        generator = torch.Generator().manual_seed(0)
        first = self.members[0]
        x = first.pde.domain.sample(min(first.n_points, 256), generator, self.device, self.dtype)
        live = self.live
        try:
            with torch.no_grad():
                params = self._stack(live)
            # the points require grad as a stage's do (prepare_stage): a residual that
            # differentiates u by autograd needs it
            points = x.expand(len(live), *x.shape).clone().requires_grad_(True)
            batched, _ = self.batched_terms(params, points, self._soft(live))
            grads = torch.autograd.grad(batched[:, 0].sum(), params)
        except Exception as exc:  # noqa: BLE001 - whatever vmap refuses is a reason
            raise Unbatchable(f"the loss cannot be batched ({type(exc).__name__}: {exc})") from None
        rtol = CHECK_RTOL.get(self.dtype, 1e-4)
        for position, (row, k) in enumerate(zip(batched.detach(), live)):
            member = self.members[k]
            own = member.loss_vector(x.clone().requires_grad_(True))
            own_grads = torch.autograd.grad(own[0], member._params)
            if not torch.allclose(row, own.detach(), rtol=rtol, atol=0.0):
                raise Unbatchable(
                    f"the batched loss differs from member {k}'s own ({row.tolist()} vs "
                    f"{own.detach().tolist()})"
                )
            gap = torch.linalg.vector_norm(
                torch.cat([(g[position] - o).reshape(-1) for g, o in zip(grads, own_grads)])
            )
            scale = torch.linalg.vector_norm(torch.cat([o.reshape(-1) for o in own_grads]))
            if not gap <= rtol * scale:
                raise Unbatchable(
                    f"the batched gradient differs from member {k}'s own (relative difference "
                    f"{float(gap / scale):.3g})"
                )

    # ----------------------------------------------------------------------- Stages' hooks
    def _terms_shape(self) -> tuple[int, ...]:
        return (len(self._stage_live), len(self.term_names))

    def _evaluate_fn(self, x: torch.Tensor, residual: bool = False):
        params, soft = self._params, self._stage_soft

        def evaluate():
            for p in params:
                p.grad = None
            terms, _ = self._terms_fn(params, x, soft)
            terms[:, 0].sum().backward(inputs=params)
            return terms.detach()

        return evaluate

    def _record(self, steps: list[int], values: torch.Tensor, round_index: int, phase: str):
        """Each member's rows; a member's first non-finite row marks it diverged."""
        rows = values.cpu().tolist()  # (steps, S, T)
        for position, k in enumerate(self._stage_live):
            if k in self.diverged:
                continue
            own = [row[position] for row in rows]
            self._append_rows(position, k, steps, own, round_index, phase)

    def _append_rows(self, position, k, steps, rows, round_index: int, phase: str) -> None:
        """Member ``k``'s history rows, one per step; its first non-finite row marks it
        diverged and ends them."""
        history = self.members[k].state.history
        for step, row in zip(steps, rows):
            history.append(
                {
                    "round": round_index,
                    "step": step,
                    "phase": phase,
                    **dict(zip(self.term_names, row)),
                }
            )
            if not all(map(_finite, row)):
                self._diverge(position, k, Diverged(round_index, step, phase))
                return

    def _diverge(self, position: int, k: int, exc: Diverged) -> None:
        self.diverged[k] = exc
        log.warning(
            "member %d (seed %s) diverged: %s; the others go on", k, self.members[k].parts.seed, exc
        )
        if self._lbfgs_opt is not None:
            self._lbfgs_opt.freeze(position)  # its L-BFGS stops moving it

    def _last_loss(self) -> float | None:
        losses = [
            self.members[k].state.history[-1]["loss"]
            for k in self._stage_live
            if k not in self.diverged and self.members[k].state.history
        ]
        return max(losses) if losses else None

    def _bar(self, steps: int, desc: str) -> Progress:
        return Progress(steps, f"{desc} ({len(self._stage_live)} members)", bar=self.progress)

    def _device_lbfgs(self, x: torch.Tensor, steps: int, stacked: bool = True) -> DeviceLBFGS:
        """The stage's L-BFGS: one :class:`DeviceLBFGS` over the stacked parameters, a
        member's diverged ones frozen."""
        optimizer = super()._device_lbfgs(x, steps, stacked=True)
        self._lbfgs_opt, self._lbfgs_done = optimizer, [0] * len(self._stage_live)
        for position, k in enumerate(self._stage_live):
            if k in self.diverged:
                optimizer.freeze(position)
        return optimizer

    def _check_start(self, terms: torch.Tensor, round_index: int) -> None:
        for position, k in enumerate(self._stage_live):
            if k not in self.diverged and not torch.isfinite(terms[position, 0]):
                self._diverge(position, k, Diverged(round_index, 0, "lbfgs"))

    def _record_lbfgs(self, values, accepted, done, round_index) -> int:
        values, accepted = values.cpu(), accepted.cpu()
        most = 0
        for position, k in enumerate(self._stage_live):
            if k in self.diverged:
                continue
            kept = values[:, position][accepted[:, position]]
            first = self._lbfgs_done[position]
            steps = range(first, first + len(kept))
            self._append_rows(position, k, steps, kept.tolist(), round_index, "lbfgs")
            self._lbfgs_done[position] += len(kept)
            most = max(most, len(kept))
        return most

    def _lbfgs_finished(self, optimizer, done: int, steps: int) -> bool:
        """No live member's L-BFGS is still running (one read on the host)."""
        running = optimizer.running().tolist()
        return not any(
            running[i] and k not in self.diverged and self._lbfgs_done[i] < steps
            for i, k in enumerate(self._stage_live)
        )

    # ------------------------------------------------------------------------------ stages
    def train_stage(self, round_index: int, adam_steps: int) -> None:
        """The live members' stage, batched; their parameters are written back after it."""
        x = self.prepare_stage()
        live = self._stage_live
        self.phase = "train"
        before = [self.members[k].meter.time_s["train"] for k in live]
        try:
            with ExitStack() as meters:
                for k in live:
                    self.members[k].phase = "train"
                    meters.enter_context(self.members[k].meter.phase("train"))
                try:
                    self._adam(x, round_index, adam_steps)
                    if not all(k in self.diverged for k in live):
                        self._lbfgs_device(x, round_index, self.schedule.lbfgs_steps)
                finally:
                    self._write_back(live)
        finally:
            # every member's meter timed the whole shared stage: each keeps an equal share
            for k, spent in zip(live, before):
                meter = self.members[k].meter
                meter.time_s["train"] = spent + (meter.time_s["train"] - spent) / len(live)

    def prepare_stage(self) -> torch.Tensor:
        """Stacks the live members' parameters, soft terms and points for a stage; returns
        the points, (S, N, d)."""
        live = [k for k in self.live if k not in self.diverged]
        self._stage_live, self._lbfgs_opt = live, None
        self._params = self._stack(live)
        self._stage_soft = self._soft(live)
        x = torch.stack([self.members[k].state.points.detach() for k in live])
        return x.clone().requires_grad_(True)

    @torch.no_grad()
    def _write_back(self, live: list[int]) -> None:
        for position, k in enumerate(live):
            params = [p for p in self.members[k].model.parameters() if p.requires_grad]
            for p, stacked in zip(params, self._params):
                p.copy_(stacked[position])

    # ------------------------------------------------------------------------------ rounds
    def run(self) -> list[RunState]:
        """Every member's rounds; the training stages batched. A member that diverged stops
        at its round (its record says so: :attr:`diverged`)."""
        for member in self.members:
            member.start(resume=False)
        for round_index in range(self.rounds + 1):
            self.live = [k for k in self.live if k not in self.diverged]
            if not self.live:
                break
            began = {}
            for k in self.live:
                self.phase = "sampling"
                began[k] = self.members[k].begin_round(round_index)
            self.train_stage(round_index, self.members[0].stage_steps(round_index))
            for k in self.live:
                if k not in self.diverged:
                    self.members[k].end_round(round_index, began[k])
        for k, member in enumerate(self.members):
            member.phase = "done" if k not in self.diverged else member.phase
        self.phase = "done"
        return [m.state for m in self.members]


def _finite(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))
