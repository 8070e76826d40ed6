"""Rotation helpers shared by the kinematics, models and solver (batched torch, plus numpy for URDF).

Conventions: rotation matrices act on column vectors (``p_parent = R @ p_child + t``); quaternions
are ``(x, y, z, w)`` as in ``geometry_msgs/Quaternion``; URDF ``rpy`` is fixed-axis roll about x, then
pitch about y, then yaw about z, i.e. ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "rpy_to_matrix",
    "origin_to_matrix",
    "matrix_to_quaternion",
    "quaternion_to_matrix",
    "rotation_angle",
    "rotation_log",
    "matrix_to_rot6d",
    "rot6d_to_matrix",
    "skew",
]


def rpy_to_matrix(rpy: np.ndarray | list[float]) -> np.ndarray:
    """URDF roll-pitch-yaw (radians) -> (3, 3) float64 rotation matrix."""
    roll, pitch, yaw = (float(v) for v in rpy)
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ],
        dtype=np.float64,
    )


def origin_to_matrix(xyz: np.ndarray | list[float], rpy: np.ndarray | list[float]) -> np.ndarray:
    """URDF ``<origin xyz rpy>`` -> (4, 4) float64 homogeneous transform parent <- child."""
    T = np.eye(4)
    T[:3, :3] = rpy_to_matrix(rpy)
    T[:3, 3] = np.asarray(xyz, dtype=np.float64)
    return T


def skew(v: np.ndarray) -> np.ndarray:
    """(3,) vector -> (3, 3) cross-product matrix ``[v]x`` so that ``[v]x @ w = v x w``."""
    x, y, z = (float(c) for c in v)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def quaternion_to_matrix(quat):
    """(..., 4) quaternions (x, y, z, w), normalized here -> (..., 3, 3) rotation matrices.

    Takes a torch tensor or a numpy array and returns the same kind (numpy: ~10x less overhead
    for the single poses of service requests)."""
    xp = np if isinstance(quat, np.ndarray) else torch
    if xp is np and quat.shape == (4,):  # one quaternion (a service request): plain floats, no array ops
        x, y, z, w = quat.tolist()
        n = math.sqrt(x * x + y * y + z * z + w * w)
        x, y, z, w = x / n, y / n, z / n, w / n
        return np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ])  # fmt: skip
    q = quat / (np.linalg.norm(quat, axis=-1, keepdims=True) if xp is np else torch.linalg.vector_norm(quat, dim=-1, keepdim=True))
    x, y, z, w = (q[..., i] for i in range(4))
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    rows = [
        1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
        2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
        2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
    ]  # fmt: skip
    return xp.stack(rows, -1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (x, y, z, w) with w >= 0.

    Uses the numerically stable branch per sample (largest diagonal term), so it is accurate to
    machine precision for every rotation, including 180 degree turns.
    """
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    trace = m00 + m11 + m22
    # Four candidate (unnormalized) quaternions scaled by 4*component; pick the best conditioned.
    cands = torch.stack(
        [
            torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1], 1 + trace], -1),
            torch.stack([1 + m00 - m11 - m22, R[..., 0, 1] + R[..., 1, 0], R[..., 0, 2] + R[..., 2, 0], R[..., 2, 1] - R[..., 1, 2]], -1),
            torch.stack([R[..., 0, 1] + R[..., 1, 0], 1 - m00 + m11 - m22, R[..., 1, 2] + R[..., 2, 1], R[..., 0, 2] - R[..., 2, 0]], -1),
            torch.stack([R[..., 0, 2] + R[..., 2, 0], R[..., 1, 2] + R[..., 2, 1], 1 - m00 - m11 + m22, R[..., 1, 0] - R[..., 0, 1]], -1),
        ],
        dim=-2,
    )  # (..., 4 candidates, 4)
    diag = torch.stack([trace, m00, m11, m22], dim=-1)  # (..., 4)
    best = diag.argmax(dim=-1, keepdim=True)
    q = torch.gather(cands, -2, best.unsqueeze(-1).expand(*best.shape[:-1], 1, 4)).squeeze(-2)
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    return torch.where(q[..., 3:4] < 0, -q, q)


def rotation_angle(R_a: torch.Tensor, R_b: torch.Tensor) -> torch.Tensor:
    """Geodesic angle (radians) between (..., 3, 3) rotations, accurate near 0 and pi -> (...)."""
    R_rel = R_a.transpose(-1, -2) @ R_b
    # atan2(|axis*sin|, cos) is well conditioned everywhere, unlike acos((trace-1)/2) near 0.
    sin_vec = torch.stack(
        [R_rel[..., 2, 1] - R_rel[..., 1, 2], R_rel[..., 0, 2] - R_rel[..., 2, 0], R_rel[..., 1, 0] - R_rel[..., 0, 1]],
        dim=-1,
    )
    trace = R_rel[..., 0, 0] + R_rel[..., 1, 1] + R_rel[..., 2, 2]
    return torch.atan2(torch.linalg.vector_norm(sin_vec, dim=-1), trace - 1.0)


def rotation_log(R: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) rotation -> (N, 3) axis * angle (robust near 0; accurate enough near pi for LM)."""
    angle = rotation_angle(torch.eye(3, dtype=R.dtype, device=R.device).expand_as(R), R)
    v = torch.stack([R[:, 2, 1] - R[:, 1, 2], R[:, 0, 2] - R[:, 2, 0], R[:, 1, 0] - R[:, 0, 1]], dim=-1)
    s = torch.sin(angle)
    scale = torch.where(s.abs() > 1e-9, angle / (2 * s), 0.5 + angle**2 / 12)
    return v * scale[:, None]


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, the continuous 6D rotation representation."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def rot6d_to_matrix(r6: torch.Tensor) -> torch.Tensor:
    """(..., 6) two (not necessarily orthonormal) columns -> (..., 3, 3) by Gram-Schmidt."""
    a, b = r6[..., :3], r6[..., 3:]
    x = a / torch.linalg.vector_norm(a, dim=-1, keepdim=True)
    b = b - (x * b).sum(-1, keepdim=True) * x
    y = b / torch.linalg.vector_norm(b, dim=-1, keepdim=True)
    z = torch.linalg.cross(x, y, dim=-1)
    return torch.stack([x, y, z], dim=-1)
