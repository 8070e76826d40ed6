"""launch_testing test of sim_demo.launch.py: the simulated UR3, the IK service and the learner come
up together, the arm publishes its state, the service answers, the learner takes goals over its
action, and every process exits cleanly.

Runs wherever launch_testing is installed; skipped here otherwise, with the reason.
"""

from __future__ import annotations

import os
import tempfile
import time
import unittest

import pytest

pytest.importorskip("launch_testing", reason="launch_testing is not installed (no PyPI wheel); it runs under a ROS 2 install")
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402


@pytest.mark.launch_test
def generate_test_description():
    from ament_index_python.packages import get_package_share_directory

    out = tempfile.mkdtemp(prefix="cemssl_sim_demo_")
    launch_file = os.path.join(get_package_share_directory("cemssl_ik"), "launch", "sim_demo.launch.py")
    include = IncludeLaunchDescription(PythonLaunchDescriptionSource(launch_file), launch_arguments={"output_dir": out, "link_length_change": "0.03"}.items())
    return LaunchDescription([include, launch_testing.actions.ReadyToTest()]), {"output_dir": out}


class TestSimDemo(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import rclpy

        rclpy.init()
        cls.node = rclpy.create_node("sim_demo_test_client")

    @classmethod
    def tearDownClass(cls):
        import rclpy

        cls.node.destroy_node()
        rclpy.shutdown()

    def _wait(self, future, timeout=60.0):
        import rclpy

        rclpy.spin_until_future_complete(self.node, future, timeout_sec=timeout)
        self.assertTrue(future.done(), "no answer within the timeout")
        return future.result()

    def test_arm_service_and_learner_work_together(self):
        import rclpy
        from rclpy.action import ActionClient
        from sensor_msgs.msg import JointState

        from cemssl_ik_interfaces.action import Learn
        from cemssl_ik_interfaces.srv import GetIKSolutions

        states = []
        self.node.create_subscription(JointState, "/joint_states", states.append, 10)
        deadline = time.monotonic() + 60
        while not states and time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.1)
        self.assertTrue(states, "no /joint_states from sim_robot_node")
        self.assertEqual(sorted(states[-1].name), sorted(["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint", "wrist_3_joint"]))

        ik = self.node.create_client(GetIKSolutions, "/cemssl_ik/get_ik_solutions")
        self.assertTrue(ik.wait_for_service(timeout_sec=120.0))
        req = GetIKSolutions.Request()
        req.target.header.frame_id = "base_link"
        req.target.pose.position.x, req.target.pose.position.y, req.target.pose.position.z = 0.2, 0.1, 0.3
        req.position_only, req.num_solutions, req.refine = True, 4, True
        res = self._wait(ik.call_async(req))
        self.assertEqual(res.error_code, GetIKSolutions.Response.SUCCESS, res.message)

        learner = ActionClient(self.node, Learn, "/cemssl_learner/learn")
        self.assertTrue(learner.wait_for_server(timeout_sec=120.0))
        handle = self._wait(learner.send_goal_async(Learn.Goal(strategy="no_such_strategy")))
        result = self._wait(handle.get_result_async()).result
        self.assertFalse(result.success)
        self.assertIn("strategy", result.message)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info, output_dir):
        import shutil

        shutil.rmtree(output_dir, ignore_errors=True)
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
