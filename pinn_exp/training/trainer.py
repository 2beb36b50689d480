"""A run's rounds: initial training, then ``rounds`` times (sample, Adam, L-BFGS); its
evaluation, checkpoints and resume. The stage drivers are in :mod:`.stages`, the scorer in
:mod:`.scoring`."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pinn_exp.io.record import CHECKPOINT
from pinn_exp.io.storage import load_checkpoint, save_checkpoint
from pinn_exp.metrics import registry as metrics
from pinn_exp.metrics.phases import PhaseMeter
from pinn_exp.metrics.registry import Evaluation
from pinn_exp.metrics.residual import concentration, probe_points, regular_grid
from pinn_exp.ops import Laplacian
from pinn_exp.pdes.base import BoundaryTerm
from pinn_exp.training import run_state
from pinn_exp.training.compile_trial import compile_failure
from pinn_exp.training.parts import Built
from pinn_exp.training.run_state import RunState
from pinn_exp.training.scoring import EVAL_CHUNK, Scorer, StepResidual, frozen
from pinn_exp.training.stages import Diverged, Stages

__all__ = [
    "EVAL_CHUNK",
    "Diverged",
    "RunParts",
    "RunState",
    "Scorer",
    "StepResidual",
    "Trainer",
    "frozen",
]

log = logging.getLogger(__name__)


#: what a run is made of (:func:`pinn_exp.factory.build` builds it)
RunParts = Built


class Trainer(Stages):
    """Runs one PINN with one sampler on one PDE: the objects that
    :func:`pinn_exp.factory.build` returns.

    Args:
        built: the run's objects (PDE, sampler bound to the run's generator, model, schedule,
            device, Laplacian, N, rounds, seed, generator): a :class:`RunParts`.
        out_dir: the run's directory (checkpoints go there); None keeps nothing on disk.
        progress: show a progress bar over the steps.
        step_hook: called as ``hook(round, step, phase)`` before each step (tests inject faults).
    """

    def __init__(
        self,
        built: RunParts,
        out_dir: Path | None = None,
        progress: bool = True,
        step_hook: Callable[[int, int, str], None] | None = None,
    ):
        self.parts = built
        pde, schedule = built.pde, built.schedule
        if not isinstance(schedule.compile, bool):  # a Built made without factory.build
            schedule, _ = schedule.decide_compile(
                built.device.device.type, built.rounds, built.sampler.single_stage
            )
        device, dtype = built.device.device, built.device.dtype
        self.pde, self.sampler, self.model = pde, built.sampler, built.model
        self.schedule = schedule
        self.n_points, self.rounds = built.n_points, built.rounds
        if self.sampler.single_stage:  # its recipe is one training stage (random_r): no rounds
            if self.rounds:
                log.info(
                    "sampler %s trains in one stage: rounds=%d are not run",
                    self.sampler.name,
                    self.rounds,
                )
            self.rounds = 0
        self.device, self.dtype = device, dtype
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress, self.step_hook = progress, step_hook
        self.meter = PhaseMeter(device)
        self.laplacian: Laplacian = built.laplacian  # passed to every residual; snapshotted
        self.scorer = Scorer(pde, self.model, self.laplacian)
        self.generator = built.generator  # the sampler's, bound to it by factory.build
        self.boundary: list[BoundaryTerm] = pde.boundary_terms(self.generator, device, dtype)
        self._set_test_points(built.seed)
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
        #: the compiled losses were tried once (:meth:`_try_compiled`)
        self._compile_tried = False
        self._stage_updates = 0
        #: the prediction on the test set and |residual| at the probes of the last evaluation,
        #: for as long as the model has not trained since (a round's sampling leaves it as it
        #: is): the solution plot and the next round's concentration at sampling reuse them
        self._prediction: torch.Tensor | None = None
        self._probe_residual: torch.Tensor | None = None
        self.state = RunState()
        #: the job's resolved config, kept in checkpoints (set by the runner)
        self.run_config: dict | None = None
        self.phase = "setup"
        #: the last round whose end (evaluation and checkpoint) is complete: what a resume
        #: continues after (-1: none)
        self.saved_round = -1
        #: when this process's time for the run began (``time.perf_counter()``): its
        #: construction, or the runner's session start, which the runner sets
        self.started = time.perf_counter()
        #: the share of the wall time since :attr:`started` that is this run's: 1/S in a
        #: batched ensemble of S members (its checkpoints keep the member's share)
        self.time_share = 1.0

    def _set_test_points(self, seed: int) -> None:
        """The PDE's test set and reference solution, the probes of the residual metrics and
        the regular grid of the residual maps (1-D and 2-D domains; else None)."""
        pde, device, dtype = self.pde, self.device, self.dtype
        x_test, u_test = pde.reference()
        self.x_test = torch.as_tensor(x_test, dtype=dtype, device=device)
        self.u_test = torch.as_tensor(u_test, dtype=torch.float64, device=device).reshape(-1)
        self.probes = probe_points(pde.domain, seed, device, dtype)
        grid = regular_grid(pde.domain)
        self.grid = (
            None
            if grid is None
            else (torch.as_tensor(grid[0], dtype=dtype, device=device), grid[1])
        )

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
        if self.schedule.compile and not self._compile_tried:
            self._try_compiled(x)
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

    def _try_compiled(self, x: torch.Tensor) -> None:
        """Tries the compiled losses once, before the first step (:func:`compile_failure`);
        where torch.compile cannot compile them but the eager loss runs, the run continues
        eagerly, with one line saying why."""
        self._compile_tried = True
        compiled = (self._compiled, self._compiled_with_residual)
        generator = self.laplacian.generator
        reason = compile_failure(compiled, self.loss_vector, x, self._params, generator)
        if reason is not None:
            log.warning(
                "optimizer.compile=true: torch.compile cannot compile this loss (%s); "
                "training eagerly",
                reason,
            )
            self._compiled = self._compiled_with_residual = None
            self.schedule = dataclasses.replace(self.schedule, compile=False)

    # ---------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def predict_test(self, chunk_size: int = 65536) -> torch.Tensor:
        """The model on the PDE's test set, (m, 1)."""
        return torch.cat([self.model(x) for x in torch.split(self.x_test, chunk_size)])

    def evaluate(self, chunk_size: int = 65536) -> dict[str, float]:
        """Every registered metric (:mod:`pinn_exp.metrics.registry`) of the current model,
        the relative L2 error on the PDE's test set first."""
        self._prediction = self._probe_residual = None  # the model has trained since
        self._prediction = self.predict_test(chunk_size)
        evaluation = Evaluation(
            prediction=self._prediction.reshape(-1).double(),
            reference=self.u_test,
            x_test=self.x_test,
            points=self.state.points,
            probes=self.probes,
            residual=self.uncounted_residual,
        )
        return metrics.evaluate_all(evaluation)

    def uncounted_residual(self, x: torch.Tensor) -> torch.Tensor:
        """|residual| at ``x`` in chunks, not counted in ``n_residual_evals`` (the metrics').

        At the probes it is kept until the model trains again: the concentration metric of
        a round and the next round's concentration at sampling score the same model there.
        Not with a stochastic Laplacian, whose every scoring draws from its generator.
        """
        probes = x is self.probes
        if probes and self._probe_residual is not None:
            return self._probe_residual
        residual = self.scorer(x, EVAL_CHUNK, count=False)
        if probes and not self.laplacian.stochastic:
            self._probe_residual = residual
        return residual

    def final_prediction(self) -> torch.Tensor:
        """The model on the test set, (m, 1): the last evaluation's where the model has not
        trained since, else computed now."""
        if self._prediction is None or self.phase not in ("done", "evaluation", "checkpoint"):
            return self.predict_test()
        return self._prediction

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
        for round_index in range(self.start(resume), self.rounds + 1):
            began = self.begin_round(round_index)
            self.train_stage(round_index, self.stage_steps(round_index))
            self.end_round(round_index, began)
        self.phase = "done"
        return self.state

    def start(self, resume: bool = False) -> int:
        """Restores a checkpoint where asked; returns the first round."""
        if resume and self.out_dir is not None and (self.out_dir / CHECKPOINT).exists():
            self.restore(load_checkpoint(self.out_dir / CHECKPOINT, self.device))
            self.saved_round = self.state.round_index
            log.info("resuming after round %d", self.state.round_index)
            return self.state.round_index + 1
        if resume:
            log.warning(
                "resume=true but there is no %s in %s: starting from scratch (set "
                "hydra.run.dir to the run to resume)",
                CHECKPOINT,
                self.out_dir,
            )
        return 0

    def stage_steps(self, round_index: int) -> int:
        """Adam steps of the round's training stage."""
        return self.schedule.pretrain_steps if round_index == 0 else self.schedule.adam_steps

    def begin_round(self, round_index: int) -> dict:
        """The round's sampling (the initial set in round 0); returns what :meth:`end_round`
        records of it."""
        began = time.perf_counter()
        evals_before = self.scorer.n_evals
        self.phase = "sampling"
        self._prediction = None  # the round's training follows
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
            at_sampling = concentration(self.uncounted_residual, self.state.points, self.probes)
        return {
            "began": began,
            "evals_before": evals_before,
            "sampling_s": sampling_s,
            "sampling_peak": sampling_peak,
            "sampling_cpu": sampling_cpu,
            "at_sampling": at_sampling,
            "stats": update.stats,
        }

    def end_round(self, round_index: int, began: dict) -> None:
        """Evaluates the trained model, records the round and saves the checkpoint."""
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
                "time_s": time.perf_counter() - began["began"],
                "time_sampling_s": began["sampling_s"],
                "n_residual_evals": self.scorer.n_evals - began["evals_before"],
                "peak_gpu_mem_mb_sampling": began["sampling_peak"],
                "peak_cpu_rss_increase_mb_sampling": began["sampling_cpu"],
                "concentration_at_sampling": began["at_sampling"],
                **({"n_stage_updates": self._stage_updates} if self._period else {}),
                **began["stats"],
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
            extra={"run_dir": self.out_dir},  # whose line it is, where several runs train
        )
        if self.out_dir is not None:
            self.phase = "checkpoint"  # a failed write is recorded as such
            save_checkpoint(self.out_dir / CHECKPOINT, self.snapshot())
            self.phase = "evaluation"
        self.saved_round = round_index

    # ------------------------------------------------------------------------------ snapshot
    def elapsed_s(self, now: float | None = None) -> float:
        """Wall time of this run up to ``now`` (``time.perf_counter()``, default now), earlier
        sessions before a resume included."""
        now = time.perf_counter() if now is None else now
        return self.state.elapsed_s + (now - self.started) * self.time_share

    def snapshot(self) -> dict:
        """The state a resumed run needs (:func:`run_state.snapshot`)."""
        return run_state.snapshot(self)

    def restore(self, snap: dict) -> None:
        """Loads a :meth:`snapshot`."""
        run_state.restore(self, snap)
