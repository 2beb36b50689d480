"""The one driver of training: a single run (:func:`run`) and runs trained together
(:func:`run_ensemble`) both go through :func:`_drive`, which owns the signals, turns what
happens during training into each run's status, and writes each run's final record and
files, whatever happens."""

from __future__ import annotations

import logging
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from pinn_exp.io import tracker
from pinn_exp.io.record import RunRecord
from pinn_exp.metrics.memory import is_allocation_failure, reset_peak_rss
from pinn_exp.runner import files, handoff, recording
from pinn_exp.runner.signals import ENDING, Interrupted, Signals, Terminated
from pinn_exp.training.ensemble import EnsembleTrainer, Unbatchable
from pinn_exp.training.parts import Built
from pinn_exp.training.trainer import Diverged, Trainer

log = logging.getLogger(__package__)


class _Runs:
    """The runs a call trains (one for :func:`run`, S for :func:`run_ensemble`), their
    records, and what happened to them.

    Args:
        builts: each run's objects.
        out_dirs: each run's directory.
        records: each run's record, as written when the run started.
        configs: each run's resolved config (the tracker mirrors it).
        batched: the runs are trained together (the ensemble's messages).
    """

    def __init__(
        self,
        builts: list[Built],
        out_dirs: list[Path],
        records: list[RunRecord],
        configs: list[dict | None],
        batched: bool,
    ):
        self.builts, self.out_dirs, self.records, self.configs = builts, out_dirs, records, configs
        self.batched = batched
        #: each run's trainer, in order, once built
        self.trainers: list[Trainer] = []
        #: a run that diverged: index -> the exception; the others go on
        self.diverged: dict[int, Diverged] = {}
        #: the runs cannot be trained together; found before training, nothing is recorded
        self.unbatchable: Unbatchable | None = None
        # building the trainers draws each run's soft-term points from its generator: where
        # the runs cannot be batched, the generators are put back for their single runs
        self.generators = [b.generator.get_state() for b in builts]
        #: when the signal handlers were set (:func:`_drive`): the runs' session time starts
        self.start = 0.0

    def put_back(self, exc: Unbatchable) -> None:
        """The runs cannot be trained together: each generator as it was, nothing recorded."""
        self.unbatchable = exc
        for built, state in zip(self.builts, self.generators):
            built.generator.set_state(state)

    def fail_open(self, **fields) -> None:
        """Sets ``fields`` and the phase in the record of every run that has not ended."""
        for k, record in enumerate(self.records):
            if record.status not in ("ok", "diverged"):
                phase = self.trainers[k].phase if k < len(self.trainers) else "setup"
                record.update(**fields, phase=phase)

    def fail(self, exc: Exception) -> None:
        """Records ``exc`` (within its ``except`` clause) in every run that has not ended."""
        oom = is_allocation_failure(exc)
        self.fail_open(status="oom" if oom else "failed", error=f"{type(exc).__name__}: {exc}")
        if isinstance(exc, OSError) and not self.batched:  # a full disk, a quota: one line
            log.error("run failed: %s", self.records[0].error)
        elif not oom:
            log.error(
                "%s failed:\n%s", "ensemble" if self.batched else "run", traceback.format_exc()
            )

    def finish(self) -> None:
        """Writes each run's final record (first: it must never be lost), then its files."""
        for k, exc in self.diverged.items():  # whatever happened to the others
            self.records[k].update(
                status="diverged",
                error=str(exc),
                round=exc.round_index,
                step=exc.step,
                phase=exc.phase,
            )
        # each run's times and CPU memory peak are the ensemble's (times: a fair share),
        # taken before any run's files are written (one run's values must not depend on its
        # place in the ensemble); an ensemble is never resumed: its wall time is the session's
        size, now = len(self.records), time.perf_counter()
        session_s = (now - self.start) / size
        wall_s = (
            session_s
            if self.batched
            else max((t.elapsed_s(now) for t in self.trainers), default=session_s)
        )
        host_memory = recording.host_memory()
        written = zip(self.out_dirs, self.records) if self.unbatchable is None else ()
        for k, (out_dir, record) in enumerate(written):
            trainer = self.trainers[k] if k < len(self.trainers) else None
            record.wall_time_s, record.wall_time_session_s = wall_s, session_s
            record.update(**host_memory)
            if trainer is not None:
                recording.record_results(record, trainer)
            elif record.last_completed_round is None:  # ended before its trainer was built
                record.last_completed_round = -1
            recording.write_final(out_dir, record)
            if trainer is not None:
                files.write_files(out_dir, trainer, record)
            tracker.track_run(out_dir, record, self.configs[k])  # logger=mlflow: mirror files


