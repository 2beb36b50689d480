"""Progress of a training stage: a bar on a terminal, a log line now and then elsewhere."""

from __future__ import annotations

import logging
import sys
import time

from tqdm.auto import tqdm

log = logging.getLogger("pinn_exp")

#: seconds between log lines when there is no bar
LOG_EVERY_S = 30.0


class Progress:
    """Counts a stage's steps. On a terminal (``bar`` and stderr a TTY) it draws a tqdm bar;
    otherwise (a log file, a SLURM job, ``progress=false``) it logs one line every
    ``interval`` seconds, so a long L-BFGS stage is visible without filling a file with
    carriage returns.

    Args:
        total: the stage's steps (an upper bound for L-BFGS).
        desc: what runs, e.g. ``round 3 lbfgs``.
        bar: a bar is wanted (the ``progress`` key).
        interval: seconds between log lines (``LOG_EVERY_S`` by default).
    """

    def __init__(self, total: int, desc: str, bar: bool = True, interval: float | None = None):
        self.total, self.desc = total, desc
        self.interval = LOG_EVERY_S if interval is None else interval
        self.done = 0
        self.started = self.last = time.monotonic()
        use_bar = bar and total > 0 and sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=desc, leave=False) if use_bar else None

    def update(self, n: int, loss: float | None = None) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.3e}")
            return
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            shown = "" if loss is None else f"  loss {loss:.3e}"
            log.info(
                "%s: %d/%d steps%s  %.0f s",
                self.desc,
                self.done,
                self.total,
                shown,
                now - self.started,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
