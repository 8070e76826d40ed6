"""The robot as a forward model over ROS 2, against sim_robot_node in another process: measured
joints and poses (UR 'base' frame converted), moves split under the step bound, refused and
dry-run moves never published, every sample logged."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from cemssl_ik.kinematics import load_robot
from cemssl_ik.kinematics.perturbation import KinematicPerturbation, perturbed_chain, uniform_link_change
from cemssl_ik.learning.robot_moves import SettleConfig
from cemssl_ik.learning.sample_log import SampleLog
from cemssl_ik.safety import SafetyChecker, SafetyConfig
from conftest import NodeProcess, requires_ros

pytestmark = requires_ros

UR3 = load_robot("ur3")
CHANGE = 0.03
HOME = np.array([0.0, -np.pi / 2, np.pi / 2, -np.pi / 2, -np.pi / 2, 0.0])


@pytest.fixture(scope="module")
def robot(tmp_path_factory):
    import rclpy
    from cemssl_ik.ros.robot_forward_model import RobotInterfaceConfig, RosRobotForwardModel
    from rclpy.executors import MultiThreadedExecutor

    changes = "[" + ",".join(repr(v) for v in uniform_link_change(UR3, CHANGE)) + "]"
    server = NodeProcess("cemssl_ik.ros.sim_robot_node", "-r", "__node:=sim_fm", "-p", "time_scale:=4.0", "-p", f"link_length_changes:={changes}")
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("robot_fm_test", context=context)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    published = []
    from trajectory_msgs.msg import JointTrajectory

    node.create_subscription(JointTrajectory, "/scaled_joint_trajectory_controller/joint_trajectory", published.append, 100)
    checker = SafetyChecker(UR3, SafetyConfig())
    log = SampleLog.open(tmp_path_factory.mktemp("fm") / "samples.jsonl", dof=6)
    fm = RosRobotForwardModel(
        node, UR3,
        RobotInterfaceConfig(controller="/scaled_joint_trajectory_controller", settle=SettleConfig(timeout=10.0), data_timeout=5.0),
        check=lambda a, b: (checker.check(a, b).ok, list(checker.check(a, b).reasons)),
        duration=lambda a, b: checker.time_trajectory(a, b).duration,
        log=log, max_step=checker.config.max_joint_step,
    )  # fmt: skip
    try:
        fm.current_joints(timeout=60.0)  # the sim is up
        yield fm, published, log
    finally:
        log.close()
        executor.shutdown()
        spinner.join(timeout=10)
        node.destroy_node()
        rclpy.shutdown(context=context)
        out = server.close()
        assert "Traceback" not in out, out


def test_measured_poses_are_the_true_arm_at_the_measured_joints(robot):
    fm, published, log = robot
    true_arm = perturbed_chain(UR3, KinematicPerturbation(link_length_changes=uniform_link_change(UR3, CHANGE)))
    targets = torch.tensor(HOME + np.array([[0.3, 0.2, -0.2, 0.1, 0.4, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [-0.2, 0.3, 0.2, -0.3, 0.2, 0.5]]), dtype=torch.float64)
    before = len(log)
    res = fm.evaluate(targets)
    assert bool(res.valid.all())
    assert (res.q - targets).abs().max() < 5e-3  # settled at the targets (measured, not commanded)
    fk = true_arm.forward(res.q)
    assert (fk.position - res.position).norm(dim=-1).max() < 1e-6  # the 'base' frame pose, in base_link
    assert (fk.rotation - res.rotation).abs().max() < 1e-6
    nominal = UR3.forward(res.q).position
    assert (nominal - res.position).norm(dim=-1).min() > 0.01  # and the arm is not the nominal one
    assert len(log) == before + 3 and all(s.valid for s in log.samples[-3:])
    assert len(published) >= 3


def test_large_moves_go_through_checked_waypoints_and_unsafe_ones_are_never_sent(robot):
    fm, published, log = robot
    fm.move(HOME)
    start = len(published)
    far = HOME + np.array([1.2, 0.0, 0.0, 0.0, 0.0, 0.0])  # beyond the 0.5 rad step bound: 3 waypoints of 0.4
    sample = fm.move(far)
    assert sample.valid and np.abs(sample.q - far).max() < 5e-3
    sent = published[start:]
    assert len(sent) == 3
    steps = [np.abs(np.array(m.points[-1].positions) - p).max() for m, p in zip(sent, [HOME] + [np.array(m.points[-1].positions) for m in sent[:-1]])]
    assert max(steps) <= 0.45
    start = len(published)
    for bad in (np.full(6, np.nan), HOME + np.array([0.0, 0.0, 4.0, 0.0, 0.0, 0.0]), HOME + np.array([0.0, 1.6, 0.0, 0.0, 0.0, 0.0])):
        s = fm.move(bad)
        assert not s.valid
    assert len(published) == start, "an unsafe target reached the controller topic"
    assert not log.samples[-1].valid  # failed samples are recorded too
