"""Joint-limit helpers: the 2*pi-periodic structure of revolute joints.

A revolute joint's effect on the tip repeats every 2*pi, so with limits wider than one turn (UR:
+-2*pi) each solution exists in several copies.  :func:`nearest_periodic_copy` picks, per joint, the
copy closest to a reference (seed) that lies within the real limits.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["nearest_periodic_copy", "wrap_into_range", "wrap_to_pi"]

_TWO_PI = 2.0 * math.pi


def wrap_to_pi(q: torch.Tensor) -> torch.Tensor:
    """Map angles to [-pi, pi)."""
    return torch.remainder(q + math.pi, _TWO_PI) - math.pi


def wrap_into_range(q: torch.Tensor, lower: torch.Tensor, periodic: torch.Tensor) -> torch.Tensor:
    """Periodic joints of ``q`` (*batch, dof) moved by whole turns into ``[lower, lower + 2 pi)``
    (a learning range one period wide, where every value is encodable); the others unchanged."""
    lower = lower.to(q)
    wrapped = wrap_to_pi(q - lower - math.pi) + lower + math.pi
    return torch.where(periodic.to(q.device), wrapped, q)


def nearest_periodic_copy(
    q: torch.Tensor,
    reference: torch.Tensor,
    lower: np.ndarray,
    upper: np.ndarray,
    periodic: np.ndarray,
    tol: float = 1e-9,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each periodic joint of ``q`` by a multiple of 2*pi to the copy nearest ``reference`` within limits.

    Args:
        q: (*batch, dof) joint values.
        reference: (dof,) or broadcastable to q: the seed the copies should be near.
        lower, upper: (dof,) real joint limits (may be +-inf).
        periodic: (dof,) bool, True for revolute / continuous joints.
        tol: slack on the limits (radians or metres).

    Returns:
        (q_new, within): q_new (*batch, dof) and within (*batch,) True where every joint of q_new
        lies in its limits.  Non-periodic joints are unchanged.
    """
    lo = torch.as_tensor(lower, dtype=q.dtype, device=q.device)
    hi = torch.as_tensor(upper, dtype=q.dtype, device=q.device)
    per = torch.as_tensor(periodic, dtype=torch.bool, device=q.device)
    ref = torch.as_tensor(reference, dtype=q.dtype, device=q.device).expand_as(q)
    # Closed form: the copies q + 2 pi n within [lo, hi] are n_lo <= n <= n_hi, and the distance to
    # ref is convex in n, so the best n is the unconstrained one clamped to that range (exact for
    # any seed magnitude; where no copy is within limits, the nearest copy overall).
    n = torch.round((ref - q) / _TWO_PI)
    n_lo = torch.ceil((lo - tol - q) / _TWO_PI)
    n_hi = torch.floor((hi + tol - q) / _TWO_PI)
    n = torch.where(n_lo <= n_hi, torch.minimum(torch.maximum(n, n_lo), n_hi), n)
    best = q + _TWO_PI * n
    q_new = torch.where(per, best, q)
    within = ((q_new >= lo - tol) & (q_new <= hi + tol)).all(dim=-1)
    return q_new, within
