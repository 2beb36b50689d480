"""A run's optimisation schedule (the ``optimizer`` group) and the optimizers it uses."""

from __future__ import annotations

import dataclasses
import math
import shutil
from dataclasses import dataclass

LBFGS_IMPLS = ("torch", "device")

#: ``optimizer.compile=auto`` compiles a run on the CPU of at least this many optimizer steps
#: (Adam steps and L-BFGS iterations of all its stages): below it a cold compilation costs
#: more than it saves (docs/performance.md)
AUTO_COMPILE_STEPS = 5000


@dataclass
class Schedule:
    """Initial training of ``pretrain_steps`` Adam steps then up to ``lbfgs_steps`` L-BFGS
    iterations; after each sampling round ``adam_steps`` Adam steps (fresh Adam state, as the RAD
    reference code does) then up to ``lbfgs_steps`` L-BFGS iterations.

    Args:
        pretrain_steps: Adam steps of the initial training.
        adam_steps: Adam steps after each sampling round.
        lbfgs_steps: L-BFGS iterations after each Adam stage (0 for Adam only), within
            :func:`lbfgs_max_eval` evaluations.
        single_stage_lbfgs_steps: L-BFGS iterations after the Adam stage of a run whose
            sampler trains in one stage (``Sampler.single_stage``: ``random_r`` as published,
            whose script runs DeepXDE's default of 15,000); None: ``lbfgs_steps``.
        lr: Adam's learning rate.
        lbfgs_lr: L-BFGS step size (1 with a strong-Wolfe line search).
        history_size: L-BFGS memory (DeepXDE's, which the RAD reference code uses: 100).
        max_ls: the strong-Wolfe line search's evaluations per L-BFGS iteration at most
            (DeepXDE runs scipy's L-BFGS-B with ``maxls=50``); None: torch's limit, the
            evaluations left in the stage's budget (both implementations).
        tolerance_grad: L-BFGS stops when the largest gradient entry falls below it
            (DeepXDE's ``gtol``: 1e-8).
        check_every: steps between copies of the losses to the host (each a check for a
            non-finite loss and, for the device L-BFGS, for its stopping tests).
        lbfgs_impl: ``torch`` (the default: ``torch.optim.LBFGS`` with its strong-Wolfe
            line search) or ``device`` (:class:`~pinn_exp.training.lbfgs.DeviceLBFGS`, torch's
            iteration with every decision on the device, one evaluation a step, no host read
            within a block: compiled, captured as a CUDA graph, batched over an ensemble; not
            the default, as over 16 seeds its errors on the default Burgers job were not
            shown to be torch's, docs/performance.md).
        compile: compile the loss and its gradient with ``torch.compile`` (a one-off cost of
            tens of seconds per run, less with a warm compile cache; docs/performance.md):
            true, false, or ``auto`` (the default): compiled on the CPU for a run of at least
            :data:`AUTO_COMPILE_STEPS` steps where a C++ compiler is found, otherwise eager
            (:meth:`decide_compile`).
        cuda_graphs: on CUDA, replay each Adam step and each device L-BFGS step as a
            CUDA graph (:mod:`pinn_exp.training.cuda_graphs`); torch's L-BFGS is not captured.
            No effect on a CPU.
    """

    pretrain_steps: int = 2000
    adam_steps: int = 0
    lbfgs_steps: int = 1000
    single_stage_lbfgs_steps: int | None = None
    lr: float = 1e-3
    lbfgs_lr: float = 1.0
    history_size: int = 50
    max_ls: int | None = None
    tolerance_grad: float = 1e-9
    check_every: int = 50
    lbfgs_impl: str = "torch"
    compile: bool | str = "auto"
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        for key in ("pretrain_steps", "adam_steps", "lbfgs_steps"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"optimizer.{key}={value!r} is not allowed; it must be an integer >= 0"
                )
        for key in ("lr", "lbfgs_lr"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(
                    f"optimizer.{key}={value!r} is not allowed; it must be a finite number > 0"
                )
        if self.lbfgs_impl not in LBFGS_IMPLS:
            replaced = (
                " (sync_free, whose line search only shortened its steps, was replaced by "
                "device: the same stepping on the device with torch's strong-Wolfe line search)"
                if self.lbfgs_impl == "sync_free"
                else ""
            )
            raise ValueError(
                f"optimizer.lbfgs_impl={self.lbfgs_impl!r} is not allowed; choose one of "
                f"{LBFGS_IMPLS}{replaced}"
            )
        if not (isinstance(self.compile, bool) or self.compile == "auto"):
            raise ValueError(
                f"optimizer.compile={self.compile!r} is not allowed; choose true, false or auto"
            )
        if not isinstance(self.tolerance_grad, (int, float)) or not self.tolerance_grad >= 0:
            raise ValueError(
                f"optimizer.tolerance_grad={self.tolerance_grad!r} is not allowed; it must be a "
                "number >= 0"
            )
        if self.history_size < 1 or self.check_every < 1:
            raise ValueError("optimizer.history_size and optimizer.check_every must be >= 1")
        steps = self.single_stage_lbfgs_steps
        if steps is not None and (not isinstance(steps, int) or steps < 0):
            raise ValueError(
                f"optimizer.single_stage_lbfgs_steps={steps!r} is not allowed; it must be null or "
                "an integer >= 0"
            )
        if self.max_ls is not None and (not isinstance(self.max_ls, int) or self.max_ls < 1):
            raise ValueError(
                f"optimizer.max_ls={self.max_ls!r} is not allowed; it must be null or an "
                "integer >= 1"
            )

    def steps(self, rounds: int, single_stage: bool = False) -> int:
        """Optimizer steps of a run of ``rounds`` rounds at most: Adam steps and L-BFGS
        iterations of the initial training and of every round (``single_stage``: of its one
        stage, :attr:`single_stage_lbfgs_steps` L-BFGS iterations)."""
        if single_stage:
            lbfgs = self.single_stage_lbfgs_steps
            return self.pretrain_steps + (self.lbfgs_steps if lbfgs is None else lbfgs)
        per_round = self.adam_steps + self.lbfgs_steps
        return self.pretrain_steps + self.lbfgs_steps + rounds * per_round

    def decide_compile(
        self, device_type: str, rounds: int, single_stage: bool = False
    ) -> tuple[Schedule, str]:
        """This schedule with ``compile=auto`` decided, and a line saying how.

        ``auto`` compiles on the CPU when the run has at least :data:`AUTO_COMPILE_STEPS`
        steps and torch.compile finds the C++ compiler it needs there (``$CXX``, else g++ on
        Linux); on a GPU it stays eager (its gain there is unknown: set
        ``optimizer.compile=true`` to compile). An explicit true or false is kept.
        """
        if self.compile != "auto":
            return self, f"optimizer.compile={str(self.compile).lower()}"
        steps = self.steps(rounds, single_stage)
        if device_type != "cpu":
            on, why = False, f"not on the CPU ({device_type})"
        elif steps < AUTO_COMPILE_STEPS:
            on, why = False, f"{steps:,} steps, below {AUTO_COMPILE_STEPS:,}"
        elif not _cxx():
            on, why = False, "torch.compile finds no C++ compiler ($CXX, g++)"
        else:
            on, why = True, f"CPU, {steps:,} steps"
        decided = dataclasses.replace(self, compile=on)
        return decided, f"optimizer.compile=auto: {'compiled' if on else 'eager'} ({why})"


def _cxx() -> str | None:
    """The C++ compiler torch.compile would use on the CPU (its own search: ``$CXX``, else
    its configured one, g++ on Linux), or None where it finds none."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        compiler = get_cpp_compiler()
    except Exception:  # noqa: BLE001 - whatever the search raises: no usable compiler
        return None
    return compiler if compiler and shutil.which(compiler) else None


def lbfgs_max_eval(steps: int) -> int:
    """Loss-and-gradient evaluations an L-BFGS stage of ``steps`` iterations may use: 5/4 of
    them, torch's default and scipy's ``maxfun`` as DeepXDE sets it (1,250 for 1,000)."""
    return steps * 5 // 4


@dataclass
class AdamOnly(Schedule):
    """Adam only (``optimizer=adam``): :class:`Schedule` without L-BFGS. A budget's L-BFGS
    steps do not apply to it (``${lbfgs:N}`` in conf/budget gives 0 here), and L-BFGS steps
    asked for are refused, naming the key."""

    pretrain_steps: int = 3000
    adam_steps: int = 1000
    lbfgs_steps: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("lbfgs_steps", "single_stage_lbfgs_steps"):
            value = getattr(self, key, None)
            if value:
                raise ValueError(
                    f"optimizer.{key}={value!r} is not allowed with an Adam-only optimizer "
                    "(optimizer=adam): it must be 0; choose optimizer=adam_lbfgs for L-BFGS"
                )
