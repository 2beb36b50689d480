"""One run from built objects to its files (the record, history, points, plots), whatever
happens during training."""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import signal
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

from pinn_exp.factory import Built
from pinn_exp.io import records, tracker
from pinn_exp.io.record import COLLOCATION, HISTORY, METRICS, PLOTS, RESIDUAL, RunRecord
from pinn_exp.metrics import registry as metrics
from pinn_exp.metrics.memory import HWM, is_allocation_failure, peak_rss_mb, reset_peak_rss
from pinn_exp.training.ensemble import EnsembleTrainer, Unbatchable
from pinn_exp.training.trainer import Diverged, Trainer

log = logging.getLogger(__name__)


def versions() -> dict[str, str | None]:
    """Versions of Python, the main libraries and CUDA, for the record."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for package in (
        "pinn-exp",
        "torch",
        "numpy",
        "scipy",
        "scikit-learn",
        "imbalanced-learn",
        "hydra-core",
    ):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    out["cuda"] = torch.version.cuda
    return out


#: the record fields that the command line can fill from the config alone
META_FIELDS = (
    "pde",
    "sampler",
    "dim",
    "n_points",
    "ratio",
    "seed",
    "device",
    "dtype",
    "rounds",
    "laplacian",
    "overrides",
)


def base_record(built: Built | None, meta: dict) -> RunRecord:
    """The fields known before training; ``meta`` supplies them when nothing could be built."""
    known = {key: meta.get(key) for key in META_FIELDS}
    known["overrides"] = list(meta.get("overrides") or [])
    record = RunRecord(versions=versions(), **known)
    if built is not None:
        record.update(
            # the config option's name (rad_50k, rsmote_paper) where known, so failed and
            # finished runs of one option share a row in summaries
            pde=meta.get("pde") or built.pde.name,
            sampler=meta.get("sampler") or built.sampler.name,
            sampler_class=type(built.sampler).__name__,
            dim=built.pde.dim,
            n_points=built.n_points,
            **{"ratio": None, **built.sampler.record_fields()},  # the report reads ratio
            seed=built.seed,
            device=built.device.description,
            dtype=built.device.dtype_name,
            threads=built.device.threads,
            rounds=built.rounds,
            laplacian=built.laplacian.method,
            lbfgs_impl=built.schedule.lbfgs_impl,
            compiled=built.schedule.compile,
            # the values in effect of pde keys the PDE does not use as given (pde.n_test at a
            # grid reference): the report reads them in place of the config's
            **{f"pde.{k}": v for k, v in built.pde.effective_settings().items()},
        )
    return record


def write(out_dir: Path, record: RunRecord) -> None:
    """Writes ``record`` to the run's ``metrics.json``, atomically."""
    records.write_json(Path(out_dir) / METRICS, record.to_json())


def write_failure(
    out_dir: Path, meta: dict, message: str, status: str = "failed", phase: str = "config"
) -> dict:
    """Record of a run that could not even be built: status ``failed`` in phase ``config``
    (a bad value), or ``oom`` in phase ``build`` (an allocation that failed)."""
    record = base_record(None, meta).update(status=status, error=message, phase=phase)
    write(out_dir, record)
    return record.to_json()


