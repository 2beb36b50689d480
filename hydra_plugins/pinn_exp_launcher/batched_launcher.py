"""``hydra/launcher=batched``: the jobs of a sweep that differ only in ``seed`` train as one
ensemble in this process (:func:`pinn_exp.runner.run_ensemble`).

Each job goes through the command line's own task function first, as with Hydra's basic
launcher: its output directory, ``.hydra/``, the guard's checks and ``config_resolved.yaml``;
only its training is deferred (:func:`pinn_exp.runner.defer`). Then the deferred jobs of each
group train together and each writes the files its single run writes. A group that cannot be
batched (:func:`pinn_exp.training.ensemble.unbatchable_reason`: a sampler that moves its
points within a stage, Hutchinson probes, torch's L-BFGS (``optimizer.lbfgs_impl=torch``, the
default), jobs that differ in more than the seed; or
whose trial batched loss and gradient, computed before training, fail or differ
from the members' own), and any job with ``resume=true``, runs one job after the other as
the basic launcher does, with a log line saying why. With ``vectorize``, a loss that
``vmap`` cannot transform is batched in the loop mode instead.

The launcher changes nothing in a job's config: a member is the single run with the same
overrides. An ensemble's L-BFGS is the device one, so a group batches where its jobs say
``optimizer.lbfgs_impl=device`` (or train by Adam alone). Key:
``vectorize`` (default false): one ``torch.func.vmap`` over the members' losses instead of
their losses one after the other (docs/performance.md).
"""

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.pinn_exp_launcher.member_logs import MemberLogs, log_key
from pinn_exp.hydra_adapter import BASIC_SWEEPER, no_callbacks, override_key

log = logging.getLogger(__name__)


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.pinn_exp_launcher.batched_launcher.BatchedLauncher"
    #: one vmap over the members' losses (fewer, larger kernels; round-off differs from
    #: single runs)
    vectorize: bool = False


ConfigStore.instance().store(
    group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="pinn_exp"
)


def group_key(overrides: Sequence[str]) -> tuple[str, ...]:
    """A job's overrides less its seed: the jobs of one ensemble share it."""
    return tuple(o for o in overrides if override_key(o) != "seed")


