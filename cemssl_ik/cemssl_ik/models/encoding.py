"""Encodings between robot quantities and network inputs / outputs.

- :class:`TargetEncoder`: a target (position (B, 3), or pose = position + rotation (B, 3, 3)) ->
  network condition features: position standardized by workspace statistics, rotation as the
  continuous 6D representation (two columns, paper 002).
- :class:`JointCodec`: network output <-> joint values.  ``sigmoid``: one unit per joint squashed
  into the joint's learning range (paper 000); ``biternion``: a (cos, sin) pair per revolute joint,
  normalized, decoded with atan2 (paper 002).  Prismatic joints use the sigmoid form in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..kinematics.transforms import matrix_to_rot6d

__all__ = ["TargetEncoder", "JointCodec", "TARGET_KINDS", "OUTPUT_KINDS"]

TARGET_KINDS = ("position", "pose")
OUTPUT_KINDS = ("sigmoid", "biternion")


@dataclass
class TargetEncoder:
    """Target -> condition features.

    Attributes:
        kind: ``position`` (features: 3) or ``pose`` (features: 3 + 6).
        mean: (3,) workspace position mean (metres).
        scale: scalar workspace position scale (metres); features are (p - mean) / scale.
    """

    kind: str
    mean: tuple[float, float, float]
    scale: float

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"target kind must be one of {TARGET_KINDS}, got {self.kind!r}")
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise ValueError(f"scale must be positive and finite, got {self.scale}")

    @property
    def dim(self) -> int:
        return 3 if self.kind == "position" else 9

    @classmethod
    def fit(cls, kind: str, positions: torch.Tensor) -> "TargetEncoder":
        """Statistics from sample positions (N, 3) (e.g. FK of random joint samples)."""
        mean = positions.double().mean(0)
        scale = float((positions.double() - mean).norm(dim=-1).max())
        return cls(kind, tuple(float(v) for v in mean), scale if scale > 0 else 1.0)

    def encode(self, position: torch.Tensor, rotation: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3) [+ (B, 3, 3)] -> (B, dim) features in the dtype of ``position``."""
        mean = torch.as_tensor(self.mean, dtype=position.dtype, device=position.device)
        feats = (position - mean) / self.scale
        if self.kind == "position":
            return feats
        if rotation is None:
            raise ValueError("a pose model needs target rotations (B, 3, 3)")
        return torch.cat([feats, matrix_to_rot6d(rotation.to(position.dtype))], dim=-1)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mean": list(self.mean), "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> "TargetEncoder":
        return cls(d["kind"], tuple(d["mean"]), float(d["scale"]))


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