def run(
    built: Built,
    out_dir: Path,
    resume: bool = False,
    progress: bool = True,
    meta: dict | None = None,
    step_hook=None,
    config: dict | None = None,
) -> dict:
    """Trains, then writes metrics.json, history.csv, collocation.npz and the plots.

    The record is written whatever happens: ``status`` is ``ok``, ``diverged`` (non-finite
    loss; the last completed round's checkpoint is kept), ``oom`` (with the phase) or
    ``failed`` (with the message).

    Args:
        built: the objects from :func:`pinn_exp.factory.build`.
        out_dir: the run's directory; nothing is written elsewhere.
        resume: continue from ``out_dir/checkpoint.pt``.
        progress: show a progress bar.
        meta: extra fields for the record (``overrides``).
        step_hook: passed to the :class:`Trainer` (fault injection in tests).
        config: the job's resolved config, kept in the checkpoint (a resume is compared
            with it).

    Returns:
        The record written to metrics.json.

    Raises:
        Interrupted: SIGTERM or SIGINT arrived; the record says so (status ``failed``,
            unless only the files of a finished run were being written).
    """
    if _deferring:
        raise Deferred(
            dict(
                built=built,
                out_dir=Path(out_dir),
                resume=resume,
                progress=progress,
                meta=meta,
                step_hook=step_hook,
                config=config,
            )
        )
    out_dir = Path(out_dir)
    record = base_record(built, meta or {})
    if resume:  # the same run in the experiment tracker (logger=mlflow)
        record.mlflow_run_id = tracker.recorded_run_id(out_dir)
    write(out_dir, record)
    # from here on a signal ends the run through the handlers below, with its record
    signals = _Signals()
    start = time.perf_counter()
    trainer: Trainer | None = None
    try:
        reset_peak_rss()
        built.device.apply()
        trainer = Trainer(built, out_dir=out_dir, progress=progress, step_hook=step_hook)
        trainer.run_config = config
        trainer.run(resume=resume)
        record.status = "ok"
    except Diverged as exc:
        record.update(
            status="diverged", error=str(exc), round=exc.round_index, step=exc.step, phase=exc.phase
        )
    except KeyboardInterrupt:  # where no handler could be set (outside the main thread)
        record.update(
            status="failed",
            error=ENDING[signal.SIGINT],
            phase=trainer.phase if trainer else "setup",
        )
        raise
    except Terminated as exc:
        # SLURM's time limit and scancel send SIGTERM, Ctrl-C SIGINT: record what was done,
        # then end the process as the signal would (128 + its number), after the files below
        record.update(
            status="failed", error=ENDING[exc.signum], phase=trainer.phase if trainer else "setup"
        )
    except Exception as exc:  # noqa: BLE001 - every failure must leave a record
        oom = is_allocation_failure(exc)
        record.update(
            status="oom" if oom else "failed",
            error=f"{type(exc).__name__}: {exc}",
            phase=trainer.phase if trainer else "setup",
        )
        if isinstance(exc, OSError):  # a full disk, a quota: the message says it all
            log.error("run failed: %s", record.error)
        elif not oom:
            log.error("run failed:\n%s", traceback.format_exc())
    finally:
        signals.defer()  # a signal from here on is remembered: the record must be written
        built.device.release()
        record.wall_time_s = trainer.elapsed_s() if trainer else time.perf_counter() - start
        record.wall_time_session_s = time.perf_counter() - start
        record.update(
            peak_cpu_rss_mb=peak_rss_mb(),
            cpu_rss_start_mb=HWM.start_mb,
            peak_cpu_rss_increase_mb=HWM.increase_mb(),
            cpu_peak_method=HWM.label,
        )
        if trainer is not None:
            _fill(record, trainer)
        _write_final(out_dir, record)  # first: it must never be lost
        if trainer is not None:
            _write_files(out_dir, trainer, record)
        tracker.track_run(out_dir, record, config)  # logger=mlflow: mirror the files
        if built.device.device.type == "cuda":
            torch.cuda.empty_cache()
        signals.restore()
    if signals.received is not None:
        signals.forward()
        said = ENDING[signals.received]
        raise Interrupted(said if record.status != "ok" else f"ok, then {said}", signals.received)
    return record.to_json()


class Deferred(BaseException):
    """:func:`run` was called within :func:`defer`: ``request`` holds its arguments, for a
    caller that trains several runs together (the batched launcher). A BaseException, so
    that nothing between the caller and :func:`run` takes it for a failure of the run."""

    def __init__(self, request: dict):
        super().__init__("deferred")
        self.request = request


_deferring = False


@contextmanager
def defer():
    """Within this context :func:`run` trains nothing: it raises :class:`Deferred` with its
    arguments, after everything before it (the checks, the run's config) was done."""
    global _deferring
    _deferring = True
    try:
        yield
    finally:
        _deferring = False


