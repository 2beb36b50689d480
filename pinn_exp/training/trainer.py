"""The rounds of SPEC §2: initial training, then ``rounds`` times (sample, Adam, L-BFGS)."""

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

import numpy as np
import torch

from pinn_exp.io.records import load_checkpoint, save_checkpoint
from pinn_exp.metrics.error import l2_relative_error
from pinn_exp.metrics.memory import PhaseMeter
from pinn_exp.model import Solution
from pinn_exp.pdes.base import PDE, BoundaryTerm
from pinn_exp.samplers.base import Sampler
from pinn_exp.training.capture import CapturedStep
from pinn_exp.training.lbfgs import SyncFreeLBFGS
from pinn_exp.training.progress import Progress
from pinn_exp.training.schedule import Schedule

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


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
    """|residual| at given points, in chunks, without a graph over the parameters.

    Counts every scored point in ``n_evals``.
    """

    def __init__(self, pde: PDE, model: Solution):
        self.pde, self.model = pde, model
        self.n_evals = 0

    def __call__(self, x: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        out = []
        with frozen(self.model):
            for chunk in torch.split(x, chunk_size or max(len(x), 1)):
                chunk = chunk.detach().requires_grad_(True)
                out.append(self.pde.residual(self.model, chunk).detach().abs())
        self.n_evals += len(x)
        return torch.cat(out)


@dataclass
class RunState:
    """Everything that a checkpoint restores."""

    round_index: int = -1
    points: torch.Tensor | None = None
    errors: list[float] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    round_stats: list[dict] = field(default_factory=list)
    collocation: dict[str, np.ndarray] = field(default_factory=dict)
    #: wall time of the run's earlier sessions (before a resume)
    elapsed_s: float = 0.0


class Trainer:
    """Runs one PINN with one sampler on one PDE.

    Args:
        pde: the problem.
        sampler: the collocation sampler.
        model: the solution u = A + B N.
        schedule: optimisation schedule.
        n_points: size N of the interior set.
        rounds: sampling rounds after the initial training.
        seed: seed of the sampler's generator (the global seeds are set by the caller).
        device: where to train.
        dtype: floating point type.
        out_dir: the run's directory (checkpoints go there); None keeps nothing on disk.
        progress: show a progress bar over the steps.
        step_hook: called as ``hook(round, step, phase)`` before each step (tests inject faults).
    """

    def __init__(
        self,
        pde: PDE,
        sampler: Sampler,
        model: Solution,
        schedule: Schedule,
        n_points: int,
        rounds: int,
        seed: int,
        device: torch.device,
        dtype: torch.dtype,
        out_dir: Path | None = None,
        progress: bool = True,
        step_hook: Callable[[int, int, str], None] | None = None,
    ):
        self.pde, self.sampler, self.model, self.schedule = pde, sampler, model, schedule
        self.n_points, self.rounds = n_points, rounds
        self.device, self.dtype = device, dtype
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress = progress
        self.step_hook = step_hook
        self.meter = PhaseMeter(device)
        self.scorer = Scorer(pde, model)
        self.generator = torch.Generator().manual_seed(seed)
        self.sampler.bind(pde.domain, n_points, rounds, self.generator, device, dtype)
        self.boundary: list[BoundaryTerm] = pde.boundary_terms(self.generator, device, dtype)
        x_test, u_test = pde.reference()
        self.x_test = torch.as_tensor(x_test, dtype=dtype, device=device)
        self.u_test = torch.as_tensor(u_test, dtype=torch.float64, device=device)
        self.term_names = ["loss", "loss_pde", *(f"loss_{t.name}" for t in self.boundary)]
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        self._compiled = torch.compile(self.loss_vector) if schedule.compile else None
        self._graphs = schedule.cuda_graphs and device.type == "cuda"
        if schedule.cuda_graphs and not self._graphs:
            log.warning("optimizer.cuda_graphs=true has no effect on %s: it needs CUDA", device)
        self.state = RunState()
        self.phase = "setup"
        self.started = time.perf_counter()

    @classmethod
    def from_built(cls, built, **kwargs) -> Trainer:
        """The trainer of :func:`pinn_exp.factory.build`'s objects; ``kwargs`` are
        ``out_dir``, ``progress`` and ``step_hook``."""
        return cls(built.pde, built.sampler, built.model, built.schedule, built.n_points,
                   built.rounds, built.seed, built.device.device, built.device.dtype,
                   **kwargs)  # fmt: skip

    # ----------------------------------------------------------------------------------- loss
    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """PDE residual loss on the collocation points plus the weighted soft terms."""
        residual = self.pde.residual(self.model, x)
        terms = {"loss_pde": residual.square().mean()}
        for term in self.boundary:
            misfit = self.model(term.x).reshape(-1) - term.target.reshape(-1)
            terms[f"loss_{term.name}"] = term.weight * misfit.square().mean()
        terms["loss"] = sum(terms.values())
        return terms

    def loss_vector(self, x: torch.Tensor) -> torch.Tensor:
        """The loss terms as one vector, in the order of ``term_names`` (the total first)."""
        terms = self.losses(x)
        return torch.stack([terms[name] for name in self.term_names])

    def _evaluate_fn(self, x: torch.Tensor) -> Callable[[], torch.Tensor]:
        """Loss terms and gradient at the current parameters: the work of one optimizer step.

        With ``optimizer.compile`` the loss (and through it the backward pass) is compiled
        once per run; nothing here reads a value on the host.
        """
        loss_vector = self._compiled or self.loss_vector
        params = self._params

        def evaluate() -> torch.Tensor:
            for p in params:
                p.grad = None
            terms = loss_vector(x)
            terms[0].backward(inputs=params)  # not into x.grad, which nothing reads
            return terms.detach()

        return evaluate

    # ------------------------------------------------------------------------------- training
    def train_stage(self, round_index: int, adam_steps: int) -> None:
        """``adam_steps`` Adam steps (fresh state) then up to ``lbfgs_steps`` L-BFGS iterations."""
        # the built-in PDEs' forward path needs no gradient with respect to x, but a user's
        # residual may take one (``partials``, ``gradient``)
        x = self.state.points.detach().requires_grad_(True)
        self.phase = "train"
        with self.meter.phase("train"):
            self._adam(x, round_index, adam_steps)
            if self.schedule.lbfgs_impl == "sync_free":
                self._lbfgs_sync_free(x, round_index, self.schedule.lbfgs_steps)
            else:
                self._lbfgs(x, round_index, self.schedule.lbfgs_steps)

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
        values every ``check_every`` steps."""
        if steps == 0:
            return
        optimizer = torch.optim.Adam(self._params, lr=self.schedule.lr, capturable=self._graphs)
        evaluate = self._evaluate_fn(x)

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
                buffer[step - first] = do_step()
                if step - first + 1 == block or step == steps - 1:
                    self._record(list(range(first, step + 1)), buffer[: step - first + 1],
                                 round_index, "adam")  # fmt: skip
                    bar.update(step + 1 - first, self.state.history[-1]["loss"])
                    first = step + 1

    def _lbfgs(self, x: torch.Tensor, round_index: int, steps: int) -> None:
        """torch's L-BFGS with a strong-Wolfe line search (``optimizer.lbfgs_impl=torch``)."""
        if steps == 0:
            return
        params = self._params
        optimizer = torch.optim.LBFGS(
            params,
            lr=self.schedule.lbfgs_lr,
            max_iter=steps,
            max_eval=int(steps * 1.25) + 1,
            history_size=self.schedule.history_size,
            tolerance_grad=1e-9,
            tolerance_change=0.0,
            line_search_fn="strong_wolfe",
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
        accepted iterations within ``1.25 * steps`` evaluations (torch's budget), read on the
        host every ``check_every`` evaluations to record them and to stop early."""
        if steps == 0:
            return
        optimizer = SyncFreeLBFGS(
            self._params,
            self._evaluate_fn(x),
            lr=self.schedule.lbfgs_lr,
            history_size=self.schedule.history_size,
            max_iter=steps,
            tolerance_grad=1e-9,
            compile=self.schedule.compile,
        )
        do_step = CapturedStep(optimizer.step, self.device) if self._graphs else optimizer.step
        start = optimizer.start()
        if not torch.isfinite(start[0]):
            raise Diverged(round_index, 0, "lbfgs")
        block, max_eval = self.schedule.check_every, int(steps * 1.25) + 1
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

    def evaluate(self, chunk_size: int = 65536) -> float:
        """Relative L2 error on the PDE's test set."""
        return l2_relative_error(self.predict_test(chunk_size), self.u_test)

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
                    self.sampler.stats = {}
                    points = self.sampler.initial()
                else:
                    points = self.sampler.update(self.state.points, self.scorer, round_index)
                sampling_s = time.perf_counter() - sampling_began
            self.state.points = points.detach()
            sampling_peak = self.meter.last_peak_mb if round_index else None
            steps = self.schedule.pretrain_steps if round_index == 0 else self.schedule.adam_steps
            self.train_stage(round_index, steps)
            error = self.evaluate()
            self.state.errors.append(error)
            self.state.round_index = round_index
            self.state.collocation[f"round_{round_index}"] = points.detach().cpu().numpy()
            self.state.round_stats.append(
                {
                    "round": round_index,
                    "n_points": len(points),
                    "l2_rel_error": error,
                    "loss": self.state.history[-1]["loss"] if self.state.history else None,
                    "time_s": time.perf_counter() - began,
                    "time_sampling_s": sampling_s,
                    "n_residual_evals": self.scorer.n_evals - evals_before,
                    "peak_gpu_mem_mb_sampling": sampling_peak,
                    **self.sampler.stats,
                }
            )
            log.info(
                "round %d/%d  N=%d  loss %.3e  L2 rel error %.3e  %.1f s",
                round_index,
                self.rounds,
                len(points),
                self.state.round_stats[-1]["loss"] or float("nan"),
                error,
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
            "laplacian_generator": self.pde.laplacian.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            "meter": self.meter.state_dict(),
            "n_evals": self.scorer.n_evals,
        }

    def restore(self, snap: dict) -> None:
        """Loads a :meth:`snapshot`."""
        self.state = RunState(**snap["state"])
        self.state.points = self.state.points.to(self.device)
        self.model.load_state_dict(snap["model"])
        self.generator.set_state(snap["generator"])
        self.pde.laplacian.generator.set_state(snap["laplacian_generator"])
        torch.set_rng_state(snap["torch_rng"])
        np.random.set_state(snap["numpy_rng"])
        random.setstate(snap["python_rng"])
        self.meter.load_state_dict(snap["meter"])
        self.scorer.n_evals = snap["n_evals"]
