"""A training stage: Adam steps (with a sampler's updates within the stage), then L-BFGS by
torch's implementation or the device one.

:class:`Stages` holds the drivers; the run that uses them (:class:`~pinn_exp.training.trainer.
Trainer`, one network; :class:`~pinn_exp.training.ensemble.EnsembleTrainer`, several stacked)
supplies the parameters, the loss-and-gradient function and the bookkeeping through a few
methods (``_evaluate_fn``, ``_record``, ``_check_start``, ``_record_lbfgs``,
``_lbfgs_finished``, ``_last_loss``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from pinn_exp.training.cuda_graphs import CapturedStep
from pinn_exp.training.lbfgs import DeviceLBFGS, StrongWolfeLBFGS
from pinn_exp.training.progress import Progress
from pinn_exp.training.schedule import lbfgs_max_eval
from pinn_exp.training.scoring import StepResidual


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""

    def __init__(self, round_index: int, step: int, phase: str):
        super().__init__(f"loss is not finite at round {round_index}, {phase} step {step}")
        self.round_index, self.step, self.phase = round_index, step, phase


class Stages:
    """The drivers of a training stage, for a run that sets ``_params``, ``schedule``,
    ``device``, ``dtype``, ``term_names``, ``step_hook``, ``progress``, ``_graphs``,
    ``_period``, ``sampler``, ``scorer``, ``state`` and ``_stage_updates``."""

    # ------------------------------------------------------------------------ bookkeeping
    def _evaluate_fn(self, x: torch.Tensor, residual: bool = False) -> Callable:
        raise NotImplementedError

    def _terms_shape(self) -> tuple[int, ...]:
        """The shape of one step's loss terms."""
        return (len(self.term_names),)

    def _record(self, steps: list[int], values: torch.Tensor, round_index: int, phase: str):
        """Appends history rows from a block of loss vectors (one copy to the host per block);
        raises :class:`Diverged` at the first non-finite row."""
        rows = values.cpu().tolist()
        for step, row in zip(steps, rows):
            self.state.history.append(
                {
                    "round": round_index,
                    "step": step,
                    "phase": phase,
                    **dict(zip(self.term_names, row)),
                }
            )
            if not all(np.isfinite(row)):
                raise Diverged(round_index, step, phase)

    def _last_loss(self) -> float | None:
        return self.state.history[-1]["loss"] if self.state.history else None

    def _bar(self, steps: int, desc: str) -> Progress:
        return Progress(steps, desc, bar=self.progress)

    # ----------------------------------------------------------------------------- stages
    def train_stage(self, round_index: int, adam_steps: int) -> None:
        """``adam_steps`` Adam steps (fresh state) then up to ``lbfgs_steps`` L-BFGS iterations."""
        # the built-in PDEs' forward path needs no gradient with respect to x, but a user's
        # residual may take one (``partials``, ``gradient``)
        x = self.state.points.detach().clone().requires_grad_(True)  # in-stage updates write x
        self.phase = "train"
        with self.meter.phase("train"):
            self._adam(x, round_index, adam_steps)
            lbfgs_steps = self.schedule.lbfgs_steps
            if self.sampler.single_stage and self.schedule.single_stage_lbfgs_steps is not None:
                lbfgs_steps = self.schedule.single_stage_lbfgs_steps
            if self.schedule.lbfgs_impl == "device":
                self._lbfgs_device(x, round_index, lbfgs_steps)
            else:
                self._lbfgs(x, round_index, lbfgs_steps)

    def _adam(self, x: torch.Tensor, round_index: int, steps: int) -> None:
        """Adam steps; the losses stay on the device and are copied and checked for non-finite
        values every ``check_every`` steps. A sampler with a ``period`` is updated after every
        ``period``-th step, the last one included, from that step's residual."""
        if steps == 0:
            return
        optimizer = torch.optim.Adam(self._params, lr=self.schedule.lr, capturable=self._graphs)
        period = self._period
        evaluate = self._evaluate_fn(x, residual=bool(period))

        def adam_step() -> torch.Tensor:
            terms = evaluate()
            optimizer.step()
            return terms

        do_step = CapturedStep(adam_step, self.device) if self._graphs else adam_step
        block = self.schedule.check_every
        buffer = torch.empty(block, *self._terms_shape(), dtype=self.dtype, device=self.device)
        first = 0
        with self._bar(steps, f"round {round_index} adam") as bar:
            for step in range(steps):
                if self.step_hook:
                    self.step_hook(round_index, step, "adam")
                if period:
                    buffer[step - first], residual = do_step()
                    if (step + 1) % period == 0:
                        self._update_within_stage(x, round_index, residual)
                else:
                    buffer[step - first] = do_step()
                if step - first + 1 == block or step == steps - 1:
                    self._record(
                        list(range(first, step + 1)),
                        buffer[: step - first + 1],
                        round_index,
                        "adam",
                    )
                    bar.update(step + 1 - first, self._last_loss())
                    first = step + 1

    def _update_within_stage(
        self, x: torch.Tensor, round_index: int, residual: torch.Tensor
    ) -> None:
        """A sampler with a ``period`` moves the points between Adam steps: the new set is
        copied into ``x`` in place, so a compiled or captured step sees it. Its scorer returns
        the last step's ``residual`` at the current points (:class:`StepResidual`)."""
        points = self.state.points
        update = self.sampler.update(
            points, StepResidual(self.scorer, points, residual), round_index
        )
        if update.points.shape != x.shape:
            raise ValueError(
                f"sampler.period={self._period} needs a sampler that keeps the number of points; "
                f"{self.sampler.name} changed it from {len(x)} to {len(update.points)}"
            )
        with torch.no_grad():
            x.copy_(update.points)
        self.state.points = update.points.detach()
        self._stage_updates += 1

    def _lbfgs(self, x: torch.Tensor, round_index: int, steps: int) -> None:
        """torch's L-BFGS with a strong-Wolfe line search (``optimizer.lbfgs_impl=torch``) of
        at most ``optimizer.max_ls`` evaluations an iteration."""
        if steps == 0:
            return
        params = self._params
        optimizer = StrongWolfeLBFGS(
            params,
            max_ls=self.schedule.max_ls,
            lr=self.schedule.lbfgs_lr,
            max_iter=steps,
            max_eval=lbfgs_max_eval(steps),
            history_size=self.schedule.history_size,
            tolerance_grad=self.schedule.tolerance_grad,
            tolerance_change=0.0,
        )
        evaluate = self._evaluate_fn(x)
        last: dict[int, torch.Tensor] = {}
        bar = self._bar(steps, f"round {round_index} lbfgs")

        def closure() -> torch.Tensor:
            iteration = optimizer.state[params[0]].get("n_iter", 0)
            if self.step_hook:
                self.step_hook(round_index, iteration, "lbfgs")
            terms = evaluate()
            loss = float(terms[0])  # torch's L-BFGS reads the loss on the host anyway
            if not math.isfinite(loss):
                raise Diverged(round_index, iteration, "lbfgs")
            if iteration not in last and iteration > 0:  # a new iteration began
                bar.update(1, loss)
            last[iteration] = terms  # the last evaluation within an iteration is accepted
            return terms[0]

        with bar:
            optimizer.step(closure)
        accepted = [i for i in sorted(last) if i > 0]
        if accepted:
            values = torch.stack([last[i] for i in accepted])
            self._record([i - 1 for i in accepted], values, round_index, "lbfgs")

    # --------------------------------------------------------------------- device L-BFGS
    def _device_lbfgs(self, x: torch.Tensor, steps: int, stacked: bool = False) -> DeviceLBFGS:
        """The stage's device L-BFGS over ``_params`` (``stacked``: an ensemble's)."""
        return DeviceLBFGS(
            self._params,
            self._evaluate_fn(x),
            stacked=stacked,
            lr=self.schedule.lbfgs_lr,
            history_size=self.schedule.history_size,
            max_iter=steps,
            max_eval=lbfgs_max_eval(steps),
            max_ls=self.schedule.max_ls,
            tolerance_grad=self.schedule.tolerance_grad,
            compile=self.schedule.compile,
        )

    def _check_start(self, terms: torch.Tensor, round_index: int) -> None:
        """Refuses a stage whose starting loss is not finite."""
        if not torch.isfinite(terms[0]):
            raise Diverged(round_index, 0, "lbfgs")

    def _record_lbfgs(
        self, values: torch.Tensor, accepted: torch.Tensor, done: int, round_index: int
    ) -> int:
        """Records the accepted iterations of a block (numbered from ``done``); returns how
        many there were."""
        kept = values[accepted]  # the block's one read on the host
        self._record(list(range(done, done + len(kept))), kept, round_index, "lbfgs")
        return len(kept)

    def _lbfgs_finished(self, optimizer: DeviceLBFGS, done: int, steps: int) -> bool:
        """The host's stopping test after a block."""
        return done >= steps or not bool(optimizer.running()[0])

    def _lbfgs_device(self, x: torch.Tensor, round_index: int, steps: int) -> None:
        """:class:`DeviceLBFGS` (``optimizer.lbfgs_impl=device``): up to ``steps`` iterations
        within :func:`lbfgs_max_eval` evaluations (torch's budget), read on the host every
        ``check_every`` evaluations to record the completed iterations and to stop."""
        if steps == 0:
            return
        optimizer = self._device_lbfgs(x, steps)
        do_step = CapturedStep(optimizer.step, self.device) if self._graphs else optimizer.step
        self._check_start(optimizer.start(), round_index)
        block, max_eval = self.schedule.check_every, lbfgs_max_eval(steps)
        buffer = torch.empty(block, *self._terms_shape(), dtype=self.dtype, device=self.device)
        accepted = torch.empty(
            block, *self._terms_shape()[:-1], dtype=torch.bool, device=self.device
        )
        done, used = 0, 0
        try:
            with self._bar(steps, f"round {round_index} lbfgs") as bar:
                while used < max_eval:
                    n = min(block, max_eval - used)
                    for i in range(n):
                        if self.step_hook:
                            self.step_hook(round_index, done, "lbfgs")
                        buffer[i], accepted[i] = do_step()
                    used += n
                    kept = self._record_lbfgs(buffer[:n], accepted[:n], done, round_index)
                    done += kept
                    bar.update(kept, self._last_loss() if kept else None)
                    if self._lbfgs_finished(optimizer, done, steps):
                        break
        finally:
            optimizer.finish()
