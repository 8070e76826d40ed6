"""Serial kinematic chains with batched, differentiable torch forward kinematics.

A :class:`KinematicChain` is built from a list of :class:`JointSpec` (the path from a base link to a
tip link; :func:`~.urdf.chain_from_urdf` reads them from a URDF) and evaluates, for joint values ``q`` of shape ``(*batch, dof)``:

- :meth:`KinematicChain.forward` -> :class:`FKResult` with the tip position ``(*batch, 3)`` and
  rotation ``(*batch, 3, 3)`` in the base frame;
- :meth:`KinematicChain.forward_with_jacobian` -> the same plus the geometric Jacobian
  ``(*batch, 6, dof)`` (rows: linear velocity of the tip origin, then angular velocity, both in the
  base frame);
- :meth:`KinematicChain.link_frames` -> homogeneous transforms ``(*batch, L, 4, 4)`` of every link on
  the path, base included.

Fixed joints are folded into the following movable joint's origin (and the trailing ones into a
tip offset) once at construction, so the hot loop touches only movable joints.  Every function works
in the dtype and on the device of ``q``; per-(dtype, device) constants are cached.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .transforms import skew

__all__ = ["JointSpec", "FKResult", "FKJacobianResult", "KinematicChain", "damped_least_squares"]

_MOVABLE = ("revolute", "continuous", "prismatic")


def damped_least_squares(J: torch.Tensor, e: torch.Tensor, damping: float) -> torch.Tensor:
    """``J^T (J J^T + damping I)^-1 e``: the smallest joint step that moves the task by ``e`` to first
    order (damped near singularities), for Jacobians ``(*batch, rows, dof)`` and ``e`` ``(*batch, rows)``."""
    eye = torch.eye(J.shape[-2], dtype=J.dtype, device=J.device)
    A = J @ J.transpose(-1, -2) + damping * eye
    return (J.transpose(-1, -2) @ torch.linalg.solve(A, e.unsqueeze(-1))).squeeze(-1)


@dataclass(frozen=True)
class JointSpec:
    """One joint on the chain, as seen walking from the base link towards the tip link.

    Attributes:
        name: joint name.
        type: ``revolute``, ``continuous``, ``prismatic`` or ``fixed``.
        parent: link on the base side.
        child: link on the tip side.
        origin: (4, 4) transform parent <- joint frame at zero joint value.
        axis: (3,) unit joint axis in the joint frame (ignored for fixed joints).
        lower: lower limit (rad or m); ``-inf`` for continuous joints.
        upper: upper limit (rad or m); ``+inf`` for continuous joints.
        velocity: velocity limit (rad/s or m/s); ``inf`` if unknown.
    """

    name: str
    type: str
    parent: str
    child: str
    origin: np.ndarray
    axis: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))
    lower: float = -math.inf
    upper: float = math.inf
    velocity: float = math.inf

    def __post_init__(self) -> None:
        if self.type not in _MOVABLE + ("fixed",):
            raise ValueError(f"joint {self.name!r}: unsupported type {self.type!r}; expected one of {_MOVABLE + ('fixed',)}")
        origin = np.asarray(self.origin, dtype=np.float64)
        if origin.shape != (4, 4):
            raise ValueError(f"joint {self.name!r}: origin must be a (4, 4) transform, got shape {origin.shape}")
        object.__setattr__(self, "origin", origin)
        axis = np.asarray(self.axis, dtype=np.float64).reshape(3)
        if self.type != "fixed":
            norm = np.linalg.norm(axis)
            if not np.isfinite(norm) or norm < 1e-12:
                raise ValueError(f"joint {self.name!r}: axis must be a non-zero vector, got {axis}")
            axis = axis / norm
            if not self.lower <= self.upper:
                raise ValueError(f"joint {self.name!r}: lower limit {self.lower} exceeds upper limit {self.upper}")
        object.__setattr__(self, "axis", axis)

    @property
    def movable(self) -> bool:
        return self.type != "fixed"


@dataclass(frozen=True)
class FKResult:
    """Tip pose in the base frame. position: (*batch, 3) metres; rotation: (*batch, 3, 3)."""

    position: torch.Tensor
    rotation: torch.Tensor


@dataclass(frozen=True)
class FKJacobianResult:
    """Tip pose plus geometric Jacobian (*batch, 6, dof): rows 0-2 linear, 3-5 angular, base frame."""

    position: torch.Tensor
    rotation: torch.Tensor
    jacobian: torch.Tensor


@dataclass(frozen=True)
class _Segment:
    """A movable joint with all fixed transforms before it folded into its origin."""

    R_origin: np.ndarray  # (3, 3)
    t_origin: np.ndarray  # (3,)
    axis: np.ndarray  # (3,)
    revolute: bool


class KinematicChain:
    """A serial chain of revolute / continuous / prismatic / fixed joints from ``base_link`` to ``tip_link``.

    Args:
        joints: the joints from base to tip, each ``parent`` equal to the previous ``child``.
        name: robot name (used in checkpoints).
        source_hash: hash identifying the robot description (used to match checkpoints).
    """

    def __init__(self, joints: Sequence[JointSpec], name: str = "robot", source_hash: str | None = None) -> None:
        joints = list(joints)
        if not joints:
            raise ValueError("a kinematic chain needs at least one joint")
        for prev, nxt in zip(joints, joints[1:]):
            if prev.child != nxt.parent:
                raise ValueError(f"joints are not a chain: {prev.name!r} ends at {prev.child!r} but {nxt.name!r} starts at {nxt.parent!r}")
        if not any(j.movable for j in joints):
            raise ValueError("the chain has no movable joint between its base and tip")
        self.joints: tuple[JointSpec, ...] = tuple(joints)
        self.name = name
        self.base_link = joints[0].parent
        self.tip_link = joints[-1].child
        movable = [j for j in joints if j.movable]
        self.joint_names: tuple[str, ...] = tuple(j.name for j in movable)
        self.dof = len(movable)
        self.joint_types: tuple[str, ...] = tuple(j.type for j in movable)
        #: (dof,) real joint limits (rad or m); +-inf for continuous joints.
        self.lower = np.array([j.lower for j in movable], dtype=np.float64)
        self.upper = np.array([j.upper for j in movable], dtype=np.float64)
        #: (dof,) velocity limits (rad/s or m/s).
        self.velocity_limits = np.array([j.velocity for j in movable], dtype=np.float64)
        #: (dof,) True for revolute / continuous joints, whose effect on the tip is 2*pi-periodic.
        self.periodic = np.array([j.type != "prismatic" for j in movable], dtype=bool)
        self.source_hash = source_hash or self._structure_hash()
        self._segments, self._tip = self._fold_fixed(joints)
        self._cache: dict[tuple[torch.dtype, torch.device], dict[str, torch.Tensor]] = {}

    # ------------------------------------------------------------------ construction
    def _structure_hash(self) -> str:
        h = hashlib.sha256()
        for j in self.joints:
            h.update(f"{j.name}|{j.type}|{j.parent}|{j.child}|{j.lower!r}|{j.upper!r}|".encode())
            h.update(np.round(j.origin, 12).tobytes())
            h.update(np.round(j.axis, 12).tobytes())
        return h.hexdigest()

    @property
    def kinematics_hash(self) -> str:
        """Digest of what the chain computes, independent of names and of the URDF's text.

        Covers the folded joint origins, axes and types, the tip transform and the real limits
        (rounded to 1e-9), so a robot_description re-generated by xacro, with link / joint name
        prefixes or with extra links elsewhere in the tree still matches a checkpoint trained on
        the same kinematics.
        """
        h = hashlib.sha256()

        def put(a) -> None:
            h.update((np.round(np.asarray(a, dtype=np.float64), 9) + 0.0).tobytes())  # + 0.0: -0.0 -> 0.0

        for seg in self._segments:
            put(seg.R_origin)
            put(seg.t_origin)
            put(seg.axis)
            h.update(b"R" if seg.revolute else b"P")
        put(self._tip)
        put(np.nan_to_num(self.lower, posinf=1e300, neginf=-1e300))
        put(np.nan_to_num(self.upper, posinf=1e300, neginf=-1e300))
        return h.hexdigest()

    @staticmethod
    def _fold_fixed(joints: Sequence[JointSpec]) -> tuple[list[_Segment], np.ndarray]:
        pending = np.eye(4)
        segments: list[_Segment] = []
        for j in joints:
            pending = pending @ j.origin
            if j.movable:
                segments.append(_Segment(pending[:3, :3].copy(), pending[:3, 3].copy(), j.axis.copy(), j.type != "prismatic"))
                pending = np.eye(4)
        return segments, pending

    def segment_arrays(self) -> dict[str, np.ndarray]:
        """The folded chain as float64 arrays, one row per movable joint (what FK evaluates).

        Keys: ``R_o`` (dof, 3, 3) and ``t_o`` (dof, 3), each joint's origin after the previous
        joint; ``R_oK``, ``R_oK2`` (dof, 3, 3), R_o times the axis' skew matrix K and K^2 (Rodrigues:
        R_o Rot(axis, q) = R_o + sin q R_o K + (1 - cos q) R_o K^2); ``axis`` and ``R_oa`` (dof, 3), the
        axis in the joint frame and in the parent frame; ``revolute`` (dof,) 1.0 / 0.0; ``R_tip``
        (3, 3), ``t_tip`` (3,), the fixed tip offset.  Used by the torch FK here and by the compiled
        solver kernels.
        """
        R_o = np.stack([s.R_origin for s in self._segments])
        K = np.stack([skew(s.axis) for s in self._segments])
        axis = np.stack([s.axis for s in self._segments])
        c = np.ascontiguousarray
        return {
            "R_o": c(R_o, dtype=np.float64),
            "R_oK": c(R_o @ K, dtype=np.float64),
            "R_oK2": c(R_o @ K @ K, dtype=np.float64),
            "t_o": c(np.stack([s.t_origin for s in self._segments]), dtype=np.float64),
            "axis": c(axis, dtype=np.float64),
            "R_oa": c(np.einsum("nij,nj->ni", R_o, axis), dtype=np.float64),
            "revolute": np.array([1.0 if s.revolute else 0.0 for s in self._segments]),
            "R_tip": c(self._tip[:3, :3], dtype=np.float64),
            "t_tip": c(self._tip[:3, 3], dtype=np.float64),
        }

    def _consts(self, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
        key = (dtype, device)
        consts = self._cache.get(key)
        if consts is None:
            consts = {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in self.segment_arrays().items()}
            self._cache[key] = consts
        return consts

    # ------------------------------------------------------------------ limits
    def learning_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """(dof,) lower, upper bounds of one period: real limits clipped to [-pi, pi] for revolute joints.

        Learning on one period avoids the 2^dof duplicate copies of each solution that +-2*pi limits
        create; the solver maps solutions back to the copy nearest a seed within the real limits.
        """
        lo = np.where(self.periodic, np.maximum(self.lower, -math.pi), self.lower)
        hi = np.where(self.periodic, np.minimum(self.upper, math.pi), self.upper)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError(f"chain {self.name!r}: an unbounded prismatic joint has no learning range; set its limits")
        return lo, hi

    def base_symmetry_axis(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(point, unit axis) of the first joint in the base frame where the whole chain may turn about it.

        Turning the first joint by an angle turns everything after it, tip included, about this
        axis: IK of a target turned by that angle is the same solution with the first joint turned
        too.  A learner may exploit that only where the first joint is revolute and its learning
        range is a full turn (else a turned solution could leave the limits); None otherwise.
        """
        lo, hi = self.learning_limits()
        seg = self._segments[0]
        if not (seg.revolute and hi[0] - lo[0] >= 2 * math.pi - 1e-9):
            return None
        axis = seg.R_origin @ seg.axis
        return seg.t_origin.copy(), axis / np.linalg.norm(axis)

    def sample_configurations(
        self,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
        limits: str = "learning",
    ) -> torch.Tensor:
        """Uniform joint samples (n, dof) within ``learning`` (one period) or ``real`` limits."""
        if limits == "learning":
            lo, hi = self.learning_limits()
        elif limits == "real":
            lo, hi = self.lower, self.upper
            if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
                raise ValueError("real limits are unbounded for a continuous joint; sample with limits='learning'")
        else:
            raise ValueError(f"limits must be 'learning' or 'real', got {limits!r}")
        u = torch.rand(n, self.dof, generator=generator, dtype=dtype, device=device)
        lo_t = torch.as_tensor(lo, dtype=dtype, device=device)
        hi_t = torch.as_tensor(hi, dtype=dtype, device=device)
        return lo_t + u * (hi_t - lo_t)

    def within_limits(self, q: torch.Tensor, tol: float = 1e-9) -> torch.Tensor:
        """(*batch, dof) -> (*batch,) bool: every joint within its real limits (+- tol)."""
        lo = torch.as_tensor(self.lower, dtype=q.dtype, device=q.device)
        hi = torch.as_tensor(self.upper, dtype=q.dtype, device=q.device)
        return ((q >= lo - tol) & (q <= hi + tol)).all(dim=-1)

    # ------------------------------------------------------------------ kinematics
    def _check_q(self, q: torch.Tensor) -> torch.Tensor:
        if not isinstance(q, torch.Tensor):
            raise TypeError(f"q must be a torch.Tensor of shape (*batch, {self.dof}), got {type(q).__name__}")
        if q.ndim == 0 or q.shape[-1] != self.dof:
            raise ValueError(f"q must have shape (*batch, {self.dof}) for chain {self.name!r}, got {tuple(q.shape)}")
        if not q.is_floating_point():
            raise TypeError(f"q must be a floating point tensor, got {q.dtype}")
        return q.reshape(-1, self.dof)

    def forward(self, q: torch.Tensor) -> FKResult:
        """Tip pose for joint values q (*batch, dof) -> FKResult((*batch, 3), (*batch, 3, 3))."""
        batch = q.shape[:-1]
        p, R, _ = self._run(self._check_q(q), jacobian=False)
        return FKResult(p.reshape(*batch, 3), R.reshape(*batch, 3, 3))

    def forward_with_jacobian(self, q: torch.Tensor) -> FKJacobianResult:
        """Tip pose and geometric Jacobian (*batch, 6, dof) referenced at the tip origin, base frame."""
        batch = q.shape[:-1]
        p, R, J = self._run(self._check_q(q), jacobian=True)
        assert J is not None
        return FKJacobianResult(p.reshape(*batch, 3), R.reshape(*batch, 3, 3), J.reshape(*batch, 6, self.dof))

    def jacobian(self, q: torch.Tensor) -> torch.Tensor:
        """Geometric Jacobian (*batch, 6, dof): [linear; angular] velocity of the tip in the base frame."""
        return self.forward_with_jacobian(q).jacobian

    def _run(self, q: torch.Tensor, jacobian: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        c = self._consts(q.dtype, q.device)
        B = q.shape[0]
        rev = c["revolute"]  # (dof,) 1 for revolute, 0 for prismatic
        # All joint rotations at once (Rodrigues): R_o Rot(axis, q) = R_o + sin q R_o K + (1 - cos q) R_o K^2;
        # prismatic joints get sin = 0, 1 - cos = 0, i.e. R_o.
        qT = q.T  # (dof, B): joint-major so that each joint's rotations are contiguous
        s = (torch.sin(qT) * rev[:, None])[:, :, None, None]
        omc = ((1 - torch.cos(qT)) * rev[:, None])[:, :, None, None]

        def joint_rotations(idx: slice | int) -> torch.Tensor:
            return torch.addcmul(torch.addcmul(c["R_o"][idx, None], s[idx], c["R_oK"][idx, None]), omc[idx], c["R_oK2"][idx, None])

        # Small batches: one fused call for all joints (per-op overhead dominates); large batches:
        # per joint, so the working set stays in cache.
        R_all = joint_rotations(slice(None)) if B <= 512 else None  # (dof, B, 3, 3)
        p = c["t_o"][0].expand(B, 3)
        R: torch.Tensor | None = None  # rotation before joint i; None = identity (saves a matmul)
        joint_pos, joint_axis = [], []
        for i, seg in enumerate(self._segments):
            if i > 0:
                assert R is not None
                p = p + R @ c["t_o"][i]
            if jacobian or not seg.revolute:
                a = c["R_oa"][i].expand(B, 3) if R is None else R @ c["R_oa"][i]  # joint axis, base frame
                joint_axis.append(a)
                joint_pos.append(p)
                if not seg.revolute:
                    p = p + a * q[:, i, None]
            R_i = R_all[i] if R_all is not None else joint_rotations(i)
            R = R_i if R is None else R @ R_i
        assert R is not None
        p = p + R @ c["t_tip"]
        R = R @ c["R_tip"]
        if not jacobian:
            return p, R, None
        axes = torch.stack(joint_axis, dim=-1)  # (B, 3, dof)
        origins = torch.stack(joint_pos, dim=-1)  # (B, 3, dof)
        revolute = rev.bool()
        lin_rev = torch.linalg.cross(axes, p[:, :, None] - origins, dim=1)
        J_lin = torch.where(revolute, lin_rev, axes)
        J_ang = torch.where(revolute, axes, torch.zeros_like(axes))
        return p, R, torch.cat([J_lin, J_ang], dim=1)

    def link_frames(self, q: torch.Tensor) -> tuple[list[str], torch.Tensor]:
        """Transforms base <- link for every link on the chain.

        Returns:
            (names, T): the L link names from base to tip and T of shape (*batch, L, 4, 4).
        """
        batch = q.shape[:-1]
        qf = self._check_q(q)
        B = qf.shape[0]
        T = torch.eye(4, dtype=qf.dtype, device=qf.device).expand(B, 4, 4)
        names, frames = [self.base_link], [T]
        i = 0
        for j in self.joints:
            T = T @ torch.as_tensor(j.origin, dtype=qf.dtype, device=qf.device)
            if j.movable:
                M = torch.eye(4, dtype=qf.dtype, device=qf.device).repeat(B, 1, 1)
                axis = torch.as_tensor(j.axis, dtype=qf.dtype, device=qf.device)
                if j.type == "prismatic":
                    M[:, :3, 3] = axis * qf[:, i, None]
                else:
                    K = torch.as_tensor(skew(j.axis), dtype=qf.dtype, device=qf.device)
                    M[:, :3, :3] = M[:, :3, :3] + torch.sin(qf[:, i, None, None]) * K + (1 - torch.cos(qf[:, i, None, None])) * (K @ K)
                T = T @ M
                i += 1
            names.append(j.child)
            frames.append(T)
        return names, torch.stack(frames, dim=1).reshape(*batch, len(names), 4, 4)

    def __repr__(self) -> str:
        return f"KinematicChain(name={self.name!r}, base={self.base_link!r}, tip={self.tip_link!r}, dof={self.dof}, joints={list(self.joint_names)})"
