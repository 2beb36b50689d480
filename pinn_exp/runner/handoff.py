"""The hand-off to a caller that trains several runs together (the batched launcher):
within :func:`defer`, :func:`pinn_exp.runner.run` raises :class:`Deferred` with its
arguments instead of training."""

from __future__ import annotations

from contextlib import contextmanager


class Deferred(BaseException):
    """:func:`~pinn_exp.runner.run` was called within :func:`defer`: ``request`` holds its
    arguments, for a caller that trains several runs together (the batched launcher). A
    BaseException, so that nothing between the caller and ``run`` takes it for a failure of
    the run."""

    def __init__(self, request: dict):
        super().__init__("deferred")
        self.request = request


_deferring = False


def deferring() -> bool:
    """Whether :func:`defer` is in effect."""
    return _deferring


@contextmanager
def defer():
    """Within this context :func:`~pinn_exp.runner.run` trains nothing: it raises
    :class:`Deferred` with its arguments, after everything before it (the checks, the run's
    config) was done."""
    global _deferring
    _deferring = True
    try:
        yield
    finally:
        _deferring = False