#: the signals that end a run with its record written, and what the record says
ENDING = {
    signal.SIGTERM: "terminated (SIGTERM)",
    signal.SIGINT: "interrupted (SIGINT)",
    # SLURM's warnings before a time limit or pre-emption (sbatch --signal; submitit's
    # is USR2): the record is written, then the handler that was there runs (submitit's
    # requeues the job, which resumes from its checkpoint)
    signal.SIGUSR1: "terminated (SIGUSR1)",
    signal.SIGUSR2: "terminated (SIGUSR2)",
}


class Terminated(BaseException):
    """SIGTERM or SIGINT arrived during a run (a BaseException, so no ``except Exception``
    eats it)."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum


class Interrupted(SystemExit):
    """The run ended on a signal, its record and files written: exit status 128 + signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(128 + signum)
        self.message = message

    def __str__(self) -> str:
        return self.message


class _Signals:
    """Turns the first SIGTERM or SIGINT of a run into :class:`Terminated`; after
    :meth:`defer` (while the record and files are written), and for a second signal, it is
    only remembered in ``received``. Outside the main thread no handler can be set."""

    def __init__(self):
        self.received: int | None = None
        self.raising = True
        self.previous: dict[int, object] = {}
        for signum in ENDING:
            try:
                self.previous[signum] = signal.signal(signum, self._handle)
            except ValueError:
                pass

    def _handle(self, signum, frame) -> None:
        if self.received is None:
            self.received = signum
        if self.raising:
            self.raising = False
            raise Terminated(signum)

    def defer(self) -> None:
        self.raising = False

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def forward(self) -> None:
        """Calls the handler that was there before the run for the signal received (submitit
        requeues the job on SIGUSR2), unless it is Python's own Ctrl-C handler."""
        handler = self.previous.get(self.received)
        if callable(handler) and handler is not signal.default_int_handler:
            handler(self.received, None)


def _write_final(out_dir: Path, record: RunRecord) -> None:
    """Writes the final record; where the disk is full, in place (the old record's blocks
    are freed first), with the write's failure as the error, so no record stays running."""
    try:
        write(out_dir, record)
        return
    except OSError as exc:
        failure = f"{type(exc).__name__}: {exc}"
    if record.status in ("ok", "running"):
        record.update(status="failed", error=f"the record could not be written ({failure})")
    log.error("writing %s failed: %s", METRICS, failure)
    for content in (record.to_json(), {"status": record.status, "error": record.error}):
        try:
            records.write_json_in_place(Path(out_dir) / METRICS, content)
            return
        except OSError:
            continue


def _fill(record: RunRecord, trainer: Trainer) -> None:
    state, meter = trainer.state, trainer.meter
    # the last round whose end is complete (its checkpoint written): a failure after its
    # evaluation but before its checkpoint belongs to the round, not to the next one
    completed = trainer.saved_round
    if record.round is None and record.status != "ok":
        record.round = completed + 1
    ok = record.status == "ok"  # a diverged or failed run has no final metrics
    record.metrics = {
        name: values[-1] if ok and values else None for name, values in state.metrics.items()
    }
    record.metrics_per_round = dict(state.metrics)
    record.update(
        peak_gpu_mem_mb=meter.peak(),
        peak_gpu_mem_mb_train=meter.peak("train"),
        peak_gpu_mem_mb_sampling=meter.peak("sampling"),
        peak_gpu_reserved_mb=meter.reserved(),
        **meter.record_fields(),
        time_train_s=meter.time_s.get("train", 0.0),
        time_sampling_s=meter.time_s.get("sampling", 0.0),
        n_residual_evals=trainer.scorer.n_evals,
        round_stats=state.round_stats,
        last_completed_round=completed,
        compiled=trainer.schedule.compile,  # false where a loss torch.compile refused ran eager
    )


