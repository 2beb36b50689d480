"""Collocation-point samplers: the interface (base.py) and the built-in samplers."""

from pinn_exp.samplers.base import ResidualScorer, Sampler, Update
from pinn_exp.samplers.hybrid import RSmoteHybrid
from pinn_exp.samplers.r3 import R3
from pinn_exp.samplers.rad import RAD, RARD, RARG
from pinn_exp.samplers.rsmote import RSmote
from pinn_exp.samplers.uniform import RandomR, Uniform

__all__ = [
    "R3",
    "RAD",
    "RARD",
    "RARG",
    "RSmote",
    "RSmoteHybrid",
    "RandomR",
    "ResidualScorer",
    "Sampler",
    "Uniform",
    "Update",
]
