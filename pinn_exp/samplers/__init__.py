"""Collocation-point samplers (SPEC §5)."""

from pinn_exp.samplers.base import ResidualScorer, Sampler
from pinn_exp.samplers.r3 import R3
from pinn_exp.samplers.rad import RAD, RARD, RARG
from pinn_exp.samplers.rsmote import RSmote
from pinn_exp.samplers.uniform import RandomR, Uniform

__all__ = ["R3", "RAD", "RARD", "RARG", "RSmote", "RandomR", "ResidualScorer", "Sampler", "Uniform"]
