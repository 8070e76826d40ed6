"""``sim_robot_node``: the built-in MuJoCo UR3 behind the ros2_control interface of the real UR driver.

It stands in for the UR driver / Gazebo: the true arm differs from the URDF by the perturbation
parameters, so learners and calibration have something to discover.

Subscriptions:
    ``<controller>/joint_trajectory`` (trajectory_msgs/JointTrajectory): a new trajectory replaces
    the current one, as the joint trajectory controller does.  Joints are matched by name (all of
    the arm's joints, any order); points need positions and strictly increasing
    ``time_from_start``; velocities, where every point has them, give cubic interpolation.  The
    trajectory starts on receipt (``header.stamp`` is not used).
Action (only where control_msgs is importable):
    ``<controller>/follow_joint_trajectory`` (control_msgs/action/FollowJointTrajectory): invalid
    or unsafe goals are rejected; accepted ones report feedback and succeed when the arm has settled
    at the last point, abort on a tracking error above the safety threshold (PATH_TOLERANCE_VIOLATED)
    or when not settled ``settle_timeout`` after the planned end (GOAL_TOLERANCE_VIOLATED), and stop
    and hold on cancel or when a newer trajectory replaces them.
Publications:
    ``joint_states_topic`` (sensor_msgs/JointState): names in ``joint_state_order`` (the UR ROS 2
    driver's order by default: ``shoulder_lift_joint, elbow_joint, wrist_1_joint, wrist_2_joint,
    wrist_3_joint, shoulder_pan_joint``; consumers must map by name), position (with the
    configured noise), velocity, effort.
    ``pose_topic`` (geometry_msgs/PoseStamped): the true tool pose (with noise) in ``pose_frame``
    (UR ``base`` = ``base_link`` turned by pi about z), as the UR driver's tcp_pose_broadcaster.
    ``/clock`` (rosgraph_msgs/Clock) when ``publish_clock``: the simulated time, for ``use_sim_time``.

Every trajectory goes through the safety layer (:mod:`cemssl_ik.safety`, ``safety_file``) against
the measured joints before anything moves; refused ones are logged and not executed; in the
safety config's ``dry_run`` nothing is executed.  A tracking error above the safety threshold
aborts the motion and holds.  Simulated time runs ``time_scale`` times faster than the wall clock
(when the CPU keeps up); message stamps are the start-up wall time plus simulated time.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import torch
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from ..kinematics.transforms import matrix_to_quaternion
from ..kinematics.urdf import URDFError, fixed_transform
from ..resources import find_package_file
from ..safety import SafetyChecker, SafetyConfig
from ..sim import KinematicPerturbation, SimConfig, SimUR3
from .runtime import run_node

__all__ = ["SimRobotNode", "PARAMETERS", "UR_JOINT_STATE_ORDER", "trajectory_from_msg", "main"]

#: the order in which the UR ROS 2 driver's joint_state_broadcaster publishes the UR joints
UR_JOINT_STATE_ORDER = ["shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint", "wrist_3_joint", "shoulder_pan_joint"]
_HOME = [0.0, -math.pi / 2, math.pi / 2, -math.pi / 2, -math.pi / 2, 0.0]

PARAMETERS = {
    # name: (default, description); all read-only (fixed at start-up) except time_scale
    "urdf_file": ("", "URDF of the nominal robot ('' = the package's urdf/ur3.urdf)"),
    "controller": ("scaled_joint_trajectory_controller", "controller name: topics <controller>/joint_trajectory and <controller>/follow_joint_trajectory"),
    "joint_states_topic": ("/joint_states", "sensor_msgs/JointState output topic"),
    "pose_topic": ("/tcp_pose_broadcaster/pose", "geometry_msgs/PoseStamped tool pose output topic ('' disables)"),
    "pose_frame": ("base", "frame of the tool pose: the chain base link or a link fixed to it (UR 'base' = base_link turned by pi about z)"),
    "joint_state_order": (UR_JOINT_STATE_ORDER, "joint name order of published joint states (a permutation of the arm's joints)"),
    "publish_rate": (100.0, "joint state / pose / clock messages and physics updates per wall-clock second [Hz]"),
    "time_scale": (5.0, "simulated seconds per wall-clock second (> 1: faster than real time, as far as the CPU allows)"),
    "publish_clock": (True, "publish the simulated time on /clock (for nodes with use_sim_time)"),
    "initial_positions": (_HOME, "start configuration in URDF joint order [rad]"),
    "link_length_changes": ([0.0] * 6, "true arm: metres added to each joint origin's translation, URDF joint order (0 where an origin has no length)"),
    "joint_zero_offsets": ([0.0] * 6, "true arm: true joint angle = reading + offset [rad], URDF joint order"),
    "tool_offset": ([0.0, 0.0, 0.0], "true arm: tool point offset in the tool0 frame [m]"),
    "joint_noise_std": (0.0, "standard deviation of the published joint positions' noise [rad]"),
    "tool_position_noise_std": (0.0, "standard deviation of the published tool position's noise [m]"),
    "tool_orientation_noise_std": (0.0, "standard deviation of the published tool orientation's noise [rad per axis]"),
    "seed": (0, "seed of the measurement noise"),
    "natural_frequency_hz": (6.0, "joint position loop natural frequency [Hz] (sets the settle time)"),
    "damping_ratio": (1.0, "joint position loop damping ratio"),
    "max_acceleration": (10.0, "joint acceleration limit of the controller's setpoint [rad/s^2]"),
    "safety_file": ("", "YAML of cemssl_ik.safety.SafetyConfig applied to every trajectory ('' = its conservative defaults)"),
}

_NONNEGATIVE = ("joint_noise_std", "tool_position_noise_std", "tool_orientation_noise_std")
_POSITIVE = ("publish_rate", "time_scale", "natural_frequency_hz", "damping_ratio", "max_acceleration")


def _stamp(seconds: float):
    from builtin_interfaces.msg import Time

    sec = math.floor(seconds)
    return Time(sec=int(sec), nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def _duration_seconds(d) -> float:
    return float(d.sec) + float(d.nanosec) * 1e-9


def trajectory_from_msg(msg: JointTrajectory, joint_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(points (N, dof), times (N,) s, velocities (N, dof) or None) in ``joint_names`` order.

    Raises:
        ValueError: joints missing, unknown or repeated; no points; a point without one position
            per joint; non-finite values; times that are not increasing.
    """
    names = list(msg.joint_names)
    if len(set(names)) != len(names):
        raise ValueError(f"repeated joint names {names}")
    if set(names) != set(joint_names):
        raise ValueError(f"joint_names {names} must be exactly the arm's joints {list(joint_names)} (any order)")
    if not msg.points:
        raise ValueError("trajectory has no points")
    index = [names.index(n) for n in joint_names]
    dof = len(joint_names)
    pts = np.empty((len(msg.points), dof))
    vel = np.empty((len(msg.points), dof))
    has_velocities = True
    times = np.empty(len(msg.points))
    for k, p in enumerate(msg.points):
        if len(p.positions) != dof:
            raise ValueError(f"point {k} has {len(p.positions)} positions, expected {dof}")
        pts[k] = np.asarray(p.positions, dtype=np.float64)[index]
        if len(p.velocities) == dof:
            vel[k] = np.asarray(p.velocities, dtype=np.float64)[index]
        elif len(p.velocities) == 0:
            has_velocities = False
        else:
            raise ValueError(f"point {k} has {len(p.velocities)} velocities, expected 0 or {dof}")
        times[k] = _duration_seconds(p.time_from_start)
    if not (np.all(np.isfinite(pts)) and np.all(np.isfinite(times)) and (not has_velocities or np.all(np.isfinite(vel)))):
        raise ValueError("trajectory contains NaN or inf")
    if times[0] < 0 or np.any(np.diff(times) <= 0):
        raise ValueError(f"time_from_start must be >= 0 and strictly increasing, got {times.tolist()}")
    if times[-1] <= 0:
        raise ValueError("the last point's time_from_start must be > 0")
    return pts, times, vel if has_velocities else None


