"""sim_robot_node across processes over real DDS: trajectories in, joint states / tool pose / clock out,
unsafe trajectories not executed."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import torch
from builtin_interfaces.msg import Duration
from cemssl_ik.kinematics import load_robot, quaternion_to_matrix
from cemssl_ik.sim import KinematicPerturbation, perturbed_chain
from conftest import requires_ros

pytestmark = requires_ros

HOME = np.array([0.0, -math.pi / 2, math.pi / 2, -math.pi / 2, -math.pi / 2, 0.0])
UR_ORDER = ["shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint", "wrist_3_joint", "shoulder_pan_joint"]
PERTURBATION = KinematicPerturbation(link_length_changes=(0.05, 0.0, 0.03, 0.02, 0.01, 0.05), joint_zero_offsets=(0.01, -0.02, 0.0, 0.0, 0.0, 0.03), tool_offset=(0.0, 0.01, 0.1))
CONTROLLER = "/scaled_joint_trajectory_controller"


def _ros_list(values) -> str:
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


class Client:
    """A test node in its own context: publishes trajectories, records what the sim publishes."""

    def __init__(self) -> None:
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import JointState
        from trajectory_msgs.msg import JointTrajectory

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("sim_robot_test_client", context=self.context)
        self.lock = threading.Lock()
        self.joint_states: dict[tuple[int, int], object] = {}
        self.poses: dict[tuple[int, int], object] = {}
        self.latest_state = None
        self.clock: list[float] = []
        self.node.create_subscription(JointState, "/joint_states", self._on_state, 50)
        self.node.create_subscription(PoseStamped, "/tcp_pose_broadcaster/pose", self._on_pose, 50)
        self.node.create_subscription(Clock, "/clock", lambda m: self.clock.append(m.clock.sec + m.clock.nanosec * 1e-9), 50)
        self.pub = self.node.create_publisher(JointTrajectory, CONTROLLER + "/joint_trajectory", 10)
        self.JointTrajectory = JointTrajectory
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_state(self, msg) -> None:
        with self.lock:
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            self.joint_states[key] = msg
            self.latest_state = msg
            if len(self.joint_states) > 2000:
                self.joint_states.pop(next(iter(self.joint_states)))

    def _on_pose(self, msg) -> None:
        with self.lock:
            self.poses[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg
            if len(self.poses) > 2000:
                self.poses.pop(next(iter(self.poses)))

    def q(self) -> np.ndarray:
        """Latest joint positions in URDF order (mapped by name)."""
        with self.lock:
            msg = self.latest_state
        assert msg is not None, "no joint state received"
        by_name = dict(zip(msg.name, msg.position))
        return np.array([by_name[n] for n in load_robot("ur3").joint_names])

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def send(self, points, times, names=None, velocities=None) -> None:
        from builtin_interfaces.msg import Duration
        from trajectory_msgs.msg import JointTrajectoryPoint

        names = names or list(load_robot("ur3").joint_names)
        msg = self.JointTrajectory()
        msg.joint_names = names
        urdf_names = list(load_robot("ur3").joint_names)
        index = [urdf_names.index(n) for n in names]
        for k, (p, t) in enumerate(zip(points, times)):
            pt = JointTrajectoryPoint()
            pt.positions = [float(p[i]) for i in index]
            if velocities is not None:
                pt.velocities = [float(velocities[k][i]) for i in index]
            pt.time_from_start = Duration(sec=int(t), nanosec=int(round((t - int(t)) * 1e9)))
            msg.points.append(pt)
        self.pub.publish(msg)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture(scope="module")
def sim_robot(tmp_path_factory):
    from conftest import NodeProcess

    # steps up to 1.6 rad, so that a move into the table is refused for the table, not its size
    safety = tmp_path_factory.mktemp("sim_robot") / "safety.yaml"
    safety.write_text("max_joint_step: 1.6\n")
    server = NodeProcess(
        "cemssl_ik.ros.sim_robot_node",
        "-p", "time_scale:=4.0",
        "-p", f"safety_file:={safety}",
        "-p", f"link_length_changes:={_ros_list(PERTURBATION.link_length_changes)}",
        "-p", f"joint_zero_offsets:={_ros_list(PERTURBATION.joint_zero_offsets)}",
        "-p", f"tool_offset:={_ros_list(PERTURBATION.tool_offset)}",
    )  # fmt: skip
    client = Client()
    try:
        try:
            client.wait_for(lambda: client.latest_state is not None and client.pub.get_subscription_count() > 0, 40.0, "the sim's joint states")
        except AssertionError as exc:
            pytest.fail(f"{exc}\n{server.close()}")
        yield client, server
    finally:
        client.close()
        log = server.close()
        assert "Traceback" not in log, log
        # each unsafe trajectory sent was logged as refused, for its own reason
        for kind in _REFUSED:
            assert _REFUSAL_TEXT[kind] in log, f"{kind}: no refusal with {_REFUSAL_TEXT[kind]!r} in the log:\n{log}"


#: what the node logs when it refuses each kind of unsafe trajectory; kinds sent so far
_REFUSAL_TEXT = {
    "nan": "NaN or inf",
    "out_of_limits": "outside its limits",
    "huge_step": "more than max_joint_step",
    "through_the_floor": "below the floor",
    "too_fast": "rad/s, above the allowed",
    "wrong_joints": "must be exactly the arm's joints",
}
_REFUSED: list[str] = []


def _settled_at(client: Client, target: np.ndarray, tol: float = 2e-4) -> bool:
    with client.lock:
        msg = client.latest_state
    return msg is not None and np.abs(client.q() - target).max() < tol and max(abs(v) for v in msg.velocity) < 1e-3


def test_joint_states_in_ur_driver_order(sim_robot) -> None:
    client, _ = sim_robot
    with client.lock:
        msg = client.latest_state
    assert list(msg.name) == UR_ORDER
    assert len(msg.position) == len(msg.velocity) == len(msg.effort) == 6
    assert np.abs(client.q() - HOME).max() < 1e-3


def test_trajectory_executes_and_pose_is_the_true_fk(sim_robot) -> None:
    client, _ = sim_robot
    start = client.q()
    mid = start + np.array([0.1, -0.05, 0.1, 0.1, -0.1, 0.15])
    target = start + np.array([0.2, -0.1, 0.15, 0.2, -0.2, 0.3])
    client.send([mid, target], [0.8, 1.6], names=UR_ORDER[::-1])  # any joint order
    client.wait_for(lambda: _settled_at(client, target), 20.0, f"the arm to settle at {target}")
    # a joint state and the pose published with it (same stamp): the pose is the perturbed FK
    with client.lock:
        common = sorted(set(client.joint_states) & set(client.poses))
        key = common[-1]
        js, pose = client.joint_states[key], client.poses[key]
    assert pose.header.frame_id == "base"
    by_name = dict(zip(js.name, js.position))
    q = torch.tensor([by_name[n] for n in load_robot("ur3").joint_names], dtype=torch.float64)
    true_fk = perturbed_chain(load_robot("ur3"), PERTURBATION).forward(q)
    base_from_base_link = torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64))  # base = base_link turned by pi about z
    p = torch.tensor([pose.pose.position.x, pose.pose.position.y, pose.pose.position.z], dtype=torch.float64)
    o = pose.pose.orientation
    R = quaternion_to_matrix(torch.tensor([o.x, o.y, o.z, o.w], dtype=torch.float64))
    assert (p - base_from_base_link @ true_fk.position).abs().max() < 1e-9
    assert (R - base_from_base_link @ true_fk.rotation).abs().max() < 1e-9
    nominal = load_robot("ur3").forward(q).position
    assert (base_from_base_link @ nominal - p).norm() > 0.05  # the simulated arm is not the URDF


@pytest.mark.parametrize(
    "kind",
    ["nan", "out_of_limits", "huge_step", "through_the_floor", "too_fast", "wrong_joints"],
)  # keys of _REFUSAL_TEXT
def test_unsafe_trajectory_is_not_executed(sim_robot, kind) -> None:
    client, server = sim_robot
    start = client.q()
    target = start.copy()
    names, times = None, [3.0]
    if kind == "nan":
        target[1] = math.nan
    elif kind == "out_of_limits":
        target[2] = math.pi + 0.01
    elif kind == "huge_step":
        target[0] += 2.0
    elif kind == "through_the_floor":
        target = np.array([start[0], -0.2, 1.5, start[3], start[4], start[5]])  # forearm and wrist into the table
    elif kind == "too_fast":
        target[0] += 0.4
        times = [0.1]
    elif kind == "wrong_joints":
        names = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint", "gripper_joint"]
    _REFUSED.append(kind)
    if kind == "wrong_joints":
        _send_raw(client, names, target)
    else:
        client.send([target], times)
    # an executed command would move a joint by > 0.05 rad within a fraction of a second of simulated
    # time; give it 1 s of wall time (4 s simulated).  1e-3 rad allows the previous move's last creep.
    t_end = time.monotonic() + 1.0
    while time.monotonic() < t_end:
        assert np.abs(client.q() - start).max() < 1e-3, f"{kind}: the arm moved"
        time.sleep(0.05)
    # still alive and obeying safe commands
    safe = start + np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.05])
    client.send([safe], [0.5])
    client.wait_for(lambda: _settled_at(client, safe), 20.0, "a safe move after an unsafe one")


def _send_raw(client: Client, names, target) -> None:
    from builtin_interfaces.msg import Duration
    from trajectory_msgs.msg import JointTrajectoryPoint

    msg = client.JointTrajectory()
    msg.joint_names = names
    msg.points.append(JointTrajectoryPoint(positions=[float(v) for v in target], time_from_start=Duration(sec=2)))
    client.pub.publish(msg)


def test_clock_is_simulated_time(sim_robot) -> None:
    client, _ = sim_robot
    n = len(client.clock)
    client.wait_for(lambda: len(client.clock) > n + 10, 10.0, "/clock messages")
    ticks = list(client.clock)[n:]
    assert all(b > a for a, b in zip(ticks, ticks[1:]))


def test_follow_joint_trajectory_action(sim_robot) -> None:
    pytest.importorskip("control_msgs.action", reason="control_msgs is not installed here (no wheel); the action server is offered where it is")
    from builtin_interfaces.msg import Duration
    from control_msgs.action import FollowJointTrajectory
    from rclpy.action import ActionClient
    from trajectory_msgs.msg import JointTrajectoryPoint

    client, _ = sim_robot
    action = ActionClient(client.node, FollowJointTrajectory, CONTROLLER + "/follow_joint_trajectory")
    assert action.wait_for_server(timeout_sec=10.0)
    start = client.q()
    names = list(load_robot("ur3").joint_names)

    def goal_for(target, seconds):
        goal = FollowJointTrajectory.Goal()
        goal.trajectory.joint_names = names
        goal.trajectory.points.append(JointTrajectoryPoint(positions=[float(v) for v in target], time_from_start=Duration(sec=seconds)))
        return goal

    def wait(future, timeout):
        client.wait_for(future.done, timeout, "the action server")
        return future.result()

    handle = wait(action.send_goal_async(goal_for(start + 0.1, 1)), 10.0)
    assert handle.accepted
    result = wait(handle.get_result_async(), 30.0)
    assert result.result.error_code == FollowJointTrajectory.Result.SUCCESSFUL
    assert np.abs(client.q() - (start + 0.1)).max() < 1e-3
    bad = start + 0.1
    bad[1] = math.nan
    assert not wait(action.send_goal_async(goal_for(bad, 1)), 10.0).accepted
    too_far = start.copy()
    too_far[0] += 2.0
    assert not wait(action.send_goal_async(goal_for(too_far, 10)), 10.0).accepted
    # cancel mid-way: the arm stops and holds short of the goal; feedback came meanwhile
    feedback = []
    here = client.q()
    goal = here + np.array([0.4, 0.0, 0.0, 0.0, 0.0, 0.0])
    handle = wait(action.send_goal_async(goal_for(goal, 8), feedback_callback=feedback.append), 10.0)
    assert handle.accepted
    client.wait_for(lambda: abs(client.q()[0] - here[0]) > 0.02, 10.0, "the arm to start moving")
    wait(handle.cancel_goal_async(), 10.0)
    result = wait(handle.get_result_async(), 10.0)
    from action_msgs.msg import GoalStatus

    assert result.status == GoalStatus.STATUS_CANCELED
    stopped = client.q()
    time.sleep(0.5)
    assert abs(client.q()[0] - stopped[0]) < 0.02 and abs(client.q()[0] - goal[0]) > 0.1
    assert feedback and list(feedback[-1].feedback.joint_names) == names
    action.destroy()


def test_params_file_holds_every_declared_parameter() -> None:
    import yaml
    from cemssl_ik.ros.sim_robot_node import PARAMETERS
    from conftest import PACKAGE_ROOT

    params = yaml.safe_load((PACKAGE_ROOT / "config" / "sim_robot.yaml").read_text())["/**"]["ros__parameters"]
    assert set(params) == set(PARAMETERS)
    for name, value in params.items():
        default = PARAMETERS[name][0]
        # ROS parameters are typed: the file's value must have the declared type (floats stay floats)
        if isinstance(default, list):
            assert [type(v) for v in value] == [type(v) for v in default], name
        else:
            assert type(value) is type(default), name


def test_trajectory_from_msg_maps_joints_by_name() -> None:
    from builtin_interfaces.msg import Duration
    from cemssl_ik.ros.sim_robot_node import trajectory_from_msg
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    names = load_robot("ur3").joint_names
    msg = JointTrajectory(joint_names=list(names[::-1]))
    msg.points = [
        JointTrajectoryPoint(positions=[6.0, 5.0, 4.0, 3.0, 2.0, 1.0], velocities=[0.6, 0.5, 0.4, 0.3, 0.2, 0.1], time_from_start=Duration(sec=1)),
        JointTrajectoryPoint(positions=[6.5, 5.5, 4.5, 3.5, 2.5, 1.5], velocities=[0.0] * 6, time_from_start=Duration(sec=1, nanosec=500_000_000)),
    ]
    points, times, velocities = trajectory_from_msg(msg, names)
    assert points.tolist() == [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1.5, 2.5, 3.5, 4.5, 5.5, 6.5]]
    assert times.tolist() == [1.0, 1.5] and velocities[0].tolist() == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    msg.points[1].velocities = []  # velocities only where every point has them
    assert trajectory_from_msg(msg, names)[2] is None
    for mutate, text in [
        (lambda m: setattr(m, "points", []), "no points"),
        (lambda m: setattr(m, "joint_names", list(names[:5]) + ["gripper"]), "exactly the arm's joints"),
        (lambda m: setattr(m, "joint_names", list(names[:5]) + [names[0]]), "repeated"),
        (lambda m: setattr(m.points[1], "positions", [1.0] * 5), "positions"),
        (lambda m: setattr(m.points[1], "time_from_start", Duration(sec=1)), "increasing"),
        (lambda m: setattr(m.points[0], "positions", [math.inf] + [0.0] * 5), "NaN or inf"),
    ]:
        bad = JointTrajectory(joint_names=list(msg.joint_names), points=[JointTrajectoryPoint(positions=list(p.positions), time_from_start=p.time_from_start) for p in msg.points])
        mutate(bad)
        with pytest.raises(ValueError, match=text):
            trajectory_from_msg(bad, names)


def test_invalid_parameters_stop_the_node_with_a_message() -> None:
    from conftest import NodeProcess

    node = NodeProcess("cemssl_ik.ros.sim_robot_node", "-r", "__node:=sim_robot_bad", "-p", "link_length_changes:=[0.0,0.01,0.0,0.0,0.0,0.0]")
    try:
        code = node.proc.wait(timeout=60)
    finally:
        log = node.close()
    assert code == 2 and "shoulder_lift_joint" in log, log


def test_tracking_error_aborts_and_holds(tmp_path) -> None:
    from conftest import NodeProcess

    # a sluggish position loop (0.5 Hz) lags ~0.09 rad behind a 0.4 rad move: above a 0.02 rad threshold
    safety = tmp_path / "safety.yaml"
    safety.write_text("tracking_error_threshold: 0.02\n")
    controller = "/sluggish_controller"
    server = NodeProcess(
        "cemssl_ik.ros.sim_robot_node",
        "-r", "__node:=sim_robot_sluggish",
        "-p", "natural_frequency_hz:=0.5",
        "-p", f"safety_file:={safety}",
        "-p", f"controller:={controller}",
        "-p", "joint_states_topic:=/sluggish/joint_states",
        "-p", "pose_topic:=/sluggish/pose",
        "-p", "publish_clock:=false",
    )  # fmt: skip
    import rclpy
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("sluggish_probe", context=context)
    states: list = []
    node.create_subscription(JointState, "/sluggish/joint_states", states.append, 10)
    pub = node.create_publisher(JointTrajectory, controller + "/joint_trajectory", 10)
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    names = list(load_robot("ur3").joint_names)

    def pan() -> float:
        return dict(zip(states[-1].name, states[-1].position))["shoulder_pan_joint"]

    def spin_until(predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            executor.spin_once(timeout_sec=0.05)

    try:
        spin_until(lambda: states and pub.get_subscription_count() > 0, 40.0, "the sim")
        msg = JointTrajectory(joint_names=names)
        msg.points.append(JointTrajectoryPoint(positions=[0.4, *HOME[1:].tolist()], time_from_start=Duration(sec=0, nanosec=600_000_000)))
        pub.publish(msg)
        spin_until(lambda: pan() > 0.01, 10.0, "the move to start")
        # aborted: it comes to rest (held) well short of 0.4 rad
        last = [pan(), time.monotonic()]

        def at_rest() -> bool:
            if abs(pan() - last[0]) > 1e-5:
                last[:] = [pan(), time.monotonic()]
            return time.monotonic() - last[1] > 0.5

        spin_until(at_rest, 20.0, "the arm to come to rest")
        assert pan() < 0.3
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        log = server.close()
    assert "tracking error" in log and "holding" in log, log
