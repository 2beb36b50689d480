"""A sweep's bookkeeping from its start to its end, for the guard and for Hydra's callback.

* ``SummaryCallback`` (registered in conf/config.yaml): a progress line after each job;
  when the sweep ends, summary.csv, summary.md and the plots in the sweep directory, a line
  naming the jobs that did not finish ok, and exit status 1 when none did.
* ``watch(config)`` (called by the guard when a sweep starts): at exit of a sweep that did
  not end normally (a launcher that died with a killed worker, an exception in Hydra), the
  summary of what is on disk and the command that finishes the sweep.
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import re
import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pinn_exp.hydra_adapter import split_override

#: the file that claims a sweep directory for one sweep (created exclusively by the guard)
SWEEP_CLAIM = ".sweep"

log = logging.getLogger(__name__)

#: the exit status of a sweep in which no job finished ok
ALL_FAILED = 1
#: at most this many failed jobs are named on the sweep's last line
NAMED_FAILURES = 10


def swept_keys(config: DictConfig) -> list[str]:
    """Config keys the sweep varies (``a=1,2`` on the command line or in sweeper params)."""
    axes = dict(config.hydra.sweeper.get("params") or {})
    for override in config.hydra.overrides.task:
        key, value = split_override(override)
        if "," in value:
            axes[key] = value
    return [k for k in axes if "." in k and "_target_" not in k and not k.startswith("hydra.")]


def summary_rows(rows: str, cols: str, swept: list[str]) -> str:
    """The table's rows: ``rows`` plus every swept key other than ``seed`` and the columns, so
    that, e.g., a sweep over ``sampler.ratio`` is not averaged over lambda."""
    keys = [k for k in rows.split(",") if k]
    extra = [k for k in swept if k not in keys and k not in cols.split(",") and k != "seed"]
    return ",".join(keys + extra)


#: the file Hydra's sweeper writes into the sweep's folder when a sweep (or its resume) starts
MULTIRUN_FILE = "multirun.yaml"


def finished_jobs(sweep_dir: Path) -> dict[str, int]:
    """Jobs of a sweep directory by the status of their record (``running`` while they run).
    A record that did not end ok and is older than the sweep's start (its ``multirun.yaml``)
    is an earlier sweep's, which a resumed sweep runs again: counted ``running`` (to do)."""
    from pinn_exp.io import record

    try:
        started = (Path(sweep_dir) / MULTIRUN_FILE).stat().st_mtime
    except OSError:
        started = None
    counts: dict[str, int] = {}
    for path in Path(sweep_dir).glob(f"*/{record.METRICS}"):
        if path.parent.is_symlink():  # another run's folder, refused as a job's (guard)
            continue
        try:
            status = json.loads(path.read_text()).get("status", "running")
            if status != "ok" and started is not None and path.stat().st_mtime < started:
                status = "running"
        except (OSError, ValueError, AttributeError):
            status = "running"
        counts[status] = counts.get(status, 0) + 1
    return counts


def write_sweep_summary(config: DictConfig):
    """summary.csv, summary.md and the plots of the sweep ``config`` describes, laid out by
    its ``report`` keys; returns the runs' frame."""
    from pinn_exp.report.summary import write_summary

    report = config.report
    sweep_dir = Path(config.hydra.sweep.dir)
    return write_summary(
        [sweep_dir],
        out_dir=sweep_dir,
        rows=summary_rows(report.rows, report.cols, swept_keys(config)),
        cols=report.cols,
        metric=report.metric,
        baseline=report.get("baseline"),  # None: rad when the sweep ran it
    )


