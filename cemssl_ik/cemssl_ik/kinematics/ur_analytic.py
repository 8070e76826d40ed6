"""Closed-form inverse kinematics of Universal Robots arms: all (up to 8) solutions of a pose, batched.

The UR arms have a spherical-free but solvable geometry (three parallel axes and an offset wrist)
described by six standard Denavit-Hartenberg parameters ``d1, a2, a3, d4, d5, d6``.  The derivation
follows the classic geometric solution (e.g. K. Hawkins, "Analytic Inverse Kinematics for the
Universal Robots UR-5/UR-10 Arms", 2013): shoulder pan from the wrist centre, wrist 2 from the tool
position, wrist 3 from the tool orientation, then a planar 2-link problem for shoulder lift and elbow.

Frames: the DH base is the controller's ``base`` frame (ur_description's ``base``, which is
``base_link`` rotated by pi about z); the DH end frame is ``tool0``.  :meth:`URAnalyticIK.solve`
accepts poses in either ``base`` or ``base_link``.

Solution index ``k`` in 0..7 encodes the branch: bit 0 = shoulder (+acos branch), bit 1 = elbow
(elbow joint angle >= 0), bit 2 = wrist (wrist_2 >= 0).  :func:`UR_BRANCH_NAMES` names them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["URDHParameters", "URAnalyticIK", "URIKResult", "UR_DH", "ur_branch_ids", "ur_branch_ids_numpy", "ur_branch_ids_of_solutions", "ur_arm_plane_offset"]


@dataclass(frozen=True)
class URDHParameters:
    """Standard DH parameters of a UR arm (metres). ``a2``, ``a3`` are negative as UR publishes them."""

    d1: float
    a2: float
    a3: float
    d4: float
    d5: float
    d6: float


#: Published nominal DH parameters (metres), as in ur_description's default kinematics.
UR_DH: dict[str, URDHParameters] = {
    "ur3": URDHParameters(0.1519, -0.24365, -0.21325, 0.11235, 0.08535, 0.0819),
    "ur5": URDHParameters(0.089159, -0.425, -0.39225, 0.10915, 0.09465, 0.0823),
    "ur10": URDHParameters(0.1273, -0.612, -0.5723, 0.163941, 0.1157, 0.0922),
    "ur3e": URDHParameters(0.15185, -0.24355, -0.2132, 0.13105, 0.08535, 0.0921),
    "ur5e": URDHParameters(0.1625, -0.425, -0.3922, 0.1333, 0.0997, 0.0996),
}

_ALPHA = (math.pi / 2, 0.0, 0.0, math.pi / 2, -math.pi / 2, 0.0)


@dataclass(frozen=True)
class URIKResult:
    """All analytic solutions of a batch of poses.

    Attributes:
        solutions: (B, 8, 6) joint values in [-pi, pi] (radians); rows where ``valid`` is False are NaN.
        valid: (B, 8) bool, True where the branch exists (target reachable on that branch).
    """

    solutions: torch.Tensor
    valid: torch.Tensor


def _dh(theta, a: float, d: float, alpha: float):
    """Standard DH transform for a batch of angles (...,) -> (..., 4, 4); torch tensor or numpy array in, same out."""
    xp = np if isinstance(theta, np.ndarray) else torch
    ct, st = xp.cos(theta), xp.sin(theta)
    ca, sa = math.cos(alpha), math.sin(alpha)
    zero, one = xp.zeros_like(theta), xp.ones_like(theta)
    rows = [
        ct, -st * ca, st * sa, a * ct,
        st, ct * ca, -ct * sa, a * st,
        zero, zero + sa, zero + ca, zero + d,
        zero, zero, zero, one,
    ]  # fmt: skip
    return xp.stack(rows, -1).reshape(*theta.shape, 4, 4)


def _inv(T: torch.Tensor) -> torch.Tensor:
    R, t = T[..., :3, :3], T[..., :3, 3:]
    out = torch.zeros_like(T)
    out[..., :3, :3] = R.transpose(-1, -2)
    out[..., :3, 3:] = -R.transpose(-1, -2) @ t
    out[..., 3, 3] = 1.0
    return out


def _wrap(x: torch.Tensor) -> torch.Tensor:
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


class URAnalyticIK:
    """Batched closed-form IK (and DH forward kinematics) for a UR arm.

    Args:
        dh: DH parameters, or the name of a preset in :data:`UR_DH` (``"ur3"``, ...).
        tolerance: slack allowed on acos arguments (|x| <= 1 + tolerance is clamped, beyond is
            unreachable); absorbs round-off at the workspace boundary and at singularities.
    """

    def __init__(self, dh: URDHParameters | str = "ur3", tolerance: float = 1e-9) -> None:
        if isinstance(dh, str):
            if dh not in UR_DH:
                raise ValueError(f"unknown UR model {dh!r}; known: {sorted(UR_DH)}")
            dh = UR_DH[dh]
        self.dh = dh
        self.tolerance = tolerance

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """DH forward kinematics, base <- tool0: q (*batch, 6) -> (*batch, 4, 4)."""
        p = self.dh
        a = (0.0, p.a2, p.a3, 0.0, 0.0, 0.0)
        d = (p.d1, 0.0, 0.0, p.d4, p.d5, p.d6)
        T = _dh(q[..., 0], a[0], d[0], _ALPHA[0])
        for i in range(1, 6):
            T = T @ _dh(q[..., i], a[i], d[i], _ALPHA[i])
        return T

    def _acos(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ok = x.abs() <= 1.0 + self.tolerance
        return torch.acos(x.clamp(-1.0, 1.0)), ok

    def solve(self, position: torch.Tensor, rotation: torch.Tensor, frame: str = "base") -> URIKResult:
        """All solutions for tool0 poses.

        Args:
            position: (B, 3) tool0 position (metres) in ``frame``.
            rotation: (B, 3, 3) tool0 orientation in ``frame``.
            frame: ``"base"`` (DH / controller base) or ``"base_link"`` (URDF root, the MoveIt base).
        """
        if position.ndim != 2 or position.shape[-1] != 3 or rotation.shape != (*position.shape[:-1], 3, 3):
            raise ValueError(f"expected position (B, 3) and rotation (B, 3, 3), got {tuple(position.shape)} and {tuple(rotation.shape)}")
        if frame == "base_link":
            # base = Rz(pi) base_link: negate x and y of positions and of rotation rows.
            flip = torch.tensor([-1.0, -1.0, 1.0], dtype=position.dtype, device=position.device)
            position = position * flip
            rotation = rotation * flip[:, None]
        elif frame != "base":
            raise ValueError(f"frame must be 'base' or 'base_link', got {frame!r}")
        p = self.dh
        B = position.shape[0]
        R, t = rotation, position
        # --- shoulder pan (2 branches) from the wrist-2 centre p05
        p05 = t - p.d6 * R[:, :, 2]  # (B, 3)
        r = torch.hypot(p05[:, 0], p05[:, 1])
        phi, ok1 = self._acos(p.d4 / r.clamp_min(1e-300))
        psi = torch.atan2(p05[:, 1], p05[:, 0])
        sgn = torch.tensor([-1.0, 1.0], dtype=t.dtype, device=t.device)  # index = branch bit
        th1 = psi[:, None] + sgn * phi[:, None] + math.pi / 2  # (B, 2) [shoulder]
        ok1 = ok1[:, None].expand(B, 2)
        # expand to (B, 2 shoulder, 2 elbow, 2 wrist) in index order k = s + 2 e + 4 w
        s1, c1 = torch.sin(th1), torch.cos(th1)
        # --- wrist 2 (2 branches per shoulder). Reachability from the position (x5 = cos th5 must be
        # in [-1, 1]); the angle itself from the tool z axis in frame 1, where cos th5 and |sin th5|
        # are both read off directly, so it stays accurate at the wrist singularity (no acos near 1).
        x5 = (t[:, 0, None] * s1 - t[:, 1, None] * c1 - p.d4) / p.d6  # (B, 2)
        ok5 = x5.abs() <= 1.0 + self.tolerance
        z = R[:, :, 2]
        cos5 = z[:, 0, None] * s1 - z[:, 1, None] * c1
        sin5 = torch.hypot(z[:, 0, None] * c1 + z[:, 1, None] * s1, z[:, 2, None].expand_as(c1))
        a5 = torch.atan2(sin5, cos5)  # (B, 2) in [0, pi]
        th5 = sgn[:, None, None] * a5[None]  # (2 wrist, B, 2 shoulder)
        th5 = th5.permute(1, 2, 0)  # (B, shoulder, wrist)
        ok5 = (ok1 & ok5)[:, :, None].expand(B, 2, 2)
        s5 = torch.sin(th5)
        # --- wrist 3 from orientation; arbitrary (0) at the wrist singularity s5 = 0
        num = (-R[:, 0, 1, None] * s1 + R[:, 1, 1, None] * c1)[:, :, None]  # (B, 2, 1)
        den = (R[:, 0, 0, None] * s1 - R[:, 1, 0, None] * c1)[:, :, None]
        sign5 = torch.where(s5 >= 0, 1.0, -1.0).to(t.dtype)
        singular = s5.abs() < 1e-12
        th6 = torch.where(singular, torch.zeros_like(s5), torch.atan2(sign5 * num, sign5 * den))  # (B, 2, 2)
        # --- planar 2-link problem for shoulder lift / elbow / wrist 1
        T06 = torch.zeros(B, 4, 4, dtype=t.dtype, device=t.device)
        T06[:, :3, :3], T06[:, :3, 3], T06[:, 3, 3] = R, t, 1.0
        T01 = _dh(th1, 0.0, p.d1, _ALPHA[0])[:, :, None]  # (B, 2, 1, 4, 4)
        T45 = _dh(th5, 0.0, p.d5, _ALPHA[4])  # (B, 2, 2, 4, 4)
        T56 = _dh(th6, 0.0, p.d6, _ALPHA[5])
        T14 = _inv(T01) @ T06[:, None, None] @ _inv(T56) @ _inv(T45)  # (B, 2, 2, 4, 4)
        # joints 2-4 rotate about parallel axes (z of frame 1): a planar 2-link arm in x1-y1
        px, py = T14[..., 0, 3], T14[..., 1, 3]  # (B, 2, 2)
        c3 = (px * px + py * py - p.a2**2 - p.a3**2) / (2 * p.a2 * p.a3)
        a3_, ok3 = self._acos(c3)
        th3 = sgn[:, None, None, None] * a3_[None]  # (elbow, B, s, w)
        th3 = th3.permute(1, 2, 0, 3)  # (B, shoulder, elbow, wrist)
        ok = (ok5 & ok3)[:, :, None, :].expand(B, 2, 2, 2)
        # (x, y) = Rz(th2) (a2 + a3 cos th3, a3 sin th3)
        th2 = torch.atan2(py[:, :, None, :], px[:, :, None, :]) - torch.atan2(p.a3 * torch.sin(th3), p.a2 + p.a3 * torch.cos(th3))
        th234 = torch.atan2(T14[..., 1, 0], T14[..., 0, 0])[:, :, None, :]
        th4 = th234 - th2 - th3
        shape = (B, 2, 2, 2)
        q = torch.stack(
            [
                th1[:, :, None, None].expand(shape),
                th2,
                th3,
                th4,
                th5[:, :, None, :].expand(shape),
                th6[:, :, None, :].expand(shape),
            ],
            dim=-1,
        )  # (B, shoulder, elbow, wrist, 6)
        # index k = shoulder + 2*elbow + 4*wrist
        q = _wrap(q.permute(0, 3, 2, 1, 4).reshape(B, 8, 6))
        ok = ok.permute(0, 3, 2, 1).reshape(B, 8) & torch.isfinite(q).all(-1)
        q = torch.where(ok[..., None], q, torch.full_like(q, math.nan))
        return URIKResult(q, ok)


def ur_branch_ids(q: torch.Tensor, dh: URDHParameters | str = "ur3") -> torch.Tensor:
    """Configuration class (0..7, same code as :class:`URAnalyticIK` indices) of joint values (*batch, 6).

    bit 0: shoulder (+acos branch of the pan solution), bit 1: elbow (sin(elbow) >= 0),
    bit 2: wrist (sin(wrist_2) >= 0).  Any 2*pi copy of a solution has the same class.
    """
    ids = ur_branch_ids_numpy(q.detach().cpu().double().numpy(), dh)
    return torch.from_numpy(ids).to(q.device)


def ur_branch_ids_numpy(q: np.ndarray, dh: URDHParameters | str = "ur3") -> np.ndarray:
    """:func:`ur_branch_ids` on a float64 numpy array (*batch, 6) -> int64 (*batch,)."""
    if isinstance(dh, str):
        dh = UR_DH[dh]
    # all five DH frames filled at once: the solver calls this for a handful of solutions per
    # request, where per-operation overhead dominates; the wrist centre needs only the first five
    qn = np.asarray(q, dtype=np.float64).reshape(-1, 6)
    a = np.array((0.0, dh.a2, dh.a3, 0.0, 0.0))
    d = np.array((dh.d1, 0.0, 0.0, dh.d4, dh.d5))
    alpha = np.array(_ALPHA[:5])
    ct, st = np.cos(qn[:, :5]), np.sin(qn[:, :5])
    ca, sa = np.cos(alpha), np.sin(alpha)
    T = np.zeros((len(qn), 5, 4, 4))
    T[..., 0, 0], T[..., 0, 1], T[..., 0, 2], T[..., 0, 3] = ct, -st * ca, st * sa, a * ct
    T[..., 1, 0], T[..., 1, 1], T[..., 1, 2], T[..., 1, 3] = st, ct * ca, -ct * sa, a * st
    T[..., 2, 1], T[..., 2, 2], T[..., 2, 3], T[..., 3, 3] = sa, ca, d, 1.0
    p05 = (T[:, 0] @ T[:, 1] @ T[:, 2] @ T[:, 3] @ T[:, 4])[:, :3, 3]  # origin of frame 5 = tool0 - d6 * tool z
    psi = np.arctan2(p05[:, 1], p05[:, 0])
    shoulder = np.sin(qn[:, 0] - psi - math.pi / 2) >= 0
    elbow = st[:, 2] >= 0
    wrist = st[:, 4] >= 0
    ids = shoulder.astype(np.int64) + 2 * elbow + 4 * wrist
    return ids.reshape(np.shape(q)[:-1])


def ur_branch_ids_of_solutions(q: np.ndarray, position: np.ndarray, rotation: np.ndarray, frame: str = "base_link", dh: URDHParameters | str = "ur3") -> np.ndarray:
    """:func:`ur_branch_ids_numpy` of solutions q (N, 6) of tool0 poses position (N, 3), rotation (N, 3, 3).

    The wrist centre of a solution is the target's (tool0 - d6 * tool z), so no forward
    kinematics is needed: a few array operations, for the solver's many candidate solutions.
    Equal to :func:`ur_branch_ids_numpy` where q reaches the pose.
    """
    if isinstance(dh, str):
        dh = UR_DH[dh]
    if frame not in ("base", "base_link"):
        raise ValueError(f"frame must be 'base' or 'base_link', got {frame!r}")
    p05 = position - dh.d6 * rotation[..., :, 2]
    if frame == "base_link":  # base = Rz(pi) base_link
        p05 = -p05
    psi = np.arctan2(p05[..., 1], p05[..., 0])
    shoulder = np.sin(q[..., 0] - psi - math.pi / 2) >= 0
    return shoulder.astype(np.int64) + 2 * (np.sin(q[..., 2]) >= 0) + 4 * (np.sin(q[..., 4]) >= 0)


def ur_arm_plane_offset(q, dh: URDHParameters | str = "ur3"):
    """Signed distance (metres) of the wrist centre's arm-plane projection from the base axis: (N, 6) -> (N,).

    The wrist centre (DH frame 5 origin) lies at the fixed offset d4 from the plane in which the
    shoulder lift, elbow and wrist 1 move; within that plane its distance from the base axis is
    a2 cos q2 + a3 cos(q2 + q3) + d5 sin(q2 + q3 + q4).  Zero is the shoulder singularity, where
    the two shoulder solutions meet.  numpy array or torch tensor in, same out.
    """
    if isinstance(dh, str):
        dh = UR_DH[dh]
    xp = np if isinstance(q, np.ndarray) else torch
    q2, q23 = q[..., 1], q[..., 1] + q[..., 2]
    return dh.a2 * xp.cos(q2) + dh.a3 * xp.cos(q23) + dh.d5 * xp.sin(q23 + q[..., 3])
