"""Metrics: success rates, coverage of the analytic UR solution set, configuration classes, MMD."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..kinematics.ur_analytic import URAnalyticIK, ur_branch_ids

__all__ = ["success_rates", "analytic_coverage", "ur_class_coverage", "mmd_imq"]


def success_rates(position_error: torch.Tensor, thresholds_m: Sequence[float] = (1e-3, 1e-4, 1e-5)) -> dict[str, float]:
    """Fraction of errors (metres) at or below each threshold; keys like ``"<=1mm"``."""
    out = {}
    for t in thresholds_m:
        key = f"<={t * 1e3:g}mm"
        out[key] = float((position_error <= t).double().mean())
    return out


def _wrapped_max_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi
    return d.abs().amax(-1)


@torch.no_grad()
def analytic_coverage(
    solutions: torch.Tensor,
    valid: torch.Tensor,
    position: torch.Tensor,
    rotation: torch.Tensor,
    tolerance: float = 1e-2,
    frame: str = "base_link",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per target, the fraction of the UR3's analytic solutions matched by a returned solution.

    A returned solution matches an analytic one when every joint agrees within ``tolerance``
    radians modulo 2*pi.

    Args:
        solutions: (B, K, 6) returned solutions; valid: (B, K).
        position: (B, 3); rotation: (B, 3, 3) targets in ``frame``.

    Returns:
        (coverage (B,) in [0, 1], number of analytic solutions (B,)).
    """
    ref = URAnalyticIK("ur3").solve(position, rotation, frame=frame)
    d = _wrapped_max_diff(ref.solutions[:, :, None], torch.nan_to_num(solutions)[:, None])  # (B, 8, K)
    matched = ((d <= tolerance) & valid[:, None]).any(-1) & ref.valid  # (B, 8)
    n = ref.valid.sum(1)
    return matched.sum(1) / n.clamp_min(1), n


def ur_class_coverage(solutions: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per target, the number of distinct UR configuration classes (0..8) among valid solutions."""
    B, K, _ = solutions.shape
    classes = torch.full((B, K), -1, dtype=torch.long)
    if valid.any():
        classes[valid] = ur_branch_ids(solutions[valid])
    onehot = torch.zeros(B, 8, dtype=torch.bool)
    for c in range(8):
        onehot[:, c] = (classes == c).any(1)
    return onehot.sum(1)


def mmd_imq(x: torch.Tensor, y: torch.Tensor, scales: Sequence[float] = (0.05, 0.2, 0.9)) -> float:
    """Squared maximum mean discrepancy with a multi-scale inverse multiquadric kernel.

    k(a, b) = sum_s s^2 / (s^2 + ||a - b||^2) (the posterior-mismatch metric of Schwaiger and Brunner, cVAE vs INN); x (N, d), y (M, d).
    """
    x, y = x.double(), y.double()

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(a, b) ** 2
        return sum(s * s / (s * s + d2) for s in scales)

    n, m = len(x), len(y)
    kxx = (k(x, x).sum() - k(x, x).diagonal().sum()) / max(1, n * (n - 1))
    kyy = (k(y, y).sum() - k(y, y).diagonal().sum()) / max(1, m * (m - 1))
    kxy = k(x, y).mean()
    return float(kxx + kyy - 2 * kxy)
