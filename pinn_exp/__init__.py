"""pinn-exp: compare collocation-point samplers for PINNs. ``load_run(DIR)`` loads a run."""

from __future__ import annotations


def __getattr__(name: str):
    # lazy: `python -m pinn_exp.report` and the config schemas do not import torch models
    if name in ("load_run", "LoadedRun"):
        from pinn_exp import loading

        return getattr(loading, name)
    raise AttributeError(f"module 'pinn_exp' has no attribute {name!r}")


__all__ = ["LoadedRun", "load_run"]
