"""The signals that end a run with its record written: SIGTERM and SIGINT, and SLURM's
warnings before a time limit (SIGUSR1, SIGUSR2)."""

from __future__ import annotations

import signal

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


class Signals:
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
