"""Runs from built objects to their files (the record, history, points, plots), whatever
happens during training.

- :mod:`.driver`: :func:`run` (one run) and :func:`run_ensemble` (runs trained together),
  both through one driver that owns the signals, the failures and the final records.
- :mod:`.recording`: the record (``metrics.json``): its fields and writing it, on a full disk
  too.
- :mod:`.files`: the run's other files (history, points, residual maps, plots).
- :mod:`.signals`: the signals that end a run with its record written.
- :mod:`.handoff`: :func:`defer`, the hand-off to the batched launcher.
"""

from pinn_exp.runner.driver import run, run_ensemble
from pinn_exp.runner.handoff import Deferred, defer
from pinn_exp.runner.recording import META_FIELDS, base_record, versions, write_failure
from pinn_exp.runner.signals import ENDING, Interrupted, Terminated

__all__ = [
    "ENDING",
    "META_FIELDS",
    "Deferred",
    "Interrupted",
    "Terminated",
    "base_record",
    "defer",
    "run",
    "run_ensemble",
    "versions",
    "write_failure",
]
