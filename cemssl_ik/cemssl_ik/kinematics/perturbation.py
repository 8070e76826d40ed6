"""Kinematic perturbations: the ways a real arm differs from its nominal URDF, applied to a chain.

A :class:`KinematicPerturbation` describes the *true* arm relative to the nominal one:

- ``link_length_changes`` (dof,) metres: the translation of movable joint ``i``'s origin (the link
  between joint ``i-1`` and joint ``i``; for ``i = 0`` the base -> first joint offset) grows by this
  amount along its own direction.  A joint whose origin has no translation (the UR3's
  ``shoulder_lift_joint``) takes 0 only.
- ``joint_zero_offsets`` (dof,) radians (metres for prismatic joints): the true joint value is the
  reading plus this offset, i.e. the joint origin is turned about (moved along) the joint axis.
- ``tool_offset`` (3,) metres: a rigid offset of the tool point, expressed in the tip frame.

:func:`perturbed_chain` returns the true arm as a :class:`KinematicChain`; its FK at the joint
readings is the arm's true tool pose.  No simulator is needed for that: the MuJoCo model is built
from this same chain, so the two agree to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .chain import JointSpec, KinematicChain
from .transforms import skew

__all__ = ["KinematicPerturbation", "perturbed_chain", "uniform_link_change"]

#: A joint origin shorter than this (metres) has no direction to lengthen along.
_MIN_LENGTH = 1e-9


def _floats(name: str, values, n: int | None = None) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r}") from exc
    if n is not None and len(out) != n:
        raise ValueError(f"{name} must have {n} values, got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


@dataclass(frozen=True)
class KinematicPerturbation:
    """How the true arm differs from the nominal chain (all zero / empty: no difference).

    Empty tuples mean "no change" for every joint, so one default fits any chain.
    """

    #: (dof,) metres added to each movable joint's origin translation, along its direction.
    link_length_changes: tuple[float, ...] = ()
    #: (dof,) radians (metres for prismatic joints): true joint value = reading + offset.
    joint_zero_offsets: tuple[float, ...] = ()
    #: (3,) metres, tool point offset in the tip frame.
    tool_offset: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))

    def __post_init__(self) -> None:
        object.__setattr__(self, "link_length_changes", _floats("link_length_changes", self.link_length_changes))
        object.__setattr__(self, "joint_zero_offsets", _floats("joint_zero_offsets", self.joint_zero_offsets))
        object.__setattr__(self, "tool_offset", _floats("tool_offset", self.tool_offset, 3))

    @property
    def is_identity(self) -> bool:
        return not any(self.link_length_changes) and not any(self.joint_zero_offsets) and not any(self.tool_offset)

    def resolved(self, dof: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(link_length_changes (dof,), joint_zero_offsets (dof,), tool_offset (3,)) with empties as zeros."""
        out = []
        for name, values in (("link_length_changes", self.link_length_changes), ("joint_zero_offsets", self.joint_zero_offsets)):
            if not values:
                out.append(np.zeros(dof))
            elif len(values) != dof:
                raise ValueError(f"{name} has {len(values)} values but the chain has {dof} movable joints; give one per joint or none")
            else:
                out.append(np.asarray(values, dtype=np.float64))
        return out[0], out[1], np.asarray(self.tool_offset, dtype=np.float64)


def uniform_link_change(chain: KinematicChain, change: float) -> tuple[float, ...]:
    """``change`` metres on every movable joint origin that has a length (0 where it has none).

    E.g. ``KinematicPerturbation(link_length_changes=uniform_link_change(ur3, 0.05))`` is "+5 cm on
    every link" of the adaptation experiment.
    """
    out = []
    for j in chain.joints:
        if j.movable:
            out.append(float(change) if np.linalg.norm(j.origin[:3, 3]) > _MIN_LENGTH else 0.0)
    return tuple(out)


def _rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    K = skew(axis)
    return np.eye(3) + math.sin(angle) * K + (1.0 - math.cos(angle)) * (K @ K)


def perturbed_chain(chain: KinematicChain, perturbation: KinematicPerturbation) -> KinematicChain:
    """The true arm: ``chain`` with ``perturbation`` applied (same joint names, links and limits).

    Raises:
        ValueError: a per-joint list has the wrong length, or a length change is asked of a joint
            origin without translation.
    """
    dl, dq, tool = perturbation.resolved(chain.dof)
    joints: list[JointSpec] = []
    i = 0
    for j in chain.joints:
        origin = j.origin.copy()
        if j.movable:
            t = origin[:3, 3]
            norm = float(np.linalg.norm(t))
            if dl[i] != 0.0:
                if norm <= _MIN_LENGTH:
                    raise ValueError(f"joint {j.name!r}: its origin has no translation to lengthen; set its link_length_changes entry to 0")
                if norm + dl[i] <= 0.0:
                    raise ValueError(f"joint {j.name!r}: a change of {dl[i]} m would make its {norm:.4f} m link non-positive")
                origin[:3, 3] = t * (norm + dl[i]) / norm
            if dq[i] != 0.0:
                if j.type == "prismatic":
                    origin[:3, 3] = origin[:3, 3] + origin[:3, :3] @ (j.axis * dq[i])
                else:
                    origin[:3, :3] = origin[:3, :3] @ _rotation_about(j.axis, dq[i])
            i += 1
        joints.append(JointSpec(j.name, j.type, j.parent, j.child, origin, j.axis, j.lower, j.upper, j.velocity))
    if np.any(tool != 0.0):
        T = np.eye(4)
        T[:3, 3] = tool
        joints.append(JointSpec("tool_offset", "fixed", chain.tip_link, chain.tip_link + "_true", T))
    return KinematicChain(joints, name=chain.name + "_perturbed" if not perturbation.is_identity else chain.name)
