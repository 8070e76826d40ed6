"""launch_testing test of ik_service.launch.py: the node comes up from the launch file, answers
GetIKSolutions and honours the launch arguments, and exits cleanly on shutdown.

Runs wherever launch_testing is installed (every ROS 2 desktop: ``colcon test`` or ``pytest`` in a
sourced workspace); skipped here otherwise, with the reason.
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

NAMESPACE = "lt_ns"
PARAMS = """/**:
  ros__parameters:
    model: ur3_regression_pose
    max_solutions: 3
    use_sim_time: false
"""


@pytest.mark.launch_test
def generate_test_description():
    from ament_index_python.packages import get_package_share_directory

    params = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    params.write(PARAMS)
    params.close()
    launch_file = os.path.join(get_package_share_directory("cemssl_ik"), "launch", "ik_service.launch.py")
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(launch_file),
        # the user's params file, under a namespace, with use_sim_time: problems 2, 3 and 6
        launch_arguments={"params_file": params.name, "namespace": NAMESPACE, "use_sim_time": "true", "log_level": "info"}.items(),
    )
    return LaunchDescription([include, launch_testing.actions.ReadyToTest()]), {"params_file": params.name}


class TestIKServiceLaunch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import rclpy

        rclpy.init()
        cls.node = rclpy.create_node("launch_test_client")

    @classmethod
    def tearDownClass(cls):
        import rclpy

        cls.node.destroy_node()
        rclpy.shutdown()

    def _call(self, client, request, timeout=30.0):
        import rclpy

        future = client.call_async(request)
        rclpy.spin_until_future_complete(self.node, future, timeout_sec=timeout)
        self.assertTrue(future.done(), "no answer within the timeout")
        return future.result()

    def test_service_answers_with_the_params_file_applied(self):
        from geometry_msgs.msg import Pose

        from cemssl_ik_interfaces.srv import GetIKSolutions

        client = self.node.create_client(GetIKSolutions, f"/{NAMESPACE}/cemssl_ik/get_ik_solutions")
        self.assertTrue(client.wait_for_service(timeout_sec=60.0), "service did not appear within 60 s")
        req = GetIKSolutions.Request()
        req.target.header.frame_id = "base_link"
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = 0.0607, -0.1579, 0.3178
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = 0.7668, 0.0673, -0.2123, 0.6019
        req.target.pose = pose
        req.refine = True
        req.num_solutions = 3
        res = self._call(client, req)
        self.assertEqual(res.error_code, GetIKSolutions.Response.SUCCESS, res.message)
        self.assertLessEqual(len(res.solutions), 3)
        self.assertTrue(all(e <= 1e-6 for e in res.position_errors))
        req.num_solutions = 4  # the params file's max_solutions: 3 applies under the namespace
        res = self._call(client, req)
        self.assertEqual(res.error_code, GetIKSolutions.Response.INVALID_REQUEST, res.message)
        self.assertIn("max_solutions=3", res.message)

    def test_use_sim_time_argument_reaches_the_node(self):
        from rcl_interfaces.srv import GetParameters

        client = self.node.create_client(GetParameters, f"/{NAMESPACE}/cemssl_ik/get_parameters")
        self.assertTrue(client.wait_for_service(timeout_sec=60.0))
        deadline = time.monotonic() + 30
        while True:
            res = self._call(client, GetParameters.Request(names=["use_sim_time", "model"]))
            if res.values or time.monotonic() > deadline:
                break
        self.assertTrue(res.values[0].bool_value)
        self.assertEqual(res.values[1].string_value, "ur3_regression_pose")


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info, params_file):
        os.unlink(params_file)
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
