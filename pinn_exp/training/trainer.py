"""A run's rounds: initial training, then ``rounds`` times (sample, Adam, L-BFGS)."""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pinn_exp.io.record import CHECKPOINT
from pinn_exp.io.records import load_checkpoint, save_checkpoint
from pinn_exp.metrics import registry as metrics
from pinn_exp.metrics.memory import PhaseMeter
from pinn_exp.metrics.registry import Evaluation
from pinn_exp.metrics.residual import concentration, probe_points, regular_grid
from pinn_exp.model import Solution
from pinn_exp.ops import Laplacian, graph_free
from pinn_exp.pdes.base import PDE, BoundaryTerm
from pinn_exp.training.capture import CapturedStep
from pinn_exp.training.lbfgs import StrongWolfeLBFGS, SyncFreeLBFGS
from pinn_exp.training.progress import Progress
from pinn_exp.training.schedule import lbfgs_max_eval

if TYPE_CHECKING:
    from pinn_exp.factory import Built

log = logging.getLogger(__name__)

#: points per chunk when the metrics score residuals
EVAL_CHUNK = 4096

class Diverged(RuntimeError):
    """The loss became NaN or infinite."""

    def __init__(self, round_index: int, step: int, phase: str):
        super().__init__(f"loss is not finite at round {round_index}, {phase} step {step}")
        self.round_index, self.step, self.phase = round_index, step, phase


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and torch (CUDA included)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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


@dataclass
class RunState:
    """Everything that a checkpoint restores."""

    round_index: int = -1
    points: torch.Tensor | None = None
    #: every registered metric after each round: name -> one value per round
    metrics: dict[str, list[float]] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    round_stats: list[dict] = field(default_factory=list)
    collocation: dict[str, np.ndarray] = field(default_factory=dict)
    #: |residual| on a regular grid after each round (1-D and 2-D domains)
    residual_maps: dict[str, np.ndarray] = field(default_factory=dict)
    #: wall time of the run's earlier sessions (before a resume)
    elapsed_s: float = 0.0


