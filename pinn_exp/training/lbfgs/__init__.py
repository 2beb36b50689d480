"""The L-BFGS optimizers of a training stage.

* :class:`StrongWolfeLBFGS` (:mod:`.strong_wolfe`) is torch's L-BFGS
  (``optimizer.lbfgs_impl=torch``) with the line search's evaluation limit as an argument.
* :class:`SyncFreeLBFGS` (:mod:`.sync_free`) is an L-BFGS whose iterations never read a value
  on the host (``optimizer.lbfgs_impl=sync_free``), so that a CUDA graph can capture one.
* :class:`BatchedSyncFreeLBFGS` (:mod:`.batched`) is the same algorithm for S independent
  problems at once (the members of an ensemble, parameters stacked ``[S, ...]``), and
  :class:`PerMemberSyncFreeLBFGS` (:mod:`.per_member`) runs one :class:`SyncFreeLBFGS` per
  member over its slices of the stacked parameters, as one optimizer.
* :mod:`.flat` moves between the parameters and one flat vector (one per member when
  stacked).
"""

from pinn_exp.training.lbfgs.batched import BatchedSyncFreeLBFGS
from pinn_exp.training.lbfgs.flat import (
    flat,
    flat_grad,
    flat_grad_stacked,
    flat_stacked,
    load,
    load_stacked,
)
from pinn_exp.training.lbfgs.per_member import PerMemberSyncFreeLBFGS
from pinn_exp.training.lbfgs.strong_wolfe import StrongWolfeLBFGS
from pinn_exp.training.lbfgs.sync_free import Evaluate, SyncFreeLBFGS

__all__ = [
    "BatchedSyncFreeLBFGS",
    "Evaluate",
    "PerMemberSyncFreeLBFGS",
    "StrongWolfeLBFGS",
    "SyncFreeLBFGS",
    "flat",
    "flat_grad",
    "flat_grad_stacked",
    "flat_stacked",
    "load",
    "load_stacked",
]
