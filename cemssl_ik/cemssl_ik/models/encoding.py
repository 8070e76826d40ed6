"""Encodings between robot quantities and network inputs / outputs.

- :class:`TargetEncoder`: a target (position (B, 3), or pose = position + rotation (B, 3, 3)) ->
  network condition features: position standardized by workspace statistics, rotation as the
  continuous 6D representation (two columns, Stephan et al.).  With a symmetry axis (the first joint's,
  see :meth:`KinematicChain.base_symmetry_axis`) targets are first turned about it onto one
  half-plane: the network sees only what the other joints must do, and the first joint's value is
  the network's output plus the target's azimuth (:meth:`TargetEncoder.azimuth`).
- :class:`JointCodec`: network output <-> joint values.  ``sigmoid``: one unit per joint squashed
  into the joint's learning range (the CEMSSL paper); ``biternion``: a (cos, sin) pair per revolute joint,
  normalized, decoded with atan2 (Stephan et al.).  Prismatic joints use the sigmoid form in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..kinematics.transforms import matrix_to_rot6d
from ..kinematics.transforms import skew as skew_matrix

__all__ = ["TargetEncoder", "JointCodec", "TARGET_KINDS", "OUTPUT_KINDS"]

TARGET_KINDS = ("position", "pose")
_EYE3 = np.eye(3)
OUTPUT_KINDS = ("sigmoid", "biternion")


@dataclass
class TargetEncoder:
    """Target -> condition features.

    Attributes:
        kind: ``position`` (features: 3) or ``pose`` (features: 3 + 6).
        mean: (3,) workspace position mean (metres), of the canonical targets with a symmetry axis.
        scale: scalar workspace position scale (metres); features are (p - mean) / scale.
        axis_point, axis: a point on and the unit direction of the symmetry axis (base frame), or None.
    """

    kind: str
    mean: tuple[float, float, float]
    scale: float
    axis_point: tuple[float, float, float] | None = None
    axis: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"target kind must be one of {TARGET_KINDS}, got {self.kind!r}")
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise ValueError(f"scale must be positive and finite, got {self.scale}")
        if (self.axis is None) != (self.axis_point is None):
            raise ValueError("axis and axis_point are given together or not at all")
        if self.axis is not None:
            a = torch.as_tensor(self.axis, dtype=torch.float64)
            if a.shape != (3,) or abs(float(a.norm()) - 1.0) > 1e-9 or len(self.axis_point) != 3:
                raise ValueError(f"axis must be a unit 3-vector and axis_point a 3-vector, got {self.axis}, {self.axis_point}")
            # reference direction of azimuth 0: the base axis least aligned with the symmetry axis,
            # made perpendicular to it; v completes the right-handed frame (u, v, axis)
            e = torch.eye(3, dtype=torch.float64)[int(a.abs().argmin())]
            u = e - (e @ a) * a
            u = u / u.norm()
            self._frame = (u, torch.linalg.cross(a, u), a)
            # the same frame, the axis point and the Rodrigues generators as float64 arrays, for
            # the numpy path (a single request's handful of targets: see encode_numpy)
            K = skew_matrix(self.axis)
            self._frame_np = tuple(t.numpy() for t in self._frame) + (np.asarray(self.axis_point, dtype=np.float64), K, K @ K)

    @property
    def symmetric(self) -> bool:
        return self.axis is not None

    def azimuth(self, position: torch.Tensor) -> torch.Tensor:
        """(..., 3) -> (...,) angle of each target about the symmetry axis (0 on the reference half-plane)."""
        u, v, _ = (t.to(position.device, position.dtype) for t in self._frame)
        d = position - torch.as_tensor(self.axis_point, dtype=position.dtype, device=position.device)
        return torch.atan2(d @ v, d @ u)

    def canonicalize(self, position: torch.Tensor, rotation: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Targets turned about the symmetry axis by minus their azimuth (identity without an axis)."""
        if not self.symmetric:
            return position, rotation
        u, _, a = (t.to(position.device, position.dtype) for t in self._frame)
        point = torch.as_tensor(self.axis_point, dtype=position.dtype, device=position.device)
        # turning the part of d = p - point across the axis onto u: point + (d.a) a + |d - (d.a) a| u
        d = position - point
        along = (d @ a)[..., None]
        out = point + along * a + (d - along * a).norm(dim=-1, keepdim=True) * u
        if rotation is None:
            return out, None
        phi = self.azimuth(position)
        K = torch.as_tensor(skew_matrix(self.axis), dtype=position.dtype, device=position.device)
        s, c = torch.sin(-phi)[..., None, None], torch.cos(-phi)[..., None, None]
        R = torch.eye(3, dtype=position.dtype, device=position.device) + s * K + (1 - c) * (K @ K)  # Rodrigues
        return out, R @ rotation.to(position.dtype)

    def encode_numpy(self, position: np.ndarray, rotation: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`encode` for float64 arrays (B, 3) [+ (B, 3, 3)], without torch's per-operation cost.

        Returns:
            (features (B, dim) float32, azimuth (B,) float64 or None without a symmetry axis): the
            azimuth is what :meth:`JointCodec.decode_raw_numpy` adds back to the first joint.
        """
        phi = None
        if self.symmetric:
            u, v, a, point, K, K2 = self._frame_np
            d = position - point
            phi = np.arctan2(d @ v, d @ u)
            along = d @ a
            position = point + along[:, None] * a + np.linalg.norm(d - along[:, None] * a, axis=-1)[:, None] * u
            if rotation is not None:
                s, c = np.sin(-phi)[:, None, None], np.cos(-phi)[:, None, None]
                rotation = (s * K + (1 - c) * K2 + _EYE3) @ rotation  # Rodrigues, as canonicalize
        feats = ((position - np.asarray(self.mean)) / self.scale).astype(np.float32)
        if self.kind == "position":
            return feats, phi
        if rotation is None:
            raise ValueError("a pose model needs target rotations (B, 3, 3)")
        # the 6D representation: the first two columns, as matrix_to_rot6d
        return np.concatenate([feats, rotation[:, :, 0].astype(np.float32), rotation[:, :, 1].astype(np.float32)], axis=-1), phi

    @property
    def dim(self) -> int:
        return 3 if self.kind == "position" else 9

    @classmethod
    def fit(cls, kind: str, positions: torch.Tensor, axis_point=None, axis=None) -> "TargetEncoder":
        """Statistics from sample positions (N, 3) (e.g. FK of random joint samples), canonicalized
        about the symmetry axis (``axis_point``, unit ``axis``) when one is given."""
        axis_point = None if axis_point is None else tuple(float(v) for v in axis_point)
        axis = None if axis is None else tuple(float(v) for v in axis)
        positions = cls(kind, (0.0, 0.0, 0.0), 1.0, axis_point, axis).canonicalize(positions.double())[0]
        mean = positions.mean(0)
        scale = float((positions - mean).norm(dim=-1).max())
        return cls(kind, tuple(float(v) for v in mean), scale if scale > 0 else 1.0, axis_point, axis)

    def encode(self, position: torch.Tensor, rotation: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3) [+ (B, 3, 3)] -> (B, dim) features in the dtype of ``position``."""
        position, rotation = self.canonicalize(position, rotation)
        mean = torch.as_tensor(self.mean, dtype=position.dtype, device=position.device)
        feats = (position - mean) / self.scale
        if self.kind == "position":
            return feats
        if rotation is None:
            raise ValueError("a pose model needs target rotations (B, 3, 3)")
        return torch.cat([feats, matrix_to_rot6d(rotation.to(position.dtype))], dim=-1)

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "mean": list(self.mean), "scale": self.scale}
        if self.symmetric:
            d.update(axis_point=list(self.axis_point), axis=list(self.axis))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TargetEncoder":
        point, axis = d.get("axis_point"), d.get("axis")
        return cls(d["kind"], tuple(d["mean"]), float(d["scale"]), None if point is None else tuple(point), None if axis is None else tuple(axis))


