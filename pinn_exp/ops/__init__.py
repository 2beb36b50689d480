"""Derivatives of a solution u(x) with respect to its inputs: the one home of every derivative.

* :mod:`pinn_exp.ops.derivatives`: ``gradient``, ``partials``, ``space_time_derivatives`` by
  autograd, and :func:`graph_free` (values only, for scoring).
* :mod:`pinn_exp.ops.forward`: the forward-mode kernel of an MLP (value, Jacobian and
  Laplacian carried through its layers) and the activations' derivative table.
* :mod:`pinn_exp.ops.constraints`: jets of hard constraints u = A + B N (:class:`HardConstraint`).
* :mod:`pinn_exp.ops.laplacian`: the Laplacian methods and :class:`Laplacian`, the operator
  of the ``laplacian`` config group that every PDE's ``residual`` receives.
"""

from pinn_exp.ops.constraints import HardConstraint, Jet, autograd_jet, space_time_jet
from pinn_exp.ops.derivatives import (
    Fn,
    gradient,
    graph_free,
    is_graph_free,
    partials,
    space_time_derivatives,
)
from pinn_exp.ops.forward import ACTIVATIONS, JacobianStep, forward_jet, forward_laplacian
from pinn_exp.ops.laplacian import (
    METHODS,
    STOCHASTIC,
    Laplacian,
    laplacian_autograd,
    laplacian_func,
    laplacian_hutchinson,
)

__all__ = [
    "ACTIVATIONS",
    "METHODS",
    "STOCHASTIC",
    "Fn",
    "HardConstraint",
    "JacobianStep",
    "Jet",
    "Laplacian",
    "autograd_jet",
    "forward_jet",
    "forward_laplacian",
    "gradient",
    "graph_free",
    "is_graph_free",
    "laplacian_autograd",
    "laplacian_func",
    "laplacian_hutchinson",
    "partials",
    "space_time_derivatives",
    "space_time_jet",
]