class BatchedLauncher(Launcher):
    def __init__(self, vectorize: bool = False) -> None:
        self.vectorize = bool(vectorize)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        self._logs = MemberLogs(())  # the group's logs while it trains (launch)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context

    # ------------------------------------------------------------------------------ one job
    def _job(self, overrides: list[str], idx: int, deferred: bool) -> tuple[JobReturn, dict]:
        """Runs job ``idx`` through the task function; with ``deferred`` its training is
        handed back (its request) instead of run. Returns its JobReturn (None where
        deferred) and its sweep config."""
        from pinn_exp import runner

        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
            sweep_config.hydra.job.num = idx
        HydraConfig.instance().set_config(sweep_config)
        if not deferred:
            ret = run_job(
                hydra_context=self.hydra_context,
                task_function=self.task_function,
                config=sweep_config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
            return ret, {}
        try:
            with runner.defer():
                ret = run_job(
                    hydra_context=_quiet(self.hydra_context),
                    task_function=self.task_function,
                    config=sweep_config,
                    job_dir_key="hydra.sweep.dir",
                    job_subdir_key="hydra.sweep.subdir",
                )
        except runner.Deferred as wanted:
            return None, {"request": wanted.request, "config": sweep_config}
        # the job ended before training (a bad value, a refusal): its callbacks now
        self.hydra_context.callbacks.on_job_end(config=sweep_config, job_return=ret)
        return ret, {}

    def _finish(self, member: dict, record: dict, callbacks: bool = True) -> JobReturn:
        """The JobReturn of a member trained in the ensemble; Hydra's callbacks see it (with
        ``callbacks``; else :meth:`_job_end`, later). Its directory, claimed since its checks
        (pinn_exp.guard), is released here."""
        from pinn_exp import guard
        from pinn_exp.metrics.registry import PRIMARY

        guard.release(Path(member["request"]["out_dir"]))

        config = member["config"]
        task_cfg = DictConfig({k: v for k, v in config.items() if k != "hydra"})
        ret = JobReturn(
            overrides=list(config.hydra.overrides.task),
            cfg=task_cfg,
            hydra_cfg=config,
            working_dir=str(Path.cwd()),
            task_name=config.hydra.job.name,
            status=JobStatus.COMPLETED,
            _return_value=record.get(PRIMARY),
        )
        out_dir = member["request"]["out_dir"]
        self._logs.current = log_key(out_dir)  # its lines (the sweep's progress) into its log
        if record["status"] == "ok":
            print(
                f"final relative L2 error: {record[PRIMARY]:.4e}  "
                f"({record['wall_time_s']:.1f} s)\noutputs: {out_dir}"
            )
        else:
            print(f"run {record['status']}: {record['error']}; record: {out_dir}", file=sys.stderr)
        if callbacks:
            self._job_end(member, ret)
        return ret

    def _job_end(self, member: dict, ret: JobReturn) -> None:
        """Hydra's callbacks on a member's end (the sweep's progress line), into its log."""
        self._logs.current = log_key(member["request"]["out_dir"])
        self.hydra_context.callbacks.on_job_end(config=member["config"], job_return=ret)

    # --------------------------------------------------------------------------- the sweep
    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:

        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        jobs = [list(o) for o in job_overrides]
        self._check_links(sweep_dir, jobs, initial_job_idx)
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, overrides in enumerate(jobs):
            groups.setdefault(group_key(overrides), []).append(i)
        log.info(
            "Batched launcher: %d jobs in %d groups, sweep output dir: %s",
            len(jobs),
            len(groups),
            sweep_dir,
        )
        returns: dict[int, JobReturn] = {}
        singleton = Singleton.get_state()
        for members in groups.values():
            for i in members:
                log.info("\t#%d : %s", initial_job_idx + i, " ".join(filter_overrides(jobs[i])))
            batched = len(members) > 1
            prepared: dict[int, dict] = {}
            for i in members:
                Singleton.set_state(singleton)
                ret, member = self._job(jobs[i], initial_job_idx + i, deferred=batched)
                if ret is not None:
                    returns[i] = ret
                else:
                    prepared[i] = member
            if not prepared:
                continue
            try:
                with MemberLogs(prepared.values()) as self._logs:
                    last = self._whole_sweep() and members is list(groups.values())[-1]
                    self._train(prepared, returns, last=last)
            finally:  # whatever happened, no member's directory stays claimed
                from pinn_exp import guard

                for member in prepared.values():
                    guard.release(Path(member["request"]["out_dir"]))
        return [returns[i] for i in range(len(jobs))]

    def _whole_sweep(self) -> bool:
        """Whether this call launches every job of the sweep (Hydra's basic sweeper without
        ``max_batch_size``): only then is its last group the sweep's last."""
        sweeper = self.config.hydra.sweeper
        return sweeper.get("_target_") == BASIC_SWEEPER and not sweeper.get("max_batch_size")

    def _check_links(self, sweep_dir: Path, jobs: list[list[str]], first: int) -> None:
        """Refuses the sweep, before any job writes, where a job's folder is a symbolic link
        (pinn_exp.guard.check_job_link; the guard checks a basic sweeper's jobs already, these
        are the jobs as this launcher runs them, with any other sweeper)."""
        from pinn_exp import guard, sweep

        subdir = str(OmegaConf.to_container(self.config.hydra.sweep)["subdir"])
        if not guard.has_links(sweep_dir, len(Path(subdir).parts)):
            return
        before = HydraConfig.instance().cfg
        try:
            for i, overrides in enumerate(jobs):
                config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
                with open_dict(config):
                    config.hydra.job.id = f"{config.hydra.job.name}_{first + i}"
                    config.hydra.job.num = first + i
                HydraConfig.instance().set_config(config)
                guard.check_job_link(sweep_dir, str(OmegaConf.select(config, "hydra.sweep.subdir")))
        except guard.Refused as exc:
            sweep.sweep_ended()  # nothing ran: no summary of a sweep cut short
            guard.print_refusal(exc)
            sys.exit(exc.code)
        finally:
            HydraConfig.instance().cfg = before

    def _train(
        self, prepared: dict[int, dict], returns: dict[int, JobReturn], last: bool = False
    ) -> None:
        """Trains one group's deferred jobs: as one ensemble, or one after the other where
        they cannot be batched (with a log line saying why); fills ``returns``. ``last``:
        no group of the sweep comes after this one."""
        from pinn_exp import runner
        from pinn_exp.training.ensemble import Unbatchable, unbatchable_reason

        requests = [prepared[i]["request"] for i in prepared]
        reason = unbatchable_reason([r["built"] for r in requests])
        if reason is None and any(r["resume"] for r in requests):
            reason = "resume=true: each job resumes from its own checkpoint"
        if reason is None and len(prepared) < 2:
            reason = "one job left in the group"
        if reason is not None:
            self._one_by_one(prepared, returns, reason, last)
            return
        log.info(
            "batched: %d jobs (seeds %s) train as one ensemble",
            len(prepared),
            ", ".join(str(r["built"].seed) for r in requests),
        )
        try:
            records = runner.run_ensemble(
                [r["built"] for r in requests],
                [r["out_dir"] for r in requests],
                metas=[r["meta"] or {} for r in requests],
                configs=[r["config"] for r in requests],
                progress=False,
                vectorize=self.vectorize,
            )
        except runner.Interrupted as exc:
            self._interrupted(prepared, returns, exc, last)
            return
        except Unbatchable as exc:  # the ensemble's trial loss and gradient, before training
            self._one_by_one(prepared, returns, str(exc), last)
            return
        # every member's final line first, then the callbacks: the sweep's progress line
        # (which counts all the members' records, written together) comes after them
        for (i, member), record in zip(prepared.items(), records):
            returns[i] = self._finish(member, record, callbacks=False)
        for i, member in prepared.items():
            self._job_end(member, returns[i])

    def _one_by_one(
        self, prepared: dict[int, dict], returns: dict[int, JobReturn], reason: str, last: bool
    ) -> None:
        """Runs a group's deferred jobs one after the other, each its single run, with a log
        line saying why they are not batched; fills ``returns``."""
        from pinn_exp import runner

        log.info("not batched (%s): %d jobs run one after the other", reason, len(prepared))
        for i, member in prepared.items():
            HydraConfig.instance().set_config(member["config"])
            self._logs.current = log_key(member["request"]["out_dir"])
            try:
                record = runner.run(**member["request"])
            except runner.Interrupted as exc:
                self._interrupted({i: member}, returns, exc, last and i == max(prepared))
                continue
            returns[i] = self._finish(member, record)

    def _interrupted(
        self, members: dict[int, dict], returns: dict[int, JobReturn], exc, last: bool
    ) -> None:
        """A signal ended the training of ``members`` (:class:`pinn_exp.runner.Interrupted`,
        their records and files written): each member's line, from its record, then the
        sweep stops with the signal's exit status; unless ``last`` and every job of the sweep
        has finished ok (the signal came while the last files were written): then the sweep
        ends as one that ran to its end (its summary, exit status 0), with a line saying so."""
        from pinn_exp import sweep
        from pinn_exp.io.record import METRICS

        for i, member in members.items():
            try:
                record = json.loads((Path(member["request"]["out_dir"]) / METRICS).read_text())
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and record.get("status") not in (None, "running"):
                returns[i] = self._finish(member, record)
        if last:
            failed, total = sweep.failed_jobs(Path(str(self.config.hydra.sweep.dir)))
            if total and not failed:
                self._logs.current = None  # a line of every member's
                log.warning(
                    "%s after all %d jobs of the sweep had finished ok, their files written: "
                    "nothing is left to run",
                    str(exc).removeprefix("ok, then "),
                    total,
                )
                return
        raise exc


def _quiet(context: HydraContext) -> HydraContext:
    """``context`` without callbacks: a deferred job's ``on_job_end`` comes after training."""
    return HydraContext(config_loader=context.config_loader, callbacks=no_callbacks())