class Trainer:
    """Runs one PINN with one sampler on one PDE: the objects that
    :func:`pinn_exp.factory.build` returns.

    Args:
        built: the run's objects (PDE, sampler bound to the run's generator, model, schedule,
            device, Laplacian, N, rounds, seed, generator).
        out_dir: the run's directory (checkpoints go there); None keeps nothing on disk.
        progress: show a progress bar over the steps.
        step_hook: called as ``hook(round, step, phase)`` before each step (tests inject faults).
    """

    def __init__(
        self,
        built: Built,
        out_dir: Path | None = None,
        progress: bool = True,
        step_hook: Callable[[int, int, str], None] | None = None,
    ):
        pde, schedule = built.pde, built.schedule
        device, dtype = built.device.device, built.device.dtype
        self.pde, self.sampler, self.model = pde, built.sampler, built.model
        self.schedule = schedule
        self.n_points, self.rounds = built.n_points, built.rounds
        if self.sampler.single_stage:  # its recipe is one training stage (random_r): no rounds
            if self.rounds:
                log.info("sampler %s trains in one stage: rounds=%d are not run",
                         self.sampler.name, self.rounds)  # fmt: skip
            self.rounds = 0
        seed = built.seed
        self.device, self.dtype = device, dtype
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress = progress
        self.step_hook = step_hook
        self.meter = PhaseMeter(device)
        self.laplacian: Laplacian = built.laplacian  # passed to every residual; snapshotted
        self.scorer = Scorer(pde, self.model, self.laplacian)
        self.generator = built.generator  # the sampler's, bound to it by factory.build
        self.boundary: list[BoundaryTerm] = pde.boundary_terms(self.generator, device, dtype)
        x_test, u_test = pde.reference()
        self.x_test = torch.as_tensor(x_test, dtype=dtype, device=device)
        self.u_test = torch.as_tensor(u_test, dtype=torch.float64, device=device).reshape(-1)
        self.probes = probe_points(pde.domain, seed, device, dtype)
        grid = regular_grid(pde.domain)
        self.grid = None if grid is None else (torch.as_tensor(grid[0], dtype=dtype, device=device),
                                               grid[1])  # fmt: skip
        self.term_names = ["loss", "loss_pde", *(f"loss_{t.name}" for t in self.boundary)]
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        self._compiled = torch.compile(self.loss_vector) if schedule.compile else None
        self._graphs = schedule.cuda_graphs and device.type == "cuda"
        if schedule.cuda_graphs and not self._graphs:
            log.warning("optimizer.cuda_graphs=true has no effect on %s: it needs CUDA", device)
        #: Adam steps between the sampler's updates within a stage; None: once per round
        self._period = self.sampler.period
        self._compiled_with_residual = (
            torch.compile(self.loss_and_residual) if schedule.compile and self._period else None
        )
        self._stage_updates = 0
        self.state = RunState()
        #: the job's resolved config, kept in checkpoints (set by the runner)
        self.run_config: dict | None = None
        self.phase = "setup"
        self.started = time.perf_counter()

    # ----------------------------------------------------------------------------------- loss
    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """PDE residual loss on the collocation points plus the weighted soft terms."""
        return self._terms(self.pde.residual(self.model, x, self.laplacian))

    def _terms(self, residual: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {"loss_pde": residual.square().mean()}
        for term in self.boundary:
            misfit = term.misfit(self.model)
            terms[f"loss_{term.name}"] = term.weight * misfit.square().mean()
        terms["loss"] = sum(terms.values())
        return terms

    def loss_vector(self, x: torch.Tensor) -> torch.Tensor:
        """The loss terms as one vector, in the order of ``term_names`` (the total first)."""
        terms = self.losses(x)
        return torch.stack([terms[name] for name in self.term_names])

    def loss_and_residual(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`loss_vector` and |residual| at ``x`` (detached): the residual that an update
        within the stage reuses (:class:`StepResidual`)."""
        residual = self.pde.residual(self.model, x, self.laplacian)
        terms = self._terms(residual)
        return torch.stack([terms[name] for name in self.term_names]), residual.detach().abs()

    def _evaluate_fn(self, x: torch.Tensor, residual: bool = False) -> Callable:
        """Loss terms and gradient at the current parameters: the work of one optimizer step.

        With ``optimizer.compile`` the loss (and through it the backward pass) is compiled
        once per run; nothing here reads a value on the host. With ``residual`` the function
        returns (terms, |residual| at ``x``).
        """
        if residual:
            loss_fn = self._compiled_with_residual or self.loss_and_residual
        else:
            loss_fn = self._compiled or self.loss_vector
        params = self._params

        def evaluate():
            for p in params:
                p.grad = None
            out = loss_fn(x)
            terms = out[0] if residual else out
            terms[0].backward(inputs=params)  # not into x.grad, which nothing reads
            return (terms.detach(), out[1]) if residual else terms.detach()

        return evaluate

    # ------------------------------------------------------------------------------- training
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
            if self.schedule.lbfgs_impl == "sync_free":
                self._lbfgs_sync_free(x, round_index, lbfgs_steps)
            else:
                self._lbfgs(x, round_index, lbfgs_steps)

    def _record(self, steps: list[int], values: torch.Tensor, round_index: int, phase: str):
        """Appends history rows from a block of loss vectors (one copy to the host per block);
        raises :class:`Diverged` at the first non-finite row."""
        rows = values.cpu().tolist()
        for step, row in zip(steps, rows):
            self.state.history.append(
                {"round": round_index, "step": step, "phase": phase,
                 **dict(zip(self.term_names, row))}
            )  # fmt: skip
            if not all(np.isfinite(row)):
                raise Diverged(round_index, step, phase)

    def _bar(self, steps: int, desc: str) -> Progress:
        return Progress(steps, desc, bar=self.progress)

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
        buffer = torch.empty(block, len(self.term_names), dtype=self.dtype, device=self.device)
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
                    self._record(list(range(first, step + 1)), buffer[: step - first + 1],
                                 round_index, "adam")  # fmt: skip
                    bar.update(step + 1 - first, self.state.history[-1]["loss"])
                    first = step + 1

    def _update_within_stage(
        self, x: torch.Tensor, round_index: int, residual: torch.Tensor
    ) -> None:
        """A sampler with a ``period`` moves the points between Adam steps: the new set is
        copied into ``x`` in place, so a compiled or captured step sees it. Its scorer returns
        the last step's ``residual`` at the current points (:class:`StepResidual`)."""
        points = self.state.points
        update = self.sampler.update(points, StepResidual(self.scorer, points, residual),
                                     round_index)  # fmt: skip
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

    def _lbfgs_sync_free(self, x: torch.Tensor, round_index: int, steps: int) -> None:
        """:class:`SyncFreeLBFGS` (``optimizer.lbfgs_impl=sync_free``): up to ``steps``
        accepted iterations within :func:`lbfgs_max_eval` evaluations (torch's budget), read on the
        host every ``check_every`` evaluations to record them and to stop early."""
        if steps == 0:
            return
        optimizer = SyncFreeLBFGS(
            self._params,
            self._evaluate_fn(x),
            lr=self.schedule.lbfgs_lr,
            history_size=self.schedule.history_size,
            max_iter=steps,
            tolerance_grad=self.schedule.tolerance_grad,
            compile=self.schedule.compile,
        )
        do_step = CapturedStep(optimizer.step, self.device) if self._graphs else optimizer.step
        start = optimizer.start()
        if not torch.isfinite(start[0]):
            raise Diverged(round_index, 0, "lbfgs")
        block, max_eval = self.schedule.check_every, lbfgs_max_eval(steps)
        buffer = torch.empty(block, len(self.term_names), dtype=self.dtype, device=self.device)
        accepted = torch.empty(block, dtype=torch.bool, device=self.device)
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
                    kept = buffer[:n][accepted[:n]]  # the block's one read on the host
                    self._record(list(range(done, done + len(kept))), kept, round_index, "lbfgs")
                    done += len(kept)
                    bar.update(len(kept), self.state.history[-1]["loss"] if len(kept) else None)
                    if done >= steps or bool(optimizer.converged()):
                        break
        finally:
            optimizer.finish()

    # ---------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def predict_test(self, chunk_size: int = 65536) -> torch.Tensor:
        """The model on the PDE's test set, (m, 1)."""
        return torch.cat([self.model(x) for x in torch.split(self.x_test, chunk_size)])

    def evaluate(self, chunk_size: int = 65536) -> dict[str, float]:
        """Every registered metric (:mod:`pinn_exp.metrics.registry`) of the current model,
        the relative L2 error on the PDE's test set first."""
        evaluation = Evaluation(
            prediction=self.predict_test(chunk_size).reshape(-1).double(),
            reference=self.u_test,
            x_test=self.x_test,
            points=self.state.points,
            probes=self.probes,
            residual=self.uncounted_residual,
        )
        return metrics.evaluate_all(evaluation)

    def uncounted_residual(self, x: torch.Tensor) -> torch.Tensor:
        """|residual| at ``x`` in chunks, not counted in ``n_residual_evals`` (the metrics')."""
        return self.scorer(x, EVAL_CHUNK, count=False)

    def residual_map(self) -> np.ndarray | None:
        """|residual| on the regular grid of a 1-D or 2-D domain (in the grid's shape), else
        None."""
        if self.grid is None:
            return None
        points, shape = self.grid
        return self.uncounted_residual(points).reshape(shape).cpu().numpy()

    # --------------------------------------------------------------------------------- rounds
    def run(self, resume: bool = False) -> RunState:
        """Initial training then ``rounds`` sampling rounds; checkpoints after each one.

        Args:
            resume: continue from ``out_dir/checkpoint.pt`` when it exists.

        Returns:
            The final :class:`RunState`.
        """
        start = 0
        self.started = time.perf_counter()
        if resume and self.out_dir is not None and (self.out_dir / CHECKPOINT).exists():
            self.restore(load_checkpoint(self.out_dir / CHECKPOINT, self.device))
            start = self.state.round_index + 1
            log.info("resuming after round %d", self.state.round_index)
        elif resume:
            log.warning(
                "resume=true but there is no %s in %s: starting from scratch (set "
                "hydra.run.dir to the run to resume)",
                CHECKPOINT,
                self.out_dir,
            )
        for round_index in range(start, self.rounds + 1):
            began = time.perf_counter()
            evals_before = self.scorer.n_evals
            self.phase = "sampling"
            with self.meter.phase("sampling"):
                sampling_began = time.perf_counter()
                if round_index == 0:
                    update = self.sampler.initial()
                else:
                    update = self.sampler.update(self.state.points, self.scorer, round_index)
                sampling_s = time.perf_counter() - sampling_began
            self.state.points = update.points.detach()
            self._stage_updates = 0
            sampling_peak = self.meter.last_peak_mb if round_index else None
            sampling_cpu = self.meter.last_cpu_increase_mb
            # where the sampler put the points, judged by the residual it saw (the metric
            # ``concentration`` judges them again after the stage's training)
            self.phase = "evaluation"
            with self.meter.phase("evaluation"):
                at_sampling = concentration(self.uncounted_residual, self.state.points,
                                            self.probes)  # fmt: skip
            steps = self.schedule.pretrain_steps if round_index == 0 else self.schedule.adam_steps
            self.train_stage(round_index, steps)
            self.phase = "evaluation"
            with self.meter.phase("evaluation"):
                measured = self.evaluate()
            for name, value in measured.items():
                self.state.metrics.setdefault(name, []).append(value)
            self.state.round_index = round_index
            points = self.state.points  # the round's last set (a sampler with a period moves it)
            self.state.collocation[f"round_{round_index}"] = points.cpu().numpy()
            residual_map = self.residual_map()
            if residual_map is not None:
                self.state.residual_maps[f"residual_round_{round_index}"] = residual_map
            self.state.round_stats.append(
                {
                    "round": round_index,
                    "n_points": len(points),
                    **measured,
                    "loss": self.state.history[-1]["loss"] if self.state.history else None,
                    "time_s": time.perf_counter() - began,
                    "time_sampling_s": sampling_s,
                    "n_residual_evals": self.scorer.n_evals - evals_before,
                    "peak_gpu_mem_mb_sampling": sampling_peak,
                    "peak_cpu_rss_increase_mb_sampling": sampling_cpu,
                    "concentration_at_sampling": at_sampling,
                    **({"n_stage_updates": self._stage_updates} if self._period else {}),
                    **update.stats,
                }
            )
            log.info(
                "round %d/%d  N=%d  loss %.3e  L2 rel error %.3e  %.1f s",
                round_index,
                self.rounds,
                len(points),
                self.state.round_stats[-1]["loss"] or float("nan"),
                measured[metrics.PRIMARY],
                self.state.round_stats[-1]["time_s"],
            )
            if self.out_dir is not None:
                save_checkpoint(self.out_dir / CHECKPOINT, self.snapshot())
        self.phase = "done"
        return self.state

    # ------------------------------------------------------------------------------ snapshot
    def elapsed_s(self) -> float:
        """Wall time of this run, earlier sessions before a resume included."""
        return self.state.elapsed_s + time.perf_counter() - self.started

    def snapshot(self) -> dict:
        """The state a resumed run needs (model, points, generators, records so far)."""
        self.state.elapsed_s, self.started = self.elapsed_s(), time.perf_counter()
        return {
            "state": copy.deepcopy({k: v for k, v in vars(self.state).items()}),
            "model": self.model.state_dict(),
            "generator": self.generator.get_state(),
            "laplacian_generator": self.laplacian.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            "meter": self.meter.state_dict(),
            "n_evals": self.scorer.n_evals,
            "config": self.run_config,  # the resume guard compares it
        }

    def restore(self, snap: dict) -> None:
        """Loads a :meth:`snapshot`."""
        state = dict(snap["state"])
        if "errors" in state:  # a checkpoint of an earlier version: the L2 error only
            state["metrics"] = {metrics.PRIMARY: state.pop("errors")}
        self.state = RunState(**state)
        self.state.points = self.state.points.to(self.device)
        self.model.load_state_dict(snap["model"])
        self.generator.set_state(snap["generator"])
        self.laplacian.generator.set_state(snap["laplacian_generator"])
        torch.set_rng_state(snap["torch_rng"])
        np.random.set_state(snap["numpy_rng"])
        random.setstate(snap["python_rng"])
        self.meter.load_state_dict(snap["meter"])
        self.scorer.n_evals = snap["n_evals"]