def _write_files(out_dir: Path, trainer: Trainer, record: RunRecord) -> None:
    # matplotlib is imported here, after training, not when the command starts
    from pinn_exp.report import run_plots

    state = trainer.state
    errors = state.metrics.get(metrics.PRIMARY, [])
    title = run_plots.run_title(
        record.pde, record.sampler, record.seed, record.metrics.get(metrics.PRIMARY), record.status
    )
    labels = trainer.pde.coordinate_names
    try:
        records.write_history(out_dir / HISTORY, state.history)
        records.write_arrays(out_dir / COLLOCATION, state.collocation)
        if state.residual_maps:  # the grid as (n_1, ..., n_d, d), then one map per round
            points, shape = trainer.grid
            grid = points.cpu().numpy().reshape(*shape, -1)
            records.write_arrays(out_dir / RESIDUAL, {"grid": grid, **state.residual_maps})
            # the last round with both a map and a point set (a failure can fall between them)
            last = max(
                int(name.rsplit("_", 1)[1])
                for name in state.residual_maps
                if f"round_{name.rsplit('_', 1)[1]}" in state.collocation
            )
            run_plots.plot_residual(
                out_dir / PLOTS["residual"],
                grid,
                state.residual_maps[f"residual_round_{last}"],
                state.collocation[f"round_{last}"],
                labels,
                title,
            )
        run_plots.plot_loss(out_dir / PLOTS["loss"], pd.DataFrame(state.history), title)
        run_plots.plot_error(out_dir / PLOTS["error"], errors, title)
        if state.collocation:
            run_plots.plot_points(out_dir / PLOTS["points"], state.collocation, labels, title)
        if errors:  # a model trained for at least one round: show what it predicts
            last = state.collocation[f"round_{state.round_index}"]
            run_plots.plot_solution(
                out_dir / PLOTS["solution"],
                trainer.x_test.cpu().numpy(),
                trainer.u_test.cpu().numpy(),
                trainer.final_prediction().cpu().numpy(),  # the last round's, not again
                last,
                labels,
                title,
            )
    except OSError as exc:  # a full disk, a quota: one line (resume=true writes them later)
        log.warning("writing the run's files failed: %s", exc)
    except Exception:  # noqa: BLE001 - metrics.json is written already; report and go on
        log.warning("writing the run's files failed:\n%s", traceback.format_exc())


