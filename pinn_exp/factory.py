"""The one place that turns a composed config into objects (``hydra.utils.instantiate``).

Everything is built and checked here before any training starts, so bad input fails early
with a message naming the key, the value and what is allowed.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig

from pinn_exp.config import Config, ConfigError, check_keys, constructor_parameters
from pinn_exp.device import DeviceSpec
from pinn_exp.metrics.memory import is_allocation_failure
from pinn_exp.model import MLP, Solution
from pinn_exp.ops.laplacian import Laplacian
from pinn_exp.pdes.base import PDE
from pinn_exp.samplers.base import Sampler
from pinn_exp.training.parts import Built
from pinn_exp.training.scoring import Scorer
from pinn_exp.training.seeding import seed_everything

log = logging.getLogger(__name__)

MIN_POINTS = 10
#: the default of the top-level ``rounds`` (pinn_exp.config.Config)
DEFAULT_ROUNDS = Config.rounds


def _build(node: DictConfig, key: str, **kwargs):
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if cause is not None and is_allocation_failure(cause):
            raise cause from None  # not a bad value: the caller records it as oom
        if isinstance(cause, (ValueError, TypeError)):
            raise ConfigError(str(cause)) from None
        if isinstance(cause, ArithmeticError):  # a value whose arithmetic overflows
            raise ConfigError(f"{key}: {type(cause).__name__}: {cause}") from None
        raise ConfigError(f"{key}: {exc}") from None


def check_finite(node: DictConfig, prefix: str = "") -> None:
    """Refuses NaN and infinite numbers anywhere in the config: no key of this project has a
    use for them (``sampler.k=nan`` would silently turn RAD into uniform sampling)."""
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, DictConfig):
            check_finite(value, f"{name}.")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name}={value!r} is not allowed; it must be a finite number")


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (CUDA: the driver's count; CPU: the kernel's available
    pages), or None where it cannot be told."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:  # MemAvailable counts the page cache the kernel can give back; MemFree does not
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


#: Peak bytes of one scoring pass per point, in units of itemsize x width x (derivative
#: directions: d + 2, the value, the gradient and the Laplacian; Hutchinson: its probes + 2),
#: as a + b x depth: ``forward`` for the graph-free forward mode (Laplacian ``forward``, the
#: space-time jets), ``graph`` for the methods that keep autograd's graph over the layers
#: (``autograd``, ``func``, ``hutchinson``), whose cost grows with depth. The constants are
#: chosen to bound the measured peaks of every PDE and method on a CPU and a GPU, so the check
#: refuses too early rather than too late; the measurements behind them are in
#: docs/results.md, "The scoring-memory estimate".
SCORING_UNITS = {"forward": (5.0, 0.25), "graph": (5.0, 2.0)}


def scoring_bytes(
    n: int, chunk: int, dim: int, net: torch.nn.Module, laplacian: Laplacian, itemsize: int
) -> int:
    """Estimated peak memory of scoring ``n`` points ``chunk`` at a time: the points (NumPy's
    float64 draw and the tensor), the density's float64 arrays, and one chunk's activations
    and derivative intermediates (:data:`SCORING_UNITS`)."""
    linear = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    width = max((m.out_features for m in linear[:-1]), default=1)
    depth = max(len(linear) - 1, 1)
    method = getattr(laplacian, "method", "forward")
    a, b = SCORING_UNITS["forward" if method == "forward" else "graph"]
    directions = (min(dim, laplacian.probes) if method == "hutchinson" else dim) + 2
    per_point = itemsize * width * directions * (a + b * depth)
    return int(n * (dim * (8 + itemsize) + 32) + min(chunk, n) * per_point)


def _round_down(n: int) -> int:
    """``n`` to its leading digit: 487,123 -> 400,000."""
    scale = 10 ** (len(str(n)) - 1)
    return max(n // scale * scale, 1)


def check_sizes(pde: PDE, sampler: Sampler, device: DeviceSpec) -> None:
    """Refuses, before training, arrays whose size is known and exceeds the free memory: the
    PDE's test set (float64, built on the host) and a dense sampler's candidate set."""
    gib = 2**30
    host = available_bytes(torch.device("cpu"))
    n_test = getattr(pde, "n_test", None)
    if host is not None and n_test:
        need = 2 * n_test * pde.dim * 8  # the points and NumPy's draw they come from
        if need > host:
            raise ConfigError(
                f"pde.n_test={n_test} at pde.dim={pde.dim} is not allowed here: the test set "
                f"needs about {need / gib:.1f} GiB and {host / gib:.1f} GiB are free; lower "
                "pde.n_test or pde.dim"
            )
    n_dense = getattr(sampler, "n_dense", None)
    free = available_bytes(device.device)
    if free is not None and n_dense:
        need = n_dense * pde.dim * device.dtype.itemsize
        if need > free:
            size = dense_key(sampler)
            raise ConfigError(
                f"{size}={n_dense} at pde.dim={pde.dim} is not allowed here: the "
                f"dense set alone needs {need / gib:.1f} GiB and {free / gib:.1f} GiB are "
                f"free on {device.device}; lower {size}"
            )


def dense_key(sampler: Sampler) -> str:
    """The config key of a sampler's scored set: ``sampler.n_dense`` (RAD, RAR), or the key
    the sampler names in ``DENSE_KEY`` (rsmote_hybrid: ``n_candidates``)."""
    return f"sampler.{getattr(sampler, 'DENSE_KEY', 'n_dense')}"


def check_scoring(
    pde: PDE, sampler: Sampler, device: DeviceSpec, net: torch.nn.Module, laplacian: Laplacian
) -> None:
    """Refuses, before training, a dense set whose scoring (the set and one pass's
    intermediates, :func:`scoring_bytes`) exceeds the free memory, suggesting a
    ``sampler.chunk_size`` whose scoring takes at most half of it."""
    n_dense = getattr(sampler, "n_dense", None)
    free = available_bytes(device.device)
    if free is None or not n_dense:
        return
    gib, item = 2**30, device.dtype.itemsize
    chunk = min(getattr(sampler, "chunk_size", None) or n_dense, n_dense)
    need = scoring_bytes(n_dense, chunk, pde.dim, net, laplacian, item)
    if need <= free:
        return
    alone = scoring_bytes(n_dense, 0, pde.dim, net, laplacian, item)
    per_point = scoring_bytes(n_dense, 1, pde.dim, net, laplacian, item) - alone
    fits = max(free // 2 - alone, 0) // per_point  # half the free memory: room for training
    size = dense_key(sampler)
    if chunk < n_dense:
        key, value, what = "sampler.chunk_size", chunk, f"{chunk} points at a time"
    else:
        key, value, what = size, n_dense, "in one pass"
    advice = f"set sampler.chunk_size={_round_down(fits)} or lower" if fits else "it cannot"
    raise ConfigError(
        f"{key}={value} at pde.dim={pde.dim} is not allowed here: scoring the dense set "
        f"{what} needs about {need / gib:.1f} GiB (the set and the network's derivative "
        f"intermediates) and {free / gib:.1f} GiB are free on {device.device}; {advice}, or "
        f"lower {size}"
    )


#: points where :func:`check_representable` evaluates the PDE, and the seed they come from
CHECK_POINTS, CHECK_SEED = 16, 0


def _changed_numbers(node: DictConfig, group: str) -> list[str]:
    """``group.key=value`` for each number of ``node`` that differs from its class's default:
    the values a user chose, which the message of :func:`check_representable` names."""
    try:
        defaults = {p.name: p.default for p in constructor_parameters(get_class(node._target_))}
    except Exception:  # noqa: BLE001 - a class that cannot be imported was refused already
        defaults = {}
    out = []
    for key, value in node.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and key in defaults and value != defaults[key]:
            out.append(f"{group}.{key}={value!r}")
    return out


def check_representable(
    cfg: DictConfig, pde: PDE, model: Solution, device: DeviceSpec, laplacian: Laplacian
) -> None:
    """Refuses PDE parameters whose exact solution or loss is not a finite number in the run's
    dtype (``pde.k=1e200``: k^2 overflows; ``pde.beta=1e308``: the residual's square does):
    the exact solution (where the PDE has one) and the mean squared residual of the initial
    network, on :data:`CHECK_POINTS` points of the domain from a generator of their own.

    Args:
        cfg: the composed config (the message names its changed ``pde.*`` numbers).
        pde: the run's PDE.
        model: the initial network with its constraint, on the run's device and dtype.
        device: the run's device and dtype.
        laplacian: the run's Laplacian; it is copied (uncompiled), so that the run's probe
            generator is left as it was.
    """
    probe = copy.deepcopy(laplacian)
    probe.compile = False  # a compiled Laplacian would compile here, for 16 points
    generator = torch.Generator().manual_seed(CHECK_SEED)
    x = pde.domain.sample(CHECK_POINTS, generator, device.device, device.dtype)
    where = f" in {device.dtype_name}"  # a finite number in float64 may not be in float32
    try:
        exact = pde.exact(x)
        if exact is not None and not bool(torch.isfinite(exact).all()):
            problem = "the exact solution is not a finite number"
        else:
            residual = Scorer(pde, model, probe)(x, count=False)
            problem = None
            if not bool(torch.isfinite(residual.square().mean())):
                problem = "the PDE's loss is not a finite number"
    except ArithmeticError as exc:  # Python's float arithmetic (k ** 2), whatever the dtype
        where, problem = "", f"the PDE's residual overflows ({type(exc).__name__})"
    if problem is None:
        return
    chosen = _changed_numbers(cfg.pde, "pde") or [f"pde={pde.name}"]
    advice = "lower them" if len(chosen) > 1 else "lower it"
    if where and device.dtype != torch.float64:
        advice += " or use device.dtype=float64"
    raise ConfigError(f"{', '.join(chosen)} is not allowed{where}: {problem}; {advice}")


def warn_unused(node: DictConfig, pde: PDE) -> None:
    """A warning line for each ``pde.*`` value chosen (not the class's default) that the PDE
    does not use (:meth:`PDE.effective_settings`: ``pde.n_test`` where the reference is a
    fixed grid); the record holds the value in effect."""
    try:
        defaults = {p.name: p.default for p in constructor_parameters(type(pde))}
    except Exception:  # noqa: BLE001 - no signature: every value counts as chosen
        defaults = {}
    for key, value in pde.effective_settings().items():
        given = node.get(key)
        if given is not None and given != defaults.get(key) and given != value:
            log.warning(
                "pde.%s=%s is not used by pde=%s at pde.dim=%d: the run uses %s and its "
                "record says pde.%s=%s",
                key,
                given,
                pde.name,
                pde.dim,
                value,
                key,
                value,
            )


def single_stage_rounds(sampler: Sampler, rounds: int) -> int:
    """The rounds a run has: ``rounds``, or 0 for a sampler whose recipe is one training stage
    (``random_r``), with a warning where ``rounds`` was set to other than its default."""
    if not sampler.single_stage or rounds == 0:
        return rounds
    level = logging.INFO if rounds == DEFAULT_ROUNDS else logging.WARNING
    log.log(
        level,
        "sampler %s trains in one stage: rounds=%d is not used; the run has no rounds and "
        "its record says rounds=0",
        sampler.name,
        rounds,
    )
    return 0


def check_top_level(cfg: DictConfig) -> None:
    """Range checks for ``seed``, ``n_points`` and ``rounds``."""
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not 0 <= cfg.seed < 2**63:
        raise ConfigError(f"seed={cfg.seed!r} is not allowed; it must be an integer in [0, 2^63)")
    if not isinstance(cfg.n_points, int) or cfg.n_points < MIN_POINTS:
        raise ConfigError(
            f"n_points={cfg.n_points!r} is not allowed; it must be an integer >= {MIN_POINTS}"
        )
    if not isinstance(cfg.rounds, int) or cfg.rounds < 0:
        raise ConfigError(f"rounds={cfg.rounds!r} is not allowed; it must be an integer >= 0")


def build(cfg: DictConfig, training: bool = True) -> Built:
    """Builds and checks every object of a run.

    Args:
        cfg: the composed config (``conf/config.yaml`` plus overrides).
        training: False where the run is only loaded (``load_run``): the memory that the
            dense set's scoring would take is not checked.

    Returns:
        The :class:`Built` objects, with the model on the run's device and dtype.

    Raises:
        ConfigError: for any value that is not allowed.
    """
    check_keys(cfg)
    check_finite(cfg)
    check_top_level(cfg)
    if training and cfg.get("logger") is not None:  # logger=mlflow: installed, keys allowed
        _build(cfg.logger, "logger")
    device = _build(cfg.device, "device")
    laplacian = _build(cfg.laplacian, "laplacian", seed=cfg.seed)
    pde = _build(cfg.pde, "pde")
    warn_unused(cfg.pde, pde)
    sampler = _build(cfg.sampler, "sampler")
    generator = torch.Generator().manual_seed(cfg.seed)
    try:  # the sampler refuses an n_points or rounds it cannot work with
        sampler.bind(pde.domain, cfg.n_points, cfg.rounds, generator, device.device, device.dtype)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    check_sizes(pde, sampler, device)
    schedule = _build(cfg.optimizer, "optimizer")
    schedule, compile_note = schedule.decide_compile(
        device.device.type, cfg.rounds, sampler.single_stage
    )
    seed_everything(cfg.seed)  # the network's initial weights depend on the seed only
    net: MLP = _build(cfg.model, "model", in_dim=pde.dim)
    if training:
        check_scoring(pde, sampler, device, net, laplacian)
    model = Solution(net, pde.constraint).to(device=device.device, dtype=device.dtype)
    check_representable(cfg, pde, model, device, laplacian)
    return Built(
        pde=pde,
        sampler=sampler,
        model=model,
        schedule=schedule,
        device=device,
        laplacian=laplacian,
        seed=cfg.seed,
        n_points=cfg.n_points,
        rounds=single_stage_rounds(sampler, cfg.rounds),
        generator=generator,
        compile_note=compile_note,
    )
