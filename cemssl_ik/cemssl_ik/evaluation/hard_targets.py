"""Near-singular UR3 target sets, built from configurations, where IK solvers tend to lose solutions.

Each set is N full-pose targets (FK of the configurations, ``base_link`` frame of ``urdf/ur3.urdf``;
the URDF joint values equal the DH angles of :mod:`cemssl_ik.kinematics.ur_analytic`):

- ``random``: uniform joint values in the limits (the reference);
- ``wrist_singular``: wrist_2 within ``margin`` radians of 0 or pi (joints 4 and 6 nearly aligned);
- ``shoulder_singular``: the wrist centre's projection onto the arm plane within ``margin_m``
  metres of the base axis (the two shoulder solutions nearly coincide);
- ``elbow_limit``: the elbow within ``margin`` radians of +-pi (folded arm, at its joint limits);
- ``stretched``: the elbow within ``margin`` radians of 0 (stretched arm).

At an exact singularity the analytic solution set has continua or duplicates; solvers are scored by
:func:`~cemssl_ik.evaluation.metrics.analytic_coverage` (each closed-form solution matched within
1e-2 rad, modulo 2*pi), the same metric as ``cemssl-ik bench solver``'s random targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..kinematics.chain import KinematicChain
from ..kinematics.ur_analytic import UR_DH, ur_arm_plane_offset

__all__ = ["HARD_SETS", "TargetSet", "hard_target_set", "arm_plane_offset"]

#: names of the sets :func:`hard_target_set` builds
HARD_SETS = ("random", "wrist_singular", "shoulder_singular", "elbow_limit", "stretched")


@dataclass(frozen=True)
class TargetSet:
    """N pose targets and the configurations they were made from.

    Attributes:
        name: one of :data:`HARD_SETS`.
        q: (N, 6) generating joint values (radians).
        position: (N, 3) tool0 positions in ``base_link`` (metres).
        rotation: (N, 3, 3) tool0 rotations in ``base_link``.
    """

    name: str
    q: torch.Tensor
    position: torch.Tensor
    rotation: torch.Tensor


def arm_plane_offset(q: torch.Tensor) -> torch.Tensor:
    """Signed distance (metres) of the UR3 wrist centre's arm-plane projection from the base axis
    (:func:`~cemssl_ik.kinematics.ur_analytic.ur_arm_plane_offset`), (N, 6) -> (N,)."""
    return ur_arm_plane_offset(q, "ur3")


def _wrap(x: torch.Tensor) -> torch.Tensor:
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


def hard_target_set(chain: KinematicChain, name: str, n: int, seed: int = 0, margin: float = 1e-3, margin_m: float = 1e-3) -> TargetSet:
    """``n`` targets of the set ``name`` (see the module docstring), reproducible from ``seed``.

    Args:
        chain: the UR3 chain (``base_link`` -> ``tool0``).
        name: one of :data:`HARD_SETS`.
        n: number of targets.
        margin: largest angular distance from the singular joint value (radians).
        margin_m: largest arm-plane distance of the wrist centre from the base axis (metres).
    """
    if name not in HARD_SETS:
        raise ValueError(f"unknown target set {name!r}; expected one of {HARD_SETS}")
    gen = torch.Generator().manual_seed(seed)
    q = chain.sample_configurations(n, gen, dtype=torch.float64)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)

    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).double()
    if name == "wrist_singular":
        q[:, 4] = _wrap(torch.where(torch.rand(n, generator=gen) < 0.5, 0.0, math.pi).double() + uniform(-margin, margin))
    elif name == "elbow_limit":
        q[:, 2] = sign * (math.pi - uniform(0.0, margin))
    elif name == "stretched":
        q[:, 2] = uniform(-margin, margin)
    elif name == "shoulder_singular":
        # keep q2 + q3 + q4 (the wrist's pitch) and solve the offset, A cos q2 + B sin q2 + C, for q2
        p = UR_DH["ur3"]
        q3, pitch = q[:, 2], q[:, 1] + q[:, 2] + q[:, 3]
        A, B, C = p.a2 + p.a3 * torch.cos(q3), -p.a3 * torch.sin(q3), p.d5 * torch.sin(pitch)
        rhs = (uniform(-margin_m, margin_m) - C) / torch.hypot(A, B)  # |rhs| <= 1: d5 < |a2| - |a3| fails only near q3 = pi
        q2 = torch.atan2(B, A) + sign * torch.acos(rhs.clamp(-1.0, 1.0))
        q[:, 1] = _wrap(q2)
        q[:, 3] = _wrap(pitch - q2 - q3)
        assert (arm_plane_offset(q).abs() <= margin_m + 1e-9)[rhs.abs() <= 1].all()
        bad = rhs.abs() > 1  # arm too folded to bring the wrist centre over the base axis: redraw
        if bad.any():
            rest = hard_target_set(chain, name, int(bad.sum()), seed + 1, margin, margin_m)
            q[bad] = rest.q
    fk = chain.forward(q)
    return TargetSet(name, q, fk.position, fk.rotation)
