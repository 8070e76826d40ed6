"""Message <-> array conversions and request validation, as pure functions (testable without a node).

The functions take plain Python / numpy values or duck-typed messages (anything with the fields of
``geometry_msgs/Pose`` and ``sensor_msgs/JointState``), so they need no rclpy import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["RequestError", "ParsedTarget", "PositionIKQuery", "parse_pose", "parse_seed", "parse_position_ik_request", "validate_num_solutions", "order_by_seed", "reach_sphere"]


class RequestError(ValueError):
    """A request field is invalid; ``str(exc)`` is the message sent back to the client."""


@dataclass(frozen=True)
class ParsedTarget:
    """A validated target: position (3,) metres and unit quaternion (4,) x, y, z, w (None if position-only)."""

    position: np.ndarray
    quaternion: np.ndarray | None


def parse_pose(pose, position_only: bool, quaternion_tolerance: float = 1e-3) -> ParsedTarget:
    """Validate a ``geometry_msgs/Pose``-like object.

    Raises:
        RequestError: non-finite values; for pose targets a zero or non-unit quaternion
            (|norm - 1| > quaternion_tolerance). Near-unit quaternions are renormalized.
    """
    p = np.array([pose.position.x, pose.position.y, pose.position.z], dtype=np.float64)
    if not np.all(np.isfinite(p)):
        raise RequestError(f"target position must be finite, got {p.tolist()}")
    if position_only:
        return ParsedTarget(p, None)
    o = pose.orientation
    quat = np.array([o.x, o.y, o.z, o.w], dtype=np.float64)
    if not np.all(np.isfinite(quat)):
        raise RequestError(f"target orientation must be finite, got {quat.tolist()}")
    norm = float(np.linalg.norm(quat))
    if abs(norm - 1.0) > quaternion_tolerance:
        raise RequestError(f"target orientation must be a unit quaternion (x y z w), got norm {norm:.6g}; set position_only for position targets")
    return ParsedTarget(p, quat / norm)


def parse_seed(names: Sequence[str], positions: Sequence[float], joint_names: Sequence[str]) -> np.ndarray | None:
    """Map a ``JointState``-like seed onto the chain's joint order.

    An empty seed (no names and no positions) means "no seed" and returns None.  Extra joints that
    are not on the chain (e.g. a gripper in ``/joint_states``) are ignored.

    Raises:
        RequestError: names and positions differ in length, a name repeats, a chain joint is
            missing, or a value is not finite.
    """
    names, positions = list(names), list(positions)
    if not names and not positions:
        return None
    if len(names) != len(positions):
        raise RequestError(f"seed has {len(names)} names but {len(positions)} positions; they must match one to one")
    seen = set()
    for n in names:
        if n in seen:
            raise RequestError(f"seed names joint {n!r} more than once")
        seen.add(n)
    index = {n: i for i, n in enumerate(names)}
    missing = [j for j in joint_names if j not in index]
    if missing:
        raise RequestError(f"seed lacks chain joint(s) {missing}; expected names {list(joint_names)}")
    q = np.array([positions[index[j]] for j in joint_names], dtype=np.float64)
    if not np.all(np.isfinite(q)):
        raise RequestError(f"seed positions must be finite, got {q.tolist()}")
    return q


def validate_num_solutions(n: int, max_solutions: int) -> int:
    """1 <= n <= max_solutions, else RequestError."""
    if n < 1 or n > max_solutions:
        raise RequestError(f"num_solutions must be between 1 and max_solutions={max_solutions}, got {n}")
    return int(n)


def order_by_seed(solutions: np.ndarray, seed: np.ndarray | None, weights: np.ndarray | None = None) -> np.ndarray:
    """Indices ordering (K, dof) solutions by weighted joint-space distance to the seed (stable).

    Without a seed the given order is kept.
    """
    if seed is None or len(solutions) == 0:
        return np.arange(len(solutions))
    w = np.ones(solutions.shape[-1]) if weights is None else np.asarray(weights, dtype=np.float64)
    dist = np.sqrt((((solutions - seed) * w) ** 2).sum(-1))
    return np.argsort(dist, kind="stable")



@dataclass(frozen=True)
class PositionIKQuery:
    """A validated ``moveit_msgs/PositionIKRequest``.

    Attributes:
        frame: header.frame_id of the pose ('' = chain base).
        target: the pose.
        seed: chain-ordered seed from ``robot_state.joint_state`` (None if it lacks chain joints).
    """

    frame: str
    target: ParsedTarget
    seed: np.ndarray | None


def parse_position_ik_request(
    ik_request,
    joint_names: Sequence[str],
    tip_link: str,
    group_names: Sequence[str] = (),
    refuse_avoid_collisions: bool = False,
) -> PositionIKQuery:
    """Validate a ``moveit_msgs/PositionIKRequest``-like object for a chain ending at ``tip_link``.

    MoveIt's ``srv_kinematics_plugin`` sends every request with ``avoid_collisions = true`` and
    checks the answer against its own planning scene (the plugin's solution callback), so by
    default the flag is accepted and the answer is not collision-checked here;
    ``refuse_avoid_collisions`` answers such requests ``COLLISION_CHECKING_UNAVAILABLE`` instead.

    Args:
        group_names: accepted ``group_name`` values; empty accepts any group (the service serves
            one chain, which ``ik_link_name`` and the joint names identify).

    Raises:
        RequestError: with ``code`` attribute set to the MoveIt error-code name to answer with
            (``INVALID_GROUP_NAME``, ``INVALID_LINK_NAME``, ``COLLISION_CHECKING_UNAVAILABLE``,
            ``INVALID_ROBOT_STATE`` or ``NO_IK_SOLUTION`` for a malformed pose).
    """
    accepted = [g for g in group_names if g]
    if accepted and ik_request.group_name not in accepted:
        raise _coded(f"group_name {ik_request.group_name!r} is not served here (accepted: {accepted})", "INVALID_GROUP_NAME")
    link = ik_request.ik_link_name
    if link not in ("", tip_link):
        raise _coded(f"ik_link_name {link!r} is not this solver's tip link {tip_link!r}", "INVALID_LINK_NAME")
    if ik_request.avoid_collisions and refuse_avoid_collisions:
        raise _coded("avoid_collisions=true needs a planning scene; this service does not check collisions (call it with avoid_collisions=false, MoveIt checks the result)", "COLLISION_CHECKING_UNAVAILABLE")
    try:
        target = parse_pose(ik_request.pose_stamped.pose, position_only=False)
    except RequestError as exc:
        raise _coded(str(exc), "NO_IK_SOLUTION") from None
    js = ik_request.robot_state.joint_state
    try:
        seed = parse_seed(js.name, js.position, joint_names)
    except RequestError as exc:
        if "lacks" in str(exc):
            seed = None  # a robot state without our joints is no seed, not an error
        else:
            raise _coded(str(exc), "INVALID_ROBOT_STATE") from None
    return PositionIKQuery(ik_request.pose_stamped.header.frame_id, target, seed)


def reach_sphere(segments: dict[str, np.ndarray]) -> tuple[np.ndarray, float] | None:
    """A sphere that holds every position the tip can reach, from ``KinematicChain.segment_arrays()``.

    The tip lies at ``t_o[0] + R(q_0) (t_o[1] + R(q_1) (... + t_tip))``, so its distance to the
    first joint's origin is at most the sum of the later offsets' lengths (triangle inequality).

    Returns:
        (centre (3,) metres in the chain base, radius metres), or None when the chain has a
        prismatic joint (its reach depends on the joint's travel, not bounded here).
    """
    if not np.all(segments["revolute"] == 1.0):
        return None
    radius = float(np.linalg.norm(segments["t_o"][1:], axis=-1).sum() + np.linalg.norm(segments["t_tip"]))
    return np.asarray(segments["t_o"][0], dtype=np.float64), radius


def _coded(message: str, code: str) -> RequestError:
    exc = RequestError(message)
    exc.code = code  # type: ignore[attr-defined]
    return exc
