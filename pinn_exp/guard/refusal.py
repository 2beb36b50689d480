"""A refusal: the command would damage a run on disk; one line says why and what to do."""

from __future__ import annotations

import sys


class Refused(Exception):
    """The command would damage a run on disk; the message says why and what to do."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def print_refusal(exc: Refused) -> None:
    """The refusal's one line on stderr (``error:`` unless it is no error)."""
    print(("" if exc.code == 0 else "error: ") + str(exc), file=sys.stderr)


def exit_refused(exc: Refused) -> None:
    """Says ``exc`` and exits with its code."""
    print_refusal(exc)
    sys.exit(exc.code)


def unchecked(exc: Exception, key: str) -> Refused:
    """A check that failed: the run does not start (the checks fail closed)."""
    message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return Refused(
        f"the output directory ({key}) could not be checked ({message}); nothing was started"
    )