class SummaryCallback(Callback):
    """``on_job_end``: a line saying how many of the sweep's jobs are done (counted from the
    records on disk, so also right with parallel launchers). ``on_multirun_end``: summary.csv,
    summary.md and plots in the sweep directory, also when some jobs failed.
    ``python -m pinn_exp.report DIR`` rebuilds them at any time."""

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from pinn_exp.report.runs import expected_jobs

        try:
            if config.hydra.mode is None or str(config.hydra.mode) != "RunMode.MULTIRUN":
                return
            sweep_dir = Path(config.hydra.sweep.dir)
            counts = finished_jobs(sweep_dir)
            done = sum(n for status, n in counts.items() if status != "running")
            # a job's own config holds its own overrides; the sweep's are in multirun.yaml
            jobs = expected_jobs(sweep_dir)
            total = len(jobs) if jobs is not None else None
            by_status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s != "running")
            line = f"sweep: {done} of {total or '?'} jobs done" + (
                f" ({by_status})" if by_status else ""
            )
            if line == _SWEEP.get("progress"):  # the members of an ensemble end together
                return
            _SWEEP["progress"] = line
            log.info("%s", line)
        except Exception:  # noqa: BLE001 - a progress line must never fail a job
            log.debug("no sweep progress line", exc_info=True)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        start_tracking(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_ended()
        sweep_dir = Path(config.hydra.sweep.dir)
        frame = None
        try:
            frame = write_sweep_summary(config)
            print(f"summary of {len(frame)} runs: {sweep_dir / 'summary.md'}")
        except Exception as exc:  # noqa: BLE001 - the sweep's runs are on disk; never fail here
            log.error("could not write the summary of %s: %s", sweep_dir, exc)
        failed, total = failed_jobs(sweep_dir, frame)
        end_tracking(config, "failed" if total and len(failed) == total else "ok")
        line = failure_line(failed, total)
        if line is None:
            return
        print(line, file=sys.stderr)
        if total and len(failed) == total:
            # Hydra's callbacks swallow exceptions, not SystemExit: this sets the exit status
            raise SystemExit(ALL_FAILED)


def _logger_node(config: DictConfig) -> dict | None:
    node = config.get("logger")
    return OmegaConf.to_container(node, resolve=True) if node is not None else None


def start_tracking(config: DictConfig) -> None:
    """``logger=mlflow``: the sweep's parent run, before any job starts
    (:mod:`pinn_exp.io.tracker`); a logger that cannot work here (MLflow not installed)
    refuses the sweep in one line, exit status 2, before any job."""
    node = _logger_node(config)
    if node is None:
        return
    from pinn_exp.io import tracker

    choices = config.hydra.runtime.get("choices") or {}
    overrides = [str(o) for o in config.hydra.overrides.task]
    params = config.hydra.sweeper.get("params") or {}  # an experiment file's sweep
    overrides += [f"{key}={value}" for key, value in params.items()]
    try:
        tracker.start_sweep(node, Path(config.hydra.sweep.dir), choices.get("pde"), overrides)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def end_tracking(config: DictConfig, status: str) -> None:
    """``logger=mlflow``: the sweep's summary files and plots on its parent run, which ends
    with ``status`` (``ok``, ``failed``: no job finished ok, ``killed``: cut short)."""
    _SWEEP["tracking_ended"] = True
    try:
        node = _logger_node(config)
        if node is not None:
            from pinn_exp.io import tracker

            tracker.end_sweep(node, Path(config.hydra.sweep.dir), status)
    except Exception as exc:  # noqa: BLE001 - the sweep's files are written; never fail here
        log.warning("mlflow: the sweep was not tracked: %s", exc)


def failed_jobs(sweep_dir: Path, frame=None) -> tuple[list[tuple[str, str]], int]:
    """The jobs of a sweep that did not finish ok, and the number of jobs.

    Args:
        sweep_dir: the sweep's folder.
        frame: its runs as the summary read them (``runs.collect_runs``); read here when None.

    Returns:
        ``([(job folder, status), ...], number of jobs)``; jobs that never started count as
        ``incomplete``.
    """
    if frame is None:
        from pinn_exp.report.runs import collect_runs

        try:
            frame = collect_runs([sweep_dir], relative_to=sweep_dir)
        except Exception:  # noqa: BLE001 - no listing is better than a failed sweep end
            log.debug("cannot list the jobs of %s", sweep_dir, exc_info=True)
            return [], 0
    if frame.empty or "status" not in frame.columns:
        return [], 0
    bad = frame[frame["status"] != "ok"]
    names = [Path(str(d)).name for d in bad["run_dir"]]
    return list(zip(names, bad["status"].astype(str))), len(frame)


def failure_line(failed: list[tuple[str, str]], total: int) -> str | None:
    """The sweep's last line about jobs that did not finish ok (None when all did).

    Args:
        failed: ``(job folder, status)`` of each job that did not finish ok.
        total: the number of jobs.

    Returns:
        ``"sweep: all 4 jobs failed: ..."`` or ``"sweep: 1 of 4 jobs did not finish ok: ..."``.
    """
    if not failed:
        return None
    named = ", ".join(f"{name} ({status})" for name, status in failed[:NAMED_FAILURES])
    more = f", and {len(failed) - NAMED_FAILURES} more" if len(failed) > NAMED_FAILURES else ""
    head = (
        f"sweep: all {total} jobs failed"
        if len(failed) == total
        else f"sweep: {len(failed)} of {total} jobs did not finish ok"
    )
    return f"{head}: {named}{more} (see summary.md)"


# set by on_multirun_end: a sweep that exits without it was cut short
_SWEEP = {"config": None, "ended": False, "tracking_ended": False}


def sweep_ended() -> None:
    """Marks the running sweep as ended normally (its summary is written by the callback)."""
    _SWEEP["ended"] = True


_PLAIN = re.compile(r"[\w/.\-+@%]+", re.ASCII)


def hydra_value(value: str) -> str:
    """``value`` as a Hydra override value: as it is when plain, else quoted (spaces,
    non-ASCII letters, ``:=,()[]{}`` and quotes survive Hydra's parser)."""
    if _PLAIN.fullmatch(value):
        return value
    # in a quoted value only the quote and the backslashes before it (or at the end) escape
    body = re.sub(
        r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\" + m.group(2) if m.group(2) else ""), value
    )
    return f"'{body}'"


def finish_command(config: DictConfig, sweep_dir: Path) -> str:
    """The shell command that finishes the sweep ``config`` (its jobs resumed)."""
    given = OmegaConf.to_container(config.hydra.overrides, resolve=False)  # as typed
    given = [*given.get("hydra", []), *given.get("task", [])]
    # hydra.mode=MULTIRUN is Hydra's own record of -m
    kept = [
        str(o)
        for o in given
        if not str(o).startswith(("resume=", "hydra.sweep.dir=", "hydra.mode="))
    ]
    words = [
        "python",
        "run.py",
        "-m",
        *kept,
        "resume=true",
        f"hydra.sweep.dir={hydra_value(str(sweep_dir))}",
    ]
    return " ".join(shlex.quote(w) for w in words)


def finish_cut_sweep() -> None:
    """At exit of a sweep that did not end normally (a launcher that died with a killed
    worker, an exception in Hydra): write the summary of what is on disk and say how to run
    the jobs that did not finish."""
    config = _SWEEP["config"]
    if config is None:
        return
    if _SWEEP["ended"]:  # refused before any job (a launcher's check): its parent run ends
        if not _SWEEP["tracking_ended"]:
            end_tracking(config, "killed")
        return
    sweep_dir = Path(config.hydra.sweep.dir)
    if not any(p.is_dir() for p in sweep_dir.iterdir()):
        # no job started (a sweep that did not compose): the folder is not another sweep's
        (sweep_dir / SWEEP_CLAIM).unlink(missing_ok=True)
        end_tracking(config, "killed")
        return
    try:
        frame = write_sweep_summary(config)
    except Exception as exc:  # noqa: BLE001 - exiting anyway; say what could not be done
        print(
            f"the sweep stopped early and its summary could not be written: {exc}", file=sys.stderr
        )
        end_tracking(config, "killed")
        return
    # every job without an ok record: those killed or never started (incomplete), and those
    # that failed (a signal, an error), which resume=true continues from their checkpoints
    end_tracking(config, "killed")
    statuses = list(frame["status"]) if "status" in frame else []
    not_ok = Counter(status for status in statuses if status != "ok")
    if statuses and not not_ok:  # a signal while the last job's files were written
        print(
            f"the sweep was stopped after all {len(frame)} of its jobs had finished ok "
            f"(summary: {sweep_dir / 'summary.md'}); nothing is left to run",
            file=sys.stderr,
        )
        return
    said = ", ".join(f"{n} {status}" for status, n in sorted(not_ok.items()))
    print(
        f"the sweep stopped before it ended: {sum(not_ok.values())} of {len(frame)} jobs did not "
        f"finish ({said or 'none'}; summary: {sweep_dir / 'summary.md'}). To finish them "
        f"(finished jobs are left as they are):\n  {finish_command(config, sweep_dir)}",
        file=sys.stderr,
    )


def watch(config: DictConfig) -> None:
    """Remembers the sweep ``config`` that starts now, so that a sweep cut short still
    writes its summary and says how to finish it (:func:`finish_cut_sweep`, at exit)."""
    _SWEEP.update(config=copy.deepcopy(config), ended=False, tracking_ended=False)
    atexit.register(finish_cut_sweep)