class JointCodec:
    """Network output <-> joint values within the learning limits.

    Args:
        lower, upper: (dof,) learning limits (one period for revolute joints).
        periodic: (dof,) bool: revolute joints (biternion applies to them).
        kind: ``sigmoid`` or ``biternion``.
    """

    def __init__(self, lower, upper, periodic, kind: str = "sigmoid") -> None:
        if kind not in OUTPUT_KINDS:
            raise ValueError(f"output kind must be one of {OUTPUT_KINDS}, got {kind!r}")
        self.kind = kind
        self.lower = torch.as_tensor(lower, dtype=torch.float64)
        self.upper = torch.as_tensor(upper, dtype=torch.float64)
        self.periodic = torch.as_tensor(periodic, dtype=torch.bool)
        if not torch.all(self.upper > self.lower):
            raise ValueError("every joint needs upper > lower learning limits")
        self.dof = len(self.lower)
        self.biternion = self.periodic if kind == "biternion" else torch.zeros(self.dof, dtype=torch.bool)
        self._all_biternion = bool(self.biternion.all())  # every joint a (cos, sin) pair: vectorized paths
        # numpy path (decode_raw_numpy): each joint's output column (its cos for biternion joints)
        cols, i = [], 0
        for j in range(self.dof):
            cols.append(i)
            i += 2 if self.biternion[j] else 1
        self._np = (np.asarray(cols), np.minimum(np.asarray(cols) + 1, i - 1), self.biternion.numpy(), self.lower.numpy(), self.upper.numpy())

    @property
    def out_dim(self) -> int:
        return self.dof + int(self.biternion.sum())

    def _limits(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lower.to(like.device, like.dtype), self.upper.to(like.device, like.dtype)

    def normalize(self, q: torch.Tensor) -> torch.Tensor:
        """Joint values (..., dof) -> the training target of the network (..., out_dim).

        sigmoid: (q - lower) / (upper - lower) in [0, 1]; biternion: (cos q, sin q) per revolute joint.
        """
        if self._all_biternion:
            return torch.stack([torch.cos(q), torch.sin(q)], dim=-1).flatten(-2)
        lo, hi = self._limits(q)
        unit = (q - lo) / (hi - lo)
        if not self.biternion.any():
            return unit
        parts = []
        for j in range(self.dof):
            if self.biternion[j]:
                parts += [torch.cos(q[..., j]), torch.sin(q[..., j])]
            else:
                parts.append(unit[..., j])
        return torch.stack(parts, dim=-1)

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw network output (..., out_dim) -> normalized space (what :meth:`normalize` produces)."""
        if not self.biternion.any():
            return torch.sigmoid(raw)
        if self._all_biternion:
            pairs = raw.unflatten(-1, (self.dof, 2))
            return (pairs / pairs.norm(dim=-1, keepdim=True).clamp_min(1e-12)).flatten(-2)
        parts, i = [], 0
        for j in range(self.dof):
            if self.biternion[j]:
                pair = raw[..., i : i + 2]
                parts.append(pair / pair.norm(dim=-1, keepdim=True).clamp_min(1e-12))
                i += 2
            else:
                parts.append(torch.sigmoid(raw[..., i : i + 1]))
                i += 1
        return torch.cat(parts, dim=-1)

    def decode_raw_numpy(self, raw: np.ndarray, azimuth: np.ndarray | None = None) -> np.ndarray:
        """Raw network outputs (B, K, out_dim) -> joints (B, K, dof) float64: :meth:`activate` then
        :meth:`decode` in numpy, for a single request's handful of samples.

        ``azimuth`` (B,): the targets' angles about a symmetry axis (:meth:`TargetEncoder.encode_numpy`),
        added to the first joint, which is then brought back into its learning period (as the
        generator's decode does for models with ``base_symmetry``).
        """
        cols, sin_cols, bit, lo, hi = self._np
        raw = raw.astype(np.float64)
        c, s = raw[..., cols], raw[..., sin_cols]
        # atan2 needs no normalized pair; sigmoid(x) = (1 + tanh(x / 2)) / 2 has no exp to overflow
        q = np.where(bit, np.arctan2(s, c), lo + (hi - lo) * 0.5 * (1.0 + np.tanh(0.5 * c)))
        if azimuth is not None:
            q[..., 0] = lo[0] + np.mod(q[..., 0] + azimuth[:, None] - lo[0], 2 * np.pi)
        return q

    def decode(self, normalized: torch.Tensor) -> torch.Tensor:
        """Normalized outputs (..., out_dim) -> joint values (..., dof) (radians / metres)."""
        if self._all_biternion:
            pairs = normalized.unflatten(-1, (self.dof, 2))
            return torch.atan2(pairs[..., 1], pairs[..., 0])
        lo, hi = self._limits(normalized)
        if not self.biternion.any():
            return lo + normalized * (hi - lo)
        cols, i = [], 0
        for j in range(self.dof):
            if self.biternion[j]:
                cols.append(torch.atan2(normalized[..., i + 1], normalized[..., i]))
                i += 2
            else:
                cols.append(lo[j] + normalized[..., i] * (hi[j] - lo[j]))
                i += 1
        return torch.stack(cols, dim=-1)
