"""Accuracy metrics."""

from __future__ import annotations

import torch


def l2_relative_error(u_pred: torch.Tensor, u_ref: torch.Tensor) -> float:
    """||u_pred - u_ref||_2 / ||u_ref||_2 over the test set (DeepXDE's definition)."""
    u_pred = u_pred.reshape(-1).double()
    u_ref = u_ref.reshape(-1).double()
    return float(torch.linalg.norm(u_pred - u_ref) / torch.linalg.norm(u_ref))
