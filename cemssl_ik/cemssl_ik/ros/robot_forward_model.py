"""The robot as a forward model, over ROS 2: command joints, wait until the arm settles, measure.

:class:`RosRobotForwardModel` implements :class:`~cemssl_ik.learning.ForwardModel` against the
ros2_control-facing interface every UR setup shares (the real arm through ur_robot_driver,
Gazebo through ur_simulation_gz, the package's ``sim_robot_node``):

* commands go out as ``trajectory_msgs/JointTrajectory`` on ``<controller>/joint_trajectory``
  (one point, timed by the safety layer's velocity limits), after the safety check; a refused
  target is a failed sample, never published;
* ``/joint_states`` (mapped by name: the driver's order is not the URDF's) tells when the arm
  has settled at the target;
* the tool pose comes from a ``geometry_msgs/PoseStamped`` topic (the UR driver's
  ``/tcp_pose_broadcaster/pose`` in frame ``base``, converted to ``base_link``), or, with
  ``pose_source="fk"``, from FK of the measured joints on a given chain.

Every sample is returned with the *measured* joints and pose, and, when a
:class:`~cemssl_ik.learning.sample_log.SampleLog` is given, on disk before the next move.
A move that is refused, times out or loses ``/joint_states`` is a failed sample (``valid`` False).

The model blocks the calling thread while the arm moves; the node's executor must spin in another
thread (the learner runs its work in a worker thread).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..kinematics import KinematicChain, quaternion_to_matrix
from ..learning.forward_model import ForwardResult
from ..learning.robot_moves import SettleConfig, SettleDetector, order_moves, ur_base_to_base_link, waypoints
from ..learning.sample_log import Sample, SampleLog

__all__ = ["RobotInterfaceConfig", "RosRobotForwardModel", "MoveRefused"]


class MoveRefused(RuntimeError):
    """The safety layer refused a target; nothing was sent."""


@dataclass(frozen=True)
class RobotInterfaceConfig:
    """Where the robot is on the ROS graph, and how patient to be with it.

    Attributes:
        controller: joint trajectory controller name (``scaled_joint_trajectory_controller`` on
            the real UR, ``joint_trajectory_controller`` in Gazebo and the built-in simulation).
        joint_states_topic: sensor_msgs/JointState topic.
        pose_source: ``"topic"`` (a PoseStamped topic) or ``"fk"`` (FK of the measured joints).
        pose_topic: PoseStamped topic of the tool pose (``pose_source="topic"``).
        settle: when a move counts as finished (see :class:`SettleConfig`).
        data_timeout: seconds without /joint_states (or, after settling, without a pose) before a
            move fails.
        min_duration: shortest move, seconds (small moves still get time to accelerate).
    """

    controller: str = "joint_trajectory_controller"
    joint_states_topic: str = "/joint_states"
    pose_source: str = "topic"
    pose_topic: str = "/tcp_pose_broadcaster/pose"
    settle: SettleConfig = SettleConfig()
    data_timeout: float = 2.0
    min_duration: float = 0.5

    def __post_init__(self) -> None:
        if self.pose_source not in ("topic", "fk"):
            raise ValueError(f"pose_source must be 'topic' or 'fk', got {self.pose_source!r}")
        if not self.controller:
            raise ValueError("controller must be a controller name, e.g. joint_trajectory_controller")


class RosRobotForwardModel:
    """See the module docstring.

    Args:
        node: an rclpy node spun by an executor in another thread.
        chain: the chain whose joints are commanded (names, limits; FK when ``pose_source="fk"``).
        config: topics and timing.
        check: (current (dof,), target (dof,)) -> (ok, reasons): the safety layer's verdict.
        duration: (current, target) -> seconds the move should take (velocity / acceleration limits).
        log: where each sample goes before the next move (optional).
        kind: the log's ``kind`` of the samples this model takes (settable between batches).
        clock: monotonic seconds (for tests).
        max_step: a move whose largest joint change exceeds this goes through intermediate
            points, each checked, sent and settled at (the safety layer's step bound).
    """

    def __init__(
        self,
        node,
        chain: KinematicChain,
        config: RobotInterfaceConfig,
        check: Callable[[np.ndarray, np.ndarray], tuple[bool, list[str]]],
        duration: Callable[[np.ndarray, np.ndarray], float],
        log: SampleLog | None = None,
        kind: str = "identify",
        clock: Callable[[], float] = time.monotonic,
        max_step: float | None = None,
    ) -> None:
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import JointState
        from trajectory_msgs.msg import JointTrajectory

        self.node, self.chain, self.config = node, chain, config
        self.check, self.duration, self.log, self.kind, self.clock = check, duration, log, kind, clock
        self.moves = 0
        self.max_step = max_step
        self._names = list(chain.joint_names)
        self._cond = threading.Condition()
        self._q: np.ndarray | None = None
        self._qd: np.ndarray | None = None
        self._q_time = -math.inf
        self._pose: tuple[np.ndarray, np.ndarray] | None = None
        self._pose_time = -math.inf
        self._pub = node.create_publisher(JointTrajectory, f"{config.controller}/joint_trajectory", 10)
        self._JointTrajectory = JointTrajectory
        node.create_subscription(JointState, config.joint_states_topic, self._on_joint_states, 50)
        if config.pose_source == "topic":
            node.create_subscription(PoseStamped, config.pose_topic, self._on_pose, 50)

    # ------------------------------------------------------------ subscriptions
    def _on_joint_states(self, msg) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        if not all(n in index for n in self._names) or len(msg.position) != len(msg.name):
            return
        q = np.array([msg.position[index[n]] for n in self._names], dtype=np.float64)
        qd = np.array([msg.velocity[index[n]] for n in self._names], dtype=np.float64) if len(msg.velocity) == len(msg.name) else None
        with self._cond:
            self._q, self._qd, self._q_time = q, qd, self.clock()
            self._cond.notify_all()

    def _on_pose(self, msg) -> None:
        p = msg.pose.position
        o = msg.pose.orientation
        position, quat = np.array([p.x, p.y, p.z]), np.array([o.x, o.y, o.z, o.w])
        frame = msg.header.frame_id
        if frame == "base" and self.chain.base_link == "base_link":
            position, quat = ur_base_to_base_link(position, quat)
        elif frame not in ("", self.chain.base_link):
            return  # a frame this model cannot place: no measurement (the move then times out)
        with self._cond:
            self._pose, self._pose_time = (position, quat), self.clock()
            self._cond.notify_all()

    # ------------------------------------------------------------ moving
    def current_joints(self, timeout: float | None = None) -> np.ndarray:
        """The latest /joint_states, waiting up to ``timeout`` s (default: data_timeout) for one."""
        deadline = self.clock() + (self.config.data_timeout if timeout is None else timeout)
        with self._cond:
            while self._q is None:
                left = deadline - self.clock()
                if left <= 0:
                    raise TimeoutError(f"no {self.config.joint_states_topic} with joints {self._names}")
                self._cond.wait(left)
            return self._q.copy()

    def _send(self, target: np.ndarray, seconds: float) -> None:
        from builtin_interfaces.msg import Duration
        from trajectory_msgs.msg import JointTrajectoryPoint

        msg = self._JointTrajectory()
        msg.joint_names = list(self._names)
        point = JointTrajectoryPoint()
        point.positions = [float(v) for v in target]
        point.velocities = [0.0] * len(target)
        sec = int(seconds)
        point.time_from_start = Duration(sec=sec, nanosec=int((seconds - sec) * 1e9))
        msg.points.append(point)
        self._pub.publish(msg)

    def move(self, target: np.ndarray) -> Sample:
        """Move to ``target`` (dof,), wait until settled, measure; the sample is logged if a log is set."""
        target = np.asarray(target, dtype=np.float64)
        nan = np.full(len(self._names), np.nan)
        fail = Sample(target, nan, np.full(3, np.nan), np.full(4, np.nan), False, self.kind, self.clock())
        try:
            current = self.current_joints()
        except TimeoutError as exc:
            self.node.get_logger().warning(f"move refused: {exc}")
            return self._record(fail)
        if not np.all(np.isfinite(target)):
            self.node.get_logger().warning("move refused: non-finite target")
            return self._record(fail)
        # 0.9: the arm settles near, not exactly at, each point, and the next step starts from there
        points = [target] if self.max_step is None else list(waypoints(current, target, 0.9 * self.max_step))
        # the whole path is checked before anything is sent: a move refused half-way would leave
        # the arm somewhere nobody asked for
        prev = current
        for point in points:
            ok, reasons = self.check(prev, point)
            if not ok:
                self.node.get_logger().warning(f"move refused by the safety layer: {'; '.join(reasons)}")
                return self._record(fail)
            prev = point
        sample = None
        for point in points:
            ok, reasons = self.check(current, point)  # again from where the arm really is
            if not ok:
                self.node.get_logger().warning(f"move stopped at a waypoint by the safety layer: {'; '.join(reasons)}")
                return self._record(fail)
            seconds = max(float(self.duration(current, point)), self.config.min_duration)
            self._send(point, seconds)
            self.moves += 1
            sample = self._wait_settled(point, seconds)
            if sample is None:
                return self._record(fail)
            current = sample.q
        return self._record(Sample(target, sample.q, sample.position, sample.quaternion, True, self.kind, sample.stamp))

    def _wait_settled(self, target: np.ndarray, seconds: float) -> Sample | None:
        c = self.config
        detector = SettleDetector(target, c.settle)
        start = self.clock()
        deadline = start + seconds + c.settle.timeout
        with self._cond:
            seen = self._q_time
            while True:
                now = self.clock()
                if now > deadline:
                    self.node.get_logger().warning(f"move timed out ({seconds:.1f} s planned; tracking error {detector.tracking_error(self._q):.4f})")
                    return None
                if now - self._q_time > c.data_timeout:
                    self.node.get_logger().warning(f"{c.joint_states_topic} silent for {now - self._q_time:.1f} s")
                    return None
                if self._q_time > seen:
                    seen = self._q_time
                    if detector.update(self._q_time, self._q, self._qd):
                        settled_at, q = self._q_time, self._q.copy()
                        break
                self._cond.wait(0.05)
            if c.pose_source == "fk":
                fk = self.chain.forward(torch.as_tensor(q, dtype=torch.float64))
                from ..kinematics import matrix_to_quaternion

                return Sample(target, q, fk.position.numpy(), matrix_to_quaternion(fk.rotation).numpy(), True, self.kind, settled_at)
            while self._pose_time <= settled_at:  # a pose measured after the arm came to rest
                if self.clock() - settled_at > c.data_timeout:
                    self.node.get_logger().warning(f"no pose on {c.pose_topic} after the arm settled")
                    return None
                self._cond.wait(0.05)
            position, quat = self._pose
            return Sample(target, q, position.copy(), quat.copy(), True, self.kind, settled_at)

    def _record(self, sample: Sample) -> Sample:
        if self.log is not None:
            self.log.append(sample)
        return sample

    # ------------------------------------------------------------ ForwardModel
    def evaluate(self, q: torch.Tensor) -> ForwardResult:
        """Visit every configuration of ``q`` (B, dof), in an order that keeps moves short."""
        targets = q.detach().to("cpu", torch.float64).numpy()
        try:
            start = self.current_joints()
        except TimeoutError:
            start = np.zeros(targets.shape[1])
        samples: list[Sample | None] = [None] * len(targets)
        for i in order_moves(targets, start):
            samples[i] = self.move(targets[i])
        q_meas = torch.tensor(np.stack([s.q for s in samples]), dtype=torch.float64)
        pos = torch.tensor(np.stack([s.position for s in samples]), dtype=torch.float64)
        quat = np.stack([s.quaternion for s in samples])
        valid = torch.tensor([s.valid for s in samples])
        rot = torch.full((len(samples), 3, 3), float("nan"), dtype=torch.float64)
        if valid.any():
            rot[valid] = quaternion_to_matrix(torch.tensor(quat[valid.numpy()], dtype=torch.float64))
        return ForwardResult(q_meas.to(q.dtype), pos.to(q.dtype), rot.to(q.dtype), valid)