def _drive(runs: _Runs, train: Callable[[], None]) -> list[dict]:
    """Calls ``train`` with the run's signal handlers set, then records how each run ended.

    Raises:
        Interrupted: a signal arrived; every record says so (status ``failed``, unless only
            the files of finished runs were being written), and the files are written.
        Unbatchable: as ``train`` raised it, with nothing recorded.
    """
    device = runs.builts[0].device
    # from here on a signal ends the runs through these handlers, with their records
    signals = Signals()
    runs.start = time.perf_counter()
    try:
        reset_peak_rss()
        device.apply()
        train()
        for record in runs.records:
            record.status = "ok"
    except Unbatchable as exc:  # found before training: nothing is recorded
        runs.put_back(exc)
    except KeyboardInterrupt:  # where no handler could be set (outside the main thread)
        runs.fail_open(status="failed", error=ENDING[signal.SIGINT])
        raise
    except Terminated as exc:
        # SLURM's time limit and scancel send SIGTERM, Ctrl-C SIGINT: record what was done,
        # then end the process as the signal would (128 + its number), after the files
        runs.fail_open(status="failed", error=ENDING[exc.signum])
    except Exception as exc:  # noqa: BLE001 - every failure must leave a record
        runs.fail(exc)
    finally:
        signals.defer()  # a signal from here on is remembered: the records must be written
        device.release()
        runs.finish()
        if device.device.type == "cuda":
            torch.cuda.empty_cache()
        signals.restore()
    if signals.received is not None:
        signals.forward()
        said = ENDING[signals.received]
        ok = all(record.status == "ok" for record in runs.records)
        raise Interrupted(said if not ok else f"ok, then {said}", signals.received)
    if runs.unbatchable is not None:
        raise runs.unbatchable
    return [record.to_json() for record in runs.records]


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
        Deferred: within :func:`pinn_exp.runner.defer`, with these arguments, untrained.
        Interrupted: SIGTERM or SIGINT arrived; the record says so (status ``failed``,
            unless only the files of a finished run were being written).
    """
    if handoff.deferring():
        request = dict(
            built=built,
            out_dir=Path(out_dir),
            resume=resume,
            progress=progress,
            meta=meta,
            step_hook=step_hook,
            config=config,
        )
        raise handoff.Deferred(request)
    out_dir = Path(out_dir)
    record = recording.base_record(built, meta or {})
    if resume:  # the same run in the experiment tracker (logger=mlflow)
        record.mlflow_run_id = tracker.recorded_run_id(out_dir)
        # a member of a batched ensemble resumed alone: its earlier rounds trained in the
        # ensemble, so it keeps how it ran, and its time is partly a share
        record.update(**recording.resumed_fields(out_dir))
    recording.write(out_dir, record)
    runs = _Runs([built], [out_dir], [record], [config], batched=False)

    def train() -> None:
        trainer = Trainer(built, out_dir=out_dir, progress=progress, step_hook=step_hook)
        trainer.run_config, trainer.started = config, runs.start  # the session's time is the run's
        runs.trainers.append(trainer)
        try:
            trainer.run(resume=resume)
        except Diverged as exc:
            runs.diverged[0] = exc

    return _drive(runs, train)[0]


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
    mode = "vmap" if vectorize else "loop"
    # one id for the members: shared values (times, memory) count once per ensemble
    ensemble_id = f"{out_dirs[0].resolve()}@{time.strftime('%Y-%m-%dT%H:%M:%S')}"
    records = [
        recording.base_record(b, m).update(
            batched=mode, ensemble_size=len(builts), ensemble_id=ensemble_id, time_shared=True
        )
        for b, m in zip(builts, metas)
    ]
    runs = _Runs(builts, out_dirs, records, configs, batched=True)

    def train() -> None:
        for built, out_dir, config in zip(builts, out_dirs, configs):
            trainer = Trainer(built, out_dir=out_dir, progress=False)
            trainer.run_config, trainer.started = config, runs.start
            runs.trainers.append(trainer)
        ensemble = EnsembleTrainer(
            runs.trainers, progress=progress, step_hook=step_hook, vectorize=vectorize
        )
        runs.diverged = ensemble.diverged  # filled as members diverge
        for out_dir, record in zip(out_dirs, records):
            record.batched = "vmap" if ensemble.vectorize else "loop"  # the mode that runs
            recording.write(out_dir, record)
        ensemble.run()

    return _drive(runs, train)