def run_ensemble(
    builts: list[Built],
    out_dirs: list[Path],
    metas: list[dict] | None = None,
    configs: list[dict | None] | None = None,
    progress: bool = True,
    step_hook=None,
    vectorize: bool = False,
) -> list[dict]:
    """Runs that differ only in their seed, trained together
    (:class:`~pinn_exp.training.ensemble.EnsembleTrainer`), each writing exactly the files
    that :func:`run` writes for it. A member that diverges is recorded ``diverged`` and the
    others go on; a signal or a failure of the ensemble is recorded in every member that had
    not ended. Each record says how the member ran (``batched``: ``loop``, or ``vmap`` where
    ``vectorize`` could be used; ``ensemble_size``) and that its times are a fair share of the
    ensemble's (``time_shared``): the ensemble's wall time over S, each training stage's time
    over its members; a member's sampling and evaluation are its own.

    Args:
        builts: each member's objects from :func:`pinn_exp.factory.build`.
        out_dirs: each member's directory.
        metas: each member's extra record fields.
        configs: each member's resolved config, kept in its checkpoints.
        progress: show a progress bar.
        step_hook: passed to the ensemble (fault injection in tests).
        vectorize: one ``vmap`` over the members (EnsembleTrainer).

    Returns:
        The members' records, in order.

    Raises:
        Interrupted: as :func:`run`, after every member's record is written.
        Unbatchable: the members cannot be trained as one, found before anything was
            trained: nothing is recorded and each member's generator is as it was, so
            :func:`run` runs each as its single run.
    """
    out_dirs = [Path(d) for d in out_dirs]
    metas = metas or [{} for _ in builts]
    configs = configs or [None for _ in builts]
    size = len(builts)
    records = [
        base_record(b, m).update(
            batched="vmap" if vectorize else "loop", ensemble_size=size, time_shared=True
        )
        for b, m in zip(builts, metas)
    ]
    # building the trainers draws each member's soft-term points from its generator: where
    # the members cannot be batched, the generators are put back for their single runs
    generators = [b.generator.get_state() for b in builts]
    unbatchable: Unbatchable | None = None
    signals = _Signals()
    start = time.perf_counter()
    trainers: list[Trainer] = []
    ensemble: EnsembleTrainer | None = None

    def fail_open(**fields) -> None:  # every member that has not ended
        for k, record in enumerate(records):
            if record.status not in ("ok", "diverged"):
                record.update(**fields, phase=trainers[k].phase if k < len(trainers) else "setup")

    def diverged(k: int, exc: Diverged) -> None:
        records[k].update(
            status="diverged", error=str(exc), round=exc.round_index, step=exc.step, phase=exc.phase
        )

    try:
        reset_peak_rss()
        builts[0].device.apply()
        for built, out_dir, config in zip(builts, out_dirs, configs):
            trainer = Trainer(built, out_dir=out_dir, progress=False)
            trainer.run_config = config
            trainers.append(trainer)
        ensemble = EnsembleTrainer(
            trainers, progress=progress, step_hook=step_hook, vectorize=vectorize
        )
        for out_dir, record in zip(out_dirs, records):
            record.batched = "vmap" if ensemble.vectorize else "loop"  # the mode that runs
            write(out_dir, record)
        ensemble.run()
        for record in records:
            record.status = "ok"
    except Unbatchable as exc:  # found before training: nothing is recorded
        unbatchable = exc
        for built, state in zip(builts, generators):
            built.generator.set_state(state)
    except KeyboardInterrupt:
        fail_open(status="failed", error=ENDING[signal.SIGINT])
        raise
    except Terminated as exc:
        fail_open(status="failed", error=ENDING[exc.signum])
    except Exception as exc:  # noqa: BLE001 - every failure must leave a record
        oom = is_allocation_failure(exc)
        fail_open(status="oom" if oom else "failed", error=f"{type(exc).__name__}: {exc}")
        if not oom:
            log.error("ensemble failed:\n%s", traceback.format_exc())
    finally:
        signals.defer()
        for k, exc in ensemble.diverged.items() if ensemble is not None else ():
            diverged(k, exc)  # whatever happened to the others
        builts[0].device.release()
        # each member's times are a fair share of the ensemble's, taken before any member's
        # files are written (one member's time must not depend on its place in the ensemble)
        session_s = (time.perf_counter() - start) / size
        wall_s = max((t.elapsed_s() / size for t in trainers), default=session_s)
        written = list(zip(out_dirs, records)) if unbatchable is None else []
        for k, (out_dir, record) in enumerate(written):
            trainer = trainers[k] if k < len(trainers) else None
            record.wall_time_s, record.wall_time_session_s = wall_s, session_s
            record.update(
                peak_cpu_rss_mb=peak_rss_mb(),
                cpu_rss_start_mb=HWM.start_mb,
                peak_cpu_rss_increase_mb=HWM.increase_mb(),
                cpu_peak_method=HWM.label,
            )
            if trainer is not None:
                _fill(record, trainer)
            _write_final(out_dir, record)
            if trainer is not None:
                _write_files(out_dir, trainer, record)
            tracker.track_run(out_dir, record, configs[k])  # logger=mlflow
        if builts[0].device.device.type == "cuda":
            torch.cuda.empty_cache()
        signals.restore()
    if signals.received is not None:
        signals.forward()
        said = ENDING[signals.received]
        ok = all(r.status == "ok" for r in records)
        raise Interrupted(said if not ok else f"ok, then {said}", signals.received)
    if unbatchable is not None:
        raise unbatchable
    return [record.to_json() for record in records]
