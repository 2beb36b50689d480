"""One trial of the compiled losses before the first step (``optimizer.compile``): where
torch.compile cannot differentiate a loss that runs eagerly, the run trains eagerly instead."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def compile_failure(
    compiled: Sequence[Callable | None],
    eager: Callable,
    x: torch.Tensor,
    params: Sequence[torch.Tensor],
    generator: torch.Generator,
) -> str | None:
    """Calls each compiled loss and its gradient once; returns why torch.compile cannot
    compile them (a user's code that takes derivatives with ``autograd.grad`` in the loss: AOT
    autograd's backward cannot be differentiated again), or None.

    An error that the eager loss raises too is raised (it is the run's error). The trial
    leaves no trace: the gradients are cleared and the Laplacian's probe generator is restored.

    Args:
        compiled: the compiled losses (None: not compiled); each returns the loss terms, or
            (terms, |residual|).
        eager: the eager loss vector, tried where a compiled loss fails.
        x: the stage's collocation points.
        params: the trainable parameters.
        generator: the Laplacian's probe generator.
    """
    state = generator.get_state()

    def trial(loss_fn: Callable) -> None:
        out = loss_fn(x)
        (out[0] if isinstance(out, tuple) else out)[0].backward(inputs=params)

    try:
        for loss_fn in compiled:
            if loss_fn is not None:
                trial(loss_fn)
    except Exception as exc:  # noqa: BLE001 - whatever torch.compile raises
        generator.set_state(state)
        trial(eager)  # an error of the loss itself is the run's error
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
    finally:
        generator.set_state(state)
        for p in params:
            p.grad = None
    return None