class SimRobotNode(Node):
    """The simulated UR3; see the module docstring for its interface."""

    def __init__(self, **kwargs) -> None:
        super().__init__("sim_robot", **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=name != "time_scale"))
        self.add_on_set_parameters_callback(self._validate_parameters)
        check = self._validate_parameters([self.get_parameter(name) for name in PARAMETERS])
        if not check.successful:
            raise ValueError(f"invalid parameter: {check.reason}")
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        urdf = p["urdf_file"] or str(find_package_file("urdf/ur3.urdf"))
        try:
            sim_config = SimConfig(
                urdf=urdf,
                perturbation=KinematicPerturbation(tuple(p["link_length_changes"]), tuple(p["joint_zero_offsets"]), tuple(p["tool_offset"])),
                initial_positions=tuple(p["initial_positions"]),
                joint_noise_std=p["joint_noise_std"],
                tool_position_noise_std=p["tool_position_noise_std"],
                tool_orientation_noise_std=p["tool_orientation_noise_std"],
                seed=p["seed"],
                natural_frequency_hz=p["natural_frequency_hz"],
                damping_ratio=p["damping_ratio"],
                max_acceleration=p["max_acceleration"],
            )
            self.sim = SimUR3(sim_config)
            safety = SafetyConfig.from_yaml(p["safety_file"]) if p["safety_file"] else SafetyConfig()
            self.safety = SafetyChecker(self.sim.nominal_chain, safety)
            T = fixed_transform(urdf, p["pose_frame"], self.sim.nominal_chain.base_link)
        except (URDFError, OSError, TypeError) as exc:
            raise ValueError(str(exc)) from exc
        self._T_frame_base = T  # (4, 4) pose_frame <- chain base
        self._pose_frame = p["pose_frame"]
        names = self.sim.joint_names
        order = list(p["joint_state_order"])
        if sorted(order) != sorted(names):
            raise ValueError(f"joint_state_order {order} must be a permutation of the arm's joints {list(names)}")
        self._publish_index = np.array([names.index(n) for n in order])
        self._publish_names = order
        start_q = self.sim.joint_positions()
        for reason in self.safety.configuration_reasons(start_q):
            self.get_logger().warning(f"the initial configuration is outside the safety envelope: {reason}")

        self._lock = threading.Lock()  # the simulation, between the stepping timer and the callbacks
        self._generation = 0  # counts accepted trajectories; an action goal ends when it changes
        self._halted = False
        self._wall_start = time.time()
        self._last_tick = time.monotonic()
        self._behind_warned = False
        controller = p["controller"].rstrip("/")
        self._joint_pub = self.create_publisher(JointState, p["joint_states_topic"], 10)
        self._pose_pub = self.create_publisher(PoseStamped, p["pose_topic"], 10) if p["pose_topic"] else None
        self._clock_pub = None
        if p["publish_clock"]:
            from rosgraph_msgs.msg import Clock

            self._Clock = Clock
            self._clock_pub = self.create_publisher(Clock, "/clock", 10)
        self.create_subscription(JointTrajectory, f"{controller}/joint_trajectory", self._on_trajectory, 10, callback_group=MutuallyExclusiveCallbackGroup())
        self._action = self._register_action(controller)
        self._timer = self.create_timer(1.0 / p["publish_rate"], self._tick, callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(
            f"simulated {self.sim.nominal_chain.name} ready: {controller}/joint_trajectory -> {p['joint_states_topic']}, "
            f"{p['pose_topic'] or 'no pose topic'} ({self._pose_frame}); time_scale {p['time_scale']}"
            + ("" if self.sim.config.perturbation.is_identity else f"; true arm perturbed: {self.sim.config.perturbation}")
        )

    # ---------------------------------------------------------------- parameters
    def _validate_parameters(self, params) -> SetParametersResult:
        for p in params:
            v = p.value
            if p.name in _POSITIVE and not (isinstance(v, float) and math.isfinite(v) and v > 0):
                return SetParametersResult(successful=False, reason=f"{p.name} must be a positive finite float, got {v!r}")
            if p.name in _NONNEGATIVE and not (isinstance(v, float) and math.isfinite(v) and v >= 0):
                return SetParametersResult(successful=False, reason=f"{p.name} must be a finite float >= 0, got {v!r}")
            if p.name in ("link_length_changes", "joint_zero_offsets", "tool_offset", "initial_positions"):
                values = list(v)
                if not all(isinstance(x, float) and math.isfinite(x) for x in values):
                    return SetParametersResult(successful=False, reason=f"{p.name} must be finite floats, got {values}")
                if p.name == "tool_offset" and len(values) != 3:
                    return SetParametersResult(successful=False, reason=f"tool_offset needs 3 values (x y z, m), got {len(values)}")
            if p.name == "publish_rate" and isinstance(v, float) and v > 1000.0:
                return SetParametersResult(successful=False, reason=f"publish_rate {v} Hz is above 1000 Hz")
            if p.name == "controller" and not v:
                return SetParametersResult(successful=False, reason="controller must not be empty")
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- commands
    def _accept(self, points: np.ndarray, times: np.ndarray, velocities: np.ndarray | None, source: str) -> tuple[bool, str]:
        """Check a trajectory against the measured joints and start it; (accepted, why not). Call under the lock."""
        verdict = self.safety.check_trajectory(self.sim.joint_positions(), points, times)
        if not verdict.ok:
            return False, "refused by the safety layer: " + "; ".join(verdict.reasons)
        if self.safety.config.dry_run:
            return False, f"dry run: a safe {len(points)}-point trajectory of {times[-1]:.2f} s would be executed"
        self.sim.command_trajectory(points, times, velocities)
        self._generation += 1
        self._halted = False
        self.get_logger().info(f"{source}: executing {len(points)} point(s) over {times[-1]:.2f} s")
        return True, ""

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            points, times, velocities = trajectory_from_msg(msg, self.sim.joint_names)
        except ValueError as exc:
            self.get_logger().error(f"joint_trajectory rejected: {exc}")
            return
        with self._lock:
            ok, why = self._accept(points, times, velocities, "joint_trajectory")
        if not ok:
            self.get_logger().error(f"joint_trajectory rejected, not executed: {why}")

    # ---------------------------------------------------------------- stepping and publishing
    def _tick(self) -> None:
        now = time.monotonic()
        wall_dt = min(now - self._last_tick, 0.1)  # after a stall, do not try to catch up at once
        self._last_tick = now
        scale = float(self.get_parameter("time_scale").value)
        with self._lock:
            started = time.monotonic()
            self.sim.step(wall_dt * scale)
            if not self._behind_warned and time.monotonic() - started > wall_dt and wall_dt > 0:
                self._behind_warned = True
                self.get_logger().warning(f"the simulation runs slower than time_scale {scale} asks: lower it for steady time")
            if not self._halted:
                verdict = self.safety.check_tracking(self.sim.setpoint(), self.sim.joint_positions())
                if not verdict.ok:
                    self.sim.hold()
                    self._halted = True
                    self._generation += 1
                    self.get_logger().error("tracking error: motion aborted, holding: " + "; ".join(verdict.reasons))
            m = self.sim.measure()
            effort = self.sim.joint_efforts()
        stamp = _stamp(self._wall_start + m.time)
        js = JointState()
        js.header.stamp = stamp
        js.name = self._publish_names
        js.position = m.q[self._publish_index].tolist()
        js.velocity = m.qd[self._publish_index].tolist()
        js.effort = effort[self._publish_index].tolist()
        self._joint_pub.publish(js)
        if self._pose_pub is not None:
            R = self._T_frame_base[:3, :3] @ m.rotation
            t = self._T_frame_base[:3, :3] @ m.position + self._T_frame_base[:3, 3]
            q = matrix_to_quaternion(torch.as_tensor(R)).tolist()
            pose = PoseStamped()
            pose.header.stamp = stamp
            pose.header.frame_id = self._pose_frame
            pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in t)
            pose.pose.orientation.x, pose.pose.orientation.y, pose.pose.orientation.z, pose.pose.orientation.w = q
            self._pose_pub.publish(pose)
        if self._clock_pub is not None:
            self._clock_pub.publish(self._Clock(clock=stamp))

    # ---------------------------------------------------------------- FollowJointTrajectory
    def _register_action(self, controller: str):
        try:
            from control_msgs.action import FollowJointTrajectory
        except ImportError:
            self.get_logger().info(f"control_msgs not importable: {controller}/follow_joint_trajectory (FollowJointTrajectory) not offered")
            return None
        from rclpy.action import ActionServer, CancelResponse

        self._FollowJointTrajectory = FollowJointTrajectory
        return ActionServer(
            self,
            FollowJointTrajectory,
            f"{controller}/follow_joint_trajectory",
            execute_callback=self._execute_goal,
            goal_callback=self._on_goal,
            cancel_callback=lambda _goal: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup(),
        )

    def _on_goal(self, goal):
        from rclpy.action import GoalResponse

        try:
            points, times, _ = trajectory_from_msg(goal.trajectory, self.sim.joint_names)
        except ValueError as exc:
            self.get_logger().error(f"follow_joint_trajectory goal rejected: {exc}")
            return GoalResponse.REJECT
        with self._lock:
            verdict = self.safety.check_trajectory(self.sim.joint_positions(), points, times)
        if not verdict.ok:
            self.get_logger().error("follow_joint_trajectory goal rejected, not executed: refused by the safety layer: " + "; ".join(verdict.reasons))
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute_goal(self, goal_handle):
        Result = self._FollowJointTrajectory.Result
        result = Result()
        try:
            points, times, velocities = trajectory_from_msg(goal_handle.request.trajectory, self.sim.joint_names)
        except ValueError as exc:
            goal_handle.abort()
            result.error_code, result.error_string = Result.INVALID_GOAL, str(exc)
            return result
        with self._lock:
            ok, why = self._accept(points, times, velocities, "follow_joint_trajectory")
            generation = self._generation
            start = self.sim.time
        if not ok:
            goal_handle.abort()
            result.error_code, result.error_string = Result.INVALID_GOAL, why
            return result
        goal_time = _duration_seconds(goal_handle.request.goal_time_tolerance) or self.safety.config.settle_timeout
        deadline = start + times[-1] + goal_time
        period = 1.0 / float(self.get_parameter("publish_rate").value)
        names = list(self.sim.joint_names)
        while True:
            time.sleep(period)
            with self._lock:
                if goal_handle.is_cancel_requested:
                    self.sim.hold()
                    self._generation += 1
                    goal_handle.canceled()
                    result.error_string = "canceled: holding"
                    return result
                if self._generation != generation:
                    goal_handle.abort()
                    if self._halted:
                        result.error_code, result.error_string = Result.PATH_TOLERANCE_VIOLATED, "tracking error above the safety threshold: holding"
                    else:  # as the joint trajectory controller answers a preempted goal
                        result.error_code, result.error_string = Result.INVALID_GOAL, "Current goal cancelled due to new incoming trajectory."
                    return result
                q, qd, t = self.sim.joint_positions(), self.sim.joint_velocities(), self.sim.time
                desired = self.sim.setpoint()
                settled = self.sim.settled()
                if not settled and t > deadline:
                    self.sim.hold()
                    self._generation += 1
            feedback = self._FollowJointTrajectory.Feedback()
            feedback.header.stamp = _stamp(self._wall_start + t)
            feedback.joint_names = names
            feedback.desired.positions = desired.tolist()
            feedback.actual.positions = q.tolist()
            feedback.actual.velocities = qd.tolist()
            feedback.error.positions = (desired - q).tolist()
            goal_handle.publish_feedback(feedback)
            if settled:
                goal_handle.succeed()
                result.error_code = Result.SUCCESSFUL
                return result
            if t > deadline:
                goal_handle.abort()
                result.error_code = Result.GOAL_TOLERANCE_VIOLATED
                result.error_string = f"not settled {goal_time:.2f} s after the trajectory's end: holding"
                return result


def main(args=None) -> int:
    # several threads: stepping / publishing goes on while an action goal waits for the arm
    return run_node(SimRobotNode, "sim_robot_node", args, threads=3)


if __name__ == "__main__":
    raise SystemExit(main())
