"""The L-BFGS optimizers of a training stage.

* :class:`StrongWolfeLBFGS` (:mod:`.strong_wolfe`) is torch's L-BFGS
  (``optimizer.lbfgs_impl=torch``) with the line search's evaluation limit as an argument.
* :class:`DeviceLBFGS` (:mod:`.device`) is the same algorithm with every decision on the
  device (``optimizer.lbfgs_impl=device``): its strong-Wolfe line search is a state machine
  (:mod:`.line_search`) and its direction the compact form of the L-BFGS matrix
  (:mod:`.history`), for one run or the S members of an ensemble at once, so that a step
  compiles as one graph and a CUDA graph can capture it.
* :mod:`.flat` moves between the parameters and one flat vector (one per member when
  stacked).
"""

from pinn_exp.training.lbfgs.device import DeviceLBFGS, Evaluate
from pinn_exp.training.lbfgs.flat import (
    flat,
    flat_grad,
    flat_grad_stacked,
    flat_stacked,
    load,
    load_stacked,
)
from pinn_exp.training.lbfgs.history import History
from pinn_exp.training.lbfgs.strong_wolfe import StrongWolfeLBFGS

__all__ = [
    "DeviceLBFGS",
    "Evaluate",
    "History",
    "StrongWolfeLBFGS",
    "flat",
    "flat_grad",
    "flat_grad_stacked",
    "flat_stacked",
    "load",
    "load_stacked",
]
