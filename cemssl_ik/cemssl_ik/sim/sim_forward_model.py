"""The built-in MuJoCo UR3 as a forward model, in process: the learner's robot without DDS.

Each configuration is commanded as a one-point trajectory timed for the joints' velocity limits,
the physics runs (as fast as the CPU allows) until the arm has settled, and what the robot
reports, the *measured* joints and tool pose with the configured noise, is returned.  A target
the safety check refuses, or a move that does not settle in time, is a failed sample.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..learning.forward_model import ForwardResult
from ..learning.robot_moves import order_moves, waypoints
from .mujoco_ur3 import SimUR3

__all__ = ["SimForwardModel"]


def _default_check(lower: np.ndarray, upper: np.ndarray) -> Callable[[np.ndarray, np.ndarray], tuple[bool, list[str]]]:
    def check(current: np.ndarray, target: np.ndarray) -> tuple[bool, list[str]]:
        if not np.all(np.isfinite(target)):
            return False, ["target not finite"]
        if np.any(target < lower) or np.any(target > upper):
            return False, ["target outside the joint limits"]
        return True, []

    return check


class SimForwardModel:
    """:class:`~cemssl_ik.learning.ForwardModel` over a :class:`SimUR3`.

    Args:
        sim: the simulated arm (its ``true_chain`` is the truth the measurements come from).
        check: (current, target) -> (ok, reasons), the safety layer; default: finite and within
            the joint limits.
        duration: (current, target) -> seconds of the move; default: the largest joint change at
            half the velocity limit, at least 0.5 s.
        settle_timeout: simulated seconds after the planned duration before a move fails.
        step: simulated seconds between settle checks.
        max_step: a move whose largest joint change exceeds this goes through intermediate
            points, each checked and settled at (None: one move).
    """

    def __init__(
        self,
        sim: SimUR3,
        check: Callable[[np.ndarray, np.ndarray], tuple[bool, list[str]]] | None = None,
        duration: Callable[[np.ndarray, np.ndarray], float] | None = None,
        settle_timeout: float = 5.0,
        step: float = 0.02,
        max_step: float | None = None,
    ) -> None:
        self.sim = sim
        chain = sim.nominal_chain
        self.check = check or _default_check(chain.lower, chain.upper)
        vmax = np.where(np.isfinite(chain.velocity_limits), chain.velocity_limits, np.pi)
        self.duration = duration or (lambda a, b: max(0.5, float(np.max(np.abs(b - a) / (0.5 * vmax)))))
        self.settle_timeout, self.step, self.max_step = settle_timeout, step, max_step
        self.moves = 0
        self.refused = 0

    def move(self, target: np.ndarray) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray]:
        """(valid, measured q (dof,), position (3,), rotation (3, 3)) after moving to ``target``."""
        nan = (False, np.full(self.sim.dof, np.nan), np.full(3, np.nan), np.full((3, 3), np.nan))
        current = self.sim.joint_positions()
        # 0.9: the arm settles near, not exactly at, each point, and the next step starts from there
        points = [target] if self.max_step is None or not np.all(np.isfinite(target)) else waypoints(current, target, 0.9 * self.max_step)
        prev = current
        for point in points:  # the whole path is checked before the arm moves
            ok, _ = self.check(prev, point)
            if not ok:
                self.refused += 1
                return nan
            prev = point
        for point in points:
            current = self.sim.joint_positions()
            seconds = float(self.duration(current, point))
            self.sim.command_trajectory(np.asarray(point)[None], [seconds])
            self.moves += 1
            deadline = self.sim.time + seconds + self.settle_timeout
            while not self.sim.settled():
                if self.sim.time > deadline:
                    self.sim.hold()
                    return nan
                self.sim.step(self.step)
        m = self.sim.measure()
        return True, m.q, m.position, m.rotation

    def evaluate(self, q: torch.Tensor) -> ForwardResult:
        targets = q.detach().to("cpu", torch.float64).numpy()
        n, dof = targets.shape
        out_q, out_p, out_R = np.full((n, dof), np.nan), np.full((n, 3), np.nan), np.full((n, 3, 3), np.nan)
        valid = np.zeros(n, dtype=bool)
        for i in order_moves(targets, self.sim.joint_positions()):
            valid[i], out_q[i], out_p[i], out_R[i] = self.move(targets[i])
        t = lambda a: torch.tensor(a, dtype=torch.float64).to(q.dtype)  # noqa: E731
        return ForwardResult(t(out_q), t(out_p), t(out_R), torch.tensor(valid))
