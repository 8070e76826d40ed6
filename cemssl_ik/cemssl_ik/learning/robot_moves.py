"""Moving a real arm through a batch of configurations: ordering, settling, the UR ``base`` frame.

Pure functions and small state machines used by the ROS forward model
(:mod:`cemssl_ik.ros.robot_forward_model`), kept here so that they are tested without DDS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["order_moves", "waypoints", "SettleConfig", "SettleDetector", "ur_base_to_base_link"]


def order_moves(targets: np.ndarray, start: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """An order of visiting ``targets`` (N, dof) from ``start`` (dof,) that keeps moves short.

    Greedy nearest neighbour in weighted joint space (the largest joint change, which sets a
    move's duration under per-joint velocity limits): O(N^2 dof), fine for the hundreds of moves
    of a calibration batch.

    Returns:
        (N,) indices into ``targets``.
    """
    targets = np.asarray(targets, dtype=np.float64)
    n = len(targets)
    w = np.ones(targets.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    left = np.ones(n, dtype=bool)
    order = np.empty(n, dtype=np.int64)
    here = np.asarray(start, dtype=np.float64)
    for k in range(n):
        cost = np.abs((targets - here) * w).max(axis=1)
        cost[~left] = np.inf
        i = int(np.argmin(cost))
        order[k], left[i], here = i, False, targets[i]
    return order


def waypoints(current: np.ndarray, target: np.ndarray, max_step: float) -> np.ndarray:
    """Points on the straight joint path from ``current`` to ``target`` (both (dof,)), evenly
    spaced so that no joint changes by more than ``max_step`` between two; ends with ``target``.

    Returns:
        (n, dof), n >= 1.
    """
    current, target = np.asarray(current, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if not (math.isfinite(max_step) and max_step > 0):
        raise ValueError(f"max_step must be a positive number, got {max_step}")
    n = max(1, math.ceil(float(np.max(np.abs(target - current))) / max_step - 1e-12))
    return current + (target - current) * (np.arange(1, n + 1) / n)[:, None]


@dataclass(frozen=True)
class SettleConfig:
    """When is a commanded arm at rest at its target?

    Attributes:
        position_tolerance: |measured - target| per joint, radians, at most.
        velocity_tolerance: |joint velocity| per joint, rad/s, at most (where reported).
        hold: seconds both must hold without interruption.
        timeout: seconds after the move's planned duration before the move counts as failed.
    """

    position_tolerance: float = 2e-3
    velocity_tolerance: float = 5e-3
    hold: float = 0.2
    timeout: float = 5.0

    def __post_init__(self) -> None:
        for name in ("position_tolerance", "velocity_tolerance", "hold", "timeout"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"SettleConfig.{name} must be a positive finite number, got {v!r}")


class SettleDetector:
    """Feed it joint readings; it says when the arm has been at rest at the target for ``hold`` s."""

    def __init__(self, target: np.ndarray, config: SettleConfig) -> None:
        self.target = np.asarray(target, dtype=np.float64)
        self.config = config
        self._since: float | None = None

    def update(self, t: float, q: np.ndarray, velocity: np.ndarray | None = None) -> bool:
        """Reading at time ``t`` (s): joints ``q`` (dof,), velocities (dof,) or None. True once settled."""
        q = np.asarray(q, dtype=np.float64)
        at_rest = bool(np.all(np.isfinite(q)) and np.all(np.abs(q - self.target) <= self.config.position_tolerance))
        if velocity is not None and len(velocity) == len(q):
            v = np.asarray(velocity, dtype=np.float64)
            at_rest = at_rest and bool(np.all(np.isfinite(v)) and np.all(np.abs(v) <= self.config.velocity_tolerance))
        if not at_rest:
            self._since = None
            return False
        if self._since is None:
            self._since = t
        return t - self._since >= self.config.hold

    def tracking_error(self, q: np.ndarray) -> float:
        """Largest joint distance to the target (radians / metres)."""
        return float(np.abs(np.asarray(q, dtype=np.float64) - self.target).max())


def ur_base_to_base_link(position: np.ndarray, quaternion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A pose in UR's ``base`` frame (the controller's, ``base_link`` turned by pi about z) in ``base_link``.

    Args:
        position: (3,) metres; quaternion: (4,) x y z w.

    Returns:
        (position (3,), quaternion (4,) x y z w) in ``base_link``.
    """
    x, y, z = np.asarray(position, dtype=np.float64)
    qx, qy, qz, qw = np.asarray(quaternion, dtype=np.float64)
    # R_z(pi) as a quaternion is (0, 0, 1, 0); (0,0,1,0) * (qx,qy,qz,qw) = (-qy, qx, qw, -qz)
    return np.array([-x, -y, z]), np.array([-qy, qx, qw, -qz])
